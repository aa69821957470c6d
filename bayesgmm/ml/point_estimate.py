"""The point estimate every maximum-likelihood fit returns, and helpers the fits share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..covariance import n_parameters, structure
from ..likelihood import pointwise_log_likelihood, reference
from ..likelihood.noise import NoiseRegion, NoiseTerm
from ..validation import check_data

__all__ = ["PointEstimate", "one_thread", "check_number", "constant_column_advice"]


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
    noise_weight : float or None
        The weight of a uniform noise component (``fit_em(..., noise=True)``); ``weights``
        then sum to 1 minus it, ``responsibilities`` and :meth:`predict_proba` have a last
        column for it, :meth:`predict` returns -1 for the rows it takes, and it counts as
        one more free parameter. None without one.
    noise_region : NoiseRegion or None
        Its region (:mod:`bayesgmm.likelihood.noise`).
    classification_entropy : float
        ``-sum_n log max_k r_nk`` on the data it was fitted to (weighted by the sample
        weights, if any): the hard-classification entropy that :meth:`icl` adds to the BIC.

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
    noise_weight: float | None = None
    noise_region: NoiseRegion | None = None
    classification_entropy: float = float("nan")

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
        return n_parameters(*self.means.shape, self.covariance_type) + (
            self.noise_weight is not None)

    def _chols(self) -> np.ndarray:
        return np.linalg.cholesky(self.covariances)

    def _check_X(self, X) -> np.ndarray:
        """``X`` as a float64 array with as many columns as the means (see check_data).

        NaN entries are missing: they are marginalised out.
        """
        return check_data(X, n_features=self.means.shape[1], missing="marginalize",
                          owner=type(self).__name__)[0]

    def _noise(self) -> NoiseTerm | None:
        if self.noise_weight is None:
            return None
        return NoiseTerm(np.array([self.noise_weight]), self.noise_region)

    def predict_proba(self, X) -> np.ndarray:
        """P(z = k | x) for each row of ``X`` (Bayes' rule with the point estimate).

        With a noise component, a last column: P(noise | x).
        """
        X = self._check_X(X)
        return reference.responsibilities(X, self.weights[None], self.means[None],
                                          self._chols()[None], None, self._noise())[0]

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row (-1: a noise component)."""
        label = self.predict_proba(X).argmax(axis=1)
        label[label == self.n_components] = -1
        return label

    def icl(self, X=None) -> float:
        """The integrated completed likelihood criterion (mclust's ICL; lower is better).

        ICL = BIC + 2 sum_n (-log max_k r_nk), the BIC (this class's sign: lower is better)
        plus twice the entropy of the hard classification (Biernacki, Celeux and Govaert
        2000; mclust's ``icl``, whose sign is the opposite). It penalises components that
        overlap, so it tends to pick fewer, better separated clusters than the BIC.

        Parameters
        ----------
        X : array-like of shape (N, D), optional
            Default: the data the estimate was fitted to (with its sample weights, if any).

        Returns
        -------
        float

        Examples
        --------
        >>> import numpy as np
        >>> X = np.array([[0.0], [0.1], [5.0]])
        >>> est = PointEstimate.from_parameters(
        ...     X, np.array([0.5, 0.5]), np.array([[0.0], [5.0]]), np.array([[[1.0]], [[1.0]]]))
        >>> bool(est.icl() >= est.bic), bool(np.isclose(est.icl(X), est.icl()))
        (True, True)
        """
        if X is None:
            entropy = self.classification_entropy
            if not np.isfinite(entropy):
                entropy = _hard_entropy(self.responsibilities)
            return float(self.bic + 2.0 * entropy)
        X = self._check_X(X)
        n = X.shape[0]
        bic = -2.0 * float(self.score_samples(X).sum()) + self.n_parameters * math.log(n)
        return float(bic + 2.0 * _hard_entropy(self.predict_proba(X)))

    def score_samples(self, X) -> np.ndarray:
        """Log density log p(x) of each row under the point estimate."""
        X = self._check_X(X)
        return pointwise_log_likelihood(X, self.weights[None], self.means[None],
                                        self._chols()[None], None, self._noise())[0]

    @classmethod
    def from_parameters(cls, X, weights, means, covariances, *, converged: bool = True,
                        method: str = "em", info: dict | None = None,
                        covariance_type: str = "full",
                        sample_weight: np.ndarray | None = None,
                        noise_weight: float | None = None,
                        noise_region: NoiseRegion | None = None) -> PointEstimate:
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
        sample_weight : ndarray of shape (N,), optional
            Frequency weights of the rows: the log-likelihood is their weighted sum, and the
            BIC's N their total.
        noise_weight : float, optional
            A uniform noise component's weight (``weights`` summing to 1 minus it).
        noise_region : NoiseRegion, optional
            Its region (required with ``noise_weight``).

        Returns
        -------
        PointEstimate
        """
        X = np.asarray(X, dtype=float)
        weights = np.asarray(weights, dtype=float)
        means = np.asarray(means, dtype=float)
        covariances = np.asarray(covariances, dtype=float)
        covariance = structure(covariance_type)
        covariance.check(covariances)  # any covariances are "full" ones
        chols = np.linalg.cholesky(covariances)
        noise = None
        if noise_weight is not None:
            noise_weight = float(noise_weight)
            noise = NoiseTerm(np.array([noise_weight]), noise_region)
        pointwise = pointwise_log_likelihood(X, weights[None], means[None], chols[None],
                                             None, noise)[0]
        if sample_weight is None:
            loglik, n = float(pointwise.sum()), X.shape[0]
        else:
            loglik, n = float(pointwise @ sample_weight), float(np.sum(sample_weight))
        resp = reference.responsibilities(X, weights[None], means[None], chols[None], None,
                                          noise)[0]
        p = n_parameters(*means.shape, covariance.name) + (noise is not None)
        entropy = _hard_entropy(resp, sample_weight)
        return cls(weights=weights, means=means, covariances=covariances, log_likelihood=loglik,
                   responsibilities=resp, bic=-2.0 * loglik + p * math.log(n),
                   aic=-2.0 * loglik + 2.0 * p, converged=bool(converged), method=method,
                   info=dict(info or {}), covariance_type=covariance.name,
                   noise_weight=noise_weight, noise_region=noise_region,
                   classification_entropy=entropy)

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
        from sklearn.mixture import GaussianMixture

        if self.noise_weight is not None:
            raise ValueError("scikit-learn's GaussianMixture has no noise component: this "
                             "estimate (fitted with noise) has no GaussianMixture "
                             "equivalent; fit_em(X, k) without noise has one.")
        k, d = self.means.shape
        covariance = structure(self.covariance_type)
        gm = GaussianMixture(n_components=k, covariance_type=covariance.name)
        gm.weights_ = self.weights.copy()
        gm.means_ = self.means.copy()
        gm.covariances_ = covariance.reduce(self.covariances)
        prec_chol, precisions = covariance.sklearn_precisions(gm.covariances_)
        gm.precisions_cholesky_ = prec_chol
        gm.precisions_ = precisions
        gm.converged_ = self.converged
        gm.n_iter_ = int(self.info.get("n_iter", 0))
        gm.lower_bound_ = self.log_likelihood / max(self.responsibilities.shape[0], 1)
        gm.n_features_in_ = d
        return gm


def _hard_entropy(resp: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """-sum_n w_n log max_k r_nk: the entropy of the hard (MAP) classification."""
    with np.errstate(divide="ignore"):
        terms = -np.log(np.max(resp, axis=1))
    return float(terms.sum() if sample_weight is None else terms @ sample_weight)


def one_thread():
    """Run BLAS and OpenMP on one thread while fitting.

    EM on small data makes many D x D solves, for which a second BLAS thread fighting a busy
    core costs hundreds of times the solve itself (docs/fitting.md, "Why these defaults").
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def check_number(value, name: str, *, minimum: float, strict: bool) -> float:
    """``value`` as a float if it is a finite number above ``minimum`` (or at it), else raise.

    ``strict``: the value must exceed ``minimum``.
    """
    ok = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    if not ok:
        rel = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {rel} {minimum}, got {value!r}.")
    return float(value)


def constant_column_advice(X: np.ndarray, names: list[str]) -> str:
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
