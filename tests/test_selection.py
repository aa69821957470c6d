"""Choosing K by PSIS-LOO, with EM's BIC beside it, and by an overfitted sparse mixture."""

import re
import warnings

import numpy as np
import pytest
import xarray as xr
from helpers import need, without_log_likelihood

from bayesgmm import FitWarning
from bayesgmm.fitting import result as fit_result
from bayesgmm.selection import loo, select_components, sparse_mixture


def check_three_is_chosen(sel):
    t = sel.table
    # K=3 beats K=2 by far more than two standard errors of the paired difference...
    assert t.loc[3, "elpd_loo"] - t.loc[2, "elpd_loo"] > 2 * t.loc[2, "dse"] + 2 * t.loc[3, "dse"]
    # ...and K=4 is not better than K=3 beyond its standard error.
    dse = max(t.loc[3, "dse"], t.loc[4, "dse"])
    assert t.loc[4, "elpd_loo"] - t.loc[3, "elpd_loo"] <= 2 * dse
    assert sel.best == 3
    assert t["bic_em"].idxmin() == 3
    assert "suggested K = 3" in str(sel)


def test_loo_chooses_three_well_separated_clusters_advi(blobs):
    sel = select_components(blobs.X, 4, min_components=2, method="advi", draws=500,
                            random_state=0)
    assert list(sel.table.index) == [2, 3, 4]
    assert {"elpd_loo", "se", "p_loo", "elpd_diff", "dse", "n_bad_pareto_k", "bic_em",
            "aic_em"} <= set(sel.table.columns)
    assert set(sel.fits) == {2, 3, 4}
    check_three_is_chosen(sel)
    # ICL beside BIC, and the classification entropy of each fit beside its LOO.
    from bayesgmm.assignments import assignment_summary
    from bayesgmm.ml import fit_em

    em = fit_em(blobs.X, 3, random_state=0)
    assert sel.table.loc[3, "icl_em"] == pytest.approx(em.icl(), rel=1e-6)  # EM tolerance
    assert (sel.table["icl_em"] >= sel.table["bic_em"]).all()
    assert sel.table.loc[3, "entropy"] == pytest.approx(
        assignment_summary(sel.fits[3], max_draws=200)["entropy"].sum(), rel=1e-12)
    # Well-separated groups: the third split leaves little doubt, a fourth component much.
    assert sel.table.loc[4, "entropy"] > sel.table.loc[3, "entropy"]
    # VI has no R-hat or ESS; every fit converged, and no problem was found.
    assert sel.table["converged"].all() and sel.table["max_rhat"].isna().all()
    assert (sel.table["problems"] == "").all()


def test_a_model_that_did_not_converge_is_never_suggested(monkeypatch, capsys):
    # Two clusters in 1-D: K=2 is the right answer. Its diagnosis is made to report R-hat
    # 1.6 and ESS 3 (what wine's K=4 fit showed): it must leave the suggestion, stop being
    # the reference row, and be named, with the way to refit it.
    import bayesgmm.selection as selection
    from bayesgmm.diagnostics import Problem, diagnose
    from bayesgmm.exceptions import ConvergenceWarning

    def failing(ks):
        def diagnosis(model):
            diag = diagnose(model)
            if model.n_components in ks:
                diag.max_rhat, diag.min_ess_bulk, diag.min_ess_tail = 1.6, 3.0, 5.0
                diag.problems.append(Problem("R-hat", "made up", ConvergenceWarning))
            return diag
        return diagnosis

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-4, 1, (60, 1)), rng.normal(4, 1, (60, 1))])
    kwargs = dict(method="advi", draws=300, random_state=0)
    monkeypatch.setattr(selection, "diagnose", failing({2}))
    with pytest.warns(ConvergenceWarning, match=r"1 model\(s\) did not converge, left out of "
                      r"the suggestion: K=2 \(max R-hat 1.60; min ESS 3; R-hat\)"):
        sel = select_components(X, 3, progressbar=True, **kwargs)
    t = sel.table
    # With progress on, each model is reported as it finishes.
    reported = re.findall(r"bayesgmm: K=(\d) \(gaussian, full\): ELPD (-?[0-9.]+) \+- [0-9.]+, "
                          r"(converged|NOT converged), [0-9.]+ s", capsys.readouterr().err)
    assert [(int(k), c) for k, _, c in reported] == [(1, "converged"), (2, "NOT converged"),
                                                    (3, "converged")]
    np.testing.assert_allclose([float(e) for _, e, _ in reported], t["elpd_loo"], atol=0.051)
    assert t["converged"].tolist() == [True, False, True]
    # K=2 has the highest ELPD: without its failure it would be the reference and the choice.
    assert t["elpd_loo"].idxmax() == 2
    assert sel.best == 3  # the only converged model within two standard errors of the best
    assert t.loc[3, "elpd_diff"] == 0 and t.loc[2, "elpd_diff"] > 0
    assert "Not converged, never suggested: [2]" in str(sel)
    import matplotlib

    matplotlib.use("Agg")
    from bayesgmm.plotting import plot_selection

    ax = plot_selection(sel)
    crossed = [line for line in ax.lines if line.get_label() == "not converged"]
    assert len(crossed) == 1 and crossed[0].get_xdata().tolist() == [2]
    # Words, not matplotlib's format codes ("o-", "s--"), in the labels and the legend.
    assert ax.get_ylabel() == "ELPD, PSIS-LOO (circles; higher is better)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "ELPD +- 2 se", "not converged", "EM BIC", "suggested K = 3"]
    # Nothing converged: nothing is suggested.
    monkeypatch.setattr(selection, "diagnose", failing({1}))
    with pytest.warns(ConvergenceWarning, match="so no K is suggested"):
        none = select_components(X, 1, **kwargs)
    assert none.best is None and "no model converged" in str(none)
    assert plot_selection(none).get_title() == "Choosing K: no model converged"


@pytest.mark.slow
def test_loo_chooses_three_well_separated_clusters_nuts(blobs):
    # K=4 is overfitted: its fit warns (tree depth, R-hat), as it should; the table is what
    # is tested here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        sel = select_components(blobs.X, 4, min_components=2, random_state=0)
    check_three_is_chosen(sel)
    assert (sel.table["n_bad_pareto_k"] == 0).all()


def test_selection_bad_input(blobs):
    with pytest.raises(ValueError, match="must not exceed"):
        select_components(blobs.X, 2, min_components=3)
    with pytest.raises(ValueError, match="posterior draws"):
        select_components(blobs.X, 2, method="map")
    with pytest.raises(ValueError, match="max_components"):
        select_components(blobs.X, 0)


# ---------------------------------------------------------------- the overfitted mixture


def test_count_nonempty_matches_the_exact_distribution():
    # N = 4 points, K = 3 components: enumerate all 3^4 assignments for the exact law of
    # K+, and compare with the Monte Carlo counts (200,000 draws: standard error <= 0.0011,
    # tolerance 0.006 is over five of them).
    import itertools

    from bayesgmm.selection import _count_nonempty

    rng = np.random.default_rng(1)
    resp = rng.dirichlet([0.5, 0.5, 0.5], size=4)  # (N, K)
    exact = np.zeros(4)
    for z in itertools.product(range(3), repeat=4):
        exact[len(set(z))] += np.prod(resp[np.arange(4), z])
    counts = _count_nonempty(np.broadcast_to(resp, (200_000, 4, 3)), rng)
    mc = np.bincount(counts, minlength=4) / counts.size
    np.testing.assert_allclose(mc, exact, atol=0.006)
    # One-hot responsibilities leave nothing to chance.
    hot = np.eye(3)[[0, 2, 2, 0]][None]
    assert _count_nonempty(hot, rng).tolist() == [2]


def test_sparse_mixture_empties_the_extra_components_advi(blobs):
    result = sparse_mixture(blobs.X, 8, method="advi", draws=500, random_state=0)
    probs = result.table["probability"]
    assert list(result.table.index) == list(range(1, 9))
    assert result.n_nonempty.dims == ("chain", "draw") and result.n_nonempty.size == 500
    # Row j is the fraction of the draws in which exactly j components hold points.
    counts = result.n_nonempty.to_numpy().ravel()
    np.testing.assert_allclose(probs.to_numpy(), [np.mean(counts == j) for j in range(1, 9)],
                               rtol=0, atol=1e-12)
    assert result.best == 3 and probs[3] > 0.5
    # Beside it, the prior the concentration implies on K+ (before the data).
    from bayesgmm.clusters import nonempty_prior

    np.testing.assert_allclose(result.table["prior"].to_numpy(),
                               nonempty_prior(len(blobs.X), 8, 0.01).to_numpy(), atol=1e-12)
    # The three clusters sit in three components that hold them; the rest hold ~nothing.
    weights = np.sort(result.model.weights_)[::-1]
    assert weights[:3].sum() > 0.95
    assert "most probable: 3" in str(result)
    # No "empty component" warning (filterwarnings=error would have failed the fit): the
    # sparse prior intends them; diagnostics check the occupied components only.
    diag = result.model.diagnose()
    assert diag.sparse and diag.checked_components.size == 3


def test_sparse_mixture_warns_when_k_is_no_upper_bound(blobs):
    with pytest.warns(FitWarning, match="not an upper bound.*Increase max_components"):
        result = sparse_mixture(blobs.X, 2, method="advi", draws=300, random_state=0)
    assert result.table.loc[2, "probability"] > 0.9


def test_sparse_mixture_bad_input(blobs):
    with pytest.raises(ValueError, match=r"concentration must lie in \(0, 1\)"):
        sparse_mixture(blobs.X, 5, concentration=1.0)
    with pytest.raises(ValueError, match="MAP ill-posed"):
        sparse_mixture(blobs.X, 5, method="map")
    with pytest.raises(ValueError, match="at least 2"):
        sparse_mixture(blobs.X, 1)


@pytest.mark.slow
def test_sparse_mixture_nuts_puts_most_mass_on_three(blobs):
    # The check: K = 8, a sparse Dirichlet(0.01), three well-separated clusters.
    # Empty components' log weights spread over ~1/0.01 = 100 nats, so NUTS hits its
    # maximum tree depth: that warning is expected here (and tested for).
    with pytest.warns(FitWarning) as record:
        result = sparse_mixture(blobs.X, 8, draws=500, tune=500, random_state=0)
    assert any("tree depth" in str(w.message) for w in record)
    assert result.best == 3 and result.table.loc[3, "probability"] > 0.8
    diag = result.model.diagnose()
    assert diag.checked_components.size == 3
    assert not any(p.kind == "empty component" for p in diag.problems)


# ---------------------------------------------------------------- covariance structures


# Slow (two grids of fits, about 2 minutes on 2 cores): the default run checks the serial
# grid's choice through examples/covariance_structures.py (tests/test_examples.py).
@pytest.mark.slow
def test_grid_of_structures_prefers_the_diagonal_truth_in_parallel_as_in_serial():
    # Diagonal truth (unequal variances), D = 4: the full structure must not beat diag
    # beyond two standard errors, spherical is clearly worse, and the simplest adequate
    # model is diag. Two local workers give the same table as the serial run (same seed
    # for every fit; only the timings differ).
    from bayesgmm.datasets import make_mixture

    rng = np.random.default_rng(5)
    covs = rng.uniform(0.3, 2.0, (2, 4))[:, :, None] * np.eye(4)
    data = make_mixture(200, 2, 4, separation=5.0, covariances=covs, random_state=5)
    kwargs = dict(min_components=2, covariance_types=("full", "diag", "spherical"),
                  method="advi", draws=300, random_state=0)
    serial = select_components(data.X, 2, **kwargs)
    t = serial.table
    assert list(t.index) == [("full", 2), ("diag", 2), ("spherical", 2)]
    assert t.loc[("full", 2), "elpd_loo"] - t.loc[("diag", 2), "elpd_loo"] <= \
        2 * t.loc[("full", 2), "dse"]
    assert t.loc[("spherical", 2), "elpd_diff"] < -2 * t.loc[("spherical", 2), "dse"]
    assert serial.best_covariance_type == "diag" and serial.best == 2
    assert "covariance_type = 'diag'" in str(serial)
    # Free parameters per structure: (K-1) + K D + {K D (D+1)/2, K D, K}.
    assert t["n_parameters"].tolist() == [1 + 8 + 20, 1 + 8 + 8, 1 + 8 + 2]
    assert set(serial.fits) == set(t.index)
    import matplotlib

    matplotlib.use("Agg")
    from bayesgmm.plotting import plot_selection

    ax = plot_selection(serial)
    assert len(ax.lines) >= 3 and "diag" in ax.get_title()
    # Two worker processes, a fit each: the two simpler structures, to save a third fit.
    # Their rows must be the serial ones, exactly (NaN where VI has no R-hat or ESS); the
    # columns relative to the best model (elpd_diff, dse) differ, as full is left out.
    parallel = select_components(data.X, 2, n_jobs=2,
                                 **{**kwargs, "covariance_types": ("diag", "spherical")})
    rows = [("diag", 2), ("spherical", 2)]
    columns = [c for c in t.columns if c not in ("seconds", "elpd_diff", "dse")]
    import pandas as pd

    pd.testing.assert_frame_equal(parallel.table.loc[rows, columns], t.loc[rows, columns],
                                  check_exact=True)
    assert parallel.best_covariance_type == "diag"


def test_grid_bad_input(blobs):
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        select_components(blobs.X, 2, covariance_types=("full", "VVV"))
    with pytest.raises(ValueError, match="each structure once"):
        select_components(blobs.X, 2, covariance_types=("diag", "diag"))


def test_loo_of_a_point_estimate_says_it_needs_draws(map_fit):
    """A MAP fit has one draw: a clear error naming the methods that give draws, with the
    stored log-likelihood group or without it (ArviZ and our blocks raised IndexError)."""
    from bayesgmm.fitting.result import as_tree
    from bayesgmm.selection import loo

    with pytest.raises(ValueError, match=r"1 draw\(s\).*method='map'.*'nuts', 'advi'"):
        loo(map_fit)
    without = as_tree(map_fit).copy()
    assert "log_likelihood" in without.children
    del without["log_likelihood"]
    with pytest.raises(ValueError, match=r"1 draw\(s\)"):
        loo(without)


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


@pytest.mark.slow  # 52 s; the default run fits with missing entries in tests/test_missing.py
def test_selection_with_missing_entries_marginalises_them(blobs):
    """20% of the entries missing (no row empty): every fit of the grid keeps the rows with
    holes, marginalised, and LOO and EM's BIC still choose the true K; missing="error"
    refuses them, as in fit."""
    X = blobs.X.copy()
    rng = np.random.default_rng(3)
    holes = rng.random(X.shape) < 0.2
    holes[holes.all(axis=1), 0] = False
    X[holes] = np.nan
    with pytest.warns(UserWarning, match="missing"):
        sel = select_components(X, 3, min_components=2, method="advi", draws=500,
                                random_state=0)
    assert list(sel.table.index) == [2, 3]
    assert sel.best == 3 and sel.table["bic_em"].idxmin() == 3
    stored = sel.fits[3].idata_["observed_data"]["x"]
    assert int(np.isnan(stored).sum()) == int(holes.sum())
    with pytest.raises(ValueError, match="X contains NaN in row"):
        select_components(X, 3, min_components=2, method="advi", missing="error")


def test_a_dask_cluster_gives_the_serial_table_and_draws():
    # A real cluster engine: a dask.distributed LocalCluster of two worker processes, the
    # fits as tasks of its scheduler (joblib's Dask backend on the client). Same seed, same
    # table (timings aside) and the same posterior draws, bit for bit, as the serial run.
    need("distributed")
    import pandas as pd
    from distributed import Client, LocalCluster, get_task_stream

    from bayesgmm.datasets import make_mixture

    data = make_mixture(150, 2, 2, separation=6.0, random_state=11)
    kwargs = dict(method="advi", draws=200, random_state=0)
    serial = select_components(data.X, 2, **kwargs)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream:
            distributed = select_components(data.X, 2, backend=client, **kwargs)
        addresses = set(client.scheduler_info()["workers"])
    # The fits ran on the cluster's workers (not in this process).
    workers = {task["worker"] for task in stream.data}
    assert len(addresses) == 2 and workers and workers <= addresses, (workers, addresses)
    columns = [c for c in serial.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(distributed.table[columns], serial.table[columns],
                                  check_exact=True)
    assert distributed.best == serial.best == 2
    for k in (1, 2):
        np.testing.assert_array_equal(distributed.fits[k].idata_["posterior"]["means"],
                                      serial.fits[k].idata_["posterior"]["means"])
