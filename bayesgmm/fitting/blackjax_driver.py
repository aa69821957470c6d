"""NUTS with blackjax on the JAX log density of a PyMC model.

PyMC 6.4 has a blackjax path (``pymc.sampling.jax.sample_jax_nuts(nuts_sampler="blackjax")``),
but it passes ``progress_bar`` on to the NUTS kernel, which blackjax 1.7 rejects
(``TypeError: build_kernel.<locals>.kernel() got an unexpected keyword argument
'progress_bar'``). This module drives blackjax itself and leaves everything model-specific to
PyMC:

- the log density (with the transforms' Jacobian) is PyMC's, compiled to JAX by
  :func:`pymc.sampling.jax.get_jaxified_logp`;
- each chain starts at the unconstrained image of its constrained initial values, computed by
  PyMC's initial-point machinery (:func:`pymc.initial_point.make_initial_point_fn`);
- the draws are mapped back to the constrained scale (and the deterministics computed, as
  ``pm.sample`` stores them) by the graph of ``model.free_RVs + model.deterministics`` as a
  function of ``model.value_vars``, compiled to JAX by
  :func:`pymc.sampling.jax.get_jaxified_graph`: no inverse transform is written here.

Each chain runs Stan-style window adaptation (step size and diagonal mass matrix) for ``tune``
steps in one compiled call, then ``draws`` NUTS steps in compiled ``jax.lax.scan`` calls of
``_CHUNK`` steps. Both functions are compiled once and run for every chain, the chains in
parallel daemon threads. A compiled call cannot be interrupted, so the main thread waits for
the compilation and the chains in timed joins: Ctrl-C raises ``KeyboardInterrupt`` there at
once, and the chains stop after their current call (the warm-up, or one chunk of draws).
"""

from __future__ import annotations

import os
import queue
import threading

import numpy as np
import xarray as xr

from ..progress import Bar, step
from .interrupt import abandon, wait_for, wait_interruptibly

__all__ = ["sample_blackjax"]

_STATS = ("diverging", "tree_depth", "n_steps", "acceptance_rate", "energy", "lp", "step_size")


def _initial_positions(model, initvals: list[dict]) -> list[np.ndarray]:
    """Unconstrained start of every chain, one array (chains, ...) per value variable."""
    from pymc.initial_point import make_initial_point_fn

    names = [v.name for v in model.value_vars]
    per_chain = []
    for point in initvals:
        ipfn = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                     return_transformed=True)
        # Without jitter the seed plays no part: the point is the override, transformed.
        ip = ipfn(0)
        per_chain.append([np.asarray(ip[name], dtype=float) for name in names])
    return [np.stack(arrays) for arrays in zip(*per_chain, strict=True)]


def _chain_functions(logdensity_fn, *, tune: int, target_accept: float, dense: bool = False):
    """``warmup(key, position) -> (state, params, steps)`` and ``sample(state, params, keys)``.

    ``steps``: the leapfrog steps of the whole warm-up.

    ``dense``: adapt a dense inverse mass matrix (the draws' covariance) instead of its
    diagonal.

    ``sample`` takes one NUTS step per key and returns ``(state, positions, stats)``: the
    draws are taken in chunks of ``_CHUNK`` steps, so a stop request is seen between chunks.
    """
    import blackjax
    import jax
    from blackjax.adaptation.base import get_filter_adapt_info_fn

    def warmup(key, position):
        adaptation = blackjax.window_adaptation(
            blackjax.nuts, logdensity_fn, is_mass_matrix_diagonal=not dense,
            target_acceptance_rate=target_accept,
            # Keep only the leapfrog steps of each warm-up step (their total is reported).
            adaptation_info_fn=get_filter_adapt_info_fn(info_keys={"num_integration_steps"}))
        (state, params), info = adaptation.run(key, position, num_steps=tune)
        return state, params, info.info.num_integration_steps.sum()

    def sample(state, params, keys):
        step = blackjax.nuts(logdensity_fn, **params).step

        def one_step(state, key):
            state, info = step(key, state)
            stats = {
                "diverging": info.is_divergent,
                "tree_depth": info.num_trajectory_expansions,
                "n_steps": info.num_integration_steps,
                "acceptance_rate": info.acceptance_rate,
                "energy": info.energy,
                "lp": state.logdensity,
            }
            return state, (state.position, stats)

        state, (positions, stats) = jax.lax.scan(one_step, state, keys)
        return state, positions, stats

    return warmup, sample


#: Draws per compiled call: after a KeyboardInterrupt the chains' threads stop within one
#: chunk instead of running all their draws in the background.
_CHUNK = 100


def _run_chains(run_chain, chains: int, workers: int) -> list:
    """``run_chain(c, stop)`` for every chain in ``workers`` daemon threads.

    The main thread waits in timed waits, where a SIGINT reaches it; it then sets ``stop``
    (each chain ends after its current compiled call) and raises ``KeyboardInterrupt``
    without waiting for them: a compiled call cannot be interrupted (the interpreter joins
    them at exit, see :func:`bayesgmm._interrupt.abandon`).
    """
    stop = threading.Event()
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for c in range(chains):
        todo.put(c)
    results: list = [None] * chains
    errors: list[BaseException] = []

    def worker(done):
        try:
            while not stop.is_set():
                try:
                    c = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[c] = run_chain(c, stop)
                except BaseException as exc:  # handed to the main thread
                    errors.append(exc)
                    stop.set()
        finally:
            done.set()

    done = [threading.Event() for _ in range(max(1, min(workers, chains)))]
    for i, event in enumerate(done):
        threading.Thread(target=worker, args=(event,), name=f"bayesgmm-blackjax-{i}",
                         daemon=True).start()
    try:
        for event in done:
            wait_for(event)
    except KeyboardInterrupt:
        stop.set()
        abandon(done)
        raise
    if errors:
        raise errors[0]
    return results


def _dims(model, rv, shape: tuple[int, ...]) -> tuple[str, ...]:
    dims = model.named_vars_to_dims.get(rv.name)
    if dims is None or len(dims) != len(shape):
        dims = tuple(f"{rv.name}_dim_{i}" for i in range(len(shape)))
    return tuple(dims)


def sample_blackjax(
    model,
    initvals: list[dict],
    *,
    draws: int,
    tune: int,
    chains: int,
    target_accept: float,
    seed: int,
    cores: int | None = None,
    dense_mass_matrix: bool = False,
    progressbar: bool = False,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Sample a PyMC model with blackjax's NUTS after window adaptation.

    Parameters
    ----------
    model : pymc.Model
        A model whose free variables are all continuous.
    initvals : list of dict
        One start per chain: constrained values keyed by free variable name.
    draws : int
        Draws kept per chain.
    tune : int
        Warm-up (adaptation) steps per chain, discarded.
    chains : int
        Number of chains; must equal ``len(initvals)``.
    target_accept : float
        Target acceptance rate of the step-size adaptation.
    seed : int
        Seed of the sampler; it fixes the result.
    cores : int, optional
        Chains run at once, one per thread (default: ``min(chains, cpu_count)``).
    dense_mass_matrix : bool, default False
        Adapt a dense mass matrix (the posterior's correlations) instead of a diagonal one.
        It is estimated from few draws in the warm-up's first windows, which then take long
        trajectories: measured, it cost more warm-up than it saved (docs/fitting.md, "Why
        these defaults"), so the default stays diagonal.
    progressbar : bool, default False
        Report the compilation, then one bar over all chains' warm-up and draws with an
        ETA (:class:`bayesgmm.progress.Bar`): a chain's warm-up is one compiled call, so
        it counts when it ends; its draws count chunk by chunk.

    Returns
    -------
    posterior : xarray.Dataset
        One variable per free variable (constrained) and per deterministic, with dims
        (chain, draw, *the variable's dims*).
    sample_stats : xarray.Dataset
        ``diverging``, ``tree_depth``, ``n_steps``, ``acceptance_rate``, ``energy``, ``lp``
        (the log density, Jacobian included) and ``step_size``, each (chain, draw); the
        attributes: ``mass_matrix`` ("dense" or "diag") and ``tune_n_steps`` (the leapfrog
        steps of all chains' warm-ups).
    """
    import jax

    # Importing pymc.sampling.jax also registers its JAX conversion of PyMC's parameter checks.
    from pymc.sampling.jax import get_jaxified_graph, get_jaxified_logp

    if len(initvals) != chains:
        raise ValueError(f"Need one initial point per chain: {chains} chains, "
                         f"{len(initvals)} initial points.")
    # A function of the list of value variables' arrays; with the default
    # negative_logp=True it returns the log density itself (not its negative).
    logp_fn = get_jaxified_logp(model)
    positions = _initial_positions(model, initvals)
    warmup, sample = _chain_functions(logp_fn, tune=int(tune),
                                      target_accept=float(target_accept),
                                      dense=bool(dense_mass_matrix))
    draws = int(draws)
    keys = jax.random.split(jax.random.key(int(seed)), chains)
    warmup_keys, sample_keys = [], []
    for key in keys:
        warmup_key, sample_key = jax.random.split(key)
        warmup_keys.append(warmup_key)
        sample_keys.append(jax.random.split(sample_key, draws))
    starts = [[p[c] for p in positions] for c in range(chains)]
    chunk = min(_CHUNK, draws)

    def compile_chain():
        # Compile one chain once, then run the chains in threads (XLA releases the GIL).
        # Measured on 2 cores, 2 chains x (1000 + 1000): compiling the vmapped chains took
        # about 13 s against 6.5 s for one chain, and running them about 1.5 s against
        # 0.75 s in two threads (1.2-1.6 s one after the other).
        # The warm-up and the draws are two functions (the draws in chunks, so that the
        # chains can stop after an interrupt); XLA compiles them at the same time, in two
        # threads, so that the split costs no extra wall time on two cores.
        from concurrent.futures import ThreadPoolExecutor

        warmup_l = jax.jit(warmup).lower(warmup_keys[0], starts[0])
        state, params, _ = jax.eval_shape(warmup, warmup_keys[0], starts[0])
        sample_l = jax.jit(sample).lower(state, params, sample_keys[0][:chunk])
        with ThreadPoolExecutor(2) as pool:
            warmup_c, sample_c = pool.map(lambda lowered: lowered.compile(), (warmup_l, sample_l))
        return warmup_c, sample_c

    # XLA's compilation holds the main thread for seconds: wait for it where SIGINT reaches.
    with step("NUTS (blackjax): compiling the warm-up and the draws", progressbar):
        warmup_c, sample_c = wait_interruptibly(compile_chain)
    # A chain's warm-up is one compiled call: the bar's clock runs on (heartbeat) until it
    # ends, and its draws then count chunk by chunk.
    bar = Bar(chains * (int(tune) + draws), f"NUTS (blackjax), {chains} chain(s) x "
              f"({int(tune)} warm-up + {draws} draws)", progressbar, heartbeat=1.0)
    bar.note = "warming up"
    warmed = []

    def run_chain(c, stop):
        state, params, tune_steps = warmup_c(warmup_keys[c], starts[c])
        warmed.append(c)
        bar.update(int(tune), note=f"{len(warmed)}/{chains} warmed up")
        pieces = []
        for lo in range(0, draws, chunk):
            if stop.is_set():
                return None
            chunk_keys = sample_keys[c][lo:lo + chunk]
            short = chunk - chunk_keys.shape[0]
            if short:  # the last chunk: pad it to the compiled length, drop the extra draws
                chunk_keys = jax.numpy.concatenate([chunk_keys, sample_keys[c][:short]])
            state, chunk_positions, chunk_stats = sample_c(state, params, chunk_keys)
            pieces.append(jax.device_get((chunk_positions, chunk_stats)))
            bar.update(min(chunk, draws - lo))
        out_positions, out_stats = jax.tree.map(
            lambda *xs: np.concatenate(xs)[:draws], *pieces)
        out_stats["step_size"] = np.full(draws, float(params["step_size"]))
        out_stats["tune_n_steps"] = int(tune_steps)
        return out_positions, out_stats

    workers = min(chains, os.cpu_count() or 1) if cores is None else int(cores)
    try:
        outs = _run_chains(run_chain, chains, workers)
    finally:
        bar.close()
    raw, stats = jax.tree.map(lambda *xs: np.stack(xs), *outs)

    stored = list(model.free_RVs) + list(model.deterministics)
    constrain = get_jaxified_graph(inputs=model.value_vars,
                                   outputs=model.replace_rvs_by_values(stored))
    values = wait_interruptibly(jax.jit(jax.vmap(jax.vmap(lambda *x: constrain(*x)))), *raw)

    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    sample_dims = ("chain", "draw")
    data = {}
    for rv, value in zip(stored, values, strict=True):
        value = np.asarray(value)
        dims = _dims(model, rv, value.shape[2:])
        data[rv.name] = (sample_dims + dims, value)
        for dim, size in zip(dims, value.shape[2:], strict=True):
            model_coord = model.coords.get(dim)
            coords.setdefault(dim, np.asarray(model_coord) if model_coord is not None
                              else np.arange(size))
    posterior = xr.Dataset(data, coords=coords)
    sample_stats = xr.Dataset(
        {name: (sample_dims, np.asarray(stats[name])) for name in _STATS},
        coords={"chain": coords["chain"], "draw": coords["draw"]},
        attrs={"mass_matrix": "dense" if dense_mass_matrix else "diag",
               "tune_n_steps": int(np.sum(stats["tune_n_steps"]))},
    )
    return posterior, sample_stats
