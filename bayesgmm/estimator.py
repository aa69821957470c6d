"""A scikit-learn style estimator for the Bayesian Gaussian mixture."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .diagnostics import Diagnostics, diagnose, summary
from .fitting.pipeline import fit as fit_tree
from .fitting.result import (
    as_tree,
    feature_names_in,
    fit_info,
    known_classes,
    known_labels,
    noise_region_of,
    posterior_draws,
    with_known_labels,
)
from .likelihood.predictive import PredictiveParameters, posterior_predictive
from .params import DEFAULTS
from .prediction import map_rows
from .priors import Priors
from .validation import check_positive_int

__all__ = ["BayesianGMM", "MissingEntriesTags", "as_estimator"]


class MissingEntriesTags:
    """scikit-learn's tags of an estimator with a ``missing`` setting.

    NaN entries are accepted (marginalised) unless ``missing="error"`` refuses them.
    """

    def __sklearn_tags__(self):
        """scikit-learn's tags: NaN entries are accepted (marginalised) unless refused."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing != "error"
        return tags


class BayesianGMM(MissingEntriesTags, BaseEstimator):
    """Bayesian Gaussian mixture fitted by NUTS, ADVI, full-rank ADVI or MAP.

    The assignments are summed out of the likelihood, so gradient-based samplers and
    variational inference work; the weights get a Dirichlet prior and each covariance an
    LKJ-Cholesky prior with inverse-gamma standard deviations, which removes the
    maximum-likelihood singularity (see :class:`bayesgmm.Priors`). Every fit starts from an
    EM solution and its draws are relabelled to it, so component ``k`` means the same thing
    in every draw and chain.

    Parameters
    ----------
    n_components : int, default 2
        Number of mixture components K.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Covariance structure (see :func:`bayesgmm.fit`); ``covariances_`` is (K, D, D)
        whatever the structure.
    method : {"nuts", "advi", "fullrank_advi", "map"}, default "nuts"
        How to fit (see :func:`bayesgmm.fit`).
    draws : int, default 1000
        Posterior draws per chain (NUTS), or draws from the approximation (VI).
    tune : int, default 1000
        NUTS tuning steps per chain.
    chains : int, default 2
        NUTS chains.
    priors : Priors or dict, optional
        Prior settings; a dict overrides some defaults.
    random_state : int or numpy.random.Generator, optional
        Seed for every random step: same seed, same draws.
    component : {"gaussian", "student_t"}, default "gaussian"
        The components' distribution: Gaussian, or multivariate Student-t (heavy tails,
        for data with outliers), whose degrees of freedom are in ``dof_`` and the
        posterior's ``dof`` (see :func:`bayesgmm.fit`).
    dof : float, optional
        Student-t components: degrees of freedom fixed for every component (default:
        under their Gamma prior).
    noise : bool or {"box", "hypvol", "hull"}, default False
        Add a uniform noise component over the data's region (see :func:`bayesgmm.fit`):
        :meth:`predict` then returns -1 for the points the noise takes, and
        :meth:`predict_proba` has one more column, the last, P(noise | x); its weight is
        in ``noise_weight_``.
    sampler, target_accept, cores, max_iter, n_init, batch_size, order_by, backend, \
    store_log_likelihood, repair_modes, progressbar, missing
        Passed on to :func:`bayesgmm.fit`, which documents them.

    Attributes
    ----------
    idata_ : xarray.DataTree
        The fit (groups ``posterior``, ``log_likelihood``, ``observed_data``, ...).
    weights_ : ndarray of shape (K,)
        Posterior mean weights.
    means_ : ndarray of shape (K, D)
        Posterior mean component means.
    covariances_ : ndarray of shape (K, D, D)
        Posterior mean covariances (of Student-t components: their scale matrices).
    dof_ : ndarray of shape (K,)
        Only for Student-t components: posterior mean degrees of freedom.
    noise_weight_ : float
        Only with a noise component: its posterior mean weight (``weights_`` then sum to
        1 minus it).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Column names of a DataFrame passed to ``fit`` (or ``x0``, ``x1``, ...).
    classes_ : ndarray
        Only after a fit with known labels ``y``: ``classes_[j]`` is component j's label
        (components beyond ``len(classes_)`` have none).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import BayesianGMM
    >>> from bayesgmm.datasets import make_mixture
    >>> truth = make_mixture(200, 2, 2, random_state=0)
    >>> model = BayesianGMM(2, method="map", random_state=0).fit(truth.X)
    >>> model.means_.shape, model.covariances_.shape
    ((2, 2), (2, 2, 2))
    >>> proba = model.predict_proba(truth.X[:3])
    >>> bool(np.allclose(proba.sum(axis=1), 1.0))
    True
    """

    def __init__(self, n_components: int = DEFAULTS["n_components"], *,
                 covariance_type: str = DEFAULTS["covariance_type"],
                 method: str = DEFAULTS["method"], draws: int = DEFAULTS["draws"],
                 tune: int = DEFAULTS["tune"], chains: int = DEFAULTS["chains"],
                 priors: Priors | dict | None = DEFAULTS["priors"],
                 random_state=DEFAULTS["random_state"], sampler: str = DEFAULTS["sampler"],
                 target_accept: float = DEFAULTS["target_accept"],
                 cores: int | None = DEFAULTS["cores"], max_iter: int = DEFAULTS["max_iter"],
                 n_init: int = DEFAULTS["n_init"],
                 batch_size: int | None = DEFAULTS["batch_size"],
                 order_by: int | str | None = DEFAULTS["order_by"],
                 backend: str = DEFAULTS["backend"],
                 store_log_likelihood: bool | None = DEFAULTS["store_log_likelihood"],
                 repair_modes: bool = DEFAULTS["repair_modes"],
                 progressbar: bool | str = DEFAULTS["progressbar"],
                 missing: str = DEFAULTS["missing"],
                 component: str = DEFAULTS["component"],
                 dof: float | None = DEFAULTS["dof"],
                 noise: bool | str = DEFAULTS["noise"]):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.priors = priors
        self.random_state = random_state
        self.sampler = sampler
        self.target_accept = target_accept
        self.cores = cores
        self.max_iter = max_iter
        self.n_init = n_init
        self.batch_size = batch_size
        self.order_by = order_by
        self.backend = backend
        self.store_log_likelihood = store_log_likelihood
        self.repair_modes = repair_modes
        self.progressbar = progressbar
        self.missing = missing
        self.component = component
        self.dof = dof
        self.noise = noise

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, sample_weight=None, *, labels=None) -> BayesianGMM:
        """Fit the mixture to ``X``.

        Parameters
        ----------
        X : array-like or data frame of shape (n_samples, n_features)
            An array, or a pandas, polars or pyarrow frame; with string column names,
            later predictions check their columns by name.
        y : None
            Ignored, as by every scikit-learn clusterer, so that a pipeline or a
            cross-validation that passes its target along fits as it should. Known labels
            go in ``labels``.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights of the rows (see :func:`bayesgmm.fit`).
        labels : array-like of shape (n_samples,), optional
            Known components of some rows (semi-supervised), -1 or None where unknown: the
            distinct labels, sorted, name components 0, 1, ... (``classes_``); see
            :func:`bayesgmm.fit`. None (the default): an unsupervised fit.

        Returns
        -------
        self
        """
        params = self.get_params(deep=False)
        self.idata_ = fit_tree(X, params.pop("n_components"), sample_weight=sample_weight,
                               labels=labels, **params)
        self._set_from_idata(self.idata_)
        return self

    def _set_from_idata(self, idata: xr.DataTree) -> None:
        self._diagnostics = None
        post = idata["posterior"]
        names = [str(f) for f in post["feature"].to_numpy()]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.n_features_in_ = len(names)
        self._draws = posterior_draws(idata)
        self._predictive_params = PredictiveParameters(*self._draws)
        k, d = post.sizes["component"], self.n_features_in_
        self.weights_ = self._draws.weights.mean(axis=0)
        self.means_ = self._draws.means.mean(axis=0)
        self.covariances_ = post["covariances"].to_numpy().reshape(-1, k, d, d).mean(axis=0)
        if self._draws.dof is not None:
            self.dof_ = self._draws.dof.mean(axis=0)
        elif hasattr(self, "dof_"):
            del self.dof_
        if self._draws.noise is not None:
            self.noise_weight_ = float(self._draws.noise.weights.mean())
        elif hasattr(self, "noise_weight_"):
            del self.noise_weight_
        classes = known_classes(idata)
        if classes is not None:
            self.classes_ = classes
        elif hasattr(self, "classes_"):
            del self.classes_

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Save the fit (its ``idata_`` and settings) to netCDF, or zarr for a ``.zarr`` path.

        Needs the ``io`` extra (``pip install 'bayesgmm[io]'``). A ``numpy.random.Generator``
        passed as ``random_state`` is saved as None (the draws themselves are saved).

        The save is atomic: the fit is written beside ``path`` under a hidden temporary
        name, flushed to disk, read back and checked, and only then renamed onto ``path``.
        If anything fails (a full disk, an interrupt) the temporary is removed and a previous
        save at ``path`` is left exactly as it was; a program reading a previous ``.nc``
        file while it is replaced keeps reading the previous contents. Every variable, the
        groups' attributes and the settings are saved with a SHA-256 checksum that
        :meth:`load` verifies.

        Parameters
        ----------
        path : str or pathlib.Path
            For example ``"fit.nc"`` or ``"fit.zarr"``. If it exists it must be a previous
            bayesgmm save, of the same kind.

        Raises
        ------
        ValueError
            ``path`` has an extension other than netCDF's (``.nc``, ``.nc4``, ``.netcdf``,
            ``.h5``, ``.hdf5``) or zarr's (``.zarr``), e.g. ``fit.pkl``: the format follows
            the extension.
        FileExistsError
            ``path`` exists and is not a bayesgmm save (or is a ``.zarr`` save holding
            other files too): nothing is replaced or deleted.
        OSError
            Writing failed (for example not enough disk space); a previous save is intact.
        """
        check_is_fitted(self, "idata_")
        from .io import save_tree

        save_tree(self.idata_, path, self.get_params(deep=False))

    @classmethod
    def load(cls, path) -> BayesianGMM:
        """Load a fit saved by :meth:`save`; it predicts exactly as the saved one.

        The file's checksums are verified, its settings are checked as :meth:`fit` checks
        them, and its posterior is checked for what prediction needs (weights, means and
        covariances over components and features, finite, weights summing to 1,
        covariances symmetric positive definite). So a load either returns the model that
        was saved, predicting bit for bit as it did, or raises. Files saved by bayesgmm
        versions without checksums load after the same checks, with an
        ``UnverifiedFitWarning``.

        Parameters
        ----------
        path : str or pathlib.Path

        Returns
        -------
        BayesianGMM

        Raises
        ------
        FileNotFoundError
            Nothing at ``path``.
        bayesgmm.SavedFitError
            A ``ValueError`` naming the file and what is wrong: not readable (damaged,
            truncated, not netCDF or zarr), corrupted (a checksum does not match: the
            message names the variable), saved by a newer bayesgmm, or holding an invalid
            setting (named) or an unusable posterior.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> from bayesgmm import BayesianGMM
        >>> from bayesgmm.datasets import make_mixture
        >>> X = make_mixture(100, 2, 2, random_state=0).X
        >>> model = BayesianGMM(2, method="map", random_state=0).fit(X)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     model.save(pathlib.Path(tmp) / "fit.nc")
        ...     loaded = BayesianGMM.load(pathlib.Path(tmp) / "fit.nc")
        >>> bool((loaded.predict_proba(X) == model.predict_proba(X)).all())
        True
        """
        from .exceptions import SavedFitError
        from .io import load_tree

        tree, params = load_tree(path)
        if isinstance(params.get("priors"), dict):
            params["priors"] = Priors(**params["priors"])
        model = cls(**params)
        model.idata_ = tree
        try:
            model._set_from_idata(tree)
        except np.linalg.LinAlgError as exc:
            raise SavedFitError(f"{str(path)!r}: the posterior's covariances are not "
                                f"positive definite; the file is damaged.") from exc
        return model

    @classmethod
    def from_fit(cls, result: xr.DataTree) -> BayesianGMM:
        """A fitted estimator around the result of :func:`bayesgmm.fit`.

        Its settings (components, method, sampler, covariance structure) are read from the
        result; it predicts, scores and plots as the estimator that made such a fit would.

        Parameters
        ----------
        result : xarray.DataTree

        Returns
        -------
        BayesianGMM

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import BayesianGMM, fit
        >>> X = np.concatenate([np.full((20, 1), -3.0), np.full((20, 1), 3.0)])
        >>> X += np.random.default_rng(0).normal(size=X.shape)
        >>> model = BayesianGMM.from_fit(fit(X, 2, method="map", random_state=0))
        >>> model.n_components, model.predict(X[:2]).shape
        (2, (2,))
        """
        tree = as_tree(result)
        info = fit_info(tree)
        post = tree["posterior"]
        region = noise_region_of(post)
        model = cls(post.sizes["component"], method=info.method,
                    sampler=info.sampler or DEFAULTS["sampler"],
                    covariance_type=info.covariance_type,
                    component="student_t" if "dof" in post else "gaussian",
                    noise=False if region is None else region.kind)
        model.idata_ = tree
        model._set_from_idata(tree)
        return model

    def fit_predict(self, X, y=None, sample_weight=None, *, labels=None) -> np.ndarray:
        """Fit (with known ``labels``, if given), then the most probable component per row.

        A row with a known label gets its own component, as the model says. ``y`` is
        ignored, as in :meth:`fit`.
        """
        proba = self.fit(X, sample_weight=sample_weight, labels=labels).predict_proba(X)
        label = with_known_labels(proba, known_labels(self.idata_)).argmax(axis=1)
        label[label == self.n_components] = -1  # a noise component's column
        return label

    # ------------------------------------------------------------------ prediction
    def _predictive(self) -> PredictiveParameters:
        """The draws in the prediction kernel's form, made once per fit."""
        check_is_fitted(self, "idata_")
        return self._predictive_params

    def _map_rows(self, X, compute, n_columns, dtype=float):
        return map_rows(X, compute, fitted_names=feature_names_in(self.idata_),
                        n_features=self.n_features_in_, owner=type(self).__name__,
                        n_columns=n_columns, dtype=dtype)

    def predict_proba(self, X):
        """Posterior mean of P(component | x) for each row, averaged over the draws.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), Dask array, or iterator of chunks
            A Dask array gives a Dask array, computed lazily block by block of rows; an
            iterator of chunks (arrays or data frames) gives a generator of results, one
            per chunk (see :mod:`bayesgmm.prediction`). All forms give the same numbers.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            With a noise component, (n_samples, n_components + 1): the last column is
            P(noise | x).

        Notes
        -----
        Computed by a numba kernel over blocks of rows, one draw at a time, in threads over
        the rows: memory is that of the result, whatever the number of draws.
        """
        params = self._predictive()
        return self._map_rows(X, lambda x, threads: posterior_predictive(
            x, params, n_threads=threads)[0], params.n_columns)

    def predict(self, X):
        """Most probable component of each row (argmax of :meth:`predict_proba`).

        -1 where a noise component is the most probable. ``X`` as in
        :meth:`predict_proba`.
        """
        params = self._predictive()
        k = params.n_components

        def label(x, threads):
            out = posterior_predictive(x, params, n_threads=threads)[0].argmax(axis=1)
            out[out == k] = -1  # a noise component's column
            return out

        return self._map_rows(X, label, None, dtype=np.int64)

    def score_samples(self, X):
        """Log posterior predictive density of each row: log (1/S) sum_s p(x | theta_s).

        ``X`` as in :meth:`predict_proba`.
        """
        params = self._predictive()
        return self._map_rows(X, lambda x, threads: posterior_predictive(
            x, params, n_threads=threads)[1], None)

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density per row (``X`` as in :meth:`predict_proba`)."""
        scores = self.score_samples(X)
        if isinstance(scores, Iterator):  # chunks: their total over their rows
            total, n = 0.0, 0
            for chunk in scores:
                total, n = total + float(chunk.sum()), n + chunk.shape[0]
            return total / n if n else float("nan")
        return float(scores.mean())

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw new data from the posterior predictive distribution.

        Each row uses a random posterior draw of the parameters, then a component, then a
        Gaussian draw (Student-t components: a t draw). With a noise component, a row it
        takes (label -1) is uniform over the fitted data's bounding box.

        Parameters
        ----------
        n_samples : int, default 1
        random_state : int or numpy.random.Generator, optional

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "idata_")
        n = check_positive_int(n_samples, "n_samples")
        rng = np.random.default_rng(random_state)
        return self._simulate(rng.integers(self._draws.weights.shape[0], size=n), rng)

    def _simulate(self, s: np.ndarray, rng: np.random.Generator):
        """One new row from posterior draw ``s[i]`` for each i: (X, labels), see sample."""
        w, means, chols, dof, noise = self._draws
        n = s.size
        u = rng.random(n)[:, None]
        labels = np.minimum((u > np.cumsum(w[s], axis=1)).sum(axis=1), w.shape[1] - 1)
        if noise is not None:  # beyond the components' weights: the noise
            labels[u[:, 0] > w[s].sum(axis=1)] = -1
        z = rng.standard_normal((n, self.n_features_in_))
        if dof is not None:  # Student-t: a normal divided by sqrt(chi2_nu / nu)
            nu = dof[s, labels]
            z = z / np.sqrt(rng.chisquare(nu) / nu)[:, None]
        X = means[s, labels] + np.einsum("nij,nj->ni", chols[s, labels], z)
        if noise is not None and (labels == -1).any():
            data = self.idata_["observed_data"]["x"].to_numpy()
            X[labels == -1] = noise.region.sample(data, int((labels == -1).sum()), rng)
        return X, labels

    def summary(self, var_names=("weights", "means", "sigmas")) -> pd.DataFrame:
        """Posterior summary table, computed on the relabelled draws.

        See :func:`bayesgmm.summary`: NUTS fits include R-hat and ESS; VI fits only the
        statistics of the draws from the approximation; a MAP fit only the point.

        Returns
        -------
        pandas.DataFrame
        """
        check_is_fitted(self, "idata_")
        return summary(self.idata_, var_names=var_names)

    def diagnose(self) -> Diagnostics:
        """Diagnostics of the fit (see :func:`bayesgmm.diagnose`); print it for a report.

        Returns
        -------
        Diagnostics
        """
        check_is_fitted(self, "idata_")
        return diagnose(self.idata_)

    # ------------------------------------------------------------------ display
    def _cached_diagnostics(self) -> Diagnostics:
        """:meth:`diagnose`, computed once per fit (for the notebook display)."""
        if getattr(self, "_diagnostics", None) is None:
            self._diagnostics = self.diagnose()
        return self._diagnostics

    def _html_repr(self) -> str:
        """Jupyter's view: the fit's summary above scikit-learn's estimator diagram.

        The summary (:func:`bayesgmm.display.fit_html`) only once the estimator is fitted.
        """
        from .display import fit_html

        diagram = super()._html_repr()
        if not hasattr(self, "idata_"):
            return diagram
        return fit_html(self) + diagram


def as_estimator(fitted) -> BayesianGMM:
    """``fitted`` as a fitted :class:`BayesianGMM`: itself, or wrapped around a DataTree.

    Raises TypeError for anything else (and for an unfitted estimator).
    """
    if isinstance(fitted, BayesianGMM):
        check_is_fitted(fitted, "idata_")
        return fitted
    if isinstance(fitted, xr.DataTree):
        return BayesianGMM.from_fit(fitted)
    raise TypeError("Pass a fitted BayesianGMM or the xarray.DataTree that bayesgmm.fit "
                    f"returns, got {type(fitted).__name__}.")

