"""Frequency weights (sample_weight): integer weights are the rows repeated."""

import warnings

import numpy as np
import pytest
from helpers import log_posterior_fn, match, random_parameters

from bayesgmm import BayesianGMM, fit
from bayesgmm.datasets import make_mixture
from bayesgmm.exceptions import DataWarning
from bayesgmm.ml import fit_em
from bayesgmm.model import build_model, point_from_params
from bayesgmm.standardize import Standardizer

TRUTH = make_mixture(150, 3, 3, random_state=5)
WEIGHTS = np.random.default_rng(0).integers(0, 4, size=150)  # 0 to 3 copies of each row
REPEATED = np.repeat(TRUTH.X, WEIGHTS, axis=0)


def test_weighted_standardisation_is_that_of_the_repeated_rows():
    for common in (False, True):
        a = Standardizer.fit(TRUTH.X, sample_weight=WEIGHTS, common_scale=common)
        b = Standardizer.fit(REPEATED, common_scale=common)
        np.testing.assert_allclose(a.center, b.center, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(a.scale, b.scale, rtol=1e-13)


@pytest.mark.parametrize(("covariance_type", "missing"), [("full", False), ("diag", True)])
def test_integer_weights_give_the_log_posterior_of_repeated_rows(covariance_type, missing):
    rng = np.random.default_rng(1)
    X = TRUTH.X.copy()
    if missing:
        X[rng.random(X.shape) < 0.2] = np.nan
        X[np.isnan(X).all(axis=1), 0] = 0.0
    std = Standardizer.fit(X, sample_weight=WEIGHTS)
    weighted = build_model(std.transform(X), 3, covariance_type=covariance_type,
                           sample_weight=WEIGHTS)
    repeated = build_model(std.transform(np.repeat(X, WEIGHTS, axis=0)), 3,
                           covariance_type=covariance_type)
    f, g = log_posterior_fn(weighted), log_posterior_fn(repeated)
    for _ in range(3):
        w, mu, covs = random_parameters(rng, 3, 3)
        point = point_from_params(w, mu, np.linalg.cholesky(covs),
                                  covariance_type=covariance_type)
        # The same sum in another order: 1e-10 relative.
        np.testing.assert_allclose(f(point), g(point), rtol=1e-10)


def test_integer_weights_give_the_map_of_repeated_rows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weighted = fit(TRUTH.X, 3, method="map", sample_weight=WEIGHTS, random_state=0)
        repeated = fit(REPEATED, 3, method="map", random_state=0)
    a = weighted["posterior"]["means"].to_numpy()[0, 0]
    b = repeated["posterior"]["means"].to_numpy()[0, 0]
    order = match(b, a)
    # The same optimum reached from other starts: to the optimiser's tolerance.
    np.testing.assert_allclose(a[order], b, atol=1e-4)
    np.testing.assert_allclose(weighted["posterior"]["weights"].to_numpy()[0, 0][order],
                               repeated["posterior"]["weights"].to_numpy()[0, 0], atol=1e-5)
    np.testing.assert_array_equal(weighted["constant_data"]["sample_weight"], WEIGHTS)


def test_weighted_em_is_em_on_repeated_rows():
    weighted = fit_em(TRUTH.X, 3, sample_weight=WEIGHTS, random_state=0)
    repeated = fit_em(REPEATED, 3, random_state=0)
    np.testing.assert_allclose(weighted.log_likelihood, repeated.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(weighted.bic, repeated.bic, rtol=1e-9)
    order = match(repeated.means, weighted.means)
    np.testing.assert_allclose(weighted.means[order], repeated.means, atol=1e-6)
    np.testing.assert_allclose(weighted.covariances[order], repeated.covariances, atol=1e-6)


def test_estimator_passes_weights_and_zero_weights_drop_rows(tmp_path):
    keep = WEIGHTS > 0
    a = BayesianGMM(3, method="map", random_state=0).fit(TRUTH.X, sample_weight=keep * 1.0)
    b = BayesianGMM(3, method="map", random_state=0).fit(TRUTH.X[keep])
    order = match(b.means_, a.means_)
    np.testing.assert_allclose(a.means_[order], b.means_, atol=1e-4)
    # Saved and loaded, the fit keeps its weights.
    a.save(tmp_path / "weighted.nc")
    loaded = BayesianGMM.load(tmp_path / "weighted.nc")
    np.testing.assert_array_equal(loaded.idata_["constant_data"]["sample_weight"], keep * 1.0)
    np.testing.assert_array_equal(loaded.predict_proba(TRUTH.X), a.predict_proba(TRUTH.X))


@pytest.mark.parametrize(("weights", "pattern"), [
    (np.ones(149), r"one weight per row of X: shape \(150,\), got \(149,\)"),
    (np.ones((150, 1)), r"shape \(150,\), got \(150, 1\)"),
    (np.r_[-1.0, np.ones(149)], r"finite and non-negative; rows \[0\]"),
    (np.r_[np.ones(149), np.nan], r"rows \[149\] are not"),
    (np.zeros(150), r"zero for every row"),
])
def test_bad_weights_are_refused_with_what_to_change(weights, pattern):
    for call in (lambda: fit(TRUTH.X, 3, method="map", sample_weight=weights),
                 lambda: fit_em(TRUTH.X, 3, sample_weight=weights)):
        with pytest.raises(ValueError, match=pattern):
            call()


def test_weights_and_missing_entries_together():
    X = TRUTH.X.copy()
    X[np.random.default_rng(2).random(X.shape) < 0.15] = np.nan
    X[np.isnan(X).all(axis=1), 1] = 0.0
    with pytest.warns(DataWarning, match="missing entries"):
        weighted = fit_em(X, 3, sample_weight=WEIGHTS, random_state=0)
    with pytest.warns(DataWarning, match="missing entries"):
        repeated = fit_em(np.repeat(X, WEIGHTS, axis=0), 3, random_state=0)
    np.testing.assert_allclose(weighted.log_likelihood, repeated.log_likelihood, rtol=1e-8)


# The Python linker imports PyTensor's BLAS module, which warns that no BLAS is linked: true,
# and beside the point of a test of which rows a term weighs.
@pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS:UserWarning")
def test_minibatches_weigh_their_rows():
    """Each minibatch's term carries its rows' weights: with every weight 2.5, the same
    random batch gives 2.5 times the unweighted term."""
    Z = Standardizer.fit(TRUTH.X).transform(TRUTH.X)
    values = []
    from pymc.model.transform.conditioning import remove_value_transforms
    from pytensor.compile.mode import Mode

    point = point_from_params(np.full(3, 1 / 3), TRUTH.means[:, :3] * 0.1,
                              np.repeat(np.eye(3)[None], 3, axis=0))
    for weights in (None, np.full(150, 2.5)):
        model = remove_value_transforms(build_model(Z, 3, batch_size=40,
                                                    sample_weight=weights))
        term = model.logp(vars=[model["x"]], jacobian=False)
        # PyTensor's Python linker compiles at once, and the batches' RNG advances from
        # call to call (a JAX graph gets a copy).
        f = model.compile_fn(term, mode=Mode(linker="py", optimizer="fast_compile"),
                             random_seed=7)
        values.append([float(f(point)) for _ in range(3)])
    assert len(set(values[0])) == 3  # three different random batches
    np.testing.assert_allclose(np.array(values[1]) / np.array(values[0]), 2.5, rtol=1e-12)
