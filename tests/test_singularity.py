"""The ML singularity, and how the priors remove it; singularity_path."""

import numpy as np
import pytest

from bayesgmm import BayesianGMM
from bayesgmm.fitting.start import em_start
from bayesgmm.likelihood import pointwise_log_likelihood
from bayesgmm.model import build_model, log_posterior, point_from_params
from bayesgmm.singularity import singularity_path
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


def test_singularity_path(blobs):
    X = blobs.X[:200]
    d = X.shape[1]
    table = singularity_path(X, 4, 7, random_state=0)
    assert list(table.columns) == ["scale", "log_likelihood", "log_posterior"]
    assert len(table) == 30 and table.attrs["component"] == 3
    ll = table.log_likelihood.to_numpy()
    lp = table.log_posterior.to_numpy()
    s = table.scale.to_numpy()
    # The likelihood is unbounded: about +D per unit of -log(scale) near the singularity
    # (here 11.4 over scales 1 -> 1e-4, at D = 2).
    assert ll[-1] - ll[0] > 5 * d
    slope = (ll[-1] - ll[-10]) / np.log(s[-10] / s[-1])
    assert slope == pytest.approx(d, rel=1e-2)
    # The log posterior falls: monotonically, and by thousands over the last 10 scales.
    assert np.all(np.diff(lp[-10:]) < 0)
    assert lp[-10] - lp[-1] > 100
    assert np.isfinite(ll).all() and np.isfinite(lp).all()


def test_singularity_path_bad_input(blobs):
    with pytest.raises(ValueError, match=r"point_index must be a row of X, in \[0, 50\)"):
        singularity_path(blobs.X[:50], 2, 50)
    with pytest.raises(ValueError, match="point_index"):
        singularity_path(blobs.X[:50], 2, -1)
    with pytest.raises(ValueError, match="n_components >= 2"):
        singularity_path(blobs.X[:50], 1, 0)
    with pytest.raises(ValueError, match="scales"):
        singularity_path(blobs.X[:50], 2, 0, scales=[1.0, -1.0])
