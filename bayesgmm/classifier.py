"""Classification with one Bayesian mixture per class (mixture discriminant analysis).

As mclust's ``MclustDA``: each class c gets its own Gaussian mixture p(x | c, theta_c) with
K_c components (given, or chosen per class by PSIS-LOO), and the class proportions pi a
Dirichlet posterior from the class counts. Bayes' rule gives, for each posterior draw s,

    P(c | x, theta^s, pi^s) = pi_c^s p(x | theta_c^s) / sum_j pi_j^s p(x | theta_j^s),

and over the draws, posterior class probabilities with their uncertainty, where MclustDA
gives point estimates only. The classes' posteriors are independent given the data, so draw
s of every class (each thinned to the same number of draws) together form a joint draw.
With K_c = 1 and full covariances this is a Bayesian quadratic discriminant analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .estimator import BayesianGMM, MissingEntriesTags
from .fitting.result import feature_names_in, point_blocks, posterior_draws
from .likelihood import pointwise_log_likelihood
from .likelihood.reference import normalised
from .params import DEFAULTS
from .priors import Priors
from .seeds import check_random_state, draw_seed
from .validation import (
    MISSING,
    check_data,
    check_features,
    check_sample_weight,
    has_feature_names,
)

__all__ = ["BayesianGMMClassifier"]

_PROPORTION_DRAWS = 1000


def _shown(label) -> str:
    """A label as users wrote it (NumPy scalars as Python values)."""
    return repr(label.item() if isinstance(label, np.generic) else label)


class BayesianGMMClassifier(MissingEntriesTags, ClassifierMixin, BaseEstimator):
    """Classifier with a Bayesian Gaussian mixture per class (as mclust's ``MclustDA``).

    Parameters
    ----------
    n_components : int, mapping or sequence of int, default 1
        Components per class: one number for every class, a mapping from class label to
        number, or a sequence of candidates (for example ``range(1, 4)``), from which each
        class's number is chosen by PSIS-LOO (:func:`bayesgmm.selection.select_components`;
        needs posterior draws, so not with ``method="map"``).
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Covariance structure of every class's mixture.
    method : {"nuts", "advi", "fullrank_advi", "map"}, default "nuts"
        How each class's mixture is fitted (see :func:`bayesgmm.fit`). With "map" the class
        probabilities still carry the class proportions' uncertainty, but not the
        parameters'.
    draws, tune, chains, priors, sampler, max_iter, n_init, missing
        Passed to each class's :class:`bayesgmm.BayesianGMM`.
    class_prior : float, default 1.0
        Concentration (positive) of the symmetric Dirichlet prior on the class
        proportions; their posterior is Dirichlet(class_prior + class counts).
    random_state : int or numpy.random.Generator, optional
        Seed of every fit and of the proportions' draws.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    estimators_ : list of BayesianGMM
        The mixture of each class, in the order of ``classes_``.
    n_components_ : ndarray of int
        Components of each class's mixture.
    class_counts_ : ndarray
        Rows (or summed sample weights) of each class.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.datasets import load_iris
    >>> from bayesgmm import BayesianGMMClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BayesianGMMClassifier(method="map", random_state=0).fit(X[::2], y[::2])
    >>> float(clf.score(X[1::2], y[1::2])) > 0.9
    True
    >>> clf.predict_proba_draws(X[:2]).dims
    ('draw', 'obs', 'class')
    """

    def __init__(self, n_components=1, *, covariance_type: str = DEFAULTS["covariance_type"],
                 method: str = DEFAULTS["method"], draws: int = DEFAULTS["draws"],
                 tune: int = DEFAULTS["tune"], chains: int = DEFAULTS["chains"],
                 priors: Priors | dict | None = DEFAULTS["priors"],
                 sampler: str = DEFAULTS["sampler"], max_iter: int = DEFAULTS["max_iter"],
                 n_init: int = DEFAULTS["n_init"], missing: str = DEFAULTS["missing"],
                 class_prior: float = 1.0, random_state=DEFAULTS["random_state"]):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.priors = priors
        self.sampler = sampler
        self.max_iter = max_iter
        self.n_init = n_init
        self.missing = missing
        self.class_prior = class_prior
        self.random_state = random_state

    def _mixture(self, k: int, seed: int) -> BayesianGMM:
        return BayesianGMM(k, covariance_type=self.covariance_type, method=self.method,
                           draws=self.draws, tune=self.tune, chains=self.chains,
                           priors=self.priors, sampler=self.sampler, max_iter=self.max_iter,
                           n_init=self.n_init, missing=self.missing, random_state=seed)

    def _components_of(self, label):
        spec = self.n_components
        if isinstance(spec, Mapping):
            if label not in spec:
                raise ValueError(f"n_components has no entry for class {_shown(label)}; give one "
                                 f"for each of {self.classes_.tolist()}.")
            return int(spec[label])
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            return int(spec)
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            candidates = sorted(int(k) for k in spec)
            if not candidates or candidates[0] < 1:
                raise ValueError(f"n_components candidates must be positive integers, got "
                                 f"{list(spec)}.")
            return candidates
        raise TypeError(f"n_components must be an int, a mapping from class to int or a "
                        f"sequence of candidates, got {type(spec).__name__}.")

    def fit(self, X, y, sample_weight=None) -> BayesianGMMClassifier:
        """Fit one mixture per class of ``y``.

        Parameters
        ----------
        X : array-like or data frame of shape (n_samples, n_features)
            Missing entries (NaN) are marginalised unless ``missing="error"``.
        y : array-like of shape (n_samples,)
            Class labels (any hashable values that sort).
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights: of each row in its class's mixture, and in the class counts.

        Returns
        -------
        self
        """
        if self.missing not in MISSING:
            raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING))}, got "
                             f"{self.missing!r}.")
        prior = float(self.class_prior)
        if not np.isfinite(prior) or prior <= 0:
            raise ValueError(f"class_prior must be a positive number (the Dirichlet "
                             f"concentration of the class proportions), got "
                             f"{self.class_prior!r}.")
        named = has_feature_names(X)
        values, names = check_data(X, missing=self.missing, warn=False)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != values.shape[0]:
            raise ValueError(f"X has {values.shape[0]} rows but y has {y.shape[0]} labels; "
                             f"give one label per row.")
        check_classification_targets(y)
        weights = (np.ones(values.shape[0]) if sample_weight is None
                   else check_sample_weight(sample_weight, values.shape[0]))
        if sample_weight is not None and (weights == 0).any():
            # Rows of weight 0 count for nothing, nor does a class that has only such rows.
            keep = weights > 0
            values, y, weights = values[keep], y[keep], weights[keep]
        self.classes_, codes = np.unique(y, return_inverse=True)
        rng = check_random_state(self.random_state)
        estimators, counts, sizes = [], [], []
        for c, label in enumerate(self.classes_):
            rows = codes == c
            if rows.sum() < 2:
                raise ValueError(f"Class {_shown(label)} has {int(rows.sum())} sample; a mixture "
                                 f"needs at least 2 per class. Drop the class or add rows.")
            Xc = pd.DataFrame(values[rows], columns=names) if named else values[rows]
            wc = None if sample_weight is None else weights[rows]
            k = self._components_of(label)
            seed = draw_seed(rng)
            if isinstance(k, list):
                k = self._chosen_components(Xc, k, seed)
            try:
                estimators.append(self._mixture(k, seed).fit(Xc, sample_weight=wc))
            except ValueError as exc:  # say which class; its rows are counted in the class
                raise ValueError(f"Fitting the mixture of class {_shown(label)} (rows counted "
                                 f"among that class's {int(rows.sum())} rows): {exc}") from exc
            counts.append(weights[rows].sum())
            sizes.append(k)
        self.estimators_ = estimators
        self.class_counts_ = np.asarray(counts)
        self.n_components_ = np.asarray(sizes, dtype=int)
        self.n_features_in_ = values.shape[1]
        if named:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        # The joint draws: every class thinned to the same number, and the proportions.
        # MAP fits have one draw each: their class probabilities then vary only with the
        # proportions, of which _PROPORTION_DRAWS are drawn.
        draws = [posterior_draws(est.idata_) for est in estimators]
        n_joint = min(d.weights.shape[0] for d in draws)
        self._class_draws = [d.sliced(np.linspace(0, d.weights.shape[0] - 1, n_joint)
                                      .round().astype(int)) for d in draws]
        n_pi = n_joint if n_joint > 1 else _PROPORTION_DRAWS
        self._log_pi = np.log(rng.dirichlet(prior + self.class_counts_, n_pi))
        return self

    def _chosen_components(self, Xc, candidates: list[int], seed: int) -> int:
        from .selection import select_components

        if self.method == "map":
            raise ValueError("Choosing n_components per class compares PSIS-LOO, which needs "
                             "posterior draws: pass method='nuts' or 'advi', or give the "
                             "numbers (an int or a mapping from class to int).")
        picked = select_components(
            Xc, max(candidates), min_components=min(candidates),
            covariance_types=(self.covariance_type,), method=self.method,
            random_state=seed, draws=self.draws, tune=self.tune, chains=self.chains,
            priors=self.priors, sampler=self.sampler, max_iter=self.max_iter,
            n_init=self.n_init, missing=self.missing)
        if picked.best is None:
            raise RuntimeError("No number of components converged for a class; raise draws "
                               "and tune, or give the numbers.")
        return int(picked.best)

    # ------------------------------------------------------------------ prediction
    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        shape = getattr(X, "shape", None)
        if shape is not None and len(shape) == 2 and shape[1] != self.n_features_in_:
            raise ValueError(f"X has {shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input: pass the "
                             f"columns it was fitted on.")
        fitted = feature_names_in(self.estimators_[0].idata_)
        return check_features(X, fitted, self.n_features_in_, owner=type(self).__name__)

    def _log_joint(self, values: np.ndarray) -> np.ndarray:
        """Log pi_c^s + log p(x_n | theta_c^s) of checked rows: shape (S, N, C)."""
        per_class = [pointwise_log_likelihood(values, *d) for d in self._class_draws]
        return np.stack(per_class, axis=-1) + self._log_pi[:, None, :]

    def _over_blocks(self, X, reduce, probabilities: bool = True) -> np.ndarray:
        """``reduce`` of the per-draw class probabilities (S, n, C), or of the log joints.

        Block by block of rows (memory bounded whatever N), stacked along the rows.
        """
        values = self._check_X(X)
        per_row = self._log_pi.shape[0] * self.classes_.size
        blocks = []
        for sl in point_blocks(values.shape[0], per_row):
            lj = self._log_joint(values[sl])
            blocks.append(reduce(normalised(lj) if probabilities else lj))
        return np.concatenate(blocks)

    def predict_proba_draws(self, X) -> xr.DataArray:
        """P(class | x) for every joint posterior draw.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        xarray.DataArray
            Dims (draw, obs, class); the spread over ``draw`` is the uncertainty of each
            class probability (for example ``.quantile([0.05, 0.95], "draw")``).
        """
        p = normalised(self._log_joint(self._check_X(X)))
        return xr.DataArray(p, dims=("draw", "obs", "class"),
                            coords={"class": self.classes_}, name="class_probability")

    def predict_proba(self, X) -> np.ndarray:
        """Posterior mean of P(class | x), shape (n_samples, n_classes)."""
        return self._over_blocks(X, lambda p: p.mean(axis=0))

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The class of highest posterior mean probability."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def predict_proba_interval(self, X, interval_prob: float = 0.9):
        """Equal-tailed interval of P(class | x) over the draws.

        Returns
        -------
        lower, upper : ndarray of shape (n_samples, n_classes)
        """
        prob = float(interval_prob)
        if not 0.0 < prob < 1.0:
            raise ValueError(f"interval_prob must lie strictly between 0 and 1, got "
                             f"{interval_prob!r}.")
        tail = (1.0 - prob) / 2.0
        both = self._over_blocks(X, lambda p: np.quantile(p, [tail, 1.0 - tail], axis=0)
                                 .transpose(1, 0, 2))
        return both[:, 0], both[:, 1]

    def score_samples(self, X) -> np.ndarray:
        """Log posterior predictive density of each row under the classes' mixture.

        log (1/S) sum_s sum_c pi_c^s p(x | theta_c^s).
        """
        n_draws = self._log_pi.shape[0]
        return self._over_blocks(
            X, lambda lj: logsumexp(logsumexp(lj, axis=-1), axis=0) - np.log(n_draws),
            probabilities=False)
