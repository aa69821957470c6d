"""The mixture likelihood in NumPy, vectorised over posterior draws.

What reads a fit (responsibilities, predictive densities) runs on these functions, and the
numba kernels (:mod:`bayesgmm.likelihood.kernels`) are tested against them.

Parameters come with any leading batch shape (draws): ``weights`` (..., K), ``means``
(..., K, D), ``covariances`` (..., K, D, D), and for Student-t components ``dof`` (..., K),
their degrees of freedom (the factors are then those of the scale matrices; ``None``:
Gaussian components), and for a noise component ``noise``, a
:class:`~bayesgmm.likelihood.noise.NoiseTerm` (its weight per draw and its region; the
components' ``weights`` then sum to 1 minus the noise weight). Work is chunked over the
flattened draws so memory stays bounded (about ``CHUNK_ELEMENTS`` doubles per
intermediate array).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import logsumexp

from .kernels import LOG_2PI, student_t_log_norm
from .missing import by_pattern
from .noise import NoiseTerm

__all__ = ["CHUNK_ELEMENTS", "draw_chunks", "flat_draws", "weighted_log_densities",
           "pointwise_log_likelihood_numpy", "normalised", "responsibilities",
           "mean_responsibilities", "log_predictive_density"]

CHUNK_ELEMENTS = 4_000_000


def weighted_log_densities(X: np.ndarray, weights: np.ndarray, means: np.ndarray,
                           chols: np.ndarray, dof: np.ndarray | None = None,
                           noise: NoiseTerm | None = None) -> np.ndarray:
    """Log w_k + log N(x_n | mu_k, L_k L_k^T) for one batch of draws.

    With ``dof``, Student-t components: log w_k + log t_nu_k(x_n | mu_k, L_k L_k^T). NaN
    entries of ``X`` are missing: a row's density is that of its observed coordinates
    under each component's marginal (see :mod:`bayesgmm.likelihood.missing`; a t
    component's marginal is the t of the same degrees of freedom on the observed
    coordinates); a row with nothing observed gets log w_k.

    Parameters
    ----------
    X : (N, D)
    weights : (S, K)
    means : (S, K, D)
    chols : (S, K, D, D), lower-triangular Cholesky factors
    dof : (S, K), optional
    noise : NoiseTerm, optional
        A noise component (weights (S,)): its term log w_0 + log(1 / V) is appended as a
        last column.

    Returns
    -------
    ndarray of shape (S, N, K), or (S, N, K + 1) with ``noise``
    """
    if noise is not None:
        return np.concatenate([weighted_log_densities(X, weights, means, chols, dof),
                               noise.log_joint(X)[:, :, None]], axis=-1)
    if np.isnan(X).any():
        return by_pattern(X, means, chols, lambda x, m, c: weighted_log_densities(
            x, weights, m, c, dof), (weights.shape[0], X.shape[0], weights.shape[-1]),
            row_axis=1)
    d = X.shape[1]
    if d == 0:  # nothing observed: the weights alone
        with np.errstate(divide="ignore"):
            return np.repeat(np.log(weights)[:, None, :], X.shape[0], axis=1)
    linv = np.linalg.inv(chols)  # (S, K, D, D), inverse of a triangular matrix
    # (S, K, N, D): rows of L^{-1} (x - mu)
    resid = X[None, None, :, :] - means[:, :, None, :]
    z = np.einsum("skij,sknj->skni", linv, resid, optimize=True)
    quad = np.einsum("sknd,sknd->skn", z, z)
    logdet = np.log(np.diagonal(chols, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, K)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    if dof is None:
        out = -0.5 * quad - logdet[:, :, None] - 0.5 * d * LOG_2PI + logw[:, :, None]
    else:
        nu = np.asarray(dof, dtype=float)[:, :, None]
        out = (student_t_log_norm(nu, d) - 0.5 * (nu + d) * np.log1p(quad / nu)
               - logdet[:, :, None] + logw[:, :, None])
    return np.swapaxes(out, 1, 2)


def draw_chunks(n_draws: int, n_obs: int, k: int, d: int) -> Iterator[slice]:
    """Slices of the draws, each holding about :data:`CHUNK_ELEMENTS` values of N x K x D."""
    per_draw = max(1, n_obs * k * max(d, 1))
    step = max(1, CHUNK_ELEMENTS // per_draw)
    for start in range(0, n_draws, step):
        yield slice(start, min(n_draws, start + step))


def flat_draws(weights, means, chols, dof=None):
    """The parameters with their batch (draw) dimensions flattened into one.

    ``(weights, means, chols)``, and ``dof`` after them when it is given.
    """
    k, d = means.shape[-2:]
    s = int(np.prod(weights.shape[:-1], dtype=np.int64))  # explicit: -1 fails when d == 0
    flat = (weights.reshape(s, k), means.reshape(s, k, d), chols.reshape(s, k, d, d))
    return flat if dof is None else (*flat, np.broadcast_to(dof, weights.shape).reshape(s, k))


def _sliced(nu, sl):
    if nu is None:
        return None
    return nu.sliced(sl) if isinstance(nu, NoiseTerm) else nu[sl]


def _flat(weights, means, chols, dof):
    """:func:`flat_draws`, always four values (``None`` for Gaussian components)."""
    flat = flat_draws(weights, means, chols, dof)
    return flat if dof is not None else (*flat, None)


def pointwise_log_likelihood_numpy(X, weights, means, chols, dof=None, noise=None) -> np.ndarray:
    """Log p(x_n | theta_s) for every draw, shape (*batch, N), chunked over draws.

    The test oracle of the numba kernel.
    """
    batch = weights.shape[:-1]
    w, m, c, nu = _flat(weights, means, chols, dof)
    out = np.empty((w.shape[0], X.shape[0]))
    for sl in draw_chunks(w.shape[0], X.shape[0], m.shape[1], m.shape[2]):
        out[sl] = logsumexp(weighted_log_densities(X, w[sl], m[sl], c[sl], _sliced(nu, sl),
                                                   _sliced(noise, sl)),
                            axis=-1)
    return out.reshape(*batch, X.shape[0])


def normalised(log_joint_values: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, renormalised.

    With log-joints around -1e10 (points far out in a narrow component), subtracting the
    logsumexp leaves rounding errors of ~1e-7 in exp(); dividing by the sum restores rows
    that sum to 1 to machine precision (found by the property tests).
    """
    r = np.exp(log_joint_values - logsumexp(log_joint_values, axis=-1, keepdims=True))
    return r / r.sum(axis=-1, keepdims=True)


def responsibilities(X, weights, means, chols, dof=None, noise=None) -> np.ndarray:
    """P(z_n = k | x_n, theta_s) for every draw: shape (*batch, N, K).

    With ``noise``, (*batch, N, K + 1): the last column is P(noise | x_n, theta_s).
    """
    batch = weights.shape[:-1]
    w, m, c, nu = _flat(weights, means, chols, dof)
    k = m.shape[1] + (noise is not None)
    out = np.empty((w.shape[0], X.shape[0], k))
    for sl in draw_chunks(w.shape[0], X.shape[0], k, m.shape[2]):
        out[sl] = normalised(weighted_log_densities(X, w[sl], m[sl], c[sl], _sliced(nu, sl),
                                                   _sliced(noise, sl)))
    return out.reshape(*batch, X.shape[0], k)


def mean_responsibilities(X, weights, means, chols, dof=None, noise=None) -> np.ndarray:
    """Posterior mean of P(z_n = k | x_n) over all draws: shape (N, K) (K + 1 with noise)."""
    w, m, c, nu = _flat(weights, means, chols, dof)
    k = m.shape[1] + (noise is not None)
    total = np.zeros((X.shape[0], k))
    for sl in draw_chunks(w.shape[0], X.shape[0], k, m.shape[2]):
        total += normalised(weighted_log_densities(X, w[sl], m[sl], c[sl],
                                                   _sliced(nu, sl),
                                                   _sliced(noise, sl))).sum(axis=0)
    return total / w.shape[0]


def log_predictive_density(X, weights, means, chols, dof=None, noise=None) -> np.ndarray:
    """Log (1/S) sum_s p(x_n | theta_s): the log posterior predictive density, shape (N,)."""
    w, m, c, nu = _flat(weights, means, chols, dof)
    s = w.shape[0]
    acc = np.full(X.shape[0], -np.inf)
    for sl in draw_chunks(s, X.shape[0], m.shape[1], m.shape[2]):
        ll = logsumexp(weighted_log_densities(X, w[sl], m[sl], c[sl], _sliced(nu, sl),
                                                   _sliced(noise, sl)),
                       axis=-1)  # (s, N)
        acc = np.logaddexp(acc, logsumexp(ll, axis=0))
    return acc - np.log(s)
