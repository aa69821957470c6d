"""Log-density + gradient with missing entries, per observed entry, vs the complete-data kernel.

The requirement: at D=5, N=1e4, K=3 with 20% of the entries missing completely at random,
the log-likelihood and its gradient cost at most twice the complete-data kernel's time per
observed entry.

Timed here is the likelihood term alone, as :func:`bayesgmm.model.build_model` builds it,
without priors or transforms: for symbolic weights ``w`` (K,), means ``m`` (K, D) and lower
Cholesky factors ``c`` (K, D, D), the function ``(w, m, c) -> (ll.sum(), d/dw, d/dm, d/dc)``
compiled with ``pytensor.function`` in mode ``NUMBA`` (without fastmath, as ``bayesgmm.fit``
compiles: :func:`bayesgmm.likelihood.ops.exact_numba`) or ``JAX`` (64-bit), called from
Python at one fixed random parameter point (the JAX outputs are waited for). The same
approach as ``value_and_gradients`` in ``tests/test_likelihood_missing.py``.

* complete data: :func:`bayesgmm.likelihood.ops.mixture_log_likelihood` (the fused Op) on
  the full N x D data;
* missing data: :func:`bayesgmm.likelihood.missing.marginal_log_likelihood_graph` on the same
  data with a fraction of the entries set to NaN (seeded, independently per entry; a row
  left with nothing observed gets one of its entries back), with its ``graph``: ``fused``
  (the default: one Op for all patterns, :class:`bayesgmm.likelihood.ops.MaskedMixtureLogLik`),
  ``batched`` (one PyTensor graph for all patterns, N x K x D x D values; minibatches' term)
  or ``per pattern`` (one fused complete-data term per pattern; its graph, and its
  compilation, grow with the patterns).

Each case (backend, missing-data graph) runs in one process (a fresh one unless
``--no-isolate``, stopped after the size's timeout: a per-pattern graph with many patterns
can take minutes to compile), which compiles both functions and times them interleaved:
``repeats`` rounds, each one batch of calls of the complete-data function then one of the
missing-data function; the time per call is the median over the rounds, and the ratio is
that of the medians (both measured under the same load). Time per entry: per call divided
by N x D for complete data, by the number of observed entries for missing data.
"""

from __future__ import annotations

import statistics
from contextlib import nullcontext

import numpy as np

from .common import K_DEFAULT, Section, Stopwatch, case_label, make_data, ratio
from .sizes import TARGET_MISSING_RATIO, Size
from .worker import run_task

BACKENDS = ("numba", "jax")
MODES = {"numba": "NUMBA", "jax": "JAX"}
VARIANTS = ("fused", "batched", "per pattern")  # marginal_log_likelihood_graph(graph=...)
DEFAULT_VARIANT = "fused"
REPEATS = 7


def with_holes(Z: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``Z`` with each entry NaN with probability ``fraction`` (MCAR), every row keeping one."""
    rng = np.random.default_rng(seed)
    missing = rng.random(Z.shape) < fraction
    empty = np.flatnonzero(missing.all(axis=1))
    missing[empty, rng.integers(Z.shape[1], size=empty.size)] = False
    return np.where(missing, np.nan, Z)


def parameter_point(k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed random weights, means and lower Cholesky factors (well conditioned)."""
    rng = np.random.default_rng(seed + 1)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(size=(k, d))
    a = np.eye(d) + 0.3 * rng.normal(size=(k, d, d))
    chols = np.linalg.cholesky(a @ a.transpose(0, 2, 1) / d + 0.5 * np.eye(d))
    return weights, means, chols


def _compile(mode: str, k: int, d: int, loglik, point):
    """``(function, compile seconds)``: ``(w, m, c) -> (sum ll, gradients)``, the first call
    (at ``point``) included: ``pytensor.function`` returns before numba and JAX compile."""
    import pytensor
    import pytensor.tensor as pt

    from bayesgmm.likelihood.ops import exact_numba

    # Static shapes, as in the model (JAX needs them for the gradients of the sub-blocks).
    w = pt.vector("w", shape=(k,))
    m = pt.matrix("m", shape=(k, d))
    c = pt.tensor3("c", shape=(k, d, d))
    watch = Stopwatch()
    with exact_numba() if mode == "NUMBA" else nullcontext():
        total = loglik(w, m, c).sum()
        fn = pytensor.function([w, m, c], [total, *pytensor.grad(total, [w, m, c])],
                               mode=mode)
        _caller(fn, point, mode)()
    return fn, watch.seconds


def _caller(fn, point, mode: str):
    if mode != "JAX":
        return lambda: fn(*point)
    import jax

    return lambda: jax.block_until_ready(fn(*point))


def interleaved_times(fns: list, *, seconds: float, repeats: int = REPEATS) -> list[list[float]]:
    """Seconds per call of each function, one list of ``repeats`` batches each.

    Round r times a batch of each function in turn (about ``seconds / (repeats * len(fns))``
    per batch), so that the functions share the machine's load.
    """
    for fn in fns:
        fn()  # warm-up
    batch = seconds / (repeats * len(fns))
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, times in zip(fns, out, strict=True):
            calls = 0
            watch = Stopwatch()
            while calls == 0 or watch.seconds < batch:
                fn()
                calls += 1
            times.append(watch.seconds / calls)
    return out


def time_case(spec: dict) -> dict:
    """Task: compile and time the complete-data and the missing-data functions of one case."""
    import pytensor.tensor as pt

    from bayesgmm.likelihood.missing import marginal_log_likelihood_graph, missingness_patterns
    from bayesgmm.likelihood.ops import mixture_log_likelihood

    mode, k, d, n = spec["mode"], spec.get("k", K_DEFAULT), spec["d"], spec["n"]
    if mode == "JAX":
        import jax

        jax.config.update("jax_enable_x64", True)
    X = make_data(n, d, k, spec["seed"]).X
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    Zm = with_holes(Z, spec["fraction"], spec["seed"])
    n_patterns = len(missingness_patterns(Zm))
    point = parameter_point(k, d, spec["seed"])
    complete, complete_s = _compile(mode, k, d, lambda w, m, c: mixture_log_likelihood(
        pt.constant(Z), w, m, c, n_components=k, n_features=d), point)
    missing, missing_s = _compile(mode, k, d, lambda w, m, c: marginal_log_likelihood_graph(
        Zm, w, m, c, n_components=k, graph=spec["variant"]), point)
    # The missing-data value with nothing missing would equal the complete one; here only
    # check that it is finite.
    value = float(missing(*point)[0])
    if not np.isfinite(value):
        raise FloatingPointError(f"missing-data log-likelihood is {value}")
    t_complete, t_missing = interleaved_times(
        [_caller(complete, point, mode), _caller(missing, point, mode)],
        seconds=spec["seconds"])
    entries, observed = n * d, int(np.isfinite(Zm).sum())
    med_c, med_m = statistics.median(t_complete), statistics.median(t_missing)
    return {
        "patterns": n_patterns, "observed": observed, "entries": entries,
        "default": spec["variant"] == DEFAULT_VARIANT,
        "compile_complete_s": complete_s, "compile_missing_s": missing_s,
        "us_complete": med_c * 1e6, "us_missing": med_m * 1e6,
        "ns_complete": med_c / entries * 1e9, "ns_missing": med_m / observed * 1e9,
        "ratio": (med_m / observed) / (med_c / entries),
        "ratio_fastest": (min(t_missing) / observed) / (min(t_complete) / entries),
        "times_complete": t_complete, "times_missing": t_missing,
    }


def run(size: Size, opts) -> Section:
    d, n = size.missing_case
    k = K_DEFAULT
    pct = f"{size.missing_fraction:.0%}"
    backends = [b for b in BACKENDS
                if getattr(opts, "missing_backends", None) is None or b in opts.missing_backends]
    section = Section(
        "missing", "Missing entries: log-density + gradient per observed entry",
        f"{case_label(d, n, k)}, {pct} of the entries missing completely at random (seed "
        f"{opts.seed}; a row with nothing observed gets one entry back). The likelihood term "
        f"alone, (weights, means, Cholesky factors) -> (sum of the log-likelihood, its "
        f"gradients), compiled by pytensor.function in mode NUMBA (no fastmath, as "
        f"bayesgmm.fit) or JAX, one Python call per evaluation. 'complete' is the fused Op "
        f"(bayesgmm.likelihood.ops.mixture_log_likelihood) on the complete data; 'missing' "
        f"is bayesgmm.likelihood.missing.marginal_log_likelihood_graph with graph 'fused' "
        f"(the default: one Op for all patterns), 'batched' (one PyTensor graph, N x K x D x "
        f"D values) or 'per pattern' (one fused term per pattern). "
        f"Each case compiles and times both in one process, {REPEATS} interleaved rounds, "
        f"{size.missing_seconds:g} s in all; times are the medians of the rounds, ns per "
        f"entry = time per call / (N x D) for complete data, / observed entries for missing "
        f"data. Compile times include the first call and depend on the state of the numba "
        f"and PyTensor caches (the user's default ones). Target: ratio <= "
        f"{TARGET_MISSING_RATIO:g}.")
    table = section.table(
        f"{case_label(d, n, k)}, {pct} missing: per observed entry vs complete data",
        ["backend", "missing-data graph", "default here", "patterns", "observed entries",
         "compile s (complete)", "compile s (missing)", "us per call (complete)",
         "us per call (missing)", "ns per entry (complete)", "ns per observed entry",
         "ratio (missing / complete)", "ratio (fastest rounds)", "status"])
    results = {}
    for backend in backends:
        for variant in size.missing_variants:
            spec = {"task": "missing_case", "label": f"missing {backend}/{variant}",
                    "mode": MODES[backend], "variant": variant, "d": d, "n": n, "k": k,
                    "fraction": size.missing_fraction, "seed": opts.seed,
                    "seconds": size.missing_seconds}
            res = run_task(spec, isolate=opts.isolate, timeout=size.missing_timeout_s)
            section.notes += res.pop("warnings", [])
            if res.get("timed_out"):
                res["error"] = (f"skipped: not compiled and timed within "
                                f"{size.missing_timeout_s:g} s (stopped)")
            results[(backend, variant)] = res
            opts.log(f"  missing {backend}/{variant}: "
                     f"{res.get('ratio', res.get('error'))}")
            table.add(**{"backend": MODES[backend], "missing-data graph": variant,
                         "default here": res.get("default"), "patterns": res.get("patterns"),
                         "observed entries": res.get("observed"),
                         "compile s (complete)": res.get("compile_complete_s"),
                         "compile s (missing)": res.get("compile_missing_s"),
                         "us per call (complete)": res.get("us_complete"),
                         "us per call (missing)": res.get("us_missing"),
                         "ns per entry (complete)": res.get("ns_complete"),
                         "ns per observed entry": res.get("ns_missing"),
                         "ratio (missing / complete)": ratio(res.get("ns_missing"),
                                                             res.get("ns_complete")),
                         "ratio (fastest rounds)": res.get("ratio_fastest"),
                         "status": res.get("error", "ok")})
    section.data["results"] = results
    section.data["case"] = (d, n, k, size.missing_fraction)
    return section
