import numpy as np
import pytest
from helpers import X2, scipy_log_joint

from bayesgmm import BayesianGMM
from bayesgmm.datasets import make_mixture
from bayesgmm.ml import fit_em

XLA_CACHE_ENV = "BAYESGMM_TEST_XLA_CACHE"


def pytest_configure(config):
    """One JAX compilation cache for the session, in a fresh temporary folder.

    Tests fit the same model on the same data many times (each blackjax fit compiles its
    chain anew): with XLA's persistent cache a repeated compilation is read back, about 16 s
    -> 6 s per small blackjax fit here, with the same draws bit for bit. The folder is new
    for every session, so no run depends on an earlier one. With pytest-xdist (``make test``
    runs two workers) the first process to configure creates it and the workers inherit it
    through the environment, so a compilation made by one worker serves the other; the
    creator removes it at exit. Subprocesses the tests start themselves (the interrupt
    tests' children) compile as a user's would: they are given no cache.
    """
    import atexit
    import os
    import shutil
    import tempfile

    import jax

    folder = os.environ.get(XLA_CACHE_ENV)
    if folder is None:
        folder = tempfile.mkdtemp(prefix="bayesgmm-test-xla-cache-")
        os.environ[XLA_CACHE_ENV] = folder
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # A size limit turns on JAX's file lock around every read and write of the cache (without
    # one, a worker could read an entry the other is still writing).
    jax.config.update("jax_compilation_cache_max_size", 4 * 2**30)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (real sampling on larger data)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def blobs():
    """Three well-separated 2-D Gaussians with known truth (N=400)."""
    return make_mixture(400, 3, 2, separation=6.0, random_state=7)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


@pytest.fixture(scope="session")
def nuts_fit(blobs):
    """NUTS fit of ``blobs`` (default sampler), shared by the tests that only read it."""
    # R-hat <= 1.01 needs a few hundred effective draws per chain to be reliable.
    return BayesianGMM(3, method="nuts", draws=1000, tune=600, chains=2,
                       random_state=3).fit(blobs.X)


@pytest.fixture(scope="session")
def nuts_log_joint(nuts_fit, blobs):
    """log w_k + log N(x_n | mu_k, Sigma_k) of ``nuts_fit``'s every draw at ``blobs.X``, by
    SciPy: (2000, 400, 3), the independent reference of the assignment and density tests."""
    return scipy_log_joint(nuts_fit, blobs.X)


@pytest.fixture(scope="session")
def advi_fit(blobs):
    """Mean-field ADVI fit of ``blobs``."""
    return BayesianGMM(3, method="advi", draws=400, random_state=3).fit(blobs.X)


@pytest.fixture(scope="session")
def fullrank_fit(blobs):
    """Full-rank ADVI fit of ``blobs``."""
    return BayesianGMM(3, method="fullrank_advi", draws=400, random_state=3).fit(blobs.X)


@pytest.fixture(scope="session")
def map_fit(blobs):
    """MAP fit of ``blobs``."""
    return BayesianGMM(3, method="map", random_state=3).fit(blobs.X)


@pytest.fixture(scope="session")
def em3(blobs):
    """EM fit (fit_em) of ``blobs``, K = 3."""
    return fit_em(blobs.X, 3, random_state=0)


@pytest.fixture(scope="session")
def map_fit_seed0(blobs):
    """MAP fit of ``blobs`` with random_state=0 (the plot, summary and equivariance tests)."""
    return BayesianGMM(3, method="map", random_state=0).fit(blobs.X)


@pytest.fixture(scope="session")
def x2_map_fit():
    """MAP fit of ``helpers.X2`` (random_state=0), read by the input-check tests."""
    return BayesianGMM(2, method="map", random_state=0).fit(X2)
