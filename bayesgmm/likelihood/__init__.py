"""The mixture likelihood: numba kernels, PyTensor Ops and a NumPy reference.

``kernels``
    numba kernels of the log-likelihood and its gradient (no PyTensor, no PyMC).
``ops``
    the kernels as PyTensor Ops with numba and JAX implementations, and the likelihood term
    the model uses.
``reference``
    the same likelihood in NumPy, vectorised over draws: responsibilities and densities of a
    fit, and the test oracle of the kernels.

This layer knows nothing of PyMC models or of fits.
"""

from __future__ import annotations

import numpy as np

from .kernels import pointwise_log_likelihood_numba
from .missing import by_pattern
from .reference import flat_draws, pointwise_log_likelihood_numpy

__all__ = ["pointwise_log_likelihood", "KERNEL_MIN_TERMS"]


# From this many (draw, point, component) terms on, pointwise_log_likelihood uses the numba
# kernel: it is a few times faster per term than NumPy, but its first compilation on a
# machine (cached on disk afterwards) takes seconds (docs/fitting.md, "Why these defaults").
KERNEL_MIN_TERMS = 50_000_000


def pointwise_log_likelihood(X, weights, means, chols, dof=None, noise=None) -> np.ndarray:
    """Log p(x_n | theta_s) for every draw: shape (*batch, N).

    Large evaluations (posterior draws on large data) run the model's fused numba kernel
    (:func:`~bayesgmm.likelihood.kernels.pointwise_log_likelihood_numba`); small ones
    :func:`~bayesgmm.likelihood.reference.pointwise_log_likelihood_numpy`,
    so that an EM fit's score never waits for a compilation. The choice depends on the
    sizes only, so the same inputs give the same numbers in every process. NaN entries of
    ``X`` are missing and marginalised out (:mod:`bayesgmm.likelihood.missing`), each
    missingness pattern evaluated on its observed columns. ``dof`` (*batch, K): Student-t
    components' degrees of freedom (``None``: Gaussian components). ``noise``: a noise
    component (:class:`~bayesgmm.likelihood.noise.NoiseTerm`, its weights of shape
    ``batch``), added to the components' mixture, whose ``weights`` then sum to 1 minus
    the noise weight.
    """
    if noise is not None:
        ll = pointwise_log_likelihood(X, weights, means, chols, dof)
        return np.logaddexp(ll, noise.log_joint(X).reshape(ll.shape))
    batch = weights.shape[:-1]
    w, m, c, *nu = flat_draws(weights, means, chols, dof)
    nu = nu[0] if nu else None
    if np.isnan(X).any():  # per missingness pattern, on the observed columns
        flat = by_pattern(X, m, c, lambda x, mo, co: pointwise_log_likelihood(x, w, mo, co, nu),
                          (w.shape[0], X.shape[0]), row_axis=1)
        return flat.reshape(*batch, X.shape[0])
    if X.shape[1] == 0 or w.shape[0] * X.shape[0] * m.shape[1] < KERNEL_MIN_TERMS:
        return pointwise_log_likelihood_numpy(X, weights, means, chols, dof)
    return pointwise_log_likelihood_numba(X, w, m, c, nu).reshape(*batch, X.shape[0])
