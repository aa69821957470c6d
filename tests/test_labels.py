"""Known labels for some rows (semi-supervised fits)."""

import warnings

import numpy as np
import pytest
from helpers import log_posterior_fn, random_parameters
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM, fit
from bayesgmm.assignments import assignment_summary
from bayesgmm.datasets import make_mixture
from bayesgmm.ml.missing import em_missing
from bayesgmm.model import build_model, point_from_params
from bayesgmm.validation import check_labels


def row_terms(Z, w, mu, covs):
    """log w_k + log N(z_n | mu_k, Sigma_k) on each row's observed entries (SciPy)."""
    out = np.empty((Z.shape[0], w.size))
    for n, z in enumerate(Z):
        o = ~np.isnan(z)
        for j in range(w.size):
            out[n, j] = np.log(w[j]) + multivariate_normal(mu[j, o],
                                                           covs[j][np.ix_(o, o)]).logpdf(z[o])
    return out


@pytest.mark.parametrize("missing", [False, True])
def test_a_labelled_row_contributes_its_own_components_term(missing):
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 3))
    if missing:
        Z[rng.random(Z.shape) < 0.25] = np.nan
        Z[np.isnan(Z).all(axis=1), 1] = 0.5
    labels = np.full(40, -1)
    labels[::3] = rng.integers(0, 2, size=labels[::3].size)  # components 0 and 1; 2 free
    weights = rng.integers(1, 4, size=40).astype(float)
    labelled = build_model(Z, 3, labels=labels, sample_weight=weights)
    plain = build_model(Z, 3, sample_weight=weights)
    f, g = log_posterior_fn(labelled), log_posterior_fn(plain)
    for _ in range(3):
        w, mu, covs = random_parameters(rng, 3, 3)
        point = point_from_params(w, mu, np.linalg.cholesky(covs))
        terms = row_terms(Z, w, mu, covs)
        rows = np.flatnonzero(labels >= 0)
        # Same priors; the likelihoods differ on the labelled rows only: there the own
        # component's term replaces the mixture's. 1e-10 relative to the total.
        difference = weights[rows] @ (terms[rows, labels[rows]] - logsumexp(terms[rows], axis=1))
        np.testing.assert_allclose(f(point) - g(point), difference, rtol=1e-10,
                                   atol=1e-10 * abs(g(point)))


def test_semi_supervised_em_keeps_the_labels_and_raises_its_likelihood():
    rng = np.random.default_rng(1)
    Z = np.concatenate([rng.normal(-1, 1, (100, 2)), rng.normal(1, 1, (100, 2))])
    labels = np.full(200, -1)
    labels[:10], labels[100:110] = 1, 0  # the opposite of what the start suggests
    start = (np.full(2, 0.5), np.array([[-1.0, -1.0], [1.0, 1.0]]), np.stack([np.eye(2)] * 2))
    out = em_missing(Z, *start, labels=labels, tol=1e-12, max_iter=2000)
    free = em_missing(Z, *start, tol=1e-12, max_iter=2000)
    # The labels pull component 1 to the first group, against the start.
    assert out["means"][1].sum() < 0 < out["means"][0].sum()
    assert free["means"][0].sum() < 0 < free["means"][1].sum()
    # Its log-likelihood is that of the labelled model at its parameters (SciPy).
    terms = row_terms(Z, out["weights"], out["means"], out["covariances"])
    known = labels >= 0
    expected = logsumexp(terms[~known], axis=1).sum() + terms[known, labels[known]].sum()
    np.testing.assert_allclose(out["log_likelihood"], expected, rtol=1e-10)


def test_labels_are_read_with_what_they_name():
    codes, classes = check_labels(np.array(["setosa", None, "virginica", "setosa"],
                                           dtype=object), 4, 3)
    assert codes.tolist() == [0, -1, 1, 0] and classes.tolist() == ["setosa", "virginica"]
    codes, classes = check_labels([7.0, np.nan, -1, 3.0], 4, 2)
    assert codes.tolist() == [1, -1, -1, 0] and classes.tolist() == [3.0, 7.0]
    with pytest.raises(ValueError, match="raise n_components to at least 3"):
        check_labels([0, 1, 2, -1], 4, 2)
    with pytest.raises(ValueError, match=r"one label per row of X .* got \(3,\)"):
        check_labels([0, 1, -1], 4, 2)
    with pytest.raises(TypeError, match="one kind that sorts"):
        check_labels(np.array(["a", 1.5, -1], dtype=object), 3, 2)
    import pandas as pd

    # Frames' nulls, and the text NumPy makes of -1 and NaN in a string array, are unknown.
    codes, classes = check_labels(pd.Series([2, None, 5], dtype="Int64"), 3, 2)
    assert codes.tolist() == [0, -1, 1] and classes.tolist() == [2, 5]
    assert classes.dtype.kind == "i"
    codes, classes = check_labels(np.array(["b", -1, "a", np.nan]), 4, 2)
    assert codes.tolist() == [1, -1, 0, -1] and classes.tolist() == ["a", "b"]


OVERLAP = make_mixture(300, 2, 2, separation=1.5, random_state=4,
                       weights=[0.5, 0.5])


@pytest.fixture(scope="module")
def semi_supervised():
    """NUTS on two overlapping groups with 10% of the labels known, and without."""
    rng = np.random.default_rng(3)
    y = np.full(len(OVERLAP.X), -1)
    known = rng.random(len(y)) < 0.1
    y[known] = OVERLAP.labels[known]
    names = np.array(["left", "right"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short chains: R-hat and ESS are checked below
        labelled = BayesianGMM(2, draws=300, tune=400, random_state=0).fit(
            OVERLAP.X, labels=np.where(known, names[np.maximum(y, 0)], None))
        free = BayesianGMM(2, draws=300, tune=400, random_state=0).fit(OVERLAP.X)
    return labelled, free, known


def test_known_labels_beat_the_unsupervised_fit(semi_supervised):
    labelled, free, known = semi_supervised
    truth = OVERLAP.labels
    ari_labelled = adjusted_rand_score(truth, labelled.predict(OVERLAP.X))
    ari_free = adjusted_rand_score(truth, free.predict(OVERLAP.X))
    assert ari_labelled > ari_free
    # The labels name the components: "left" is component 0, whatever the draws did.
    assert labelled.classes_.tolist() == ["left", "right"]
    table = assignment_summary(labelled)
    np.testing.assert_array_equal(table["label"].to_numpy()[known], truth[known])
    assert (table["probability"].to_numpy()[known] == 1.0).all()
    # Not relabelled: every draw's component 0 is the group labelled "left".
    perm = labelled.idata_["relabeling"]["permutation"].to_numpy()
    assert (perm == np.arange(2)).all()


def test_labelled_fits_save_and_refuse_what_they_cannot_do(semi_supervised, tmp_path):
    labelled, _, known = semi_supervised
    path = tmp_path / "fit.nc"
    labelled.save(path)
    loaded = BayesianGMM.load(path)
    assert loaded.classes_.tolist() == ["left", "right"]
    codes = loaded.idata_["constant_data"]["labels"].to_numpy()
    assert ((codes >= 0) == known).all()
    X = OVERLAP.X
    with pytest.raises(ValueError, match="order_by and known labels"):
        fit(X, 2, labels=np.r_[0, 1, np.full(len(X) - 2, -1)], order_by=0, method="map")
    with pytest.raises(NotImplementedError, match="known labels"):
        fit(X, 2, labels=np.r_[0, 1, np.full(len(X) - 2, -1)], method="advi", batch_size=50)


def test_known_labels_hold_everywhere_the_fitted_rows_are_read():
    """A labelled row far from its component: its assignment, imputation and stored or
    recomputed log-likelihood all follow its label; fit_predict too."""
    import pandas as pd

    from bayesgmm import impute
    from bayesgmm.assignments import log_likelihood, responsibilities

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(-3, 1, (60, 2)), rng.normal(3, 1, (60, 2))])
    X[0, 1] = np.nan  # row 0 sits in the first group ...
    y = pd.Series([None] * 120, dtype="Int64")
    y[0] = 1  # ... but is labelled with the second group's label
    y[60:70] = 1
    y[1:11] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stored = fit(X, 2, labels=y, method="map", random_state=0)
        recomputed = fit(X, 2, labels=y, method="map", random_state=0, store_log_likelihood=False)
    assert list(stored["constant_data"]["class"].values) == [0, 1]
    assert responsibilities(stored).to_numpy()[0, 0, 0, 1] == 1.0
    np.testing.assert_allclose(log_likelihood(recomputed).to_numpy(),
                               log_likelihood(stored).to_numpy(), rtol=1e-12)
    imputed = impute(stored, random_state=0)["summary"]["mean"].to_numpy()
    assert imputed[0] > 0  # drawn from component 1, whose mean is near +3
    model = BayesianGMM(2, method="map", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = model.fit_predict(X, labels=y)
    assert labels[0] == 1 and model.predict(X[:1])[0] == 0
    # y is a clusterer's ignored target (scikit-learn's contract), never known labels.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ignored = BayesianGMM(2, method="map", random_state=0).fit(X, y.fillna(1))
    assert "labels" not in ignored.idata_["constant_data"]
