"""Conditional distributions of a Gaussian mixture, vectorised over draws.

Split the coordinates into ``given`` (b) and ``target`` (a). Under component k,

    x_a | x_b = v, k ~ N(mu_a + S_ab S_bb^-1 (v - mu_b), S_aa - S_ab S_bb^-1 S_ba),

and the component itself has the conditional probability
``w_k N(v | mu_b, S_bb) / sum_j w_j N(v | mu_jb, S_jbb)``, its responsibility computed from
the given coordinates alone. So ``p(x_a | x_b = v)`` is again a Gaussian mixture, with
weights that depend on ``v``, means linear in ``v`` and covariances that do not depend on it.
Imputation (the target: a row's missing entries) and Gaussian-mixture regression (the target:
the features not conditioned on) both read it from :func:`conditional_mixture`.
"""

from __future__ import annotations

import numpy as np

from .reference import normalised, weighted_log_densities

__all__ = ["conditional_mixture", "sample_mixture"]


def conditional_mixture(values: np.ndarray, weights: np.ndarray, means: np.ndarray,
                        covariances: np.ndarray, given: np.ndarray, target: np.ndarray):
    """The mixture ``p(x_target | x_given = values)`` for every draw.

    Parameters
    ----------
    values : ndarray of shape (N, B)
        Values of the given coordinates, one row per point.
    weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, D)
    covariances : ndarray of shape (S, K, D, D)
    given, target : ndarray of int
        Disjoint coordinate indices, B and A of them (``given`` may be empty).

    Returns
    -------
    cond_weights : ndarray of shape (S, N, K)
    cond_means : ndarray of shape (S, K, N, A)
    cond_covariances : ndarray of shape (S, K, A, A)

    Examples
    --------
    One component, unit variances, correlation 0.5: E[x_1 | x_0 = 2] = 1, Var = 0.75.

    >>> cov = np.array([[[[1.0, 0.5], [0.5, 1.0]]]])
    >>> w, m, c = conditional_mixture(np.array([[2.0]]), np.ones((1, 1)), np.zeros((1, 1, 2)),
    ...                               cov, np.array([0]), np.array([1]))
    >>> float(m[0, 0, 0, 0]), float(c[0, 0, 0, 0])
    (1.0, 0.75)
    """
    given = np.asarray(given, dtype=int)
    target = np.asarray(target, dtype=int)
    s_aa = covariances[..., target[:, None], target[None, :]]
    mu_a = means[..., target]
    n = values.shape[0]
    if given.size == 0:
        cond_w = np.broadcast_to(weights[:, None, :], (weights.shape[0], n, weights.shape[1]))
        cond_m = np.broadcast_to(mu_a[:, :, None, :], mu_a.shape[:2] + (n, target.size))
        return cond_w.copy(), cond_m.copy(), s_aa.copy()
    s_bb = covariances[..., given[:, None], given[None, :]]
    s_ba = covariances[..., given[:, None], target[None, :]]
    chol_bb = np.linalg.cholesky(s_bb)
    # gain = S_ab S_bb^-1, from S_bb gain^T = S_ba (two triangular solves in effect)
    gain = np.swapaxes(np.linalg.solve(s_bb, s_ba), -1, -2)  # (S, K, A, B)
    cond_cov = s_aa - gain @ s_ba
    cond_cov = 0.5 * (cond_cov + np.swapaxes(cond_cov, -1, -2))
    resid = values[None, None, :, :] - means[..., given][:, :, None, :]  # (S, K, N, B)
    cond_mean = mu_a[:, :, None, :] + np.einsum("skab,sknb->skna", gain, resid, optimize=True)
    cond_w = normalised(weighted_log_densities(values, weights, means[..., given], chol_bb))
    return cond_w, cond_mean, cond_cov


def sample_mixture(rng: np.random.Generator, weights: np.ndarray, means: np.ndarray,
                   covariances: np.ndarray) -> np.ndarray:
    """One draw per (draw, point) from the mixtures of :func:`conditional_mixture`.

    ``weights`` (S, N, K), ``means`` (S, K, N, A), ``covariances`` (S, K, A, A). The
    component is drawn by inverting the cumulative weights with one uniform per (draw,
    point), then the normal with one standard normal vector each, all from ``rng`` in a
    fixed order. Returns an array (S, N, A).
    """
    s, n, k = weights.shape
    a = means.shape[-1]
    u = rng.random((s, n))
    cumulative = np.cumsum(weights, axis=-1)
    z = np.minimum((cumulative < u[..., None] * cumulative[..., -1:]).sum(axis=-1), k - 1)
    eps = rng.standard_normal((s, n, a))
    chol = np.linalg.cholesky(covariances)  # (S, K, A, A)
    draw_index = np.arange(s)[:, None]
    centre = means[draw_index, z, np.arange(n)[None, :]]  # (S, N, A)
    spread = np.einsum("snij,snj->sni", chol[draw_index, z], eps)
    return centre + spread
