"""EM with missing entries (missing at random), for every covariance structure.

The E-step of Ghahramani and Jordan (1994): a row that observes the coordinates ``O`` has
responsibilities from its observed sub-vector under each component's marginal, and, under
component k, its missing coordinates have the conditional normal distribution

    x_M | x_O, k ~ N(mu_M + S_MO S_OO^-1 (x_O - mu_O), S_MM - S_MO S_OO^-1 S_OM).

The M-step uses the expected sufficient statistics (the conditional means in place of the
missing entries, and the conditional covariances added to the second moments), then reduces
the covariances to the structure (:meth:`~bayesgmm.covariance.CovarianceStructure.project`:
the diagonals, their mean, or the pooled covariance), as scikit-learn's M-steps do. Each
iteration increases the observed-data log-likelihood. Rows are processed by missingness
pattern (:func:`~bayesgmm.likelihood.missing.missingness_patterns`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ..covariance import structure
from ..likelihood.missing import marginal_chols, missingness_patterns
from ..likelihood.reference import normalised, weighted_log_densities

__all__ = ["em_missing", "conditional_moments"]


def conditional_moments(x_obs: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                        observed: np.ndarray, missing: np.ndarray):
    """Conditional means (n, |M|) and covariance (|M|, |M|) of the missing coordinates.

    For rows ``x_obs`` (n, |O|) of one component with ``mean`` (D,) and ``cov`` (D, D).
    """
    s_oo = cov[np.ix_(observed, observed)]
    s_mo = cov[np.ix_(missing, observed)]
    gain = np.linalg.solve(s_oo, s_mo.T).T  # S_MO S_OO^-1, (|M|, |O|)
    cond_mean = mean[missing] + (x_obs - mean[observed]) @ gain.T
    cond_cov = cov[np.ix_(missing, missing)] - gain @ s_mo.T
    return cond_mean, 0.5 * (cond_cov + cond_cov.T)


def _e_step(Z, patterns, weights, means, covs, row_weights, labels=None, noise=None):
    """Observed-data log-likelihood and the expected sufficient statistics (rows weighted).

    A row with a known component (``labels[n] >= 0``) belongs to it: its other components
    get probability 0, and its log-likelihood is that component's term alone.

    ``noise``: ``(weight, log density per row (N,))`` of a noise component; the
    responsibility it takes is returned as a fifth value.
    """
    n, d = Z.shape
    k = weights.size
    chols = np.linalg.cholesky(covs)
    s0, s1, s2 = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
    s_noise = 0.0
    total = 0.0
    for p in patterns:
        o = p.observed
        m = np.setdiff1d(np.arange(d), o)
        x = Z[np.ix_(p.rows, o)]
        lp = weighted_log_densities(x, weights[None], means[None][:, :, o],
                                    marginal_chols(chols, o)[None])[0]
        if noise is not None:
            with np.errstate(divide="ignore"):
                lp = np.column_stack([lp, np.log(noise[0]) + noise[1][p.rows]])
        if labels is not None:
            own = labels[p.rows]
            known = own >= 0
            if known.any():
                mask = np.full((known.sum(), lp.shape[1]), -np.inf)
                mask[np.arange(mask.shape[0]), own[known]] = 0.0
                lp[known] = lp[known] + mask
        rw = row_weights[p.rows]
        total += float(rw @ logsumexp(lp, axis=1))
        r = normalised(lp) * rw[:, None]
        if noise is not None:
            s_noise += float(r[:, k].sum())
        for j in range(k):
            rj = r[:, j]
            full = np.empty((x.shape[0], d))
            full[:, o] = x
            extra = None
            if m.size:
                full[:, m], extra = conditional_moments(x, means[j], covs[j], o, m)
            s0[j] += rj.sum()
            s1[j] += rj @ full
            s2[j] += (full * rj[:, None]).T @ full
            if extra is not None:
                s2[j][np.ix_(m, m)] += rj.sum() * extra
    return total, s0, s1, s2, s_noise


def em_missing(Z: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, *,
               covariance_type: str = "full", reg_covar: float = 1e-6, max_iter: int = 1000,
               tol: float = 1e-8, sample_weight: np.ndarray | None = None,
               labels: np.ndarray | None = None,
               noise_log_density: float | np.ndarray | None = None,
               noise_weight: float = 0.05):
    """EM on data with NaN entries (or complete data), from the given parameters.

    Parameters
    ----------
    Z : ndarray of shape (N, D)
        Data, NaN where missing (no row entirely missing).
    weights, means, covs : ndarrays (K,), (K, D), (K, D, D)
        The start.
    covariance_type : {"full", "diag", "spherical", "tied"}
    reg_covar : float
        Added to the diagonal of every covariance at each M-step.
    max_iter : int
    tol : float
        Stop when the mean observed-data log-likelihood per row changes by less.
    sample_weight : ndarray of shape (N,), optional
        Frequency weights of the rows (the log-likelihood is their weighted sum).
    labels : ndarray of int of shape (N,), optional
        Known components (semi-supervised EM): a row with ``labels[n] = j >= 0`` belongs to
        component j (responsibility 1) and contributes log w_j + log N(x_n | theta_j);
        -1 where unknown.
    noise_log_density : float or ndarray of shape (N,), optional
        Add a uniform noise component of this log density (``-log V``, per row for rows
        with missing entries: see :mod:`bayesgmm.likelihood.noise`), as mclust's EM with
        ``noise``: its weight is estimated with the others. ``weights`` then sum to 1
        minus ``noise_weight``, the noise component's starting weight.
    noise_weight : float, default 0.05

    Returns
    -------
    dict
        ``weights``, ``means``, ``covariances`` (K, D, D), ``log_likelihood`` (observed
        data, at the returned parameters), ``n_iter``, ``converged``; with a noise
        component also ``noise_weight`` (the components' ``weights`` summing to 1 minus
        it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> Z = np.concatenate([rng.normal(-2, 1, (100, 2)), rng.normal(2, 1, (100, 2))])
    >>> Z[rng.random(Z.shape) < 0.2] = np.nan
    >>> Z[np.isnan(Z).all(axis=1), 0] = 0.0
    >>> out = em_missing(Z, np.full(2, 0.5), np.array([[-1.0, -1], [1, 1]]),
    ...                  np.repeat(np.eye(2)[None], 2, 0))
    >>> out["converged"], np.round(out["means"]).tolist()
    (True, [[-2.0, -2.0], [2.0, 2.0]])
    """
    n, d = Z.shape
    row_weights = (np.ones(n) if sample_weight is None
                   else np.asarray(sample_weight, dtype=float))
    n = float(row_weights.sum())
    patterns = missingness_patterns(Z)
    if any(p.observed.size == 0 for p in patterns):
        raise ValueError("em_missing: some rows have every entry missing; drop them.")
    shape = structure(covariance_type)
    weights, means = np.asarray(weights, float), np.asarray(means, float)
    covs = np.asarray(covs, float)
    noise = None
    if noise_log_density is not None:
        ld = np.broadcast_to(np.asarray(noise_log_density, dtype=float), (Z.shape[0],))
        noise = (float(noise_weight), ld)
    previous = -np.inf
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        loglik, s0, s1, s2, s_noise = _e_step(Z, patterns, weights, means, covs,
                                              row_weights, labels, noise)
        if abs(loglik - previous) / n < tol:
            converged = True
            break
        previous = loglik
        counts = np.maximum(s0, 10 * np.finfo(float).eps)
        total = counts.sum() + s_noise
        if noise is not None:
            noise = (max(s_noise, 10 * np.finfo(float).eps) / total, noise[1])
        weights = counts / total
        means = s1 / counts[:, None]
        covs = s2 / counts[:, None, None] - means[:, :, None] * means[:, None, :]
        covs = shape.project(weights, 0.5 * (covs + np.swapaxes(covs, 1, 2)))
        covs = covs + reg_covar * np.eye(d)
    else:
        loglik = _e_step(Z, patterns, weights, means, covs, row_weights, labels, noise)[0]
    out = {"weights": weights, "means": means, "covariances": covs,
           "log_likelihood": loglik, "n_iter": n_iter, "converged": converged}
    if noise is not None:
        out["noise_weight"] = noise[0]
    return out
