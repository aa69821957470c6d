"""Direct maximum likelihood by gradient ascent: the "network of Gaussian units" view.

:func:`fit_ml_gradient` maximises the same log-likelihood as EM with L-BFGS on unconstrained
parameters (softmax weights, Cholesky factors with log-diagonal). From the same start it
reaches the same optima as EM; started on a data point, it shows the collapse.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from ..covariance import (
    check_covariance_type,
    project_covariances,
    structure,
)
from ..exceptions import ConvergenceWarning
from ..likelihood import reference
from ..likelihood.kernels import LOG_2PI
from ..seeds import check_random_state, draw_seeds
from ..standardize import Standardizer
from ..validation import check_data, check_n_components, check_positive_int
from .em import params_from_labels
from .point_estimate import PointEstimate, check_number, constant_column_advice, one_thread

__all__ = ["fit_ml_gradient"]


@functools.lru_cache(maxsize=32)
def _nll_and_grad(k: int, d: int, covariance_type: str = "full"):
    """Jitted JAX function: (theta, Z) -> (negative log-likelihood, its gradient).

    ``theta`` holds K - 1 logits (component 0's is fixed at 0), the K x D means, then the
    covariance parameters of ``covariance_type`` (see :func:`_pack_theta`). One function is
    compiled and cached per (K, D, covariance_type); call it inside ``jax.enable_x64(True)``.
    """
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    covariances = structure(covariance_type)

    def nll(theta, Z):
        logits = jnp.concatenate([jnp.zeros(1, dtype=theta.dtype), theta[: k - 1]])
        logw = jax.nn.log_softmax(logits)
        means = theta[k - 1: k - 1 + k * d].reshape(k, d)
        cov = theta[k - 1 + k * d:]
        resid = jnp.swapaxes(Z[None, :, :] - means[:, None, :], 1, 2)  # (K, D, N)
        z, logdet = covariances.whiten(cov, resid, k, d)
        logp = (logw[:, None] - 0.5 * jnp.sum(z * z, axis=1) - logdet[:, None]
                - 0.5 * d * LOG_2PI)
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


def _pack_theta(weights, means, chols, covariance_type: str = "full") -> np.ndarray:
    """Unconstrained parameters: logits, means, then the covariance parameters.

    "full": each component's Cholesky factor, lower triangle row by row, log diagonal;
    "diag": the (K, D) log standard deviations (log diagonal of the factors); "spherical":
    the (K,) log standard deviations (log of the factors' first diagonal entry); "tied":
    component 0's factor packed as for "full" (see the structures'
    :meth:`~bayesgmm.covariance.CovarianceStructure.pack_unconstrained`). ``chols`` must
    have the structure.
    """
    logw = np.log(weights)
    head = [(logw[1:] - logw[0]), means.ravel()]
    return np.concatenate(head + [structure(covariance_type).pack_unconstrained(chols)])


def _unpack_theta(theta: np.ndarray, k: int, d: int, covariance_type: str = "full"):
    """Weights, means and (K, D, D) Cholesky factors from :func:`_pack_theta`'s parameters."""
    from scipy.special import softmax

    weights = softmax(np.concatenate([[0.0], theta[: k - 1]]))
    means = theta[k - 1: k - 1 + k * d].reshape(k, d).copy()
    cov = np.asarray(theta[k - 1 + k * d:], dtype=float)
    return weights, means, structure(covariance_type).unpack_unconstrained(cov, k, d)


def _min_scales(chols: np.ndarray) -> np.ndarray:
    """Smallest standard deviation of each component along any direction."""
    return np.linalg.svd(chols, compute_uv=False).min(axis=1)


def _resolve_init(init, Z: np.ndarray, std: Standardizer, k: int, rng,
                  covariance_type: str = "full") -> tuple:
    """Starting weights, means and covariances of ``covariance_type``, standardised scale."""
    n, d = Z.shape
    if init is None:
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

        with one_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)  # fewer distinct points
            kmeans = KMeans(n_clusters=k, n_init=1, random_state=draw_seeds(rng, 1)[0])
            labels = kmeans.fit(Z).labels_
        weights, means, covs = params_from_labels(Z, labels, k, 1e-6)
        return weights, means, project_covariances(weights, covs, covariance_type)
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
    return weights, std.means_to_model(means), project_covariances(weights, covs_z, covariance_type)


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
    >>> from bayesgmm.ml import fit_em
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
    min_scale = check_number(min_scale, "min_scale", minimum=0.0, strict=True)
    covariance_type = check_covariance_type(covariance_type)
    rng = check_random_state(random_state)
    n, d = X.shape
    std = Standardizer.for_structure(X, covariance_type)
    Z = std.transform(X)
    offset = n * std.log_jacobian  # log-likelihood on the user's scale = on Z + offset
    w0, m0, c0 = _resolve_init(init, Z, std, k, rng, covariance_type)
    chols0 = np.linalg.cholesky(c0)
    theta0 = _pack_theta(w0, m0, chols0, covariance_type)
    init_info = {"weights": w0, "means": std.means_to_user(m0),
                 "covariances": c0 * np.outer(std.scale, std.scale)}
    # No mixture whose components all have scales >= min_scale exceeds this (on Z).
    bound = n * (-0.5 * d * LOG_2PI - d * math.log(min_scale))
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
        if _min_scales(_unpack_theta(theta, k, d, covariance_type)[2]).min() < min_scale:
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
        weights, means, chols = _unpack_theta(res.x, k, d, covariance_type)
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
            scales = _min_scales(_unpack_theta(theta, k, d, covariance_type)[2])
            usable = scales.min() > 1e-12
        if not usable:  # a wild line-search trial: fall back to the last accepted iterate
            theta = last["theta"]
        weights, means, chols = _unpack_theta(theta, k, d, covariance_type)
        scales = _min_scales(chols)
        j = int(scales.argmin())
        resp = reference.responsibilities(Z, weights[None], means[None], chols[None])[0]
        points = np.flatnonzero(resp[:, j] > 0.5)
        shown = ", ".join(str(p) for p in points[:5]) + (" ..." if points.size > 5 else "")
        advice = constant_column_advice(X, names) or (
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
