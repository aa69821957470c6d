"""Where every fit starts: the EM start (subsampled on large data, on several views of the
data), and the optional ordering constraint on one coordinate of the means."""

import numpy as np
import pytest
from helpers import label_means, match
from helpers import two_clusters as _two_clusters
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM
from bayesgmm.datasets import make_mixture
from bayesgmm.fitting.start import Start, best_separated_feature, em_start
from bayesgmm.permutations import gaussian_kl_cost, pivot_permutations
from bayesgmm.standardize import Standardizer


def test_auto_picks_the_feature_that_separates_every_pair():
    # Along x0 the means spread most (variance 16.9) but two of them coincide; along x1
    # every neighbour pair is 4 sds apart.
    start = Start(weights=np.full(3, 1 / 3), means=np.array([[-3.0, -4.0], [-3.1, 4.0],
                                                               [6.0, 0.0]]),
                   covariances=np.repeat(np.eye(2)[None] * 0.5, 3, axis=0))
    assert start.means.var(axis=0).argmax() == 0
    assert best_separated_feature(start) == 1


@pytest.mark.parametrize("method", ["nuts", "map"])
def test_ordered_fit_recovers_truth_with_every_draw_ordered(blobs, method):
    # 1000 draws: at 600, max R-hat over the 24 parameters scattered around 1.01 with the
    # seed (1.002-1.014 over six seeds, at target_accept 0.8 and 0.9 alike).
    model = BayesianGMM(3, method=method, draws=1000, tune=600, order_by="auto",
                        random_state=2).fit(blobs.X)
    post = model.idata_["posterior"]
    assert post.attrs["bayesgmm_order_by"] == "x1"
    along = post["means"].sel(feature="x1").to_numpy()
    assert (np.diff(along, axis=-1) > 0).all()
    # The constraint fixes the labels (the fit stores no relabelling); they are the labels
    # relabelling would give: every draw matched to the EM start keeps its order.
    start = model.idata_["initial_point"]
    cost = gaussian_kl_cost(post["means"].to_numpy().reshape(-1, 3, 2),
                            post["covariances"].to_numpy().reshape(-1, 3, 2, 2),
                            start["means"].to_numpy(), start["covariances"].to_numpy())
    np.testing.assert_array_equal(pivot_permutations(cost),
                                  np.broadcast_to(np.arange(3), (cost.shape[0], 3)))
    emp = label_means(blobs)
    # Same tolerance and reason as the unconstrained fits (helpers.check_recovery): the clusters
    # are 6 sds apart, so the constraint never binds and the posterior is the same.
    np.testing.assert_allclose(model.means_[match(emp, model.means_)], emp, atol=0.1)
    assert (np.diff(model.means_[:, 1]) > 0).all()


def test_ordering_by_name_index_and_bad_values(blobs):
    X = blobs.X[:60]
    a = BayesianGMM(2, method="map", order_by=0, random_state=0).fit(X)
    assert (np.diff(a.means_[:, 0]) > 0).all()
    for bad, msg in [("nope", "not a feature"), (5, "column index"), (True, "column index")]:
        with pytest.raises(ValueError, match=msg):
            BayesianGMM(2, method="map", order_by=bad).fit(X)
    with pytest.raises(ValueError, match="n_components >= 2"):
        BayesianGMM(1, method="map", order_by=0).fit(X)


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


@pytest.mark.parametrize("seed", [0, 3])
def test_em_start_finds_clusters_that_standardising_hides(seed):
    # D=30, N=400 (12 values per parameter, no warning): the start used to run EM on the
    # standardised data only, where the 11-sd gap shrinks to 2 total sd among 29 noise
    # features, and missed the clusters for 4 of 4 seeds. k-means on the user's units is now
    # one of its views.
    from scipy.stats import multivariate_normal

    from bayesgmm.fitting.start import em_start
    from bayesgmm.standardize import Standardizer

    X, y = _two_clusters(400, 30, seed)
    std = Standardizer.fit(X)
    Z = std.transform(X)
    start = em_start(Z, 2, random_state=seed, raw=(X, std))
    logp = np.stack([multivariate_normal(m, c).logpdf(Z)
                     for m, c in zip(start.means, start.covariances, strict=True)], axis=1)
    assert adjusted_rand_score(y, logp.argmax(axis=1)) == 1.0


def test_the_start_ignores_row_order_and_takes_integer_weights_for_repeats():
    # scikit-learn's contract (check_sample_weight_equivalence): integer weights are repeated
    # rows, weight 0 a removed row. The start used to depend on the rows' order and on
    # whether repeats came as rows or as weights, and the fit with it.
    rng = np.random.default_rng(0)
    data = make_mixture(60, 3, 2, separation=2.0, random_state=1).X
    w = rng.integers(0, 4, 60)
    repeated = np.repeat(data, w, axis=0)
    order = rng.permutation(60)

    def start(X, sample_weight=None):
        std = Standardizer.for_structure(X, "full", sample_weight)
        pool = []
        s = em_start(std.transform(X), 3, random_state=0, raw=(X, std), pool=pool,
                     sample_weight=sample_weight)
        return std.means_to_user(s.means), s.weights, pool

    ref_means, ref_weights, ref_pool = start(repeated)
    for X, sw in [(data, w), (data[order], w[order]), (repeated[::-1], None)]:
        means, weights, pool = start(X, sw)
        np.testing.assert_allclose(means, ref_means, atol=1e-8)
        np.testing.assert_allclose(weights, ref_weights, atol=1e-10)
        assert len(pool) == len(ref_pool)
    assert (np.diff(ref_weights) <= 0).all()  # numbered largest first
