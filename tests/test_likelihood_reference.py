"""Property-based tests (hypothesis) of the pure NumPy pieces."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bayesgmm.likelihood import pointwise_log_likelihood, reference
from bayesgmm.permutations import (
    apply_permutations,
    gaussian_kl_cost,
    pivot_permutations,
    stephens_permutations,
)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def mixtures(draw, max_k=4, max_d=3, max_s=3, max_n=12):
    """Random draws of mixture parameters (S draws) and data X."""
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, max_d))
    s = draw(st.integers(1, max_s))
    n = draw(st.integers(1, max_n))
    X = draw(arrays(np.float64, (n, d), elements=finite))
    raw_w = draw(arrays(np.float64, (s, k), elements=st.floats(1e-3, 1.0)))
    means = draw(arrays(np.float64, (s, k, d), elements=finite))
    # Cholesky factors: positive diagonal between 1e-2 and 1e2, bounded off-diagonal.
    diag = draw(arrays(np.float64, (s, k, d), elements=st.floats(1e-2, 1e2)))
    off = draw(arrays(np.float64, (s, k, d, d), elements=st.floats(-10, 10)))
    chols = np.tril(off, -1) + diag[..., None] * np.eye(d)
    return X, raw_w / raw_w.sum(axis=1, keepdims=True), means, chols


@settings(max_examples=60, deadline=None)
@given(mixtures())
def test_responsibilities_are_finite_and_sum_to_one(m):
    X, w, means, chols = m
    r = reference.responsibilities(X, w, means, chols)
    assert r.shape == (w.shape[0], X.shape[0], w.shape[1])
    assert np.isfinite(r).all() and (r >= 0).all()
    np.testing.assert_allclose(r.sum(axis=-1), 1.0, atol=1e-12)


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


@settings(max_examples=40, deadline=None)
@given(mixtures(max_k=5, max_n=8), st.integers(0, 2**32 - 1))
def test_relabelling_yields_permutations(m, seed):
    X, w, means, chols = m
    k = w.shape[1]
    covs = chols @ np.swapaxes(chols, -1, -2)
    perm = pivot_permutations(gaussian_kl_cost(means, covs, means[0], covs[0]))
    assert (np.sort(perm, axis=1) == np.arange(k)).all()
    # The first draw matched to itself keeps its order (up to ties between equal components).
    assert np.allclose(apply_permutations(means, perm)[0], means[0])
    r = reference.responsibilities(X, w, means, chols)
    rng = np.random.default_rng(seed)
    perm, _ = stephens_permutations(r, init=np.stack([rng.permutation(k) for _ in w]))
    assert (np.sort(perm, axis=1) == np.arange(k)).all()


@settings(max_examples=40, deadline=None)
@given(mixtures(max_n=10))
def test_coclustering_matrix_is_symmetric_with_unit_diagonal(m):
    import xarray as xr

    from bayesgmm.assignments import coclustering

    X, w, means, chols = m
    s, k, d = means.shape
    covs = chols @ np.swapaxes(chols, -1, -2)
    post = xr.Dataset({
        "weights": (("chain", "draw", "component"), w[None]),
        "means": (("chain", "draw", "component", "feature"), means[None]),
        "covariances": (("chain", "draw", "component", "feature", "feature_bis"), covs[None]),
    })
    tree = xr.DataTree.from_dict({"posterior": post,
                                  "observed_data": xr.Dataset({"x": (("obs", "feature"), X)})})
    cc = coclustering(tree).to_numpy()
    assert np.isfinite(cc).all()
    np.testing.assert_allclose(cc, cc.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(cc), 1.0)
    assert (cc >= -1e-12).all() and (cc <= 1 + 1e-12).all()
