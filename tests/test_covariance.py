"""Covariance structures of the Bayesian model: full, diag, spherical, tied.

The likelihood of every structure is checked against SciPy; each structure recovers data
drawn from it, keeps its form exactly in every draw, and works with every method; the
number of free parameters of each.

The table of structures (bayesgmm.covariance) is checked against computations made
without it: scikit-learn's fitted mixtures, PyMC's variables, SciPy's densities and plain
NumPy linear algebra.
"""

import ast
from pathlib import Path

import numpy as np
import pytest
from helpers import COV_TYPES
from helpers import n_free_parameters as _formula
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import BayesianGMM
from bayesgmm.covariance import (
    COVARIANCE_TYPES,
    STRUCTURES,
    CovarianceStructure,
    covariance_names,
    structure,
)
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


NAMES = list(STRUCTURES)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 1.0, -2.0], [-3.0, 6.0, 2.0]])
    a = rng.normal(size=(3, 3, 3)) * 0.6
    X = np.concatenate([rng.multivariate_normal(c, s @ s.T + 0.3 * np.eye(3), size=80)
                        for c, s in zip(centres, a, strict=True)])
    return X


@pytest.fixture(scope="module")
def fitted(data):
    """A scikit-learn mixture fitted with each structure (K=3, D=3)."""
    return {name: GaussianMixture(3, covariance_type=name, random_state=0).fit(data)
            for name in NAMES}


def test_the_table():
    assert COVARIANCE_TYPES == ("full", "diag", "spherical", "tied")
    assert all(isinstance(s, CovarianceStructure) and s.name == name
               for name, s in STRUCTURES.items())
    assert {n: s.mclust_name for n, s in STRUCTURES.items()} == {
        "full": "VVV", "diag": "VVI", "spherical": "VII", "tied": "EEE"}
    assert [n for n, s in STRUCTURES.items() if s.dense] == ["full", "tied"]
    assert [n for n, s in STRUCTURES.items() if s.common_scale] == ["spherical"]
    assert structure("tied") is STRUCTURES["tied"]
    for bad in ("VVV", "Full", None, 3):
        with pytest.raises(ValueError, match="covariance_type must be one of 'full', 'diag', "
                                             "'spherical', 'tied'"):
            structure(bad)


@pytest.mark.parametrize("name", NAMES)
def test_n_parameters_as_fitted_sklearn(name, fitted):
    # scikit-learn counts K - 1 weights, K D means and the covariances of a fitted model.
    gm = fitted[name]
    k, d = gm.means_.shape
    assert structure(name).n_parameters(k, d) == gm._n_parameters() - (k - 1) - k * d
    for k, d in [(1, 1), (2, 4), (5, 2)]:
        sk = GaussianMixture(k, covariance_type=name)
        sk.means_ = np.zeros((k, d))
        assert structure(name).n_parameters(k, d) == sk._n_parameters() - (k - 1) - k * d


@pytest.mark.parametrize("name", NAMES)
def test_expand_and_reduce_match_sklearn(name, fitted, data):
    gm = fitted[name]
    s = structure(name)
    k, d = gm.means_.shape
    covs = s.expand(gm.covariances_, k, d)
    assert covs.shape == (k, d, d)
    # The expanded matrices are the mixture scikit-learn fitted: same density everywhere.
    dens = sum(w * multivariate_normal(m, c).pdf(data)
               for w, m, c in zip(gm.weights_, gm.means_, covs, strict=True))
    np.testing.assert_allclose(np.log(dens), gm.score_samples(data), rtol=1e-10)
    back = s.reduce(covs)
    assert back.shape == np.shape(gm.covariances_)
    np.testing.assert_allclose(back, gm.covariances_, rtol=1e-14)
    s.check(covs)  # its own form passes the check


@pytest.mark.parametrize("name", NAMES)
def test_precisions_as_sklearn_computes_them(name, fitted, data):
    gm = fitted[name]
    s = structure(name)
    k, d = gm.means_.shape
    covs = s.expand(gm.covariances_, k, d)
    # precisions_init of a fitted solution: scikit-learn's own precisions_, in its shape.
    init = s.precisions_init(gm.weights_, covs)
    assert np.shape(init) == np.shape(gm.precisions_)
    np.testing.assert_allclose(init, gm.precisions_, rtol=1e-8)
    prec_chol, precisions = s.sklearn_precisions(gm.covariances_)
    np.testing.assert_allclose(prec_chol, gm.precisions_cholesky_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(precisions, gm.precisions_, rtol=1e-8)
    # ... and scikit-learn accepts it as a start, from the covariances of any partition.
    labels = gm.predict(data)
    groups = [data[labels == j] for j in range(k)]
    weights = np.array([len(g) for g in groups]) / len(data)
    raw = np.stack([np.cov(g, rowvar=False, bias=True) for g in groups])
    start = GaussianMixture(k, covariance_type=name, weights_init=weights,
                            means_init=np.stack([g.mean(axis=0) for g in groups]),
                            precisions_init=s.precisions_init(weights, raw), max_iter=200,
                            random_state=0).fit(data)
    assert start.converged_
    assert start.score(data) == pytest.approx(gm.score(data), abs=1e-2)


def test_project_by_hand():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4, 4))
    covs = a @ np.swapaxes(a, 1, 2) + np.eye(4)
    w = np.array([0.2, 0.5, 0.3])
    pooled = sum(w[j] * covs[j] for j in range(3))
    expected = {
        "full": covs,
        "diag": np.stack([np.diag(np.diag(c)) for c in covs]),
        "spherical": np.stack([np.trace(c) / 4 * np.eye(4) for c in covs]),
        "tied": np.stack([pooled] * 3),
    }
    for name, s in STRUCTURES.items():
        np.testing.assert_allclose(s.project(w, covs), expected[name], rtol=1e-12)
        if name != "full":
            with pytest.raises(ValueError, match=f"do not have the '{name}' structure"):
                s.check(covs)


@pytest.mark.parametrize("name", NAMES)
def test_min_count_is_where_the_ml_covariance_becomes_regular(name):
    # The ML covariance of m points of one component, in the structure's form, is singular
    # below min_count points and regular from there on ("tied" pools all components' points:
    # no count per component).
    s = structure(name)
    rng = np.random.default_rng(3)
    d = 4
    if s.min_count(d) == 0:
        assert name == "tied"
        return
    for m in range(1, d + 3):
        x = rng.normal(size=(m, d))
        cov = np.atleast_2d(np.cov(x, rowvar=False, bias=True))[None]
        smallest = np.linalg.eigvalsh(s.project(np.ones(1), cov)).min()
        assert (smallest > 1e-10) == (m >= s.min_count(d)), m


@pytest.mark.parametrize("name", NAMES)
def test_values_per_parameter_counts_means_and_covariances(name):
    s = structure(name)
    for n, d, k in [(300, 3, 3), (40, 10, 2)]:
        ratio, p = s.values_per_parameter(n, d, k)
        assert p == d + s.n_parameters(1, d)  # a component's means and covariance
        if s.n_parameters(k, d) == k * s.n_parameters(1, d):  # a covariance per component
            assert ratio == pytest.approx(n / k * d / p)  # its rows' values per parameter


@pytest.mark.parametrize("name", NAMES)
def test_every_structure_builds_a_model(name):
    # PyMC's own variables: the structure's names, as many free values as parameters, and
    # a point built by the structure that the model evaluates to SciPy's density.
    from pymc.model.transform.conditioning import remove_value_transforms

    s = structure(name)
    rng = np.random.default_rng(4)
    k, d = 3, 3
    Z = rng.normal(size=(30, d))
    model = build_model(Z, k, covariance_type=name)
    assert sorted(v.name for v in model.free_RVs) == sorted(["weights", "mu"]
                                                             + s.variable_names(k))
    sizes = {v.name: int(np.prod(v.shape.eval(mode="NUMBA"))) for v in model.free_RVs}
    assert sum(sizes[v] for v in s.variable_names(k)) == s.n_parameters(k, d)
    a = rng.normal(size=(k, d, d)) * 0.5
    covs = s.project(np.full(k, 1 / k), a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d))
    weights, means = np.full(k, 1 / k), rng.normal(size=(k, d))
    point = point_from_params(weights, means, np.linalg.cholesky(covs), covariance_type=name)
    plain = remove_value_transforms(model)
    loglik = plain.compile_fn(plain.logp(vars=[plain["x"]], jacobian=False), mode="JAX")(point)
    dens = sum(w * multivariate_normal(m, c).pdf(Z) for w, m, c in zip(weights, means, covs,
                                                                     strict=True))
    np.testing.assert_allclose(loglik, np.log(dens).sum(), rtol=1e-10)
    chols = unpack_point(point, k, d, name)["chols"]
    np.testing.assert_allclose(chols @ np.swapaxes(chols, 1, 2), covs, rtol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_unconstrained_parametrisation(name):
    # As many unconstrained values as free parameters; they round-trip; JAX's whitening
    # gives the Mahalanobis distances and log-determinants of NumPy's inverse.
    import jax

    s = structure(name)
    rng = np.random.default_rng(6)
    k, d, n = 3, 3, 7
    a = rng.normal(size=(k, d, d)) * 0.5
    covs = s.project(rng.dirichlet(np.ones(k)), a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d))
    chols = np.linalg.cholesky(covs)
    theta = s.pack_unconstrained(chols)
    assert theta.shape == (s.n_parameters(k, d),)
    np.testing.assert_allclose(s.unpack_unconstrained(theta, k, d), chols, rtol=1e-12,
                               atol=1e-15)
    resid = rng.normal(size=(k, d, n))
    with jax.enable_x64(True):
        z, logdet = s.whiten(jax.numpy.asarray(theta), jax.numpy.asarray(resid), k, d)
        z, logdet = np.asarray(z), np.asarray(logdet)
    maha = np.einsum("kin,kij,kjn->kn", resid, np.linalg.inv(covs), resid)
    np.testing.assert_allclose(np.sum(z * z, axis=1), maha, rtol=1e-10)
    np.testing.assert_allclose(logdet, 0.5 * np.linalg.slogdet(covs)[1], rtol=1e-10)


def _module_level_imports(source: str) -> set[str]:
    found = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            found.add(".")
    return found


def test_covariance_imports_only_numpy_at_module_level():
    # The ML layer, which must not depend on PyMC, uses the table: PyMC, PyTensor, JAX and
    # SciPy are imported inside the methods that need them.
    assert _module_level_imports("import numpy as np\nimport pymc\n\ndef f():\n"
                                 "    import jax\n") == {"numpy", "pymc"}
    path = Path(__file__).resolve().parents[1] / "bayesgmm" / "covariance.py"
    assert _module_level_imports(path.read_text()) <= {"__future__", "dataclasses", "typing",
                                                       "numpy"}
