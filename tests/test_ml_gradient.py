"""Direct maximum likelihood by gradient ascent (fit_ml_gradient): against finite differences,
and against EM from the same start."""

import numpy as np
import pytest
from helpers import COV_TYPES
from helpers import n_free_parameters as _formula
from helpers import relative_error as _rel
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from bayesgmm import ConvergenceWarning
from bayesgmm.ml import fit_em, fit_ml_gradient
from bayesgmm.ml.gradient import _negloglik
from bayesgmm.ml.gradient import _pack_theta as _pack


def test_gradient_matches_finite_differences(blobs):
    rng = np.random.default_rng(0)
    Z = (blobs.X[:60] - blobs.X.mean(axis=0)) / blobs.X.std(axis=0)
    k, d = 3, 2
    theta = rng.normal(scale=0.5, size=(k - 1) + k * d + k * d * (d + 1) // 2)
    f, g = _negloglik(theta, Z, k)
    h = 1e-6
    fd = np.array([(_negloglik(theta + h * e, Z, k)[0] - _negloglik(theta - h * e, Z, k)[0])
                   / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    # and the value is the mixture's log-likelihood computed independently
    weights = np.exp(np.r_[0.0, theta[:2]]) / np.exp(np.r_[0.0, theta[:2]]).sum()
    means = theta[2:8].reshape(3, 2)
    packed = theta[8:].reshape(3, 3)
    chols = np.zeros((3, 2, 2))
    chols[:, 0, 0], chols[:, 1, 0], chols[:, 1, 1] = (np.exp(packed[:, 0]), packed[:, 1],
                                                      np.exp(packed[:, 2]))
    dens = sum(w * multivariate_normal(m, c @ c.T).pdf(Z)
               for w, m, c in zip(weights, means, chols, strict=True))
    assert _rel(-f, np.log(dens).sum()) < 1e-12


def test_pack_round_trip(em3):
    from bayesgmm.ml.gradient import _unpack_theta as _unpack

    chols = np.linalg.cholesky(em3.covariances)
    w, m, c = _unpack(_pack(em3.weights, em3.means, chols), 3, 2)
    np.testing.assert_allclose(w, em3.weights, rtol=1e-12)
    np.testing.assert_allclose(m, em3.means, rtol=1e-12)
    np.testing.assert_allclose(c, chols, rtol=1e-12, atol=1e-14)


def test_gradient_ml_reaches_em_from_the_same_start(blobs, em3):
    X, n = blobs.X, blobs.X.shape[0]
    # From EM's optimum: stays there.
    ml = fit_ml_gradient(X, 3, init=em3)
    assert ml.converged and not ml.info["diverged"] and ml.method == "ml_gradient"
    assert _rel(ml.log_likelihood, em3.log_likelihood) < 1e-6
    # From one k-means start, both methods end at the same log-likelihood.
    ml = fit_ml_gradient(X, 3, random_state=1)
    start = ml.info["init"]
    gm = GaussianMixture(3, covariance_type="full", reg_covar=0.0, tol=1e-12, max_iter=5000,
                         weights_init=start["weights"], means_init=start["means"],
                         precisions_init=np.linalg.inv(start["covariances"])).fit(X)
    assert _rel(ml.log_likelihood, gm.score(X) * n) < 1e-6
    assert ml.info["log_likelihood_path"][-1] == pytest.approx(ml.log_likelihood, rel=1e-12)
    # A dict start works too.
    ml2 = fit_ml_gradient(X, 3, init=start)
    assert _rel(ml2.log_likelihood, ml.log_likelihood) < 1e-9


def test_collapse_is_reported_as_divergence(blobs, em3):
    X = blobs.X
    means, covs = em3.means.copy(), em3.covariances.copy()
    means[0] = X[5]
    covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
    init = {"weights": em3.weights, "means": means, "covariances": covs}
    with pytest.warns(ConvergenceWarning, match="unbounded.*component 0.*Bayesian fit"):
        est = fit_ml_gradient(X, 3, init=init, min_scale=1e-4)
    assert est.converged is False
    info = est.info
    assert info["diverged"] is True and info["component"] == 0
    assert info["min_scale"] < 1e-4 and 5 in info["points"]
    for value in (est.weights, est.means, est.covariances, est.responsibilities,
                  info["log_likelihood_path"]):
        assert np.isfinite(value).all()
    assert np.isfinite([est.log_likelihood, est.bic, est.aic]).all()
    # The log-likelihood was still rising when it stopped.
    path = np.array(info["log_likelihood_path"])
    assert path[-1] > path[-20]


def test_bad_init_and_options(blobs):
    X = blobs.X[:50]
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5], "means": np.zeros((3, 2)),
                                    "covariances": np.stack([np.eye(2)] * 2)})
    with pytest.raises(ValueError, match="positive definite"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5], "means": np.zeros((2, 2)),
                                    "covariances": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match="missing"):
        fit_ml_gradient(X, 2, init={"weights": [0.5, 0.5]})
    with pytest.raises(TypeError, match="init must be"):
        fit_ml_gradient(X, 2, init="kmeans")
    with pytest.raises(ValueError, match="min_scale"):
        fit_ml_gradient(X, 2, min_scale=0.0)
    with pytest.raises(ValueError, match="reg_covar"):
        fit_em(X, 2, reg_covar=-1.0)
    with pytest.raises(ValueError, match="n_init"):
        fit_em(X, 2, n_init=0)


def _n_cov(k, d, covariance_type):
    return {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
            "tied": d * (d + 1) // 2}[covariance_type]


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gradient_matches_finite_differences_per_structure(blobs, covariance_type):
    from bayesgmm.ml.gradient import _nll_and_grad
    from bayesgmm.ml.gradient import _unpack_theta as _unpack

    rng = np.random.default_rng(1)
    Z = (blobs.X[:60] - blobs.X.mean(axis=0)) / blobs.X.std(axis=0)
    k, d = 3, 2
    theta = rng.normal(scale=0.5, size=(k - 1) + k * d + _n_cov(k, d, covariance_type))
    f, g = _negloglik(theta, Z, k, covariance_type)
    h = 1e-6
    fd = np.array([(_negloglik(theta + h * e, Z, k, covariance_type)[0]
                    - _negloglik(theta - h * e, Z, k, covariance_type)[0]) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)
    # The value is the log-likelihood of the mixture _unpack describes, whose factors have
    # the structure, and _pack inverts _unpack.
    weights, means, chols = _unpack(theta, k, d, covariance_type)
    covs = chols @ np.swapaxes(chols, 1, 2)
    dens = sum(w * multivariate_normal(m, c).pdf(Z)
               for w, m, c in zip(weights, means, covs, strict=True))
    assert _rel(-f, np.log(dens).sum()) < 1e-12
    off = ~np.eye(d, dtype=bool)
    if covariance_type in ("diag", "spherical"):
        assert np.all(covs[:, off] == 0.0)
    if covariance_type == "spherical":
        assert np.all(covs[:, 0, 0] == covs[:, 1, 1])
    if covariance_type == "tied":
        assert np.all(covs == covs[0])
    np.testing.assert_allclose(_pack(weights, means, chols, covariance_type), theta,
                               rtol=1e-12, atol=1e-14)
    # One compiled function per (K, D, covariance_type).
    assert _nll_and_grad(k, d, covariance_type) is _nll_and_grad(k, d, covariance_type)
    if covariance_type != "full":
        assert _nll_and_grad(k, d, covariance_type) is not _nll_and_grad(k, d, "full")


@pytest.mark.parametrize("covariance_type", COV_TYPES)
def test_gradient_ml_agrees_with_em_per_structure(blobs, covariance_type):
    # Features in very different units: "spherical" must use fit_em's common scale for the
    # two optima to coincide.
    X = blobs.X * np.array([1.0, 100.0])
    # EM converged tightly and without reg_covar, so that its solution is the optimum.
    em = fit_em(X, 3, n_init=2, random_state=0, covariance_type=covariance_type, tol=1e-12,
                reg_covar=0.0)
    ml = fit_ml_gradient(X, 3, init=em, covariance_type=covariance_type)
    assert ml.converged and not ml.info["diverged"]
    assert ml.covariance_type == covariance_type and ml.covariances.shape == (3, 2, 2)
    assert _rel(ml.log_likelihood, em.log_likelihood) < 1e-6
    # Means within 1e-4 feature standard deviations.
    assert np.abs((ml.means - em.means) / X.std(axis=0)).max() < 1e-4
    assert ml.n_parameters == em.n_parameters == _formula(3, 2, covariance_type)
    assert _rel(ml.bic, em.bic) < 1e-6
    assert _rel(ml.to_sklearn().bic(X), ml.bic) < 1e-8  # the structure holds exactly


def test_gradient_ml_reduces_the_start_to_the_structure(blobs, em3):
    X = blobs.X
    w, covs = em3.weights, em3.covariances
    expected = {
        "diag": np.diagonal(covs, axis1=1, axis2=2)[:, :, None] * np.eye(2),
        "spherical": np.diagonal(covs, axis1=1, axis2=2).mean(axis=1)[:, None, None]
        * np.eye(2),
        "tied": np.broadcast_to(np.einsum("k,kij->ij", w, covs), (3, 2, 2)),
    }
    for covariance_type, start in expected.items():
        ml = fit_ml_gradient(X, 3, init=em3, covariance_type=covariance_type, max_iter=2000)
        np.testing.assert_allclose(ml.info["init"]["covariances"], start, rtol=1e-10)
        init = {"weights": w, "means": em3.means, "covariances": covs}
        ml2 = fit_ml_gradient(X, 3, init=init, covariance_type=covariance_type, max_iter=2000)
        assert ml2.log_likelihood == ml.log_likelihood


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_collapse_is_reported_for_restricted_structures(blobs, em3, covariance_type):
    X = blobs.X
    means, covs = em3.means.copy(), em3.covariances.copy()
    means[0] = X[5]
    covs[0] = np.diag((0.01 * X.std(axis=0)) ** 2)
    init = {"weights": em3.weights, "means": means, "covariances": covs}
    with pytest.warns(ConvergenceWarning, match="unbounded.*component 0.*Bayesian fit"):
        est = fit_ml_gradient(X, 3, init=init, min_scale=1e-4,
                              covariance_type=covariance_type)
    assert est.converged is False and est.covariance_type == covariance_type
    info = est.info
    assert info["diverged"] is True and info["component"] == 0
    assert info["min_scale"] < 1e-4 and 5 in info["points"]
    assert np.isfinite([est.log_likelihood, est.bic, est.aic]).all()
    path = np.array(info["log_likelihood_path"])
    assert path[-1] > path[-20]


def test_gradient_ml_bad_covariance_type(blobs):
    X = blobs.X[:50]
    for bad in ("diagonal", "Full", None, 3):
        with pytest.raises(ValueError, match="'full', 'diag', 'spherical', 'tied'"):
            fit_ml_gradient(X, 2, covariance_type=bad)
