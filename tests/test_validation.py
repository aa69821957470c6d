"""Bad input gets a clear error that says what to change; odd but valid input fits."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from bayesgmm import BayesianGMM, DataWarning, FitWarning, Priors, fit

GOOD = np.random.default_rng(0).normal(size=(30, 2))


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.array([[0.0, np.nan]] + [[1.0, 2.0]] * 9), ValueError, "contains NaN in row.* 0"),
        (np.array([[0.0, np.inf]] + [[1.0, 2.0]] * 9), ValueError, "infinite values"),
        (np.arange(10.0), ValueError, "reshape\\(-1, 1\\)"),
        (np.empty((0, 2)), ValueError, "empty"),
        (np.empty((5, 0)), ValueError, "empty"),
        (np.ones((1, 2)), ValueError, "has 1 row.*at least 2"),
        (np.ones((2, 2, 2)), ValueError, "2-D array"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "must be numeric"),
        (np.array([[1, "x"], [2, 3]], dtype=object), TypeError, "non-numeric"),
        (pd.DataFrame({"a": [1.0, 2, 3], "s": ["x", "y", "z"]}), TypeError, "\\['s'\\]"),
        (pd.DataFrame({"a": [1.0, None, 3], "b": [1.0, 2, 3]}), ValueError, "missing values"),
        (np.array([[1 + 1j, 2], [3, 4]]), TypeError, "real-valued"),
    ],
    ids=["nan", "inf", "1d", "no-rows", "no-cols", "one-row", "3d", "strings", "object",
         "df-text", "df-missing", "complex"],
)
def test_bad_data_is_refused_with_advice(X, exc, match):
    with pytest.raises(exc, match=match):
        BayesianGMM(1, method="map").fit(X)


def test_fewer_rows_than_components():
    with pytest.raises(ValueError, match="has 3 row.*5 component.*Reduce n_components"):
        BayesianGMM(5, method="map").fit(GOOD[:3])


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(n_components=0), ValueError, "n_components must be an integer >= 1"),
        (dict(n_components=2.5), TypeError, "n_components must be an integer"),
        (dict(n_components="3"), TypeError, "n_components must be an integer"),
        (dict(n_components=True), TypeError, "n_components must be an integer"),
        (dict(method="gibbs"), ValueError, "Unknown method 'gibbs'; choose one of"),
        (dict(sampler="stan"), ValueError, "Unknown sampler 'stan'"),
        (dict(draws=0), ValueError, "draws must be an integer >= 1"),
        (dict(chains=0), ValueError, "chains must be an integer >= 1"),
        (dict(tune=-1), ValueError, "tune must be an integer >= 0"),
        (dict(target_accept=1.5), ValueError, "target_accept must lie in"),
        (dict(backend="cuda"), ValueError, "Unknown backend"),
        (dict(random_state="seed"), TypeError, "random_state must be"),
        (dict(priors={"lkj_eta": -1}), ValueError, "lkj_eta must be a positive"),
        (dict(priors={"eta": 2}), TypeError, "Unknown prior setting"),
        (dict(priors=[1, 2]), TypeError, "priors must be"),
    ],
)
def test_bad_options_are_refused(kwargs, exc, match):
    kwargs = {"n_components": 2, **kwargs}
    with pytest.raises(exc, match=match):
        fit(GOOD, **kwargs)


def test_predict_before_fit_and_wrong_width():
    model = BayesianGMM(2, method="map", random_state=0)
    with pytest.raises(NotFittedError):
        model.predict(GOOD)
    model.fit(blobs2(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="has 3 feature.*fitted on 2"):
        model.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="reshape"):
        model.predict_proba(np.ones(2))


def test_priors_are_frozen_and_checked():
    p = Priors()
    with pytest.raises(AttributeError):
        p.lkj_eta = 3.0  # frozen dataclass
    with pytest.raises(TypeError, match="positive number"):
        Priors(mean_scale="big")


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
