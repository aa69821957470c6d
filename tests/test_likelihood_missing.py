"""Missing entries marginalised out of the likelihood, against SciPy and PyTensor's autodiff."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm.covariance import STRUCTURES, structure
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.likelihood.missing import (
    marginal_chols,
    marginal_log_likelihood_graph,
    masked_rows_log_likelihood,
    missingness_patterns,
    pattern_table,
)
from bayesgmm.likelihood.ops import mixture_log_likelihood_graph
from bayesgmm.likelihood.reference import pointwise_log_likelihood_numpy, responsibilities
from bayesgmm.model import build_model, point_from_params


def with_holes(rng, n, d, fraction):
    """Standard normal data with ``fraction`` of the entries missing, no row all missing."""
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < fraction] = np.nan
    empty = np.isnan(X).all(axis=1)
    X[empty, rng.integers(d, size=empty.sum())] = 0.3
    return X


def structured(rng, k, d, covariance_type):
    """Weights, means and (K, D, D) covariances of ``covariance_type``."""
    w = rng.dirichlet(np.full(k, 3.0))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    covs = structure(covariance_type).project(w, covs)
    return w, mu, covs


def scipy_marginal(X, w, mu, covs):
    """log sum_k w_k N(x_O | mu_k[O], Sigma_k[O, O]), row by row, with SciPy."""
    out = np.empty(X.shape[0])
    for i, x in enumerate(X):
        o = ~np.isnan(x)
        out[i] = logsumexp([np.log(w[j]) + multivariate_normal(
            mu[j, o], covs[j][np.ix_(o, o)]).logpdf(x[o]) for j in range(w.size)])
    return out


def test_patterns_group_every_row_once_by_its_observed_columns(rng):
    X = with_holes(rng, 300, 4, 0.3)
    patterns = missingness_patterns(X)
    rows = np.concatenate([p.rows for p in patterns])
    assert np.array_equal(np.sort(rows), np.arange(300))
    for p in patterns:
        assert np.array_equal(~np.isnan(X[p.rows]), np.broadcast_to(
            np.isin(np.arange(4), p.observed), (p.rows.size, 4)))
    assert len({tuple(p.observed) for p in patterns}) == len(patterns)
    sizes = [p.rows.size for p in patterns]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("covariance_type", list(STRUCTURES))
def test_reference_matches_scipy_marginals(rng, covariance_type):
    k, d = 3, 4
    X = with_holes(rng, 120, d, 0.35)
    w, mu, covs = structured(rng, k, d, covariance_type)
    chols = np.linalg.cholesky(covs)
    expected = scipy_marginal(X, w, mu, covs)
    # Exact identity up to rounding: 1e-10.
    got = pointwise_log_likelihood_numpy(X, w[None], mu[None], chols[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    got = pointwise_log_likelihood(X, w[None], mu[None], chols[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    r = responsibilities(X, w[None], mu[None], chols[None])[0]
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-12)


def test_marginal_factor_is_the_factor_of_the_sub_covariance(rng):
    _, _, covs = structured(rng, 2, 5, "full")
    chols = np.linalg.cholesky(covs)
    for observed in ([0, 1, 2], [1, 3], [4], [0, 2, 4]):
        o = np.array(observed)
        sub = marginal_chols(chols, o)
        np.testing.assert_allclose(sub @ np.swapaxes(sub, 1, 2), covs[:, o][:, :, o],
                                   rtol=1e-12, atol=1e-12)
        assert np.all(sub[:, np.triu_indices(o.size, 1)[0], np.triu_indices(o.size, 1)[1]]
                      == 0)


# d=3: at most 7 patterns; d=5: up to 31.
@pytest.mark.parametrize(("covariance_type", "d"),
                         [(name, 3) for name in STRUCTURES] + [("full", 5), ("diag", 5)])
def test_model_likelihood_with_missing_entries_matches_scipy(rng, covariance_type, d):
    from pymc.model.transform.conditioning import remove_value_transforms

    k = 3
    Z = with_holes(rng, 60, d, 0.3)
    w, mu, covs = structured(rng, k, d, covariance_type)
    model = remove_value_transforms(build_model(Z, k, covariance_type=covariance_type))
    point = point_from_params(w, mu, np.linalg.cholesky(covs),
                              covariance_type=covariance_type)
    logp = model.logp(vars=[model["x"]], sum=False, jacobian=False)[0]
    expected = scipy_marginal(Z, w, mu, covs)
    # JAX, which small fits compile with; the numba graph is checked by the gradient test.
    fn = model.compile_fn(logp, mode="JAX")
    np.testing.assert_allclose(fn(point), expected, rtol=0, atol=1e-10)


def value_and_gradients(Z, params, g0, mode, **options):
    """The per-row log-likelihood of ``Z`` and the gradients of ``g0 . ll`` with respect to
    the weights, means and factors, at ``params``, compiled in ``mode``."""
    k, d = params[1].shape
    # Static shapes, as in the model (JAX needs them for the gradients of the sub-blocks).
    w = pt.tensor("w", shape=(k,))
    m = pt.tensor("m", shape=(k, d))
    c = pt.tensor("c", shape=(k, d, d))
    ll = marginal_log_likelihood_graph(Z, w, m, c, n_components=k, **options)
    grads = pytensor.grad(pt.dot(ll, pt.constant(g0)), [w, m, c])
    return pytensor.function([w, m, c], [ll, *grads], mode=mode)(*params)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
def test_gradient_matches_autodiff_of_the_plain_graph(rng, mode):
    """The model's term (one fused Op for all patterns) against PyTensor's autodiff of the
    plain graph, one term per pattern, through the Cholesky factors of the
    sub-covariances."""
    n, d, k = 150, 3, 3
    Z = with_holes(rng, n, d, 0.3)
    w0, mu0, covs = structured(rng, k, d, "full")
    c0 = np.linalg.cholesky(covs)
    g0 = rng.normal(size=n)
    # The oracle runs in PyTensor's Python mode: compiling its autodiff through every
    # pattern's Cholesky with numba took minutes.
    results = [value_and_gradients(Z, (w0, mu0, c0), g0, mode),
               value_and_gradients(Z, (w0, mu0, c0), g0, "FAST_COMPILE",
                                   graph="per pattern", term=mixture_log_likelihood_graph)]
    np.testing.assert_allclose(results[0][0], scipy_marginal(Z, w0, mu0, covs), atol=1e-10,
                               rtol=0)
    # The factors are lower triangular: the graphs read their upper triangles differently
    # (the fused one through L L^T or L^-1, the plain one through sub-blocks), so only the
    # lower triangle's gradient is the likelihood's.
    for ours, ref in zip(*_lower(results, d), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def _lower(results, d):
    """The results of :func:`value_and_gradients` with the factors' gradients on their
    lower triangles only."""
    lower = np.tril(np.ones((d, d), dtype=bool))
    return [(ll, gw, gm, gc[:, lower]) for ll, gw, gm, gc in results]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fused_and_batched_graphs_agree_on_many_patterns(rng, covariance_type):
    """At D=5 with 30 patterns: the fused Op and the batched graph (minibatches' term) give
    the same values (against SciPy) and gradients (JAX). (One term per pattern, the
    plain oracle, is compared above with fewer patterns: its JAX graph compiles for
    seconds per pattern.)"""
    n, d, k = 300, 5, 3
    Z = with_holes(rng, n, d, 0.4)
    assert len(missingness_patterns(Z)) >= 25
    w0, mu0, covs = structured(rng, k, d, covariance_type)
    c0 = np.linalg.cholesky(covs)
    g0 = rng.normal(size=n)
    dense = covariance_type == "full"
    results = [value_and_gradients(Z, (w0, mu0, c0), g0, "JAX", graph=graph, dense=dense)
               for graph in ("fused", "batched")]
    expected = scipy_marginal(Z, w0, mu0, covs)
    for ll, *_ in results:
        np.testing.assert_allclose(ll, expected, atol=1e-10, rtol=0)
    results = _lower(results, d)
    for other in results[1:]:
        for ours, ref in zip(results[0], other, strict=True):
            np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_rows_drawn_with_their_patterns_match_scipy(rng):
    """Minibatch ADVI's term: rows and their patterns given as tensors (here a random batch
    picked by a symbolic index, as pm.Minibatch does), against SciPy on those rows."""
    n, d, k = 120, 4, 2
    Z = with_holes(rng, n, d, 0.3)
    masks, which = pattern_table(Z)
    w0, mu0, covs = structured(rng, k, d, "full")
    pick = pt.lvector("pick")
    filled = pt.as_tensor(np.nan_to_num(Z))[pick]
    w, m, c = pt.vector("w"), pt.matrix("m"), pt.tensor3("c")
    ll = masked_rows_log_likelihood(filled, pt.as_tensor(which)[pick], masks, w, m, c,
                                    n_components=k)
    fn = pytensor.function([pick, w, m, c], ll, mode="JAX")
    rows = rng.choice(n, size=30, replace=False)
    np.testing.assert_allclose(fn(rows, w0, mu0, np.linalg.cholesky(covs)),
                               scipy_marginal(Z[rows], w0, mu0, covs), rtol=1e-10, atol=1e-10)


def test_many_features_take_the_batched_products(rng):
    """Above JAX_UNROLL_FEATURES features the JAX kernel factorises with LAPACK and takes
    its quadratic forms by batched products: its values against SciPy, its gradients
    against the numba kernel's (checked against the plain graph above)."""
    from bayesgmm.likelihood.ops import JAX_UNROLL_FEATURES

    n, d, k = 90, JAX_UNROLL_FEATURES + 2, 2
    Z = with_holes(rng, n, d, 0.1)
    w0, mu0, covs = structured(rng, k, d, "full")
    params = (w0, mu0, np.linalg.cholesky(covs))
    g0 = rng.normal(size=n)
    results = [value_and_gradients(Z, params, g0, mode) for mode in ("JAX", "NUMBA")]
    np.testing.assert_allclose(results[0][0], scipy_marginal(Z, w0, mu0, covs), atol=1e-10,
                               rtol=0)
    for ours, ref in zip(*_lower(results, d), strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_jax_autodiff_takes_the_closed_form_gradient(rng):
    """numpyro and blackjax differentiate the jaxified log density with JAX: through the
    fused Op's custom VJP, the same gradients as PyTensor's gradient graph."""
    import jax
    from pymc.sampling.jax import get_jaxified_graph

    n, d, k = 200, 4, 3
    Z = with_holes(rng, n, d, 0.3)
    w0, mu0, covs = structured(rng, k, d, "full")
    params = (w0, mu0, np.linalg.cholesky(covs))
    g0 = rng.normal(size=n)
    expected = value_and_gradients(Z, params, g0, "NUMBA")
    w = pt.tensor("w", shape=(k,))
    m = pt.tensor("m", shape=(k, d))
    c = pt.tensor("c", shape=(k, d, d))
    ll = marginal_log_likelihood_graph(Z, w, m, c, n_components=k)
    fn = get_jaxified_graph(inputs=[w, m, c], outputs=[pt.dot(ll, pt.constant(g0))])
    grads = jax.grad(lambda *a: fn(*a)[0], argnums=(0, 1, 2))(*params)
    got = _lower([(expected[0], *map(np.asarray, grads))], d)[0]
    for ours, ref in zip(got[1:], _lower([expected], d)[0][1:], strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
