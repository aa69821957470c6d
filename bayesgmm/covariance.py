"""Covariance structures: the one place that knows what "full", "diag", "spherical" and "tied" mean.

Each structure is one small class, and :data:`STRUCTURES` is the table of their instances by
scikit-learn's name (mclust's VVV, VVI, VII, EEE): :data:`FULL`, a full covariance per
component; :data:`DIAG`, a diagonal one per component; :data:`SPHERICAL`, one variance per
component; :data:`TIED`, one full covariance shared by all components. :func:`structure`
looks one up and rejects unknown names. The rest of the package asks the structure object
(``structure(covariance_type).expand(...)``) instead of comparing ``covariance_type`` with a
name.

Every structure is stored and reported as (K, D, D) matrices. A structure object converts
between those and scikit-learn's ``covariances_`` and ``precisions_init`` forms
(:meth:`~CovarianceStructure.expand`, :meth:`~CovarianceStructure.reduce`,
:meth:`~CovarianceStructure.precisions_init`), reduces any covariances to its form
(:meth:`~CovarianceStructure.project`), counts its free parameters and what they cost
(:meth:`~CovarianceStructure.n_parameters`, :meth:`~CovarianceStructure.values_per_parameter`,
:meth:`~CovarianceStructure.evaluation_cost`), names the PyMC model's covariance variables
and turns their values into Cholesky factors and back (:meth:`~CovarianceStructure.unpack`,
:meth:`~CovarianceStructure.pack`), builds their prior (:meth:`~CovarianceStructure.prior`),
and parametrises the covariances without constraints for the gradient fit
(:meth:`~CovarianceStructure.pack_unconstrained`, :meth:`~CovarianceStructure.whiten`).

Dependencies: this module imports only NumPy at module level, because the maximum-likelihood
layer (:mod:`bayesgmm.ml`), which must not depend on PyMC, uses it. The few methods that need
more import it inside: :meth:`~CovarianceStructure.prior` imports PyMC and PyTensor (only
:func:`bayesgmm.model.build_model` calls it), :meth:`~CovarianceStructure.whiten` JAX (only
the gradient fit calls it), :meth:`~CovarianceStructure.sklearn_precisions` SciPy. The PyMC
prior is a method here, not a table in :mod:`bayesgmm.model`, so that everything a structure
means is in its class.

Adding a structure: write one subclass of :class:`CholeskyStructure` (covariances given by
lower-triangular factors, as "full" and "tied") or :class:`ScaleStructure` (given by
standard deviations, as "diag" and "spherical"), or of :class:`CovarianceStructure` itself,
implementing the methods that raise ``NotImplementedError`` there and setting the class
attributes; add its instance to :data:`STRUCTURES`. The only copy of the names elsewhere is
``bayesgmm.cli.COVARIANCE_TYPES`` (kept apart so that the command starts without NumPy; a
test checks that it agrees), and scikit-learn must know the name for EM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, override

import numpy as np

__all__ = ["COVARIANCE_TYPES", "SINGULAR_EIGENVALUE", "COLLINEAR_EIGENVALUE", "STRUCTURES",
           "FULL", "DIAG", "SPHERICAL",
           "TIED", "CovarianceStructure", "CholeskyStructure", "ScaleStructure", "Full", "Tied",
           "Diagonal", "Spherical", "structure", "check_covariance_type", "covariance_names",
           "expand_covariances", "reduce_covariances", "n_parameters", "check_structure",
           "project_covariances", "structured_precisions", "packed_cholesky"]

#: A covariance whose smallest eigenvalue, in feature-variance units (standardised data), is
#: below this is singular: its component has collapsed onto a lower-dimensional set.
SINGULAR_EIGENVALUE = 1e-6
#: A correlation matrix with an eigenvalue below this has nearly collinear features (two
#: features correlated 0.99 give 0.01). Breast cancer's radius, perimeter and area gave
#: 1e-3 to 1e-4 within components, and cost NUTS with a diagonal mass matrix 30 times the
#: leapfrog steps.
COLLINEAR_EIGENVALUE = 0.01


def packed_cholesky(chols: np.ndarray) -> np.ndarray:
    """Pack lower-triangular factors (..., D, D) the way ``pm.LKJCholeskyCov`` stores them."""
    d = chols.shape[-1]
    rows, cols = np.tril_indices(d)
    return chols[..., rows, cols]


@dataclass(frozen=True)
class CovarianceStructure:
    """What one covariance structure means, everywhere in the package.

    Subclasses set the class attributes and implement the methods; one instance of each is
    in :data:`STRUCTURES`. Arrays called ``covs`` or ``chols`` are (K, D, D) covariances or
    their lower Cholesky factors; ``covariances_`` is scikit-learn's form of a structure.

    Attributes
    ----------
    name : str
        scikit-learn's ``covariance_type``.
    mclust_name : str
        The model's name in R's mclust.
    form : str
        What the (K, D, D) covariances of the structure are, for messages.
    dense : bool
        Whether a component's covariance is a D x D factor (costs D^2 per point and D^3 per
        evaluation) rather than D standard deviations or fewer.
    common_scale : bool
        Whether the structure is fitted on data divided by one common scale instead of each
        column's standard deviation (see :meth:`Standardizer.for_structure
        <bayesgmm.standardize.Standardizer.for_structure>`).
    """

    name: ClassVar[str]
    mclust_name: ClassVar[str]
    form: ClassVar[str]
    dense: ClassVar[bool] = False
    common_scale: ClassVar[bool] = False

    # ------------------------------------------------------------------ counts and costs

    def n_parameters(self, k: int, d: int) -> int:
        """Free covariance parameters of K components in D dimensions (no weights, means)."""
        raise NotImplementedError

    def values_per_parameter(self, n: int, d: int, k: int) -> tuple[float, int]:
        """(data values per free parameter of a component, the component's free parameters).

        For N rows, D features and K components (means included, weights not).
        """
        raise NotImplementedError

    def evaluation_cost(self, rows: int, k: int, d: int) -> int:
        """Floating-point operations of one likelihood evaluation on ``rows`` rows."""
        return rows * k * d

    def min_count(self, d: int) -> int:
        """Fewest points (weight x N) a component needs for a non-singular ML covariance."""
        raise NotImplementedError

    # --------------------------------------------------------- (K, D, D) and scikit-learn

    def expand(self, covariances, k: int, d: int) -> np.ndarray:
        """scikit-learn's ``covariances_`` of the structure as (K, D, D) full matrices."""
        raise NotImplementedError

    def reduce(self, covariances: np.ndarray) -> np.ndarray:
        """(K, D, D) covariances of the structure as scikit-learn's ``covariances_``."""
        raise NotImplementedError

    def check(self, covariances: np.ndarray) -> None:
        """Raise ValueError when (K, D, D) covariances do not have the structure's form."""
        k, d = covariances.shape[0], covariances.shape[-1]
        expected = self.expand(self.reduce(covariances), k, d)
        diag = np.abs(np.diagonal(covariances, axis1=1, axis2=2))
        tol = 1e-10 * max(float(diag.max(initial=0.0)), np.finfo(float).tiny)
        if not np.allclose(covariances, expected, rtol=1e-10, atol=tol):
            raise ValueError(f"covariances do not have the {self.name!r} structure: they "
                             f"must be {self.form}.")

    def project(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        """Any (K, D, D) covariances reduced to the structure, still as (K, D, D) matrices.

        ``weights`` (K,) weigh the components where the structure pools them.
        """
        raise NotImplementedError

    def precisions_init(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        """scikit-learn's ``precisions_init`` from (K, D, D) covariances, first projected."""
        raise NotImplementedError

    def sklearn_precisions(self, covariances_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """scikit-learn's ``(precisions_cholesky_, precisions_)`` from its ``covariances_``."""
        raise NotImplementedError

    def singular_blocks(self, covariances_: np.ndarray, k: int) -> np.ndarray:
        """(K, M, M) matrices whose smallest eigenvalues are the components' covariances'.

        From scikit-learn's ``covariances_`` of the structure (for "full" (K, D, D) too).
        """
        return self.expand(covariances_, k, covariances_.shape[-1])

    def covariances_to_user(self, covariances_: np.ndarray, k: int, d: int,
                            standardizer) -> np.ndarray:
        """(K, D, D) covariances on the user's scale from ``covariances_`` on the model's.

        ``standardizer`` is the :class:`~bayesgmm.standardize.Standardizer` of the fit.
        Scaling the expanded matrices keeps zeros zero and shared matrices identical.
        """
        return self.expand(covariances_, k, d) * np.outer(standardizer.scale,
                                                          standardizer.scale)

    def empty_covariances(self, covs: np.ndarray, pad: int) -> np.ndarray:
        """Covariances (pad, D, D) of empty components appended to a fit's ``covs``.

        As wide as the standardised data: the identity.
        """
        return np.repeat(np.eye(covs.shape[-1])[None], pad, 0)

    # ------------------------------------------------------------------ the PyMC model

    def variable_names(self, k: int) -> list[str]:
        """Names of the PyMC model's free covariance variables for K components."""
        raise NotImplementedError

    def prior(self, k: int, d: int, priors, dims: tuple[str, str]):
        """Create the covariance variables and their prior in the current PyMC model.

        ``priors`` is a :class:`~bayesgmm.priors.Priors`, ``dims`` the names of the
        component and feature dimensions. Returns the Cholesky factors (K, D, D) as a
        PyTensor variable. Imports PyMC.
        """
        raise NotImplementedError

    def unpack(self, point: dict, k: int, d: int) -> np.ndarray:
        """Cholesky factors (..., K, D, D) from the covariance variables of a PyMC point.

        The values are constrained ones, with or without leading draw dimensions.
        """
        raise NotImplementedError

    def pack(self, chols: np.ndarray) -> dict[str, np.ndarray]:
        """The covariance variables of a constrained PyMC point from (K, D, D) factors.

        Factors of another structure are reduced to this one (see the subclasses).
        """
        raise NotImplementedError

    # ------------------------------------------------- the gradient fit's parametrisation

    def pack_unconstrained(self, chols: np.ndarray) -> np.ndarray:
        """Unconstrained covariance parameters (1-D) from (K, D, D) factors of the structure."""
        raise NotImplementedError

    def unpack_unconstrained(self, theta: np.ndarray, k: int, d: int) -> np.ndarray:
        """(K, D, D) Cholesky factors from :meth:`pack_unconstrained`'s parameters."""
        raise NotImplementedError

    def whiten(self, theta, resid, k: int, d: int):
        """In JAX: whitened residuals (K, D, N) and log |L_k| (K,) from the parameters.

        ``theta`` holds :meth:`pack_unconstrained`'s parameters, ``resid`` (K, D, N) the
        data minus each component's mean.
        """
        raise NotImplementedError


def _lkj_cholesky(name: str, d: int, priors):
    """A packed LKJ Cholesky factor whose standard deviations have the inverse-gamma prior."""
    import pymc as pm

    return pm.LKJCholeskyCov(
        name, n=d, eta=priors.lkj_eta,
        sd_dist=pm.InverseGamma.dist(priors.scale_shape, priors.scale_scale, shape=d),
        compute_corr=False)


def _unpack_graph(packed, d: int):
    """PyTensor (len(packed), D, D) lower-triangular factors from packed ones."""
    import pytensor.tensor as pt

    rows, cols = np.tril_indices(d)
    return pt.zeros((len(packed), d, d))[:, rows, cols].set(pt.stack(packed))


@dataclass(frozen=True)
class CholeskyStructure(CovarianceStructure):
    """A structure whose covariances are D x D lower-triangular Cholesky factors.

    The model holds each distinct factor packed (``pm.LKJCholeskyCov``, its standard
    deviations under the inverse-gamma prior); the gradient fit holds them packed with the
    diagonal on the log scale. Subclasses say which factors are distinct
    (:meth:`distinct`) and how the distinct ones are shared among the components
    (:meth:`share`, :meth:`share_graph`).
    """

    dense: ClassVar[bool] = True

    def distinct(self, chols: np.ndarray) -> np.ndarray:
        """The distinct factors (M, D, D) of the components' factors (K, D, D)."""
        raise NotImplementedError

    def share(self, chols: np.ndarray, k: int) -> np.ndarray:
        """Factors (..., K, D, D) of the components from the distinct ones (..., M, D, D)."""
        raise NotImplementedError

    def share_graph(self, chols, k: int, d: int):
        """:meth:`share` for PyTensor factors (M, D, D)."""
        raise NotImplementedError

    @override
    def evaluation_cost(self, rows: int, k: int, d: int) -> int:
        return rows * k * d * d + k * d**3

    @override
    def precisions_init(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        precisions = np.linalg.inv(self.reduce(self.project(weights, covs)))
        return 0.5 * (precisions + np.swapaxes(precisions, -1, -2))

    @override
    def sklearn_precisions(self, covariances_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import solve_triangular

        d = covariances_.shape[-1]
        chols = np.linalg.cholesky(covariances_)
        prec_chol = np.stack([solve_triangular(c, np.eye(d), lower=True).T
                              for c in np.reshape(chols, (-1, d, d))])
        precisions = prec_chol @ np.swapaxes(prec_chol, 1, 2)
        # (M, D, D) stacks of the distinct factors, in the form of covariances_.
        return self.reduce(prec_chol), self.reduce(precisions)

    @override
    def prior(self, k: int, d: int, priors, dims: tuple[str, str]):
        packed = [_lkj_cholesky(name, d, priors) for name in self.variable_names(k)]
        return self.share_graph(_unpack_graph(packed, d), k, d)

    @override
    def unpack(self, point: dict, k: int, d: int) -> np.ndarray:
        rows, cols = np.tril_indices(d)
        names = self.variable_names(k)
        packed = np.stack([np.asarray(point[name]) for name in names], axis=-2)
        chols = np.zeros(packed.shape[:-1] + (d, d))
        chols[..., rows, cols] = packed
        return self.share(chols, k)

    @override
    def pack_unconstrained(self, chols: np.ndarray) -> np.ndarray:
        rows, cols = np.tril_indices(chols.shape[-1])
        packed = self.distinct(chols)[:, rows, cols].copy()
        diag = rows == cols
        packed[:, diag] = np.log(packed[:, diag])
        return packed.ravel()

    @override
    def unpack_unconstrained(self, theta: np.ndarray, k: int, d: int) -> np.ndarray:
        rows, cols = np.tril_indices(d)
        diag = rows == cols
        packed = theta.reshape(-1, rows.size).copy()
        packed[:, diag] = np.exp(packed[:, diag])
        chols = np.zeros((packed.shape[0], d, d))
        chols[:, rows, cols] = packed
        return self.share(chols, k)

    @override
    def whiten(self, theta, resid, k: int, d: int):
        import jax.numpy as jnp
        from jax.scipy.linalg import solve_triangular

        rows, cols = np.tril_indices(d)
        diag = rows == cols
        packed = theta.reshape(-1, rows.size)
        chols = jnp.zeros((packed.shape[0], d, d), dtype=theta.dtype).at[:, rows, cols].set(
            jnp.where(diag, jnp.exp(packed), packed))
        z = solve_triangular(jnp.broadcast_to(chols, (k, d, d)), resid, lower=True)
        logdet = jnp.broadcast_to(jnp.sum(jnp.where(diag, packed, 0.0), axis=1), (k,))
        return z, logdet


@dataclass(frozen=True)
class Full(CholeskyStructure):
    """"full" (mclust's VVV): a full covariance per component.

    Model variables: one packed factor ``chol_cov_<k>`` per component.
    """

    name: ClassVar[str] = "full"
    mclust_name: ClassVar[str] = "VVV"
    form: ClassVar[str] = "symmetric positive definite matrices"

    @override
    def n_parameters(self, k: int, d: int) -> int:
        return k * d * (d + 1) // 2

    @override
    def values_per_parameter(self, n: int, d: int, k: int) -> tuple[float, int]:
        p = d + d * (d + 1) // 2
        return n / k * d / p, p

    @override
    def min_count(self, d: int) -> int:
        return d + 1

    @override
    def expand(self, covariances, k: int, d: int) -> np.ndarray:
        return np.asarray(covariances, dtype=float).reshape(k, d, d)

    @override
    def reduce(self, covariances: np.ndarray) -> np.ndarray:
        return covariances.copy()

    @override
    def check(self, covariances: np.ndarray) -> None:
        """Nothing to check: any covariances are full ones."""

    @override
    def project(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        return covs

    @override
    def covariances_to_user(self, covariances_: np.ndarray, k: int, d: int,
                            standardizer) -> np.ndarray:
        """(K, D, D) covariances on the user's scale from ``covariances_`` on the model's.

        Through their Cholesky factors, as the Bayesian fits map their draws.
        """
        chols = standardizer.chols_to_user(np.linalg.cholesky(covariances_))
        return chols @ np.swapaxes(chols, 1, 2)

    @override
    def variable_names(self, k: int) -> list[str]:
        return [f"chol_cov_{j}" for j in range(k)]

    @override
    def pack(self, chols: np.ndarray) -> dict[str, np.ndarray]:
        packed = packed_cholesky(chols)
        return {f"chol_cov_{j}": packed[j] for j in range(packed.shape[0])}

    @override
    def distinct(self, chols: np.ndarray) -> np.ndarray:
        return chols

    @override
    def share(self, chols: np.ndarray, k: int) -> np.ndarray:
        return chols

    @override
    def share_graph(self, chols, k: int, d: int):
        return chols


@dataclass(frozen=True)
class Tied(CholeskyStructure):
    """"tied" (mclust's EEE): one full covariance shared by all components.

    Model variable: one packed factor ``chol_cov``. Factors of another structure are packed
    as the Cholesky factor of their mean covariance.
    """

    name: ClassVar[str] = "tied"
    mclust_name: ClassVar[str] = "EEE"
    form: ClassVar[str] = "one matrix shared by all components"

    @override
    def n_parameters(self, k: int, d: int) -> int:
        return d * (d + 1) // 2

    @override
    def values_per_parameter(self, n: int, d: int, k: int) -> tuple[float, int]:
        shared = d * (d + 1) // 2  # the means per component, one covariance for all rows
        return min(n / k, n * d / shared), d + shared

    @override
    def min_count(self, d: int) -> int:
        return 0  # the covariance is pooled over all N points

    @override
    def expand(self, covariances, k: int, d: int) -> np.ndarray:
        c = np.asarray(covariances, dtype=float)
        return np.broadcast_to(c.reshape(d, d), (k, d, d)).copy()

    @override
    def reduce(self, covariances: np.ndarray) -> np.ndarray:
        return covariances[0].copy()

    @override
    def project(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        """The weighted mean of the covariances (the pooled within-group covariance)."""
        k, d = covs.shape[0], covs.shape[-1]
        return self.expand(np.einsum("k,kij->ij", weights, covs), k, d)

    @override
    def empty_covariances(self, covs: np.ndarray, pad: int) -> np.ndarray:
        """Covariances (pad, D, D) of empty components appended to a fit's: the shared one."""
        return np.repeat(covs[:1], pad, 0)

    @override
    def variable_names(self, k: int) -> list[str]:
        return ["chol_cov"]

    @override
    def pack(self, chols: np.ndarray) -> dict[str, np.ndarray]:
        mean_cov = np.mean(chols @ np.swapaxes(chols, -1, -2), axis=0)
        return {"chol_cov": packed_cholesky(np.linalg.cholesky(mean_cov))}

    @override
    def distinct(self, chols: np.ndarray) -> np.ndarray:
        return chols[:1]

    @override
    def share(self, chols: np.ndarray, k: int) -> np.ndarray:
        return np.broadcast_to(chols, chols.shape[:-3] + (k,) + chols.shape[-2:]).copy()

    @override
    def share_graph(self, chols, k: int, d: int):
        import pytensor.tensor as pt

        return pt.broadcast_to(chols, (k, d, d))


@dataclass(frozen=True)
class ScaleStructure(CovarianceStructure):
    """A structure whose covariances are diagonal: standard deviations, no correlations.

    The model holds the standard deviations ``sigma`` under the inverse-gamma prior; the
    gradient fit holds their logarithms.
    """

    @override
    def min_count(self, d: int) -> int:
        return 2

    @override
    def precisions_init(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        return 1.0 / self.reduce(self.project(weights, covs))

    @override
    def sklearn_precisions(self, covariances_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return 1.0 / np.sqrt(covariances_), 1.0 / covariances_

    @override
    def variable_names(self, k: int) -> list[str]:
        return ["sigma"]


@dataclass(frozen=True)
class Diagonal(ScaleStructure):
    """"diag" (mclust's VVI): a diagonal covariance per component.

    Model variable: standard deviations ``sigma`` (component, feature). Factors of another
    structure are packed as the square roots of their variances.
    """

    name: ClassVar[str] = "diag"
    mclust_name: ClassVar[str] = "VVI"
    form: ClassVar[str] = "diagonal matrices"

    @override
    def n_parameters(self, k: int, d: int) -> int:
        return k * d

    @override
    def values_per_parameter(self, n: int, d: int, k: int) -> tuple[float, int]:
        return n / k * d / (2 * d), 2 * d

    @override
    def expand(self, covariances, k: int, d: int) -> np.ndarray:
        c = np.asarray(covariances, dtype=float)
        return c.reshape(k, d)[:, :, None] * np.eye(d)

    @override
    def reduce(self, covariances: np.ndarray) -> np.ndarray:
        return np.diagonal(covariances, axis1=1, axis2=2).copy()

    @override
    def project(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        """The diagonals of the covariances."""
        k, d = covs.shape[0], covs.shape[-1]
        return self.expand(np.diagonal(covs, axis1=1, axis2=2), k, d)

    @override
    def prior(self, k: int, d: int, priors, dims: tuple[str, str]):
        import pymc as pm
        import pytensor.tensor as pt

        idx = np.arange(d)
        sigma = pm.InverseGamma("sigma", priors.scale_shape, priors.scale_scale, dims=dims)
        return pt.zeros((k, d, d))[:, idx, idx].set(sigma)

    @override
    def unpack(self, point: dict, k: int, d: int) -> np.ndarray:
        return np.asarray(point["sigma"])[..., None] * np.eye(d)

    @override
    def pack(self, chols: np.ndarray) -> dict[str, np.ndarray]:
        variances = np.sum(chols**2, axis=-1)  # diagonal of L L^T: (K, D)
        return {"sigma": np.sqrt(variances)}

    @override
    def pack_unconstrained(self, chols: np.ndarray) -> np.ndarray:
        """The (K, D) log standard deviations (log diagonal of the factors), flattened."""
        return np.log(np.diagonal(chols, axis1=1, axis2=2)).ravel()

    @override
    def unpack_unconstrained(self, theta: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.exp(theta.reshape(k, d))[:, :, None] * np.eye(d)

    @override
    def whiten(self, theta, resid, k: int, d: int):
        import jax.numpy as jnp

        log_sd = theta.reshape(k, d)
        z = resid * jnp.exp(-log_sd)[:, :, None]
        return z, jnp.sum(log_sd, axis=1)


@dataclass(frozen=True)
class Spherical(ScaleStructure):
    """"spherical" (mclust's VII): one variance per component.

    Fitted on data divided by one common scale, so that spheres are spheres in the user's
    units. Model variable: standard deviations ``sigma`` (component). Factors of another
    structure are packed as the root mean variance of each component.
    """

    name: ClassVar[str] = "spherical"
    mclust_name: ClassVar[str] = "VII"
    form: ClassVar[str] = "multiples of the identity"
    common_scale: ClassVar[bool] = True

    @override
    def n_parameters(self, k: int, d: int) -> int:
        return k

    @override
    def values_per_parameter(self, n: int, d: int, k: int) -> tuple[float, int]:
        return n / k * d / (d + 1), d + 1

    @override
    def expand(self, covariances, k: int, d: int) -> np.ndarray:
        c = np.asarray(covariances, dtype=float)
        return c.reshape(k)[:, None, None] * np.eye(d)

    @override
    def reduce(self, covariances: np.ndarray) -> np.ndarray:
        return covariances[:, 0, 0].copy()

    @override
    def project(self, weights: np.ndarray, covs: np.ndarray) -> np.ndarray:
        """The mean variance of each covariance."""
        k, d = covs.shape[0], covs.shape[-1]
        variances = np.diagonal(covs, axis1=1, axis2=2)
        return self.expand(variances.mean(axis=1), k, d)

    @override
    def singular_blocks(self, covariances_: np.ndarray, k: int) -> np.ndarray:
        """(K, 1, 1): one variance per component."""
        return np.asarray(covariances_, dtype=float).reshape(k, 1, 1)

    @override
    def prior(self, k: int, d: int, priors, dims: tuple[str, str]):
        import pymc as pm
        import pytensor.tensor as pt

        idx = np.arange(d)
        sigma = pm.InverseGamma("sigma", priors.scale_shape, priors.scale_scale, dims=dims[0])
        sigma = pt.broadcast_to(sigma[:, None], (k, d))
        return pt.zeros((k, d, d))[:, idx, idx].set(sigma)

    @override
    def unpack(self, point: dict, k: int, d: int) -> np.ndarray:
        return np.asarray(point["sigma"])[..., None, None] * np.eye(d)

    @override
    def pack(self, chols: np.ndarray) -> dict[str, np.ndarray]:
        variances = np.sum(chols**2, axis=-1)  # diagonal of L L^T: (K, D)
        return {"sigma": np.sqrt(variances.mean(axis=-1))}

    @override
    def pack_unconstrained(self, chols: np.ndarray) -> np.ndarray:
        """The (K,) log standard deviations (log of the factors' first diagonal entry)."""
        return np.log(chols[:, 0, 0])

    @override
    def unpack_unconstrained(self, theta: np.ndarray, k: int, d: int) -> np.ndarray:
        return np.exp(theta.reshape(k))[:, None, None] * np.eye(d)

    @override
    def whiten(self, theta, resid, k: int, d: int):
        import jax.numpy as jnp

        return resid * jnp.exp(-theta)[:, None, None], d * theta


FULL, DIAG, SPHERICAL, TIED = Full(), Diagonal(), Spherical(), Tied()

#: The covariance structures by scikit-learn's name.
STRUCTURES: dict[str, CovarianceStructure] = {s.name: s for s in (FULL, DIAG, SPHERICAL, TIED)}

#: Covariance structures (scikit-learn's names; mclust's VVV, VVI, VII, EEE): a full
#: covariance per component, a diagonal one per component, one variance per component,
#: one full covariance shared by all components.
COVARIANCE_TYPES = tuple(STRUCTURES)


def structure(covariance_type) -> CovarianceStructure:
    """The structure named ``covariance_type`` (one of :data:`COVARIANCE_TYPES`), else raise.

    Examples
    --------
    >>> structure("diag").n_parameters(3, 2), structure("diag").mclust_name
    (6, 'VVI')
    """
    if not isinstance(covariance_type, str) or covariance_type not in STRUCTURES:
        raise ValueError(f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))}"
                         f", got {covariance_type!r}.")
    return STRUCTURES[covariance_type]


def check_covariance_type(covariance_type) -> str:
    """Return ``covariance_type`` if it is one of :data:`COVARIANCE_TYPES`, else raise."""
    return structure(covariance_type).name


def covariance_names(covariance_type: str, n_components: int) -> list[str]:
    """Names of the model's free covariance variables for a structure.

    "full": one packed Cholesky factor ``chol_cov_<k>`` per component; "tied": one
    ``chol_cov``; "diag": ``sigma`` (component, feature); "spherical": ``sigma`` (component).
    """
    return structure(covariance_type).variable_names(n_components)


def expand_covariances(covariances, covariance_type: str, k: int, d: int) -> np.ndarray:
    """scikit-learn's ``covariances_`` of a ``covariance_type`` as (K, D, D) full matrices."""
    return structure(covariance_type).expand(covariances, k, d)


def n_parameters(k: int, d: int, covariance_type: str = "full") -> int:
    """Free parameters of a mixture: K - 1 weights, K D means, and the covariances.

    Covariance parameters: "full" K D (D + 1) / 2, "diag" K D, "spherical" K, "tied"
    D (D + 1) / 2 (as scikit-learn's ``GaussianMixture._n_parameters``).
    """
    return int(k - 1 + k * d + structure(covariance_type).n_parameters(k, d))


def reduce_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances as scikit-learn's ``covariances_`` of a ``covariance_type``."""
    return structure(covariance_type).reduce(covariances)


def check_structure(covariances: np.ndarray, covariance_type: str) -> None:
    """Raise ValueError when (K, D, D) covariances do not have the ``covariance_type`` form."""
    structure(covariance_type).check(covariances)


def project_covariances(weights: np.ndarray, covs: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances reduced to ``covariance_type``, still as (K, D, D) matrices.

    "diag" keeps the variances, "spherical" their mean, "tied" the weighted mean of the
    covariances (the pooled within-group covariance).
    """
    return structure(covariance_type).project(weights, covs)


def structured_precisions(weights, covs, covariance_type):
    """scikit-learn's ``precisions_init`` of ``covariance_type`` from (K, D, D) covariances.

    The covariances are first reduced to the structure by :func:`project_covariances`.
    """
    return structure(covariance_type).precisions_init(weights, covs)
