"""The likelihood and the NumPy kernels against independent SciPy computations."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.likelihood import pointwise_log_likelihood, reference
from bayesgmm.model import build_model, point_from_params
from bayesgmm.standardize import Standardizer


def random_params(rng, k, d):
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return w, mu, cov


def scipy_loglik(X, w, mu, cov):
    comps = [np.log(w[j]) + multivariate_normal(mu[j], cov[j]).logpdf(X) for j in range(len(w))]
    return logsumexp(np.stack(comps, axis=1), axis=1)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_pymc_likelihood_matches_scipy(rng, d):
    from pymc.model.transform.conditioning import remove_value_transforms

    k = 3
    X = rng.normal(size=(40, d))
    model = remove_value_transforms(build_model(X, k))
    w, mu, cov = random_params(rng, k, d)
    point = point_from_params(w, mu, np.linalg.cholesky(cov))
    logp = model.logp(vars=[model["x"]], sum=False, jacobian=False)[0]
    fn = model.compile_fn(logp, mode="JAX")
    # Exact identity up to floating point: 1e-10.
    np.testing.assert_allclose(fn(point), scipy_loglik(X, w, mu, cov), rtol=0, atol=1e-10)


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
    np.testing.assert_allclose(reference.pointwise_log_likelihood_numpy(X, w, mu, chol), whole, atol=1e-12)
    np.testing.assert_allclose(reference.log_predictive_density(X, w, mu, chol),
                               logsumexp(whole, axis=0) - np.log(7), atol=1e-10)


def test_standardizer_roundtrip(rng):
    X = rng.normal(3.0, 7.0, size=(100, 3))
    X[:, 2] = 4.0  # constant column: scale 1, stays finite
    s = Standardizer.fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1, atol=1e-12)
    assert s.scale[2] == 1.0 and np.all(Z[:, 2] == 0)
    np.testing.assert_allclose(s.means_to_user(s.means_to_model(X[:5])), X[:5], atol=1e-12)
    cov = np.cov(X[:, :2].T)
    s2 = Standardizer(center=s.center[:2], scale=s.scale[:2])
    chol_model = np.linalg.cholesky(s2.covariances_to_model(cov))
    back = s2.chols_to_user(chol_model)
    np.testing.assert_allclose(back @ back.T, cov, rtol=1e-12)


def test_model_dims_and_names():
    X = np.random.default_rng(0).normal(size=(25, 2))
    model = build_model(X, 3, feature_names=["a", "b"])
    assert list(model.coords["feature"]) == ["a", "b"]
    assert len(model.coords["component"]) == 3
    assert model.named_vars_to_dims["mu"] == ("component", "feature")
    assert model.named_vars_to_dims["x"] == ("obs", "feature")
