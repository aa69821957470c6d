"""The PyMC model of the Bayesian Gaussian mixture, with the assignments summed out.

The model is built on standardised data (see :class:`Standardizer`); results are mapped back to
the user's scale by :mod:`bayesgmm.inference`.

The likelihood ``log p(x_n | theta) = logsumexp_k(log w_k + log N(x_n | mu_k, L_k L_k^T))`` is
one fused Op (:mod:`bayesgmm._fused`) with numba and JAX implementations: each small
Cholesky factor is inverted once in the graph, and the Op does the per-point work. At D=5,
N=1e4, K=3 the whole model's log-density+gradient costs about 45 ns per point in numba
(nutpie's backend for large data) and 110-130 ns in JAX, against about 120 and 180 ns for the
same likelihood written as a PyTensor graph (:func:`mixture_logp_reference`, kept as the test
oracle) and 2-2.4x that for the textbook ``pm.Mixture`` model (see ``benchmarks/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from ._fused import mixture_loglik
from ._validation import default_feature_names
from .priors import Priors

__all__ = ["Standardizer", "build_model", "mixture_logp", "mixture_logp_reference",
           "packed_cholesky", "log_posterior",
           "COVARIANCE_TYPES", "covariance_names"]

COMPONENT, FEATURE, OBS = "component", "feature", "obs"

#: Covariance structures (scikit-learn's names; mclust's VVV, VVI, VII, EEE): a full
#: covariance per component, a diagonal one per component, one variance per component,
#: one full covariance shared by all components.
COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")


def check_covariance_type(covariance_type) -> str:
    """Return ``covariance_type`` if it is one of :data:`COVARIANCE_TYPES`, else raise."""
    if not isinstance(covariance_type, str) or covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))}"
                         f", got {covariance_type!r}.")
    return covariance_type


def covariance_names(covariance_type: str, n_components: int) -> list[str]:
    """Names of the model's free covariance variables for a structure.

    "full": one packed Cholesky factor ``chol_cov_<k>`` per component; "tied": one
    ``chol_cov``; "diag": ``sigma`` (component, feature); "spherical": ``sigma`` (component).
    """
    if covariance_type == "full":
        return [f"chol_cov_{j}" for j in range(n_components)]
    return ["chol_cov"] if covariance_type == "tied" else ["sigma"]


_LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Standardizer:
    """Column-wise affine map between the user's scale and the model's standardised scale.

    ``z = (x - center) / scale``. A constant column gets ``scale = 1`` so it stays finite.

    Examples
    --------
    >>> import numpy as np
    >>> s = Standardizer.fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
    >>> s.center, s.scale
    (array([1., 5.]), array([1., 1.]))
    >>> s.transform(np.array([[2.0, 5.0]]))
    array([[1., 0.]])
    """

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, *, common_scale: bool = False) -> Standardizer:
        """Centre on the column means and scale by the column standard deviations.

        ``common_scale=True`` divides every column by one scale instead, the root mean
        column variance (for spherical components, which are spherical in the user's
        units only if all features are scaled alike).
        """
        center = X.mean(axis=0)
        scale = X.std(axis=0)
        # A column constant up to rounding: keep it finite and let the scale prior handle it.
        tiny = scale <= 1e-12 * np.maximum(np.abs(center), 1.0)
        if common_scale:
            common = float(np.sqrt(np.mean(scale**2)))
            scale = np.full_like(scale, common if common > 0 and not tiny.all() else 1.0)
        else:
            scale = np.where(tiny, 1.0, scale)
        return cls(center=center, scale=scale)

    @classmethod
    def for_structure(cls, X: np.ndarray, covariance_type: str) -> Standardizer:
        """The standardisation a covariance structure is fitted on.

        Spherical components are spheres in the user's units only if every feature is
        scaled alike: "spherical" uses one common scale, the other structures (invariant to
        per-feature scaling) each column's standard deviation.
        """
        return cls.fit(X, common_scale=covariance_type == "spherical")

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map data to the standardised scale."""
        return (X - self.center) / self.scale

    def means_to_user(self, means: np.ndarray) -> np.ndarray:
        """Map component means (..., D) back to the user's scale."""
        return means * self.scale + self.center

    def chols_to_user(self, chols: np.ndarray) -> np.ndarray:
        """Map Cholesky factors (..., D, D) back to the user's scale."""
        return chols * self.scale[:, None]

    def means_to_model(self, means: np.ndarray) -> np.ndarray:
        """Map component means (..., D) to the standardised scale."""
        return (means - self.center) / self.scale

    def covariances_to_model(self, covariances: np.ndarray) -> np.ndarray:
        """Map covariances (..., D, D) to the standardised scale."""
        return covariances / np.outer(self.scale, self.scale)

    @property
    def log_jacobian(self) -> float:
        """Log |dz/dx| for one observation: add it to a standardised log density."""
        return float(-np.log(self.scale).sum())


def _core_parameters(weights, means, chols, n_components: int | None = None):
    """The likelihood's parameters without batch dimensions, and K.

    CustomDist hands them over with broadcast batch dimensions of length 1. K comes from
    ``n_components``, else from the static shape of ``means``.
    """
    while weights.ndim > 1:
        weights = weights[0]
    while means.ndim > 2:
        means = means[0]
    while chols.ndim > 3:
        chols = chols[0]
    k = n_components if n_components is not None else means.type.shape[0]
    if k is None:
        raise ValueError("the mixture likelihood needs n_components when the means have no "
                         "static shape")
    return weights, means, chols, k


def mixture_logp(value, weights, means, chols, n_components: int | None = None,
                 n_features: int | None = None):
    """Per-observation log-likelihood of the mixture, assignments summed out.

    Computed by one fused Op (:class:`bayesgmm._fused.MixtureLogLik`) from the inverses of
    the Cholesky factors; its gradient comes from the responsibilities and the weighted
    sufficient statistics of the residuals in one more pass over the data.

    Parameters
    ----------
    value : TensorVariable of shape (N, D)
    weights : TensorVariable of shape (K,)
    means : TensorVariable of shape (K, D)
    chols : TensorVariable of shape (K, D, D), lower Cholesky factors of the covariances
    n_components : int, optional
        K, when the static shape of ``means`` does not tell it.
    n_features : int, optional
        D, when the static shape of ``means`` does not tell it.

    Returns
    -------
    TensorVariable of shape (N,)
    """
    weights, means, chols, k = _core_parameters(weights, means, chols, n_components)
    d = n_features if n_features is not None else means.type.shape[1]
    if d is None:
        raise ValueError("mixture_logp needs n_features when the means have no static shape")
    eye = pt.eye(int(d))
    prec = pt.stack([solve_triangular(chols[j], eye, lower=True) for j in range(k)])
    return mixture_loglik(value, pt.log(weights), means, prec)


def mixture_logp_reference(value, weights, means, chols, n_components: int | None = None,
                           n_features: int | None = None):
    """:func:`mixture_logp` written as a PyTensor graph: the test oracle for the fused Op.

    A loop over components: each small Cholesky factor is inverted once, then the residuals
    are multiplied by it. Parameters and result as for :func:`mixture_logp`; a known
    ``n_features`` also makes the diagonals of the factors read at constant indices.
    """
    weights, means, chols, k = _core_parameters(weights, means, chols, n_components)
    d = means.shape[-1] if n_features is None else int(n_features)
    eye = pt.eye(d)
    comps = []
    for j in range(k):
        linv = solve_triangular(chols[j], eye, lower=True)
        z = pt.dot(value - means[j], linv.T)
        if n_features is None:
            diagonal = pt.diagonal(chols[j])
        else:
            # Constant indices: for diagonal factors (covariance_type "diag"/"spherical")
            # PyTensor rewrites pt.diagonal into an arange of a symbolic length, which its
            # JAX backend cannot compile.
            idx = np.arange(d)
            diagonal = chols[j][idx, idx]
        comps.append(-0.5 * pt.sum(z**2, axis=1) - pt.sum(pt.log(diagonal)))
    logp = pt.stack(comps, axis=1) + pt.log(weights) - 0.5 * pt.cast(d, "float64") * _LOG_2PI
    return pt.logsumexp(logp, axis=1, keepdims=False)


def packed_cholesky(chols: np.ndarray) -> np.ndarray:
    """Pack lower-triangular factors (..., D, D) the way ``pm.LKJCholeskyCov`` stores them."""
    d = chols.shape[-1]
    rows, cols = np.tril_indices(d)
    return chols[..., rows, cols]


def _unpack(packed, d: int):
    rows, cols = np.tril_indices(d)
    return pt.zeros((len(packed), d, d))[:, rows, cols].set(pt.stack(packed))


def build_model(
    Z: np.ndarray,
    n_components: int,
    priors: Priors | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    batch_size: int | None = None,
    order_by: int | None = None,
    covariance_type: str = "full",
    shared_data: bool = False,
) -> pm.Model:
    """Build the PyMC model on standardised data ``Z``.

    Free variables: ``weights`` (component), ``mu`` (component, feature) and the
    covariances (see :func:`covariance_names`): with ``covariance_type="full"`` one packed
    Cholesky factor ``chol_cov_<k>`` per component (``pm.LKJCholeskyCov``, its standard
    deviations under an inverse-gamma prior); "tied" one such factor ``chol_cov`` shared by
    all components; "diag" standard deviations ``sigma`` (component, feature) and
    "spherical" one ``sigma`` per component, each under the same inverse-gamma prior, whose
    density vanishes at zero in every structure. The observed variable ``x`` has dims
    (obs, feature).

    With ``order_by=j`` the means' feature ``j`` is constrained to increase with the
    component index: the free variables are then ``mu_order`` (component; ordered
    transform) and ``mu_rest`` (component, the other features), and ``mu`` is a
    deterministic. The prior is the same Normal, restricted to the ordered region.

    Parameters
    ----------
    Z : ndarray of shape (N, D)
        Standardised data.
    n_components : int
    priors : Priors, optional
    feature_names : sequence of str, optional
    batch_size : int, optional
        Use a random minibatch of this many rows per evaluation (minibatch ADVI); the
        log-likelihood is scaled by ``N / batch_size``.
    order_by : int, optional
        Feature along which the component means are ordered (identifiability constraint).
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
    shared_data : bool, default False
        Hold the data in a ``pm.Data`` container (a shared variable, ``x_data``) instead of
        a constant of the graph. Compiled functions then depend on neither the data's values
        nor its number of rows, so numba's on-disk cache serves every data set fitted with
        the same model structure. Ignored with ``batch_size``.

    Returns
    -------
    pymc.Model

    Examples
    --------
    >>> import numpy as np
    >>> model = build_model(np.random.default_rng(0).normal(size=(20, 2)), 3)
    >>> sorted(v.name for v in model.free_RVs)
    ['chol_cov_0', 'chol_cov_1', 'chol_cov_2', 'mu', 'weights']
    """
    priors = Priors() if priors is None else priors
    covariance_type = check_covariance_type(covariance_type)
    n, d = Z.shape
    k = int(n_components)
    names = list(feature_names) if feature_names is not None else default_feature_names(d)
    coords = {COMPONENT: np.arange(k), FEATURE: names}
    with pm.Model(coords=coords) as model:
        weights = pm.Dirichlet(
            "weights", a=np.full(k, priors.weight_concentration), dims=COMPONENT
        )
        if order_by is None:
            mu = pm.Normal("mu", 0.0, priors.mean_scale, dims=(COMPONENT, FEATURE))
        else:
            if not 0 <= int(order_by) < d:
                raise ValueError(f"order_by must be a feature index in [0, {d}), got {order_by}.")
            if k < 2:
                raise ValueError("order_by needs at least 2 components.")
            mu_order = pm.Normal(
                "mu_order", 0.0, priors.mean_scale, dims=COMPONENT,
                transform=pm.distributions.transforms.ordered,
                initval=np.linspace(-1.0, 1.0, k),
            )
            mu_rest = pm.Normal("mu_rest", 0.0, priors.mean_scale, shape=(k, d - 1))
            mu = pm.Deterministic("mu", join_ordered(mu_order, mu_rest, int(order_by)),
                                  dims=(COMPONENT, FEATURE))
        chols = _covariance_block(covariance_type, k, d, priors)
        signature = "(k),(k,d),(k,d,d)->(d)"

        def logp(value, w, m, c):
            return mixture_logp(value, w, m, c, n_components=k, n_features=d)

        if batch_size is None:
            model.add_coord(OBS, np.arange(n))
            observed = pm.Data("x_data", Z, dims=(OBS, FEATURE)) if shared_data else Z
            pm.CustomDist(
                "x", weights, mu, chols, logp=logp, observed=observed,
                signature=signature, dims=(OBS, FEATURE),
            )
        else:
            # The minibatch generator is a shared RNG of the model: pm.fit's random_seed
            # seeds it.
            batch = pm.Minibatch(pt.as_tensor(Z), batch_size=int(batch_size))
            pm.CustomDist(
                "x", weights, mu, chols, logp=logp, observed=batch,
                signature=signature, total_size=n,
            )
    return model


def _covariance_block(covariance_type: str, k: int, d: int, priors: Priors):
    """The covariance priors of a structure, returned as Cholesky factors (K, D, D)."""
    def lkj(name):
        return pm.LKJCholeskyCov(
            name, n=d, eta=priors.lkj_eta,
            sd_dist=pm.InverseGamma.dist(priors.scale_shape, priors.scale_scale, shape=d),
            compute_corr=False)

    if covariance_type == "full":
        return _unpack([lkj(f"chol_cov_{j}") for j in range(k)], d)
    if covariance_type == "tied":
        return pt.broadcast_to(_unpack([lkj("chol_cov")], d), (k, d, d))
    idx = np.arange(d)
    if covariance_type == "diag":
        sigma = pm.InverseGamma("sigma", priors.scale_shape, priors.scale_scale,
                                dims=(COMPONENT, FEATURE))
    else:
        sigma = pm.InverseGamma("sigma", priors.scale_shape, priors.scale_scale,
                                dims=COMPONENT)
        sigma = pt.broadcast_to(sigma[:, None], (k, d))
    return pt.zeros((k, d, d))[:, idx, idx].set(sigma)


def join_ordered(mu_order, mu_rest, order_by: int):
    """Means (K, D) from the ordered feature (K,) and the others (K, D-1), in PyTensor."""
    col = mu_order[:, None]
    return pt.concatenate([mu_rest[:, :order_by], col, mu_rest[:, order_by:]], axis=-1)


def unpack_point(point: dict, n_components: int, n_features: int,
                 covariance_type: str = "full") -> dict[str, np.ndarray]:
    """Turn a PyMC point (constrained values) into weights, means and Cholesky factors.

    Works on arrays with leading draw dimensions too.
    """
    d, k = n_features, n_components
    eye = np.eye(d)
    if covariance_type in ("full", "tied"):
        rows, cols = np.tril_indices(d)
        names = covariance_names(covariance_type, k)
        packed = np.stack([np.asarray(point[name]) for name in names], axis=-2)
        chols = np.zeros(packed.shape[:-1] + (d, d))
        chols[..., rows, cols] = packed
        if covariance_type == "tied":
            chols = np.broadcast_to(chols, chols.shape[:-3] + (k, d, d)).copy()
    elif covariance_type == "diag":
        chols = np.asarray(point["sigma"])[..., None] * eye
    else:
        chols = np.asarray(point["sigma"])[..., None, None] * eye
    return {"weights": np.asarray(point["weights"]), "means": np.asarray(point["mu"]),
            "chols": chols}


def point_from_params(weights: np.ndarray, means: np.ndarray, chols: np.ndarray,
                      order_by: int | None = None, covariance_type: str = "full") -> dict:
    """Constrained PyMC point (on the model's scale) from weights, means and Cholesky factors.

    With ``order_by``, the means are given as ``mu_order`` and ``mu_rest`` (see
    :func:`build_model`); feature ``order_by`` of the means must already increase with the
    component index, up to ties, which are broken by 1e-6 steps. For the other structures
    the factors are reduced to the model's variables: "tied" takes the Cholesky factor of
    the mean covariance, "diag" the standard deviations, "spherical" the root mean variance
    of each component.
    """
    means = np.asarray(means, dtype=float)
    point = {"weights": np.asarray(weights, dtype=float)}
    if order_by is None:
        point["mu"] = means
    else:
        j = int(order_by)
        col = means[:, j]
        # A strictly increasing start: sort (jitter may swap near ties), then separate ties.
        point["mu_order"] = np.sort(col) + 1e-6 * np.arange(col.size)
        point["mu_rest"] = np.delete(means, j, axis=1)
    chols = np.asarray(chols, dtype=float)
    variances = np.sum(chols**2, axis=-1)  # diagonal of L L^T: (K, D)
    if covariance_type == "full":
        packed = packed_cholesky(chols)
        for j in range(packed.shape[0]):
            point[f"chol_cov_{j}"] = packed[j]
    elif covariance_type == "tied":
        mean_cov = np.mean(chols @ np.swapaxes(chols, -1, -2), axis=0)
        point["chol_cov"] = packed_cholesky(np.linalg.cholesky(mean_cov))
    elif covariance_type == "diag":
        point["sigma"] = np.sqrt(variances)
    else:
        point["sigma"] = np.sqrt(variances.mean(axis=-1))
    return point


def log_posterior(model: pm.Model):
    """Compile the unnormalised log posterior on the constrained (untransformed) scale.

    Returns a function of a constrained point (see :func:`point_from_params`). No Jacobian
    of the sampler's transforms is included: this is the density whose maximiser is the MAP.
    """
    from pymc.model.transform.conditioning import remove_value_transforms

    plain = remove_value_transforms(model)
    fn = plain.compile_logp(jacobian=False)
    return fn
