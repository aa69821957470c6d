"""How a fit compiles: the PyTensor backend, chosen once per fit."""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from ..params import BACKENDS

__all__ = ["BLACKJAX_MAX_ROWS", "Compilation", "plan_compilation", "default_cores", "quiet_pymc"]


# Up to this many rows "auto" prefers blackjax, above it nutpie (see nuts.default_sampler), and
# nutpie and PyMC's sampler compile with JAX; above it with numba (see _nuts_backend).
BLACKJAX_MAX_ROWS = 3000


@contextmanager
def quiet_pymc(quiet: bool):
    """Silence PyMC's log messages (unless ``quiet`` is False) and PyTensor's BLAS notice.

    The notice says PyTensor's C backend has no BLAS; bayesgmm compiles with JAX (or numba),
    which bring their own, so it asks nothing of the user.
    """
    logger = logging.getLogger("pymc")
    old = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
            yield
    finally:
        logger.setLevel(old)


def _nuts_backend(backend: str, n_obs: int) -> str:
    """The compiler of nutpie and PyMC's sampler: numba on large data, else JAX.

    Large: above ``BLACKJAX_MAX_ROWS`` rows; ``backend="numba"`` or ``"c"`` ask for numba.
    numba runs the fused likelihood kernel (:mod:`bayesgmm.likelihood.kernels`), faster per
    point than JAX, and nutpie's numba callbacks are cached on disk
    (:mod:`bayesgmm.fitting.nutpie_driver`); JAX compiles faster, which wins on small data.
    The timings are in docs/fitting.md ("Why these defaults").
    """
    if backend in ("numba", "c"):  # nutpie has no C backend
        return "numba"
    if backend == "jax":
        return "jax"
    return "numba" if n_obs > BLACKJAX_MAX_ROWS else "jax"


def _pytensor_mode(backend: str) -> dict:
    """``compile_kwargs`` for PyMC's own compilations of a ``backend``."""
    if backend == "auto":
        try:
            import jax  # noqa: F401
        except ImportError:
            return {}
        backend = "jax"
    return {"mode": {"jax": "JAX", "numba": "NUMBA", "c": "CVM"}[backend]}


@dataclass(frozen=True)
class Compilation:
    """Every compile decision of one fit, made once by :func:`plan_compilation`.

    Attributes
    ----------
    compile_kwargs : dict
        Passed to PyMC's compilations: ``pm.sample``, VI and MAP.
    nuts_backend : {"jax", "numba"}
        The compiler of nutpie (numba: the cached callbacks of
        :mod:`bayesgmm.fitting.nutpie_driver`).
    shared_data : bool
        The model holds its data in a ``pm.Data`` container, so that numba's on-disk cache
        serves every data set of the same model structure.
    """

    compile_kwargs: dict
    nuts_backend: str
    shared_data: bool


def plan_compilation(backend: str, *, method: str, sampler: str, n_obs: int) -> Compilation:
    """How a fit of ``n_obs`` rows compiles, for a checked ``backend``, method and sampler.

    ``sampler`` is the one that runs (not "auto"). PyMC's sampler on large data compiles
    with numba even when the backend is "auto" and JAX is installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    kwargs = _pytensor_mode(backend)
    nuts_backend = _nuts_backend(backend, n_obs)
    if (method == "nuts" and sampler == "pymc" and nuts_backend == "numba"
            and kwargs.get("mode") == "JAX"):
        kwargs = {"mode": "NUMBA"}  # backend="auto" on large data
    shared = method == "nuts" and nuts_backend == "numba" and sampler in ("nutpie", "pymc")
    return Compilation(compile_kwargs=kwargs, nuts_backend=nuts_backend, shared_data=shared)


def default_cores(sampler: str, chains: int, compilation: Compilation) -> int:
    """Chains run at once when ``cores`` is not given.

    nutpie and blackjax run ``min(chains, cpu_count)`` chains in threads. PyMC's sampler runs
    them one after the other when it compiles with JAX (worker processes that import PyMC and
    JAX cost more than they save at the sizes JAX is chosen for) and in parallel processes
    when compiled by numba or C. numpyro vectorises the chains and ignores it.
    """
    parallel = min(chains, os.cpu_count() or 1)
    if sampler == "pymc" and compilation.compile_kwargs.get("mode") == "JAX":
        return 1
    return parallel
