"""Prediction over draws: the numba kernel against NumPy, and every form of input.

The kernel (:mod:`bayesgmm.likelihood.predictive`) is checked against the NumPy reference
(:mod:`bayesgmm.likelihood.reference`, itself checked against SciPy in test_assignments),
then the estimator's prediction on Dask arrays and iterators of chunks against the same
prediction on the array in memory.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import need
from sklearn.datasets import load_wine

from bayesgmm import BayesianGMM
from bayesgmm.assignments import assignment_summary
from bayesgmm.exceptions import ConvergenceWarning, DataWarning
from bayesgmm.likelihood.noise import NoiseTerm, noise_region
from bayesgmm.likelihood.predictive import (
    PredictiveParameters,
    posterior_predictive,
    responsibility_draws,
)
from bayesgmm.likelihood.reference import (
    log_predictive_density,
    mean_responsibilities,
    responsibilities,
)


def random_draws(rng, s=12, k=4, d=3):
    """Posterior-like draws: weights, means, Cholesky factors of random covariances."""
    weights = rng.dirichlet(np.ones(k), s)
    means = rng.normal(0.0, 3.0, (s, k, d))
    a = rng.normal(0.0, 0.6, (s, k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.2 * np.eye(d)
    return weights, means, np.linalg.cholesky(cov)


def hard_rows(rng, n=700, d=3):
    """Ordinary rows, and rows where the arithmetic is hard: far out (1e12), on a mean."""
    X = rng.normal(0.0, 4.0, (n, d))
    X[3] = 1e12
    X[4] = -1e6
    X[5, 0] = 1e9
    return X


CASES = ["gaussian", "student_t", "noise", "missing"]


@pytest.fixture(params=CASES)
def case(request):
    rng = np.random.default_rng(CASES.index(request.param))
    weights, means, chols = random_draws(rng)
    X = hard_rows(rng)
    dof, noise = None, None
    if request.param == "student_t":
        dof = rng.uniform(0.8, 200.0, weights.shape)
    if request.param == "noise":
        noise_w = rng.uniform(0.01, 0.2, weights.shape[0])
        weights = weights * (1.0 - noise_w)[:, None]
        noise = NoiseTerm(noise_w, noise_region(X[10:], "box"))
    if request.param == "missing":
        X[rng.random(X.shape) < 0.15] = np.nan
        X[7] = np.nan  # nothing observed
    return X, (weights, means, chols, dof, noise)


def test_the_kernel_agrees_with_numpy(case):
    # Independent computation: the NumPy reference, (draws, rows, K) arrays, scipy's
    # logsumexp. Responsibilities are probabilities: to 1e-12 absolute; the log density
    # is up to -1e24 for the row at 1e12: to 1e-12 relative.
    X, draws = case
    params = PredictiveParameters(*draws)
    proba, log_density = posterior_predictive(X, params, n_threads=2)
    np.testing.assert_allclose(proba, mean_responsibilities(X, *draws), rtol=0, atol=1e-12)
    np.testing.assert_allclose(log_density, log_predictive_density(X, *draws), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    per_draw = responsibility_draws(X, params, n_threads=2)
    np.testing.assert_allclose(per_draw, responsibilities(X, *draws), rtol=0, atol=1e-12)


def test_rows_split_any_way_give_the_same_bits(case):
    # One thread or two, the rows in one piece or in uneven chunks: each row's numbers
    # depend on that row alone.
    X, draws = case
    params = PredictiveParameters(*draws)
    proba, log_density = posterior_predictive(X, params, n_threads=1)
    threads = posterior_predictive(X, params, n_threads=2)
    parts = [posterior_predictive(X[a:b], params, n_threads=2)
             for a, b in ((0, 1), (1, 130), (130, X.shape[0]))]
    for got in (threads, tuple(np.concatenate(p) for p in zip(*parts, strict=True))):
        np.testing.assert_array_equal(got[0], proba)
        np.testing.assert_array_equal(got[1], log_density)


@pytest.fixture(scope="module")
def wine_fit():
    # Real data: 178 wines x 13 chemical measurements on very different scales (proline
    # in the hundreds, hue around 1), named columns. ADVI: 200 posterior draws.
    # 1,500 iterations: prediction needs draws, not a converged ELBO (the ConvergenceWarning
    # is the fit's, not under test here).
    wine = load_wine(as_frame=True)
    X = wine.data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = BayesianGMM(3, method="advi", draws=200, max_iter=1_500,
                            random_state=0).fit(X)
    return model, X


def test_the_estimator_predicts_as_numpy_on_real_data(wine_fit):
    model, X = wine_fit
    draws = model._draws
    np.testing.assert_allclose(model.predict_proba(X),
                               mean_responsibilities(X.to_numpy(), *draws), atol=1e-12)
    np.testing.assert_allclose(model.score_samples(X),
                               log_predictive_density(X.to_numpy(), *draws), rtol=1e-12)


def test_a_dask_array_predicts_lazily_what_the_array_gives(wine_fit):
    need("dask")
    import dask.array as da

    model, X = wine_fit
    values = X.to_numpy()
    lazy = da.from_array(values, chunks=(50, 5))  # chunks across columns too
    with pytest.warns(DataWarning, match="no feature names"):  # once, not per block
        proba = model.predict_proba(lazy)
    assert isinstance(proba, da.Array) and proba.chunks[0] == lazy.chunks[0]
    assert proba.shape == (values.shape[0], 3)
    with pytest.warns(DataWarning):
        label, score = model.predict(lazy), model.score_samples(lazy)
    np.testing.assert_array_equal(proba.compute(), model.predict_proba(X))
    np.testing.assert_array_equal(label.compute(), model.predict(X))
    np.testing.assert_array_equal(score.compute(), model.score_samples(X))
    with pytest.warns(DataWarning):
        assert model.score(lazy) == pytest.approx(model.score(X), rel=1e-14)


def test_an_iterator_of_chunks_gives_one_result_per_chunk(wine_fit):
    model, X = wine_fit
    chunks = [X.iloc[a:b] for a, b in ((0, 60), (60, 61), (61, len(X)))]
    got = model.predict_proba(iter(chunks))
    assert not isinstance(got, np.ndarray)  # a generator: nothing computed yet
    got = list(got)
    assert [g.shape[0] for g in got] == [60, 1, len(X) - 61]
    np.testing.assert_array_equal(np.concatenate(got), model.predict_proba(X))
    np.testing.assert_array_equal(np.concatenate(list(model.predict(iter(chunks)))),
                                  model.predict(X))
    assert model.score(iter(chunks)) == pytest.approx(model.score(X), rel=1e-14)
    # Data frame chunks are checked by name, as a data frame is.
    shuffled = (c[list(reversed(c.columns))] for c in chunks)
    with pytest.raises(ValueError, match="same columns in another order"):
        list(model.predict_proba(shuffled))


def test_bad_dask_input_is_refused_before_any_work(wine_fit):
    need("dask")
    import dask.array as da

    model, X = wine_fit
    with pytest.raises(ValueError, match="X has 12 features, but BayesianGMM is expecting 13"):
        model.predict_proba(da.zeros((10, 12)))
    with pytest.raises(ValueError, match="2D Dask array"):
        model.predict_proba(da.zeros(10))


def test_assignment_summary_of_chunks_and_dask_equals_the_whole(wine_fit):
    need("dask")
    import dask.array as da

    model, X = wine_fit
    whole = assignment_summary(model, X)
    parts = list(assignment_summary(model, (X.iloc[a:b] for a, b in ((0, 100), (100, 178)))))
    assert [p.index[0] for p in parts] == [0, 100]  # obs numbered on across chunks
    pd.testing.assert_frame_equal(pd.concat(parts), whole)
    with pytest.warns(DataWarning, match="no feature names"):
        lazy = assignment_summary(model, da.from_array(X.to_numpy(), chunks=(40, 13)))
    pd.testing.assert_frame_equal(lazy, whole)
    # The kernel's table against the NumPy responsibilities of every draw.
    r = responsibilities(X.to_numpy(), *model._draws)
    np.testing.assert_allclose(whole.filter(like="p_").to_numpy(), r.mean(axis=0),
                               atol=1e-12)
