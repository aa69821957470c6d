"""Standardisation: the map to the model's scale and back, and the fits' affine equivariance."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM
from bayesgmm.standardize import Standardizer


def test_standardizer_roundtrip(rng):
    X = rng.normal(3.0, 7.0, size=(100, 3))
    X[:, 2] = 4.0  # constant column: scale 1, stays finite
    s = Standardizer.fit(X)
    Z = s.transform(X)
    np.testing.assert_allclose(Z[:, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(Z[:, :2].std(axis=0), 1, atol=1e-12)
    assert s.scale[2] == 1.0 and np.all(Z[:, 2] == 0)
    np.testing.assert_allclose(s.means_to_user(s.means_to_model(X[:5])), X[:5], atol=1e-12)
    cov = np.cov(X[:, :2].T)
    s2 = Standardizer(center=s.center[:2], scale=s.scale[:2])
    chol_model = np.linalg.cholesky(s2.covariances_to_model(cov))
    back = s2.chols_to_user(chol_model)
    np.testing.assert_allclose(back @ back.T, cov, rtol=1e-12)


@pytest.fixture(scope="module")
def base(map_fit_seed0):
    """The MAP fit of the data as they are (conftest.py)."""
    return map_fit_seed0


@pytest.mark.parametrize("shift, scale", [(1e3, 1.0), (-7.5, 1.0), (0.0, 1e-3), (5.0, 1e4)])
def test_affine_invariance(blobs, base, shift, scale):
    # The priors live on the standardised scale, so the model is exactly affine-equivariant:
    # the MAP moves with the data up to optimiser round-off (relative 1e-6).
    moved = BayesianGMM(3, method="map", random_state=0).fit(blobs.X * scale + shift)
    np.testing.assert_allclose(moved.means_, base.means_ * scale + shift,
                               rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(moved.covariances_, base.covariances_ * scale**2,
                               rtol=1e-5, atol=1e-6 * scale**2)
    np.testing.assert_allclose(moved.weights_, base.weights_, atol=1e-6)
    np.testing.assert_array_equal(moved.predict(blobs.X * scale + shift),
                                  base.predict(blobs.X))
