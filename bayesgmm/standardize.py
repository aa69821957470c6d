"""The standardisation every fit runs on: centre and scale each feature (or all at once).

The models and the point estimates work on standardised data, so that the priors' scales and
the optimisers' tolerances mean the same for any units; results are mapped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .covariance import structure

__all__ = ["Standardizer"]


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
    def fit(cls, X: np.ndarray, *, common_scale: bool = False,
            sample_weight: np.ndarray | None = None) -> Standardizer:
        """Centre on the column means and scale by the column standard deviations.

        NaN entries (missing) are left out of each column's mean and standard deviation.
        ``sample_weight`` (frequency weights, one per row) weighs the rows: integer weights
        give the mean and standard deviation of the rows repeated that many times.

        ``common_scale=True`` divides every column by one scale instead, the root mean
        column variance (for spherical components, which are spherical in the user's
        units only if all features are scaled alike).
        """
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=float)[:, None] * ~np.isnan(X)
            values = np.nan_to_num(X)
            center = (w * values).sum(axis=0) / w.sum(axis=0)
            scale = np.sqrt((w * (values - center) ** 2).sum(axis=0) / w.sum(axis=0))
        elif np.isnan(X).any():  # missing entries: the observed values of each column
            center, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
        else:
            center, scale = X.mean(axis=0), X.std(axis=0)
        return cls._from_scale(center, scale, common_scale)

    @classmethod
    def from_moments(cls, center: np.ndarray, variance: np.ndarray, *,
                     common_scale: bool = False) -> Standardizer:
        """From the columns' means and variances (of data read in blocks, say), as :meth:`fit`."""
        return cls._from_scale(np.asarray(center, dtype=float),
                               np.sqrt(np.asarray(variance, dtype=float)), common_scale)

    @classmethod
    def _from_scale(cls, center: np.ndarray, scale: np.ndarray,
                    common_scale: bool) -> Standardizer:
        # A column constant up to rounding: keep it finite and let the scale prior handle it.
        tiny = scale <= 1e-12 * np.maximum(np.abs(center), 1.0)
        if common_scale:
            common = float(np.sqrt(np.mean(scale**2)))
            scale = np.full_like(scale, common if common > 0 and not tiny.all() else 1.0)
        else:
            scale = np.where(tiny, 1.0, scale)
        return cls(center=center, scale=scale)

    @classmethod
    def for_structure(cls, X: np.ndarray, covariance_type: str,
                      sample_weight: np.ndarray | None = None) -> Standardizer:
        """The standardisation a covariance structure is fitted on.

        Spherical components are spheres in the user's units only if every feature is
        scaled alike: "spherical" uses one common scale, the other structures (invariant to
        per-feature scaling) each column's standard deviation (the structure's
        :attr:`~bayesgmm.covariance.CovarianceStructure.common_scale`).
        """
        return cls.fit(X, common_scale=structure(covariance_type).common_scale,
                       sample_weight=sample_weight)

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
