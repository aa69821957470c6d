"""Plots with matplotlib (imported only when a plot is drawn).

Every function takes an optional ``ax`` and returns the Axes it drew on.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_clusters"]


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


def plot_clusters(model, X, *, features=(0, 1), ax=None, n_std: float = 2.0,
                  n_posterior_ellipses: int = 20, random_state=0):
    """Data coloured by posterior label, opacity by certainty, with covariance ellipses.

    Thin ellipses come from random posterior draws (their spread shows the uncertainty of
    each component); thick ones from the posterior mean.

    Parameters
    ----------
    model : BayesianGMM
        A fitted model.
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

    names = list(model.feature_names_in_)
    idx = [names.index(f) if isinstance(f, str) else int(f) for f in features]
    Xa = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=float)
    proba = model.predict_proba(X)
    labels = proba.argmax(axis=1)
    certainty = proba.max(axis=1)
    ax = _axes(ax)
    colors = plt.get_cmap("tab10")(np.arange(model.n_components) % 10)
    rgba = colors[labels].copy()
    rgba[:, 3] = 0.15 + 0.85 * (certainty - 1 / model.n_components) / (1 - 1 / model.n_components
                                                                       + 1e-12)
    ax.scatter(Xa[:, idx[0]], Xa[:, idx[1]], c=np.clip(rgba, 0, 1), s=14, edgecolors="none")
    post = model.idata_["posterior"]
    means = post["means"].to_numpy().reshape(-1, model.n_components, len(names))
    covs = post["covariances"].to_numpy().reshape(-1, model.n_components, len(names), len(names))
    rng = np.random.default_rng(random_state)
    pick = rng.choice(means.shape[0], size=min(n_posterior_ellipses, means.shape[0]),
                      replace=False)
    sub = np.ix_(idx, idx)
    for k in range(model.n_components):
        for s in pick:
            _ellipse(ax, means[s, k, idx], covs[s, k][sub], n_std, color=colors[k], lw=0.5,
                     alpha=0.3)
        _ellipse(ax, model.means_[k, idx], model.covariances_[k][sub], n_std, color=colors[k],
                 lw=2.0)
        ax.plot(*model.means_[k, idx], marker="x", color="k", ms=8)
    ax.set_xlabel(names[idx[0]])
    ax.set_ylabel(names[idx[1]])
    ax.set_title("Posterior clusters (opacity: P(label))")
    return ax
