"""Shared pieces: result tables, timing, data, warnings capture, machine facts."""

from __future__ import annotations

import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

FAILED = "failed"
K_DEFAULT = 3
SEPARATION = 6.0


# ----------------------------------------------------------------------------- tables
@dataclass
class Table:
    """One table of a section: rows are dicts keyed by column name."""

    title: str
    columns: list[str]
    rows: list[dict] = field(default_factory=list)

    def add(self, **row) -> dict:
        self.rows.append(row)
        return row


@dataclass
class Target:
    """One target of the issue: the goal, what was measured, whether it was met."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured at this size
    detail: str = ""


@dataclass
class Section:
    """The result of one benchmark section."""

    key: str
    title: str
    description: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: dict = field(default_factory=dict)  # raw numbers other sections may use

    def table(self, title: str, columns: list[str]) -> Table:
        tab = Table(title, columns)
        self.tables.append(tab)
        return tab


def failure(exc: BaseException | str) -> str:
    """``failed: <reason>`` in one line of at most about 160 characters."""
    if isinstance(exc, BaseException):
        msg = f"{type(exc).__name__}: {exc}"
    else:
        msg = str(exc)
    msg = " ".join(msg.split())
    return f"{FAILED}: {msg[:150]}"


def is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
        and math.isfinite(float(x))


def ratio(num, den) -> float | str:
    """``num / den`` when both are finite positive numbers, else ``"n/a"``."""
    if is_number(num) and is_number(den) and float(den) > 0:
        return float(num) / float(den)
    return "n/a"


# ----------------------------------------------------------------------------- timing
class Stopwatch:
    """Wall-clock timer (``time.perf_counter``)."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def best_time(fn: Callable[[], object], *, min_seconds: float, repeats: int = 5) -> float:
    """Seconds per call: the fastest of ``repeats`` batches of ``min_seconds / repeats`` each.

    The fastest batch is the least disturbed by other work on the machine (timeit's rule).
    """
    fn()  # warm-up
    batch_seconds = min_seconds / repeats
    best = math.inf
    for _ in range(repeats):
        calls = 0
        watch = Stopwatch()
        while calls == 0 or watch.seconds < batch_seconds:
            fn()
            calls += 1
        best = min(best, watch.seconds / calls)
    return best


# ----------------------------------------------------------------------------- data
def make_data(n: int, d: int, k: int = K_DEFAULT, seed: int = 0):
    """Well-separated synthetic mixture with known truth (:func:`bayesgmm.datasets.make_mixture`).

    Means on a circle of radius ``SEPARATION`` component standard deviations (random in the
    dimensions above 2), unequal weights proportional to 1..K, random covariances.
    """
    from bayesgmm.datasets import make_mixture

    return make_mixture(int(n), int(k), int(d), separation=SEPARATION, random_state=seed)


def mixture_chunks(n: int, d: int, k: int, seed: int, rows_per_chunk: int = 100_000):
    """A mixture's truth and its n rows, made chunk by chunk (never an (n, d, d) array).

    The truth (weights, means, covariances) is :func:`make_data`'s mixture at a small N with
    the same seed. Returns ``(truth, chunks)``, ``chunks`` a generator of ``(first row,
    rows)``.
    """
    from bayesgmm.datasets import make_mixture

    truth = make_mixture(max(k * 100, 1000), k, d, separation=SEPARATION, random_state=seed)
    chols = np.linalg.cholesky(truth.covariances)
    rng = np.random.default_rng(seed)

    def chunks():
        for lo in range(0, n, rows_per_chunk):
            m = min(rows_per_chunk, n - lo)
            labels = rng.choice(k, size=m, p=truth.weights)
            rows = rng.normal(size=(m, d))
            for c in range(k):
                sel = labels == c
                rows[sel] = truth.means[c] + rows[sel] @ chols[c].T
            yield lo, rows

    return truth, chunks()


def case_label(d: int, n: int, k: int = K_DEFAULT) -> str:
    return f"D={d} N={n:.0e} K={k}".replace("e+0", "e")


def means_error(truth, weights: np.ndarray, means: np.ndarray) -> tuple[float, float]:
    """Largest Mahalanobis distance (true covariance) between fitted and true means, and the
    largest absolute weight error, after matching the components (Hungarian).
    """
    from scipy.optimize import linear_sum_assignment

    prec = np.linalg.inv(truth.covariances)  # (K, D, D)
    diff = means[:, None, :] - truth.means[None, :, :]  # (fitted, true, D)
    maha = np.sqrt(np.einsum("jkd,kde,jke->jk", diff, prec, diff))
    rows, cols = linear_sum_assignment(maha)
    return float(maha[rows, cols].max()), float(np.abs(weights[rows] - truth.weights[cols]).max())


# ----------------------------------------------------------------------------- warnings
@contextmanager
def captured(notes: list[str], label: str) -> Iterator[None]:
    """Catch every warning (short chains warn by design) and log it once into ``notes``.

    Also silences PyMC's and nutpie's log messages.
    """
    loggers = [logging.getLogger(name) for name in ("pymc", "pytensor", "jax", "nutpie")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    seen = set()
    for w in caught:
        key = (w.category.__name__, str(w.message)[:80])
        if key in seen:
            continue
        seen.add(key)
        first = " ".join(str(w.message).split())[:140]
        notes.append(f"{label}: {w.category.__name__}: {first}")


# ----------------------------------------------------------------------------- machine
PACKAGES = ("bayesgmm", "pymc", "pytensor", "arviz", "arviz-stats", "numpy", "scipy", "jax",
            "jaxlib", "numba", "nutpie", "numpyro", "blackjax", "scikit-learn", "xarray")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(n: int) -> None:
    """Cap BLAS/OpenMP threads at ``n``: here (threadpoolctl) and in child processes (env)."""
    for name in BLAS_ENV:
        os.environ[name] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n)  # stays in force for the rest of the process


def blas() -> str:
    """The BLAS libraries loaded (numpy, scipy) and their thread counts."""
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS too)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    libs = {f"{i['internal_api']} {i['version']} ({i.get('threading_layer', '?')}, "
            f"{i['num_threads']} threads)" for i in threadpool_info()}
    return "; ".join(sorted(libs)) or "none found"


def machine() -> dict[str, str]:
    ram = _ram_gib()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical cores": str(os.cpu_count()),
        "usable cores": str(usable),
        "RAM": "unknown" if ram is None else f"{ram:.1f} GiB",
        "BLAS": blas(),
        "platform": platform.platform(),
    }
