"""Every NUTS sampler fits the same model and agrees with the others and with the truth.

An optional sampler that is not installed is skipped, except where the environment variable
BAYESGMM_REQUIRE_ALL_DEPS=1 is set (CI), where a missing one fails.
"""

import importlib.util

import numpy as np
import pytest
from helpers import label_means, match, max_rhat, need

from bayesgmm import BayesianGMM


@pytest.fixture(scope="module")
def fits():
    """Means of each sampler's fit, kept across the parametrised runs to compare them."""
    return {}


@pytest.mark.parametrize("sampler", ["pymc", "nutpie", "numpyro", "blackjax"])
def test_sampler_recovers_truth_and_agrees(sampler, blobs, fits):
    if sampler != "pymc":
        need(sampler)
    model = BayesianGMM(3, sampler=sampler, draws=1000, tune=600, random_state=5).fit(blobs.X)
    assert model.idata_["posterior"].attrs["bayesgmm_sampler"] == sampler
    emp = label_means(blobs)
    order = match(emp, model.means_)
    # Posterior means sit on the per-label sample means (see test_estimator for the reason).
    np.testing.assert_allclose(model.means_[order], emp, atol=0.1)
    assert max_rhat(model.idata_) <= 1.01
    # Same model, same data: samplers agree within Monte Carlo error. With ESS >= 300 per
    # parameter and posterior sd <= 0.15, the MC standard error is under 0.01; 0.05 leaves
    # room for both sides.
    fits[sampler] = (model.means_[order], model.weights_[order], model.covariances_[order])
    for other, (means, weights, covs) in fits.items():
        np.testing.assert_allclose(model.means_[order], means, atol=0.05, err_msg=other)
        # Weights: posterior sd ~0.02, MC error ~0.001. Covariance entries: posterior sd
        # up to ~0.2 on this data, MC error ~0.01; 0.05 again leaves room for both sides.
        np.testing.assert_allclose(model.weights_[order], weights, atol=0.01, err_msg=other)
        np.testing.assert_allclose(model.covariances_[order], covs, atol=0.05, err_msg=other)


def test_missing_sampler_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numpyro" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'bayesgmm\[numpyro\]'"):
        BayesianGMM(2, sampler="numpyro").fit(np.random.default_rng(0).normal(size=(20, 2)))


def test_auto_sampler_is_the_fastest_measured_for_the_size():
    # Measured (see bayesgmm.fitting.nuts.default_sampler): blackjax compiles faster and wins on small
    # data; nutpie needs fewer gradients per draw and won by 2x at N = 10,000.
    from bayesgmm.fitting.compile import BLACKJAX_MAX_ROWS
    from bayesgmm.fitting.nuts import default_sampler

    need("blackjax")
    need("nutpie")
    assert default_sampler(400) == "blackjax"
    assert default_sampler(BLACKJAX_MAX_ROWS) == "blackjax"
    assert default_sampler(BLACKJAX_MAX_ROWS + 1) == "nutpie"
    assert default_sampler() == "blackjax"


def test_large_data_compiles_with_numba():
    # Above BLACKJAX_MAX_ROWS nutpie and PyMC's sampler compile with numba, which runs the
    # fused likelihood kernel (46 ns per point at D=5, K=3 against 118 in JAX); an explicit
    # backend wins, and nutpie, which has no C backend, takes numba for "c".
    from bayesgmm.fitting.compile import BLACKJAX_MAX_ROWS, plan_compilation

    def plan(backend, n, sampler="nutpie", method="nuts"):
        return plan_compilation(backend, method=method, sampler=sampler, n_obs=n)

    assert plan("auto", BLACKJAX_MAX_ROWS).nuts_backend == "jax"
    assert plan("auto", BLACKJAX_MAX_ROWS + 1).nuts_backend == "numba"
    assert plan("jax", 10**6).nuts_backend == "jax"
    assert plan("numba", 10).nuts_backend == "numba"
    assert plan("c", 10).nuts_backend == "numba"
    # PyMC's sampler on large data compiles with numba even where "auto" means JAX; VI and
    # MAP keep JAX; the C backend stays C.
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc").compile_kwargs == {"mode": "NUMBA"}
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc", "advi").compile_kwargs == {"mode": "JAX"}
    assert plan("c", 10, "pymc").compile_kwargs == {"mode": "CVM"}
    # The data live in a pm.Data container (one cached compilation for every data set)
    # exactly when nutpie or PyMC's sampler compile with numba.
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc").shared_data
    assert plan("numba", 10, "nutpie").shared_data
    assert not plan("numba", 10, "blackjax").shared_data
    assert not plan("numba", 10, "nutpie", "advi").shared_data
    assert not plan("auto", BLACKJAX_MAX_ROWS, "nutpie").shared_data


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_numba_path_recovers_truth_and_is_reproducible(sampler, blobs):
    """The numba path that large data take, run on small data (backend="numba")."""
    if sampler != "pymc":
        need(sampler)

    def fit():
        # The settings of test_sampler_recovers_truth_and_agrees (R-hat <= 1.01 is checked
        # by every fit's diagnostics, which would warn).
        return BayesianGMM(3, sampler=sampler, backend="numba", draws=1000, tune=600,
                           random_state=5).fit(blobs.X)

    model = fit()
    emp = label_means(blobs)
    np.testing.assert_allclose(model.means_[match(emp, model.means_)], emp, atol=0.1)
    again = fit()
    np.testing.assert_array_equal(again.idata_["posterior"]["means"].to_numpy(),
                                  model.idata_["posterior"]["means"].to_numpy())
