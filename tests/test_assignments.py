"""Posterior assignments, co-clustering, and the comparison with a point estimate."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import BayesianGMM, compare_assignments
from bayesgmm.assignments import assignment_summary, coclustering, responsibilities
from bayesgmm.datasets import make_mixture
from bayesgmm.ml import PointEstimate


def point_estimate(gm: GaussianMixture, X, order=None) -> PointEstimate:
    """A PointEstimate from a fitted scikit-learn mixture, components in ``order``."""
    order = np.arange(gm.n_components) if order is None else np.asarray(order)
    ll = float(gm.score(X) * X.shape[0])
    return PointEstimate(weights=gm.weights_[order], means=gm.means_[order],
                         covariances=gm.covariances_[order], log_likelihood=ll,
                         responsibilities=gm.predict_proba(X)[:, order], bic=gm.bic(X),
                         aic=gm.aic(X), converged=bool(gm.converged_), method="em")


def scipy_responsibilities(X, w, means, covs):
    dens = np.stack([w[k] * multivariate_normal(means[k], covs[k]).pdf(X)
                     for k in range(w.size)], axis=1)
    return dens / dens.sum(axis=1, keepdims=True)


def test_responsibilities_match_scipy(nuts_fit, blobs):
    r = responsibilities(nuts_fit, max_draws=20)
    assert r.dims == ("chain", "draw", "obs", "component")
    assert r.shape == (2, 10, 400, 3)
    post = nuts_fit.idata_["posterior"]
    for c in range(2):
        for d in r["draw"].to_numpy()[:3]:
            p = post.sel(chain=c, draw=d)
            expected = scipy_responsibilities(blobs.X, p["weights"].to_numpy(),
                                              p["means"].to_numpy(),
                                              p["covariances"].to_numpy())
            np.testing.assert_allclose(r.sel(chain=c, draw=d).to_numpy(), expected,
                                       rtol=1e-10, atol=1e-12)


def test_assignment_summary(nuts_fit, blobs):
    table = assignment_summary(nuts_fit)
    probs = table[["p_0", "p_1", "p_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs, nuts_fit.predict_proba(blobs.X), atol=1e-12)
    np.testing.assert_array_equal(table["label"], probs.argmax(axis=1))
    np.testing.assert_allclose(table["uncertainty"], 1 - probs.max(axis=1), atol=1e-12)
    assert (table["entropy"] >= -1e-12).all() and (table["entropy"] <= np.log(3) + 1e-12).all()
    assert (table["probability_lower"] <= table["probability_upper"]).all()
    assert table["probability_lower"].between(0, 1).all()
    # Well-separated blobs: nearly every point is assigned with near certainty.
    assert (table["uncertainty"] < 0.05).mean() > 0.95


def test_coclustering_is_label_free_and_matches_direct_computation(nuts_fit, blobs):
    X = blobs.X[:60]
    cc = coclustering(nuts_fit, X, max_draws=40)
    m = cc.to_numpy()
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m), 1.0)
    assert ((m >= -1e-12) & (m <= 1 + 1e-12)).all()
    r = responsibilities(nuts_fit, X, max_draws=40).to_numpy().reshape(-1, 60, 3)
    direct = np.einsum("snk,smk->nm", r, r) / r.shape[0]
    np.fill_diagonal(direct, 1.0)
    np.testing.assert_allclose(m, direct, atol=1e-12)
    same = blobs.labels[:60, None] == blobs.labels[None, :60]
    assert m[same].min() > 0.9 and m[~same].max() < 0.1
    # Subsetting for large N keeps memory bounded and says which points it used.
    sub = coclustering(nuts_fit, max_obs=50, max_draws=20, random_state=0)
    assert sub.shape == (50, 50)
    assert np.all(np.diff(sub["obs"].to_numpy()) > 0)


def two_overlapping(n, random_state):
    """Two unit-variance clusters 3.5 sds apart: some points lie between them."""
    return make_mixture(n, 2, 2, weights=[0.5, 0.5], means=[[-1.75, 0.0], [1.75, 0.0]],
                        covariances=np.stack([np.eye(2)] * 2), random_state=random_state)


@pytest.fixture(scope="module")
def overlapping():
    truth = two_overlapping(400, 4)
    # The max R-hat over all parameters needs ESS in the high hundreds to stay under 1.01
    # reliably on this slow-mixing posterior (600 draws per chain once gave 1.014).
    model = BayesianGMM(2, draws=1000, tune=1000, random_state=0).fit(truth.X)
    gm = GaussianMixture(2, covariance_type="full", n_init=5, random_state=0).fit(truth.X)
    return truth, model, gm


def test_posterior_is_less_confident_than_em_between_clusters(overlapping):
    truth, model, gm = overlapping
    test = two_overlapping(400, 5)
    result = compare_assignments(model, point_estimate(gm, truth.X), truth.X,
                                 y_true=truth.labels, X_test=test.X)
    m = result.metrics
    # EM's plug-in probabilities ignore parameter uncertainty; the posterior averages over
    # it, so near the boundary EM claims > 90% where the posterior does not.
    assert m["n_confident_other_not_bayes"] > 0
    assert m["n_confident_other_not_bayes"] > m["n_confident_bayes_not_other"]
    # Measured: 8 such points, none the other way; labels agree on all but one point.
    assert m["agreement"] > 0.95 and m["ari"] > 0.9
    assert 0 < m["mean_abs_diff"] <= m["max_abs_diff"] <= 1
    assert m["ari_bayes_true"] > 0.5 and m["ari_other_true"] > 0.5
    assert np.isfinite(m["test_lpd_bayes"]) and np.isfinite(m["test_lpd_other"])
    pts = result.points
    assert pts["confident_other_not_bayes"].sum() == m["n_confident_other_not_bayes"]
    assert pts["disagree"].mean() == pytest.approx(1 - m["agreement"])
    text = str(result)
    assert "Bayes vs EM" in text and "adjusted Rand index" in text


def test_comparison_does_not_depend_on_the_other_fits_labels(overlapping):
    truth, model, gm = overlapping
    a = compare_assignments(model, point_estimate(gm, truth.X), truth.X)
    b = compare_assignments(model, point_estimate(gm, truth.X, order=[1, 0]), truth.X)
    assert a.metrics["matching"] != b.metrics["matching"]
    for key in ("agreement", "ari", "mean_abs_diff", "max_abs_diff",
                "n_confident_other_not_bayes"):
        assert a.metrics[key] == pytest.approx(b.metrics[key], abs=1e-12), key
    np.testing.assert_allclose(a.points.to_numpy(dtype=float), b.points.to_numpy(dtype=float),
                               atol=1e-12)


def test_compare_rejects_bad_input(overlapping, nuts_fit):
    truth, model, gm = overlapping
    with pytest.raises(ValueError, match="same number of components"):
        compare_assignments(nuts_fit, point_estimate(gm, truth.X), truth.X)
    with pytest.raises(TypeError, match="PointEstimate"):
        compare_assignments(model, "em", truth.X)
    with pytest.raises(ValueError, match="one label per row"):
        compare_assignments(model, point_estimate(gm, truth.X), truth.X, y_true=[0, 1])
