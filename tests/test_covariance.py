"""Covariance structures of the Bayesian model: full, diag, spherical, tied.

The likelihood of every structure is checked against SciPy; each structure recovers data
drawn from it, keeps its form exactly in every draw, and works with every method; the
number of free parameters of each.
"""

import numpy as np
import pytest
from helpers import COV_TYPES
from helpers import n_free_parameters as _formula
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import BayesianGMM
from bayesgmm.covariance import COVARIANCE_TYPES, covariance_names
from bayesgmm.datasets import make_mixture
from bayesgmm.model import build_model, point_from_params, unpack_point


def structured_covariances(covariance_type, k, d, rng):
    """Random covariances (K, D, D) of a structure."""
    if covariance_type == "spherical":
        return rng.uniform(0.3, 1.5, k)[:, None, None] * np.eye(d)
    if covariance_type == "diag":
        return rng.uniform(0.3, 1.5, (k, d))[:, :, None] * np.eye(d)
    a = rng.normal(size=(k, d, d)) * 0.5
    covs = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    if covariance_type == "tied":
        covs = np.repeat(covs[:1], k, axis=0)
    return covs


def truth(covariance_type, n=300, seed=0):
    rng = np.random.default_rng(seed)
    covs = structured_covariances(covariance_type, 3, 2, rng)
    return make_mixture(n, 3, 2, separation=6.0 * np.sqrt(covs.max()), covariances=covs,
                        random_state=seed)


def check_structure(covs, covariance_type):
    """Exact form of (..., K, D, D) covariances."""
    d = covs.shape[-1]
    off = covs * (1 - np.eye(d))
    if covariance_type in ("diag", "spherical"):
        assert np.all(off == 0.0)
    if covariance_type == "spherical":
        diag = np.diagonal(covs, axis1=-2, axis2=-1)
        np.testing.assert_allclose(diag, diag[..., :1] * np.ones(d), rtol=1e-12)
    if covariance_type == "tied":
        np.testing.assert_allclose(covs, np.broadcast_to(covs[..., :1, :, :], covs.shape),
                                   rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_likelihood_matches_scipy(covariance_type):
    # The observed variable's log density at a point built from known parameters equals
    # the mixture density computed by SciPy (to 1e-10): the structure's variables, their
    # packing and the shared factor of "tied" are all exercised.
    rng = np.random.default_rng(1)
    k, d = 3, 3
    Z = rng.normal(size=(40, d))
    weights = rng.dirichlet(np.ones(k))
    means = rng.normal(size=(k, d))
    covs = structured_covariances(covariance_type, k, d, rng)
    from pymc.model.transform.conditioning import remove_value_transforms

    model = build_model(Z, k, covariance_type=covariance_type)
    free = sorted(v.name for v in model.free_RVs)
    assert free == sorted(["weights", "mu"] + covariance_names(covariance_type, k))
    point = point_from_params(weights, means, np.linalg.cholesky(covs),
                              covariance_type=covariance_type)
    plain = remove_value_transforms(model)
    fn = plain.compile_fn(plain.logp(vars=[plain["x"]], jacobian=False), mode="JAX")
    loglik = fn(point)
    dens = sum(w * multivariate_normal(m, c).pdf(Z) for w, m, c in zip(weights, means, covs,
                                                                     strict=True))
    np.testing.assert_allclose(loglik, np.log(dens).sum(), rtol=1e-10)
    # And the draws' unpacking inverts the packing.
    back = unpack_point(point, k, d, covariance_type)["chols"]
    np.testing.assert_allclose(back @ np.swapaxes(back, -1, -2), covs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_map_recovers_each_structure(covariance_type):
    data = truth(covariance_type)
    model = BayesianGMM(3, covariance_type=covariance_type, method="map",
                        random_state=0).fit(data.X)
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in data.means]
    assert sorted(order) == [0, 1, 2]
    # 100 points per component: means within 0.3 (about 3 standard errors of the largest
    # component sd), covariances within 35% of the largest true entry.
    np.testing.assert_allclose(model.means_[order], data.means, atol=0.3)
    scale = np.abs(data.covariances).max()
    np.testing.assert_allclose(model.covariances_[order], data.covariances, atol=0.35 * scale)
    check_structure(model.covariances_, covariance_type)
    assert model.covariances_.shape == (3, 2, 2)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "tied"])
def test_nuts_draws_keep_the_structure(covariance_type):
    data = truth(covariance_type, n=240, seed=2)
    model = BayesianGMM(3, covariance_type=covariance_type, draws=1000, tune=500,
                        random_state=1).fit(data.X)
    covs = model.idata_["posterior"]["covariances"].to_numpy()
    check_structure(covs, covariance_type)
    assert model.diagnose().ok
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in data.means]
    np.testing.assert_allclose(model.means_[order], data.means, atol=0.35)
    assert model.idata_["posterior"].attrs["bayesgmm_covariance_type"] == covariance_type


@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_vi_with_a_structure(method):
    data = truth("diag", n=240, seed=3)
    model = BayesianGMM(3, covariance_type="diag", method=method, draws=200,
                        random_state=0).fit(data.X)
    check_structure(model.idata_["posterior"]["covariances"].to_numpy(), "diag")
    order = [int(np.argmin(np.linalg.norm(model.means_ - m, axis=1))) for m in data.means]
    np.testing.assert_allclose(model.means_[order], data.means, atol=0.35)


def test_spherical_is_spherical_in_the_users_units():
    # One feature in metres, one in millimetres. Scaled per column, a sphere of the model
    # would be an ellipse with axes 1:1000 in the user's units; spherical components scale
    # both features alike, so they stay spheres (equal diagonal, zero off-diagonal).
    data = truth("spherical", seed=4)
    X = data.X * np.array([1.0, 1000.0])
    model = BayesianGMM(3, covariance_type="spherical", method="map", random_state=0).fit(X)
    check_structure(model.covariances_, "spherical")
    assert np.ptp(model.idata_["constant_data"]["scale"].to_numpy()) == 0.0


def test_bad_covariance_type(blobs):
    with pytest.raises(ValueError, match="covariance_type must be one of 'full', 'diag', "
                                         "'spherical', 'tied', got 'VVV'"):
        BayesianGMM(2, covariance_type="VVV", method="map").fit(blobs.X)


@pytest.mark.slow  # 12 s each; the diagonal truth's case runs by default (test_selection.py)
@pytest.mark.parametrize("covariance_type", ["spherical", "tied"])
def test_loo_does_not_prefer_full_over_a_simpler_truth(covariance_type):
    # The check for each simpler structure (diag: tests/test_selection.py): the
    # full structure is not better than the truth beyond two standard errors, and the
    # simplest adequate model is chosen.
    from bayesgmm.selection import select_components

    data = truth(covariance_type, n=240, seed=6)
    sel = select_components(data.X, 3, min_components=3,
                            covariance_types=(covariance_type, "full"), method="advi",
                            draws=300, random_state=0)
    t = sel.table
    gain = t.loc[("full", 3), "elpd_loo"] - t.loc[(covariance_type, 3), "elpd_loo"]
    assert gain <= 2 * max(t["dse"])
    assert sel.best_covariance_type == covariance_type


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_n_parameters_matches_formula_and_sklearn(covariance_type):
    from bayesgmm.covariance import n_parameters as _n_parameters

    for k, d in [(1, 1), (1, 4), (2, 1), (2, 3), (3, 2), (4, 5), (5, 10)]:
        sk = GaussianMixture(n_components=k, covariance_type=covariance_type)
        sk.means_ = np.zeros((k, d))
        assert _n_parameters(k, d, covariance_type) == _formula(k, d, covariance_type)
        assert _n_parameters(k, d, covariance_type) == sk._n_parameters()
    # and the hand-written values at K = 3, D = 2
    assert {t: _formula(3, 2, t) for t in COV_TYPES} == {
        "full": 2 + 6 + 9, "diag": 2 + 6 + 6, "spherical": 2 + 6 + 3, "tied": 2 + 6 + 3}
