"""The bad-input matrix: every entry point against the same odd and broken inputs.

Entry points: the estimator (``BayesianGMM`` and ``bayesgmm.fit``), the maximum-likelihood
baselines (``fit_em``, ``fit_ml_gradient``, ``singularity_path`` and ``PointEstimate``'s
predictions) and the command line (``bayesgmm.cli.main`` in-process, and the installed
``bayesgmm`` script for a couple of cases).

Each case states its expected outcome:

* an error: exception type and a pattern that checks the message says what to change
  (names the offending rows or columns, the valid options, or the fix);
* warnings: each with its class and pattern, and then a correct fit;
* a correct fit: the fitted means, on the user's scale, against known truth.

The known truth of a fit is the sample mean of each generating group: on clusters this far
apart (centres 12.8 standard deviations apart) the maximum-likelihood means equal them up to
responsibilities that differ from 0 or 1 by less than e^-60 (computed with the true
parameters for every row), and the MAP means differ only by the prior's pull (0.0015 cluster
sd measured here).

pytest runs with ``filterwarnings = error``: any warning not listed in a case fails it.
"""

import contextlib
import functools
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import LABELS, X2
from sklearn.exceptions import NotFittedError

from bayesgmm import BayesianGMM, ConvergenceWarning, DataWarning, FitWarning, fit
from bayesgmm.cli import main
from bayesgmm.ml import fit_em, fit_ml_gradient
from bayesgmm.singularity import singularity_path

# ------------------------------------------------------------------------------------------
# Data with known truth: helpers.X2, two clusters 12.8 sds apart (CENTERS, LABELS)
# ------------------------------------------------------------------------------------------


def group_means(X, labels=LABELS):
    """Sample mean of each generating group, in float64: the truth any fit should recover."""
    X = np.asarray(X, dtype=np.float64)
    return np.stack([X[labels == j].mean(axis=0) for j in np.unique(labels)])


def by_first_feature(means):
    """Components in order of their first coordinate (fits label them arbitrarily)."""
    means = np.asarray(means, dtype=np.float64)
    return means[np.argsort(means[:, 0], kind="stable")]


def assert_means(fitted, truth, sd, tol, what=""):
    """Fitted means within ``tol`` (in units of ``sd``, the cluster scale) of the truth."""
    err = np.abs(by_first_feature(fitted) - by_first_feature(truth)) / sd
    assert err.max() <= tol, f"{what}: means off by {err.max():.3g} sd > {tol:g}\n{fitted}"


# Tolerances on the means, in cluster standard deviations (see the module docstring).
TOL_MAP = 0.01  # MAP: the prior pulls the means by ~0.0015 sd here
TOL_ML = 1e-4  # EM and gradient ML: equal to the group means up to the optimisers' tolerance
# Exact equivariance: the priors and EM live on the standardised scale, so a shifted or
# rescaled data set gives the same fit, moved. 1e-6 sd is ~70 float64 ulps at an offset of 1e8
# (spacing 1.5e-8) and 100x the differences measured here (~1e-8 sd); a bug in the
# standardisation (a lost offset, a scale applied twice) would be off by O(1) sd or more.
TOL_EQUIVARIANT = 1e-6


# ------------------------------------------------------------------------------------------
# Expected outcomes
# ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # "error", "warn" or "fit"
    exc: type | None = None
    match: str = ""
    warnings: list = field(default_factory=list)  # [(category, pattern)], kind "warn"


def error(exc, match):
    return Outcome("error", exc=exc, match=match)


def warn(*expected):
    return Outcome("warn", warnings=list(expected))


FIT = Outcome("fit")


def run(outcome, call):
    """Run ``call`` and check it ends as ``outcome`` says; return its result for a fit."""
    if outcome.kind == "error":
        with pytest.raises(outcome.exc, match=outcome.match):
            call()
        return None
    with contextlib.ExitStack() as stack:
        # pytest.warns re-emits what it does not match, so every warning must be listed and
        # an unlisted one turns into an error (filterwarnings = error).
        for category, pattern in outcome.warnings:
            stack.enter_context(pytest.warns(category, match=pattern))
        return call()


# ------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------


def _with(X, rows_cols_values):
    X = np.array(X, dtype=float)
    for i, j, v in rows_cols_values:
        X[i, j] = v
    return X


def fit_estimator(X, k, **options):
    return BayesianGMM(k, method="map", random_state=0, **options).fit(X).means_


def fit_function(X, k, **options):
    return fit(X, k, method="map", random_state=0,
               **options)["posterior"]["means"].to_numpy()[0, 0]


def fit_em_means(X, k, **options):
    return fit_em(X, k, n_init=2, random_state=0, **options).means


def fit_gradient_means(X, k):
    return fit_ml_gradient(X, k, random_state=0).means


def singularity(X, k):
    return singularity_path(X, max(k, 2), 0, scales=[1.0], random_state=0)


FITTERS = {
    "estimator": fit_estimator,
    "fit": fit_function,
    "fit_em": fit_em_means,
    "fit_ml_gradient": fit_gradient_means,
    "singularity_path": singularity,
}

# ------------------------------------------------------------------------------------------
# 1. Data that every fitting entry point must refuse, with the same advice
# ------------------------------------------------------------------------------------------

NAN_ROWS = r"row\(s\) 0, 1, 2, 3, 4 and 3 more\. Drop those rows or impute them"
DATA_ERRORS = [
    pytest.param(lambda: _with(X2, [(5, 0, np.inf)]), 2, error(
        ValueError, r"X contains infinite values in row\(s\) 5\. Drop those rows"), id="inf"),
    pytest.param(lambda: X2[:, 0], 2, error(
        ValueError, r"got a 1-D array of shape \(100,\)\. Reshape your data: X\.reshape\(-1, 1\) "
                    r"if it holds one feature"), id="1d"),
    pytest.param(lambda: np.ones((4, 3, 2)), 2, error(
        ValueError, r"Expected a 2-D array for X, got 3 dimension"), id="3d"),
    pytest.param(lambda: np.empty((0, 2)), 2, error(
        ValueError, r"X is empty \(shape \(0, 2\)\); it needs at least one row and one column"),
        id="empty-rows"),
    pytest.param(lambda: np.empty((10, 0)), 2, error(
        ValueError, r"X is empty \(shape \(10, 0\)\).* Found 0 feature\(s\) \(shape=\(10, 0\)\) "
                    r"while a minimum of 1 is required"), id="empty-columns"),
    pytest.param(lambda: [], 2, error(ValueError, r"X is empty \(shape \(0,\)\)"),
                 id="empty-list"),
    pytest.param(lambda: X2[:1], 2, error(
        ValueError, r"X has 1 sample\(s\) \(rows\), but fitting 2 component\(s\) needs at "
                    r"least 2\. Reduce n_components or provide more data"), id="one-row"),
    pytest.param(lambda: X2[:1], 1, error(
        ValueError, r"X has 1 sample\(s\) \(rows\), but fitting \d component\(s\) needs at "
                    r"least 2"),
        id="one-row-one-component"),
    pytest.param(lambda: X2[:3], 5, error(
        ValueError, r"X has 3 sample\(s\) \(rows\), but fitting 5 component\(s\) needs at "
                    r"least 5\. Reduce n_components"), id="fewer-rows-than-components"),
    pytest.param(lambda: np.array([["a", "b"], ["c", "d"], ["e", "f"]]), 2, error(
        TypeError, r"X must be numeric, got an array of dtype <U1\. Convert it to floats"),
        id="strings"),
    pytest.param(lambda: np.array([[1.0, "x"], [2.0, 3.0], [4.0, 5.0]], dtype=object), 2,
                 error(TypeError, r"dtype object with non-numeric entries \(could not convert "
                                  r"string to float: 'x'\)\. Convert it"),
                 id="object-dtype-text"),
    pytest.param(lambda: X2 > 0, 2, error(TypeError, r"must be numeric, got an array of dtype "
                                                     r"bool"), id="bool-array"),
    pytest.param(lambda: X2 + 1j, 2, error(ValueError, r"Complex data not supported.*X\.real"),
                 id="complex"),
    pytest.param(lambda: [[1.0, 2.0], [3.0], [4.0, 5.0]], 2, error(
        ValueError, r"could not be read as a 2-D numeric array.*same number of numeric "
                    r"entries"), id="ragged-list"),
    pytest.param(lambda: pd.DataFrame({"a": X2[:, 0], "name": "row"}), 2, error(
        TypeError, r"X has non-numeric column\(s\) \['name'\]\. Drop them, or encode them as "
                   r"numbers"), id="dataframe-text-column"),
    pytest.param(lambda: pd.DataFrame({"a": X2[:, 0], "flag": X2[:, 1] > 0}), 2, error(
        TypeError, r"non-numeric column\(s\) \['flag'\]"), id="dataframe-bool-column"),
    pytest.param(lambda: pd.DataFrame(X2[:, [0, 1, 0]], columns=["a", "b", "a"]), 2, error(
        ValueError, r"Feature names must be unique.*rename or drop the repeated column\(s\) "
                    r"\['a'\]"), id="dataframe-repeated-column-names"),
]


@pytest.mark.parametrize("entry", list(FITTERS))
@pytest.mark.parametrize(("make", "k", "outcome"), DATA_ERRORS)
def test_bad_data(entry, make, k, outcome):
    run(outcome, lambda: FITTERS[entry](make(), k))


# Missing entries: refused by the entry points that cannot marginalise them, and by the others
# with missing="error".
MISSING_ERRORS = [
    pytest.param(lambda: _with(X2, [(3, 1, np.nan)]), 2, error(
        ValueError, r"X contains NaN in row\(s\) 3\. Drop those rows or impute them before "
                    r"fitting"), id="nan"),
    pytest.param(lambda: _with(X2, [(3, 1, np.nan), (5, 0, -np.inf)]), 2, error(
        ValueError, r"X contains NaN or infinite values in row\(s\) 3, 5\. Drop"),
        id="nan-and-inf"),
    pytest.param(lambda: _with(X2, [(i, 0, np.nan) for i in range(8)]), 2, error(
        ValueError, NAN_ROWS), id="many-nan-rows"),
    pytest.param(lambda: [[1.0, None], [2.0, 3.0], [4.0, 5.0]], 2, error(
        ValueError, r"X contains NaN in row\(s\) 0\."), id="list-with-none"),
    pytest.param(lambda: pd.DataFrame(_with(X2, [(2, 1, np.nan), (7, 0, np.nan)]),
                                      columns=["a", "b"]), 2, error(
        ValueError, r"X has missing values in row\(s\) 2, 7\. Drop those rows \(X\.dropna\(\)\) "
                    r"or impute them"), id="dataframe-missing-values"),
    pytest.param(lambda: pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"),
                                       "b": [1.0, 2.0, 3.0, 4.0]}), 2, error(
        ValueError, r"X has missing values in row\(s\) 1\."), id="dataframe-nullable-int-na"),
]
REFUSING = {"estimator": functools.partial(fit_estimator, missing="error"),
            "fit": functools.partial(fit_function, missing="error"),
            "fit_em": functools.partial(fit_em_means, missing="error"),
            "fit_ml_gradient": fit_gradient_means, "singularity_path": singularity}


@pytest.mark.parametrize("entry", list(REFUSING))
@pytest.mark.parametrize(("make", "k", "outcome"), MISSING_ERRORS)
def test_missing_entries_refused(entry, make, k, outcome):
    run(outcome, lambda: REFUSING[entry](make(), k))


# What the marginalising entry points (the default missing="marginalize") refuse.
MARGINALIZE_ERRORS = [
    pytest.param(lambda: _with(X2, [(3, 0, np.nan), (3, 1, np.nan), (6, 0, np.nan)]), 2,
                 error(ValueError, r"X has every entry missing in row\(s\) 3: they carry no "
                                   r"information\. Drop those rows"), id="empty-row"),
    pytest.param(lambda: _with(X2, [(i, 1, np.nan) for i in range(100)]), 2,
                 error(ValueError, r"every entry missing in column\(s\) \[1\]: drop them"),
                 id="empty-column"),
    pytest.param(lambda: _with(X2, [(3, 1, np.nan), (5, 0, -np.inf)]), 2, error(
        ValueError, r"X contains infinite values in row\(s\) 5\. Drop"), id="nan-and-inf"),
]


@pytest.mark.parametrize("entry", ["estimator", "fit", "fit_em"])
@pytest.mark.parametrize(("make", "k", "outcome"), MARGINALIZE_ERRORS)
def test_marginalised_data_refused(entry, make, k, outcome):
    run(outcome, lambda: FITTERS[entry](make(), k))


# ------------------------------------------------------------------------------------------
# 2. Odd but valid data: a correct fit on the user's scale (with warnings where deserved)
# ------------------------------------------------------------------------------------------


@dataclass
class Valid:
    """A valid data set: the data, K, the truth and the cluster scale the tolerance uses."""

    X: object
    k: int
    truth: np.ndarray
    sd: float
    shift: float = 0.0  # X = X2 * scale + shift, for the equivariance check
    scale: float | None = None


def _valid(name):
    if name == "float32":
        X = X2.astype(np.float32)
        return Valid(X, 2, group_means(X), 1.0)
    if name == "integers":  # the data in tenths, rounded
        X = np.round(X2 * 10).astype(np.int64)
        return Valid(X, 2, group_means(X), 10.0)
    if name == "offset-1e8":
        return Valid(X2 + 1e8, 2, group_means(X2) + 1e8, 1.0, shift=1e8, scale=1.0)
    if name == "scale-1e-8":
        return Valid(X2 * 1e-8, 2, group_means(X2) * 1e-8, 1e-8, scale=1e-8)
    if name == "scale-1e8":
        return Valid(X2 * 1e8, 2, group_means(X2) * 1e8, 1e8, scale=1e8)
    if name == "one-feature":
        return Valid(X2[:, :1], 2, group_means(X2)[:, :1], 1.0)
    if name == "one-component":
        return Valid(X2, 1, X2.mean(axis=0, keepdims=True), 1.0)
    # Other containers of the same numbers.
    if name == "object-dtype-numbers":
        return Valid(X2.astype(object), 2, group_means(X2), 1.0)
    if name == "list-of-lists":
        return Valid(X2.tolist(), 2, group_means(X2), 1.0)
    if name == "dataframe":
        return Valid(pd.DataFrame(X2, columns=["a", "b"]), 2, group_means(X2), 1.0)
    raise KeyError(name)


VALID = ["float32", "integers", "offset-1e8", "scale-1e-8", "scale-1e8", "one-feature",
         "one-component"]
CONTAINERS = ["object-dtype-numbers", "list-of-lists", "dataframe"]
TOLERANCE = {"estimator": TOL_MAP, "fit_em": TOL_ML, "fit_ml_gradient": TOL_ML}
# A MAP fit costs ~3 s (compiling the model), an ML fit ~0.1 s: the containers, which only
# exercise check_data's conversion, are fitted by the baselines alone.
VALID_CASES = [pytest.param(entry, name, id=f"{name}-{entry}")
               for name in VALID for entry in ("estimator", "fit_em", "fit_ml_gradient")]
VALID_CASES += [pytest.param(entry, name, id=f"{name}-{entry}")
                for name in CONTAINERS for entry in ("fit_em", "fit_ml_gradient")]


@pytest.fixture(scope="module")
def fitted(x2_map_fit):
    """A fitted estimator (MAP) and a fitted EM PointEstimate, both on X2."""
    return {"estimator": x2_map_fit,
            "point_estimate": fit_em(X2, 2, n_init=2, random_state=0)}


@pytest.fixture(scope="module")
def reference(fitted):
    """Each entry point's means on X2 itself (for the equivariance checks)."""
    gradient = []

    def get(entry):
        if entry == "estimator":
            return fitted["estimator"].means_
        if entry == "fit_em":  # fit_em_means's settings
            return fitted["point_estimate"].means
        if not gradient:
            gradient.append(fit_gradient_means(X2, 2))
        return gradient[0]

    return get


@pytest.mark.parametrize(("entry", "name"), VALID_CASES)
def test_valid_data_fits_on_the_users_scale(entry, name, reference):
    case = _valid(name)
    means = run(FIT, lambda: FITTERS[entry](case.X, case.k))
    assert means.dtype == np.float64 and means.shape == case.truth.shape
    assert_means(means, case.truth, case.sd, TOLERANCE[entry], f"{entry} on {name}")
    if case.scale is not None:
        moved_back = (by_first_feature(means) - case.shift) / case.scale
        assert_means(moved_back, reference(entry), 1.0, TOL_EQUIVARIANT,
                     f"{entry} on {name} vs the unscaled fit")


CONSTANT = np.column_stack([X2, np.full(100, 7.0)])
FEW_DISTINCT = np.repeat(np.array([[0.0, 1.0], [5.0, 2.0]]), 10, axis=0)
IDENTICAL = np.tile([1.5, -2.0], (20, 1))
DEGENERATE = {"constant": CONSTANT, "few-distinct": FEW_DISTINCT, "identical": IDENTICAL}

CONSTANT_WARNING = (DataWarning, r"X has constant column\(s\) \['x2'\]: they carry no "
                                 r"information.*Consider dropping them")
CONSTANT_ML = r"constant column\(s\) \['x2'\].*any number of components\. Drop those columns"
FEW_WARNING = (DataWarning, r"only 2 distinct row\(s\) for 3 components: some components can "
                            r"only be empty\. Reduce n_components")
IDENTICAL_WARNINGS = [
    (DataWarning, r"constant column\(s\) \['x0', 'x1'\].*Consider dropping them"),
    (DataWarning, r"only 1 distinct row\(s\) for 2 components.*Reduce n_components"),
]
DEGENERATE_CASES = [
    # A constant column: the Bayesian fit is fine; for maximum likelihood every component's
    # variance along it is zero (the likelihood is unbounded), and the advice says to drop it.
    pytest.param("estimator", "constant", 2, [CONSTANT_WARNING], id="constant-column-estimator"),
    pytest.param("fit_em", "constant", 2, [
        CONSTANT_WARNING, (FitWarning, r"All 2 EM starts ended in degenerate.*" + CONSTANT_ML)],
        id="constant-column-fit_em"),
    pytest.param("fit_ml_gradient", "constant", 2, [
        CONSTANT_WARNING, (ConvergenceWarning, r"likelihood is unbounded.*" + CONSTANT_ML)],
        id="constant-column-fit_ml_gradient"),
    # Fewer distinct rows than components: one component can only be empty.
    pytest.param("estimator", "few-distinct", 3, [
        FEW_WARNING,
        (FitWarning, r"Component\(s\) \[\d\] are \(nearly\) empty.*reduce n_components"),
        (FitWarning, r"nearly singular covariance.*Check for duplicated rows")],
        id="fewer-distinct-rows-estimator"),
    pytest.param("fit_em", "few-distinct", 3, [
        FEW_WARNING, (FitWarning, r"degenerate.*Use the Bayesian fit.*or fewer components")],
        id="fewer-distinct-rows-fit_em"),
    pytest.param("fit_ml_gradient", "few-distinct", 3, [
        FEW_WARNING, (ConvergenceWarning, r"collapsing onto data point.*use the Bayesian fit")],
        id="fewer-distinct-rows-fit_ml_gradient"),
    # All rows identical: every column is constant and only one row is distinct.
    pytest.param("estimator", "identical", 2, IDENTICAL_WARNINGS + [
        (FitWarning, r"Component\(s\) \[1\] are \(nearly\) empty.*reduce n_components")],
        id="identical-rows-estimator"),
    pytest.param("fit_em", "identical", 2, IDENTICAL_WARNINGS + [
        (FitWarning, r"degenerate.*constant column\(s\) \['x0', 'x1'\].*Drop those columns")],
        id="identical-rows-fit_em"),
    pytest.param("fit_ml_gradient", "identical", 2, IDENTICAL_WARNINGS + [
        (ConvergenceWarning, r"unbounded.*constant column\(s\) \['x0', 'x1'\]")],
        id="identical-rows-fit_ml_gradient"),
]


@pytest.mark.parametrize(("entry", "data", "k", "expected"), DEGENERATE_CASES)
def test_degenerate_data_warns_and_still_fits(entry, data, k, expected):
    X = DEGENERATE[data]
    means = run(warn(*expected), lambda: FITTERS[entry](X, k))
    assert np.isfinite(means).all()
    sd = X.std(axis=0)
    if data == "constant":
        # The informative columns as on X2 alone; the constant one exactly where it is.
        tol = TOL_MAP if entry == "estimator" else 1e-3  # gradient ML stops at the collapse
        assert_means(means[:, :2], group_means(X2), 1.0, tol, entry)
        np.testing.assert_allclose(means[:, 2], 7.0, atol=1e-6)
    elif data == "few-distinct":
        # Each distinct row has a component on it: within 0.2 feature-sd for the MAP (the
        # prior on the scales keeps the components from collapsing onto the repeated points
        # and moves them by 0.08 sd), 1e-3 for maximum likelihood. The other component
        # sits between them, at least 1 feature-sd away from both.
        tol = 0.2 if entry == "estimator" else 1e-3
        for row in np.unique(X, axis=0):
            assert (np.abs(means - row) / sd).max(axis=1).min() <= tol, (row, means)
    else:
        np.testing.assert_allclose(means, np.tile(IDENTICAL[0], (k, 1)), atol=1e-6)


# ------------------------------------------------------------------------------------------
# 3. Options: n_components, method, sampler, draws, chains (estimator and bayesgmm.fit)
# ------------------------------------------------------------------------------------------

INT_RE = r" must be an integer >= {}, got "
OPTION_ERRORS = [
    pytest.param({"n_components": 2.5}, error(TypeError, "n_components" + INT_RE.format(1)
                                              + r"float 2\.5"), id="n_components-float"),
    pytest.param({"n_components": "3"}, error(TypeError, "n_components" + INT_RE.format(1)
                                              + r"str '3'"), id="n_components-str"),
    pytest.param({"n_components": True}, error(TypeError, "n_components" + INT_RE.format(1)
                                               + "bool"), id="n_components-bool"),
    pytest.param({"n_components": None}, error(TypeError, "n_components" + INT_RE.format(1)),
                 id="n_components-none"),
    pytest.param({"n_components": 0}, error(ValueError, "n_components" + INT_RE.format(1)
                                            + "0"), id="n_components-0"),
    pytest.param({"n_components": -2}, error(ValueError, "n_components" + INT_RE.format(1)
                                             + "-2"), id="n_components-negative"),
    pytest.param({"method": "gibbs"}, error(
        ValueError, r"Unknown method 'gibbs'; choose one of \('nuts', 'advi', 'fullrank_advi', "
                    r"'map'\)"), id="method-unknown"),
    pytest.param({"method": "MAP"}, error(ValueError, r"Unknown method 'MAP'; choose one of"),
                 id="method-wrong-case"),
    pytest.param({"sampler": "stan"}, error(
        ValueError, r"Unknown sampler 'stan'; choose one of \('auto', 'pymc', 'nutpie', "
                    r"'numpyro', 'blackjax'\)"), id="sampler-unknown"),
    pytest.param({"draws": 0}, error(ValueError, "draws" + INT_RE.format(1) + "0"),
                 id="draws-0"),
    pytest.param({"draws": -10}, error(ValueError, "draws" + INT_RE.format(1) + "-10"),
                 id="draws-negative"),
    pytest.param({"draws": 2.5}, error(TypeError, "draws" + INT_RE.format(1)), id="draws-float"),
    pytest.param({"chains": 0}, error(ValueError, "chains" + INT_RE.format(1) + "0"),
                 id="chains-0"),
    pytest.param({"tune": -1}, error(ValueError, "tune" + INT_RE.format(0) + "-1"),
                 id="tune-negative"),
    pytest.param({"random_state": -1}, error(ValueError, "random_state must be a "
                                                         "non-negative integer, got -1"),
                 id="random_state-negative"),
]


@pytest.mark.parametrize("entry", ["estimator", "fit"])
@pytest.mark.parametrize(("options", "outcome"), OPTION_ERRORS)
def test_bad_options(entry, options, outcome):
    # method="map": were a check missing, the test would fail after a quick fit, not a
    # NUTS run.
    options = {"n_components": 2, "method": "map", **options}
    k = options.pop("n_components")
    if entry == "estimator":
        run(outcome, lambda: BayesianGMM(k, **options).fit(X2))
    else:
        run(outcome, lambda: fit(X2, k, **options))


BASELINE_OPTION_ERRORS = [
    pytest.param(fit_em, {"n_components": 2.5}, error(TypeError, "n_components must be an "
                                                                 "integer"), id="em-k-float"),
    pytest.param(fit_em, {"n_components": 0}, error(ValueError, "n_components must be an "
                                                                "integer >= 1"), id="em-k-0"),
    pytest.param(fit_em, {"n_init": 0}, error(ValueError, "n_init" + INT_RE.format(1)),
                 id="em-n_init-0"),
    pytest.param(fit_em, {"max_iter": 0}, error(ValueError, "max_iter" + INT_RE.format(1)),
                 id="em-max_iter-0"),
    pytest.param(fit_em, {"n_candidates": 0}, error(ValueError, "n_candidates"
                                                    + INT_RE.format(1)), id="em-candidates-0"),
    pytest.param(fit_em, {"reg_covar": -1.0}, error(ValueError, r"reg_covar must be a finite "
                                                                r"number >= 0"),
                 id="em-reg_covar-negative"),
    pytest.param(fit_em, {"reg_covar": np.nan}, error(ValueError, "reg_covar must be a finite"),
                 id="em-reg_covar-nan"),
    pytest.param(fit_em, {"tol": 0.0}, error(ValueError, r"tol must be a finite number > 0"),
                 id="em-tol-0"),
    pytest.param(fit_em, {"random_state": "seed"}, error(
        TypeError, "random_state must be None, an int or a numpy Generator"), id="em-seed-str"),
    pytest.param(fit_ml_gradient, {"n_components": -1}, error(ValueError, "n_components must "
                                                                          "be an integer >= 1"),
                 id="gradient-k-negative"),
    pytest.param(fit_ml_gradient, {"max_iter": 0}, error(ValueError, "max_iter"
                                                         + INT_RE.format(1)),
                 id="gradient-max_iter-0"),
    pytest.param(fit_ml_gradient, {"min_scale": 0.0}, error(ValueError, r"min_scale must be a "
                                                                        r"finite number > 0"),
                 id="gradient-min_scale-0"),
    pytest.param(fit_ml_gradient, {"init": "kmeans"}, error(TypeError, r"init must be None, a "
                                                                       r"PointEstimate or a "
                                                                       r"dict"),
                 id="gradient-init-str"),
    pytest.param(singularity_path, {"n_components": 1}, error(
        ValueError, r"singularity_path needs n_components >= 2"), id="singularity-k-1"),
    pytest.param(singularity_path, {"point_index": 100}, error(
        ValueError, r"point_index must be a row of X, in \[0, 100\), got 100"),
        id="singularity-point-out-of-range"),
    pytest.param(singularity_path, {"point_index": 1.5}, error(
        TypeError, r"point_index must be an integer row index"), id="singularity-point-float"),
    pytest.param(singularity_path, {"scales": []}, error(
        ValueError, r"scales must be a non-empty sequence of finite positive numbers"),
        id="singularity-scales-empty"),
    pytest.param(singularity_path, {"scales": [1.0, -0.1]}, error(
        ValueError, r"scales must be .*positive"), id="singularity-scales-negative"),
]


@pytest.mark.parametrize(("func", "options", "outcome"), BASELINE_OPTION_ERRORS)
def test_bad_baseline_options(func, options, outcome):
    options = dict(options)
    k = options.pop("n_components", 2)
    if func is singularity_path:
        options = {"point_index": 0, **options}
    run(outcome, lambda: func(X2, k, **options))


# ------------------------------------------------------------------------------------------
# 4. Prediction: wrong width, bad rows, before fit (estimator and PointEstimate)
# ------------------------------------------------------------------------------------------


PREDICT_ERRORS = [
    pytest.param(np.ones((4, 3)), error(
        ValueError, r"X has 3 features, but (BayesianGMM|PointEstimate) is expecting 2 "
                    r"features as input \(it was fitted on 2 columns\)\. Pass data with the "
                    r"same columns as in fit"),
        id="too-many-features"),
    pytest.param(np.ones((4, 1)), error(
        ValueError, r"X has 1 features, but \w+ is expecting 2 features"),
        id="too-few-features"),
    pytest.param(np.ones(2), error(
        ValueError, r"1-D array of shape \(2,\)\. .*X\.reshape\(1, -1\) if it holds one sample"),
        id="1d"),
    pytest.param(_with(X2[:3], [(2, 1, np.inf)]), error(ValueError, r"infinite values in "
                                                                    r"row\(s\) 2"), id="inf"),
    pytest.param(np.empty((0, 2)), error(ValueError, r"X is empty"), id="empty"),
    pytest.param(np.array([["a", "b"]]), error(TypeError, r"X must be numeric"), id="strings"),
]


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
@pytest.mark.parametrize("entry", ["estimator", "point_estimate"])
@pytest.mark.parametrize(("X", "outcome"), PREDICT_ERRORS)
def test_bad_prediction_input(fitted, entry, method, X, outcome):
    run(outcome, lambda: getattr(fitted[entry], method)(X))


@pytest.mark.parametrize("entry", ["estimator", "point_estimate"])
@pytest.mark.parametrize("kind", ["one-row", "float32", "integers", "dataframe", "list"])
def test_odd_but_valid_prediction_input(fitted, entry, kind):
    model = fitted[entry]
    rows = np.round(X2[:6])  # integral values, so every container holds the same numbers
    X = {"one-row": rows[:1], "float32": rows.astype(np.float32),
         # Integer column labels are no feature names (scikit-learn's rule): taken by
         # position without a warning. Named columns for an unnamed fit warn
         # (tests/test_validation.py).
         "integers": rows.astype(np.int64), "dataframe": pd.DataFrame(rows),
         "list": rows.tolist()}[kind]
    n = 1 if kind == "one-row" else 6
    proba = run(FIT, lambda: model.predict_proba(X))
    assert proba.shape == (n, 2) and proba.dtype == np.float64
    # The same answers as for those rows inside the float64 batch.
    np.testing.assert_allclose(proba, model.predict_proba(rows)[:n], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.predict(rows)[:n])
    np.testing.assert_allclose(model.score_samples(X), model.score_samples(rows)[:n],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda m: m.predict(X2), lambda m: m.predict_proba(X2), lambda m: m.score_samples(X2),
    lambda m: m.score(X2), lambda m: m.sample(3), lambda m: m.summary(), lambda m: m.diagnose(),
], ids=["predict", "predict_proba", "score_samples", "score", "sample", "summary", "diagnose"])
def test_estimator_used_before_fit(call):
    # PointEstimate has no unfitted state: the baselines only return fitted ones.
    run(error(NotFittedError, r"This BayesianGMM instance is not fitted yet\. Call 'fit'"),
        lambda: call(BayesianGMM(2, method="map")))


# ------------------------------------------------------------------------------------------
# 5. The command line: exit status 2, one line on stderr, no traceback, nothing written
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csvs(tmp_path_factory):
    """CSV files, good and bad, by name."""
    root = tmp_path_factory.mktemp("csv")
    good = pd.DataFrame(np.round(X2, 3), columns=["a", "b"])
    files = {}

    def frame(name, df):
        files[name] = root / f"{name}.csv"
        df.to_csv(files[name], index=False)

    def text(name, content, mode="w"):
        files[name] = root / f"{name}.csv"
        if mode == "wb":
            files[name].write_bytes(content)
        else:
            files[name].write_text(content)

    frame("good", good)
    frame("text-column", good.assign(name="row"))
    frame("bool-column", good.assign(flag=good["a"] > 0))
    frame("nan-cell", good.assign(b=good["b"].where(good.index != 2)))
    frame("inf-cell", good.assign(a=good["a"].where(good.index != 4, np.inf)))
    frame("one-row", good.iloc[:1])
    frame("two-rows", good.iloc[:2])
    frame("constant-column", good.assign(c=7.0))
    text("empty", "")
    text("header-only", "a,b\n")
    text("ragged", "a,b\n1,2\n3,4,5,6\n")
    text("not-utf8", b"a,b\n\xff\xfe,1\n", mode="wb")
    files["directory"] = root / "directory.csv"
    files["directory"].mkdir()
    files["missing"] = root / "missing.csv"
    return files


def run_cli(argv):
    """(exit status, stderr) of ``bayesgmm argv``, in-process; argparse errors included."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's errors
            status = exc.code
    return status, err.getvalue()


def assert_one_line_error(status, err, pattern):
    import re

    assert status == 2, (status, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.search(r"^bayesgmm( \w+)?: error: ", lines[0]), lines[0]
    assert re.search(pattern, lines[0]), (pattern, lines[0])


def _k(command, k="2"):
    return ["--max-components", k] if command == "select" else ["-k", k]


CLI_DATA_ERRORS = [
    pytest.param("missing", [], r"no such file: .*missing\.csv", id="missing-file"),
    pytest.param("directory", [], r"directory\.csv is a directory, not a CSV file",
                 id="directory"),
    pytest.param("empty", [], r"could not parse .*empty\.csv as CSV: No columns to parse",
                 id="empty-file"),
    pytest.param("header-only", [], r"header-only\.csv has no data rows \(only a header\)",
                 id="header-only"),
    pytest.param("ragged", [], r"could not parse .*ragged\.csv as CSV: .*Expected 2 fields in "
                               r"line 3, saw 4", id="unparsable"),
    pytest.param("not-utf8", [], r"not-utf8\.csv as CSV: it is not UTF-8 text .*save it as a "
                                 r"UTF-8 CSV file", id="not-utf8"),
    pytest.param("text-column", [], r"non-numeric column\(s\) \['name'\] in .*: choose numeric "
                                    r"ones with --columns", id="non-numeric-column"),
    pytest.param("bool-column", [], r"non-numeric column\(s\) \['flag'\]", id="bool-column"),
    pytest.param("nan-cell", [], r"nan-cell\.csv has missing values in column\(s\) \['b'\], data "
                                 r"row\(s\) 3 \(counting from 1 below the header\): fill in or "
                                 r"remove those rows, or leave the column\(s\) out with "
                                 r"--columns", id="nan-cell"),
    pytest.param("inf-cell", [], r"inf-cell\.csv has infinite values in column\(s\) \['a'\], "
                                 r"data row\(s\) 5 ", id="inf-cell"),
    pytest.param("one-row", [], r"one-row\.csv has 1 data row\(s\), but fitting 2 component\(s\) "
                                r"needs at least 2: lower --(max-)?components or add rows",
                 id="one-row"),
    pytest.param("two-rows", ["K=3"], r"two-rows\.csv has 2 data row\(s\), but fitting 3 "
                                      r"component\(s\) needs at least 3: lower "
                                      r"--(max-)?components", id="fewer-rows-than-components"),
    pytest.param("good", ["--columns", "a,zz"], r"column\(s\) \['zz'\] not in .*good\.csv; it "
                                                r"has \['a', 'b'\]", id="unknown-column"),
    pytest.param("good", ["--columns", ","], r"--columns ',' names no column; give "
                                             r"comma-separated names from \['a', 'b'\]",
                 id="columns-empty"),
    pytest.param("good", ["--columns", "a,b,a"], r"column\(s\) \['a'\] named more than once in "
                                                 r"--columns", id="columns-repeated"),
    pytest.param("text-column", ["--columns", "a,b,name"], r"non-numeric column\(s\) \['name'\]",
                 id="columns-selects-text"),
]


@pytest.mark.parametrize("command", ["fit", "compare", "select"])
@pytest.mark.parametrize(("file", "extra", "pattern"), CLI_DATA_ERRORS)
def test_cli_bad_data(csvs, tmp_path, command, file, extra, pattern):
    k = "2"
    if extra and extra[0].startswith("K="):
        k, extra = extra[0][2:], extra[1:]
    out = tmp_path / "out"
    argv = [command, str(csvs[file]), *_k(command, k), "--method", "advi", *extra,
            "--out", str(out)]
    assert_one_line_error(*run_cli(argv), pattern)
    assert not out.exists()  # refused before any work


CLI_OPTION_ERRORS = [
    pytest.param(["fit", "GOOD", "-k", "0"], r"argument --components/-k: must be at least 1, "
                                             r"got 0 \(see 'bayesgmm fit --help'\)",
                 id="components-0"),
    pytest.param(["fit", "GOOD", "-k", "2.5"], r"--components/-k: not an integer: '2\.5'",
                 id="components-float"),
    pytest.param(["fit", "GOOD", "-k", "two"], r"--components/-k: not an integer: 'two'",
                 id="components-text"),
    pytest.param(["fit", "GOOD"], r"the following arguments are required: --components/-k",
                 id="components-missing"),
    pytest.param(["fit", "GOOD", "-k", "2", "--method", "gibbs"],
                 r"argument --method: invalid choice: 'gibbs' \(choose from 'nuts', 'advi', "
                 r"'fullrank_advi', 'map'\)", id="method-unknown"),
    pytest.param(["select", "GOOD", "--max-components", "3", "--method", "map"],
                 r"argument --method: 'map' is one point, and PSIS-LOO needs posterior draws: "
                 r"use nuts, advi or fullrank_advi", id="select-method-map"),
    pytest.param(["fit", "GOOD", "-k", "2", "--sampler", "stan"],
                 r"argument --sampler: invalid choice: 'stan' \(choose from 'auto', 'pymc'",
                 id="sampler-unknown"),
    pytest.param(["fit", "GOOD", "-k", "2", "--draws", "0"], r"argument --draws: must be at "
                                                             r"least 1, got 0", id="draws-0"),
    pytest.param(["compare", "GOOD", "-k", "2", "--chains", "-1"], r"argument --chains: must be "
                                                                   r"at least 1, got -1",
                 id="chains-negative"),
    pytest.param(["fit", "GOOD", "-k", "2", "--seed", "-5"], r"argument --seed: must be a "
                                                             r"non-negative integer, got -5",
                 id="seed-negative"),
    pytest.param(["select", "GOOD", "--max-components", "2", "--min-components", "3"],
                 r"--min-components \(3\) must not exceed --max-components \(2\)",
                 id="min-above-max-components"),
    pytest.param(["fit", "GOOD", "-k", "2", "--bogus"], r"unrecognized arguments: --bogus",
                 id="unknown-option"),
    pytest.param(["cluster", "GOOD"], r"argument command: invalid choice: 'cluster'",
                 id="unknown-command"),
    pytest.param([], r"the following arguments are required: command", id="no-command"),
    pytest.param(["demo", "--method", "gibbs"], r"^bayesgmm demo: error: argument --method: "
                                                r"invalid choice: 'gibbs'", id="demo-method"),
    pytest.param(["demo", "--seed", "-1"], r"argument --seed: must be a non-negative integer",
                 id="demo-seed-negative"),
]


@pytest.mark.parametrize(("argv", "pattern"), CLI_OPTION_ERRORS)
def test_cli_bad_options(csvs, tmp_path, argv, pattern):
    argv = [str(csvs["good"]) if a == "GOOD" else a for a in argv]
    out = tmp_path / "out"
    if argv and argv[0] in ("fit", "compare", "select"):
        argv += ["--out", str(out)]
    assert_one_line_error(*run_cli(argv), pattern)
    assert not out.exists()


def test_cli_constant_column_warns_and_fits(csvs, tmp_path):
    out = tmp_path / "out"
    with pytest.warns(DataWarning, match=r"constant column\(s\) \['c'\].*Consider dropping"):
        status, err = run_cli(["fit", str(csvs["constant-column"]), "-k", "2", "--method",
                               "map", "--out", str(out)])
    assert status == 0 and "error" not in err, err
    summary = pd.read_csv(out / "summary.csv", index_col=0)["mean"]
    means = np.array([[summary[f"means[{j}, {f}]"] for f in "abc"] for j in range(2)])
    truth = group_means(np.round(X2, 3))  # the CSV holds the data to 3 decimals
    assert_means(means[:, :2], truth, 1.0, TOL_MAP, "bayesgmm fit")
    np.testing.assert_allclose(means[:, 2], 7.0, atol=1e-6)


@pytest.mark.parametrize(("argv", "pattern"), [
    pytest.param(["fit", "nan-cell", "-k", "2"], r"missing values in column\(s\) \['b'\]",
                 id="nan-cell"),
    pytest.param(["fit", "good", "-k", "0"], r"--components/-k: must be at least 1",
                 id="components-0"),
])
def test_installed_script_exits_2_with_one_line(csvs, tmp_path, argv, pattern):
    script = Path(sys.executable).with_name("bayesgmm")
    if not script.exists():
        pytest.skip("the bayesgmm script is not installed next to this Python")
    argv = [str(csvs[a]) if a in csvs else a for a in argv]
    done = subprocess.run([str(script), *argv, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert_one_line_error(done.returncode, done.stderr, pattern)
    assert done.stdout == ""


def test_dataframe_columns_must_match_the_fit():
    # Fitted on named columns, a DataFrame with the columns swapped or renamed would predict
    # silently wrong: it is refused with the expected order. Plain arrays are taken by
    # position, with a warning (tests/test_validation.py).
    df = pd.DataFrame(X2, columns=["a", "b"])
    model = BayesianGMM(2, method="map", random_state=0).fit(df)
    for bad in (df[["b", "a"]], df.rename(columns={"b": "c"})):
        with pytest.raises(ValueError, match=r"fitted on \['a', 'b'\]; .*pass the fitted "
                                             r"columns in that order, X\[\['a', 'b'\]\]"
                                             r"|fitted on \['a', 'b'\]; the same columns in "
                                             r"another order: pass X\[\['a', 'b'\]\]"):
            model.predict_proba(bad)
    with pytest.warns(DataWarning, match="no feature names"):
        by_position = model.predict_proba(X2)
    np.testing.assert_allclose(model.predict_proba(df), by_position, atol=1e-12)
