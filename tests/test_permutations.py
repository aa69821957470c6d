"""Label permutations (bayesgmm.permutations): pivot and Stephens relabelling recover
consistent labels."""

import numpy as np
import pytest
from helpers import mixtures
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesgmm.likelihood import reference
from bayesgmm.permutations import (
    apply_permutations,
    apply_permutations_last,
    gaussian_kl_cost,
    pivot_permutations,
    stephens_permutations,
)


@pytest.fixture
def scrambled_draws(rng, blobs):
    """Posterior-like draws (small noise around the truth), each with its labels shuffled."""
    s, k = 200, 3
    means = blobs.means[None] + 0.1 * rng.standard_normal((s, k, 2))
    covs = np.repeat(blobs.covariances[None], s, axis=0)
    w = np.repeat(blobs.weights[None], s, axis=0)
    scramble = np.stack([rng.permutation(k) for _ in range(s)])
    return (apply_permutations(w, scramble), apply_permutations(means, scramble),
            apply_permutations(covs, scramble), scramble)


def consistent(perm, scramble):
    """After relabelling, every draw must hold the same (possibly permuted) order."""
    composed = np.take_along_axis(scramble, perm, axis=1)
    return bool((composed == composed[0]).all())


def test_pivot_undoes_scrambling(scrambled_draws, blobs):
    w, means, covs, scramble = scrambled_draws
    perm = pivot_permutations(gaussian_kl_cost(means, covs, blobs.means, blobs.covariances))
    assert consistent(perm, scramble)
    np.testing.assert_array_equal(np.take_along_axis(scramble, perm, axis=1)[0], [0, 1, 2])


def test_stephens_undoes_scrambling_and_agrees_with_pivot(scrambled_draws, blobs):
    w, means, covs, scramble = scrambled_draws
    resp = reference.responsibilities(blobs.X[:150], w, means, np.linalg.cholesky(covs))
    perm, n_iter = stephens_permutations(resp)
    assert consistent(perm, scramble)
    assert n_iter < 20
    pivot = pivot_permutations(gaussian_kl_cost(means, covs, blobs.means, blobs.covariances))
    # Same partition of every draw; Stephens' labels are the pivot's up to one global order.
    relabelled_s = apply_permutations(means, perm)
    relabelled_p = apply_permutations(means, pivot)
    order = [int(np.argmin(((relabelled_p[0] - m) ** 2).sum(-1))) for m in relabelled_s[0]]
    np.testing.assert_allclose(relabelled_s, relabelled_p[:, order], atol=0)


def test_permutations_are_permutations(rng):
    resp = rng.dirichlet(np.ones(4), size=(30, 20))
    perm, _ = stephens_permutations(resp)
    assert np.all(np.sort(perm, axis=1) == np.arange(4))
    np.testing.assert_allclose(apply_permutations_last(resp, perm).sum(-1), 1.0)


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
