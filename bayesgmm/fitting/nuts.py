"""NUTS through PyMC's sampler, nutpie, numpyro or blackjax, on the same model."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pymc as pm
import xarray as xr

from ..covariance import COLLINEAR_EIGENVALUE, covariance_names
from ..model import point_from_params, unpack_point
from ..progress import library_bars_work, say, step
from ..seeds import draw_seed
from .compile import BLACKJAX_MAX_ROWS, Compilation, default_cores, quiet_pymc
from .interrupt import reraise_interrupts, wait_interruptibly
from .modes import chain_log_density, lagging_chains, restart_points
from .start import jittered

__all__ = ["ADAPTERS", "NutsSettings", "collinear", "default_sampler",
           "require_sampler", "run_nuts", "draws_from_posterior"]


def draws_from_posterior(post: xr.Dataset, k: int, d: int,
                         covariance_type: str = "full") -> dict[str, np.ndarray]:
    """Weights, means and Cholesky factors (chain, draw, ...) of the model's variables.

    And ``dof`` (chain, draw, K) when the model has Student-t components with free degrees
    of freedom, ``noise_weight`` (chain, draw) when it has a noise component (``weights``
    are then the components' shares of the rest).

    ``post`` holds ``weights``, ``mu`` and the covariance variables, as the fitters return
    them.
    """
    names = ["weights", "mu"] + covariance_names(covariance_type, k)
    if "dof" in post:  # Student-t components with free dof
        names.append("dof")
    if "noise_weight" in post:  # a noise component
        names.append("noise_weight")
    point = {name: post[name].to_numpy() for name in names}
    return unpack_point(point, k, d, covariance_type)


def collinear(X) -> bool:
    """Whether the columns of ``X`` are nearly collinear.

    The smallest eigenvalue of their correlation matrix is under
    :data:`~bayesgmm.covariance.COLLINEAR_EIGENVALUE` (the first five columns of
    scikit-learn's breast cancer data give 0.0014, separated blobs 0.07-0.9):
    ``default_sampler`` then takes nutpie, whose low-rank mass matrix adapts to the
    correlations. With missing entries (NaN), the correlations are pairwise-complete.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2 or X.shape[0] < 3:
        return False
    if np.isnan(X).any():  # missing entries: pairwise-complete correlations
        masked = np.ma.masked_invalid(X)
        if not (masked.std(axis=0).filled(0.0) > 0).all():
            return False
        corr = np.ma.corrcoef(masked, rowvar=False).filled(0.0)
        return bool(np.linalg.eigvalsh(corr)[0] < COLLINEAR_EIGENVALUE)
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
    mass matrix follows the posterior's correlations, where blackjax's diagonal one needs
    many times the leapfrog steps. The measurements behind the choice are in
    docs/fitting.md ("Why these defaults") and benchmarks/RESULTS-geometry.md.
    """
    import importlib.util

    if n_obs is None and X is not None:
        n_obs = len(X)
    small = n_obs is None or n_obs <= BLACKJAX_MAX_ROWS
    if small and X is not None and collinear(X):  # (above, nutpie is the choice anyway)
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
                           target_accept=s.target_accept, seed=s.seed, cores=s.cores,
                           progressbar=s.progressbar)


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
             progressbar: bool, repair_modes: bool = False, max_rounds: int = 2) -> dict:
    """NUTS with ``sampler`` from ``start`` jittered per chain, repairing lagging chains.

    ``repair_modes``: after sampling, chains whose mean log density is more than
    :data:`~bayesgmm.fitting.modes.MODE_GAP_NATS` below the best chain's are sampled again
    (the same tuning and draws) from states of the best chain, for at most ``max_rounds``
    rounds (see :mod:`bayesgmm.fitting.modes`).

    Returns ``{"draws": weights, means and Cholesky factors per draw, "sample_stats": ...,
    "modes": one record per chain and round}`` (the form
    :func:`bayesgmm.fitting.result.assemble` takes).
    """
    k, d = start.means.shape
    initvals = [jittered(start, rng) for _ in range(chains)]
    # The libraries' own bars where they work (bayesgmm draws blackjax's); in Jupyter
    # without ipywidgets they would print warnings: there, bayesgmm's lines only.
    bars = progressbar and (sampler == "blackjax" or library_bars_work())
    settings = NutsSettings(
        draws=draws, tune=tune, chains=chains,
        cores=default_cores(sampler, chains, compilation) if cores is None else cores,
        target_accept=target_accept, seed=draw_seed(rng), progressbar=bars,
        compilation=compilation)
    what = f"NUTS ({sampler}), {chains} chain(s) x ({tune} warm-up + {draws} draws)"
    say(f"{what}: compiling and sampling", progressbar and sampler != "blackjax")
    with quiet_pymc(not progressbar), step(what, progressbar):
        posterior, stats = ADAPTERS[sampler](model, initvals, settings)
        out = {"draws": draws_from_posterior(posterior, k, d, start.covariance_type),
               "sample_stats": stats, "modes": []}
        for round_ in range(max_rounds + 1):
            log_density = chain_log_density(out["sample_stats"])
            if log_density is None or chains < 2:
                break
            lagging = lagging_chains(log_density) if repair_modes and round_ < max_rounds \
                else np.zeros(0, int)
            mean_w = np.sort(out["draws"]["weights"].mean(axis=1), axis=-1)[:, ::-1]
            out["modes"] += [{"chain": c, "round": round_,
                              "mean_log_density": float(log_density[c].mean()),
                              "weights": mean_w[c], "restarted": bool(c in lagging)}
                             for c in range(chains)]
            if not lagging.size:
                break
            best = int(np.argmax(log_density.mean(axis=1)))
            points = restart_points(out["draws"], best, lagging.size)
            again = replace(settings, chains=int(lagging.size), seed=draw_seed(rng),
                            cores=min(settings.cores, int(lagging.size)))
            say(f"mode repair: chain(s) {lagging.tolist()} lag the best chain's log density; "
                f"sampling them again from its states", progressbar)
            posterior, stats = ADAPTERS[sampler](
                model, [point_from_params(w, m, c, start.order_by, start.covariance_type, nu,
                                          w0)
                        for w, m, c, nu, w0 in points], again)
            new = draws_from_posterior(posterior, k, d, start.covariance_type)
            for name, values in list(out["draws"].items()):
                values = np.array(values)  # the sampler's arrays may be read-only
                values[lagging] = new[name]
                out["draws"][name] = values
            out["sample_stats"] = _replace_chains(out["sample_stats"], stats, lagging)
    return out


def _replace_chains(stats: xr.Dataset, new: xr.Dataset, chains: np.ndarray) -> xr.Dataset:
    """``stats`` with the given chains' values taken from ``new`` (chains 0.. in order).

    A statistic that ``new`` lacks, or has in another shape, is dropped: a chain's values
    must come from its own run.
    """
    out = {}
    for name, da in stats.data_vars.items():
        if name not in new or new[name].shape[1:] != da.shape[1:]:
            continue
        values = da.to_numpy().copy()
        values[chains] = new[name].to_numpy().astype(values.dtype)
        out[name] = (da.dims, values)
    return xr.Dataset(out, coords=stats.coords, attrs=stats.attrs)
