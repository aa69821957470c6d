"""BayesianGMMClassifier: one mixture per class, class probabilities with uncertainty."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_wine
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold, train_test_split

from bayesgmm import BayesianGMMClassifier
from bayesgmm.exceptions import DataWarning


def fitted(clf, X, y, **kwargs):
    """Fit, allowing only the DataWarning that few rows per covariance parameter earn."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"X has \d+ rows of \d+ features",
                                category=DataWarning)
        return clf.fit(X, y, **kwargs)


def two_classes(n=60, seed=0):
    """Class "a": two clusters at -4 and 0; class "b": one at 3 (1-D, sd 1)."""
    rng = np.random.default_rng(seed)
    Xa = np.concatenate([rng.normal(-4, 1, n // 2), rng.normal(0, 1, n // 2)])
    Xb = rng.normal(3, 1, n)
    X = np.concatenate([Xa, Xb])[:, None]
    return X, np.array(["a"] * n + ["b"] * n)


@pytest.fixture(scope="module")
def advi_classifier():
    X, y = two_classes()
    clf = BayesianGMMClassifier({"a": 2, "b": 1}, method="advi", draws=200, random_state=0)
    return fitted(clf, X, y), X, y


def test_class_probabilities_per_draw_follow_bayes_rule(advi_classifier):
    clf, X, y = advi_classifier
    grid = np.linspace(-6, 6, 7)[:, None]
    p = clf.predict_proba_draws(grid)
    assert p.dims == ("draw", "obs", "class") and list(p["class"].values) == ["a", "b"]
    # Against SciPy, from each class's own posterior draws (thinned alike) and the draws
    # of the class proportions: P(c | x) = pi_c p(x | c) / sum_j pi_j p(x | j).
    log_joint = np.empty(p.shape)
    for c, draws in enumerate(clf._class_draws):
        w, m, chols = draws.weights, draws.means, draws.chols
        assert draws.dof is None  # Gaussian components
        covs = chols @ np.swapaxes(chols, -1, -2)
        for s in range(w.shape[0]):
            comps = [np.log(w[s, j]) + multivariate_normal(m[s, j], covs[s, j]).logpdf(grid)
                     for j in range(w.shape[1])]
            log_joint[s, :, c] = logsumexp(comps, axis=0) + clf._log_pi[s, c]
    expected = np.exp(log_joint - logsumexp(log_joint, axis=-1, keepdims=True))
    np.testing.assert_allclose(p.to_numpy(), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(grid), expected.mean(axis=0), rtol=1e-12)
    assert list(clf.n_components_) == [2, 1]
    np.testing.assert_array_equal(clf.class_counts_, [60, 60])


def test_uncertainty_is_widest_between_the_classes(advi_classifier):
    clf, X, y = advi_classifier
    points = np.array([[-4.0], [1.5], [4.5]])  # in "a", at the boundary, in "b"
    lower, upper = clf.predict_proba_interval(points)
    width = (upper - lower)[:, 0]
    assert width[1] > 5 * max(width[0], width[2])
    assert np.all(lower <= clf.predict_proba(points)) and np.all(clf.predict_proba(points) <= upper)
    assert clf.predict(points[[0, 2]]).tolist() == ["a", "b"]
    # The data's own labels are recovered where the classes do not overlap.
    far = np.abs(X[:, 0] - 1.5) > 1.5
    assert (clf.predict(X[far]) == y[far]).mean() > 0.97
    # score_samples: the log predictive density of the class mixture, a proper density.
    grid = np.linspace(-12, 12, 2001)[:, None]
    total = np.exp(clf.score_samples(grid)).sum() * (grid[1, 0] - grid[0, 0])
    assert total == pytest.approx(1.0, abs=1e-3)


def test_wine_accuracy_at_least_that_of_quadratic_discriminant_analysis():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y,
                                                        random_state=0)
    qda = QuadraticDiscriminantAnalysis().fit(X_train, y_train).score(X_test, y_test)
    clf = fitted(BayesianGMMClassifier(method="map", random_state=0), X_train, y_train)
    assert clf.score(X_test, y_test) >= qda
    assert list(clf.feature_names_in_) == list(X.columns)
    with pytest.raises(ValueError, match="same columns in another order"):
        clf.predict(X_test[X.columns[::-1]])


@pytest.mark.slow
def test_wine_cross_validated_accuracy_at_least_that_of_qda():
    X, y = load_wine(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    ours, qda = [], []
    for train, test in cv.split(X, y):
        qda.append(QuadraticDiscriminantAnalysis().fit(X[train], y[train])
                   .score(X[test], y[test]))
        clf = fitted(BayesianGMMClassifier(method="map", random_state=0), X[train], y[train])
        ours.append(clf.score(X[test], y[test]))
    # Measured: 0.989 for both (one wrong in the last fold).
    assert np.mean(ours) >= np.mean(qda)


def test_labels_of_any_kind_and_what_is_refused():
    X, y = two_classes(30)
    labels = pd.Series(y).map({"a": 7, "b": -1}).to_numpy()  # sorted: -1 first
    clf = fitted(BayesianGMMClassifier(method="map", random_state=0), X, labels)
    assert clf.classes_.tolist() == [-1, 7]
    assert clf.predict(np.array([[-4.0], [3.0]])).tolist() == [7, -1]
    # Same seed, same classifier, bit for bit.
    again = fitted(BayesianGMMClassifier(method="map", random_state=0), X, labels)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="Unknown label type"):
        BayesianGMMClassifier(method="map").fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="1 sample"):
        BayesianGMMClassifier(method="map").fit(X, np.r_[np.zeros(len(X) - 1), 1])
    with pytest.raises(ValueError, match="one label per row"):
        BayesianGMMClassifier(method="map").fit(X, y[:-1])
    with pytest.raises(ValueError, match="no entry for class 'b'"):
        BayesianGMMClassifier({"a": 1}, method="map").fit(X, y)
    with pytest.raises(ValueError, match="needs posterior draws"):
        BayesianGMMClassifier(range(1, 3), method="map").fit(X, y)
    with pytest.raises(TypeError, match="n_components must be an int"):
        BayesianGMMClassifier("12", method="map").fit(X, y)
    holed = X.copy()
    holed[40] = np.nan  # row 40 of X, row 10 of class "b"
    with pytest.raises(ValueError, match=r"class 'b' \(rows counted among that class's 30 "
                                         r"rows\): X has every entry missing in row\(s\) 10"):
        BayesianGMMClassifier(method="map").fit(holed, y)
    with pytest.raises(ValueError, match="class_prior"):
        BayesianGMMClassifier(method="map", class_prior=0).fit(X, y)


def test_missing_entries_and_sample_weights():
    X, y = two_classes(40, seed=1)
    X2 = np.column_stack([X[:, 0], X[:, 0] + np.random.default_rng(2).normal(0, 0.5, len(X))])
    holed = X2.copy()
    holed[::5, 1] = np.nan
    with pytest.warns(DataWarning, match="missing entries"):
        clf = fitted(BayesianGMMClassifier(method="map", random_state=0), holed, y)
    assert (clf.predict(holed) == y).mean() > 0.9
    # A row known only in its first feature is classified from it alone.
    assert clf.predict(np.array([[-4.0, np.nan], [3.0, np.nan]])).tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="NaN"):
        BayesianGMMClassifier(method="map", missing="error").fit(holed, y)
    # Integer weights count rows: doubling every weight doubles the counts.
    weighted = fitted(BayesianGMMClassifier(method="map", random_state=0), X2, y,
                      sample_weight=np.full(len(y), 2.0))
    np.testing.assert_array_equal(weighted.class_counts_, [80, 80])


def test_frames_keep_their_names():
    X, y = two_classes(30)
    frame = pd.DataFrame({"length": X[:, 0]})
    clf = fitted(BayesianGMMClassifier(method="map", random_state=0), frame, y)
    assert list(clf.feature_names_in_) == ["length"]
    with pytest.raises(ValueError, match="width"):
        clf.predict(pd.DataFrame({"width": X[:3, 0]}))


@pytest.mark.slow
def test_scikit_learn_estimator_checks():
    """scikit-learn's classifier contract, MAP fits (about 2 minutes on 2 cores)."""
    from sklearn.utils.estimator_checks import check_estimator

    expected = {
        # scikit-learn passes a class of one row with weight > 1 next to that row repeated;
        # one distinct point cannot make a mixture, and the fit says so.
        "check_sample_weight_equivalence_on_dense_data": "a class of one distinct row",
        # max_iter is passed to each class's fit (VI or MAP iterations); there is no
        # iteration count of the classifier itself.
        "check_non_transformer_estimators_n_iter": "no iterations of its own",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checks' tiny data warn as they should
        results = check_estimator(BayesianGMMClassifier(method="map", random_state=0),
                                  expected_failed_checks=expected, on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == [], failed
    assert sum(r["status"] == "passed" for r in results) >= 55
