"""The NumPy reference likelihood (bayesgmm.likelihood.reference) against SciPy, and its
properties on random mixtures (hypothesis)."""

import numpy as np
from helpers import (
    MODERATE,
    independent_responsibilities,
    mixtures,
    random_params,
    scipy_loglik,
)
from hypothesis import given, settings
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.likelihood import pointwise_log_likelihood, reference


@settings(max_examples=60, deadline=None)
@given(mixtures())
def test_responsibilities_are_finite_and_nonnegative(m):
    # Extreme mixtures (log densities beyond -1e16): no overflow, no NaN. (That they sum to
    # one is how they are computed, a division by their sum; the values are checked below.)
    X, w, means, chols = m
    r = reference.responsibilities(X, w, means, chols)
    assert r.shape == (w.shape[0], X.shape[0], w.shape[1])
    assert np.isfinite(r).all() and (r >= 0).all()


@settings(max_examples=60, deadline=None)
@given(mixtures(**MODERATE))
def test_responsibilities_are_bayes_rule_on_random_mixtures(m):
    # Against helpers.independent_responsibilities (SciPy triangular solves, log-sum-exp); 1e-6
    # is what float64 guarantees on these mixtures (measured: 7e-10 at most over 2,000
    # examples).
    X, w, means, chols = m
    np.testing.assert_allclose(reference.responsibilities(X, w, means, chols),
                               independent_responsibilities(X, w, means, chols), rtol=0,
                               atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(mixtures())
def test_log_densities_are_finite(m):
    X, w, means, chols = m
    ll = pointwise_log_likelihood(X, w, means, chols)
    assert np.isfinite(ll).all()
    lpd = reference.log_predictive_density(X, w, means, chols)
    assert np.isfinite(lpd).all()
    # The predictive density is an average of the per-draw densities: between their extremes.
    assert (lpd <= ll.max(axis=0) + 1e-9).all() and (lpd >= ll.min(axis=0) - 1e-9).all()


def test_numpy_kernels_match_scipy(rng):
    k, d = 3, 3
    X = rng.normal(size=(30, d))
    draws = [random_params(rng, k, d) for _ in range(5)]
    w = np.stack([p[0] for p in draws])
    mu = np.stack([p[1] for p in draws])
    cov = np.stack([p[2] for p in draws])
    chol = np.linalg.cholesky(cov)
    ref = np.stack([scipy_loglik(X, *p) for p in draws])
    np.testing.assert_allclose(pointwise_log_likelihood(X, w, mu, chol), ref, atol=1e-10)
    # Responsibilities are w_k N_k / sum_j w_j N_j, by Bayes' rule.
    joint = np.stack([
        np.stack([p[0][j] * multivariate_normal(p[1][j], p[2][j]).pdf(X) for j in range(k)], 1)
        for p in draws])
    expected = joint / joint.sum(axis=2, keepdims=True)
    np.testing.assert_allclose(reference.responsibilities(X, w, mu, chol), expected, atol=1e-10)
    np.testing.assert_allclose(reference.mean_responsibilities(X, w, mu, chol),
                               expected.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(reference.log_predictive_density(X, w, mu, chol),
                               logsumexp(ref, axis=0) - np.log(5), atol=1e-10)


def test_kernels_chunk_over_draws(rng, monkeypatch):
    k, d = 2, 2
    X = rng.normal(size=(50, d))
    draws = [random_params(rng, k, d) for _ in range(7)]
    w, mu, cov = (np.stack([p[i] for p in draws]) for i in range(3))
    chol = np.linalg.cholesky(cov)
    whole = pointwise_log_likelihood(X, w, mu, chol)
    monkeypatch.setattr(reference, "CHUNK_ELEMENTS", 300)  # forces chunks of one or two draws
    np.testing.assert_allclose(reference.pointwise_log_likelihood_numpy(X, w, mu, chol), whole,
                               atol=1e-12)
    np.testing.assert_allclose(reference.log_predictive_density(X, w, mu, chol),
                               logsumexp(whole, axis=0) - np.log(7), atol=1e-10)
