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
    assert saved_png(ax, tmp_path / "singular.png")
    with pytest.raises(ValueError, match="singularity_path"):
        plot_singularity_path(table.drop(columns="log_posterior"))
