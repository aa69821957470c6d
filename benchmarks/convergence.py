"""Convergence of a mixture posterior after relabelling: the same code for both models.

"All parameters" are the weights, the means, the standard deviations and the correlations
(strict lower triangle) of every component: the free parameters up to a smooth bijection.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesgmm.permutations import apply_permutations, gaussian_kl_cost, pivot_permutations

RHAT_MAX = 1.01
ESS_MIN = 400.0


def relabel_draws(weights, means, chols, ref_means, ref_covariances):
    """Pivot relabelling: each draw matched to the reference by the Hungarian algorithm on
    the Gaussian KL divergence (what :func:`bayesgmm.fit` does to its own draws).

    Arrays have shapes (C, S, K), (C, S, K, D), (C, S, K, D, D); returns them relabelled.
    """
    c, s, k = weights.shape
    d = means.shape[-1]
    flat = c * s
    covs = chols @ np.swapaxes(chols, -1, -2)
    perm = pivot_permutations(gaussian_kl_cost(means.reshape(flat, k, d),
                                               covs.reshape(flat, k, d, d),
                                               ref_means, ref_covariances))
    out = []
    for arr in (weights, means, chols):
        moved = apply_permutations(arr.reshape((flat,) + arr.shape[2:]), perm)
        out.append(moved.reshape(arr.shape))
    return tuple(out)


def parameters(weights, means, covariances) -> xr.Dataset:
    """Dataset (chain, draw, ...) of weights, means, sigmas and correlations."""
    sig = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    corr = covariances / (sig[..., :, None] * sig[..., None, :])
    d = means.shape[-1]
    rows, cols = np.tril_indices(d, k=-1)
    dims = ("chain", "draw", "component")
    data = {
        "weights": (dims, weights),
        "means": (dims + ("feature",), means),
        "sigmas": (dims + ("feature",), sig),
    }
    if rows.size:
        data["correlations"] = (dims + ("pair",), corr[..., rows, cols])
    return xr.Dataset(data)


def rhat_ess(ds: xr.Dataset) -> tuple[float, float]:
    """Largest rank-normalised R-hat and smallest bulk ESS over every element (ArviZ 1.x).

    NaN (an element constant over all draws, or a broken chain) counts as a failure.
    """
    import arviz_stats as azs

    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = azs.rhat(ds)
        ess = azs.ess(ds, method="bulk")
    r = np.concatenate([np.ravel(rhat[v].to_numpy()) for v in rhat.data_vars])
    e = np.concatenate([np.ravel(ess[v].to_numpy()) for v in ess.data_vars])
    max_rhat = float(np.inf) if np.isnan(r).any() else float(r.max())
    min_ess = 0.0 if np.isnan(e).any() else float(e.min())
    return max_rhat, min_ess


def converged(max_rhat: float, min_ess: float) -> bool:
    return bool(max_rhat <= RHAT_MAX and min_ess >= ESS_MIN)


def sampler_stats(stats: xr.Dataset | None) -> dict[str, float]:
    """Gradient evaluations per draw, mean tree depth and divergences, whatever the sampler."""
    out: dict[str, float] = {}
    if stats is None:
        return out
    for name in ("n_steps",):
        if name in stats:
            out["grad_per_draw"] = float(stats[name].mean())
    for name in ("tree_depth", "depth"):
        if name in stats:
            out["tree_depth"] = float(stats[name].mean())
            break
    for name in ("diverging", "divergences"):
        if name in stats:
            out["divergences"] = int(np.asarray(stats[name]).astype(bool).sum())
            break
    for name in ("step_size",):
        if name in stats:
            out["step_size"] = float(stats[name].mean())
    return out
