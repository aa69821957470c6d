"""The command line (fit, compare, select, demo) end to end: what it writes, its one-line
errors, large CSV files (MAP keeps most cases fast)."""

import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from bayesgmm import BayesianGMM, FitWarning  # noqa: E402
from bayesgmm.cli import main  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402
from bayesgmm.fitting import result as fit_result  # noqa: E402


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


def test_cli_bad_option_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--method", "gibbs"])
    assert info.value.code == 2
    assert_usage_error(capsys, r"^bayesgmm demo: error: argument --method: invalid choice: "
                               r"'gibbs'")


def assert_usage_error(capsys, pattern):
    """argparse's error (after SystemExit(2)): one line on stderr that matches ``pattern``."""
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), (pattern, err)


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
    for bad, pattern in (
            (["--covariance-types", "full,VVV"], r"argument --covariance-types: 'full,VVV': "
                                                 r"give comma-separated structures from full, "
                                                 r"diag, spherical, tied"),
            (["--covariance-types", "diag,diag"], r"'diag,diag' names a structure twice"),
            (["--jobs", "0"], r"argument --jobs: must be at least 1, got 0")):
        with pytest.raises(SystemExit) as info:
            main(["select", str(csv), "--max-components", "2", *bad])
        assert info.value.code == 2
        assert_usage_error(capsys, r"^bayesgmm select: error: .*" + pattern)
    with pytest.raises(SystemExit) as info:
        main(["fit", str(csv), "-k", "2", "--covariance-type", "VVV"])
    assert info.value.code == 2
    assert_usage_error(capsys, r"^bayesgmm fit: error: argument --covariance-type: invalid "
                               r"choice: 'VVV'")


def test_cli_bad_inputs_exit_with_one_line(tmp_path, capsys):
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
    for bad, pattern in (
            (["fit", str(good), "-k", "0"], r"argument --components/-k: must be at least 1, "
                                            r"got 0"),
            (["fit", str(good)], r"the following arguments are required: --components/-k"),
            (["fit", str(good), "-k", "2", "--method", "gibbs"], r"argument --method: invalid "
                                                                 r"choice: 'gibbs'")):
        with pytest.raises(SystemExit) as info:
            main(bad)
        assert info.value.code == 2
        assert_usage_error(capsys, r"^bayesgmm fit: error: " + pattern)


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
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["select", str(csv), "--max-components", "4", "--sparse", "--concentration", "2"])
    assert info.value.code == 2
    assert_usage_error(capsys, r"^bayesgmm select: error: argument --concentration: must lie "
                               r"in \(0, 1\), got 2")
    with pytest.raises(SystemExit) as info:  # LOO needs draws: map is not offered
        main(["select", str(csv), "--max-components", "3", "--method", "map"])
    assert info.value.code == 2
    assert_usage_error(capsys, r"^bayesgmm select: error: argument --method: 'map' is one "
                               r"point, and PSIS-LOO needs posterior draws")


# --- large CSV files, above the old crash point (8,300 rows at K=3 and 2,000 draws) ---


def write_csv(tmp_path, n, name="data.csv"):
    truth = make_mixture(n, 3, 2, separation=6.0, random_state=0)
    path = tmp_path / name
    pd.DataFrame(truth.X, columns=["a", "b"]).to_csv(path, index=False)
    return path, truth


def check_assignments(path, truth):
    table = pd.read_csv(path)
    assert len(table) == truth.X.shape[0]
    probs = table[["p_0", "p_1", "p_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert adjusted_rand_score(truth.labels, table["label"]) > 0.95


def test_cli_fit_and_compare_at_10000_rows(tmp_path, capsys):
    path, truth = write_csv(tmp_path, 10_000)
    out = tmp_path / "fit"
    assert main(["fit", str(path), "-k", "3", "--method", "map", "--out", str(out)]) == 0
    for name in ("fit.nc", "summary.csv", "assignments.csv", "clusters.png"):
        assert (out / name).stat().st_size > 0, name
    check_assignments(out / "assignments.csv", truth)
    loaded = BayesianGMM.load(out / "fit.nc")
    assert loaded.idata_["observed_data"]["x"].shape == (10_000, 2)
    out = tmp_path / "compare"
    assert main(["compare", str(path), "-k", "3", "--method", "map", "--out", str(out)]) == 0
    points = pd.read_csv(out / "comparison.csv")
    assert len(points) == 10_000
    assert adjusted_rand_score(truth.labels, points["label_bayes"]) > 0.95
    assert "not written" not in capsys.readouterr().err


def test_cli_select_computes_loo_without_the_stored_log_likelihood(tmp_path, monkeypatch,
                                                                    capsys):
    """With nothing stored (the threshold lowered to 0 bytes), select still ranks K."""
    path, _ = write_csv(tmp_path, 300)
    monkeypatch.setattr(fit_result, "LOG_LIKELIHOOD_MAX_BYTES", 0)
    out = tmp_path / "sel"
    assert main(["select", str(path), "--max-components", "3", "--min-components", "3",
                 "--method", "advi", "--draws", "100", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(out / "selection.csv", index_col=0)
    assert list(table.index) == [3] and np.isfinite(table[["elpd_loo", "se"]].to_numpy()).all()
    assert 0 < table.loc[3, "p_loo"] < 3 * table.loc[3, "n_parameters"]
    # The fit-time "not stored" warning is not passed on: select needs no stored group.
    assert "not stored" not in captured.err + captured.out


def test_cli_optional_output_that_fails_is_reported_and_the_rest_written(
        blobs, tmp_path, monkeypatch, capsys):
    import bayesgmm.plotting

    def broken(*args, **kwargs):
        raise RuntimeError("plotting exploded")

    monkeypatch.setattr(bayesgmm.plotting, "plot_density", broken)
    path = tmp_path / "data.csv"
    pd.DataFrame(blobs.X[:200], columns=["a", "b"]).to_csv(path, index=False)
    out = tmp_path / "out"
    (out).mkdir()
    (out / "clusters.png").write_bytes(b"earlier")
    assert main(["fit", str(path), "-k", "3", "--method", "map", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "clusters.png not written" in err and "plotting exploded" in err
    for name in ("fit.nc", "summary.csv", "assignments.csv"):
        assert (out / name).stat().st_size > 0, name
    # A failed write leaves the earlier file as it was, and no partial file behind.
    assert (out / "clusters.png").read_bytes() == b"earlier"
    assert not list(out.glob(".*partial*"))


def test_cli_columns_with_commas_are_read_as_a_csv_record(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-4, 1, (60, 2)), rng.normal(4, 1, (60, 2))])
    path = tmp_path / "data.csv"
    pd.DataFrame({"a,b": X[:, 0], "c": X[:, 1], "d": rng.normal(size=120)}).to_csv(
        path, index=False)
    out = tmp_path / "out"
    assert main(["fit", str(path), "-k", "2", "--method", "map", "--columns", '"a,b", c',
                 "--out", str(out)]) == 0
    table = pd.read_csv(out / "assignments.csv")
    assert {"a,b", "c"} <= set(table.columns) and "d" not in table.columns
    np.testing.assert_array_equal(table["a,b"], X[:, 0])
    capsys.readouterr()
    for columns, reason in (('"a,b",zz', "['zz'] not in"), ("c,c", "more than once"),
                            ('"a,b', "could not read --columns"), ("a,b", "['a', 'b'] not in")):
        assert main(["fit", str(path), "-k", "2", "--method", "map", "--columns", columns,
                     "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1, (columns, err)


def test_cli_select_refuses_map_with_the_reason(tmp_path, capsys):
    path = tmp_path / "data.csv"
    pd.DataFrame({"a": np.arange(10.0)}).to_csv(path, index=False)
    with pytest.raises(SystemExit) as info:
        main(["select", str(path), "--max-components", "2", "--method", "map"])
    assert info.value.code == 2
    assert "PSIS-LOO needs posterior draws" in capsys.readouterr().err


# --- the true defaults on 100,000 rows ---

@pytest.mark.slow
def test_cli_default_settings_on_100000_rows(tmp_path, capsys):
    """NUTS, 2 chains x (1000 tune + 1000 draws), on 1e5 rows: fit, compare and select."""
    path, truth = write_csv(tmp_path, 100_000)
    out = tmp_path / "fit"
    not_stored = (r"log-likelihood not stored: 2 chain\(s\) x 1000 draws x 100000 points "
                  r"take 1600 MB")
    with pytest.warns(FitWarning, match=not_stored):
        assert main(["fit", str(path), "-k", "3", "--out", str(out)]) == 0
    for name in ("fit.nc", "summary.csv", "assignments.csv", "clusters.png"):
        assert (out / name).stat().st_size > 0, name
    check_assignments(out / "assignments.csv", truth)
    with pytest.warns(FitWarning, match=not_stored):
        assert main(["compare", str(path), "-k", "3", "--out", str(tmp_path / "cmp")]) == 0
    assert len(pd.read_csv(tmp_path / "cmp" / "comparison.csv")) == 100_000
    assert main(["select", str(path), "--max-components", "3", "--min-components", "2",
                 "--out", str(tmp_path / "sel")]) == 0
    assert "suggested K = 3" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_fast_methods_on_100000_rows(tmp_path, capsys):
    path, truth = write_csv(tmp_path, 100_000)
    out = tmp_path / "fit"
    # 1000 draws x 1e5 points would take 800 MB: the fit says it did not store them.
    with pytest.warns(FitWarning, match="log-likelihood not stored: 1 chain"):
        assert main(["fit", str(path), "-k", "3", "--method", "advi", "--out", str(out)]) == 0
    check_assignments(out / "assignments.csv", truth)
    assert main(["compare", str(path), "-k", "3", "--method", "map",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert main(["select", str(path), "--max-components", "3", "--min-components", "3",
                 "--method", "advi", "--out", str(tmp_path / "sel")]) == 0
    assert "suggested K = 3" in capsys.readouterr().out


def test_cli_main_turns_keyboard_interrupt_into_status_130(monkeypatch, tmp_path, capsys):
    from bayesgmm import cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_fit", interrupted)
    assert cli.main(["fit", str(tmp_path / "x.csv"), "-k", "2"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "bayesgmm: interrupted\n"
    assert captured.out == ""


def test_cli_missing_cells_are_refused_or_marginalised(tmp_path, capsys):
    truth = make_mixture(300, 2, 2, random_state=1)
    X = truth.X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.15] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    csv = tmp_path / "holes.csv"
    pd.DataFrame(X, columns=["a", "b"]).to_csv(csv, index=False)  # NaN: empty cells
    assert main(["fit", str(csv), "-k", "2", "--method", "map", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing values" in err and "--missing marginalize" in err
    out = tmp_path / "fit"
    with pytest.warns(UserWarning, match="missing entries"):  # the fit's DataWarning
        status = main(["fit", str(csv), "-k", "2", "--method", "map", "--missing",
                       "marginalize", "--out", str(out)])
    assert status == 0
    # --columns must not let the holes through either (the name `missing` was once reused).
    assert main(["fit", str(csv), "-k", "2", "--method", "map", "--columns", "b,a", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing values in column(s) ['b', 'a']" in err and "--missing marginalize" in err
    assignments = pd.read_csv(out / "assignments.csv")
    assert len(assignments) == 300
    # The clusters differ along "a": rows that observe it are assigned as in complete data.
    seen = ~np.isnan(X[:, 0])
    assert adjusted_rand_score(truth.labels[seen], assignments["label"][seen]) > 0.95
    assert np.isnan(BayesianGMM.load(out / "fit.nc").idata_["observed_data"]["x"]).sum() \
        == np.isnan(X).sum()
    # A column with nothing in it is refused, with what to do.
    pd.DataFrame({"a": X[:, 0], "b": np.nan}).to_csv(csv, index=False)
    assert main(["fit", str(csv), "-k", "2", "--method", "map", "--missing", "marginalize",
                 "--out", str(out)]) == 2
    assert "every entry missing in column(s) ['b']" in capsys.readouterr().err


def test_cli_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesgmm {version('bayesgmm')}"


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_cli_reads_the_separator_from_the_header(tmp_path, sep):
    """Semicolons, tabs and bars are found from the header; numbers come back exactly."""
    from bayesgmm.cli import _read_csv

    truth = make_mixture(40, 2, 3, random_state=3)
    frame = pd.DataFrame(truth.X, columns=["x;1" if sep != ";" else "x 1", "y", "z"])
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False, sep=sep)
    read = _read_csv(str(path), None)
    assert list(read.columns) == list(frame.columns)
    np.testing.assert_array_equal(read.to_numpy(), truth.X)  # repr round trip: exact
    assert list(_read_csv(str(path), "z,y", sep=sep).columns) == ["z", "y"]


def test_cli_separator_and_decimal_errors(tmp_path, capsys):
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1,5;2,25\n3;4,5\n-1,5;2e-3\n")
    assert main(["fit", str(semi), "-k", "1", "--method", "map", "--sep", ","]) == 2
    assert capsys.readouterr().err.strip() == (
        f"bayesgmm: error: {semi} parses as one column, 'a;b', with the separator ',', but "
        f"its header holds semicolons: pass --sep ';'")
    assert main(["fit", str(semi), "-k", "1", "--method", "map"]) == 2
    err = capsys.readouterr().err
    assert "non-numeric column(s) ['a', 'b']" in err and "pass --decimal ," in err
    from bayesgmm.cli import _read_csv

    values = _read_csv(str(semi), None, decimal=",").to_numpy()
    np.testing.assert_array_equal(values, [[1.5, 2.25], [3, 4.5], [-1.5, 2e-3]])
    assert main(["fit", str(semi), "-k", "1", "--sep", ",", "--decimal", ","]) == 2
    assert "the separator and the decimal mark are both ','" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", str(semi), "-k", "1", "--sep", "ab"])
    assert_usage_error(capsys, r"argument --sep: 'ab': give one character")


def test_cli_compare_with_true_labels(tmp_path, capsys):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = ["sl", "sw", "pl", "pw"]
    frame.insert(2, "species", iris.target_names[iris.target])  # text, between data columns
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "cmp"
    assert main(["compare", str(path), "-k", "3", "--method", "map", "--labels", "species",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    points = pd.read_csv(out / "comparison.csv")
    assert (points["label_true"] == frame["species"]).all()
    ari_bayes = adjusted_rand_score(points["label_true"], points["label_bayes"])
    ari_other = adjusted_rand_score(points["label_true"], points["label_other"])
    assert ari_bayes > 0.8  # iris by 3 full Gaussians: about 0.9
    assert f"ARI vs true labels: Bayes {ari_bayes:.3f}, EM {ari_other:.3f}" in printed
    assert main(["compare", str(path), "-k", "3", "--labels", "species", "--columns",
                 "sl,species"]) == 2
    assert "true labels (--labels) and cannot also be data" in capsys.readouterr().err
    assert main(["compare", str(path), "-k", "3", "--labels", "kind"]) == 2
    assert "--labels 'kind' is not a column" in capsys.readouterr().err
    frame.loc[[4, 9], "species"] = None
    frame.to_csv(path, index=False)
    assert main(["compare", str(path), "-k", "3", "--labels", "species"]) == 2
    assert "is empty in data row(s) 5, 10" in capsys.readouterr().err
