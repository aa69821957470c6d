"""The demo command and the plots, end to end (MAP keeps them fast)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bayesgmm import BayesianGMM  # noqa: E402
from bayesgmm.cli import main  # noqa: E402
from bayesgmm.plotting import plot_clusters  # noqa: E402


def test_demo_writes_summary_assignments_and_plot(tmp_path, capsys):
    assert main(["demo", "--method", "map", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Adjusted Rand index" in out and "means[0, sepal_length]" in out
    assignments = pd.read_csv(tmp_path / "assignments.csv")
    assert len(assignments) == 150
    np.testing.assert_allclose(assignments[["p_0", "p_1", "p_2"]].sum(axis=1), 1.0, atol=1e-9)
    png = (tmp_path / "clusters.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert pd.read_csv(tmp_path / "summary.csv", index_col=0).shape[0] == 3 + 2 * 3 * 4


def test_plot_clusters_returns_axes_with_ellipses(blobs, tmp_path):
    import matplotlib.pyplot as plt

    model = BayesianGMM(3, method="map", random_state=0).fit(blobs.X)
    fig, ax = plt.subplots()
    assert plot_clusters(model, blobs.X, ax=ax) is ax
    # One draw (MAP): one thin and one thick ellipse per component.
    assert len(ax.patches) == 6
    fig.savefig(tmp_path / "p.png")
    plt.close(fig)
    assert (tmp_path / "p.png").stat().st_size > 5_000


def test_cli_bad_option_exits_nonzero(capsys):
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["demo", "--method", "gibbs"])
    assert info.value.code == 2
