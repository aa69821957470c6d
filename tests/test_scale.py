"""Real sizes: the command line on large CSV files, on-demand log-likelihood and LOO, and
the memory bounds of the per-draw, per-point computations."""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM, FitWarning, fit
from bayesgmm import assignments as assign
from bayesgmm.cli import main
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import diagnose
from bayesgmm.fitting import result as fit_result
from bayesgmm.selection import loo, select_components


def without_log_likelihood(tree: xr.DataTree) -> xr.DataTree:
    """The same fit (same draws) as if it had not stored its log-likelihood."""
    return xr.DataTree.from_dict({name: tree[name].to_dataset() for name in tree.children
                                  if name != "log_likelihood"})


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


# --- the command line above the old crash point (8,300 rows at K=3 and 2,000 draws) ---

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


# --- the log-likelihood when it is not stored ---

def test_not_storing_warns_once_with_the_size_and_the_remedy(blobs, monkeypatch):
    monkeypatch.setattr(fit_result, "LOG_LIKELIHOOD_MAX_BYTES", 1e3)
    with pytest.warns(FitWarning) as record:
        result = fit(blobs.X, 3, method="map", random_state=0)
    messages = [str(w.message) for w in record if "not stored" in str(w.message)]
    # 1 draw x 400 points x 8 bytes = 3.2 kB > 1 kB
    assert len(messages) == 1 and "0 MB" in messages[0]
    assert "store_log_likelihood=True" in messages[0]
    assert "log_likelihood" not in result.children
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own choice: nothing to say
        fit(blobs.X, 3, method="map", store_log_likelihood=False, random_state=0)


def test_log_likelihood_on_demand_matches_the_stored_group(nuts_fit, blobs):
    stored = nuts_fit.idata_["log_likelihood"]["x"]
    bare = without_log_likelihood(nuts_fit.idata_)
    computed = assign.log_likelihood(bare)
    assert computed.dims == stored.dims
    np.testing.assert_allclose(computed.to_numpy(), stored.to_numpy(), rtol=0, atol=1e-10)
    # Given points, in blocks of a few points: the same numbers.
    X = blobs.X[:37]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(assign, "_BLOCK_ELEMENTS", 5 * 2000)
        blocked = assign.log_likelihood(nuts_fit, X)
    np.testing.assert_allclose(blocked.to_numpy(), stored.to_numpy()[:, :, :37], atol=1e-10)
    thinned = assign.log_likelihood(bare, max_draws=100)
    np.testing.assert_allclose(thinned.to_numpy(),
                               stored.sel(draw=thinned["draw"]).to_numpy(), atol=1e-10)


def test_log_likelihood_refuses_a_huge_array_with_advice(nuts_fit, monkeypatch):
    monkeypatch.setattr(assign, "_MAX_ELEMENTS", 1000)
    with pytest.raises(MemoryError, match="max_draws"):
        assign.log_likelihood(without_log_likelihood(nuts_fit.idata_))


def test_loo_without_the_stored_group_equals_arviz_on_the_stored_group(nuts_fit, monkeypatch):
    """Two chains (so ArviZ's relative efficiency is not 1) and blocks of 7 points."""
    import arviz_stats as azs

    expected = azs.loo(nuts_fit.idata_, pointwise=True)
    monkeypatch.setattr(fit_result, "BLOCK_ELEMENTS", 7 * 2000)
    got = loo(without_log_likelihood(nuts_fit.idata_))
    for attr in ("elpd", "se", "p"):
        assert getattr(got, attr) == pytest.approx(getattr(expected, attr), abs=1e-10), attr
    np.testing.assert_allclose(got.elpd_i.to_numpy(), expected.elpd_i.to_numpy(), atol=1e-10)
    np.testing.assert_allclose(got.pareto_k.to_numpy(), expected.pareto_k.to_numpy(),
                               atol=1e-8)
    assert got.good_k == expected.good_k and got.n_data_points == 400


@pytest.mark.slow  # 23 s; the default run checks loo() against ArviZ directly (below)
def test_select_components_without_the_stored_group_gives_arviz_elpd(blobs):
    """The fits keep no log-likelihood; each row's LOO equals ArviZ's on the same draws
    with the group built independently (NumPy, all at once)."""
    import arviz_stats as azs

    from bayesgmm.likelihood import reference

    sel = select_components(blobs.X[:200], 3, min_components=2, method="advi", draws=100,
                            store_log_likelihood=False, random_state=0)
    assert sel.best == 3
    for k in (2, 3):
        tree = sel.fits[k].idata_
        assert "log_likelihood" not in tree.children
        post = tree["posterior"]
        ll = reference.pointwise_log_likelihood_numpy(
            tree["observed_data"]["x"].to_numpy(), post["weights"].to_numpy(),
            post["means"].to_numpy(), np.linalg.cholesky(post["covariances"].to_numpy()))
        full = tree.copy()
        full["log_likelihood"] = xr.Dataset({"x": (("chain", "draw", "obs"), ll)})
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Pareto.*")  # counted in the table
            expected = azs.loo(full, pointwise=True)
        assert sel.table.loc[k, "elpd_loo"] == pytest.approx(expected.elpd, abs=1e-10)
        assert sel.table.loc[k, "se"] == pytest.approx(expected.se, abs=1e-10)
        assert sel.table.loc[k, "p_loo"] == pytest.approx(expected.p, abs=1e-10)


def test_diagnostics_compute_the_log_likelihood_rhat_when_not_stored(nuts_fit):
    expected = diagnose(nuts_fit.idata_).loglik_rhat
    got = diagnose(without_log_likelihood(nuts_fit.idata_)).loglik_rhat
    assert expected is not None and got == pytest.approx(expected, abs=1e-10)


# --- assignments in blocks of points; the co-clustering bound ---

def test_assignment_summary_in_blocks_equals_the_unblocked_computation(nuts_fit, blobs,
                                                                        monkeypatch):
    """Against the summary computed from the full responsibilities array (the old code)."""
    import arviz_stats as azs

    r = assign.responsibilities(nuts_fit)
    mean = r.mean(("chain", "draw")).to_numpy()
    label = mean.argmax(axis=1)
    chosen = r.isel(component=xr.DataArray(label, dims="obs"))
    hdi = azs.hdi(chosen, prob=0.94, dim=["chain", "draw"])
    monkeypatch.setattr(fit_result, "BLOCK_ELEMENTS", 3 * 2000 * 3)  # blocks of 3 points
    table = assign.assignment_summary(nuts_fit)
    np.testing.assert_allclose(table[["p_0", "p_1", "p_2"]].to_numpy(), mean, atol=1e-12)
    np.testing.assert_array_equal(table["label"], label)
    np.testing.assert_allclose(table["probability_lower"], hdi.sel(ci_bound="lower"),
                               atol=1e-12)
    np.testing.assert_allclose(table["probability_upper"], hdi.sel(ci_bound="upper"),
                               atol=1e-12)
    assert adjusted_rand_score(blobs.labels, table["label"]) > 0.95


def test_assignment_summary_works_where_the_full_array_is_refused(nuts_fit):
    """8,500 points x 2,000 draws x 3 components: responsibilities() refuses (408 MB); the
    summary works through blocks of points, its peak memory no larger than for 2,000 points
    (an unblocked computation needs 4.25 times as much)."""
    import tracemalloc

    truth = make_mixture(8_500, 3, 2, separation=6.0, random_state=7)
    with pytest.raises(MemoryError, match="max_draws"):
        assign.responsibilities(nuts_fit, truth.X)
    peaks, tables = [], []
    for n in (2_000, 8_500):
        tracemalloc.start()
        try:
            tables.append(assign.assignment_summary(nuts_fit, truth.X[:n]))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[1] < 1.2 * peaks[0] and peaks[1] < 408e6, np.array(peaks) / 1e6
    table = tables[1]
    assert adjusted_rand_score(truth.labels, table["label"]) > 0.95
    np.testing.assert_allclose(table[["p_0", "p_1", "p_2"]].sum(axis=1), 1.0, atol=1e-12)


def test_coclustering_refuses_a_matrix_beyond_the_bound_with_advice(nuts_fit, blobs,
                                                                     monkeypatch):
    with pytest.raises(MemoryError, match=r"GB.*pass max_obs=4582"):
        assign.coclustering(nuts_fit, np.tile(blobs.X, (13, 1)), max_obs=5000)
    # The bound counts the points actually used: a large max_obs on 400 points is fine.
    cc = assign.coclustering(nuts_fit, max_obs=10_000, max_draws=50)
    assert cc.shape == (400, 400)
    # Blocks of a few draws give the same matrix as one block.
    one = assign.coclustering(nuts_fit, max_obs=100, max_draws=60)
    monkeypatch.setattr(assign, "_COCLUSTER_BLOCK", 100 * 3 * 7)
    np.testing.assert_allclose(assign.coclustering(nuts_fit, max_obs=100, max_draws=60), one,
                               atol=1e-12)


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
    assert main(["fit", str(path), "-k", "3", "--method", "advi", "--out", str(out)]) == 0
    check_assignments(out / "assignments.csv", truth)
    assert main(["compare", str(path), "-k", "3", "--method", "map",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert main(["select", str(path), "--max-components", "3", "--min-components", "3",
                 "--method", "advi", "--out", str(tmp_path / "sel")]) == 0
    assert "suggested K = 3" in capsys.readouterr().out
