"""NUTS through PyMC's sampler, nutpie, numpyro or blackjax, on the same model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import xarray as xr

from ..covariance import covariance_names
from ..model import unpack_point
from ..seeds import draw_seed
from .compile import BLACKJAX_MAX_ROWS, Compilation, default_cores, quiet_pymc
from .interrupt import reraise_interrupts, wait_interruptibly
from .start import jittered

__all__ = ["ADAPTERS", "COLLINEAR_EIGENVALUE", "NutsSettings", "collinear", "default_sampler",
           "require_sampler", "run_nuts", "draws_from_posterior"]


def draws_from_posterior(post: xr.Dataset, k: int, d: int,
                         covariance_type: str = "full") -> dict[str, np.ndarray]:
    """Weights, means and Cholesky factors (chain, draw, ...) of the model's variables.

    ``post`` holds ``weights``, ``mu`` and the covariance variables, as the fitters return
    them.
    """
    names = ["weights", "mu"] + covariance_names(covariance_type, k)
    point = {name: post[name].to_numpy() for name in names}
    return unpack_point(point, k, d, covariance_type)


#: Data whose correlation matrix has an eigenvalue under this have nearly collinear features
#: (two features correlated 0.99 give 0.01; the first five columns of scikit-learn's breast
#: cancer data give 0.0014, separated blobs 0.07-0.9): ``default_sampler`` then takes nutpie,
#: whose low-rank mass matrix adapts to the correlations.
COLLINEAR_EIGENVALUE = 0.01


def collinear(X) -> bool:
    """Whether the columns of ``X`` are nearly collinear (see ``COLLINEAR_EIGENVALUE``)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2 or X.shape[0] < 3:
        return False
    sd = X.std(axis=0)
    if not (sd > 0).all():
        return False
    corr = np.corrcoef(X, rowvar=False)
    return bool(np.linalg.eigvalsh(corr)[0] < COLLINEAR_EIGENVALUE)


def default_sampler(n_obs: int | None = None, X=None) -> str:
    """The fastest installed sampler for ``n_obs`` rows of data ``X``.

    blackjax up to ``BLACKJAX_MAX_ROWS`` rows (compilation dominates there, and JAX
    compiles fastest), nutpie above (the numba likelihood kernel, and an adaptation that
    needs fewer gradients per draw), each falling back to the other, then to PyMC's own.
    Nearly collinear features (:func:`collinear`) take nutpie at every size: its low-rank
    mass matrix follows the posterior's correlations (8.9 leapfrog steps per draw on
    breast cancer's first five columns, where blackjax's diagonal one took 224). The
    timings behind the choice are in docs/fitting.md ("Why these defaults").
    """
    import importlib.util

    if n_obs is None and X is not None:
        n_obs = len(X)
    small = n_obs is None or n_obs <= BLACKJAX_MAX_ROWS
    if X is not None and collinear(X):
        small = False
    for sampler in (("blackjax", "nutpie") if small else ("nutpie", "blackjax")):
        if importlib.util.find_spec(sampler) is not None:
            return sampler
    return "pymc"


def require_sampler(sampler: str) -> None:
    """Raise an ImportError naming the extra to install when a sampler is missing."""
    if sampler == "pymc":
        return
    import importlib.util

    if importlib.util.find_spec(sampler) is None:
        raise ImportError(
            f"sampler={sampler!r} needs the {sampler} package, which is not installed. "
            f"Install it with: pip install 'bayesgmm[{sampler}]' (or 'bayesgmm[all]')."
        )


@dataclass(frozen=True)
class NutsSettings:
    """What every NUTS adapter is asked to run (all checked, ``cores`` resolved)."""

    draws: int
    tune: int
    chains: int
    cores: int
    target_accept: float
    seed: int
    progressbar: bool
    compilation: Compilation


def _sample_pymc(model, initvals: list[dict], s: NutsSettings) -> tuple[xr.Dataset, xr.Dataset]:
    idata = pm.sample(
        draws=s.draws, tune=s.tune, chains=s.chains, cores=s.cores,
        random_seed=s.seed, initvals=initvals, init="adapt_diag",
        target_accept=s.target_accept, progressbar=s.progressbar,
        compute_convergence_checks=False, compile_kwargs=s.compilation.compile_kwargs,
        model=model, quiet=not s.progressbar,
    )
    return idata["posterior"].to_dataset(), idata["sample_stats"].to_dataset()


#: nutpie's mass-matrix adaptation ("diag" or "low_rank", nutpie's ``adaptation``
#: argument): low-rank adapts to the posterior's strongest correlations (docs/fitting.md,
#: "Why these defaults").
NUTPIE_ADAPTATION = "low_rank"


def _sample_nutpie(model, initvals: list[dict], s: NutsSettings) -> tuple[xr.Dataset, xr.Dataset]:
    import nutpie

    # nutpie's default jitter (uniform(-1, 1) on every unconstrained value) throws chains
    # out of the EM basin: start every chain at the EM solution instead.
    if s.compilation.nuts_backend == "numba":
        from .nutpie_driver import compile_numba

        compiled = compile_numba(model, initvals[0])
    else:
        compiled = nutpie.compile_pymc_model(
            model, backend="jax", gradient_backend="jax",
            initial_points=initvals[0], jitter_rvs=set())
    # Not blocking: nutpie's blocking call returns the trace so far on Ctrl-C.
    background = nutpie.sample(
        compiled, draws=s.draws, tune=s.tune, chains=s.chains, seed=s.seed, cores=s.cores,
        progress_bar=s.progressbar, target_accept=s.target_accept, save_warmup=False,
        adaptation=NUTPIE_ADAPTATION, blocking=False)
    try:
        idata = background.wait()
    except BaseException:
        background.cancel()  # stops nutpie's sampling threads
        raise
    return idata["posterior"].to_dataset(), idata["sample_stats"].to_dataset()


def _sample_numpyro(model, initvals: list[dict],
                    s: NutsSettings) -> tuple[xr.Dataset, xr.Dataset]:
    from pymc.sampling.jax import sample_jax_nuts

    # One compiled call that cannot be interrupted: run it in a thread and wait where
    # SIGINT reaches (on Ctrl-C it is abandoned and runs to its end).
    idata = wait_interruptibly(lambda: sample_jax_nuts(
        draws=s.draws, tune=s.tune, chains=s.chains, target_accept=s.target_accept,
        random_seed=s.seed, initvals=initvals, jitter=False, model=model,
        progressbar=s.progressbar, chain_method="vectorized",
        compute_convergence_checks=False, nuts_sampler="numpyro",
        idata_kwargs={"log_likelihood": False}))
    return idata["posterior"].to_dataset(), idata["sample_stats"].to_dataset()


def _sample_blackjax(model, initvals: list[dict],
                     s: NutsSettings) -> tuple[xr.Dataset, xr.Dataset]:
    # PyMC 6.4's own blackjax path fails with blackjax 1.7 (it hands the kernel a
    # progress_bar argument); bayesgmm drives blackjax itself.
    from .blackjax_driver import sample_blackjax

    return sample_blackjax(model, initvals, draws=s.draws, tune=s.tune, chains=s.chains,
                           target_accept=s.target_accept, seed=s.seed, cores=s.cores)


#: One adapter per sampler, one interface: ``(model, initvals, settings)`` to the posterior
#: (the model's variables, constrained, with dims (chain, draw, ...)) and the sampler's
#: statistics, as two ``xarray.Dataset``.
ADAPTERS = {
    "pymc": _sample_pymc,
    "nutpie": _sample_nutpie,
    "numpyro": _sample_numpyro,
    "blackjax": _sample_blackjax,
}


@reraise_interrupts
def run_nuts(model, start, *, sampler: str, draws: int, tune: int, chains: int,
             cores: int | None, target_accept: float, rng, compilation: Compilation,
             progressbar: bool) -> dict:
    """NUTS with ``sampler`` from the EM start jittered per chain.

    Returns ``{"draws": weights, means and Cholesky factors per draw, "sample_stats": ...}``
    (the form :func:`bayesgmm.fitting.result.assemble` takes).
    """
    k, d = start.means.shape
    initvals = [jittered(start, rng) for _ in range(chains)]
    settings = NutsSettings(
        draws=draws, tune=tune, chains=chains,
        cores=default_cores(sampler, chains, compilation) if cores is None else cores,
        target_accept=target_accept, seed=draw_seed(rng), progressbar=progressbar,
        compilation=compilation)
    with quiet_pymc(not progressbar):
        posterior, stats = ADAPTERS[sampler](model, initvals, settings)
    return {"draws": draws_from_posterior(posterior, k, d, start.covariance_type),
            "sample_stats": stats}
