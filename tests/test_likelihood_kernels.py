"""The fused likelihood Op (bayesgmm.likelihood) against SciPy and the PyTensor-graph version."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import likelihood
from bayesgmm.likelihood import kernels, ops, pointwise_log_likelihood, reference
from bayesgmm.likelihood.ops import mixture_log_likelihood, mixture_log_likelihood_graph


def random_params(rng, k, d):
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    cov = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    return w, mu, np.linalg.cholesky(cov)


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


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA", "JAX"])
def test_op_value_and_gradient_match_the_graph(rng, mode):
    """Value and gradient (through the inverse factors) against PyTensor's own autodiff of
    the graph-level likelihood, in every backend bayesgmm compiles with."""
    n, d, k = 150, 3, 4
    X = rng.normal(size=(n, d))
    w0, mu0, chol0 = random_params(rng, k, d)
    g0 = rng.normal(size=n)  # an arbitrary upstream gradient, not only ones
    w, m, c = pt.vector("w"), pt.matrix("m"), pt.tensor3("c")
    results = []
    for fn in (mixture_log_likelihood, mixture_log_likelihood_graph):
        ll = fn(pt.constant(X), w, m, c, n_components=k, n_features=d)
        grads = pytensor.grad(pt.dot(ll, pt.constant(g0)), [w, m, c])
        f = pytensor.function([w, m, c], [ll, *grads], mode=mode)
        results.append(f(w0, mu0, chol0))
    for ours, ref in zip(*results, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


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


def test_numba_cache_key_follows_the_kernel_source(monkeypatch):
    # PyTensor caches compiled graphs on disk with the kernels inside: a changed kernel must
    # change the Ops' cache key, or a graph compiled by an older version would be served.
    import hashlib
    from pathlib import Path

    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key


    ops._register_backends()
    source = Path(kernels.__file__).read_bytes() + Path(ops.__file__).read_bytes()
    assert ops.kernel_version() == int(hashlib.sha256(source).hexdigest()[:15], 16)
    keys = {numba_funcify_and_cache_key(op)[1]
            for op in (ops.MixtureLogLik(), ops.MixtureLogLikGrad())}
    assert len(keys) == 2 and None not in keys
    # The key is derived from the version: another source gives other keys.
    monkeypatch.setattr(ops, "kernel_version", lambda: 1)
    other = {numba_funcify_and_cache_key(op)[1]
             for op in (ops.MixtureLogLik(), ops.MixtureLogLikGrad())}
    assert len(other) == 2 and not other & keys
