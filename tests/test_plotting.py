"""The plots: each draws what it should and saves as a PNG (MAP fits keep them fast)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bayesgmm import BayesianGMM  # noqa: E402
from bayesgmm.plotting import plot_clusters  # noqa: E402


def test_plot_clusters_returns_axes_with_ellipses(blobs, map_fit_seed0, tmp_path):
    import matplotlib.pyplot as plt

    model = map_fit_seed0
    fig, ax = plt.subplots()
    assert plot_clusters(model, blobs.X, ax=ax) is ax
    # One draw (MAP): one thin and one thick ellipse per component.
    assert len(ax.patches) == 6
    fig.savefig(tmp_path / "p.png")
    plt.close(fig)
    assert (tmp_path / "p.png").stat().st_size > 5_000


def saved_png(ax_or_fig, path):
    import matplotlib.pyplot as plt

    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    fig.savefig(path)
    plt.close(fig)
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_density_pairs_elbo_disagreement_and_singularity_plots(blobs, map_fit_seed0,
                                                                 tmp_path):
    import pytest

    from bayesgmm import ConvergenceWarning, compare_assignments
    from bayesgmm.datasets import make_mixture
    from bayesgmm.plotting import (
        plot_density,
        plot_disagreements,
        plot_elbo,
        plot_pairs,
        plot_singularity_path,
    )

    model = map_fit_seed0
    ax = plot_density(model, grid_size=30)
    assert len(ax.collections) >= 2  # contour levels and the points
    assert saved_png(ax, tmp_path / "density.png")

    d3 = make_mixture(150, 2, 3, random_state=1)
    m3 = BayesianGMM(2, method="map", random_state=0).fit(d3.X)
    axes = plot_pairs(m3, d3.X)
    assert axes.shape == (3, 3) and len(axes[0, 1].patches) == 4
    assert saved_png(axes[0, 0], tmp_path / "pairs.png")

    with pytest.warns(ConvergenceWarning, match="ELBO"):
        vi = BayesianGMM(3, method="advi", max_iter=300, draws=20, random_state=0).fit(blobs.X)
    ax = plot_elbo(vi)
    assert "NOT converged" in ax.get_title()
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("iteration", "ELBO")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ELBO",
                                                                   "running mean (50)"]
    assert saved_png(ax, tmp_path / "elbo.png")
    with pytest.raises(ValueError, match="variational fit"):
        plot_elbo(model)

    other = BayesianGMM(3, method="map", random_state=1).fit(blobs.X)
    comparison = compare_assignments(model, other, blobs.X)
    ax = plot_disagreements(comparison, blobs.X)
    assert saved_png(ax, tmp_path / "disagree.png")

    table = pd.DataFrame({"scale": np.geomspace(1, 1e-4, 10),
                          "log_likelihood": np.linspace(0, 30, 10),
                          "log_posterior": np.linspace(0, -1e4, 10)})
    ax = plot_singularity_path(table)
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "scale of the collapsing component (feature sds)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "ML log-likelihood", "Bayesian log posterior"]  # both axes' lines in one legend
    assert saved_png(ax, tmp_path / "singular.png")
    with pytest.raises(ValueError, match="singularity_path"):
        plot_singularity_path(table.drop(columns="log_posterior"))


def legend_texts(ax_or_fig):
    legends = ([ax_or_fig.get_legend()] if hasattr(ax_or_fig, "get_legend")
               else list(ax_or_fig.legends))
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


def test_every_plot_names_its_axes_and_has_a_legend(blobs, map_fit_seed0, advi_fit, nuts_fit,
                                                    tmp_path):
    import matplotlib.pyplot as plt
    import pytest

    from bayesgmm import compare_assignments
    from bayesgmm.plotting import (
        plot_density,
        plot_disagreements,
        plot_pairs,
        plot_ppc,
        plot_rank,
        plot_trace,
        plot_weights,
    )

    frame = pd.DataFrame(blobs.X, columns=["length", "width"])
    ax = plot_clusters(advi_fit, blobs.X)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")
    texts = legend_texts(ax)
    counts = np.bincount(advi_fit.predict(blobs.X), minlength=3)
    assert texts[:3] == [f"component {k} ({counts[k]} points)" for k in range(3)]
    assert texts[3:] == ["2 sd ellipse: posterior mean", "2 sd ellipses: 20 draws"]
    plt.close("all")

    ax = plot_density(map_fit_seed0, grid_size=20)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x0", "x1")
    assert legend_texts(ax) == ["data"]
    assert ax.figure.axes[-1].get_ylabel() == "posterior predictive density"  # colour bar
    plt.close("all")

    # Feature names where plot_clusters takes them (they were refused: int('width')).
    other = BayesianGMM(3, method="map", random_state=1).fit(blobs.X)
    comparison = compare_assignments(map_fit_seed0, other, blobs.X)
    ax = plot_disagreements(comparison, frame, features=("width", "length"))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("width", "length")
    assert "labels differ" in legend_texts(ax)
    with pytest.raises(ValueError, match=r"Unknown feature 'depth'; the features are "
                                         r"\['length', 'width'\]"):
        plot_disagreements(comparison, frame, features=("depth", "length"))
    plt.close("all")

    axes = plot_pairs(map_fit_seed0, blobs.X)
    assert [a.get_xlabel() for a in axes[-1]] == ["x0", "x1"]
    assert axes[0, 1].get_xlabel() == "" and len(legend_texts(axes[0, 1])) == 4
    assert legend_texts(axes[1, 0]) == []  # one legend only
    # Tick labels on the outer panels only (they overlapped).
    assert axes[0, 1].xaxis.get_tick_params()["labelbottom"] is False
    assert axes[1, 1].yaxis.get_tick_params()["labelleft"] is False
    assert axes[1, 0].xaxis.get_tick_params().get("labelbottom", True) is not False
    plt.close("all")

    ax = plot_weights(advi_fit)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("component", "weight")
    assert legend_texts(ax) == ["posterior density", "94% interval", "posterior mean"]
    w = advi_fit.idata_["posterior"]["weights"].to_numpy().reshape(-1, 3)
    means = ax.lines[-1].get_ydata()
    np.testing.assert_allclose(means, w.mean(axis=0), rtol=1e-12)
    assert legend_texts(plot_weights(map_fit_seed0)) == ["MAP"]
    plt.close("all")

    axes = plot_ppc(advi_fit, n_replicates=5)
    assert axes.shape == (2, 2) and not axes[0, 1].axison
    assert (axes[1, 0].get_xlabel(), axes[1, 0].get_ylabel()) == ("x0", "x1")
    assert legend_texts(axes[0, 1]) == ["data", "posterior predictive (5 replicates)"]
    assert len(axes[0, 0].patches) == 6  # five replicates' histograms and the data's
    assert saved_png(axes[0, 0], tmp_path / "ppc.png")

    pc = plot_trace(advi_fit, ["weights", "means"])
    fig = pc.viz["figure"].item()
    assert legend_texts(fig)[:3] == ["weights[0]", "weights[1]", "weights[2]"]
    assert any(a.get_xlabel() == "Draw" for a in fig.axes)
    pc.savefig(tmp_path / "trace.png")
    assert (tmp_path / "trace.png").stat().st_size > 5_000
    fig = plot_rank(nuts_fit).viz["figure"].item()
    assert len(fig.axes) == 3  # one panel per weight
    with pytest.raises(ValueError, match="compares chains; this fit has one"):
        plot_rank(advi_fit)
    with pytest.raises(ValueError, match="single point"):
        plot_trace(map_fit_seed0)
    with pytest.raises(ValueError, match=r"no \['mu'\]"):
        plot_trace(advi_fit, ["mu"])
    plt.close("all")


def test_the_posterior_predictive_replicates_come_from_the_fit(advi_fit, blobs):
    # The replicates' pooled mean and sd per feature are the posterior predictive's,
    # within sampling error (5 x 400 points).
    from bayesgmm.plotting import plot_ppc

    axes = plot_ppc(advi_fit, n_replicates=5, random_state=1)
    heights = [p.get_data()[0] for p in axes[1, 1].patches]  # stairs: (values, edges)
    edges = axes[1, 1].patches[0].get_data()[1]
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    for h in heights[:-1]:  # each replicate: a density, mean near the data's
        assert abs((h * width).sum() - 1) < 1e-9
        assert abs((h * width * centres).sum() - blobs.X[:, 1].mean()) < 0.5
    import matplotlib.pyplot as plt

    plt.close("all")


def test_plot_nonempty_names_its_axes_and_bars():
    import matplotlib.pyplot as plt

    from bayesgmm.plotting import plot_nonempty
    from bayesgmm.selection import SparseMixture

    table = pd.DataFrame({"probability": [0.0, 0.7, 0.3], "prior": [0.5, 0.3, 0.2]},
                         index=pd.Index([1, 2, 3], name="n_nonempty"))
    ax = plot_nonempty(SparseMixture(table, best=2, n_nonempty=None, model=None))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("number of non-empty components K+",
                                                  "probability")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["prior", "posterior"]
    heights = [p.get_height() for p in ax.patches]
    assert heights == [0.5, 0.3, 0.2, 0.0, 0.7, 0.3]  # the prior's bars, then the posterior's
    assert "most probable K+ = 2" in ax.get_title()
    plt.close("all")
