"""The uniform noise component: a constant density over the data's region.

A noise component (Banfield and Raftery 1993; mclust's ``noise`` initialisation) adds to
the mixture a background term of constant density ``1 / V`` with weight ``w_0``:
``p(x) = w_0 / V + sum_k w_k f_k(x)``, the ``w`` summing to 1. ``V`` is the volume of the
data's region, computed once from the fitted data and kept with the fit, so that new points
are scored with the same constant (as mclust's ``predict`` does; a point outside the region
still gets ``1 / V``). The regions:

``"box"``
    the axis-aligned bounding box of the data (the product of the features' ranges). With
    missing entries, a row's marginal noise density is that of the box's observed sides,
    ``1 / prod_{j observed} range_j``.
``"hypvol"``
    mclust's ``hypvol``: the smaller of the bounding box and the box of the data in its
    principal-component coordinates (which is tighter for correlated features).
``"hull"``
    the volume of the data's convex hull (SciPy's Qhull), the smallest convex region; only
    for up to :data:`HULL_MAX_FEATURES` features, where Qhull is practical.

This module knows nothing of PyMC models or fits: it computes the region's volume and the
noise term's log density per row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NOISE_REGIONS", "HULL_MAX_FEATURES", "NoiseRegion", "NoiseTerm", "noise_region"]

# The same as bayesgmm.params.NOISE_REGIONS (the likelihood layer imports no other layer;
# tests/test_params.py checks that they agree).
NOISE_REGIONS = ("box", "hypvol", "hull")
#: Qhull's cost grows exponentially with the dimension: beyond this many features the hull
#: is refused (use "box" or "hypvol").
HULL_MAX_FEATURES = 8


class NoiseRegion:
    """The noise component's region: its log volume, and the box's log side lengths.

    Parameters
    ----------
    kind : {"box", "hypvol", "hull"}
    log_volume : float
        Log of the region's volume, in the units of the data it was computed from.
    log_widths : ndarray of shape (D,)
        Log of the bounding box's side lengths (for rows with missing entries, "box" only).
    """

    def __init__(self, kind: str, log_volume: float, log_widths: np.ndarray):
        self.kind = kind
        self.log_volume = float(log_volume)
        self.log_widths = np.asarray(log_widths, dtype=float)

    def __repr__(self) -> str:
        return f"NoiseRegion({self.kind!r}, log_volume={self.log_volume:.6g})"

    def log_density(self, X: np.ndarray) -> np.ndarray:
        """Log of the noise density at each row of ``X`` (N,): ``-log V``.

        A row with missing entries (NaN) gets the box's marginal on its observed
        coordinates; other regions refuse such rows (their marginal is not constant).
        """
        X = np.asarray(X, dtype=float)
        out = np.full(X.shape[0], -self.log_volume)
        missing = np.isnan(X)
        rows = missing.any(axis=1)
        if rows.any():
            if self.kind != "box":
                raise ValueError(f"The noise region {self.kind!r} has no marginal density "
                                 f"for rows with missing entries: fit noise='box'.")
            out[rows] = -(~missing[rows] * self.log_widths).sum(axis=1)
        return out

    def rescaled(self, scale: np.ndarray) -> NoiseRegion:
        """The same region after dividing feature j by ``scale[j]`` (standardising)."""
        log_scale = np.log(np.broadcast_to(np.asarray(scale, float), self.log_widths.shape))
        return NoiseRegion(self.kind, self.log_volume - log_scale.sum(),
                           self.log_widths - log_scale)

    def sample(self, X: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points uniform over the bounding box of ``X``'s observed entries."""
        lo, hi = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
        return lo + (hi - lo) * rng.random((n, X.shape[1]))


def noise_region(X: np.ndarray, kind: str = "box") -> NoiseRegion:
    """The region of the noise component fitted to ``X`` (N, D), NaN for missing entries.

    Raises
    ------
    ValueError
        An unknown ``kind``, a feature of zero range (the region has no volume: drop the
        constant feature), missing entries with a region other than "box", or a hull in
        more than :data:`HULL_MAX_FEATURES` features or from too few points.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [2.0, 3.0], [1.0, 1.0]])
    >>> float(np.exp(noise_region(X, "box").log_volume))
    6.0
    >>> round(float(np.exp(noise_region(X[[0, 1, 2]], "hull").log_volume)), 12)
    3.0
    """
    if kind not in NOISE_REGIONS:
        raise ValueError(f"Unknown noise region {kind!r}; choose one of {NOISE_REGIONS} "
                         f"(or noise=True for 'box').")
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    with np.errstate(invalid="ignore"):
        widths = np.nanmax(X, axis=0) - np.nanmin(X, axis=0)
    flat = ~(widths > 0)
    if flat.any():
        raise ValueError(f"Feature(s) {np.flatnonzero(flat).tolist()} have a zero range, so "
                         f"the noise component's region has no volume: drop the constant "
                         f"feature(s), or fit without noise.")
    log_widths = np.log(widths)
    missing = np.isnan(X).any()
    if missing and kind != "box":
        raise ValueError(f"With missing entries the noise region must be 'box' (the only "
                         f"one whose marginal density on the observed entries is constant), "
                         f"got {kind!r}.")
    if kind == "box":
        return NoiseRegion(kind, log_widths.sum(), log_widths)
    if kind == "hypvol":
        centred = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        rotated = centred @ vt.T
        rot_widths = rotated.max(axis=0) - rotated.min(axis=0)
        rot = np.log(rot_widths).sum() if rot_widths.size == d and (rot_widths > 0).all() \
            else np.inf
        return NoiseRegion(kind, min(log_widths.sum(), rot), log_widths)
    if d > HULL_MAX_FEATURES:
        raise ValueError(f"The convex hull is practical up to {HULL_MAX_FEATURES} features; "
                         f"these data have {d}: use noise='box' or 'hypvol'.")
    if d == 1:
        return NoiseRegion(kind, log_widths.sum(), log_widths)
    if n <= d:
        raise ValueError(f"A convex hull in {d} dimensions needs more than {d} points, got "
                         f"{n}: use noise='box'.")
    from scipy.spatial import ConvexHull, QhullError

    try:
        volume = ConvexHull(X).volume
    except QhullError as err:  # flat data: all points in a hyperplane
        raise ValueError(f"The data's convex hull has no volume (the points lie in a "
                         f"hyperplane): use noise='box'. Qhull said: {err}") from None
    return NoiseRegion(kind, np.log(volume), log_widths)


class NoiseTerm(NamedTuple):
    """A fit's noise component per draw: its weights (S,) and its region."""

    weights: np.ndarray
    region: NoiseRegion

    def flat(self) -> NoiseTerm:
        """The weights flattened over their batch (draw) dimensions."""
        return NoiseTerm(np.asarray(self.weights, dtype=float).reshape(-1), self.region)

    def sliced(self, index) -> NoiseTerm:
        """The draws at ``index`` (of the flattened weights)."""
        return NoiseTerm(self.flat().weights[index], self.region)

    def log_joint(self, X: np.ndarray) -> np.ndarray:
        """Log w_0 + log(noise density) per draw and row: shape (S, N)."""
        with np.errstate(divide="ignore"):
            log_w = np.log(self.flat().weights)
        return log_w[:, None] + self.region.log_density(X)[None, :]
