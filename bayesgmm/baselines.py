r"""Maximum-likelihood point estimates to compare the Bayesian fit with.

Every baseline returns a :class:`PointEstimate`: EM (:func:`fit_em`), direct gradient ascent
on the likelihood (:func:`fit_ml_gradient`). :func:`singularity_path` shows why maximum
likelihood needs care and why the Bayesian model does not.

The likelihood of a Gaussian mixture with full covariances is unbounded: a component whose
mean sits on a data point and whose covariance shrinks to zero drives it to :math:`+\infty`
(roughly :math:`-D \log s` for a scale :math:`s`). EM and gradient ascent therefore find local
maxima at best; both functions here detect the degenerate ones and say so, rather than
reporting a larger log-likelihood as a better fit.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _math
from ._math import expand_covariances as _expand_covariances
from ._validation import check_data, check_model_size, check_n_components, check_positive_int
from .diagnostics import SINGULAR_EIGENVALUE, ConvergenceWarning, FitWarning
from .inference import _rng, em_start
from .model import COVARIANCE_TYPES, Standardizer, build_model, log_posterior, point_from_params
from .model import check_covariance_type as _check_covariance_type

__all__ = ["PointEstimate", "fit_em", "fit_ml_gradient", "singularity_path", "EM_STRATEGIES",
           "COVARIANCE_TYPES"]

_LOG_2PI = float(np.log(2.0 * np.pi))

#: Initialisation strategies :func:`fit_em` cycles through. "hierarchical" is Ward
#: agglomeration (like R's mclust, on its scaled-SVD view of the data); the others are
#: scikit-learn's ``init_params``.
EM_STRATEGIES = ("hierarchical", "kmeans", "k-means++", "random_from_data", "random")

# A component is degenerate when it explains fewer points (weight * N) than its covariance
# needs to be non-singular without the regularisation (D + 1 for "full", 2 for "diag" and
# "spherical"; no count for "tied", whose covariance is estimated from all N points), or when
# the smallest eigenvalue of its covariance, in feature-variance units and without the
# regularisation EM adds, is under diagnostics.SINGULAR_EIGENVALUE (see _degeneracy).

# mclust agglomerates a random subset of this many rows when the data are larger: Ward
# needs the N (N - 1) / 2 pairwise distances.
_HIERARCHICAL_SUBSET = 2000


def _n_parameters(k: int, d: int, covariance_type: str = "full") -> int:
    """Free parameters of a mixture: K - 1 weights, K D means, and the covariances.

    Covariance parameters: "full" K D (D + 1) / 2, "diag" K D, "spherical" K, "tied"
    D (D + 1) / 2 (as scikit-learn's ``GaussianMixture._n_parameters``).
    """
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
           "tied": d * (d + 1) // 2}[_check_covariance_type(covariance_type)]
    return int(k - 1 + k * d + cov)


def _reduce_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances as scikit-learn's ``covariances_`` of a ``covariance_type``."""
    if covariance_type == "full":
        return covariances.copy()
    if covariance_type == "tied":
        return covariances[0].copy()
    if covariance_type == "diag":
        return np.diagonal(covariances, axis1=1, axis2=2).copy()
    return covariances[:, 0, 0].copy()  # spherical


def _check_structure(covariances: np.ndarray, covariance_type: str) -> None:
    """Raise ValueError when (K, D, D) covariances do not have the ``covariance_type`` form."""
    k, d = covariances.shape[0], covariances.shape[-1]
    expected = _expand_covariances(_reduce_covariances(covariances, covariance_type),
                                   covariance_type, k, d)
    diag = np.abs(np.diagonal(covariances, axis1=1, axis2=2))
    tol = 1e-10 * max(float(diag.max(initial=0.0)), np.finfo(float).tiny)
    if not np.allclose(covariances, expected, rtol=1e-10, atol=tol):
        form = {"diag": "diagonal matrices", "spherical": "multiples of the identity",
                "tied": "one matrix shared by all components"}[covariance_type]
        raise ValueError(f"covariances do not have the {covariance_type!r} structure: they "
                         f"must be {form}.")


@dataclass(frozen=True, eq=False)
class PointEstimate:
    """One fitted mixture: parameters, fit statistics and how it was obtained.

    Attributes
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
    log_likelihood : float
        Total log-likelihood, summed over the data points it was fitted to.
    responsibilities : ndarray of shape (N, K)
        P(z_n = k | x_n) on the data it was fitted to.
    bic, aic : float
        Bayesian and Akaike information criteria (lower is better), with
        :attr:`n_parameters` free parameters.
    converged : bool
    method : str
        "em" or "ml_gradient".
    info : dict
        Method-specific details (iterations, the message of a stopped optimiser, ...).
    covariance_type : str
        "full" (default), "diag", "spherical" or "tied": the structure the covariances were
        fitted with (see :data:`COVARIANCE_TYPES`). ``covariances`` always holds the K full
        D x D matrices; the structure sets the number of free parameters.

    Examples
    --------
    >>> import numpy as np
    >>> est = PointEstimate.from_parameters(
    ...     np.array([[0.0], [0.1], [5.0]]), np.array([0.5, 0.5]), np.array([[0.0], [5.0]]),
    ...     np.array([[[1.0]], [[1.0]]]), method="em")
    >>> est.n_parameters, est.predict(np.array([[4.0], [-1.0]])).tolist()
    (5, [1, 0])
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    log_likelihood: float
    responsibilities: np.ndarray
    bic: float
    aic: float
    converged: bool
    method: str
    info: dict = field(default_factory=dict)
    covariance_type: str = "full"

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return int(self.weights.shape[0])

    @property
    def n_parameters(self) -> int:
        """Free parameters: K - 1 + K D + covariance parameters of :attr:`covariance_type`.

        Covariance parameters: "full" K D (D + 1) / 2, "diag" K D, "spherical" K, "tied"
        D (D + 1) / 2.
        """
        return _n_parameters(*self.means.shape, self.covariance_type)

    def _chols(self) -> np.ndarray:
        return np.linalg.cholesky(self.covariances)

    def _check_X(self, X) -> np.ndarray:
        """``X`` as a float64 array with as many columns as the means (see check_data)."""
        return check_data(X, n_features=self.means.shape[1])[0]

    def predict_proba(self, X) -> np.ndarray:
        """P(z = k | x) for each row of ``X`` (Bayes' rule with the point estimate)."""
        X = self._check_X(X)
        return _math.responsibilities(X, self.weights[None], self.means[None],
                                      self._chols()[None])[0]

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X) -> np.ndarray:
        """Log density log p(x) of each row under the point estimate."""
        X = self._check_X(X)
        return _math.pointwise_loglik(X, self.weights[None], self.means[None],
                                      self._chols()[None])[0]

    @classmethod
    def from_parameters(cls, X, weights, means, covariances, *, converged: bool = True,
                        method: str = "em", info: dict | None = None,
                        covariance_type: str = "full") -> PointEstimate:
        """Build an estimate from parameters, computing its fit statistics on ``X``.

        Parameters
        ----------
        X : ndarray of shape (N, D)
            The data the parameters were fitted to.
        weights : ndarray of shape (K,)
        means : ndarray of shape (K, D)
        covariances : ndarray of shape (K, D, D)
        converged : bool
        method : str
        info : dict, optional
        covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
            The structure of ``covariances`` (checked), which sets the number of free
            parameters in the BIC and AIC.

        Returns
        -------
        PointEstimate
        """
        X = np.asarray(X, dtype=float)
        weights = np.asarray(weights, dtype=float)
        means = np.asarray(means, dtype=float)
        covariances = np.asarray(covariances, dtype=float)
        covariance_type = _check_covariance_type(covariance_type)
        if covariance_type != "full":
            _check_structure(covariances, covariance_type)
        chols = np.linalg.cholesky(covariances)
        loglik = float(_math.pointwise_loglik(X, weights[None], means[None], chols[None]).sum())
        resp = _math.responsibilities(X, weights[None], means[None], chols[None])[0]
        p = _n_parameters(*means.shape, covariance_type)
        n = X.shape[0]
        return cls(weights=weights, means=means, covariances=covariances, log_likelihood=loglik,
                   responsibilities=resp, bic=-2.0 * loglik + p * math.log(n),
                   aic=-2.0 * loglik + 2.0 * p, converged=bool(converged), method=method,
                   info=dict(info or {}), covariance_type=covariance_type)

    def to_sklearn(self):
        """The same mixture as a fitted ``sklearn.mixture.GaussianMixture``.

        Its ``covariance_type`` is this estimate's, with ``covariances_``,
        ``precisions_cholesky_`` and ``precisions_`` in that type's shapes; its ``score``,
        ``score_samples``, ``predict_proba`` and ``bic`` agree with this estimate's.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0], [0.1], [5.0]])
        >>> est = PointEstimate.from_parameters(
        ...     X, np.array([0.5, 0.5]), np.array([[0.0], [5.0]]), np.array([[[1.0]], [[1.0]]]))
        >>> bool(np.isclose(est.to_sklearn().score(X) * 3, est.log_likelihood))
        True
        """
        from scipy.linalg import solve_triangular
        from sklearn.mixture import GaussianMixture

        k, d = self.means.shape
        ctype = self.covariance_type
        gm = GaussianMixture(n_components=k, covariance_type=ctype)
        gm.weights_ = self.weights.copy()
        gm.means_ = self.means.copy()
        gm.covariances_ = _reduce_covariances(self.covariances, ctype)
        if ctype in ("full", "tied"):
            chols = self._chols() if ctype == "full" else np.linalg.cholesky(gm.covariances_)
            prec_chol = np.stack([solve_triangular(c, np.eye(d), lower=True).T
                                  for c in np.reshape(chols, (-1, d, d))])
            precisions = prec_chol @ np.swapaxes(prec_chol, 1, 2)
            if ctype == "tied":
                prec_chol, precisions = prec_chol[0], precisions[0]
        else:  # diag (K, D) or spherical (K,): variances
            prec_chol = 1.0 / np.sqrt(gm.covariances_)
            precisions = 1.0 / gm.covariances_
        gm.precisions_cholesky_ = prec_chol
        gm.precisions_ = precisions
        gm.converged_ = self.converged
        gm.n_iter_ = int(self.info.get("n_iter", 0))
        gm.lower_bound_ = self.log_likelihood / max(self.responsibilities.shape[0], 1)
        gm.n_features_in_ = d
        return gm


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` distinct seeds drawn from ``rng``."""
    return [int(s) for s in rng.choice(2**31 - 1, size=n, replace=False)]


def _one_thread():
    """Run BLAS and OpenMP on one thread while fitting.

    EM on small data makes many D x D solves; with two busy cores, OpenBLAS on two threads
    made scipy's ``solve_triangular`` on a 4 x 4 matrix take 8.5 ms instead of 0.02 ms here,
    and a scikit-learn EM run on iris 2.5 s instead of 0.02 s.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _check_number(value, name: str, *, minimum: float, strict: bool) -> float:
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {minimum}, got {value!r}.")
    return float(value)


def _constant_column_advice(X: np.ndarray, names: list[str]) -> str:
    """Advice for data with constant columns (empty when there are none).

    A constant column gives every component zero variance along it, so the likelihood is
    unbounded for any number of components: fewer components do not help, dropping it does.
    """
    constant = [names[j] for j in range(X.shape[1]) if np.ptp(X[:, j]) == 0]
    if not constant:
        return ""
    return (f"X has constant column(s) {constant}: every component's variance along them is "
            f"zero, so the likelihood is unbounded for any number of components. Drop those "
            f"columns, or use the Bayesian fit (BayesianGMM), whose priors keep the variances "
            f"positive.")


def _params_from_labels(Z: np.ndarray, labels: np.ndarray, k: int, reg: float):
    """Weights, means and regularised covariances of the groups of a hard partition of ``Z``.

    A group with at most D rows has a singular sample covariance; it is shrunk towards the
    covariance of all the data (D + 1 pseudo-observations), so that the start is proper.
    """
    n, d = Z.shape
    overall = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
    weights = np.empty(k)
    means = np.empty((k, d))
    covs = np.empty((k, d, d))
    for j in range(k):
        rows = Z[labels == j]
        m = rows.shape[0]
        if m == 0:  # not produced by Ward or k-means; be safe anyway
            weights[j], means[j], covs[j] = 0.5 / n, Z.mean(axis=0), overall
            continue
        weights[j] = m / n
        means[j] = rows.mean(axis=0)
        resid = rows - means[j]
        scatter = resid.T @ resid
        covs[j] = (scatter + (d + 1) * overall) / (m + d + 1) if m <= d else scatter / m
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2)) + reg * np.eye(d)
    return weights / weights.sum(), means, covs


def _degeneracy(weights, covariances, n: int, reg: float,
                covariance_type: str = "full") -> tuple[bool, int, str]:
    """Whether a solution on the standardised scale is degenerate, which component, and why.

    ``covariances`` are (K, D, D), or scikit-learn's ``covariances_`` of ``covariance_type``.
    Degenerate: a component explains fewer points (weight * N) than its ML covariance needs
    to be non-singular (D + 1 for "full", 2 for "diag" and "spherical", no minimum for
    "tied", whose covariance is pooled over all N points), or the smallest eigenvalue of its
    covariance without the regularisation ``reg`` (in units of the feature variances, i.e. on
    the correlation scale) is under 1e-6.
    """
    counts = np.asarray(weights) * n
    k = counts.shape[0]
    c = np.asarray(covariances, dtype=float)
    if covariance_type == "spherical":
        covs = c.reshape(k, 1, 1)  # one variance per component (expanded or not)
        if c.ndim == 3:
            covs = c[:, :1, :1]
    else:
        covs = _expand_covariances(c, covariance_type, k, c.shape[-1])
    d = covs.shape[-1]
    min_count = {"full": d + 1, "diag": 2, "spherical": 2, "tied": 0}[covariance_type]
    eig = np.linalg.eigvalsh(covs - reg * np.eye(d)).min(axis=1)
    reasons = []
    for j in range(counts.shape[0]):
        if counts[j] < min_count:
            reasons.append((j, f"component {j} explains {counts[j]:.3g} point(s) (weight "
                               f"{weights[j]:.3g})"))
        elif eig[j] < SINGULAR_EIGENVALUE:  # the threshold diagnose() uses too
            reasons.append((j, f"component {j} has a near-singular covariance (smallest "
                               f"eigenvalue {max(eig[j], 0.0):.3g} in units of the feature "
                               f"variances)"))
    if not reasons:
        return False, -1, ""
    return True, reasons[0][0], "; ".join(r for _, r in reasons)


# --------------------------------------------------------------------------------------------
# EM
# --------------------------------------------------------------------------------------------

# One cycle of (strategy, view) for the starts of fit_em. Views: "svd" is mclust's default
# for its hierarchical start (standardised data rotated onto their singular vectors, each
# scaled by the square root of its singular value), "standardized" the data with unit
# variances, "raw" the user's data. Which start wins varies from data set to data set (on
# iris, k-means on the raw data; on wine and breast cancer, k-means++ or Ward on the SVD
# view), hence the mixture.
_EM_CYCLE = (
    ("hierarchical", "svd"), ("kmeans", "raw"), ("k-means++", None), ("kmeans", "svd"),
    ("random_from_data", None), ("hierarchical", "standardized"), ("kmeans", "standardized"),
    ("k-means++", None), ("random", None), ("hierarchical", "raw"),
)


def _em_schedule(n_init: int, subsample: bool) -> list[tuple[str, str | None]]:
    """(strategy, view) of each start: the cycle above, repeated.

    Without subsampling the hierarchical starts are deterministic, so in repeated cycles
    they are replaced by k-means++ starts.
    """
    schedule = []
    while len(schedule) < n_init:
        for strategy, view in _EM_CYCLE:
            if strategy == "hierarchical" and len(schedule) >= len(_EM_CYCLE) and not subsample:
                strategy, view = "k-means++", None
            schedule.append((strategy, view))
    return schedule[:n_init]


def _views(X: np.ndarray, Z: np.ndarray) -> dict[str, np.ndarray]:
    u, s, _ = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    return {"raw": X, "standardized": Z, "svd": u * np.sqrt(s)}


def _structured_precisions(weights, covs, covariance_type):
    """scikit-learn's ``precisions_init`` of ``covariance_type`` from (K, D, D) covariances.

    The covariances are first reduced to the structure by :func:`_to_structure`.
    """
    reduced = _reduce_covariances(_to_structure(weights, covs, covariance_type),
                                  covariance_type)
    if covariance_type in ("full", "tied"):
        precisions = np.linalg.inv(reduced)
        return 0.5 * (precisions + np.swapaxes(precisions, -1, -2))
    return 1.0 / reduced  # variances: (K, D) for "diag", (K,) for "spherical"


def _make_em(Z, views, k, strategy, view, seed, reg_covar, max_iter, tol,
             covariance_type="full"):
    """An unfitted GaussianMixture that starts as ``strategy`` on ``view`` says."""
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.mixture import GaussianMixture

    kwargs: dict = {"init_params": strategy}
    if strategy == "hierarchical" or (strategy == "kmeans" and view != "standardized"):
        rows = np.arange(Z.shape[0])
        if strategy == "hierarchical":
            if rows.size > _HIERARCHICAL_SUBSET:  # mclust's default subset for large data
                rng = np.random.default_rng(seed)
                rows = np.sort(rng.choice(rows.size, size=_HIERARCHICAL_SUBSET, replace=False))
            data = views[view][rows]
            if view == "svd" and rows.size < Z.shape[0]:
                data = _views(views["raw"][rows], Z[rows])["svd"]
            labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(data)
        else:
            labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(views[view]).labels_
        # A floor on the start's regularisation keeps it proper when reg_covar is 0.
        weights, means, covs = _params_from_labels(Z[rows], labels, k, max(reg_covar, 1e-6))
        kwargs = {"weights_init": weights, "means_init": means,
                  "precisions_init": _structured_precisions(weights, covs, covariance_type),
                  "init_params": "random_from_data"}  # unused: all three are given
    return GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=1,
                           reg_covar=reg_covar, max_iter=max_iter, tol=tol, random_state=seed,
                           warm_start=True, **kwargs)


def _run_start(Z, views, k, strategy, view, seed, *, reg_covar, max_iter, tol, n_candidates,
               short_iter, deterministic, covariance_type="full"):
    """One EM start: the best of ``n_candidates`` short runs, continued to convergence.

    Returns (fitted GaussianMixture, seed of the chosen candidate, total EM iterations).
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    n = Z.shape[0]
    cand_seeds = ([seed] if deterministic or n_candidates == 1
                  else _seeds(np.random.default_rng(seed), n_candidates))
    short = min(short_iter, max_iter) if len(cand_seeds) > 1 else max_iter
    best, best_key, error = None, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        for s in cand_seeds:
            try:
                gm = _make_em(Z, views, k, strategy, view, s, reg_covar, short, tol,
                              covariance_type).fit(Z)
            except (ValueError, np.linalg.LinAlgError) as exc:  # ill-defined covariance
                error = ValueError(str(exc))
                continue
            degenerate = _degeneracy(gm.weights_, gm.covariances_, n, reg_covar,
                                     covariance_type)[0]
            key = (not degenerate, float(gm.score(Z)))
            if best_key is None or key > best_key:
                best, best_key, best_seed = gm, key, s
        if best is None:
            raise error
        n_iter = best.n_iter_
        if short < max_iter and not best.converged_:
            best.set_params(max_iter=max_iter - short)
            best.fit(Z)  # warm start: continues from the short run
            n_iter += best.n_iter_
    return best, best_seed, n_iter


def fit_em(X, n_components, *, n_init: int = 10, random_state=None, reg_covar: float = 1e-6,
           max_iter: int = 1000, tol: float = 1e-8, n_candidates: int = 10,
           short_iter: int = 10, covariance_type: str = "full") -> PointEstimate:
    """Maximum likelihood by EM: the best of several starts of scikit-learn's GaussianMixture.

    The starts cycle through :data:`EM_STRATEGIES` and views of the data: a model-based
    hierarchical start like R's mclust (Ward agglomeration on mclust's scaled-SVD view of the
    data, then on the standardised and the raw data; on a random subset of 2000 rows for
    larger data), k-means on the raw, SVD and standardised views, and scikit-learn's
    ``"k-means++"``, ``"random_from_data"`` and ``"random"``. Each start has its own seed
    drawn from ``random_state``. Every random start is the best (highest log-likelihood,
    non-degenerate first) of ``n_candidates`` short runs of ``short_iter`` EM iterations,
    continued to convergence ("short EM", Biernacki, Celeux and Govaert 2003).

    scikit-learn's default (``n_init`` k-means starts) can stop short of the best
    log-likelihood that other starts reach: on the first 5 features of scikit-learn's breast
    cancer data with K=4 it ends at -4253.5 for every seed tried, where these starts reach
    -4246.1. The likelihood of a mixture has many local maxima, though, and no number of
    starts is guaranteed to find the best one.

    EM runs on the standardised data (columns centred and divided by their standard
    deviations): EM is affine-equivariant, so this only makes ``reg_covar`` and the k-means
    starts independent of the units. The parameters and the log-likelihood are reported on
    the user's scale.

    ``covariance_type`` restricts the covariances as scikit-learn's argument of that name
    does (mclust's VVV, VVI, VII and EEE): "full", "diag" (diagonal), "spherical"
    (``s_k**2 * I``) or "tied" (one full covariance shared by all components). "spherical"
    is not invariant to rescaling single features, so for it the data are centred and divided
    by one common scale (the root mean feature variance) instead of each column's standard
    deviation; "diag" and "tied" are invariant to that and use the usual standardisation.

    A degenerate optimum (a component explaining fewer than D + 1 points, 2 for "diag" and
    "spherical", none for "tied"; or with a covariance whose smallest eigenvalue, without
    ``reg_covar``, is under 1e-6 of the feature variances) is a singularity of the
    likelihood, not a better fit: the best non-degenerate start is chosen when there is one,
    and a :class:`~bayesgmm.FitWarning` says so when the best start overall was degenerate,
    or when all were.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
    n_init : int, default 10
        Number of EM starts.
    random_state : int, numpy.random.Generator or None
        Seeds every start.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance at each M-step, in units of each feature's
        variance (of the mean feature variance for "spherical").
    max_iter : int, default 1000
        EM iterations per start.
    tol : float, default 1e-8
        Convergence threshold on the change of the mean per-point log-likelihood.
    n_candidates : int, default 10
        Short runs per random start; 1 runs each start straight to convergence.
    short_iter : int, default 10
        EM iterations of each short run.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Structure of the covariances (see :data:`COVARIANCE_TYPES`).

    Returns
    -------
    PointEstimate
        ``method="em"``, with ``covariance_type`` set and ``covariances`` always the
        (K, D, D) full matrices; ``converged`` is scikit-learn's ``converged_`` of the chosen start.
        ``info`` holds ``n_iter``, ``strategy``, ``view`` and ``seed`` of the chosen start,
        one record per start in ``starts`` (strategy, view, seed, log-likelihood, converged,
        degenerate and why), ``degenerate_starts`` (their indices),
        ``best_degenerate_log_likelihood`` (or None), ``failed_starts`` (index: error),
        ``sklearn_model`` (the chosen scikit-learn model, fitted on the standardised data
        ``(X - center) / scale``) with ``center`` and ``scale`` (for "spherical" all entries
        of ``scale`` are equal).

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(200, 2, 2, random_state=0).X
    >>> est = fit_em(X, 2, n_init=3, random_state=0)
    >>> est.method, est.converged, est.means.shape
    ('em', True, (2, 2))
    >>> [s["strategy"] for s in est.info["starts"]]
    ['hierarchical', 'kmeans', 'k-means++']
    >>> bool(abs(est.to_sklearn().score(X) * 200 - est.log_likelihood) < 1e-8)
    True
    """
    k = check_n_components(n_components)
    X, names = check_data(X, n_components=k)
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    n_candidates = check_positive_int(n_candidates, "n_candidates")
    short_iter = check_positive_int(short_iter, "short_iter")
    reg_covar = _check_number(reg_covar, "reg_covar", minimum=0.0, strict=False)
    tol = _check_number(tol, "tol", minimum=0.0, strict=True)
    covariance_type = _check_covariance_type(covariance_type)
    rng = _rng(random_state)
    n, d = X.shape
    check_model_size(n, d, k, covariance_type)
    std = Standardizer.fit(X)
    views = _views(X, std.transform(X))  # the starting partitions use the usual views
    std = Standardizer.for_structure(X, covariance_type)
    Z = std.transform(X)
    subsample = n > _HIERARCHICAL_SUBSET
    schedule = _em_schedule(n_init, subsample)
    seeds = _seeds(rng, n_init)

    starts, models, failed = [], {}, {}
    with _one_thread():
        for i, ((strategy, view), seed) in enumerate(zip(schedule, seeds, strict=True)):
            record = {"strategy": strategy, "view": view, "seed": seed}
            try:
                gm, used_seed, n_iter = _run_start(
                    Z, views, k, strategy, view, seed, reg_covar=reg_covar, max_iter=max_iter,
                    tol=tol, n_candidates=n_candidates, short_iter=short_iter,
                    deterministic=strategy == "hierarchical" and not subsample,
                    covariance_type=covariance_type)
            except ValueError as exc:
                failed[i] = str(exc)
                record.update(log_likelihood=None, converged=False, degenerate=None)
                starts.append(record)
                continue
            degenerate, _, reason = _degeneracy(gm.weights_, gm.covariances_, n, reg_covar,
                                                covariance_type)
            loglik = float(gm.score(Z)) * n + n * std.log_jacobian
            record.update(candidate_seed=used_seed, log_likelihood=loglik,
                          converged=bool(gm.converged_), n_iter=int(n_iter),
                          degenerate=degenerate, degenerate_reason=reason or None)
            starts.append(record)
            models[i] = gm
    if not models:
        raise ValueError(
            f"All {n_init} EM starts failed ({next(iter(failed.values()))}). Increase "
            f"reg_covar (now {reg_covar}) or reduce n_components (now {k})."
        )

    def ll(i):
        return starts[i]["log_likelihood"]

    ok = [i for i in models if not starts[i]["degenerate"]]
    bad = [i for i in models if starts[i]["degenerate"]]
    best_bad = max(bad, key=ll) if bad else None
    best = max(ok, key=ll) if ok else best_bad
    if best_bad is not None and (not ok or ll(best_bad) > ll(best)):
        advice = ("The likelihood of a Gaussian mixture is unbounded (a component can collapse "
                  "onto a few points), so its largest values are singularities, not better "
                  "fits. Use the Bayesian fit (BayesianGMM), whose priors remove the "
                  "singularity, or fewer components.")
        advice = _constant_column_advice(X, names) or advice
        if ok:
            msg = (f"The highest EM log-likelihood ({ll(best_bad):.6g}, start {best_bad}) is a "
                   f"degenerate solution: {starts[best_bad]['degenerate_reason']}. The best "
                   f"non-degenerate start ({ll(best):.6g}, start {best}) was kept instead. "
                   + advice)
        else:
            msg = (f"All {len(models)} EM starts ended in degenerate solutions; the best "
                   f"({ll(best):.6g}) was kept: {starts[best]['degenerate_reason']}. " + advice)
        warnings.warn(msg, FitWarning, stacklevel=2)
    gm = models[best]
    if not gm.converged_:
        warnings.warn(
            f"EM did not converge within max_iter={max_iter} iterations (tol={tol}) from the "
            f"chosen start; increase max_iter or tol.", ConvergenceWarning, stacklevel=2)
    if covariance_type == "full":
        chols = std.chols_to_user(np.linalg.cholesky(gm.covariances_))
        covariances = chols @ np.swapaxes(chols, 1, 2)
    else:  # scaling the expanded matrices keeps zeros zero and shared matrices identical
        covariances = (_expand_covariances(gm.covariances_, covariance_type, k, d)
                       * np.outer(std.scale, std.scale))
    info = {
        "n_iter": starts[best]["n_iter"],
        "strategy": starts[best]["strategy"],
        "view": starts[best]["view"],
        "seed": starts[best]["seed"],
        "best_start": int(best),
        "starts": starts,
        "degenerate_starts": bad,
        "best_degenerate_log_likelihood": None if best_bad is None else ll(best_bad),
        "failed_starts": failed,
        "reg_covar": reg_covar,
        "sklearn_model": gm,
        "center": std.center,
        "scale": std.scale,
    }
    return PointEstimate.from_parameters(
        X, gm.weights_, std.means_to_user(gm.means_), covariances,
        converged=bool(gm.converged_), method="em", info=info, covariance_type=covariance_type)


# --------------------------------------------------------------------------------------------
# Direct maximum likelihood by L-BFGS
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _nll_and_grad(k: int, d: int, covariance_type: str = "full"):
    """Jitted JAX function: (theta, Z) -> (negative log-likelihood, its gradient).

    ``theta`` holds K - 1 logits (component 0's is fixed at 0), the K x D means, then the
    covariance parameters of ``covariance_type`` (see :func:`_pack`). One function is
    compiled and cached per (K, D, covariance_type); call it inside ``jax.enable_x64(True)``.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular
    from jax.scipy.special import logsumexp

    rows, cols = np.tril_indices(d)
    diag = rows == cols
    t = rows.size

    def nll(theta, Z):
        logits = jnp.concatenate([jnp.zeros(1, dtype=theta.dtype), theta[: k - 1]])
        logw = jax.nn.log_softmax(logits)
        means = theta[k - 1: k - 1 + k * d].reshape(k, d)
        cov = theta[k - 1 + k * d:]
        resid = jnp.swapaxes(Z[None, :, :] - means[:, None, :], 1, 2)  # (K, D, N)
        if covariance_type == "diag":  # (K, D) log standard deviations
            log_sd = cov.reshape(k, d)
            z = resid * jnp.exp(-log_sd)[:, :, None]
            logdet = jnp.sum(log_sd, axis=1)
        elif covariance_type == "spherical":  # (K,) log standard deviations
            z = resid * jnp.exp(-cov)[:, None, None]
            logdet = d * cov
        else:  # packed Cholesky factors: K of them ("full") or one shared ("tied")
            packed = cov.reshape(-1, t)
            chols = jnp.zeros((packed.shape[0], d, d), dtype=theta.dtype).at[:, rows, cols].set(
                jnp.where(diag, jnp.exp(packed), packed))
            z = solve_triangular(jnp.broadcast_to(chols, (k, d, d)), resid, lower=True)
            logdet = jnp.broadcast_to(jnp.sum(jnp.where(diag, packed, 0.0), axis=1), (k,))
        logp = (logw[:, None] - 0.5 * jnp.sum(z * z, axis=1) - logdet[:, None]
                - 0.5 * d * _LOG_2PI)
        return -jnp.sum(logsumexp(logp, axis=0))

    return jax.jit(jax.value_and_grad(nll))


def _negloglik(theta: np.ndarray, Z: np.ndarray, k: int,
               covariance_type: str = "full") -> tuple[float, np.ndarray]:
    """Negative log-likelihood of ``Z`` and its exact gradient (JAX, float64)."""
    import jax

    with jax.enable_x64(True):
        f, g = _nll_and_grad(k, Z.shape[1], covariance_type)(
            np.asarray(theta, dtype=np.float64), Z)
        return float(f), np.asarray(g, dtype=np.float64)


def _pack(weights, means, chols, covariance_type: str = "full") -> np.ndarray:
    """Unconstrained parameters: logits, means, then the covariance parameters.

    "full": each component's Cholesky factor, lower triangle row by row, log diagonal;
    "diag": the (K, D) log standard deviations (log diagonal of the factors); "spherical":
    the (K,) log standard deviations (log of the factors' first diagonal entry); "tied":
    component 0's factor packed as for "full". ``chols`` must have the structure.
    """
    d = means.shape[1]
    logw = np.log(weights)
    head = [(logw[1:] - logw[0]), means.ravel()]
    if covariance_type == "diag":
        return np.concatenate(head + [np.log(np.diagonal(chols, axis1=1, axis2=2)).ravel()])
    if covariance_type == "spherical":
        return np.concatenate(head + [np.log(chols[:, 0, 0])])
    rows, cols = np.tril_indices(d)
    if covariance_type == "tied":
        chols = chols[:1]
    packed = chols[:, rows, cols].copy()
    diag = rows == cols
    packed[:, diag] = np.log(packed[:, diag])
    return np.concatenate(head + [packed.ravel()])


def _unpack(theta: np.ndarray, k: int, d: int, covariance_type: str = "full"):
    """Weights, means and (K, D, D) Cholesky factors from :func:`_pack`'s parameters."""
    from scipy.special import softmax

    weights = softmax(np.concatenate([[0.0], theta[: k - 1]]))
    means = theta[k - 1: k - 1 + k * d].reshape(k, d).copy()
    cov = np.asarray(theta[k - 1 + k * d:], dtype=float)
    if covariance_type == "diag":
        return weights, means, np.exp(cov.reshape(k, d))[:, :, None] * np.eye(d)
    if covariance_type == "spherical":
        return weights, means, np.exp(cov.reshape(k))[:, None, None] * np.eye(d)
    rows, cols = np.tril_indices(d)
    diag = rows == cols
    packed = cov.reshape(-1, rows.size).copy()
    packed[:, diag] = np.exp(packed[:, diag])
    chols = np.zeros((packed.shape[0], d, d))
    chols[:, rows, cols] = packed
    if covariance_type == "tied":
        chols = np.broadcast_to(chols, (k, d, d)).copy()
    return weights, means, chols


def _min_scales(chols: np.ndarray) -> np.ndarray:
    """Smallest standard deviation of each component along any direction."""
    return np.linalg.svd(chols, compute_uv=False).min(axis=1)


def _to_structure(weights: np.ndarray, covs: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances reduced to ``covariance_type``, still as (K, D, D) matrices.

    "diag" keeps the variances, "spherical" their mean, "tied" the weighted mean of the
    covariances (the pooled within-group covariance).
    """
    k, d = covs.shape[0], covs.shape[-1]
    if covariance_type == "full":
        return covs
    if covariance_type == "tied":
        return _expand_covariances(np.einsum("k,kij->ij", weights, covs), "tied", k, d)
    variances = np.diagonal(covs, axis1=1, axis2=2)
    if covariance_type == "spherical":
        return _expand_covariances(variances.mean(axis=1), "spherical", k, d)
    return _expand_covariances(variances, "diag", k, d)


def _resolve_init(init, Z: np.ndarray, std: Standardizer, k: int, rng,
                  covariance_type: str = "full") -> tuple:
    """Starting weights, means and covariances of ``covariance_type``, standardised scale."""
    n, d = Z.shape
    if init is None:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

        with _one_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)  # fewer distinct points
            labels = KMeans(n_clusters=k, n_init=1, random_state=_seeds(rng, 1)[0]).fit(Z).labels_
        weights, means, covs = _params_from_labels(Z, labels, k, 1e-6)
        return weights, means, _to_structure(weights, covs, covariance_type)
    if isinstance(init, PointEstimate):
        weights, means, covs = init.weights, init.means, init.covariances
    elif isinstance(init, dict):
        missing = {"weights", "means", "covariances"} - set(init)
        if missing:
            raise ValueError(f"init is missing {sorted(missing)}; give a dict with 'weights' "
                             f"(K,), 'means' (K, D) and 'covariances' (K, D, D).")
        weights, means, covs = init["weights"], init["means"], init["covariances"]
    else:
        raise TypeError(f"init must be None, a PointEstimate or a dict with weights, means and "
                        f"covariances, got {type(init).__name__}.")
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covs = np.asarray(covs, dtype=float)
    for name, arr, shape in (("weights", weights, (k,)), ("means", means, (k, d)),
                             ("covariances", covs, (k, d, d))):
        if arr.shape != shape:
            raise ValueError(f"init {name} has shape {arr.shape}; for {k} component(s) and {d} "
                             f"feature(s) it must have shape {shape}.")
        if not np.isfinite(arr).all():
            raise ValueError(f"init {name} contains NaN or infinite values.")
    if (weights <= 0).any() or abs(weights.sum() - 1.0) > 1e-6:
        raise ValueError(f"init weights must be positive and sum to 1, got {weights}.")
    covs_z = std.covariances_to_model(0.5 * (covs + np.swapaxes(covs, 1, 2)))
    try:
        np.linalg.cholesky(covs_z)
    except np.linalg.LinAlgError:
        raise ValueError("init covariances must be symmetric positive definite; add a small "
                         "multiple of the identity to the singular ones.") from None
    weights = weights / weights.sum()
    return weights, std.means_to_model(means), _to_structure(weights, covs_z, covariance_type)


class _Diverged(Exception):
    """Raised inside the optimiser to stop it when the likelihood runs away."""

    def __init__(self, reason: str, theta: np.ndarray, loglik: float):
        super().__init__(reason)
        self.reason, self.theta, self.loglik = reason, np.array(theta, dtype=float), loglik


def fit_ml_gradient(X, n_components, *, init=None, random_state=None, max_iter: int = 5000,
                    min_scale: float = 1e-4, covariance_type: str = "full") -> PointEstimate:
    """Maximum likelihood by L-BFGS on unconstrained parameters, with exact gradients.

    The parameters are K - 1 softmax logits of the weights (component 0's is fixed at 0),
    the means, and the covariances of ``covariance_type`` (as :func:`fit_em`'s argument):
    "full", each component's Cholesky factor with its diagonal on the log scale; "diag", the
    (K, D) log standard deviations; "spherical", the (K,) log standard deviations; "tied",
    one Cholesky factor with log diagonal shared by all components. The negative
    log-likelihood and its gradient are computed by JAX in float64 (jitted once per K, D and
    ``covariance_type``) on the standardised data (for "spherical", as in :func:`fit_em`,
    centred and divided by one common scale, the root mean feature variance, so that spheres
    are spheres in the user's units); results are reported on the user's scale.

    The likelihood is unbounded: a component can collapse onto one point (or onto duplicated
    points; with "tied" covariances, shared by all components, only when the data are
    degenerate). After every iteration the smallest standard deviation of every component
    along any direction, in units of the features' standard deviations (of the common scale
    for "spherical"), is checked; if one falls under ``min_scale``, or the log-likelihood
    becomes non-finite or exceeds what any mixture with all scales above ``min_scale`` can
    reach, the optimiser stops. The estimate then
    has ``converged=False`` and ``info["diverged"] = True``, holds the last finite
    parameters, and a :class:`~bayesgmm.ConvergenceWarning` says which component collapsed.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
    init : None, PointEstimate or dict, optional
        Starting point. None: one k-means partition of the standardised data (seeded by
        ``random_state``), each group's weight, mean and covariance, as scikit-learn's
        ``init_params="kmeans"`` start; a :class:`PointEstimate` (for example from
        :func:`fit_em`); or a dict with ``weights`` (K,), ``means`` (K, D) and
        ``covariances`` (K, D, D) on the user's scale. The covariances of every start are
        reduced to ``covariance_type``: "diag" keeps their diagonals, "spherical" the mean
        of each diagonal, "tied" the weighted (by ``weights``) mean covariance; "full" uses
        them as given.
    random_state : int, numpy.random.Generator or None
        Seeds the k-means start.
    max_iter : int, default 5000
        L-BFGS iterations.
    min_scale : float, default 1e-4
        A component whose smallest standard deviation falls under this many feature standard
        deviations is collapsing.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Structure of the covariances (see :data:`COVARIANCE_TYPES`).

    Returns
    -------
    PointEstimate
        ``method="ml_gradient"``, with ``covariance_type`` set (it sets the parameter count
        of the BIC and AIC) and ``covariances`` always the (K, D, D) full matrices. ``info``
        holds ``diverged``, ``n_iter``, ``n_fev``, ``message``, ``log_likelihood_path``
        (after each iteration, user's scale), ``init`` (the starting weights, means and
        covariances, reduced to the structure, on the user's scale), and when diverged
        ``component``, ``min_scale`` (that component's smallest scale) and ``points`` (the
        rows it collapses onto).

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(200, 2, 2, random_state=0).X
    >>> est = fit_ml_gradient(X, 2, random_state=0)
    >>> est.method, est.converged, est.info["diverged"]
    ('ml_gradient', True, False)
    >>> bool(abs(est.log_likelihood - fit_em(X, 2, n_init=2, random_state=0).log_likelihood)
    ...      < 1e-4)
    True
    >>> diag = fit_ml_gradient(X, 2, random_state=0, covariance_type="diag")
    >>> diag.covariance_type, diag.converged, bool(diag.covariances[0, 0, 1] == 0.0)
    ('diag', True, True)
    """
    from scipy.optimize import minimize

    k = check_n_components(n_components)
    X, names = check_data(X, n_components=k)
    max_iter = check_positive_int(max_iter, "max_iter")
    min_scale = _check_number(min_scale, "min_scale", minimum=0.0, strict=True)
    covariance_type = _check_covariance_type(covariance_type)
    rng = _rng(random_state)
    n, d = X.shape
    std = Standardizer.for_structure(X, covariance_type)
    Z = std.transform(X)
    offset = n * std.log_jacobian  # log-likelihood on the user's scale = on Z + offset
    w0, m0, c0 = _resolve_init(init, Z, std, k, rng, covariance_type)
    chols0 = np.linalg.cholesky(c0)
    theta0 = _pack(w0, m0, chols0, covariance_type)
    init_info = {"weights": w0, "means": std.means_to_user(m0),
                 "covariances": c0 * np.outer(std.scale, std.scale)}
    # No mixture whose components all have scales >= min_scale exceeds this (on Z).
    bound = n * (-0.5 * d * _LOG_2PI - d * math.log(min_scale))
    path: list[float] = []
    last = {"theta": theta0, "loglik": -np.inf}

    def fun(theta):
        f, g = _negloglik(theta, Z, k, covariance_type)
        if not (math.isfinite(f) and np.isfinite(g).all()):
            raise _Diverged("non-finite", theta, -f)
        if -f > bound:
            raise _Diverged("bound", theta, -f)
        return f / n, g / n

    def callback(intermediate_result):
        theta, loglik = intermediate_result.x, -intermediate_result.fun * n
        path.append(loglik + offset)
        last.update(theta=np.array(theta), loglik=loglik)
        if _min_scales(_unpack(theta, k, d, covariance_type)[2]).min() < min_scale:
            raise _Diverged("scale", theta, loglik)

    diverged = None
    try:
        f0 = fun(theta0)[0] * n
        path.append(-f0 + offset)
        last["loglik"] = -f0
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                       options={"maxiter": max_iter, "maxfun": 10 * max_iter, "ftol": 1e-14,
                                "gtol": 1e-9})
    except _Diverged as exc:
        diverged, res = exc, None

    info = {"init": init_info, "log_likelihood_path": path}
    if diverged is None:
        weights, means, chols = _unpack(res.x, k, d, covariance_type)
        converged = bool(res.success)
        info.update(diverged=False, n_iter=int(res.nit), n_fev=int(res.nfev),
                    message=str(res.message))
        if not converged:
            warnings.warn(
                f"L-BFGS stopped before converging ({res.message}) after {res.nit} "
                f"iterations; increase max_iter or start from fit_em's solution.",
                ConvergenceWarning, stacklevel=2)
    else:
        theta = diverged.theta
        usable = math.isfinite(diverged.loglik) and np.isfinite(theta).all()
        if usable:
            scales = _min_scales(_unpack(theta, k, d, covariance_type)[2])
            usable = scales.min() > 1e-12
        if not usable:  # a wild line-search trial: fall back to the last accepted iterate
            theta = last["theta"]
        weights, means, chols = _unpack(theta, k, d, covariance_type)
        scales = _min_scales(chols)
        j = int(scales.argmin())
        resp = _math.responsibilities(Z, weights[None], means[None], chols[None])[0]
        points = np.flatnonzero(resp[:, j] > 0.5)
        shown = ", ".join(str(p) for p in points[:5]) + (" ..." if points.size > 5 else "")
        advice = _constant_column_advice(X, names) or (
            "Maximum likelihood has no answer here: use the Bayesian fit (BayesianGMM), whose "
            "priors keep components from collapsing, or fewer components.")
        message = (
            f"The likelihood is unbounded: component {j} is collapsing onto data point(s) "
            f"{shown or 'none'} (its smallest standard deviation fell to {scales[j]:.3g} "
            f"feature standard deviations; min_scale={min_scale:g}), and the log-likelihood "
            f"grows without limit as it shrinks. " + advice)
        info.update(diverged=True, reason=diverged.reason, component=j,
                    min_scale=float(scales[j]), points=points.tolist(), n_iter=len(path) - 1,
                    message=message)
        converged = False
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    chols_user = std.chols_to_user(chols)
    return PointEstimate.from_parameters(
        X, weights, std.means_to_user(means), chols_user @ np.swapaxes(chols_user, 1, 2),
        converged=converged, method="ml_gradient", info=info, covariance_type=covariance_type)


# --------------------------------------------------------------------------------------------
# The singularity, step by step
# --------------------------------------------------------------------------------------------


def singularity_path(X, n_components, point_index, scales=None, *, priors=None,
                     random_state=None):
    """Log-likelihood and log posterior as one component collapses onto one data point.

    An EM solution with K - 1 components (:func:`bayesgmm.inference.em_start`, on the
    standardised data) explains the data; the K-th component, with weight 1 / N (the others
    scaled by (N - 1) / N), sits on row ``point_index`` (mean = that row) with covariance
    ``scale**2 * I`` on the standardised scale, ``scale`` in feature standard deviations. As
    ``scale`` shrinks, the log-likelihood rises without bound (by D per unit of
    ``-log(scale)``, more for a duplicated row), while the log posterior of the Bayesian model
    falls to minus infinity: the inverse-gamma prior on the component scales vanishes faster
    than any power of the scale.

    (Moving instead the component most responsible for the row would also strip the points it
    explained of their component; the log-likelihood then falls by far more, over the scales
    one can compute, than the collapse gains.)

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
        K >= 2: a single Gaussian has a bounded likelihood.
    point_index : int
        The row of ``X`` the K-th component collapses onto.
    scales : array-like of float, optional
        Component scales to visit, in feature standard deviations. Default
        ``np.geomspace(1, 1e-4, 30)``.
    priors : Priors, optional
        Priors of the Bayesian model (default :class:`~bayesgmm.Priors`).
    random_state : int, numpy.random.Generator or None
        Seeds the EM start.

    Returns
    -------
    pandas.DataFrame
        Columns ``scale``, ``log_likelihood`` (total, on the user's scale: what maximum
        likelihood maximises) and ``log_posterior`` (unnormalised). The Bayesian model lives
        on the standardised data; its log posterior is shifted by the same constant,
        ``offset = N * log|dz/dx| = -N * sum(log sd)``, as the log-likelihood, so that
        ``log_posterior - log_likelihood`` is exactly the log prior. ``attrs`` holds
        ``component`` (K - 1), ``point_index`` and ``offset``.

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(100, 2, 2, random_state=0).X
    >>> table = singularity_path(X, 3, 0, scales=[1.0, 1e-2, 1e-4], random_state=0)
    >>> list(table.columns)
    ['scale', 'log_likelihood', 'log_posterior']
    >>> bool(table.log_likelihood.is_monotonic_increasing)
    True
    >>> bool(table.log_posterior.is_monotonic_decreasing)
    True
    """
    import pandas as pd

    k = check_n_components(n_components)
    if k < 2:
        raise ValueError("singularity_path needs n_components >= 2: the likelihood of a single "
                         "Gaussian is bounded (it falls when the Gaussian collapses).")
    X, names = check_data(X, n_components=k)
    n, d = X.shape
    if isinstance(point_index, bool) or not isinstance(point_index, (int, np.integer)):
        raise TypeError(f"point_index must be an integer row index, got "
                        f"{type(point_index).__name__} {point_index!r}.")
    if not 0 <= point_index < n:
        raise ValueError(f"point_index must be a row of X, in [0, {n}), got {point_index}.")
    i = int(point_index)
    if scales is None:
        scales = np.geomspace(1.0, 1e-4, 30)
    scales = np.asarray(scales, dtype=float).ravel()
    if scales.size == 0 or not np.isfinite(scales).all() or (scales <= 0).any():
        raise ValueError("scales must be a non-empty sequence of finite positive numbers (in "
                         "feature standard deviations), for example np.geomspace(1, 1e-4, 30).")
    rng = _rng(random_state)
    std = Standardizer.fit(X)
    Z = std.transform(X)
    with _one_thread():
        start = em_start(Z, k - 1, random_state=_seeds(rng, 1)[0])
    weights = np.append(start.weights * (n - 1) / n, 1.0 / n)
    means = np.concatenate([start.means, Z[i:i + 1]])
    chols = np.concatenate([start.chols, np.eye(d)[None]])
    logpost = log_posterior(build_model(Z, k, priors, feature_names=names))
    offset = n * std.log_jacobian
    loglik, logp = [], []
    for s in scales:
        chols[k - 1] = s * np.eye(d)
        loglik.append(float(_math.pointwise_loglik(Z, weights[None], means[None],
                                                   chols[None]).sum()) + offset)
        logp.append(float(logpost(point_from_params(weights, means, chols))) + offset)
    table = pd.DataFrame({"scale": scales, "log_likelihood": loglik, "log_posterior": logp})
    table.attrs.update(component=k - 1, point_index=i, offset=offset)
    return table
