"""Plots with matplotlib (imported only when a plot is drawn).

Every function takes an optional ``ax`` and returns the Axes it drew on.
"""

from __future__ import annotations

import numpy as np

from .estimator import as_estimator
from .fitting.result import as_tree, posterior_draws
from .likelihood import pointwise_log_likelihood

__all__ = ["plot_clusters", "plot_density", "plot_pairs", "plot_elbo", "plot_disagreements",
           "plot_singularity_path", "plot_selection", "plot_nonempty", "plot_coclustering",
           "plot_partition", "plot_merge_tree", "plot_trace", "plot_rank", "plot_weights",
           "plot_ppc"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 5))
    return ax


def _ellipse(ax, mean, cov, n_std: float, **kwargs):
    from matplotlib.patches import Ellipse

    vals, vecs = np.linalg.eigh(cov)
    angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
    width, height = 2 * n_std * np.sqrt(np.maximum(vals[::-1], 0))
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **kwargs))


def _feature_index(model, features) -> list[int]:
    return _positions(features, list(model.feature_names_in_))


def _as_array(X) -> np.ndarray:
    return np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=float)


def plot_clusters(model, X, *, features=(0, 1), ax=None, n_std: float = 2.0,
                  n_posterior_ellipses: int = 20, random_state=0):
    """Data coloured by posterior label, opacity by certainty, with covariance ellipses.

    Thin ellipses come from random posterior draws (their spread shows the uncertainty of
    each component); thick ones from the posterior mean.

    Parameters
    ----------
    model : BayesianGMM or xarray.DataTree
        A fit (a fitted estimator, or the result of :func:`bayesgmm.fit`).
    X : array-like of shape (n_samples, n_features)
    features : pair of int or str, default (0, 1)
        The two features to show (positions or names).
    ax : matplotlib Axes, optional
    n_std : float, default 2.0
        Ellipse radius in standard deviations.
    n_posterior_ellipses : int, default 20
        Posterior draws to draw an ellipse for, per component.
    random_state : int, optional
        Which draws.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    model = as_estimator(model)
    names = list(model.feature_names_in_)
    idx = _feature_index(model, features)
    Xa = _as_array(X)
    proba = model.predict_proba(X)
    labels = proba.argmax(axis=1)
    certainty = proba.max(axis=1)
    ax = _axes(ax)
    colors = plt.get_cmap("tab10")(np.arange(model.n_components) % 10)
    noise = labels == model.n_components  # a noise component's column, last
    n_cols = proba.shape[1]
    rgba = colors[np.minimum(labels, model.n_components - 1)].copy()
    rgba[:, 3] = 0.15 + 0.85 * (certainty - 1 / n_cols) / (1 - 1 / n_cols + 1e-12)
    keep = ~noise
    ax.scatter(Xa[keep, idx[0]], Xa[keep, idx[1]], c=np.clip(rgba[keep], 0, 1), s=14,
               edgecolors="none")
    noise_handle = None
    if noise.any():  # the points the posterior calls noise
        noise_handle = ax.scatter(Xa[noise, idx[0]], Xa[noise, idx[1]], marker="x", s=18,
                                  color="0.4", linewidths=0.8,
                                  label=f"noise ({int(noise.sum())})")
    post = model.idata_["posterior"]
    means = post["means"].to_numpy().reshape(-1, model.n_components, len(names))
    covs = post["covariances"].to_numpy().reshape(-1, model.n_components, len(names), len(names))
    rng = np.random.default_rng(random_state)
    pick = rng.choice(means.shape[0], size=min(n_posterior_ellipses, means.shape[0]),
                      replace=False)
    sub = np.ix_(idx, idx)
    from matplotlib.lines import Line2D

    counts = np.bincount(labels[keep], minlength=model.n_components)
    handles = []
    for k in range(model.n_components):
        for s in pick:
            _ellipse(ax, means[s, k, idx], covs[s, k][sub], n_std, color=colors[k], lw=0.5,
                     alpha=0.3)
        _ellipse(ax, model.means_[k, idx], model.covariances_[k][sub], n_std, color=colors[k],
                 lw=2.0)
        ax.plot(*model.means_[k, idx], marker="x", color="k", ms=8)
        handles.append(Line2D([], [], color=colors[k], marker="o", lw=2.0,
                              label=f"component {k} ({counts[k]} points)"))
    if noise_handle is not None:
        handles.append(noise_handle)
    handles.append(Line2D([], [], color="0.3", lw=2.0,
                          label=f"{n_std:g} sd ellipse: posterior mean"))
    if means.shape[0] > 1:
        handles.append(Line2D([], [], color="0.3", lw=0.5,
                              label=f"{n_std:g} sd ellipses: {len(pick)} draws"))
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_title("Posterior clusters (opacity: P(label))")
    return ax


def plot_density(model, X=None, *, features=(0, 1), ax=None, grid_size: int = 80,
                 max_draws: int = 200, levels: int = 10, random_state=0):
    """Contours of the posterior predictive density on two features, over the data.

    The density is the posterior mean of the mixture density, marginalised onto the two
    features (exact: a Gaussian mixture's marginal is the mixture of the marginals).

    Parameters
    ----------
    model : BayesianGMM or xarray.DataTree
    X : array-like, optional
        Points to overlay (and to set the plotted range; default: the fitted data).
    features : pair of int or str, default (0, 1)
    ax : matplotlib Axes, optional
    grid_size : int, default 80
    max_draws : int, default 200
        Posterior draws averaged (a random subset, seeded by ``random_state``).
    levels : int, default 10

    Returns
    -------
    matplotlib.axes.Axes
    """
    from scipy.special import logsumexp

    model = as_estimator(model)
    idx = _feature_index(model, features)
    Xa = _as_array(model.idata_["observed_data"]["x"].to_numpy() if X is None else X)
    w, means, chols, dof, noise = posterior_draws(model)
    rng = np.random.default_rng(random_state)
    pick = rng.choice(w.shape[0], size=min(max_draws, w.shape[0]), replace=False)
    covs = (chols @ np.swapaxes(chols, -1, -2))[pick][:, :, idx][:, :, :, idx]
    m = means[pick][:, :, idx]
    lo, hi = np.nanmin(Xa[:, idx], axis=0), np.nanmax(Xa[:, idx], axis=0)  # NaN: missing
    pad = 0.1 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], grid_size)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], grid_size)
    xx, yy = np.meshgrid(gx, gy)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    # A t component's marginal on some features is the t of the same degrees of freedom.
    ll = pointwise_log_likelihood(pts, w[pick], m, np.linalg.cholesky(covs),
                                  None if dof is None else dof[pick])
    title = "Posterior predictive density"
    if noise is not None and noise.region.kind == "box":  # its marginal: the box's sides
        ll = np.logaddexp(ll, np.log(noise.weights[pick])[:, None]
                          - noise.region.log_widths[idx].sum())
    elif noise is not None:  # a hull's marginal is not constant: left out
        title += " (without the noise component)"
    dens = np.exp(logsumexp(ll, axis=0) - np.log(len(pick))).reshape(xx.shape)
    ax = _axes(ax)
    contours = ax.contour(xx, yy, dens, levels=levels, cmap="viridis", linewidths=1.0)
    ax.figure.colorbar(contours, ax=ax, label="posterior predictive density")
    ax.scatter(Xa[:, idx[0]], Xa[:, idx[1]], s=6, c="k", alpha=0.4, edgecolors="none",
               label="data" if X is None else "points")
    ax.legend(loc="best", fontsize="small")
    names = list(model.feature_names_in_)
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_title(title)
    return ax


def plot_pairs(model, X, *, axes=None, n_posterior_ellipses: int = 10, random_state=0):
    """Pairwise panels for D > 2: :func:`plot_clusters` on every pair of features.

    The diagonal shows each feature's histogram coloured by posterior label.

    Parameters
    ----------
    model : BayesianGMM or xarray.DataTree
    X : array-like
    axes : ndarray of matplotlib Axes of shape (D, D), optional
    n_posterior_ellipses : int, default 10
    random_state : int, optional

    Returns
    -------
    ndarray of matplotlib Axes, shape (D, D)
    """
    import matplotlib.pyplot as plt

    model = as_estimator(model)
    d = model.n_features_in_
    if axes is None:
        _, axes = plt.subplots(d, d, figsize=(2.6 * d, 2.6 * d), squeeze=False,
                               layout="constrained")
    axes = np.asarray(axes)
    if axes.shape != (d, d):
        raise ValueError(f"axes must have shape ({d}, {d}) for {d} features, got {axes.shape}.")
    Xa = _as_array(X)
    labels = model.predict(X)
    colors = plt.get_cmap("tab10")(np.arange(model.n_components) % 10)
    names = list(model.feature_names_in_)
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if i == j:
                for k in range(model.n_components):
                    ax.hist(Xa[labels == k, i], bins=20, color=colors[k], alpha=0.6)
                if (labels == -1).any():  # a noise component's points
                    ax.hist(Xa[labels == -1, i], bins=20, color="0.4", alpha=0.6)
                ax.set_xlabel(names[i])
            else:
                plot_clusters(model, X, features=(j, i), ax=ax,
                              n_posterior_ellipses=n_posterior_ellipses,
                              random_state=random_state)
                ax.set_title("")
                legend = ax.get_legend()
                if legend is not None and not (i == 0 and j == d - 1):
                    legend.remove()  # one legend, top right
            # Feature names and tick labels on the outer panels only (they overlapped).
            ax.set_xlabel(names[j] if i == d - 1 else "")
            ax.set_ylabel(names[i] if j == 0 else ("count" if i == j == 0 else ""))
            if i < d - 1:
                ax.tick_params(labelbottom=False)
            if j > 0:
                ax.tick_params(labelleft=False)
    axes[0, 0].figure.suptitle(f"Posterior clusters, {model.n_components} components "
                               f"(diagonal: histograms by label)")
    return axes


def plot_elbo(fitted, ax=None, *, smooth: int = 50):
    """The ELBO history of a variational fit (raw, and a running mean over ``smooth``).

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
        A VI fit (method "advi" or "fullrank_advi").
    ax : matplotlib Axes, optional
    smooth : int, default 50

    Returns
    -------
    matplotlib.axes.Axes
    """
    tree = as_tree(fitted)
    if "variational" not in tree.children:
        raise ValueError("plot_elbo needs a variational fit (method='advi' or "
                         "'fullrank_advi'); this one has no ELBO history.")
    elbo = tree["variational"]["elbo"].to_numpy()
    ax = _axes(ax)
    it = np.arange(elbo.size)
    ax.plot(it, elbo, lw=0.5, alpha=0.4, label="ELBO")
    if elbo.size >= smooth:
        kernel = np.ones(smooth) / smooth
        ax.plot(it[smooth - 1:], np.convolve(elbo, kernel, mode="valid"), lw=1.5,
                label=f"running mean ({smooth})")
    lo = np.percentile(elbo, 5)
    ax.set_ylim(lo, elbo.max() + 0.05 * (elbo.max() - lo))
    ax.set_xlabel("iteration")
    ax.set_ylabel("ELBO")
    converged = bool(tree["variational"].attrs.get("converged", 0))
    ax.set_title(f"ELBO ({'converged' if converged else 'NOT converged'})")
    ax.legend(loc="lower right")
    return ax


def plot_disagreements(comparison, X, *, features=(0, 1), ax=None):
    """Where a Bayesian fit and another disagree (from :func:`bayesgmm.compare_assignments`).

    Points are coloured by |P_bayes - P_other| (largest over components); labels that
    differ are circled; points where the other fit is confident but the posterior is not
    are marked with a triangle.

    Parameters
    ----------
    comparison : AssignmentComparison
    X : array-like
        The points the comparison was made on.
    features : pair of int or str, default (0, 1)
        Positions, or column names of a data frame ``X``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    Xa = _as_array(X)
    pts = comparison.points
    if len(pts) != Xa.shape[0]:
        raise ValueError(f"X has {Xa.shape[0]} rows but the comparison {len(pts)}.")
    names = _column_names(X, Xa.shape[1])
    i, j = _positions(features, names, _FRAME_HINT)
    ax = _axes(ax)
    sc = ax.scatter(Xa[:, i], Xa[:, j], c=pts["max_abs_diff"], cmap="magma_r", s=14,
                    vmin=0, vmax=max(0.05, float(pts["max_abs_diff"].max())))
    ax.figure.colorbar(sc, ax=ax, label="max |P_bayes - P_other|")
    dis = pts["disagree"].to_numpy()
    ax.scatter(Xa[dis, i], Xa[dis, j], s=80, facecolors="none", edgecolors="r",
               label="labels differ")
    conf = pts["confident_other_not_bayes"].to_numpy()
    ax.scatter(Xa[conf, i], Xa[conf, j], s=30, marker="^", facecolors="none",
               edgecolors="b", label=f"{comparison.names[1]} sure, posterior not")
    ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title(f"{comparison.names[0]} vs {comparison.names[1]}")
    return ax


_FRAME_HINT = " (pass a data frame to use its column names, or positions)"


def _column_names(X, d: int) -> list[str]:
    """A data frame's column names, else x0, x1, ... (the fits' default names)."""
    if hasattr(X, "columns"):
        return [str(c) for c in X.columns]
    return [f"x{j}" for j in range(d)]


def _positions(features, names: list[str], hint: str = "") -> list[int]:
    """Feature positions from positions or names, with an error that lists the names."""
    idx = []
    for f in features:
        if isinstance(f, str):
            if f not in names:
                raise ValueError(f"Unknown feature {f!r}; the features are {names}{hint}.")
            idx.append(names.index(f))
        else:
            if not 0 <= int(f) < len(names):
                raise ValueError(f"Feature index {f} out of range for {len(names)} features.")
            idx.append(int(f))
    return idx


def plot_singularity_path(table, ax=None):
    """ML log-likelihood and Bayesian log posterior along a collapsing component.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayesgmm.singularity.singularity_path` (columns ``scale``,
        ``log_likelihood``, ``log_posterior``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The left axis (log-likelihood); the log posterior is on a twin right axis.
    """
    missing = {"scale", "log_likelihood", "log_posterior"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}; pass the output of "
                         f"bayesgmm.singularity.singularity_path.")
    ax = _axes(ax)
    ax.plot(table["scale"], table["log_likelihood"], "o-", color="C3", ms=3,
            label="ML log-likelihood")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("scale of the collapsing component (feature sds)")
    ax.set_ylabel("log-likelihood", color="C3")
    right = ax.twinx()
    right.plot(table["scale"], table["log_posterior"], "s-", color="C0", ms=3,
               label="Bayesian log posterior")
    right.set_ylabel("log posterior", color="C0")
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="best", fontsize="small")
    ax.set_title("A component collapsing onto one point")
    return ax


def plot_selection(selection, ax=None):
    """PSIS-LOO ELPD (with two standard errors) against K, and EM's BIC on a twin axis.

    With several covariance structures (or component families), one line per structure
    (and family) on each axis. Models that
    did not converge are crossed out in red (their ELPD estimates nothing, and they are
    never suggested).

    Parameters
    ----------
    selection : Selection
        From :func:`bayesgmm.selection.select_components`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import pandas as pd

    t = selection.table
    ax = _axes(ax)
    right = ax.twinx()
    if isinstance(t.index, pd.MultiIndex):  # one line per structure (and family)
        others = [n for n in t.index.names if n != "n_components"]
        groups = [(", ".join(map(str, name if isinstance(name, tuple) else (name,))),
                   sub.droplevel(others))
                  for name, sub in t.groupby(level=others if len(others) > 1 else others[0],
                                             sort=False)]
    else:
        groups = [("", t)]
    for i, (name, sub) in enumerate(groups):
        ks = sub.index.to_numpy()
        label = f" ({name})" if name else ""
        ax.errorbar(ks + 0.05 * i, sub["elpd_loo"], yerr=2 * sub["se"], fmt="o-",
                    color=f"C{i}", capsize=3, label=f"ELPD +- 2 se{label}")
        right.plot(ks, sub["bic_em"], "s--", color=f"C{i}", alpha=0.5,
                   label=f"EM BIC{label}")
        if "converged" in sub:
            bad = ~sub["converged"].to_numpy(bool)
            if bad.any():
                ax.plot(ks[bad] + 0.05 * i, sub["elpd_loo"].to_numpy()[bad], "x", color="red",
                        ms=12, mew=2, zorder=5,
                        label="not converged" if i == 0 else None)
    ks = np.unique(t.index.get_level_values("n_components"))
    if selection.best is not None:
        ax.axvline(selection.best, color="k", ls=":", lw=1)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("ELPD, PSIS-LOO (circles; higher is better)")
    ax.set_xticks(ks)
    right.set_ylabel("EM BIC (squares, dashed; lower is better)")
    mine, labels = ax.get_legend_handles_labels()
    handles = [h for h, lab in sorted(zip(mine, labels, strict=True),
                                      key=lambda hl: hl[1] == "not converged")]
    handles += right.get_legend_handles_labels()[0]
    if selection.best is not None:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="k", ls=":", lw=1,
                              label=f"suggested K = {selection.best}"))
    ax.legend(handles=handles, fontsize="small", loc="lower right")
    if selection.best is None:
        title = "Choosing K: no model converged"
    elif len(groups) > 1:
        title = (f"Choosing K: suggested K = {selection.best}, "
                 f"{selection.best_covariance_type}")
        if "family" in t.index.names:
            title += f", {selection.best_family}"
    else:
        title = f"Choosing K: suggested K = {selection.best}"
    ax.set_title(title)
    return ax


def plot_nonempty(result, ax=None):
    """Posterior of the number of non-empty components of an overfitted (sparse) mixture.

    Parameters
    ----------
    result : SparseMixture
        From :func:`bayesgmm.selection.sparse_mixture`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    t = result.table
    ax = _axes(ax)
    ks = t.index.to_numpy()
    if "prior" in t:  # the prior the concentration implies, beside the posterior
        ax.bar(ks - 0.2, t["prior"], width=0.4, color="0.7", label="prior")
        ax.bar(ks + 0.2, t["probability"], width=0.4, color="C0", label="posterior")
        ax.legend(loc="best", fontsize="small")
    else:
        ax.bar(ks, t["probability"], color="C0")
    ax.set_xticks(ks)
    ax.set_ylim(0, 1)
    ax.set_xlabel("number of non-empty components K+")
    ax.set_ylabel("probability")
    ax.set_title(f"Overfitted mixture, K = {ks.max()}, Dirichlet({result.concentration:g}): "
                 f"most probable K+ = {result.best}", fontsize="medium")
    return ax


def plot_coclustering(fitted, partition=None, X=None, *, ax=None, max_obs: int = 1000,
                      random_state=0):
    """The co-clustering matrix P(z_i = z_j), its points ordered by a partition estimate.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    partition : Partition, optional
        From :func:`bayesgmm.clusters.partition` on the same points; computed (VI loss)
        when not given. Points are ordered by its clusters, and within each by their
        probability; lines separate the clusters.
    X : array-like, optional
        Default: the fitted data.
    ax : matplotlib Axes, optional
    max_obs : int, default 1000
        With more points, a random subset (seeded by ``random_state``) is shown.
    random_state : int, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from .assignments import coclustering
    from .clusters import partition as partition_estimate

    if partition is None:
        partition = partition_estimate(fitted, X, random_state=random_state)
    cc = coclustering(fitted, X, max_obs=max_obs, random_state=random_state)
    obs = cc["obs"].to_numpy()
    if partition.labels.size < obs.max() + 1:
        raise ValueError(f"The partition has {partition.labels.size} points, the data "
                         f"{obs.max() + 1}: pass the partition of the same points.")
    labels, prob = partition.labels[obs], partition.probability[obs]
    order = np.lexsort((-prob, labels))
    ax = _axes(ax)
    image = ax.imshow(cc.to_numpy()[np.ix_(order, order)], vmin=0, vmax=1, cmap="viridis",
                      interpolation="nearest")
    edges = np.flatnonzero(np.diff(labels[order])) + 0.5
    for e in edges:
        ax.axhline(e, color="w", lw=0.8)
        ax.axvline(e, color="w", lw=0.8)
    ax.figure.colorbar(image, ax=ax, label="P(z_i = z_j)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("point j (ordered by cluster)")
    ax.set_ylabel("point i (ordered by cluster)")
    ax.set_title(f"Co-clustering, ordered by the {partition.loss} estimate "
                 f"({partition.n_clusters} clusters)", fontsize="medium")
    return ax


def plot_partition(partition, X, *, features=(0, 1), ax=None, threshold: float = 0.1):
    """The partition estimate on the data, its uncertain points marked.

    Parameters
    ----------
    partition : Partition
        From :func:`bayesgmm.clusters.partition`.
    X : array-like of shape (n_samples, n_features)
        The points it clusters.
    features : pair of int or str, default (0, 1)
        Positions, or column names of a data frame ``X``.
    ax : matplotlib Axes, optional
    threshold : float, default 0.1
        Points whose :attr:`~bayesgmm.clusters.Partition.uncertainty` exceeds it are
        circled.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    Xa = _as_array(X)
    names = _column_names(X, Xa.shape[1])
    idx = _positions(features, names, _FRAME_HINT)
    if Xa.shape[0] != partition.labels.size:
        raise ValueError(f"X has {Xa.shape[0]} rows, the partition {partition.labels.size}: "
                         f"pass the points it clusters.")
    ax = _axes(ax)
    cmap = plt.get_cmap("tab10")
    clusters, sizes = np.unique(partition.labels, return_counts=True)
    for c, size in zip(clusters, sizes, strict=True):
        mine = partition.labels == c
        # Ten colours at most: the legend names the ten largest clusters.
        shown = c in clusters[np.argsort(-sizes, kind="stable")[:10]]
        ax.scatter(Xa[mine, idx[0]], Xa[mine, idx[1]], color=cmap(c % 10), s=14,
                   edgecolors="none", label=f"cluster {c} ({size})" if shown else None)
    unsure = partition.uncertainty > threshold
    if unsure.any():
        ax.scatter(Xa[unsure, idx[0]], Xa[unsure, idx[1]], s=60, facecolors="none",
                   edgecolors="k", linewidths=0.8,
                   label=f"uncertainty > {threshold:g} ({int(unsure.sum())})")
    ax.legend(loc="best", fontsize="small")
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_title(f"Partition estimate ({partition.loss}): {partition.n_clusters} clusters",
                 fontsize="medium")
    return ax


def plot_merge_tree(merge, ax=None):
    """The merge tree of :func:`bayesgmm.clusters.merge_components` as a dendrogram.

    Leaves are the components; each join is one merge, at the height of its step, labelled
    with its posterior probability. A dashed line cuts the tree at the chosen clusters.

    Parameters
    ----------
    merge : Merge
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    from scipy.cluster.hierarchy import dendrogram

    tree = merge.tree
    k = len(tree) + 1
    node = {(j,): j for j in range(k)}
    sizes = {j: 1 for j in range(k)}
    linkage = np.zeros((k - 1, 4))
    for step, (a, b) in enumerate(tree["merged"]):
        i, j = node[tuple(a)], node[tuple(b)]
        linkage[step] = [i, j, step + 1, sizes[i] + sizes[j]]
        new = k + step
        node[tuple(sorted(tuple(a) + tuple(b)))] = new
        sizes[new] = sizes[i] + sizes[j]
    ax = _axes(ax)
    if k == 1:
        ax.set_title("One component: nothing to merge", fontsize="medium")
        return ax
    info = dendrogram(linkage, ax=ax, labels=[str(j) for j in range(k)], color_threshold=0,
                      above_threshold_color="C0")
    probability = tree["probability"].to_numpy()
    for xs, ys in zip(info["icoord"], info["dcoord"], strict=True):
        p = probability[int(round(ys[1])) - 1]  # a join's height is its step
        ax.annotate(f"{p:.2f}", (0.5 * (xs[1] + xs[2]), ys[1]), textcoords="offset points",
                    xytext=(0, 3), ha="center", fontsize="small")
    ax.axhline(k - merge.n_clusters + 0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("component")
    ax.set_ylabel("merge step")
    ax.set_title(f"Merge tree ({merge.method}); cut: {merge.n_clusters} clusters, "
                 f"probability {merge.probability:.2f}", fontsize="medium")
    return ax


# ------------------------------------------------------------------ posterior plots
def _draws_tree(fitted, what: str):
    tree = as_tree(fitted)
    post = tree["posterior"]
    if post.sizes["chain"] * post.sizes["draw"] < 2:
        raise ValueError(f"{what} needs posterior draws; this fit is a single point (method="
                         f"'map'). Fit with method='nuts' (or a VI method) to plot them.")
    return tree


def plot_trace(fitted, var_names=("weights",), *, kind: str = "trace", **kwargs):
    """Trace (or rank) plots of the relabelled posterior, by ArviZ's ``arviz_plots``.

    The draws are plotted as stored: relabelled to the EM start, so each line is one
    component in every chain (label switching would show as lines that swap).

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
        A fit with draws (NUTS, or VI: one "chain" of draws from the approximation).
    var_names : sequence of str, default ("weights",)
        Any of ``weights``, ``means``, ``sigmas`` (and ``dof``, ``noise_weight`` where the fit
        has them).
    kind : {"trace", "rank"}, default "trace"
        ``"trace"``: :func:`arviz_plots.plot_trace_dist` (each variable's marginal
        density and trace, components in colours, with a legend); ``"rank"``:
        :func:`arviz_plots.plot_rank` (rank ECDFs per chain: uniform for mixed chains).
    **kwargs
        Passed on to the ArviZ function.

    Returns
    -------
    arviz_plots.PlotCollection
        ``.savefig(path)`` saves it; ``.viz["figure"]`` is the matplotlib figure.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.plotting import plot_trace
    >>> X = np.random.default_rng(0).normal(size=(60, 1)) + np.repeat([[0.0], [6.0]], 30, 0)
    >>> pc = plot_trace(fit(X, 2, method="advi", draws=50, random_state=0))
    >>> [t.get_text() for t in pc.viz["figure"].item().legends[0].get_texts()]
    ['weights[0]', 'weights[1]']
    """
    import arviz_plots as azp

    if kind not in ("trace", "rank"):
        raise ValueError(f"kind must be 'trace' or 'rank', got {kind!r}.")
    tree = _draws_tree(fitted, "A trace plot")
    names = list(var_names)
    unknown = [v for v in names if v not in tree["posterior"]]
    if unknown:
        raise ValueError(f"The posterior has no {unknown}; it has "
                         f"{sorted(tree['posterior'].data_vars)}.")
    kwargs.setdefault("backend", "matplotlib")
    if kind == "rank":
        if tree["posterior"].sizes["chain"] < 2:
            raise ValueError("A rank plot compares chains; this fit has one (VI draws, or "
                             "NUTS with chains=1). Fit NUTS with chains >= 2, or use "
                             "kind='trace'.")
        return azp.plot_rank(tree, var_names=names, **kwargs)
    pc = azp.plot_trace_dist(tree, var_names=names, **kwargs)
    # The colours run over the variables and their non-sample dimensions (components,
    # features): the legend names each line.
    dims = list(dict.fromkeys(d for v in names for d in tree["posterior"][v].dims
                              if d not in ("chain", "draw")))
    if dims:
        pc.add_legend(["__variable__", *dims])
    return pc


def plot_rank(fitted, var_names=("weights",), **kwargs):
    """Rank plots of the relabelled posterior: :func:`plot_trace` with ``kind="rank"``.

    Returns
    -------
    arviz_plots.PlotCollection
    """
    return plot_trace(fitted, var_names, kind="rank", **kwargs)


def plot_weights(fitted, ax=None, *, prob: float = 0.94):
    """The posterior of the mixture weights: one violin per component.

    Each violin is the density of a component's weight over the draws, with its mean
    (dot) and central ``prob`` interval (bar); a MAP fit shows its point only. A noise
    component's weight is the last column.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    ax : matplotlib Axes, optional
    prob : float, default 0.94

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.plotting import plot_weights
    >>> X = np.random.default_rng(0).normal(size=(60, 1)) + np.repeat([[0.0], [6.0]], 30, 0)
    >>> ax = plot_weights(fit(X, 2, method="advi", draws=50, random_state=0))
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('component', 'weight')
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must lie in (0, 1), got {prob}.")
    w, _, _, _, noise = posterior_draws(fitted)
    names = [str(k) for k in range(w.shape[1])]
    if noise is not None:
        w = np.column_stack([w, noise.weights])
        names.append("noise")
    ax = _axes(ax)
    x = np.arange(w.shape[1])
    mean = w.mean(axis=0)
    if w.shape[0] > 1:
        spread = np.ptp(w, axis=0) > 0
        if spread.any():
            parts = ax.violinplot(w[:, spread], positions=x[spread], showextrema=False,
                                  widths=0.8)
            for body in parts["bodies"]:
                body.set_alpha(0.35)
            parts["bodies"][0].set_label("posterior density")
        lo, hi = np.quantile(w, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        ax.vlines(x, lo, hi, color="k", lw=2, label=f"{prob:.0%} interval")
        ax.plot(x, mean, "o", color="k", label="posterior mean")
    else:
        ax.plot(x, mean, "o", color="k", label="MAP")
    ax.set_xticks(x, names)
    ax.set_xlabel("component")
    ax.set_ylabel("weight")
    ax.set_ylim(0, min(1.0, 1.15 * float(w.max())) or 1.0)
    ax.legend(loc="best", fontsize="small")
    ax.set_title("Posterior of the weights" if w.shape[0] > 1 else "Weights (MAP)")
    return ax


def plot_ppc(fitted, X=None, *, features=None, n_replicates: int = 30, axes=None,
             max_points: int = 2000, random_state=0):
    """Posterior predictive check: the data's marginals and pairs against replicated data.

    Each replicate is a data set of the data's size drawn from one posterior draw (see
    :meth:`bayesgmm.BayesianGMM.sample`). The diagonal shows each feature's histogram
    (black) against the replicates' histograms on the same bins (thin lines); below it,
    each pair of features: the data's points against contours of the replicates' density
    (a Gaussian KDE of the pooled replicates). A model that fits shows data inside the
    replicates' spread.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, optional
        The data to check (default: the fitted data). Missing entries are left out of
        each panel.
    features : sequence of int or str, optional
        Which features (default: the first five).
    n_replicates : int, default 30
    axes : ndarray of matplotlib Axes of shape (F, F), optional
    max_points : int, default 2000
        Points of the pooled replicates the KDE is fitted to (a random subset).
    random_state : int, optional
        Seeds the posterior draws and the replicates.

    Returns
    -------
    ndarray of matplotlib Axes, shape (F, F)
        The upper triangle is switched off.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from scipy.stats import gaussian_kde

    model = as_estimator(fitted)
    names = list(model.feature_names_in_)
    idx = (list(range(min(5, len(names)))) if features is None
           else _feature_index(model, features))
    data = _as_array(model.idata_["observed_data"]["x"].to_numpy() if X is None else X)
    if data.ndim != 2 or data.shape[1] != len(names):
        raise ValueError(f"X must have {len(names)} columns, like the fitted data; got "
                         f"shape {data.shape}.")
    n_rep = int(n_replicates)
    if n_rep < 1:
        raise ValueError(f"n_replicates must be at least 1, got {n_replicates}.")
    rng = np.random.default_rng(random_state)
    n = data.shape[0]
    draws = rng.choice(model._draws.weights.shape[0], size=n_rep,
                       replace=model._draws.weights.shape[0] < n_rep)
    reps = model._simulate(np.repeat(draws, n), rng)[0].reshape(n_rep, n, -1)
    f = len(idx)
    if axes is None:
        _, axes = plt.subplots(f, f, figsize=(2.6 * f + 0.5, 2.6 * f), squeeze=False,
                               layout="constrained")
    axes = np.asarray(axes)
    if axes.shape != (f, f):
        raise ValueError(f"axes must have shape ({f}, {f}) for {f} features, got "
                         f"{axes.shape}.")
    for a, i in enumerate(idx):
        for b, j in enumerate(idx):
            ax = axes[a, b]
            if b > a:
                ax.axis("off")
                continue
            if a == b:
                x = data[:, i][~np.isnan(data[:, i])]
                edges = np.histogram_bin_edges(np.r_[x, reps[:, :, i].ravel()], bins=30)
                for r in range(n_rep):
                    ax.stairs(np.histogram(reps[r, :, i], edges, density=True)[0], edges,
                              color="C0", alpha=0.25, lw=0.6)
                ax.stairs(np.histogram(x, edges, density=True)[0], edges, color="k", lw=1.5)
            else:
                both = ~np.isnan(data[:, [j, i]]).any(axis=1)
                pooled = reps[:, :, [j, i]].reshape(-1, 2)
                pooled = pooled[rng.choice(pooled.shape[0], min(max_points, pooled.shape[0]),
                                           replace=False)]
                lo = np.minimum(pooled.min(0), data[both][:, [j, i]].min(0))
                hi = np.maximum(pooled.max(0), data[both][:, [j, i]].max(0))
                gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 60), np.linspace(lo[1], hi[1], 60))
                try:
                    dens = gaussian_kde(pooled.T)(np.vstack([gx.ravel(), gy.ravel()]))
                    ax.contour(gx, gy, dens.reshape(gx.shape), levels=6, colors="C0",
                               linewidths=0.8)
                except np.linalg.LinAlgError:  # replicates on a line: no 2-D density
                    ax.scatter(*pooled.T, s=2, color="C0", alpha=0.2)
                ax.scatter(data[both, j], data[both, i], s=4, color="k", alpha=0.5,
                           edgecolors="none")
            ax.set_xlabel(names[j] if a == f - 1 else "")
            ax.set_ylabel(names[i] if b == 0 and a > 0 else ("density" if a == b == 0 else ""))
    handles = [Line2D([], [], color="k", lw=1.5, label="data"),
               Line2D([], [], color="C0", lw=0.8,
                      label=f"posterior predictive ({n_rep} replicates)")]
    (axes[0, f - 1] if f > 1 else axes[0, 0]).legend(handles=handles, loc="upper right",
                                                     fontsize="small")
    axes[0, 0].figure.suptitle("Posterior predictive check")
    return axes
