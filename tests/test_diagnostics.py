"""Diagnostics: every problem is found when it is there, and only then.

Some cases are real fits made to fail (too few draws, too many components, a short ELBO
run, a stopped optimiser); the rest take a good fit and break one thing in it (one chain's
labels permuted, divergences, a chain in another mode), which tests the detector itself.
"""

import re

import numpy as np
import pytest
import xarray as xr
from helpers import without_log_likelihood

from bayesgmm import (
    BayesianGMM,
    ConvergenceWarning,
    FitWarning,
    LabelSwitchingWarning,
    Priors,
    diagnose,
    relabel,
    summary,
)
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import check


def replaced(dt, group, **variables):
    """A copy of ``dt`` with some variables of one group replaced by new values."""
    tree = {name: dt[name].to_dataset() for name in dt.children}
    ds = tree[group].copy()
    for name, values in variables.items():
        ds[name] = (ds[name].dims, values)
    tree[group] = ds
    return xr.DataTree.from_dict(tree)


def kinds(diag):
    return {p.kind for p in diag.problems}


def test_good_fit_has_no_problem(nuts_fit):
    diag = nuts_fit.diagnose()
    assert diag.ok, str(diag)
    assert diag.n_divergent == 0 and diag.max_rhat <= 1.01
    assert diag.min_ess_bulk >= 200 and diag.loglik_rhat <= 1.01
    np.testing.assert_array_equal(diag.chain_permutations, [[0, 1, 2], [0, 1, 2]])
    assert diag.relabelled_fraction.shape == (2,)
    assert "no problems found" in str(diag)


def test_chains_in_different_permutations_are_detected(nuts_fit):
    dt = nuts_fit.idata_
    post = dt["posterior"]
    swapped = {}
    for name in ("weights", "means", "sigmas", "covariances"):
        values = post[name].to_numpy().copy()
        values[1] = values[1][:, [2, 0, 1]]
        swapped[name] = values
    broken = replaced(dt, "posterior", **swapped)
    diag = diagnose(broken)
    assert "chains in different label permutations" in kinds(diag)
    # Chain 1's component order, matched to chain 0's, is the permutation applied.
    np.testing.assert_array_equal(diag.chain_permutations[1], [1, 2, 0])
    assert diag.max_rhat > 1.5
    # The log-likelihood does not depend on labels: it still says the chains agree.
    assert diag.loglik_rhat <= 1.01
    with pytest.warns(FitWarning) as record:
        check(broken)
    found = {(w.category, str(w.message).split(" ")[0]) for w in record}
    assert (LabelSwitchingWarning, "Chains") in found and (ConvergenceWarning, "Max") in found
    assert any("bayesgmm.relabel(result)" in str(w.message) for w in record)
    assert diagnose(relabel(broken)).ok


def test_chains_in_different_modes_are_detected(nuts_fit):
    dt = nuts_fit.idata_
    ll = dt["log_likelihood"]["x"].to_numpy().copy()
    # Chain 1 explains the data worse by 20 nats in total: another, poorer solution.
    ll[1] -= 20.0 / ll.shape[-1]
    diag = diagnose(replaced(dt, "log_likelihood", x=ll))
    assert "chains in different modes" in kinds(diag)
    assert diag.loglik_rhat > 1.5


def test_divergences_and_tree_depth_are_reported(nuts_fit):
    dt = nuts_fit.idata_
    stats = dt["sample_stats"]
    div = np.zeros(stats["diverging"].shape, dtype=bool)
    div[0, :7] = True
    new = {"diverging": div}
    depth_name = next(n for n in ("reached_max_treedepth", "maxdepth_reached", "tree_depth")
                      if n in stats)
    depth = stats[depth_name].to_numpy().copy()
    depth[:, :50] = 10 if depth_name == "tree_depth" else True  # 5% of draws at the maximum
    new[depth_name] = depth
    broken = replaced(dt, "sample_stats", **new)
    diag = diagnose(broken)
    assert diag.n_divergent == 7
    assert diag.treedepth_fraction == pytest.approx(0.05, abs=0.01)
    assert {"divergences", "tree depth"} <= kinds(diag)
    messages = " ".join(p.message for p in diag.problems)
    assert "target_accept" in messages
    # What a fit shows the user: one warning per problem, each with its advice.
    with pytest.warns(ConvergenceWarning) as record:
        check(broken)
    shown = [str(w.message) for w in record]
    assert any(m.startswith("7 divergent") and "increase target_accept" in m for m in shown)
    assert any(m.startswith("5.0% of draws hit the maximum tree depth") and "Tune longer" in m
               for m in shown)


def test_too_few_draws_report_ess_and_rhat(blobs):
    with pytest.warns(ConvergenceWarning) as record:
        model = BayesianGMM(3, draws=30, tune=30, random_state=4).fit(blobs.X[:120])
    messages = " ".join(str(w.message) for w in record)
    assert "Effective sample size too small" in messages and "Increase draws" in messages
    diag = model.diagnose()
    assert diag.min_ess_bulk < 200 and "ESS" in kinds(diag)


def test_too_many_components_leave_one_empty():
    # Two clusters, four components, a sparse Dirichlet: the MAP empties the extra ones.
    data = make_mixture(200, 2, 2, separation=8.0, random_state=3)
    with pytest.warns(FitWarning, match=r"empty .*reduce n_components"):
        model = BayesianGMM(4, method="map", priors=Priors(weight_concentration=0.1),
                            random_state=0).fit(data.X)
    assert (model.weights_ * 200 < 1).sum() >= 1
    assert "empty component" in kinds(model.diagnose())


def test_short_vi_and_stopped_optimiser_are_reported(blobs):
    with pytest.warns(ConvergenceWarning, match="ELBO has not converged"):
        BayesianGMM(3, method="advi", max_iter=100, draws=50, random_state=0).fit(blobs.X)
    with pytest.warns(ConvergenceWarning, match="optimiser stopped"):
        model = BayesianGMM(3, method="map", max_iter=2, random_state=0).fit(blobs.X)
    assert model.diagnose().optimizer_converged is False


def test_summary_has_rhat_and_ess_for_nuts_only(nuts_fit, map_fit_seed0):
    table = summary(nuts_fit.idata_)
    assert {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"} <= set(table.columns)
    assert len(table) == 3 + 2 * 3 * 2
    assert (table["r_hat"] <= 1.01).all()
    map_table = map_fit_seed0.summary()
    assert list(map_table.columns) == ["mean"] and len(map_table) == len(table)


def test_a_vi_fit_with_wild_elbo_noise_is_reported(blobs):
    # A good mean-field fit's ELBO varies by about sqrt(n_parameters / 2) from draw to draw;
    # one whose approximation strays where the model fits badly (seen: full covariances at
    # D = 20, noise 40,000 times that) must not pass as converged. The noise is injected.
    model = BayesianGMM(3, method="advi", draws=100, random_state=0).fit(blobs.X)
    diag = model.diagnose()
    assert diag.elbo_noise is not None and diag.elbo_noise < 3
    dt = model.idata_
    elbo = dt["variational"]["elbo"].to_numpy().copy()
    elbo[-500:] += np.random.default_rng(0).normal(0, 1e4, 500)
    broken = replaced(dt, "variational", elbo=elbo)
    with pytest.warns(ConvergenceWarning, match="ELBO's draw-to-draw noise is .* method='nuts'"):
        check(broken)
    assert diagnose(broken).elbo_noise > 1000


def test_diagnostics_compute_the_log_likelihood_rhat_when_not_stored(nuts_fit):
    expected = diagnose(nuts_fit.idata_).loglik_rhat
    got = diagnose(without_log_likelihood(nuts_fit.idata_)).loglik_rhat
    assert expected is not None and got == pytest.approx(expected, abs=1e-10)


# ------------------------------------------------------------ checks that know D and the start
def replaced_groups(dt, **groups):
    """A copy of ``dt`` with whole variables of several groups replaced: {group: {name: v}}."""
    out = dt
    for group, variables in groups.items():
        out = replaced(out, group, **variables)
    return out


def moved_weights(dt, posterior_weights, start_weights):
    """``dt`` with every draw's weights set to one vector, and the start's to another."""
    post = dt["posterior"]["weights"].to_numpy()
    w = np.broadcast_to(np.asarray(posterior_weights, float), post.shape).copy()
    return replaced_groups(dt, posterior={"weights": w},
                           initial_point={"weights": np.asarray(start_weights, float)})


def test_min_points_follow_the_covariance_structure():
    from bayesgmm.diagnostics import min_points

    assert [min_points(c, 30) for c in ("full", "diag", "spherical", "tied")] == [31, 2, 2, 1]


def test_a_component_of_a_few_points_in_many_dimensions_is_near_empty(map_fit_seed0):
    # 400 points in D = 2: a full covariance needs 3 points. Component 2 holds 2 (at the start
    # as well): near-empty, and then fewer components is the right advice. Under the old
    # rule (under one observation) it passed.
    dt = moved_weights(map_fit_seed0.idata_, [0.6, 0.395, 0.005], [0.6, 0.395, 0.005])
    diag = diagnose(dt)
    assert diag.min_points == 3
    np.testing.assert_allclose(diag.effective_points, [240, 158, 2])
    assert kinds(diag) == {"empty component"}
    with pytest.warns(FitWarning, match=r"\[2\] are \(nearly\) empty .*effective points \[2\.0\].*"
                      r"fewer than the 3 a full covariance in 2 dimension\(s\) needs.*"
                      r"reduce n_components"):
        check(dt)


@pytest.mark.parametrize(("method", "advice"), [
    ("advi", "method='fullrank_advi', covariance_type='diag'.*or method='nuts'"),
    ("fullrank_advi", "Use method='nuts', or covariance_type='diag'"),
    ("nuts", "Compare with method='map'"),
])
def test_a_component_the_start_fills_and_the_fit_empties_is_a_collapse(
        map_fit_seed0, method, advice):
    # What mean-field ADVI did on breast cancer's 30 features: weights [0.998, 0.002] where
    # EM gave [0.58, 0.42]. The advice must fit the method and never be "fewer components".
    dt = moved_weights(map_fit_seed0.idata_, [0.6, 0.398, 0.002], [0.35, 0.35, 0.3])
    attrs = {**dt["posterior"].attrs, "bayesgmm_method": method}
    dt["posterior"] = dt["posterior"].to_dataset().assign_attrs(attrs)
    diag = diagnose(dt)
    np.testing.assert_array_equal(diag.collapsed, [2])
    assert "empty component" not in kinds(diag)
    with pytest.warns(ConvergenceWarning) as record:
        check(dt)
    (message,) = [str(w.message) for w in record if "far fewer points" in str(w.message)]
    assert "effective points [0.8], against [120.0] at the start" in message
    assert re.search(advice, message) and "Do not reduce n_components" in message
    assert not any("reduce n_components (" in str(w.message) for w in record)


def test_a_component_that_keeps_a_fifth_of_its_start_is_not_a_collapse(map_fit_seed0):
    # The threshold is COLLAPSE_RATIO of the start's weight: 0.3 -> 0.07 passes, 0.05 fails.
    ok = diagnose(moved_weights(map_fit_seed0.idata_, [0.6, 0.33, 0.07], [0.35, 0.35, 0.3]))
    bad = diagnose(moved_weights(map_fit_seed0.idata_, [0.6, 0.35, 0.05], [0.35, 0.35, 0.3]))
    assert ok.collapsed.size == 0 and bad.collapsed.tolist() == [2]


def collinear_data(n=300, seed=0):
    """Two clusters in 4-D; within each, x2 = x0 + x1 up to noise 1% of its sd."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 4))
    base[:, 2] = base[:, 0] + base[:, 1] + 0.014 * rng.normal(size=n)
    base[: n // 2] += 8.0
    return base


def test_collinear_features_are_named_with_remedies():
    X = collinear_data()
    with pytest.warns(FitWarning, match="nearly collinear") as record:
        model = BayesianGMM(2, method="map", random_state=0).fit(X)
    (message,) = [str(w.message) for w in record if "collinear" in str(w.message)]
    # x2 = x0 + x1: the three are named, x3 (independent noise) is not.
    assert message.count("['x0', 'x1', 'x2']") == 2 and "x3" not in message
    for remedy in ("Drop or combine", "covariance_type='diag'", "lkj_eta"):
        assert remedy in message
    diag = model.diagnose()
    assert (diag.min_correlation_eigenvalue < 1e-3).all()
    # Without the dependence the same data pass, and a diagonal fit has no correlations.
    X[:, 2] = np.random.default_rng(1).normal(size=len(X)) + 8.0 * (np.arange(len(X)) < 150)
    assert "collinear features" not in kinds(diagnose(
        BayesianGMM(2, method="map", random_state=0).fit(X)))


def test_breast_cancer_radius_perimeter_and_area_are_flagged_as_collinear():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.frame.iloc[:, :5]  # radius, texture, perimeter, area, smoothness
    with pytest.warns(FitWarning, match="nearly collinear") as record:
        BayesianGMM(2, method="map", random_state=0).fit(X)
    (message,) = [str(w.message) for w in record if "collinear" in str(w.message)]
    for name in ("mean radius", "mean perimeter"):
        assert name in message
    assert "mean smoothness" not in message


def test_ess_is_judged_in_total_against_400(nuts_fit):
    # 2 chains x 400 draws, independent but for one mean, an AR(1) chain with coefficient
    # 0.45 (ESS about 800 x 0.55 / 1.45 = 300): 100 per chain (the old rule) passed it.
    # Vehtari et al. (2021) ask for 400 in total.
    dt = nuts_fit.idata_
    rng = np.random.default_rng(0)
    short = xr.DataTree.from_dict({
        name: (dt[name].to_dataset().isel(draw=slice(0, 400)) if "draw" in dt[name].dims
               else dt[name].to_dataset()) for name in dt.children})
    post = short["posterior"]
    new = {name: post[name].mean(("chain", "draw")).to_numpy()
           + post[name].std(("chain", "draw")).to_numpy() * rng.standard_normal(
               post[name].shape) for name in ("weights", "means", "sigmas")}
    ar = np.zeros((2, 400))
    noise = rng.standard_normal((2, 400))
    for t in range(400):
        ar[:, t] = 0.45 * ar[:, t - 1] + noise[:, t] if t else noise[:, 0]
    new["means"][:, :, 0, 0] = post["means"].to_numpy()[:, :, 0, 0].mean() + 0.1 * ar
    short = replaced(short, "posterior", **new)
    diag = diagnose(short)
    assert 200 < diag.min_ess_bulk < 400 and "ESS" in kinds(diag)
    with pytest.warns(ConvergenceWarning) as record:  # R-hat of these draws may fail too
        check(short)
    assert any("want at least 400 of each in total" in str(w.message) for w in record)


def modes_group(dt, rounds):
    """A ``modes`` group: rounds of (mean log density per chain, restarted per chain)."""
    records = [(c, r, lp, restarted) for r, (lps, flags) in enumerate(rounds)
               for c, (lp, restarted) in enumerate(zip(lps, flags, strict=True))]
    k = dt["posterior"].sizes["component"]
    return xr.Dataset(
        {"chain": ("record", [x[0] for x in records]), "round": ("record", [x[1] for x in records]),
         "mean_log_density": ("record", [x[2] for x in records]),
         "weights": (("record", "component"), np.full((len(records), k), 1 / k)),
         "restarted": ("record", [int(x[3]) for x in records])},
        coords={"record": np.arange(len(records)), "component": np.arange(k)})


@pytest.mark.parametrize(("rounds", "advice"), [
    (None, "Fit with repair_modes=True"),
    ([([0.0, -3.0], [0, 0])], "within 3.0 nats: modes of similar posterior mass"),
    ([([0.0, -90.0], [0, 1]), ([0.0, -25.0], [0, 0])],
     "remain more than 10 nats apart after 1 round\\(s\\) of mode repair \\(1 restart"),
])
def test_chains_in_different_modes_get_advice_that_fits_their_gap(nuts_fit, rounds, advice):
    dt = nuts_fit.idata_
    ll = dt["log_likelihood"]["x"].to_numpy().copy()
    ll[1] -= 20.0 / ll.shape[-1]
    tree = {name: dt[name].to_dataset() for name in dt.children if name != "modes"}
    tree["log_likelihood"] = tree["log_likelihood"].assign(x=(("chain", "draw", "obs"), ll))
    if rounds is not None:
        tree["modes"] = modes_group(dt, rounds)
    broken = xr.DataTree.from_dict(tree)
    with pytest.warns(ConvergenceWarning, match="differs between chains.*" + advice):
        check(broken)
    if rounds is not None:
        assert diagnose(broken).mode_repairs == sum(sum(f) for _, f in rounds)
