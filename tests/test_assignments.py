"""Posterior assignments, co-clustering and the per-draw log-likelihood, within memory bounds."""

import numpy as np
import pytest
import xarray as xr
from helpers import MODERATE, independent_responsibilities, mixtures, without_log_likelihood
from hypothesis import given, settings
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score

from bayesgmm import assignments as assign
from bayesgmm.assignments import assignment_summary, coclustering, responsibilities
from bayesgmm.datasets import make_mixture
from bayesgmm.fitting import result as fit_result


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


def test_assignment_summary(nuts_fit, blobs, nuts_log_joint):
    table = assignment_summary(nuts_fit)
    probs = table[["p_0", "p_1", "p_2"]].to_numpy()
    # Against SciPy: Bayes' rule in every one of the 2,000 draws, averaged; the label, its
    # probability, the uncertainty and the entropy follow from that mean (1e-10: rounding of
    # sums over 2,000 draws).
    r = np.exp(nuts_log_joint - logsumexp(nuts_log_joint, axis=-1, keepdims=True))
    expected = r.mean(axis=0)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(table["label"], expected.argmax(axis=1))
    np.testing.assert_allclose(table["probability"], expected.max(axis=1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(table["uncertainty"], 1 - expected.max(axis=1), rtol=0,
                               atol=1e-10)
    entropy = -np.sum(expected * np.log(np.where(expected > 0, expected, 1.0)), axis=1)
    np.testing.assert_allclose(table["entropy"], entropy, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(probs, nuts_fit.predict_proba(blobs.X), atol=1e-12)
    assert (table["probability_lower"] <= table["probability_upper"]).all()
    assert table["probability_lower"].between(0, 1).all()
    # Well-separated blobs: nearly every point is assigned with near certainty.
    assert (table["uncertainty"] < 0.05).mean() > 0.95


def test_coclustering_is_label_free_and_matches_direct_computation(nuts_fit, blobs,
                                                                   nuts_log_joint):
    X = blobs.X[:60]
    m = coclustering(nuts_fit, X, max_draws=None).to_numpy()
    # Against the mean over all 2,000 draws of r_s r_s^T, with each draw's responsibilities
    # r_s by SciPy (Bayes' rule): the off-diagonal entries to 1e-10 (sums over 2,000 draws);
    # P(z_i = z_i) = 1 is a definition, not a computation.
    log_joint = nuts_log_joint[:, :60]
    r = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    direct = np.einsum("snk,smk->nm", r, r) / r.shape[0]
    off = ~np.eye(60, dtype=bool)
    np.testing.assert_allclose(m[off], direct[off], rtol=0, atol=1e-10)
    # Label-free: a posterior whose components are permuted at random in every draw gives
    # the same matrix.
    post = nuts_fit.idata_["posterior"].to_dataset()
    rng = np.random.default_rng(0)
    perm = np.argsort(rng.random(post["weights"].shape), axis=-1)  # (chain, draw, component)
    shuffled = post.copy()
    for name in ("weights", "means", "sigmas", "covariances"):
        values = post[name].to_numpy()
        index = perm.reshape(perm.shape + (1,) * (values.ndim - 3))
        shuffled[name] = (post[name].dims, np.take_along_axis(values, index, axis=2))
    assert not np.array_equal(shuffled["means"].to_numpy(), post["means"].to_numpy())
    tree = xr.DataTree.from_dict({"posterior": shuffled,
                                  "observed_data": nuts_fit.idata_["observed_data"].to_dataset()})
    np.testing.assert_allclose(coclustering(tree, X, max_draws=None).to_numpy(), m, rtol=0,
                               atol=1e-12)
    # Known truth: the clusters are well separated, so pairs of one true cluster are almost
    # surely together and pairs of different ones almost surely apart.
    same = blobs.labels[:60, None] == blobs.labels[None, :60]
    assert m[same & off].min() > 0.9 and m[~same].max() < 0.1
    # Subsetting for large N keeps memory bounded and says which points it used.
    sub = coclustering(nuts_fit, max_obs=50, max_draws=20, random_state=0)
    assert sub.shape == (50, 50)
    assert np.all(np.diff(sub["obs"].to_numpy()) > 0)


def posterior_tree(X, w, means, chols):
    """A fit's DataTree holding only the posterior (one chain) and the data."""
    covs = chols @ np.swapaxes(chols, -1, -2)
    post = xr.Dataset({
        "weights": (("chain", "draw", "component"), w[None]),
        "means": (("chain", "draw", "component", "feature"), means[None]),
        "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covs[None]),
    })
    return xr.DataTree.from_dict({"posterior": post,
                                  "observed_data": xr.Dataset({"x": (("obs", "feature"), X)})})


@settings(max_examples=40, deadline=None)
@given(mixtures(max_n=10))
def test_coclustering_is_finite_and_a_probability(m):
    # Extreme mixtures (log densities beyond -1e16): no overflow, no NaN.
    cc = coclustering(posterior_tree(*m)).to_numpy()
    assert np.isfinite(cc).all()
    assert (cc >= -1e-12).all() and (cc <= 1 + 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(mixtures(max_n=10, **MODERATE))
def test_coclustering_is_the_mean_of_r_r_transposed(m):
    # The off-diagonal entries against the mean over draws of r_s r_s^T, with r_s computed
    # independently from the posterior's covariances (helpers.independent_responsibilities);
    # 1e-6 is what float64 guarantees on these mixtures (measured: 3e-10 at most over 2,000
    # examples).
    X, w, means, chols = m
    tree = posterior_tree(X, w, means, chols)
    cc = coclustering(tree).to_numpy()
    covs = tree["posterior"]["covariances"].to_numpy()[0]
    r = independent_responsibilities(X, w, means, np.linalg.cholesky(covs))
    direct = np.einsum("snk,smk->nm", r, r) / r.shape[0]
    off = ~np.eye(X.shape[0], dtype=bool)
    np.testing.assert_allclose(cc[off], direct[off], rtol=0, atol=1e-6)


def test_log_likelihood_on_demand_matches_the_stored_group(nuts_fit, blobs):
    stored = nuts_fit.idata_["log_likelihood"]["x"]
    bare = without_log_likelihood(nuts_fit.idata_)
    computed = assign.log_likelihood(bare)
    assert computed.dims == stored.dims
    np.testing.assert_allclose(computed.to_numpy(), stored.to_numpy(), rtol=0, atol=1e-10)
    # Given points, in blocks of a few points: the same numbers.
    X = blobs.X[:37]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fit_result, "BLOCK_ELEMENTS", 5 * 2000)
        blocked = assign.log_likelihood(nuts_fit, X)
    np.testing.assert_allclose(blocked.to_numpy(), stored.to_numpy()[:, :, :37], atol=1e-10)
    thinned = assign.log_likelihood(bare, max_draws=100)
    np.testing.assert_allclose(thinned.to_numpy(),
                               stored.sel(draw=thinned["draw"]).to_numpy(), atol=1e-10)


def test_log_likelihood_refuses_a_huge_array_with_advice(nuts_fit, monkeypatch):
    monkeypatch.setattr(assign, "_MAX_ELEMENTS", 1000)
    with pytest.raises(MemoryError, match="max_draws"):
        assign.log_likelihood(without_log_likelihood(nuts_fit.idata_))


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
