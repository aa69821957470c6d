import numpy as np
import pytest

from bayesgmm.datasets import make_mixture


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
    from bayesgmm import BayesianGMM

    # R-hat <= 1.01 needs a few hundred effective draws per chain to be reliable.
    return BayesianGMM(3, method="nuts", draws=1000, tune=600, chains=2,
                       random_state=3).fit(blobs.X)
