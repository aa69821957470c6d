"""PointEstimate: predictions by Bayes' rule, information criteria, construction from parameters."""

import warnings

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm.ml import PointEstimate


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
