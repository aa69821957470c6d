"""The PyMC model: its likelihood against SciPy, its dims and names."""

import numpy as np
import pytest
from helpers import random_params, scipy_loglik

from bayesgmm.model import build_model, point_from_params


@pytest.mark.parametrize("d", [1, 2, 4])
def test_pymc_likelihood_matches_scipy(rng, d):
    from pymc.model.transform.conditioning import remove_value_transforms

    k = 3
    X = rng.normal(size=(40, d))
    model = remove_value_transforms(build_model(X, k))
    w, mu, cov = random_params(rng, k, d)
    point = point_from_params(w, mu, np.linalg.cholesky(cov))
    logp = model.logp(vars=[model["x"]], sum=False, jacobian=False)[0]
    fn = model.compile_fn(logp, mode="JAX")
    # Exact identity up to floating point: 1e-10.
    np.testing.assert_allclose(fn(point), scipy_loglik(X, w, mu, cov), rtol=0, atol=1e-10)


def test_model_dims_and_names():
    X = np.random.default_rng(0).normal(size=(25, 2))
    model = build_model(X, 3, feature_names=["a", "b"])
    assert list(model.coords["feature"]) == ["a", "b"]
    assert len(model.coords["component"]) == 3
    assert model.named_vars_to_dims["mu"] == ("component", "feature")
    assert model.named_vars_to_dims["x"] == ("obs", "feature")
