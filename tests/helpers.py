"""Assertion helpers shared by the tests."""

import importlib.util
import os

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment


def match(reference_means, est_means):
    """Component order of the estimate that best matches the reference means."""
    cost = ((reference_means[:, None, :] - est_means[None, :, :]) ** 2).sum(-1)
    return linear_sum_assignment(cost)[1]


def label_means(truth):
    """Sample means of the rows of each true label: what any estimator can recover."""
    k = truth.means.shape[0]
    return np.stack([truth.X[truth.labels == j].mean(axis=0) for j in range(k)])


def max_rhat(idata, var_names=("weights", "means", "sigmas")):
    """Largest R-hat over the named posterior variables."""
    import arviz_stats as azs

    rhat = azs.rhat(idata, var_names=list(var_names))
    return max(float(rhat[v].max()) for v in rhat.data_vars)


REQUIRE_ALL = os.environ.get("BAYESGMM_REQUIRE_ALL_DEPS") == "1"


def need(package):
    """Skip the test when an optional package is missing; fail instead in CI.

    CI sets BAYESGMM_REQUIRE_ALL_DEPS=1 so every optional backend is really tested.
    """
    if importlib.util.find_spec(package) is None:
        if REQUIRE_ALL:
            pytest.fail(f"{package} is required (BAYESGMM_REQUIRE_ALL_DEPS=1) but not installed")
        pytest.skip(f"{package} not installed")
