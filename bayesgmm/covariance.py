"""Covariance structures: the one place that knows what "full", "diag", "spherical" and
"tied" mean.

Every structure is stored and reported as (K, D, D) matrices; the functions here convert
between those and scikit-learn's ``covariances_`` and ``precisions_init`` forms, count free
parameters, and name the model's covariance variables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COVARIANCE_TYPES", "SINGULAR_EIGENVALUE", "check_covariance_type",
           "covariance_names", "expand_covariances", "reduce_covariances", "n_parameters",
           "check_structure", "project_covariances", "structured_precisions"]

#: A covariance whose smallest eigenvalue, in feature-variance units (standardised data), is
#: below this is singular: its component has collapsed onto a lower-dimensional set.
SINGULAR_EIGENVALUE = 1e-6

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


def expand_covariances(covariances, covariance_type: str, k: int, d: int) -> np.ndarray:
    """scikit-learn's ``covariances_`` of a ``covariance_type`` as (K, D, D) full matrices."""
    c = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return c.reshape(k, d, d)
    if covariance_type == "tied":
        return np.broadcast_to(c.reshape(d, d), (k, d, d)).copy()
    if covariance_type == "diag":
        return c.reshape(k, d)[:, :, None] * np.eye(d)
    return c.reshape(k)[:, None, None] * np.eye(d)  # spherical


def n_parameters(k: int, d: int, covariance_type: str = "full") -> int:
    """Free parameters of a mixture: K - 1 weights, K D means, and the covariances.

    Covariance parameters: "full" K D (D + 1) / 2, "diag" K D, "spherical" K, "tied"
    D (D + 1) / 2 (as scikit-learn's ``GaussianMixture._n_parameters``).
    """
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d, "spherical": k,
           "tied": d * (d + 1) // 2}[check_covariance_type(covariance_type)]
    return int(k - 1 + k * d + cov)


def reduce_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances as scikit-learn's ``covariances_`` of a ``covariance_type``."""
    if covariance_type == "full":
        return covariances.copy()
    if covariance_type == "tied":
        return covariances[0].copy()
    if covariance_type == "diag":
        return np.diagonal(covariances, axis1=1, axis2=2).copy()
    return covariances[:, 0, 0].copy()  # spherical


def check_structure(covariances: np.ndarray, covariance_type: str) -> None:
    """Raise ValueError when (K, D, D) covariances do not have the ``covariance_type`` form."""
    k, d = covariances.shape[0], covariances.shape[-1]
    expected = expand_covariances(reduce_covariances(covariances, covariance_type),
                                   covariance_type, k, d)
    diag = np.abs(np.diagonal(covariances, axis1=1, axis2=2))
    tol = 1e-10 * max(float(diag.max(initial=0.0)), np.finfo(float).tiny)
    if not np.allclose(covariances, expected, rtol=1e-10, atol=tol):
        form = {"diag": "diagonal matrices", "spherical": "multiples of the identity",
                "tied": "one matrix shared by all components"}[covariance_type]
        raise ValueError(f"covariances do not have the {covariance_type!r} structure: they "
                         f"must be {form}.")


def project_covariances(weights: np.ndarray, covs: np.ndarray, covariance_type: str) -> np.ndarray:
    """(K, D, D) covariances reduced to ``covariance_type``, still as (K, D, D) matrices.

    "diag" keeps the variances, "spherical" their mean, "tied" the weighted mean of the
    covariances (the pooled within-group covariance).
    """
    k, d = covs.shape[0], covs.shape[-1]
    if covariance_type == "full":
        return covs
    if covariance_type == "tied":
        return expand_covariances(np.einsum("k,kij->ij", weights, covs), "tied", k, d)
    variances = np.diagonal(covs, axis1=1, axis2=2)
    if covariance_type == "spherical":
        return expand_covariances(variances.mean(axis=1), "spherical", k, d)
    return expand_covariances(variances, "diag", k, d)


def structured_precisions(weights, covs, covariance_type):
    """scikit-learn's ``precisions_init`` of ``covariance_type`` from (K, D, D) covariances.

    The covariances are first reduced to the structure by :func:`project_covariances`.
    """
    reduced = reduce_covariances(project_covariances(weights, covs, covariance_type),
                                  covariance_type)
    if covariance_type in ("full", "tied"):
        precisions = np.linalg.inv(reduced)
        return 0.5 * (precisions + np.swapaxes(precisions, -1, -2))
    return 1.0 / reduced  # variances: (K, D) for "diag", (K,) for "spherical"
