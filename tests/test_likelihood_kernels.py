"""The numba kernels (bayesgmm.likelihood.kernels) against SciPy, finite differences, and
their own copies inlined into another function."""

import numba
import numpy as np
import pytest
from helpers import random_chol_params as random_params
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import likelihood
from bayesgmm.likelihood import kernels, pointwise_log_likelihood, reference


def scipy_loglik(X, w, mu, chol):
    cov = chol @ np.swapaxes(chol, 1, 2)
    with np.errstate(divide="ignore"):
        comps = [np.log(w[j]) + multivariate_normal(mu[j], cov[j]).logpdf(X)
                 for j in range(len(w))]
    return logsumexp(np.stack(comps, axis=1), axis=1)


def kernel(X, w, mu, chol):
    """The numba kernel called directly: (loglik, responsibilities (K, N))."""
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    return kernels.loglik(X, logw, mu, np.linalg.inv(chol))


def test_exp_and_log_to_a_few_ulp():
    import numba

    @numba.njit
    def run(x, y):
        out_e = np.empty_like(x)
        out_l = np.empty_like(y)
        bits = np.empty(x.size, np.int64)
        kernels._exp_nonpositive(x, out_e, bits, x.size)
        kernels._log_normal(y, out_l, bits, y.size)
        return out_e, out_l

    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.exponential(30.0, 5000), [0.0, -1e-300, -707.9, -0.5 * np.log(2)]])
    y = np.concatenate([rng.uniform(1.0, 64.0, 5000), [1.0, 1.0 + 1e-15, 2.0, np.sqrt(2)]])
    e, lg = run(x, y)
    np.testing.assert_allclose(e, np.exp(x), rtol=4e-16, atol=0)
    np.testing.assert_allclose(lg, np.log(y), rtol=0, atol=1e-15)
    # Below -708 (exp < 3.3e-308) the result is 0: the sum it joins is at least 1.
    e, _ = run(np.array([-708.5, -1e6, -np.inf]), np.ones(3))
    np.testing.assert_array_equal(e, 0.0)
    e, _ = run(np.array([np.nan]), np.ones(1))
    assert np.isnan(e[0])


# N=130 is not a multiple of the block of 64 points: the last block is partial.
@pytest.mark.parametrize(("n", "d", "k"), [(130, 1, 1), (130, 2, 3), (7, 5, 4), (200, 10, 2)])
def test_kernel_matches_scipy(rng, n, d, k):
    X = 3.0 * rng.normal(size=(n, d))
    w, mu, chol = random_params(rng, k, d)
    loglik, resp = kernel(X, w, mu, chol)
    np.testing.assert_allclose(loglik, scipy_loglik(X, w, mu, chol), rtol=0, atol=1e-10)
    cov = chol @ np.swapaxes(chol, 1, 2)
    joint = np.stack([w[j] * multivariate_normal(mu[j], cov[j]).pdf(X) for j in range(k)])
    np.testing.assert_allclose(resp, joint / joint.sum(axis=0), rtol=0, atol=1e-12)


def test_kernel_extremes(rng):
    d = 2
    X = rng.normal(size=(100, d))
    w = np.array([0.5, 0.5, 0.0])  # an empty component adds nothing
    mu = np.array([[0.0, 0.0], [1e3, 0.0], [0.0, 0.0]])  # the second is 1e3 sd away
    chol = np.broadcast_to(np.eye(d), (3, d, d)).copy()
    loglik, resp = kernel(X, w, mu, chol)
    expected = np.log(0.5) + multivariate_normal(mu[0], np.eye(d)).logpdf(X)
    np.testing.assert_allclose(loglik, expected, rtol=1e-14)
    np.testing.assert_array_equal(resp[2], 0.0)
    # Parameters outside the support give NaN, never a finite number.
    for bad in ("nan_mean", "negative_scale", "inf_factor"):
        m, c = mu.copy(), chol.copy()
        if bad == "nan_mean":
            m[1, 0] = np.nan
        elif bad == "negative_scale":
            c[0, 1, 1] = -1.0
        else:
            c[1, 1, 0] = np.inf
        prec = np.linalg.inv(c) if bad != "inf_factor" else np.where(np.isfinite(c), c, np.inf)
        out, _ = kernels.loglik(X, np.log(np.array([0.4, 0.6, 1e-9])), m, prec)
        assert np.isnan(out).all(), bad


def test_pointwise_matches_numpy(rng, monkeypatch):
    k, d, s = 3, 3, 6
    X = rng.normal(size=(90, d))
    draws = [random_params(rng, k, d) for _ in range(s)]
    w, mu, chol = (np.stack([p[i] for p in draws]) for i in range(3))
    ref = reference.pointwise_log_likelihood_numpy(X, w, mu, chol)
    np.testing.assert_allclose(kernels.pointwise_log_likelihood_numba(X, w, mu, chol), ref,
                               rtol=0, atol=1e-10)
    # pointwise_log_likelihood takes the kernel from KERNEL_MIN_TERMS terms on, NumPy below.
    np.testing.assert_array_equal(pointwise_log_likelihood(X, w, mu, chol), ref)
    monkeypatch.setattr(likelihood, "KERNEL_MIN_TERMS", s * X.shape[0] * k)
    np.testing.assert_array_equal(pointwise_log_likelihood(X, w[None], mu[None], chol[None]),
                                  kernels.pointwise_log_likelihood_numba(X, w, mu, chol)[None])


def test_gradient_matches_finite_differences(rng):
    n, d, k = 60, 2, 2
    X = rng.normal(size=(n, d))
    logw = np.log(rng.dirichlet(np.ones(k)))
    mu = rng.normal(size=(k, d))
    prec = np.linalg.inv(random_params(rng, k, d)[2])
    g = rng.normal(size=n)
    f = lambda lw, m, p: g @ kernels.loglik(X, lw, m, p)[0]  # noqa: E731
    resp = kernels.loglik(X, logw, mu, prec)[1]
    g_lw, g_mu, g_prec = kernels.gradient(X, mu, prec, resp, g)
    h = 1e-6
    for value, grad, mask in ((logw, g_lw, None), (mu, g_mu, None),
                              (prec, g_prec, np.tril(np.ones((d, d)), 0).astype(bool))):
        for idx in np.ndindex(value.shape):
            if mask is not None and not mask[idx[1:]]:
                assert grad[idx] == 0.0  # the upper triangle is not a parameter
                continue
            step = np.zeros_like(value)
            step[idx] = h
            args = [logw, mu, prec]
            which = [logw is value, mu is value, prec is value].index(True)
            up, down = list(args), list(args)
            up[which], down[which] = value + step, value - step
            numeric = (f(*up) - f(*down)) / (2 * h)
            assert grad[idx] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def _inlined(kernel):
    """The kernel's source compiled inside another function, as it runs in a compiled graph."""
    options = {key: value for key, value in kernel.targetoptions.items()
               if key not in ("cache", "inline", "nopython")}
    return numba.njit(inline="always", **options)(kernel.py_func)


def _callers():
    loglik, gradient = _inlined(kernels.loglik_kernel), _inlined(kernels.gradient_kernel)

    @numba.njit
    def call_loglik(X, log_weights, means, prec, out, resp):
        loglik(X, log_weights, means, prec, out, resp)

    @numba.njit
    def call_gradient(X, means, prec, resp, g, g_log_weights, g_means, g_prec):
        gradient(X, means, prec, resp, g, g_log_weights, g_means, g_prec)

    return call_loglik, call_gradient


def test_kernels_give_the_same_bits_inlined_into_another_function():
    # Under the old fastmath flags the copy compiled inside a caller differed from the
    # kernel's own in the last bits of the gradient for every one of these 20 draws.
    rng = np.random.default_rng(1)
    n, d, k = 203, 3, 3  # not a multiple of the block size: the tail is exercised too
    X = rng.normal(size=(n, d))
    loglik, gradient = _callers()
    for _ in range(20):
        log_weights = np.log(rng.dirichlet(np.ones(k)))
        means = rng.normal(size=(k, d))
        prec = np.tril(rng.normal(size=(k, d, d)) * 0.3) + 1.5 * np.eye(d)
        g = rng.normal(size=n)
        results = []
        for fns in ((kernels.loglik_kernel, kernels.gradient_kernel), (loglik, gradient)):
            out, resp = np.empty(n), np.empty((k, n))
            fns[0](X, log_weights, means, prec, out, resp)
            grads = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
            fns[1](X, means, prec, resp, g, *grads)
            results.append(np.concatenate([out, resp.ravel(), *(v.ravel() for v in grads)]))
        np.testing.assert_array_equal(results[0], results[1])
