"""Input checks (bayesgmm.validation): bad input gets a clear error that says what to change,
odd but valid input fits; data frames of any library, columns by name, wide data, outlying
rows."""

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import LABELS, X2, need
from helpers import two_clusters as _two_clusters
from scipy import sparse
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM, DataWarning, FitWarning
from bayesgmm.ml import fit_em
from bayesgmm.validation import (
    MIN_VALUES_PER_PARAMETER,
    OUTLIER_ROBUST_Z,
    check_model_size,
    outlying_rows,
)

GOOD = np.random.default_rng(0).normal(size=(30, 2))


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.array([[0.0, np.nan]] + [[1.0, 2.0]] * 9), ValueError, "contains NaN in row.* 0"),
        (np.array([[0.0, np.inf]] + [[1.0, 2.0]] * 9), ValueError, "infinite values"),
        (np.arange(10.0), ValueError, "reshape\\(-1, 1\\)"),
        (np.empty((0, 2)), ValueError, "empty"),
        (np.empty((5, 0)), ValueError, "empty"),
        (np.ones((1, 2)), ValueError, "has 1 sample.*at least 2"),
        (np.ones((2, 2, 2)), ValueError, "2-D array"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "must be numeric"),
        (np.array([[1, "x"], [2, 3]], dtype=object), TypeError, "non-numeric"),
        (pd.DataFrame({"a": [1.0, 2, 3], "s": ["x", "y", "z"]}), TypeError, "\\['s'\\]"),
        (pd.DataFrame({"a": [1.0, None, 3], "b": [1.0, 2, 3]}), ValueError, "missing values"),
        (np.array([[1 + 1j, 2], [3, 4]]), ValueError, "Complex data not supported"),
        (sparse.csr_array(np.eye(3)), TypeError,
         "sparse input is not supported.*toarray"),
    ],
    ids=["nan", "inf", "1d", "no-rows", "no-cols", "one-row", "3d", "strings", "object",
         "df-text", "df-missing", "complex", "sparse"],
)
def test_bad_data_is_refused_with_advice(X, exc, match):
    # (missing="error": by default missing entries are marginalised, see test_missing.py)
    with pytest.raises(exc, match=match):
        BayesianGMM(1, method="map", missing="error").fit(X)


def test_fewer_rows_than_components():
    with pytest.raises(ValueError,
                       match=r"has 3 sample\(s\) \(rows\).*5 component.*Reduce n_components"):
        BayesianGMM(5, method="map").fit(GOOD[:3])


def test_predict_before_fit_and_wrong_width():
    model = BayesianGMM(2, method="map", random_state=0)
    with pytest.raises(NotFittedError):
        model.predict(GOOD)
    model.fit(blobs2(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="has 3 features, but BayesianGMM is expecting 2"):
        model.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="reshape"):
        model.predict_proba(np.ones(2))


def blobs2(rng, n=60):
    return np.concatenate([rng.normal(-3, 1, (n, 2)), rng.normal(3, 1, (n, 2))])


def test_constant_column_warns_and_fits(rng):
    X = np.column_stack([blobs2(rng), np.full(120, 7.0)])
    with pytest.warns(DataWarning, match="constant column.*x2"):
        model = BayesianGMM(2, method="map", random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-3, 3], atol=0.4)
    np.testing.assert_allclose(model.means_[:, 2], 7.0, atol=1e-3)
    assert np.isfinite(model.covariances_).all()


def test_fewer_distinct_rows_than_components_warns(rng):
    X = np.repeat(np.array([[0.0, 1.0], [5.0, 2.0]]), 10, axis=0)
    # Both the data check and the fit check speak: one component can only be empty, and a
    # component sitting on 10 identical points can shrink its correlation matrix towards
    # singular (the scale prior bounds the standard deviations, not the correlations), which
    # is reported too.
    with pytest.warns(FitWarning) as record, \
            pytest.warns(DataWarning, match="only 2 distinct row"):
        model = BayesianGMM(3, method="map", random_state=0).fit(X)
    messages = " ".join(str(w.message) for w in record)
    assert "empty" in messages and "nearly singular" in messages
    assert np.isfinite(model.means_).all()


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_float32_and_integer_input_fit(rng, dtype):
    X = np.round(blobs2(rng) * 10).astype(dtype)
    model = BayesianGMM(2, method="map", random_state=0).fit(X)
    assert model.means_.dtype == np.float64
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-30, 30], atol=4)


def test_count_distinct_rows_is_exact_up_to_the_cap():
    from bayesgmm.validation import count_distinct_rows

    rng = np.random.default_rng(0)
    few = np.repeat(rng.normal(size=(3, 2)), 50, axis=0)[rng.permutation(150)]
    assert count_distinct_rows(few, 5) == 3  # every row read: the head has them all
    assert count_distinct_rows(few, 2) == 3  # one more than the cap
    many = rng.normal(size=(1000, 2))
    assert count_distinct_rows(many, 4) == 5  # decided on the first 50 rows
    # Duplicates at the head only: the first rows alone do not decide.
    late = np.vstack([np.zeros((100, 2)), rng.normal(size=(5, 2))])
    assert count_distinct_rows(late, 3) == 4
    assert count_distinct_rows(late, 10) == np.unique(late, axis=0).shape[0] == 6


# ------------------------------------------------------------------------------------------
# Data frames: any library's, columns by name (on helpers.X2)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def named_fit():
    df = pd.DataFrame(X2, columns=["x0", "x1"])  # the default names, given by the user
    return BayesianGMM(2, method="map", random_state=0).fit(df), df


def test_swapped_or_renamed_columns_raise(named_fit):
    # Named x0, x1 like the defaults: before, such a fit took any frame by position and
    # predict(df[["x1", "x0"]]) agreed with the truth on none of the rows.
    model, df = named_fit
    with pytest.raises(ValueError, match=r"fitted on \['x0', 'x1'\]; the same columns in "
                                         r"another order: pass X\[\['x0', 'x1'\]\]"):
        model.predict(df[["x1", "x0"]])
    with pytest.raises(ValueError, match=r"\['z'\] were not seen in fit; column\(s\) \['x1'\] "
                                         r"are missing"):
        model.predict_proba(df.rename(columns={"x1": "z"}))
    assert adjusted_rand_score(LABELS, model.predict(df)) == 1.0


def test_names_where_the_fit_saw_none_warn_as_in_sklearn(named_fit, x2_map_fit):
    model, df = named_fit
    with pytest.warns(DataWarning, match=r"no feature names, but the model was fitted with "
                                         r"feature names \['x0', 'x1'\]"):
        by_position = model.predict_proba(X2)
    np.testing.assert_array_equal(by_position, model.predict_proba(df))
    unnamed = x2_map_fit
    with pytest.warns(DataWarning, match="fitted without feature names"):
        named = unnamed.predict_proba(df)
    np.testing.assert_array_equal(named, unnamed.predict_proba(X2))
    # Integer column labels are not feature names (scikit-learn's rule): no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unnamed.predict_proba(pd.DataFrame(X2))


def test_polars_and_pyarrow_frames_fit_like_pandas(named_fit):
    need("polars")
    import polars as pl

    model, df = named_fit
    frame = pl.from_pandas(df)
    from_polars = BayesianGMM(2, method="map", random_state=0).fit(frame)
    np.testing.assert_array_equal(from_polars.means_, model.means_)
    assert list(from_polars.feature_names_in_) == ["x0", "x1"]
    np.testing.assert_array_equal(model.predict_proba(frame), model.predict_proba(df))
    with pytest.raises(ValueError, match=r"another order"):
        model.predict(frame.select("x1", "x0"))
    pa = pytest.importorskip("pyarrow")
    np.testing.assert_array_equal(model.predict_proba(pa.table(df)), model.predict_proba(df))


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda pl: pl.DataFrame({"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0]}), ValueError,
     r"missing values in row\(s\) 1\. Drop those rows \(X\.drop_nulls\(\)\)"),
    (lambda pl: pl.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["u", "v", "w"]}), TypeError,
     r"non-numeric column\(s\) \['name'\]"),
    (lambda pl: pl.DataFrame({"a": [1.0, 2.0, 3.0]}).lazy(), TypeError,
     r"lazy frame.*X\.collect\(\)"),
    (lambda pl: pl.Series("a", [1.0, 2.0, 3.0]), TypeError, r"one-dimensional series"),
])
def test_bad_polars_input_names_the_fix(make, exc, pattern):
    need("polars")
    import polars as pl

    with pytest.raises(exc, match=pattern):
        BayesianGMM(1, method="map", missing="error").fit(make(pl))


def test_object_column_at_predict_time_says_predicting(named_fit):
    model, df = named_fit
    bad = df.assign(x1=df["x1"].astype(str))
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) \['x1'\].*before predicting"):
        model.predict(bad)


# ------------------------------------------------------------------------------------------
# Wide data
# ------------------------------------------------------------------------------------------

def _no_em(*args, **kwargs):
    raise AssertionError("EM ran: the size check must come first")


@pytest.mark.parametrize("call", ["full", "diag", "fit_em"])
def test_wide_data_refused_before_em(monkeypatch, call):
    # 50 rows x 10,000 columns: before, EM ran for minutes at 7.7 GB (the K x D x D
    # covariances); now refused at once, with advice.
    import bayesgmm.fitting.pipeline as pipeline
    import bayesgmm.ml.em as em

    monkeypatch.setattr(pipeline, "em_start", _no_em)
    monkeypatch.setattr(em, "_run_start", _no_em)
    X = np.random.default_rng(0).standard_normal((50, 10_000))
    advice = r"fewer features \(for example the leading principal components"
    with pytest.raises(ValueError, match=r"50 rows x 10000 features.*would not finish.*"
                                         + advice):
        if call == "fit_em":
            fit_em(X, 2)
        else:
            BayesianGMM(2, method="map", covariance_type=call).fit(X)


def test_posterior_memory_bound():
    # 2 chains x 1000 draws x 3 components x 300 x 300 x 2 arrays of doubles: 8.6 GB.
    with pytest.raises(ValueError, match=r"8\.64 GB \(the limit is 4 GB\).*fewer draws"):
        check_model_size(1000, 300, 3, "full", n_draws=2000)
    with pytest.warns(DataWarning, match="2.2 data values per parameter"):  # not an error
        check_model_size(1000, 300, 3, "full", n_draws=1)  # a MAP fit of the same size


def test_too_few_rows_per_parameter_warns_and_diag_fits():
    # D=30, N=100: 495 free parameters per full component for about 50 rows. Full-covariance
    # EM then splits along noise for some seeds (MAP agreed with the truth on 70-79% of rows
    # with no word); the warning says so and advises covariance_type="diag", which recovers
    # the clusters exactly.
    X, y = _two_clusters(100, 30, 0)
    ratio = 50 * 30 / 495
    assert ratio < MIN_VALUES_PER_PARAMETER
    with pytest.warns(DataWarning, match=r"495 free parameters and about 50 rows, 3\.03 data "
                                         r"values per parameter.*covariance_type='diag' \(60 "
                                         r"parameters per component, 25 values each\)"):
        check_model_size(100, 30, 2, "full")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no size warning for diag (25 values per parameter)
        diag = BayesianGMM(2, method="map", covariance_type="diag", random_state=0).fit(X)
    assert adjusted_rand_score(y, diag.predict(X)) == 1.0


# ------------------------------------------------------------------------------------------
# Outlying rows
# ------------------------------------------------------------------------------------------

def test_one_point_at_1e12_is_named_before_the_fit_and_in_the_advice():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-5, 1, (100, 2)), rng.normal(5, 1, (100, 2))])
    X[7] = [1e12, 1e12]
    with pytest.warns(Warning) as rec:
        BayesianGMM(2, method="map", random_state=0).fit(X)
    messages = {w.category: str(w.message) for w in rec}
    assert set(messages) == {DataWarning, FitWarning}
    assert messages[DataWarning].startswith(
        "X: row(s) 7 (x0 = 1e+12, 1.3e+11 robust sd) lie more than 100 robust standard "
        "deviations from the median of their column.")
    singular = messages[FitWarning]
    assert "nearly singular" in singular and "The data have outlying rows: row(s) 7" in singular
    assert "duplicated rows" not in singular
    clean = np.delete(X, 7, axis=0)
    model = BayesianGMM(2, method="map", random_state=0).fit(clean)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-5, 5], atol=0.3)


@pytest.mark.parametrize("loader", ["load_breast_cancer", "load_wine", "load_iris",
                                    "load_diabetes", "load_digits"])
def test_real_data_have_no_outlying_rows(loader):
    # The threshold must stay silent on real, skewed data: their largest robust z-scores
    # are 3-42, against OUTLIER_ROBUST_Z = 100.
    import sklearn.datasets

    X = getattr(sklearn.datasets, loader)(return_X_y=True)[0].astype(float)
    rows, z, _ = outlying_rows(X)
    assert rows.size == 0
    X[3, 1] = np.median(X[:, 1]) + 1e6 * max(np.ptp(X[:, 1]), 1.0)
    rows, z, cols = outlying_rows(X)
    assert rows.tolist() == [3] and cols.tolist() == [1] and z[0] > OUTLIER_ROBUST_Z


def test_outlier_score_against_a_direct_computation():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    X[:, 2] = np.where(rng.random(500) < 0.7, 0.0, rng.normal(3, 1, 500))  # MAD 0 column
    X[[10, 20], [0, 2]] = [400.0, 1e4]
    rows, z, cols = outlying_rows(X)
    med0 = np.median(X[:, 0])
    mad0 = 1.4826 * np.median(np.abs(X[:, 0] - med0))
    nonzero = np.abs(X[:, 2][X[:, 2] != 0])
    scale2 = 1.4826 * np.median(nonzero)
    assert rows.tolist() == [20, 10] and cols.tolist() == [2, 0]
    np.testing.assert_allclose(z, [1e4 / scale2, abs(400 - med0) / mad0], rtol=1e-12)
