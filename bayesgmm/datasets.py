"""Data sets: synthetic mixtures with known truth, and real data that scikit-learn ships."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .validation import check_n_components, check_positive_int

__all__ = ["MixtureTruth", "make_mixture", "load_iris"]


@dataclass(frozen=True)
class MixtureTruth:
    """Data drawn from a known Gaussian mixture.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,), the component each row was drawn from (-1 for
        an outlier)
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
    """

    X: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def make_mixture(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 2,
    *,
    separation: float = 6.0,
    weights=None,
    means=None,
    covariances=None,
    outliers: float = 0.0,
    outlier_box: float = 10.0,
    random_state=None,
) -> MixtureTruth:
    """Draw data from a Gaussian mixture with known parameters.

    Unless given, means are spread on a circle (a simplex-like layout in higher dimensions)
    of radius ``separation``, weights are unequal (proportional to 1, 2, ..., K), and
    covariances are random with standard deviations between 0.6 and 1.4 and correlations
    up to about 0.5.

    Parameters
    ----------
    n_samples, n_components, n_features : int
    separation : float, default 6.0
        Distance of the means from the origin, in component standard deviations.
    weights, means, covariances : array-like, optional
        Fix the true parameters instead of drawing them.
    outliers : float, default 0.0
        Fraction of the rows (in [0, 1)) replaced by outliers: uniform draws over a box
        ``outlier_box`` times as wide as the mixture's rows span along each feature, around
        their centre. Outliers are labelled -1.
    outlier_box : float, default 10.0
        Width of that box, in multiples of the mixture rows' range.
    random_state : int or numpy.random.Generator, optional

    Returns
    -------
    MixtureTruth

    Examples
    --------
    >>> truth = make_mixture(300, 3, 2, random_state=0)
    >>> truth.X.shape, truth.means.shape, truth.covariances.shape
    ((300, 2), (3, 2), (3, 2, 2))
    >>> float(truth.weights.sum())
    1.0
    >>> int((make_mixture(300, 3, 2, outliers=0.05, random_state=0).labels == -1).sum())
    15
    """
    n = check_positive_int(n_samples, "n_samples")
    k = check_n_components(n_components)
    d = check_positive_int(n_features, "n_features")
    rng = np.random.default_rng(random_state)
    if weights is None:
        weights = np.arange(1, k + 1, dtype=float)
    weights = np.asarray(weights, dtype=float)
    weights = weights / weights.sum()
    if means is None:
        angles = 2 * np.pi * np.arange(k) / k
        means = np.zeros((k, d))
        means[:, 0] = separation * np.cos(angles)
        if d > 1:
            means[:, 1] = separation * np.sin(angles)
        if d > 2:
            means[:, 2:] = rng.normal(0.0, separation / 3, size=(k, d - 2))
    means = np.asarray(means, dtype=float).reshape(k, d)
    if covariances is None:
        covariances = np.empty((k, d, d))
        for j in range(k):
            sd = rng.uniform(0.6, 1.4, size=d)
            a = rng.normal(size=(d, d)) * 0.4
            corr = np.eye(d) + a @ a.T
            dinv = 1 / np.sqrt(np.diag(corr))
            corr = corr * dinv[:, None] * dinv[None, :]
            covariances[j] = corr * np.outer(sd, sd)
    covariances = np.asarray(covariances, dtype=float).reshape(k, d, d)
    labels = rng.choice(k, size=n, p=weights)
    chols = np.linalg.cholesky(covariances)
    X = means[labels] + np.einsum("nij,nj->ni", chols[labels], rng.standard_normal((n, d)))
    if not (np.isfinite(outliers) and 0 <= outliers < 1):
        raise ValueError(f"outliers must be a fraction in [0, 1), got {outliers!r}.")
    if not (np.isfinite(outlier_box) and outlier_box > 0):
        raise ValueError(f"outlier_box must be a positive number, got {outlier_box!r}.")
    n_out = int(round(outliers * n))
    if n_out:  # drawn after the mixture rows, so those are the same with or without
        rows = rng.choice(n, n_out, replace=False)
        lo, hi = X.min(axis=0), X.max(axis=0)
        centre, half = (lo + hi) / 2, outlier_box * (hi - lo) / 2
        X[rows] = rng.uniform(centre - half, centre + half, size=(n_out, d))
        labels[rows] = -1
    return MixtureTruth(X=X, labels=labels, weights=weights, means=means, covariances=covariances)


def load_iris() -> tuple[pd.DataFrame, np.ndarray]:
    """Fisher's iris measurements (150 x 4, in cm) and species labels (0, 1, 2).

    Returns
    -------
    X : pandas.DataFrame
    y : ndarray of shape (150,)

    Examples
    --------
    >>> X, y = load_iris()
    >>> X.shape, list(X.columns)[:2]
    ((150, 4), ['sepal_length', 'sepal_width'])
    """
    from sklearn.datasets import load_iris as _sk_load_iris

    raw = _sk_load_iris()
    names = [c.replace(" (cm)", "").replace(" ", "_") for c in raw.feature_names]
    return pd.DataFrame(raw.data, columns=names), np.asarray(raw.target)
