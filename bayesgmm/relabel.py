"""Label switching: put every posterior draw of a fit in the same component order.

The mixture posterior is invariant to permuting the components, so chains can sit in
different permutations and draws can swap labels. Every fit is already relabelled to its EM
start (pivot relabelling, :mod:`bayesgmm.permutations`); :func:`relabel` applies either
algorithm again, to posteriors combined or changed by hand.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .fitting.result import as_tree, posterior_draws
from .likelihood.reference import responsibilities
from .permutations import (
    apply_permutations,
    gaussian_kl_cost,
    pivot_permutations,
    stephens_permutations,
)

__all__ = ["relabel"]

_COMPONENT_VARS = ("weights", "means", "sigmas", "covariances", "dof")


def relabel(fitted, method: str = "stephens", *, max_obs: int = 1000, random_state=0):
    """Relabel the posterior of a fit so every draw has the same component order.

    Fits are already relabelled to their EM start; use this on posteriors you combined or
    changed, or to apply Stephens' algorithm, which needs no reference. The log-likelihood
    is label-free and stays as it is; the ``relabeling`` group records the permutation
    applied to the originally sampled components.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
        A fit (the DataTree of :func:`bayesgmm.fit` has groups ``posterior`` and
        ``observed_data``).
    method : {"stephens", "pivot"}, default "stephens"
        Stephens' KL algorithm on the responsibilities of (at most ``max_obs``) observations,
        or matching every draw to the ``initial_point`` group by the Hungarian algorithm.
    max_obs : int, default 1000
        Observations used by Stephens' algorithm (a random subset when there are more), which
        bounds its memory at draws x max_obs x K.
    random_state : int, optional
        Seed of that subset.

    Returns
    -------
    xarray.DataTree
        A relabelled copy.
    """
    idata = as_tree(fitted)
    post = idata["posterior"].to_dataset()
    c, d_, k = post.sizes["chain"], post.sizes["draw"], post.sizes["component"]
    names = [name for name in _COMPONENT_VARS if name in post]  # dof: t components only
    flat = {name: post[name].to_numpy().reshape((c * d_, k) + post[name].shape[3:])
            for name in names}
    if method == "stephens":
        X = idata["observed_data"]["x"].to_numpy()
        if X.shape[0] > max_obs:
            rows = np.random.default_rng(random_state).choice(X.shape[0], max_obs, replace=False)
            X = X[np.sort(rows)]
        resp = responsibilities(X, *posterior_draws(post))
        if resp.shape[-1] > k:  # a noise column: not permuted; the components' shares
            resp = resp[..., :k] / np.maximum(resp[..., :k].sum(-1, keepdims=True), 1e-300)
        perm, _ = stephens_permutations(resp)
    elif method == "pivot":
        ref = idata["initial_point"]
        perm = pivot_permutations(gaussian_kl_cost(
            flat["means"], flat["covariances"], ref["means"].to_numpy(),
            ref["covariances"].to_numpy()))
    else:
        raise ValueError(f"Unknown relabelling method {method!r}; choose 'stephens' or 'pivot'.")
    new_post = post.copy()
    for name in names:
        values = apply_permutations(flat[name], perm)
        new_post[name] = (post[name].dims, values.reshape(post[name].shape))
    tree = {name: idata[name].to_dataset() for name in idata.children}
    tree["posterior"] = new_post
    old = (idata["relabeling"]["permutation"].to_numpy().reshape(c * d_, k)
           if "relabeling" in idata.children else np.tile(np.arange(k), (c * d_, 1)))
    combined = np.take_along_axis(old, perm, axis=1).reshape(c, d_, k)
    tree["relabeling"] = xr.Dataset(
        {"permutation": (("chain", "draw", "component"), combined)},
        coords={name: post[name] for name in ("chain", "draw", "component")},
        attrs={"method": method})
    return xr.DataTree.from_dict(tree)
