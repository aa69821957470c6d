"""NumPy kernels for Gaussian mixtures, vectorised over posterior draws.

Parameters come with any leading batch shape (draws): ``weights`` (..., K), ``means``
(..., K, D), ``covariances`` (..., K, D, D). Work is chunked over the flattened draws so
memory stays bounded (about ``_CHUNK_ELEMENTS`` doubles per intermediate array).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import logsumexp

_LOG_2PI = float(np.log(2.0 * np.pi))
_CHUNK_ELEMENTS = 4_000_000


def cholesky(covariances: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of covariance matrices."""
    return np.linalg.cholesky(covariances)


def log_joint(X: np.ndarray, weights: np.ndarray, means: np.ndarray,
              chols: np.ndarray) -> np.ndarray:
    """Log w_k + log N(x_n | mu_k, L_k L_k^T) for one batch of draws.

    Parameters
    ----------
    X : (N, D)
    weights : (S, K)
    means : (S, K, D)
    chols : (S, K, D, D), lower-triangular Cholesky factors

    Returns
    -------
    ndarray of shape (S, N, K)
    """
    d = X.shape[1]
    linv = np.linalg.inv(chols)  # (S, K, D, D), inverse of a triangular matrix
    # (S, K, N, D): rows of L^{-1} (x - mu)
    resid = X[None, None, :, :] - means[:, :, None, :]
    z = np.einsum("skij,sknj->skni", linv, resid, optimize=True)
    quad = np.einsum("sknd,sknd->skn", z, z)
    logdet = np.log(np.diagonal(chols, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, K)
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    out = -0.5 * quad - logdet[:, :, None] - 0.5 * d * _LOG_2PI + logw[:, :, None]
    return np.swapaxes(out, 1, 2)


def _draw_chunks(n_draws: int, n_obs: int, k: int, d: int) -> Iterator[slice]:
    per_draw = max(1, n_obs * k * max(d, 1))
    step = max(1, _CHUNK_ELEMENTS // per_draw)
    for start in range(0, n_draws, step):
        yield slice(start, min(n_draws, start + step))


def _flat(weights, means, chols):
    k, d = means.shape[-2:]
    return (weights.reshape(-1, k), means.reshape(-1, k, d), chols.reshape(-1, k, d, d))


# From this many (draw, point, component) terms on, pointwise_loglik uses the numba kernel:
# NumPy needs 20-40 ns per term at D=5, the kernel about 10, and its first compilation on a
# machine (cached on disk afterwards) about 3 s.
_KERNEL_MIN_TERMS = 50_000_000


def pointwise_loglik(X, weights, means, chols) -> np.ndarray:
    """Log p(x_n | theta_s) for every draw: shape (*batch, N).

    Large evaluations (posterior draws on large data) run the model's fused numba kernel
    (:func:`bayesgmm._fused.pointwise_loglik`); small ones :func:`pointwise_loglik_numpy`,
    so that an EM fit's score never waits for a compilation. The choice depends on the
    sizes only, so the same inputs give the same numbers in every process.
    """
    from . import _fused

    batch = weights.shape[:-1]
    w, m, c = _flat(weights, means, chols)
    if w.shape[0] * X.shape[0] * m.shape[1] < _KERNEL_MIN_TERMS:
        return pointwise_loglik_numpy(X, weights, means, chols)
    return _fused.pointwise_loglik(X, w, m, c).reshape(*batch, X.shape[0])


def pointwise_loglik_numpy(X, weights, means, chols) -> np.ndarray:
    """:func:`pointwise_loglik` in NumPy (chunked over draws): the test oracle."""
    batch = weights.shape[:-1]
    w, m, c = _flat(weights, means, chols)
    out = np.empty((w.shape[0], X.shape[0]))
    for sl in _draw_chunks(w.shape[0], X.shape[0], m.shape[1], m.shape[2]):
        out[sl] = logsumexp(log_joint(X, w[sl], m[sl], c[sl]), axis=-1)
    return out.reshape(*batch, X.shape[0])


def _normalised(log_joint_values: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, renormalised.

    With log-joints around -1e10 (points far out in a narrow component), subtracting the
    logsumexp leaves rounding errors of ~1e-7 in exp(); dividing by the sum restores rows
    that sum to 1 to machine precision (found by the property tests).
    """
    r = np.exp(log_joint_values - logsumexp(log_joint_values, axis=-1, keepdims=True))
    return r / r.sum(axis=-1, keepdims=True)


def responsibilities(X, weights, means, chols) -> np.ndarray:
    """P(z_n = k | x_n, theta_s) for every draw: shape (*batch, N, K)."""
    batch = weights.shape[:-1]
    w, m, c = _flat(weights, means, chols)
    k = m.shape[1]
    out = np.empty((w.shape[0], X.shape[0], k))
    for sl in _draw_chunks(w.shape[0], X.shape[0], k, m.shape[2]):
        out[sl] = _normalised(log_joint(X, w[sl], m[sl], c[sl]))
    return out.reshape(*batch, X.shape[0], k)


def mean_responsibilities(X, weights, means, chols) -> np.ndarray:
    """Posterior mean of P(z_n = k | x_n) over all draws: shape (N, K)."""
    w, m, c = _flat(weights, means, chols)
    k = m.shape[1]
    total = np.zeros((X.shape[0], k))
    for sl in _draw_chunks(w.shape[0], X.shape[0], k, m.shape[2]):
        total += _normalised(log_joint(X, w[sl], m[sl], c[sl])).sum(axis=0)
    return total / w.shape[0]


def log_predictive_density(X, weights, means, chols) -> np.ndarray:
    """Log (1/S) sum_s p(x_n | theta_s): the log posterior predictive density, shape (N,)."""
    w, m, c = _flat(weights, means, chols)
    s = w.shape[0]
    acc = np.full(X.shape[0], -np.inf)
    for sl in _draw_chunks(s, X.shape[0], m.shape[1], m.shape[2]):
        ll = logsumexp(log_joint(X, w[sl], m[sl], c[sl]), axis=-1)  # (s, N)
        acc = np.logaddexp(acc, logsumexp(ll, axis=0))
    return acc - np.log(s)


def expand_covariances(covariances, covariance_type: str, k: int, d: int) -> np.ndarray:
    """scikit-learn's ``covariances_`` of a ``covariance_type`` as (K, D, D) full matrices."""
    c = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return c.reshape(k, d, d)
    if covariance_type == "tied":
        return np.broadcast_to(c.reshape(d, d), (k, d, d)).copy()
    if covariance_type == "diag":
        return c.reshape(k, d)[:, :, None] * np.eye(d)
    return c.reshape(k)[:, None, None] * np.eye(d)  # spherical
