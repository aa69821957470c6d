"""The scikit-learn style estimator: summary, predictions, sampling, data frames and units."""

import numpy as np
import pandas as pd
import pytest
from helpers import match
from scipy.special import logsumexp

from bayesgmm import BayesianGMM


def test_summary_is_labelled(nuts_fit, map_fit):
    table = nuts_fit.summary()
    assert "weights[0]" in table.index and "means[2, x1]" in table.index
    assert {"mean", "r_hat", "ess_bulk"} <= set(table.columns)
    np.testing.assert_allclose(table.loc["weights[0]", "mean"], nuts_fit.weights_[0], atol=0.01)
    map_table = map_fit.summary()
    np.testing.assert_allclose(map_table.loc["means[1, x0]", "mean"], map_fit.means_[1, 0])


def test_predict_api(nuts_fit, blobs, nuts_log_joint):
    proba = nuts_fit.predict_proba(blobs.X)
    assert proba.shape == (400, 3)
    # Against SciPy on every draw: the posterior mean of Bayes' rule, its argmax, and the log
    # of the mean predictive density (1e-10: rounding of sums over 2,000 draws).
    r = np.exp(nuts_log_joint - logsumexp(nuts_log_joint, axis=-1, keepdims=True))
    np.testing.assert_allclose(proba, r.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(nuts_fit.predict(blobs.X), r.mean(axis=0).argmax(axis=1))
    # Rows are predicted independently of each other: any order, any subset.
    rows = np.random.default_rng(0).permutation(400)[:50]
    np.testing.assert_allclose(nuts_fit.predict_proba(blobs.X[rows]), proba[rows], rtol=0,
                               atol=1e-12)
    lpd = logsumexp(logsumexp(nuts_log_joint, axis=-1), axis=0) - np.log(r.shape[0])
    dens = nuts_fit.score_samples(blobs.X[:10])
    assert dens.shape == (10,)
    np.testing.assert_allclose(dens, lpd[:10], rtol=1e-10)
    assert nuts_fit.score(blobs.X) == pytest.approx(lpd.mean(), rel=1e-10)
    # Far from every cluster the density is lower than at a cluster centre.
    far = nuts_fit.score_samples(np.array([[50.0, 50.0]]))
    near = nuts_fit.score_samples(nuts_fit.means_[:1])
    assert far[0] < near[0] - 100


def test_sample_follows_the_fit(nuts_fit):
    X1, y1 = nuts_fit.sample(4000, random_state=0)
    X2, _ = nuts_fit.sample(4000, random_state=0)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape == (4000, 2) and set(np.unique(y1)) <= {0, 1, 2}
    # Monte Carlo: label frequencies within 0.03 of the weights (sd ~0.008 at n=4000).
    np.testing.assert_allclose(np.bincount(y1, minlength=3) / 4000, nuts_fit.weights_, atol=0.03)
    for k in range(3):
        np.testing.assert_allclose(X1[y1 == k].mean(axis=0), nuts_fit.means_[k], atol=0.2)


def test_dataframe_feature_names_and_units(blobs, map_fit_seed0):
    df = pd.DataFrame(blobs.X * 1000.0 + 5.0, columns=["height", "width"])
    scaled = BayesianGMM(3, method="map", random_state=0).fit(df)
    base = map_fit_seed0
    assert list(scaled.idata_["posterior"]["feature"].to_numpy()) == ["height", "width"]
    assert list(scaled.feature_names_in_) == ["height", "width"]
    # Fitting on standardised data makes the result unit-free: the MAP moves with the data.
    order = match(base.means_ * 1000.0 + 5.0, scaled.means_)
    np.testing.assert_allclose(scaled.means_[order], base.means_ * 1000.0 + 5.0, rtol=1e-4)
    np.testing.assert_allclose(scaled.covariances_[order], base.covariances_ * 1e6, rtol=1e-3)
