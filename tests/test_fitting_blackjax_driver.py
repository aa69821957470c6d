"""Our blackjax NUTS driver on its own: shapes, statistics, recovery, seeding."""

import contextlib
import io
import re

import numpy as np
import pytest
from helpers import need
from scipy.optimize import linear_sum_assignment

from bayesgmm.datasets import make_mixture
from bayesgmm.fitting.blackjax_driver import sample_blackjax
from bayesgmm.fitting.start import em_start, jittered
from bayesgmm.model import build_model, unpack_point
from bayesgmm.priors import Priors
from bayesgmm.standardize import Standardizer

K, D, CHAINS, TUNE, DRAWS = 3, 2, 2, 300, 300
STATS = ("diverging", "tree_depth", "acceptance_rate", "energy", "n_steps", "step_size", "lp")


@pytest.fixture(scope="module")
def problem():
    need("blackjax")
    truth = make_mixture(400, K, D, separation=6.0, random_state=7)
    std = Standardizer.fit(truth.X)
    Z = std.transform(truth.X)
    start = em_start(Z, K, random_state=0)
    model = build_model(Z, K, Priors())
    rng = np.random.default_rng(1)
    initvals = [jittered(start, rng) for _ in range(CHAINS)]
    return truth, std, model, initvals


def _sample(problem, seed, progressbar=False):
    _, _, model, initvals = problem
    return sample_blackjax(model, initvals, draws=DRAWS, tune=TUNE, chains=CHAINS,
                           target_accept=0.9, seed=seed, progressbar=progressbar)


@pytest.fixture(scope="module")
def run(problem):
    # With its progress bar, redrawn at every count, captured (test_seed_determines_draws
    # samples again without it: the bar changes nothing).
    with pytest.MonkeyPatch.context() as mp:
        from bayesgmm import progress

        mp.setattr(progress, "REDRAW_SECONDS", 0.0)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            posterior, stats = _sample(problem, seed=11, progressbar=True)
    posterior.attrs["report"] = err.getvalue()
    return posterior, stats


def test_the_bar_counts_the_warm_up_step_by_step(run):
    # blackjax's window_adaptation is one compiled call; ours runs in chunks of _CHUNK steps
    # and the bar counts each, before any chain has finished its warm-up.
    lines = run[0].attrs["report"].replace("\r", "\n").splitlines()
    total = CHAINS * (TUNE + DRAWS)
    counts = [int(m.group(1)) for line in lines
              if (m := re.search(rf"\| (\d+)/{total} \[.*\] per chain .*; warming up$",
                                 line))]
    assert any(0 < n < CHAINS * TUNE for n in counts), lines
    # Each chain's share: 100 of its 600 steps after its first chunk.
    assert any(re.search(r"per chain (16% 0%|0% 16%|16% 16%); warming up$", line)
               for line in lines), lines
    shares = " ".join(["100%"] * CHAINS)
    assert re.search(rf"\| {total}/{total} .* per chain {shares}; {CHAINS}/{CHAINS} warmed up$",
                     lines[-1]), lines


def test_the_warm_up_is_blackjax_window_adaptation_bit_for_bit_in_any_chunks():
    # An independent computation: blackjax's own window adaptation, one compiled call, on a
    # Gaussian with variances over four orders of magnitude. Ours, run in chunks of 300 with
    # the last one padded, gives the same step size, mass matrix and state, bit for bit.
    need("blackjax")
    import blackjax
    import jax
    import jax.numpy as jnp

    from bayesgmm.fitting.blackjax_driver import _chain_functions

    var = np.array([0.01, 1.0, 100.0])

    def logdensity(position):
        (x,) = position
        return -0.5 * jnp.sum(x**2 / var)

    tune, size = 1000, 300
    warmup, _ = _chain_functions(logdensity, tune=tune, target_accept=0.8)
    key = jax.random.key(3)
    (ref_state, ref), _ = blackjax.window_adaptation(
        blackjax.nuts, logdensity, target_acceptance_rate=0.8).run(key, [jnp.zeros(3)],
                                                                  num_steps=tune)
    keys = jax.random.split(key, tune)
    slow, end = warmup.schedule
    carry = jax.jit(warmup.init)([jnp.zeros(3)])
    chunk = jax.jit(warmup.chunk)
    for lo in range(0, tune, size):
        n = min(size, tune - lo)
        pad = np.zeros(size - n, bool)
        carry = chunk(carry, jnp.concatenate([keys[lo:lo + n], keys[:size - n]]),
                      np.r_[slow[lo:lo + n], pad], np.r_[end[lo:lo + n], pad],
                      np.r_[np.ones(n, bool), pad])
    state, params, steps = warmup.final(carry)
    assert float(params["step_size"]) == float(ref["step_size"])
    np.testing.assert_array_equal(params["inverse_mass_matrix"], ref["inverse_mass_matrix"])
    np.testing.assert_array_equal(state.position[0], ref_state.position[0])
    # The adapted inverse mass matrix is the target's variance (Welford over the last
    # window's 500 draws, Stan's shrinkage 5/505 towards 1e-3): within 20%.
    np.testing.assert_allclose(params["inverse_mass_matrix"], var, rtol=0.2)
    assert tune <= int(steps) <= tune * 2**10


def test_shapes_and_stats(run):
    posterior, stats = run
    assert set(posterior.data_vars) == {"weights", "mu"} | {f"chol_cov_{j}" for j in range(K)}
    assert posterior["weights"].shape == (CHAINS, DRAWS, K)
    assert posterior["mu"].shape == (CHAINS, DRAWS, K, D)
    for j in range(K):
        assert posterior[f"chol_cov_{j}"].shape == (CHAINS, DRAWS, D * (D + 1) // 2)
    assert posterior["weights"].dims[:2] == ("chain", "draw")
    np.testing.assert_allclose(posterior["weights"].to_numpy().sum(axis=-1), 1.0, rtol=1e-12)
    assert (np.diff(posterior["draw"].to_numpy()) == 1).all()
    for name in STATS:
        assert stats[name].shape == (CHAINS, DRAWS), name
        assert np.isfinite(stats[name].to_numpy()).all(), name
    assert stats["diverging"].dtype == bool
    assert np.issubdtype(stats["tree_depth"].dtype, np.integer)
    assert int(stats["diverging"].sum()) == 0
    # Step-size adaptation reached its target on this easy posterior.
    assert 0.7 < float(stats["acceptance_rate"].mean()) < 0.99


def test_recovers_component_means(problem, run):
    truth, std, _, _ = problem
    posterior, _ = run
    point = {name: posterior[name].to_numpy() for name in posterior.data_vars}
    means = std.means_to_user(unpack_point(point, K, D)["means"])  # (chain, draw, K, D)
    # Chains start at the EM solution and the components are 6 sds apart: no label switching,
    # so each chain's components keep one order; match them to the true labels once.
    post_mean = means.mean(axis=(0, 1))
    sample_means = np.stack([truth.X[truth.labels == j].mean(axis=0) for j in range(K)])
    dist = np.linalg.norm(post_mean[:, None] - sample_means[None], axis=-1)
    rows, cols = linear_sum_assignment(dist)
    # With well-separated components the posterior of mu_k is centred on the sample mean of
    # the points labelled k: the prior N(0, 2^2) on the standardised scale moves it by under
    # 0.003 here. Its posterior sd is sigma_k / sqrt(n_k), at most 0.16 on this data (n_k =
    # 69, 120, 211), so the Monte Carlo error of a 600-draw mean (300 per chain) is about
    # 0.01 (observed deviations: under 0.01 for seeds 11-13, per chain and pooled). 0.1 leaves
    # room for ten such errors, yet is a sixth of the smallest component sd (0.6): a sampler
    # that is biased or stuck away from the mode fails.
    np.testing.assert_allclose(post_mean[rows], sample_means[cols], atol=0.1)
    # Each chain on its own agrees too (both chains explore the same mode).
    for c in range(CHAINS):
        np.testing.assert_allclose(means[c].mean(axis=0)[rows], sample_means[cols], atol=0.1)


def test_seed_determines_draws(problem, run):
    posterior, stats = run
    again, stats_again = _sample(problem, seed=11)
    for name in posterior.data_vars:
        np.testing.assert_array_equal(posterior[name].to_numpy(), again[name].to_numpy())
    for name in STATS:
        np.testing.assert_array_equal(stats[name].to_numpy(), stats_again[name].to_numpy())
    other, _ = _sample(problem, seed=12)
    assert not np.array_equal(posterior["mu"].to_numpy(), other["mu"].to_numpy())
    # The chains differ from each other (each gets its own key).
    assert not np.array_equal(posterior["mu"][0].to_numpy(), posterior["mu"][1].to_numpy())


def test_rejects_wrong_number_of_starts(problem):
    _, _, model, initvals = problem
    with pytest.raises(ValueError, match="one initial point per chain"):
        sample_blackjax(model, initvals[:1], draws=5, tune=5, chains=2, target_accept=0.9,
                        seed=0)


def test_reports_mass_matrix_and_warmup_steps(run):
    _, stats = run
    assert stats.attrs["mass_matrix"] == "diag"  # the default (see sample_blackjax)
    # Each warm-up step takes between 1 and 2**10 leapfrog steps.
    assert CHAINS * TUNE <= stats.attrs["tune_n_steps"] <= CHAINS * TUNE * 2**10


@pytest.mark.parametrize("dense", [True, False])
def test_dense_warmup_learns_the_correlation(dense):
    # A Gaussian with correlation 0.99 (the geometry of nearly collinear features): the dense
    # warm-up's inverse mass matrix is the covariance, the diagonal one only its diagonal.
    need("blackjax")
    import jax
    import jax.numpy as jnp

    from bayesgmm.fitting.blackjax_driver import _chain_functions

    cov = np.array([[1.0, 0.99], [0.99, 1.0]])
    precision = jnp.asarray(np.linalg.inv(cov))

    def logdensity(position):
        (x,) = position
        return -0.5 * x @ precision @ x

    warmup, _ = _chain_functions(logdensity, tune=1000, target_accept=0.8, dense=dense)
    _, params, _ = jax.jit(warmup)(jax.random.key(0), [jnp.zeros(2)])
    inverse_mass = np.asarray(params["inverse_mass_matrix"])
    if dense:
        assert inverse_mass.shape == (2, 2)
        # Estimated from the last window's 500 draws: correlation within a few hundredths.
        corr = inverse_mass[0, 1] / np.sqrt(inverse_mass[0, 0] * inverse_mass[1, 1])
        assert corr > 0.95
        np.testing.assert_allclose(np.diag(inverse_mass), 1.0, rtol=0.3)
    else:
        assert inverse_mass.shape == (2,)
