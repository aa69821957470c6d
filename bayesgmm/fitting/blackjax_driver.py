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

Each chain runs Stan's window adaptation (step size and diagonal mass matrix) for ``tune``
steps, then ``draws`` NUTS steps, both in compiled ``jax.lax.scan`` calls of ``_CHUNK`` steps:
blackjax's ``window_adaptation(...).run`` is one compiled call over the whole warm-up, so
the warm-up is rebuilt here from blackjax's public pieces (:func:`_warmup_functions`; it
gives blackjax's result bit for bit), to be counted by the progress bar and stopped between
chunks. The pieces are compiled once and run for every chain, the chains in parallel daemon
threads. A compiled call cannot be interrupted, so the main thread waits for the compilation
and the chains in timed joins: Ctrl-C raises ``KeyboardInterrupt`` there at once, and the
chains stop after their current chunk of warm-up steps or draws.
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

    ``warmup`` runs in Python over compiled pieces, ``warmup.init(position)`` then
    ``warmup.chunk(carry, keys, slow, window_end, active)`` for each chunk of steps and
    ``warmup.final(carry)``: see :func:`_warmup_functions`. ``sample`` takes one NUTS step
    per key and returns ``(state, positions, stats)``: the draws are taken in chunks of
    ``_CHUNK`` steps, so a stop request is seen between chunks.
    """
    import blackjax
    import jax

    init, chunk, final, schedule = _warmup_functions(logdensity_fn, tune=tune,
                                                     target_accept=target_accept, dense=dense)

    def warmup(key, position):
        """The whole warm-up in one scan (the driver runs it in chunks instead)."""
        keys = jax.random.split(key, tune)
        carry = chunk(init(position), keys, *schedule, np.ones(tune, bool))
        return final(carry)

    warmup.init, warmup.chunk, warmup.final, warmup.schedule = init, chunk, final, schedule

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


def _warmup_functions(logdensity_fn, *, tune: int, target_accept: float, dense: bool):
    """Stan's window adaptation as ``init``, ``chunk`` and ``final``, to run in pieces.

    blackjax's ``window_adaptation(...).run`` is one compiled scan over the whole warm-up:
    nothing can report on it, or stop it, before it ends. This is the same algorithm, from
    blackjax's public pieces (its Stan schedule, dual averaging of the step size, Welford
    estimate of the inverse mass matrix, Stan's regularisation at the end of each slow
    window; step size 1 and identity mass matrix to start), with the loop left to the
    caller:

    - ``init(position) -> carry``;
    - ``chunk(carry, keys, slow, window_end, active) -> carry``: one NUTS step per key; the
      three boolean arrays are this chunk's slice of ``schedule`` (``slow``: the step
      feeds the mass-matrix estimate; ``window_end``: a slow window ends, the mass matrix
      is recomputed and the step size's averaging restarts) and ``active`` (False: the
      step is padding and leaves the carry unchanged, so that every chunk has the
      compiled length);
    - ``final(carry) -> (state, params, steps)``: the last state, ``{"step_size",
      "inverse_mass_matrix"}`` (the step size is the dual averaging's average, as
      blackjax and Stan use) and the leapfrog steps taken.

    ``schedule``: ``(slow, window_end)``, two boolean arrays of length ``tune``.
    """
    import blackjax
    import jax
    import jax.numpy as jnp
    from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
    from blackjax.adaptation.step_size import dual_averaging_adaptation
    from blackjax.adaptation.window_adaptation import build_schedule
    from blackjax.util import pytree_size

    mm_init, mm_update, mm_final = mass_matrix_adaptation(not dense)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)
    kernel = blackjax.nuts.build_kernel()
    stages = np.asarray(build_schedule(tune)).reshape(-1, 2) if tune else np.zeros((0, 2))
    schedule = (stages[:, 0] == 1, stages[:, 1] == 1)

    def init(position):
        state = blackjax.nuts.init(position, logdensity_fn)
        return state, da_init(1.0), mm_init(pytree_size(position)), jnp.zeros((), jnp.int64)

    def one_step(carry, xs):
        key, slow, window_end, active = xs

        def advance(carry):
            state, ss, mm, steps = carry
            state, info = kernel(key, state, logdensity_fn, jnp.exp(ss.log_step_size),
                                 mm.inverse_mass_matrix)
            mm = jax.lax.cond(slow, lambda m: mm_update(m, state.position), lambda m: m, mm)
            ss = da_update(ss, info.acceptance_rate)
            ss, mm = jax.lax.cond(window_end,
                                  lambda ss, mm: (da_init(da_final(ss)), mm_final(mm)),
                                  lambda ss, mm: (ss, mm), ss, mm)
            return state, ss, mm, steps + info.num_integration_steps

        return jax.lax.cond(active, advance, lambda c: c, carry), None

    def chunk(carry, keys, slow, window_end, active):
        carry, _ = jax.lax.scan(one_step, carry, (keys, slow, window_end, active))
        return carry

    def final(carry):
        state, ss, mm, steps = carry
        return state, {"step_size": da_final(ss), "inverse_mass_matrix":
                       mm.inverse_mass_matrix}, steps

    return init, chunk, final, schedule


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
        ETA (:class:`bayesgmm.progress.Bar`), counted chunk by chunk, and each chain's
        share done after it.

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

    tune = int(tune)
    slow, window_end = warmup.schedule
    warm_chunk = min(_CHUNK, tune) or 1

    def warmup_pieces(c):
        """Chain ``c``'s warm-up in chunks of ``warm_chunk`` steps, the last one padded."""
        keys = jax.random.split(warmup_keys[c], tune) if tune else None
        for lo in range(0, tune, warm_chunk):
            n = min(warm_chunk, tune - lo)
            pad = warm_chunk - n
            yield n, (jax.numpy.concatenate([keys[lo:lo + n], keys[:pad]]),
                      np.r_[slow[lo:lo + n], np.zeros(pad, bool)],
                      np.r_[window_end[lo:lo + n], np.zeros(pad, bool)],
                      np.r_[np.ones(n, bool), np.zeros(pad, bool)])

    def compile_chain():
        # Compile one chain once, then run the chains in threads (XLA releases the GIL).
        # Measured on 2 cores, 2 chains x (1000 + 1000): compiling the vmapped chains took
        # about 13 s against 6.5 s for one chain, and running them about 1.5 s against
        # 0.75 s in two threads (1.2-1.6 s one after the other).
        # The warm-up and the draws are compiled pieces (in chunks, so that the bar counts
        # them and the chains can stop after an interrupt); XLA compiles them at the same
        # time, in threads, so that the split costs no extra wall time on two cores.
        from concurrent.futures import ThreadPoolExecutor

        init_l = jax.jit(warmup.init).lower(starts[0])
        carry = jax.eval_shape(warmup.init, starts[0])
        chunk_args = (jax.random.split(warmup_keys[0], warm_chunk),
                      *(np.zeros(warm_chunk, bool),) * 3)
        chunk_l = jax.jit(warmup.chunk).lower(carry, *chunk_args)
        final_l = jax.jit(warmup.final).lower(carry)
        state, params, _ = jax.eval_shape(warmup.final, carry)
        sample_l = jax.jit(sample).lower(state, params, sample_keys[0][:chunk])
        with ThreadPoolExecutor(2) as pool:
            return tuple(pool.map(lambda lowered: lowered.compile(),
                                  (chunk_l, sample_l, init_l, final_l)))

    # XLA's compilation holds the main thread for seconds: wait for it where SIGINT reaches.
    with step("NUTS (blackjax): compiling the warm-up and the draws", progressbar):
        chunk_c, sample_c, init_c, final_c = wait_interruptibly(compile_chain)
    bar = Bar(chains * (tune + draws), f"NUTS (blackjax), {chains} chain(s) x "
              f"({tune} warm-up + {draws} draws)", progressbar, heartbeat=1.0)
    per_chain = [0] * chains
    warmed = []

    def count(c, n):
        """Count ``n`` steps of chain ``c``; the note gives each chain's share and phase."""
        per_chain[c] += n
        shares = " ".join(f"{100 * k // (tune + draws)}%" for k in per_chain)
        phase = f"{len(warmed)}/{chains} warmed up" if warmed else "warming up"
        bar.update(n, note=f"per chain {shares}; {phase}")

    count(0, 0)

    def run_chain(c, stop):
        carry = init_c(starts[c])
        for n, args in warmup_pieces(c):
            if stop.is_set():
                return None
            carry = chunk_c(carry, *args)
            count(c, n)
        state, params, tune_steps = final_c(carry)
        warmed.append(c)
        count(c, 0)
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
            count(c, min(chunk, draws - lo))
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
