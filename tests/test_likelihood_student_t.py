"""The Student-t mixture likelihood (issue 19): the fused Op against SciPy, its gradient
against autodiff and finite differences, and its Gaussian limit."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_t

from bayesgmm.covariance import STRUCTURES, structure
from bayesgmm.likelihood.ops import (
    mixture_log_likelihood,
    student_t_mixture_log_likelihood,
    student_t_mixture_log_likelihood_graph,
)


def t_problem(rng, n, d, k, covariance_type="full", dof=(1.5, 4.0, 30.0)):
    """Heavy-tailed data, and weights, means, scale matrices (K, D, D) and degrees of
    freedom of ``covariance_type``."""
    X = rng.standard_t(3.0, size=(n, d)) * 1.5
    w = rng.dirichlet(np.full(k, 3.0))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    scales = structure(covariance_type).project(w, a @ np.swapaxes(a, 1, 2) / d
                                                + 0.5 * np.eye(d))
    return X, w, mu, scales, np.asarray(dof[:k], dtype=float)


def scipy_t_mixture(X, w, mu, scales, dof):
    """log sum_k w_k t_nu_k(x | mu_k, Sigma_k), with SciPy."""
    return logsumexp(np.stack([np.log(w[j]) + multivariate_t(mu[j], scales[j], df=dof[j])
                               .logpdf(X) for j in range(w.size)], axis=1), axis=1)


def compiled(term, X, k, d, g0, mode):
    """``(w, m, c, nu) -> (ll, d(g0 . ll)/d(w, m, c, nu))`` for ``term``, compiled in
    ``mode`` (static shapes, as in the model)."""
    w = pt.tensor("w", shape=(k,))
    m = pt.tensor("m", shape=(k, d))
    c = pt.tensor("c", shape=(k, d, d))
    nu = pt.tensor("nu", shape=(k,))
    ll = term(pt.constant(X), w, m, c, nu, n_components=k, n_features=d)
    grads = pytensor.grad(pt.dot(ll, pt.constant(g0)), [w, m, c, nu])
    return pytensor.function([w, m, c, nu], [ll, *grads], mode=mode)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
@pytest.mark.parametrize("covariance_type", STRUCTURES)
def test_fused_t_likelihood_matches_scipy(rng, covariance_type, mode):
    """Every covariance structure, both backends: SciPy's ``multivariate_t`` to 1e-10."""
    n, d, k = 120, 3, 3
    X, w, mu, scales, dof = t_problem(rng, n, d, k, covariance_type)
    fn = compiled(student_t_mixture_log_likelihood, X, k, d, np.ones(n), mode)
    ll = fn(w, mu, np.linalg.cholesky(scales), dof)[0]
    np.testing.assert_allclose(ll, scipy_t_mixture(X, w, mu, scales, dof), rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
def test_t_gradient_matches_autodiff_of_the_plain_graph(rng, mode):
    """The closed-form gradients (weights, means, factors, degrees of freedom) against
    PyTensor's autodiff of the plain graph."""
    n, d, k = 150, 4, 3
    X, w, mu, scales, dof = t_problem(rng, n, d, k)
    params = (w, mu, np.linalg.cholesky(scales), dof)
    g0 = rng.normal(size=n)
    ours = compiled(student_t_mixture_log_likelihood, X, k, d, g0, mode)(*params)
    ref = compiled(student_t_mixture_log_likelihood_graph, X, k, d, g0, "FAST_COMPILE")(*params)
    np.testing.assert_allclose(ref[0], scipy_t_mixture(X, w, mu, scales, dof), atol=1e-10)
    lower = np.tril(np.ones((d, d), dtype=bool))
    ours[3], ref[3] = ours[3][:, lower], ref[3][:, lower]  # the factors' lower triangles
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())


def test_t_gradient_matches_finite_differences(rng):
    """Central differences of the compiled log-likelihood, step 1e-6, in every parameter."""
    n, d, k = 80, 2, 2
    X, w, mu, scales, dof = t_problem(rng, n, d, k, dof=(2.5, 8.0))
    params = [w, mu, np.linalg.cholesky(scales), dof]
    g0 = rng.normal(size=n)
    fn = compiled(student_t_mixture_log_likelihood, X, k, d, g0, "NUMBA")
    grads = fn(*params)[1:]
    h = 1e-6
    for i, p in enumerate(params):
        for idx in np.ndindex(p.shape):
            if i == 2 and idx[2] > idx[1]:
                continue  # the factors' upper triangles are not read
            up = [q.copy() for q in params]
            down = [q.copy() for q in params]
            up[i][idx] += h
            down[i][idx] -= h
            numeric = (g0 @ fn(*up)[0] - g0 @ fn(*down)[0]) / (2 * h)
            assert abs(numeric - grads[i][idx]) < 1e-6 * max(1.0, abs(numeric)), (i, idx)


def test_many_degrees_of_freedom_tend_to_the_gaussian(rng):
    """The t mixture tends to the Gaussian mixture as nu grows, at the rate 1/nu (its log
    density differs by O((q^2 + D q + D^2) / nu) per row): within 1e-5 at nu = 1e8, and
    ten times closer at nu = 1e8 than at 1e7."""
    n, d, k = 200, 3, 2
    _, w, mu, scales, _ = t_problem(rng, n, d, k)
    X = rng.normal(size=(n, d))
    c = np.linalg.cholesky(scales)
    inputs = [pt.tensor("w", shape=(k,)), pt.tensor("m", shape=(k, d)),
              pt.tensor("c", shape=(k, d, d))]
    nu = pt.tensor("nu", shape=(k,))
    t = pytensor.function([*inputs, nu], student_t_mixture_log_likelihood(
        pt.constant(X), *inputs, nu, n_components=k, n_features=d), mode="NUMBA")
    gauss = pytensor.function(inputs, mixture_log_likelihood(
        pt.constant(X), *inputs, n_components=k, n_features=d), mode="NUMBA")(w, mu, c)
    gaps = {v: np.abs(t(w, mu, c, np.full(k, v)) - gauss).max() for v in (3.0, 1e7, 1e8)}
    assert gaps[1e8] < 1e-5
    assert 7 < gaps[1e7] / gaps[1e8] < 13
    assert gaps[3.0] > 0.1


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_degrees_of_freedom_outside_the_support_give_nan(rng, bad):
    """A log density of NaN (not a silent number) when a degree of freedom is not in
    (0, inf): through the graph (both backends), and from the kernel's own check when the
    constants it is given are finite."""
    from bayesgmm.likelihood.kernels import t_loglik

    n, d, k = 30, 2, 2
    X, w, mu, scales, dof = t_problem(rng, n, d, k)
    nu = np.array([dof[0], bad])
    for mode in ("NUMBA", "JAX"):
        fn = compiled(student_t_mixture_log_likelihood, X, k, d, np.ones(n), mode)
        assert np.isnan(fn(w, mu, np.linalg.cholesky(scales), nu)[0]).all(), mode
    prec = np.linalg.inv(np.linalg.cholesky(scales))
    assert np.isnan(t_loglik(X, np.log(w), mu, prec, nu)[0]).all()


def test_one_degree_of_freedom_is_broadcast_and_a_wrong_length_refused(rng):
    """A (1,) dof is every component's, the same on both backends; the kernel refuses
    parameters of the wrong length (it would read past them)."""
    from bayesgmm.likelihood.kernels import t_loglik

    n, d, k = 40, 2, 3
    X, w, mu, scales, _ = t_problem(rng, n, d, k)
    c = np.linalg.cholesky(scales)
    inputs = [pt.tensor("w", shape=(k,)), pt.tensor("m", shape=(k, d)),
              pt.tensor("c", shape=(k, d, d)), pt.tensor("nu", shape=(1,))]
    expected = scipy_t_mixture(X, w, mu, scales, np.full(k, 4.0))
    for mode in ("NUMBA", "JAX"):
        fn = pytensor.function(inputs, student_t_mixture_log_likelihood(
            pt.constant(X), *inputs, n_components=k, n_features=d), mode=mode)
        np.testing.assert_allclose(fn(w, mu, c, np.array([4.0])), expected, atol=1e-10)
    with pytest.raises(ValueError, match="one entry per component"):
        t_loglik(X, np.log(w), mu, np.linalg.inv(c), np.array([4.0]))


def test_large_degrees_of_freedom_keep_their_digits():
    """Where nu log nu dwarfs the result: the normalising constant against the exact
    product formula for even D (Gamma(a + h) / Gamma(a) = a (a + 1) ... (a + h - 1)), to
    1e-13 up to nu = 1e12 (the plain difference of log-gamma values was off by 1e-3
    there), in NumPy and in the graph; and the kernel's term of the dof derivative against
    the same expression in extended precision (cancellation cost the plain form 1e-9 of
    its value at nu = 1e6)."""
    from bayesgmm.likelihood.kernels import student_t_log_norm, t_loglik
    from bayesgmm.likelihood.ops import student_t_log_constants

    nu = np.array([0.7, 3.0, 99.0, 101.0, 2001.0, 1e4, 1e6, 1e9, 1e12])
    nu_t = pt.vector("nu")
    for d in (2, 4):
        a, h = nu / 2, d // 2
        exact = sum(np.log(a + j) for j in range(h)) - h * np.log(nu * np.pi)
        np.testing.assert_allclose(student_t_log_norm(nu, d), exact, rtol=0, atol=1e-13)
        graph = pytensor.function([nu_t], student_t_log_constants(0.0, nu_t, d))(nu)
        np.testing.assert_allclose(graph, exact, rtol=0, atol=1e-13)
    X = np.array([[0.3, -1.2], [2.0, 0.5], [-0.1, 0.05]])
    for v in (1e3, 1e6, 1e9):
        dof = np.full(1, v)
        q = np.sum(X**2, axis=1).astype(np.longdouble)
        nu_l = np.longdouble(v)
        u = (nu_l + 2) / (nu_l + q)
        reference = (u * q / nu_l - np.log1p(q / nu_l)).astype(float)
        dterm = t_loglik(X, np.zeros(1), np.zeros((1, 2)), np.eye(2)[None], dof)[3][0]
        np.testing.assert_allclose(dterm, reference, rtol=1e-9 if v == 1e9 else 1e-12)


def test_jax_autodiff_takes_the_closed_form_t_gradient(rng):
    """numpyro and blackjax differentiate the jaxified log density with JAX: through the
    Op's custom VJP, the gradients of PyTensor's gradient graph."""
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    n, d, k = 100, 3, 3
    X, w, mu, scales, dof = t_problem(rng, n, d, k)
    params = (w, mu, np.linalg.cholesky(scales), dof)
    g0 = rng.normal(size=n)
    expected = compiled(student_t_mixture_log_likelihood, X, k, d, g0, "NUMBA")(*params)
    inputs = [pt.tensor("w", shape=(k,)), pt.tensor("m", shape=(k, d)),
              pt.tensor("c", shape=(k, d, d)), pt.tensor("nu", shape=(k,))]
    ll = student_t_mixture_log_likelihood(pt.constant(X), *inputs, n_components=k,
                                          n_features=d)
    fn = get_jaxified_graph(inputs=inputs, outputs=[pt.dot(ll, pt.constant(g0))])
    grads = jax.grad(lambda *a: fn(*a)[0], argnums=(0, 1, 2, 3))(*params)
    lower = np.tril(np.ones((d, d), dtype=bool))
    for i, (ours, ref) in enumerate(zip(map(np.asarray, grads), expected[1:], strict=True)):
        if i == 2:
            ours, ref = ours[:, lower], ref[:, lower]
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_reference_t_densities_match_scipy_with_missing_entries(rng):
    """The NumPy reference, over two draws, against SciPy's ``multivariate_t`` row by row: a
    row with missing entries under each component's marginal (the t of the same degrees of
    freedom on the observed coordinates), to 1e-10; the numba kernel's pointwise values on
    complete rows against it."""
    from bayesgmm.likelihood import pointwise_log_likelihood
    from bayesgmm.likelihood.kernels import pointwise_log_likelihood_numba
    from bayesgmm.likelihood.reference import responsibilities, weighted_log_densities

    n, d, k = 60, 3, 3
    draws = [t_problem(rng, n, d, k) for _ in range(2)]
    X = draws[0][0].copy()
    X[rng.random((n, d)) < 0.3] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    w, mu, scales, dof = (np.stack([p[i] for p in draws]) for i in range(1, 5))
    chols = np.linalg.cholesky(scales)
    got = weighted_log_densities(X, w, mu, chols, dof)
    expected = np.empty_like(got)
    for s in range(2):
        for i, x in enumerate(X):
            o = ~np.isnan(x)
            for j in range(k):
                expected[s, i, j] = np.log(w[s, j]) + multivariate_t(
                    mu[s, j, o], scales[s, j][np.ix_(o, o)], df=dof[s, j]).logpdf(x[o])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(pointwise_log_likelihood(X, w, mu, chols, dof),
                               logsumexp(expected, axis=-1), rtol=0, atol=1e-10)
    r = responsibilities(X, w, mu, chols, dof)
    np.testing.assert_allclose(r, np.exp(expected - logsumexp(expected, axis=-1,
                                                              keepdims=True)), atol=1e-12)
    complete = draws[1][0]
    np.testing.assert_allclose(pointwise_log_likelihood_numba(complete, w, mu, chols, dof),
                               pointwise_log_likelihood(complete, w, mu, chols, dof),
                               rtol=0, atol=1e-10)
