"""Prediction over posterior draws, fast and in bounded memory.

:func:`posterior_predictive` gives, for every row of ``X``, the posterior mean of its
responsibilities, ``(1/S) sum_s P(z = k | x, theta_s)``, and its log posterior predictive
density, ``log (1/S) sum_s p(x | theta_s)``: what ``predict_proba``, ``predict`` and
``score_samples`` return. The NumPy versions (:func:`bayesgmm.likelihood.reference.
mean_responsibilities`, :func:`~bayesgmm.likelihood.reference.log_predictive_density`) hold
(draws, rows, K, D) intermediates and took 91 s for 1e5 rows x 200 draws; here the numba
kernel :func:`bayesgmm.likelihood.kernels.predictive_rows` runs one block of 64 rows
through every draw at a time, in threads over disjoint row ranges (the kernel releases the
GIL), with memory of a few arrays of (draws x 64) per thread besides the outputs.

Rows with missing entries (NaN) go through the NumPy reference, pattern by pattern; the
others through the kernel. Each row's result depends on that row alone, so splitting the
rows differently (threads, chunks, Dask blocks) gives the same numbers bit for bit.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .kernels import BLOCK, LOG_2PI, predictive_rows, student_t_log_norm
from .reference import (
    flat_draws,
    log_predictive_density,
    mean_responsibilities,
    responsibilities,
)

__all__ = ["PredictiveParameters", "posterior_predictive", "responsibility_draws",
           "default_threads"]

#: Rows per thread's task: large enough that a task's overhead (a few microseconds) is
#: negligible, small enough that the threads share the work evenly.
_TASK_ROWS = 32 * BLOCK
_NONE = np.zeros((0, 0, 0))


def default_threads() -> int:
    """Threads prediction uses by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PredictiveParameters:
    """The draws, in the kernel's form, computed once per fit and reused for every chunk.

    Parameters
    ----------
    weights : ndarray (..., K)
    means : ndarray (..., K, D)
    chols : ndarray (..., K, D, D)
        Lower Cholesky factors of the covariances (of the scale matrices for t components).
    dof : ndarray (..., K), optional
        Degrees of freedom of Student-t components.
    noise : NoiseTerm, optional
        A noise component.
    """

    def __init__(self, weights, means, chols, dof=None, noise=None):
        flat = flat_draws(np.asarray(weights, float), np.asarray(means, float),
                          np.asarray(chols, float), None if dof is None else
                          np.asarray(dof, float))
        self.weights, self.means, self.chols = flat[:3]
        self.dof = flat[3] if dof is not None else None
        self.noise = noise.flat() if noise is not None else None
        s, k, d = self.means.shape
        self.n_draws, self.n_components, self.n_features = s, k, d
        with np.errstate(divide="ignore"):
            log_weights = np.log(self.weights)
        self.prec = np.ascontiguousarray(np.linalg.inv(self.chols))
        log_det = np.log(np.diagonal(self.prec, axis1=-2, axis2=-1)).sum(axis=-1)
        if self.dof is None:
            norm = -0.5 * d * LOG_2PI
            self._dof = np.zeros((0, 0))
        else:
            norm = student_t_log_norm(self.dof, d)
            self._dof = np.ascontiguousarray(self.dof)
        self.consts = np.ascontiguousarray(log_weights + log_det + norm)
        self.means = np.ascontiguousarray(self.means)
        if self.noise is None:
            self._noise_log_weights = np.zeros(0)
        else:
            with np.errstate(divide="ignore"):
                self._noise_log_weights = np.log(self.noise.weights)

    @property
    def n_columns(self) -> int:
        """Columns of the responsibilities: K, or K + 1 with a noise component."""
        return self.n_components + (self.noise is not None)

    def run(self, X, first, stop, proba, log_density, noise_log_density, per_draw=_NONE):
        """The kernel on rows ``first:stop`` of a complete ``X`` (see ``predictive_rows``)."""
        predictive_rows(X, first, stop, self.consts, self.means, self.prec, self._dof,
                        self._noise_log_weights, noise_log_density, proba, log_density,
                        per_draw)

    def reference(self, X):
        """The NumPy reference's mean responsibilities and log density (rows with NaN)."""
        args = (X, self.weights, self.means, self.chols, self.dof, self.noise)
        return mean_responsibilities(*args), log_predictive_density(*args)


def _in_threads(n: int, n_threads: int | None, task) -> None:
    """``task(first, stop)`` over row ranges of :data:`_TASK_ROWS`, in threads."""
    threads = default_threads() if n_threads is None else max(1, int(n_threads))
    bounds = [(lo, min(n, lo + _TASK_ROWS)) for lo in range(0, n, _TASK_ROWS)]
    if threads == 1 or len(bounds) <= 1:
        task(0, n)
        return
    with ThreadPoolExecutor(min(threads, len(bounds))) as pool:
        for done in pool.map(lambda b: task(*b), bounds):
            del done


def _checked(X, params: PredictiveParameters) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != params.n_features:
        raise ValueError(f"X has shape {X.shape}; expected (n, {params.n_features}).")
    return X


def _noise_log_density(X, params: PredictiveParameters) -> np.ndarray:
    return (params.noise.region.log_density(X) if params.noise is not None
            else np.zeros(0))


def posterior_predictive(X, params: PredictiveParameters, *, n_threads: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean responsibilities (N, K or K + 1) and log predictive density (N,).

    Parameters
    ----------
    X : ndarray of shape (N, D)
        Rows to predict, in the units of the parameters; NaN marks a missing entry.
    params : PredictiveParameters
    n_threads : int, optional
        Threads over rows (default :func:`default_threads`; 1: this thread only).

    Returns
    -------
    proba : ndarray of shape (N, K), or (N, K + 1) with a noise component
    log_density : ndarray of shape (N,)
    """
    X = _checked(X, params)
    n = X.shape[0]
    proba = np.empty((n, params.n_columns))
    log_density = np.empty(n)
    missing = np.isnan(X).any(axis=1)
    if missing.any():
        rows = np.flatnonzero(missing)
        proba[rows], log_density[rows] = params.reference(X[rows])
        complete = np.flatnonzero(~missing)
        if complete.size:
            proba[complete], log_density[complete] = posterior_predictive(
                X[complete], params, n_threads=n_threads)
        return proba, log_density
    noise = _noise_log_density(X, params)
    _in_threads(n, n_threads, lambda a, b: params.run(X, a, b, proba, log_density, noise))
    return proba, log_density


def responsibility_draws(X, params: PredictiveParameters, *, n_threads: int | None = None
                         ) -> np.ndarray:
    """P(z_n = k | x_n, theta_s) for every draw: shape (S, N, K or K + 1).

    The kernel's version of :func:`bayesgmm.likelihood.reference.responsibilities` (rows
    with NaN go through that one).
    """
    X = _checked(X, params)
    n = X.shape[0]
    out = np.empty((params.n_draws, n, params.n_columns))
    missing = np.isnan(X).any(axis=1)
    if missing.any():
        rows = np.flatnonzero(missing)
        out[:, rows] = responsibilities(X[rows], params.weights, params.means, params.chols,
                                        params.dof, params.noise)
        complete = np.flatnonzero(~missing)
        if complete.size:
            out[:, complete] = responsibility_draws(X[complete], params, n_threads=n_threads)
        return out
    noise = _noise_log_density(X, params)
    proba = np.empty((n, params.n_columns))
    log_density = np.empty(n)
    _in_threads(n, n_threads, lambda a, b: params.run(X, a, b, proba, log_density, noise,
                                                      out[:, a:b]))
    return out
