"""The maximum-likelihood singularity, step by step, beside the Bayesian posterior."""

from __future__ import annotations

import numpy as np

from .fitting.start import em_start
from .likelihood import pointwise_log_likelihood
from .ml.point_estimate import one_thread
from .model import build_model, log_posterior, point_from_params
from .seeds import check_random_state, draw_seeds
from .standardize import Standardizer
from .validation import check_data, check_n_components

__all__ = ["singularity_path"]


def singularity_path(X, n_components, point_index, scales=None, *, priors=None,
                     random_state=None):
    """Log-likelihood and log posterior as one component collapses onto one data point.

    An EM solution with K - 1 components (:func:`bayesgmm.fitting.start.em_start`, on the
    standardised data) explains the data; the K-th component, with weight 1 / N (the others
    scaled by (N - 1) / N), sits on row ``point_index`` (mean = that row) with covariance
    ``scale**2 * I`` on the standardised scale, ``scale`` in feature standard deviations. As
    ``scale`` shrinks, the log-likelihood rises without bound (by D per unit of
    ``-log(scale)``, more for a duplicated row), while the log posterior of the Bayesian model
    falls to minus infinity: the inverse-gamma prior on the component scales vanishes faster
    than any power of the scale.

    (Moving instead the component most responsible for the row would also strip the points it
    explained of their component; the log-likelihood then falls by far more, over the scales
    one can compute, than the collapse gains.)

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
        K >= 2: a single Gaussian has a bounded likelihood.
    point_index : int
        The row of ``X`` the K-th component collapses onto.
    scales : array-like of float, optional
        Component scales to visit, in feature standard deviations. Default
        ``np.geomspace(1, 1e-4, 30)``.
    priors : Priors, optional
        Priors of the Bayesian model (default :class:`~bayesgmm.Priors`).
    random_state : int, numpy.random.Generator or None
        Seeds the EM start.

    Returns
    -------
    pandas.DataFrame
        Columns ``scale``, ``log_likelihood`` (total, on the user's scale: what maximum
        likelihood maximises) and ``log_posterior`` (unnormalised). The Bayesian model lives
        on the standardised data; its log posterior is shifted by the same constant,
        ``offset = N * log|dz/dx| = -N * sum(log sd)``, as the log-likelihood, so that
        ``log_posterior - log_likelihood`` is exactly the log prior. ``attrs`` holds
        ``component`` (K - 1), ``point_index`` and ``offset``.

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(100, 2, 2, random_state=0).X
    >>> table = singularity_path(X, 3, 0, scales=[1.0, 1e-2, 1e-4], random_state=0)
    >>> list(table.columns)
    ['scale', 'log_likelihood', 'log_posterior']
    >>> bool(table.log_likelihood.is_monotonic_increasing)
    True
    >>> bool(table.log_posterior.is_monotonic_decreasing)
    True
    """
    import pandas as pd

    k = check_n_components(n_components)
    if k < 2:
        raise ValueError("singularity_path needs n_components >= 2: the likelihood of a single "
                         "Gaussian is bounded (it falls when the Gaussian collapses).")
    X, names = check_data(X, n_components=k)
    n, d = X.shape
    if isinstance(point_index, bool) or not isinstance(point_index, (int, np.integer)):
        raise TypeError(f"point_index must be an integer row index, got "
                        f"{type(point_index).__name__} {point_index!r}.")
    if not 0 <= point_index < n:
        raise ValueError(f"point_index must be a row of X, in [0, {n}), got {point_index}.")
    i = int(point_index)
    if scales is None:
        scales = np.geomspace(1.0, 1e-4, 30)
    scales = np.asarray(scales, dtype=float).ravel()
    if scales.size == 0 or not np.isfinite(scales).all() or (scales <= 0).any():
        raise ValueError("scales must be a non-empty sequence of finite positive numbers (in "
                         "feature standard deviations), for example np.geomspace(1, 1e-4, 30).")
    rng = check_random_state(random_state)
    std = Standardizer.fit(X)
    Z = std.transform(X)
    with one_thread():
        start = em_start(Z, k - 1, random_state=draw_seeds(rng, 1)[0])
    weights = np.append(start.weights * (n - 1) / n, 1.0 / n)
    means = np.concatenate([start.means, Z[i:i + 1]])
    chols = np.concatenate([start.chols, np.eye(d)[None]])
    logpost = log_posterior(build_model(Z, k, priors, feature_names=names))
    offset = n * std.log_jacobian
    loglik, logp = [], []
    for s in scales:
        chols[k - 1] = s * np.eye(d)
        loglik.append(float(pointwise_log_likelihood(Z, weights[None], means[None],
                                                   chols[None]).sum()) + offset)
        logp.append(float(logpost(point_from_params(weights, means, chols))) + offset)
    table = pd.DataFrame({"scale": scales, "log_likelihood": loglik, "log_posterior": logp})
    table.attrs.update(component=k - 1, point_index=i, offset=offset)
    return table
