"""Maximum-likelihood baselines: EM, direct L-BFGS, and the singularity path."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import ConvergenceWarning, FitWarning
from bayesgmm.datasets import make_mixture
from bayesgmm.ml import EM_STRATEGIES, PointEstimate, fit_em, fit_ml_gradient
from bayesgmm.ml.gradient import _negloglik
from bayesgmm.ml.gradient import _pack_theta as _pack
from bayesgmm.singularity import singularity_path
from bayesgmm.standardize import Standardizer


@pytest.fixture(scope="module")
def em3(blobs):
    return fit_em(blobs.X, 3, random_state=0)


def _rel(a, b):
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------------------
# EM
# ------------------------------------------------------------------------------------------


def test_em_log_likelihood_is_sklearns(blobs, em3):
    X, n = blobs.X, blobs.X.shape[0]
    # The chosen scikit-learn model, fitted on the standardised data, and its log-likelihood
    # mapped back to the user's scale.
    gm = em3.info["sklearn_model"]
    Z = (X - em3.info["center"]) / em3.info["scale"]
    mapped = gm.score_samples(Z).sum() - n * np.log(em3.info["scale"]).sum()
    assert _rel(em3.log_likelihood, mapped) < 1e-10
    # The same mixture as a scikit-learn model on the user's scale.
    user = em3.to_sklearn()
    assert _rel(em3.log_likelihood, user.score_samples(X).sum()) < 1e-10
    assert _rel(em3.log_likelihood, user.score(X) * n) < 1e-10
    np.testing.assert_allclose(user.predict_proba(X), em3.responsibilities, atol=1e-10)
    assert em3.converged and em3.info["n_iter"] > 0 and em3.method == "em"


def test_em_equals_sklearn_fit_from_the_same_start(blobs):
    # One k-means start on standardised data, with and without the wrapper.
    X, n = blobs.X, blobs.X.shape[0]
    est = fit_em(X, 3, n_init=7, n_candidates=1, random_state=3)
    start = est.info["starts"][6]
    assert (start["strategy"], start["view"]) == ("kmeans", "standardized")
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    gm = GaussianMixture(3, covariance_type="full", reg_covar=1e-6, max_iter=1000, tol=1e-8,
                         random_state=start["seed"]).fit(Z)
    direct = gm.score(Z) * n - n * np.log(X.std(axis=0)).sum()
    assert _rel(start["log_likelihood"], direct) < 1e-10


def test_em_cycles_through_strategies_with_distinct_seeds(blobs):
    est = fit_em(blobs.X[:200], 2, n_init=10, n_candidates=2, random_state=1)
    starts = est.info["starts"]
    assert {s["strategy"] for s in starts} == set(EM_STRATEGIES)
    assert {s["view"] for s in starts if s["strategy"] == "hierarchical"} == {
        "svd", "standardized", "raw"}
    assert len({s["seed"] for s in starts}) == 10
    again = fit_em(blobs.X[:200], 2, n_init=10, n_candidates=2, random_state=1)
    assert again.log_likelihood == est.log_likelihood
    assert [s["seed"] for s in again.info["starts"]] == [s["seed"] for s in starts]


def test_em_beats_default_kmeans_where_it_stops_short():
    # Breast cancer, first 5 features, K=4: scikit-learn's default (10 k-means starts on the
    # raw data) ends at -4253.50 for every seed tried (-4252.61 with tol=1e-8); the mixed
    # starts reach -4246.12.
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data[:, :5]
    n = X.shape[0]
    default = GaussianMixture(4, covariance_type="full", n_init=10, random_state=0).fit(X)
    ours = fit_em(X, 4, random_state=0)
    assert ours.log_likelihood > default.score(X) * n + 5.0
    assert not ours.info["degenerate_starts"] or ours.log_likelihood > -4247


@pytest.mark.parametrize("refine_rows", [None, 6000])
def test_fit_start_on_a_subsample_then_all_rows(monkeypatch, refine_rows):
    # Above 3,000 rows the fits' EM start (fit_em's strategies) runs on a subsample, then
    # EM refines on all rows (or, above _EM_REFINE_ROWS, on a subsample of that many): it
    # must land on the truth (5 clusters, 2,400 points each on average: weights within
    # 0.01, means within 0.05 feature-sd).
    from bayesgmm.fitting.start import em_start
    from bayesgmm.ml import em

    if refine_rows is not None:
        monkeypatch.setattr(em, "EM_REFINE_ROWS", refine_rows)

    truth = make_mixture(12_000, 5, 5, separation=6.0, random_state=0)
    std = Standardizer.fit(truth.X)
    start = em_start(std.transform(truth.X), 5, random_state=0)
    means = std.means_to_user(start.means)
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in truth.means]
    assert sorted(order) == list(range(5))
    np.testing.assert_allclose(start.weights[order], truth.weights, atol=0.01)
    # Refined on fewer rows, the means' sampling error grows as 1 / sqrt(rows).
    tol = 0.05 * np.sqrt(12_000 / (refine_rows or 12_000))
    assert (np.abs(means[order] - truth.means) / truth.X.std(axis=0)).max() < tol


@pytest.mark.slow
def test_minibatch_advi_from_the_start_that_used_to_merge_clusters():
    # N=1e5, D=5, K=5: the best of five k-means starts merged two clusters and split
    # another (mean error 3.8); from fit_em's start minibatch ADVI recovers the means.
    from bayesgmm import BayesianGMM

    truth = make_mixture(100_000, 5, 5, separation=6.0, random_state=0)
    model = BayesianGMM(5, method="advi", batch_size=1024, draws=200,
                        random_state=0).fit(truth.X)
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in truth.means]
    assert sorted(order) == list(range(5))
    assert np.abs(model.means_[order] - truth.means).max() < 0.1


def test_em_sets_a_degenerate_optimum_aside():
    # Iris has duplicated rows. With one run per start, start 4 (random_from_data, seeded
    # from random_state=0) ends on a component with a singular covariance at -178.52, above
    # the best proper solution; the best non-degenerate start (-180.1855, R's mclust VVV K=3
    # value) is kept.
    from bayesgmm.datasets import load_iris

    X, _ = load_iris()
    with pytest.warns(FitWarning, match="degenerate solution.*kept instead") as record:
        est = fit_em(X, 3, n_candidates=1, random_state=0)
    assert "Bayesian fit" in str(record[0].message)
    assert est.info["degenerate_starts"] == [4]
    assert est.info["best_degenerate_log_likelihood"] > est.log_likelihood
    assert est.log_likelihood == pytest.approx(-180.1855, abs=1e-3)
    assert not est.info["starts"][est.info["best_start"]]["degenerate"]


def test_em_all_starts_degenerate_warns(blobs):
    # A tiny isolated cluster of 2 points: every start puts a component on it, with a rank-1
    # covariance in 2-D (an infinite likelihood but for reg_covar).
    far = np.array([[80.0, 80.0], [80.0, 80.5]])
    X = np.concatenate([blobs.X[:100], far])
    with pytest.warns(FitWarning, match="All 3 EM starts"):
        est = fit_em(X, 3, n_init=3, random_state=0)
    assert len(est.info["degenerate_starts"]) == 3


# ------------------------------------------------------------------------------------------
# Gradient ML
# ------------------------------------------------------------------------------------------


def test_gradient_matches_finite_differences(blobs):
    rng = np.random.default_rng(0)
    Z = (blobs.X[:60] - blobs.X.mean(axis=0)) / blobs.X.std(axis=0)
    k, d = 3, 2
    theta = rng.normal(scale=0.5, size=(k - 1) + k * d + k * d * (d + 1) // 2)
    f, g = _negloglik(theta, Z, k)
    h = 1e-6
    fd = np.array([(_negloglik(theta + h * e, Z, k)[0] - _negloglik(theta - h * e, Z, k)[0])
                   / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    # and the value is the mixture's log-likelihood computed independently
    weights = np.exp(np.r_[0.0, theta[:2]]) / np.exp(np.r_[0.0, theta[:2]]).sum()
    means = theta[2:8].reshape(3, 2)
    packed = theta[8:].reshape(3, 3)
    chols = np.zeros((3, 2, 2))
    chols[:, 0, 0], chols[:, 1, 0], chols[:, 1, 1] = (np.exp(packed[:, 0]), packed[:, 1],
                                                      np.exp(packed[:, 2]))
    dens = sum(w * multivariate_normal(m, c @ c.T).pdf(Z)
               for w, m, c in zip(weights, means, chols, strict=True))
    assert _rel(-f, np.log(dens).sum()) < 1e-12


def test_pack_round_trip(em3):
    from bayesgmm.ml.gradient import _unpack_theta as _unpack

    chols = np.linalg.cholesky(em3.covariances)
    w, m, c = _unpack(_pack(em3.weights, em3.means, chols), 3, 2)
    np.testing.assert_allclose(w, em3.weights, rtol=1e-12)
    np.testing.assert_allclose(m, em3.means, rtol=1e-12)
    np.testing.assert_allclose(c, chols, rtol=1e-12, atol=1e-14)


def test_gradient_ml_reaches_em_from_the_same_start(blobs, em3):
    X, n = blobs.X, blobs.X.shape[0]
    # From EM's optimum: stays there.
    ml = fit_ml_gradient(X, 3, init=em3)
    assert ml.converged and not ml.info["diverged"] and ml.method == "ml_gradient"
    assert _rel(ml.log_likelihood, em3.log_likelihood) < 1e-6
    # From one k-means start, both methods end at the same log-likelihood.
    ml = fit_ml_gradient(X, 3, random_state=1)
    start = ml.info["init"]
    gm = GaussianMixture(3, covariance_type="full", reg_covar=0.0, tol=1e-12, max_iter=5000,
                         weights_init=start["weights"], means_init=start["means"],
                         precisions_init=np.linalg.inv(start["covariances"])).fit(X)
    assert _rel(ml.log_likelihood, gm.score(X) * n) < 1e-6
    assert ml.info["log_likelihood_path"][-1] == pytest.approx(ml.log_likelihood, rel=1e-12)
    # A dict start works too.
    ml2 = fit_ml_gradient(X, 3, init=start)
    assert _rel(ml2.log_likelihood, ml.log_likelihood) < 1e-9


def test_collapse_is_reported_as_divergence(blobs, em3):
    X = blobs.X
    means, covs = em3.means.copy(), em3.covariances.copy()
    means[0] = X[5]
    covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
    init = {"weights": em3.weights, "means": means, "covariances": covs}
    with pytest.warns(ConvergenceWarning, match="unbounded.*component 0.*Bayesian fit"):
        est = fit_ml_gradient(X, 3, init=init, min_scale=1e-4)
    assert est.converged is False
    info = est.info
    assert info["diverged"] is True and info["component"] == 0
    assert info["min_scale"] < 1e-4 and 5 in info["points"]
    for value in (est.weights, est.means, est.covariances, est.responsibilities,
                  info["log_likelihood_path"]):
        assert np.isfinite(value).all()
    assert np.isfinite([est.log_likelihood, est.bic, est.aic]).all()
    # The log-likelihood was still rising when it stopped.
    path = np.array(info["log_likelihood_path"])
    assert path[-1] > path[-20]


# ------------------------------------------------------------------------------------------
# Singularity path
# ------------------------------------------------------------------------------------------


def test_singularity_path(blobs):
    X = blobs.X[:200]
    d = X.shape[1]
    table = singularity_path(X, 4, 7, random_state=0)
    assert list(table.columns) == ["scale", "log_likelihood", "log_posterior"]
    assert len(table) == 30 and table.attrs["component"] == 3
    ll = table.log_likelihood.to_numpy()
    lp = table.log_posterior.to_numpy()
    s = table.scale.to_numpy()
    # The likelihood is unbounded: about +D per unit of -log(scale) near the singularity
    # (here 11.4 over scales 1 -> 1e-4, at D = 2).
    assert ll[-1] - ll[0] > 5 * d
    slope = (ll[-1] - ll[-10]) / np.log(s[-10] / s[-1])
    assert slope == pytest.approx(d, rel=1e-2)
    # The log posterior falls: monotonically, and by thousands over the last 10 scales.
    assert np.all(np.diff(lp[-10:]) < 0)
    assert lp[-10] - lp[-1] > 100
    assert np.isfinite(ll).all() and np.isfinite(lp).all()


def test_singularity_path_bad_input(blobs):
    with pytest.raises(ValueError, match=r"point_index must be a row of X, in \[0, 50\)"):
        singularity_path(blobs.X[:50], 2, 50)
    with pytest.raises(ValueError, match="point_index"):
        singularity_path(blobs.X[:50], 2, -1)
    with pytest.raises(ValueError, match="n_components >= 2"):
        singularity_path(blobs.X[:50], 1, 0)
    with pytest.raises(ValueError, match="scales"):
        singularity_path(blobs.X[:50], 2, 0, scales=[1.0, -1.0])


# ------------------------------------------------------------------------------------------
# Input checks and the PointEstimate
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit", [fit_em, fit_ml_gradient])
def test_bad_input(fit, blobs):
    X = blobs.X[:50].copy()
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit(X, 2)
    with pytest.raises(ValueError, match="n_components"):
        fit(blobs.X[:50], 0)
    with pytest.raises(ValueError, match="2-D"):
        fit(blobs.X[:50, 0], 2)


def test_bad_init_and_options(blobs):
    X = blobs.X[:50]
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5], "means": np.zeros((3, 2)),
                                    "covariances": np.stack([np.eye(2)] * 2)})
    with pytest.raises(ValueError, match="positive definite"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5], "means": np.zeros((2, 2)),
                                    "covariances": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match="missing"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5]})
    with pytest.raises(TypeError, match="init must be"):
        fit_ml_gradient(X, 2, init="kmeans")
    with pytest.raises(ValueError, match="min_scale"):
        fit_ml_gradient(X, 2, min_scale=0.0)
    with pytest.raises(ValueError, match="reg_covar"):
        fit_em(X, 2, reg_covar=-1.0)
    with pytest.raises(ValueError, match="n_init"):
        fit_em(X, 2, n_init=0)


def test_responsibilities_are_bayes_rule(blobs, em3):
    X = blobs.X
    resp = em3.responsibilities
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-12)
    joint = np.column_stack([w * multivariate_normal(m, c).pdf(X) for w, m, c in
                             zip(em3.weights, em3.means, em3.covariances, strict=True)])
    np.testing.assert_allclose(resp, joint / joint.sum(axis=1, keepdims=True), atol=1e-10)
    Xnew = X[:7] + 0.3
    joint_new = np.column_stack([w * multivariate_normal(m, c).pdf(Xnew) for w, m, c in
                                 zip(em3.weights, em3.means, em3.covariances, strict=True)])
    np.testing.assert_allclose(em3.predict_proba(Xnew),
                               joint_new / joint_new.sum(axis=1, keepdims=True), atol=1e-10)
    np.testing.assert_allclose(em3.score_samples(Xnew), np.log(joint_new.sum(axis=1)),
                               rtol=1e-10)
    np.testing.assert_array_equal(em3.predict(Xnew), joint_new.argmax(axis=1))
    assert em3.score_samples(X).sum() == pytest.approx(em3.log_likelihood, rel=1e-12)


def test_information_criteria(em3, blobs):
    n = blobs.X.shape[0]
    p = em3.n_parameters
    assert p == 2 + 6 + 9 and em3.n_components == 3
    assert em3.bic == pytest.approx(-2 * em3.log_likelihood + p * np.log(n), rel=1e-12)
    assert em3.aic == pytest.approx(-2 * em3.log_likelihood + 2 * p, rel=1e-12)


def test_from_parameters_round_trip(em3, blobs):
    est = PointEstimate.from_parameters(blobs.X, em3.weights, em3.means, em3.covariances)
    assert est.log_likelihood == pytest.approx(em3.log_likelihood, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert est.to_sklearn().score(blobs.X) == pytest.approx(
            em3.log_likelihood / blobs.X.shape[0], rel=1e-12)


# ------------------------------------------------------------------------------------------
# Covariance structures (issue 8): full, diag, spherical, tied
# ------------------------------------------------------------------------------------------

COV_TYPES = ("full", "diag", "spherical", "tied")


def _formula(k, d, covariance_type):
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
           "tied": d * (d + 1) // 2}[covariance_type]
    return (k - 1) + k * d + cov


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_n_parameters_matches_formula_and_sklearn(covariance_type):
    from bayesgmm.covariance import n_parameters as _n_parameters

    for k, d in [(1, 1), (1, 4), (2, 1), (2, 3), (3, 2), (4, 5), (5, 10)]:
        sk = GaussianMixture(n_components=k, covariance_type=covariance_type)
        sk.means_ = np.zeros((k, d))
        assert _n_parameters(k, d, covariance_type) == _formula(k, d, covariance_type)
        assert _n_parameters(k, d, covariance_type) == sk._n_parameters()
    # and the hand-written values at K = 3, D = 2
    assert {t: _formula(3, 2, t) for t in COV_TYPES} == {
        "full": 2 + 6 + 9, "diag": 2 + 6 + 6, "spherical": 2 + 6 + 3, "tied": 2 + 6 + 3}


def _structured_truth(covariance_type, d=3, seed=11):
    """Three separated components in D dimensions whose covariances have the structure."""
    rng = np.random.default_rng(seed)
    k = 3
    means = np.zeros((k, d))
    means[:, 0] = [-6.0, 0.0, 6.0]
    means[:, 1] = [0.0, 6.0, 0.0]
    if covariance_type == "full":
        covs = []
        for _ in range(k):
            a = rng.normal(scale=0.5, size=(d, d))
            covs.append(a @ a.T + 0.5 * np.eye(d))
        covs = np.array(covs)
    elif covariance_type == "tied":
        a = rng.normal(scale=0.5, size=(d, d))
        covs = np.broadcast_to(a @ a.T + 0.5 * np.eye(d), (k, d, d)).copy()
    elif covariance_type == "diag":
        covs = rng.uniform(0.3, 2.0, size=(k, d))[:, :, None] * np.eye(d)
    else:
        covs = np.array([0.4, 1.0, 1.8])[:, None, None] * np.eye(d)
    return make_mixture(400, k, d, weights=[1.0, 1.0, 1.0], means=means, covariances=covs,
                        random_state=seed)


def _match(est_means, true_means):
    """Index of the estimated component nearest to each true mean (a permutation)."""
    order = [int(np.argmin(np.linalg.norm(est_means - m, axis=1))) for m in true_means]
    assert sorted(order) == list(range(len(true_means)))
    return order


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_em_recovers_each_covariance_structure(covariance_type):
    truth = _structured_truth(covariance_type)
    X, n = truth.X, truth.X.shape[0]
    k, d = truth.means.shape
    est = fit_em(X, k, n_init=3, random_state=0, covariance_type=covariance_type)
    assert est.covariance_type == covariance_type and est.covariances.shape == (k, d, d)
    order = _match(est.means, truth.means)
    # Means within 0.35 (about 3 standard errors of a mean of ~133 points with sd <= 1.4).
    np.testing.assert_allclose(est.means[order], truth.means, atol=0.35)
    covs = est.covariances[order]
    # Covariances within 35 % of the truth's scale (entrywise, relative to the largest entry).
    scale = np.abs(truth.covariances).max(axis=(1, 2))[:, None, None]
    assert (np.abs(covs - truth.covariances) / scale).max() < 0.35
    # The structure holds exactly.
    off = ~np.eye(d, dtype=bool)
    if covariance_type in ("diag", "spherical"):
        assert np.all(covs[:, off] == 0.0)
    if covariance_type == "spherical":
        diag = np.diagonal(covs, axis1=1, axis2=2)
        assert np.all(diag == diag[:, :1])
    if covariance_type == "tied":
        assert np.all(covs == covs[0])
    if covariance_type == "full":
        assert np.abs(covs[:, off]).max() > 0.05
    # Parameter count, BIC and AIC.
    p = _formula(k, d, covariance_type)
    assert est.n_parameters == p
    assert est.bic == pytest.approx(-2 * est.log_likelihood + p * np.log(n), rel=1e-12)
    assert est.aic == pytest.approx(-2 * est.log_likelihood + 2 * p, rel=1e-12)
    # The scikit-learn model has the same structure, shapes, likelihood and BIC.
    gm = est.to_sklearn()
    shape = {"full": (k, d, d), "diag": (k, d), "spherical": (k,), "tied": (d, d)}
    assert gm.covariance_type == covariance_type
    assert gm.covariances_.shape == gm.precisions_cholesky_.shape == shape[covariance_type]
    assert gm.precisions_.shape == shape[covariance_type]
    assert gm._n_parameters() == p
    assert _rel(gm.bic(X), est.bic) < 1e-8
    assert _rel(gm.aic(X), est.aic) < 1e-8
    np.testing.assert_allclose(gm.predict_proba(X), est.responsibilities, atol=1e-10)
    # No other start of scikit-learn's own fit on the user's scale does better.
    sk = GaussianMixture(k, covariance_type=covariance_type, n_init=3, tol=1e-8,
                         max_iter=1000, random_state=0).fit(X)
    assert est.log_likelihood >= sk.score(X) * n - 1e-4 * n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bic_prefers_the_diagonal_truth_at_d10(seed):
    # K = 2 in D = 10 with diagonal covariances that differ between the components and
    # between the features: "diag" (41 parameters) beats "full" (131: the likelihood gain of
    # the 90 extra correlations is far smaller than their BIC penalty), "tied" (76) and
    # "spherical" (23: it cannot fit variances ranging over 0.3 to 3).
    rng = np.random.default_rng(100 + seed)
    d = 10
    means = np.zeros((2, d))
    means[1, :3] = 4.0
    covs = rng.uniform(0.3, 3.0, size=(2, d))[:, :, None] * np.eye(d)
    X = make_mixture(400, 2, d, weights=[1.0, 1.0], means=means, covariances=covs,
                     random_state=seed).X
    bic = {t: fit_em(X, 2, n_init=2, random_state=0, covariance_type=t).bic
           for t in COV_TYPES}
    # Over 20 seeds (100..119) diag won every time, by at least 224 BIC units.
    assert min(bic, key=bic.get) == "diag"
    assert all(bic[t] - bic["diag"] > 100 for t in ("full", "spherical", "tied"))


def test_degeneracy_depends_on_the_structure(blobs):
    # Two isolated points in 2-D: a component on them has a singular full covariance (2 < D + 1
    # points), but a proper diagonal one (2 points differing in both coordinates).
    far = np.array([[80.0, 80.0], [80.6, 80.9]])
    X = np.concatenate([blobs.X[:100], far])
    with pytest.warns(FitWarning, match="All 2 EM starts"):
        full = fit_em(X, 3, n_init=2, random_state=0)
    assert len(full.info["degenerate_starts"]) == 2
    diag = fit_em(X, 3, n_init=2, random_state=0, covariance_type="diag")
    assert diag.info["degenerate_starts"] == []
    assert np.isclose(diag.weights * X.shape[0], 2.0, atol=1e-3).any()
    # One isolated point: degenerate for "diag", not for "tied" (a shared covariance).
    X1 = np.concatenate([blobs.X[:100], far[:1]])
    with pytest.warns(FitWarning, match="explains"):
        fit_em(X1, 3, n_init=2, random_state=0, covariance_type="diag")
    tied = fit_em(X1, 3, n_init=2, random_state=0, covariance_type="tied")
    assert tied.info["degenerate_starts"] == []


def test_spherical_is_spherical_on_the_users_scale(blobs):
    # Features in very different units: the spheres are spheres in the user's units.
    X = blobs.X * np.array([1.0, 100.0])
    est = fit_em(X, 3, n_init=2, random_state=0, covariance_type="spherical")
    diag = np.diagonal(est.covariances, axis1=1, axis2=2)
    assert np.all(diag == diag[:, :1])
    assert _rel(est.to_sklearn().bic(X), est.bic) < 1e-8


def test_bad_covariance_type(blobs):
    X = blobs.X[:50]
    for bad in ("diagonal", "Full", None, 3):
        with pytest.raises(ValueError, match="'full', 'diag', 'spherical', 'tied'"):
            fit_em(X, 2, covariance_type=bad)
    em = fit_em(X, 2, n_init=1, random_state=0)
    with pytest.raises(ValueError, match="'diag' structure"):
        PointEstimate.from_parameters(X, em.weights, em.means, em.covariances,
                                      covariance_type="diag")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        PointEstimate.from_parameters(X, em.weights, em.means, em.covariances,
                                      covariance_type="VVV")


# ------------------------------------------------------------------------------------------
# Gradient ML with each covariance structure
# ------------------------------------------------------------------------------------------


def _n_cov(k, d, covariance_type):
    return {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
            "tied": d * (d + 1) // 2}[covariance_type]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gradient_matches_finite_differences_per_structure(blobs, covariance_type):
    from bayesgmm.ml.gradient import _nll_and_grad
    from bayesgmm.ml.gradient import _unpack_theta as _unpack

    rng = np.random.default_rng(1)
    Z = (blobs.X[:60] - blobs.X.mean(axis=0)) / blobs.X.std(axis=0)
    k, d = 3, 2
    theta = rng.normal(scale=0.5, size=(k - 1) + k * d + _n_cov(k, d, covariance_type))
    f, g = _negloglik(theta, Z, k, covariance_type)
    h = 1e-6
    fd = np.array([(_negloglik(theta + h * e, Z, k, covariance_type)[0]
                    - _negloglik(theta - h * e, Z, k, covariance_type)[0]) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    # The value is the log-likelihood of the mixture _unpack describes, whose factors have
    # the structure, and _pack inverts _unpack.
    weights, means, chols = _unpack(theta, k, d, covariance_type)
    covs = chols @ np.swapaxes(chols, 1, 2)
    dens = sum(w * multivariate_normal(m, c).pdf(Z)
               for w, m, c in zip(weights, means, covs, strict=True))
    assert _rel(-f, np.log(dens).sum()) < 1e-12
    off = ~np.eye(d, dtype=bool)
    if covariance_type in ("diag", "spherical"):
        assert np.all(covs[:, off] == 0.0)
    if covariance_type == "spherical":
        assert np.all(covs[:, 0, 0] == covs[:, 1, 1])
    if covariance_type == "tied":
        assert np.all(covs == covs[0])
    np.testing.assert_allclose(_pack(weights, means, chols, covariance_type), theta,
                               rtol=1e-12, atol=1e-14)
    # One compiled function per (K, D, covariance_type).
    assert _nll_and_grad(k, d, covariance_type) is _nll_and_grad(k, d, covariance_type)
    if covariance_type != "full":
        assert _nll_and_grad(k, d, covariance_type) is not _nll_and_grad(k, d, "full")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gradient_ml_agrees_with_em_per_structure(blobs, covariance_type):
    # Features in very different units: "spherical" must use fit_em's common scale for the
    # two optima to coincide.
    X = blobs.X * np.array([1.0, 100.0])
    # EM converged tightly and without reg_covar, so that its solution is the optimum.
    em = fit_em(X, 3, n_init=2, random_state=0, covariance_type=covariance_type, tol=1e-12,
                reg_covar=0.0)
    ml = fit_ml_gradient(X, 3, init=em, covariance_type=covariance_type)
    assert ml.converged and not ml.info["diverged"]
    assert ml.covariance_type == covariance_type and ml.covariances.shape == (3, 2, 2)
    assert _rel(ml.log_likelihood, em.log_likelihood) < 1e-6
    # Means within 1e-4 feature standard deviations.
    assert np.abs((ml.means - em.means) / X.std(axis=0)).max() < 1e-4
    assert ml.n_parameters == em.n_parameters == _formula(3, 2, covariance_type)
    assert _rel(ml.bic, em.bic) < 1e-6
    assert _rel(ml.to_sklearn().bic(X), ml.bic) < 1e-8  # the structure holds exactly


def test_gradient_ml_reduces_the_start_to_the_structure(blobs, em3):
    X = blobs.X
    w, covs = em3.weights, em3.covariances
    expected = {
        "diag": np.diagonal(covs, axis1=1, axis2=2)[:, :, None] * np.eye(2),
        "spherical": np.diagonal(covs, axis1=1, axis2=2).mean(axis=1)[:, None, None]
        * np.eye(2),
        "tied": np.broadcast_to(np.einsum("k,kij->ij", w, covs), (3, 2, 2)),
    }
    for covariance_type, start in expected.items():
        ml = fit_ml_gradient(X, 3, init=em3, covariance_type=covariance_type, max_iter=2000)
        np.testing.assert_allclose(ml.info["init"]["covariances"], start, rtol=1e-10)
        init = {"weights": w, "means": em3.means, "covariances": covs}
        ml2 = fit_ml_gradient(X, 3, init=init, covariance_type=covariance_type, max_iter=2000)
        assert ml2.log_likelihood == ml.log_likelihood


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_collapse_is_reported_for_restricted_structures(blobs, em3, covariance_type):
    X = blobs.X
    means, covs = em3.means.copy(), em3.covariances.copy()
    means[0] = X[5]
    covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
    init = {"weights": em3.weights, "means": means, "covariances": covs}
    with pytest.warns(ConvergenceWarning, match="unbounded.*component 0.*Bayesian fit"):
        est = fit_ml_gradient(X, 3, init=init, min_scale=1e-4,
                              covariance_type=covariance_type)
    assert est.converged is False and est.covariance_type == covariance_type
    info = est.info
    assert info["diverged"] is True and info["component"] == 0
    assert info["min_scale"] < 1e-4 and 5 in info["points"]
    assert np.isfinite([est.log_likelihood, est.bic, est.aic]).all()
    path = np.array(info["log_likelihood_path"])
    assert path[-1] > path[-20]


def test_gradient_ml_bad_covariance_type(blobs):
    X = blobs.X[:50]
    for bad in ("diagonal", "Full", None, 3):
        with pytest.raises(ValueError, match="'full', 'diag', 'spherical', 'tied'"):
            fit_ml_gradient(X, 2, covariance_type=bad)
