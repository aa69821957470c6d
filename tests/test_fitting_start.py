"""The optional ordering constraint on one coordinate of the means."""

import numpy as np
import pytest
from helpers import label_means, match

from bayesgmm import BayesianGMM
from bayesgmm.fitting.start import Start, best_separated_feature


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
    np.testing.assert_array_equal(model.idata_["relabeling"]["permutation"].to_numpy(),
                                  np.broadcast_to(np.arange(3), along.shape))
    emp = label_means(blobs)
    # Same tolerance and reason as the unconstrained fits in test_estimator: the clusters
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
