"""The demo command and the plots, end to end (MAP keeps them fast)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

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


def saved_png(ax_or_fig, path):
    import matplotlib.pyplot as plt

    fig = getattr(ax_or_fig, "figure", ax_or_fig)
    fig.savefig(path)
    plt.close(fig)
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000


def test_density_pairs_elbo_disagreement_and_singularity_plots(blobs, tmp_path):
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

    model = BayesianGMM(3, method="map", random_state=0).fit(blobs.X)
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


def test_cli_fit_end_to_end(blobs, tmp_path, capsys):
    csv = tmp_path / "data.csv"
    df = pd.DataFrame(blobs.X[:150], columns=["a", "b"])
    df["name"] = "row"
    df.to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["fit", str(csv), "-k", "3", "--method", "map", "--columns", "a,b",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Fitting 3 components" in printed and "means[0, a]" in printed
    assignments = pd.read_csv(out / "assignments.csv")
    assert len(assignments) == 150 and {"a", "b", "label", "uncertainty"} <= set(assignments)
    assert pd.read_csv(out / "summary.csv", index_col=0).shape[0] == 3 + 2 * 3 * 2
    loaded = BayesianGMM.load(out / "fit.nc")
    np.testing.assert_allclose(loaded.predict_proba(df[["a", "b"]]),
                               assignments[["p_0", "p_1", "p_2"]].to_numpy(), atol=1e-12)
    assert (out / "clusters.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_covariance_structures(blobs, tmp_path, capsys):
    from bayesgmm import cli
    from bayesgmm.covariance import COVARIANCE_TYPES

    assert cli.COVARIANCE_TYPES == list(COVARIANCE_TYPES)
    csv = tmp_path / "data.csv"
    pd.DataFrame(blobs.X[:150], columns=["a", "b"]).to_csv(csv, index=False)
    out = tmp_path / "diag"
    assert main(["fit", str(csv), "-k", "3", "--covariance-type", "diag", "--method", "map",
                 "--out", str(out)]) == 0
    loaded = BayesianGMM.load(out / "fit.nc")
    assert loaded.covariance_type == "diag"
    assert np.all(loaded.covariances_[:, 0, 1] == 0.0)
    capsys.readouterr()
    for bad in (["--covariance-types", "full,VVV"], ["--covariance-types", "diag,diag"],
                ["--jobs", "0"]):
        with pytest.raises(SystemExit) as info:
            main(["select", str(csv), "--max-components", "2", *bad])
        assert info.value.code == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["fit", str(csv), "-k", "2", "--covariance-type", "VVV"])


def test_cli_bad_inputs_exit_with_one_line(tmp_path, capsys):
    import pytest

    good = tmp_path / "good.csv"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "b": [0.0, 1.0, 0.5, 2.0] * 5,
                  "s": ["x"] * 20}).to_csv(good, index=False)
    broken = tmp_path / "broken.csv"
    broken.write_text("a,b\n1,2\n3,4,5,6\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases = [
        (["fit", str(tmp_path / "missing.csv"), "-k", "2"], "no such file"),
        (["fit", str(broken), "-k", "2"], "could not parse"),
        (["fit", str(empty), "-k", "2"], "could not parse"),
        (["fit", str(good), "-k", "2"], "non-numeric column"),
        (["fit", str(good), "-k", "2", "--columns", "a,zz"], "not in"),
        (["fit", str(good), "-k", "30", "--columns", "a,b", "--method", "map"], "components"),
    ]
    for argv, reason in cases:
        assert main(argv + ["--out", str(tmp_path / "o")]) == 2, argv
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    for bad in (["fit", str(good), "-k", "0"], ["fit", str(good)],
                ["fit", str(good), "-k", "2", "--method", "gibbs"]):
        with pytest.raises(SystemExit) as info:
            main(bad)
        assert info.value.code == 2


def test_cli_compare_and_select(blobs, tmp_path, capsys):
    csv = tmp_path / "data.csv"
    pd.DataFrame(blobs.X[:200], columns=["a", "b"]).to_csv(csv, index=False)
    out = tmp_path / "cmp"
    assert main(["compare", str(csv), "-k", "3", "--method", "map", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Bayes vs EM" in printed and "label agreement" in printed
    points = pd.read_csv(out / "comparison.csv")
    assert len(points) == 200 and {"p_bayes", "p_other", "disagree"} <= set(points)
    assert (out / "disagreements.png").read_bytes()[:4] == b"\x89PNG"

    out = tmp_path / "sel"
    assert main(["select", str(csv), "--max-components", "4", "--min-components", "3",
                 "--method", "advi", "--draws", "300", "--sparse", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "suggested K = 3" in printed
    table = pd.read_csv(out / "selection.csv", index_col=0)
    assert list(table.index) == [3, 4]
    assert (out / "selection.png").read_bytes()[:4] == b"\x89PNG"
    # --sparse: one overfitted K=4 fit; the posterior of K+ is written and drawn.
    assert "non-empty components (most probable: 3)" in printed
    nonempty = pd.read_csv(out / "nonempty.csv", index_col=0)
    assert list(nonempty.index) == [1, 2, 3, 4]
    assert nonempty["probability"].sum() == pytest.approx(1.0)
    assert (out / "nonempty.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        main(["select", str(csv), "--max-components", "4", "--sparse", "--concentration", "2"])
    with pytest.raises(SystemExit):  # LOO needs draws: map is not offered
        main(["select", str(csv), "--max-components", "3", "--method", "map"])
