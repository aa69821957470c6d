"""Assertion helpers shared by the tests."""

import importlib.util
import os

import numpy as np
import pytest
import xarray as xr
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.linalg import solve_triangular
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score


def match(reference_means, est_means):
    """Component order of the estimate that best matches the reference means."""
    cost = ((reference_means[:, None, :] - est_means[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


def label_means(truth):
    """Sample means of the rows of each true label: what any estimator can recover."""
    k = truth.means.shape[0]
    return np.stack([truth.X[truth.labels == j].mean(axis=0) for j in range(k)])


def max_rhat(idata, var_names=("weights", "means", "sigmas")):
    """Largest R-hat over the named posterior variables."""
    import arviz_stats as azs

    rhat = azs.rhat(idata, var_names=list(var_names))
    return max(float(rhat[v].max()) for v in rhat.data_vars)


# Two clusters 12.8 sds apart, 50 points each (the data of the input-check tests).
CENTERS = np.array([[-5.0, -4.0], [5.0, 4.0]])
LABELS = np.repeat([0, 1], 50)
X2 = CENTERS[LABELS] + np.random.default_rng(1).normal(size=(100, 2))  # cluster sd 1


REQUIRE_ALL = os.environ.get("BAYESGMM_REQUIRE_ALL_DEPS") == "1"


def need(package):
    """Skip the test when an optional package is missing; fail instead in CI.

    CI sets BAYESGMM_REQUIRE_ALL_DEPS=1 so every optional backend is really tested.
    """
    if importlib.util.find_spec(package) is None:
        if REQUIRE_ALL:
            pytest.fail(f"{package} is required (BAYESGMM_REQUIRE_ALL_DEPS=1) but not installed")
        pytest.skip(f"{package} not installed")


def check_recovery(model, truth, mean_tol, weight_tol, sd_rtol):
    """Compare with the data's own per-label statistics (what any estimator can recover).

    The clusters are well separated, so the posterior means should sit on the sample
    means of the true labels, up to the prior's pull and soft assignments at the edges.
    """
    labels = truth.labels
    k = truth.means.shape[0]
    emp_means = label_means(truth)
    emp_sd = np.stack([truth.X[labels == j].std(axis=0) for j in range(k)])
    emp_w = np.bincount(labels, minlength=k) / labels.size
    order = match(emp_means, model.means_)
    np.testing.assert_allclose(model.means_[order], emp_means, atol=mean_tol)
    np.testing.assert_allclose(model.weights_[order], emp_w, atol=weight_tol)
    est_sd = np.sqrt(np.diagonal(model.covariances_[order], axis1=1, axis2=2))
    np.testing.assert_allclose(est_sd, emp_sd, rtol=sd_rtol)
    # And within about four standard errors (sd <= 1.4, n_k >= 60) of the population truth.
    np.testing.assert_allclose(model.means_[order], truth.means, atol=0.75)
    assert adjusted_rand_score(labels, model.predict(truth.X)) > 0.95


def without_log_likelihood(tree: xr.DataTree) -> xr.DataTree:
    """The same fit (same draws) as if it had not stored its log-likelihood."""
    return xr.DataTree.from_dict({name: tree[name].to_dataset() for name in tree.children
                                  if name != "log_likelihood"})


def relative_error(a, b):
    """|a - b| / |b|."""
    return abs(a - b) / abs(b)


def n_free_parameters(k, d, covariance_type):
    """Free parameters of a K-component mixture in D dimensions, by the textbook formula."""
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
           "tied": d * (d + 1) // 2}[covariance_type]
    return (k - 1) + k * d + cov


COV_TYPES = ("full", "diag", "spherical", "tied")


def two_clusters(n, d, seed):
    """Two clusters 11 sd apart along feature 0, noise in the other d - 1 features."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    centre = np.zeros(d)
    centre[0] = 5.5
    return rng.standard_normal((n, d)) + np.where(y[:, None] == 1, centre, -centre), y


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
# Bounds for mixtures() whose log densities stay above about -1e9: there float64 resolves
# responsibilities to ~1e-7, so two correct computations agree to 1e-6.
MODERATE = dict(values=st.floats(-10, 10, allow_nan=False, allow_infinity=False),
                scales=(0.1, 10.0), max_off=1.0)


@st.composite
def mixtures(draw, max_k=4, max_d=3, max_s=3, max_n=12, values=finite, scales=(1e-2, 1e2),
             max_off=10.0):
    """Random draws of mixture parameters (S draws) and data X.

    ``values`` draws the data and the means; the Cholesky factors have a diagonal within
    ``scales`` and off-diagonal entries within +-``max_off``. The defaults reach log
    densities of -1e16 and beyond, where two correct computations may differ by O(1) in the
    log: tests that compare with another computation pass moderate bounds.
    """
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d))
    s = draw(st.integers(1, max_s))
    n = draw(st.integers(1, max_n))
    X = draw(arrays(np.float64, (n, d), elements=values))
    raw_w = draw(arrays(np.float64, (s, k), elements=st.floats(1e-3, 1.0)))
    means = draw(arrays(np.float64, (s, k, d), elements=values))
    # Cholesky factors: positive diagonal, bounded off-diagonal.
    diag = draw(arrays(np.float64, (s, k, d), elements=st.floats(*scales)))
    off = draw(arrays(np.float64, (s, k, d, d), elements=st.floats(-max_off, max_off)))
    chols = np.tril(off, -1) + diag[..., None] * np.eye(d)
    return X, raw_w / raw_w.sum(axis=1, keepdims=True), means, chols


def random_params(rng, k, d):
    """Random weights (K,), means (K, D) and well-conditioned covariances (K, D, D)."""
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return w, mu, cov


def scipy_loglik(X, w, mu, cov):
    """Log mixture density of every row of X, computed with SciPy."""
    comps = [np.log(w[j]) + multivariate_normal(mu[j], cov[j]).logpdf(X) for j in range(len(w))]
    return logsumexp(np.stack(comps, axis=1), axis=1)


def random_chol_params(rng, k, d):
    """``random_params`` with the Cholesky factors of the covariances (same numbers)."""
    w, mu, cov = random_params(rng, k, d)
    return w, mu, np.linalg.cholesky(cov)


def independent_responsibilities(X, weights, means, chols):
    """P(z_n = k | x_n, theta_s) for every draw, (S, N, K), computed here from scratch: SciPy's
    triangular solves for the Gaussian log densities, then log-sum-exp (no bayesgmm code)."""
    s, k, d = means.shape
    out = np.empty((s, X.shape[0], k))
    for i in range(s):
        log_joint = np.empty((X.shape[0], k))
        for j in range(k):
            z = solve_triangular(chols[i, j], (X - means[i, j]).T, lower=True)
            log_joint[:, j] = (np.log(weights[i, j]) - 0.5 * np.sum(z**2, axis=0)
                               - np.log(np.diag(chols[i, j])).sum() - 0.5 * d * np.log(2 * np.pi))
        out[i] = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    return out


def scipy_log_joint(fitted, X):
    """log w_k + log N(x_n | mu_k, Sigma_k) for every posterior draw of a fit, (S, N, K), with
    scipy.stats.multivariate_normal on the stored draws (chains then draws)."""
    post = fitted.idata_["posterior"]
    k, d = post.sizes["component"], post.sizes["feature"]
    w = post["weights"].to_numpy().reshape(-1, k)
    mu = post["means"].to_numpy().reshape(-1, k, d)
    cov = post["covariances"].to_numpy().reshape(-1, k, d, d)
    out = np.empty((w.shape[0], X.shape[0], k))
    for s in range(w.shape[0]):
        for j in range(k):
            out[s, :, j] = np.log(w[s, j]) + multivariate_normal(mu[s, j], cov[s, j]).logpdf(X)
    return out


def log_posterior_fn(model):
    """The log posterior on the constrained scale (no Jacobian), compiled with JAX."""
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    return plain.compile_fn(plain.logp(jacobian=False), mode="JAX")


def random_parameters(rng, k, d):
    """Random weights (K,), means (K, D) and positive definite covariances (K, D, D)."""
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    return w, mu, a @ np.swapaxes(a, 1, 2) + np.eye(d)
