"""The ML singularity, and how the priors remove it."""

import numpy as np

from bayesgmm import BayesianGMM
from bayesgmm.fitting.start import em_start
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.model import build_model, log_posterior, point_from_params
from bayesgmm.standardize import Standardizer


def test_loglik_unbounded_but_log_posterior_falls(blobs):
    X = np.concatenate([blobs.X[:150], blobs.X[:1]])  # row 0 appears twice
    Z = Standardizer.fit(X).transform(X)
    start = em_start(Z, 3, random_state=0)
    # A fourth component, weight 0.05, sits on the duplicated point and shrinks.
    model = build_model(Z, 4)
    logpost = log_posterior(model)
    weights = np.append(0.95 * start.weights, 0.05)
    means = np.concatenate([start.means, Z[:1]])
    scales = np.array([1e-1, 1e-2, 1e-3, 1e-4, 1e-6])
    loglik, lp = [], []
    for s in scales:
        chols = np.concatenate([start.chols, s * np.eye(2)[None]])
        loglik.append(pointwise_log_likelihood(Z, weights[None], means[None], chols[None]).sum())
        lp.append(logpost(point_from_params(weights, means, chols)))
    loglik, lp = np.array(loglik), np.array(lp)
    # Two points at the mean of a component of scale s in 2-D: the log-likelihood grows like
    # -4 log s, so by at least 4 * log(1e5) ~ 46 over these scales; it never stops.
    assert np.all(np.diff(loglik) > 0)
    assert loglik[-1] - loglik[0] > 40
    # The inverse-gamma prior on the scales falls like -b/s: the posterior goes to -inf.
    assert np.all(np.diff(lp[1:]) < 0)
    assert lp[-1] < lp[0] - 1e4


def test_map_with_duplicated_points_does_not_collapse(blobs):
    X = np.concatenate([blobs.X[:200], np.repeat(blobs.X[:1], 5, axis=0)])
    model = BayesianGMM(3, method="map", random_state=1).fit(X)
    sigmas = model.idata_["posterior"]["sigmas"].to_numpy()
    assert np.isfinite(model.means_).all() and np.isfinite(model.covariances_).all()
    # True component standard deviations lie in [0.6, 1.4]; a collapsed one would be ~0.
    assert sigmas.min() > 0.3
    assert np.linalg.eigvalsh(model.covariances_).min() > 0.05
