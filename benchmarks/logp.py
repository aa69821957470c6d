"""Log-density + gradient: time per data point, bayesgmm's model vs ``pm.Mixture``.

Each function maps the unconstrained point to (log density, gradient) of the whole model
(priors and Jacobians included, as the samplers see it), at a point with distinct components.
The time per evaluation is the fastest of five batches (see
:func:`benchmarks.common.best_time`), divided by N.

Backends, and who uses them:

* ``jax``: JAX autodiff of PyMC's JAX log density (``pymc.sampling.jax.get_jaxified_logp``):
  bayesgmm's blackjax (the default), numpyro and nutpie samplers. Timed as those samplers run
  it: many evaluations inside one compiled ``jax.lax.fori_loop`` (no Python per evaluation).
* ``pytensor-jax``: PyTensor's symbolic gradient compiled in JAX mode: bayesgmm's PyMC sampler.
* ``pytensor-default``: PyTensor's default mode (numba here): ``pm.sample`` and nutpie on the
  textbook model, and bayesgmm's nutpie sampler above 3,000 rows. Both PyTensor backends
  are timed one Python call per evaluation, which adds the call overhead (tens of
  microseconds; it matters only at small N).

bayesgmm's likelihood is one fused Op (:mod:`bayesgmm.likelihood`: a numba kernel, and JAX code
with a closed-form gradient). References beside the models (:mod:`benchmarks.candidates`):
bayesgmm's model with its likelihood as a PyTensor graph (before the fused Op), with a
candidate log-likelihood that whitens all components with one matrix product, and that
likelihood written directly in JAX (no PyMC/PyTensor in between; likelihood only), with JAX's
autodiff gradient or with the closed-form gradient from weighted sufficient statistics.
"""

from __future__ import annotations

from .candidates import gemm_model, graph_model, handwritten_jax_logp_grad
from .common import K_DEFAULT, Section, best_time, failure, make_data, ratio
from .models import jax_logp_grad, ours_model, pytensor_logp_grad, textbook_model
from .sizes import Size

MODELS = {"bayesgmm": ours_model, "pm.Mixture": textbook_model,
          "bayesgmm, graph likelihood": graph_model, "candidate: one GEMM": gemm_model}
BACKENDS = ("jax", "pytensor-jax", "pytensor-default")
HANDWRITTEN = "hand-written JAX likelihood"
ANALYTIC = "hand-written JAX, analytic gradient"


def _compile(model_name: str, backend: str, Z):
    """``(step, evaluations per step, compile seconds)`` of one model on one backend."""
    n, d = Z.shape
    if model_name in (HANDWRITTEN, ANALYTIC):
        return handwritten_jax_logp_grad(Z, K_DEFAULT, analytic=model_name == ANALYTIC)
    model = MODELS[model_name](Z, K_DEFAULT)
    if backend == "jax":
        return jax_logp_grad(model, K_DEFAULT, d, n)
    mode = {"pytensor-jax": "JAX", "pytensor-default": None}[backend]
    if model_name == "pm.Mixture":  # compiled as a user of PyMC compiles it
        return pytensor_logp_grad(model, K_DEFAULT, d, mode)
    # bayesgmm's own models as bayesgmm.fit compiles them: numba without fastmath, so that
    # the draws do not depend on the state of the cache (bayesgmm.likelihood.ops.exact_numba).
    from bayesgmm.likelihood.ops import exact_numba

    with exact_numba():
        return pytensor_logp_grad(model, K_DEFAULT, d, mode)


def measure(model_name: str, backend: str, d: int, n: int, seed: int,
            seconds: float) -> dict:
    """Compile one log-density+gradient function and time it; failures are recorded."""
    try:
        X = make_data(n, d, K_DEFAULT, seed).X
        step, evals, compile_s = _compile(model_name, backend,
                                          (X - X.mean(axis=0)) / X.std(axis=0))
        per_eval = best_time(step, min_seconds=seconds) / evals
    except Exception as exc:  # one failed configuration is a row, not a crash
        return {"error": failure(exc)}
    return {"compile_s": compile_s, "us_per_eval": per_eval * 1e6,
            "ns_per_point": per_eval / n * 1e9}


def run(size: Size, opts) -> Section:
    d_ref, n_ref = size.logp_ref
    backends = [b for b in BACKENDS if opts.logp_backends is None or b in opts.logp_backends]
    section = Section(
        "logp", "Log-density + gradient per data point",
        f"K={K_DEFAULT}; fastest of 5 batches, {size.logp_seconds:g} s in all per function. "
        f"Backends: jax = JAX autodiff of PyMC's JAX log density (bayesgmm's blackjax, "
        f"numpyro, nutpie samplers), timed inside a compiled loop as those samplers run it; "
        f"pytensor-jax = PyTensor gradient in JAX mode (bayesgmm's "
        f"PyMC sampler); pytensor-default = PyTensor's default mode, numba (pm.sample and "
        f"nutpie on the textbook model; bayesgmm's nutpie above 3,000 rows), both timed one "
        f"Python call per evaluation. bayesgmm's likelihood is one fused Op "
        f"(bayesgmm/likelihood/); 'graph likelihood' is the same model with the likelihood as a "
        f"PyTensor graph, as before that Op. 'candidate: one GEMM' is bayesgmm's model with the "
        f"log-likelihood of benchmarks/candidates.py; the hand-written JAX likelihoods have no "
        f"priors and no PyTensor in between, their gradient by autodiff or in closed form "
        f"from weighted sufficient statistics."
        + ("" if opts.blas_threads is not None else
           " BLAS threads at the libraries' default: on a busy machine OpenBLAS's threads slow "
           "pm.Mixture on pytensor-default (its triangular solves call BLAS) by up to 20x; "
           "--blas-threads 1 removes that noise (see benchmarks/README.md)."))
    ref = section.table(f"All backends at D={d_ref}, N={n_ref}",
                        ["model", "backend", "compile s", "us per evaluation", "ns per point",
                         "vs pm.Mixture (same backend)", "status"])
    results = {}
    for backend in backends:
        names = list(MODELS) + ([HANDWRITTEN, ANALYTIC] if backend == "jax" else [])
        for name in names:
            res = measure(name, backend, d_ref, n_ref, opts.seed, size.logp_seconds)
            results[(name, backend)] = res
            opts.log(f"  logp {name}/{backend}: {res.get('ns_per_point', res.get('error'))}")
        for name in names:
            res = results[(name, backend)]
            ref.add(**{"model": name, "backend": backend, "compile s": res.get("compile_s"),
                       "us per evaluation": res.get("us_per_eval"),
                       "ns per point": res.get("ns_per_point"),
                       "vs pm.Mixture (same backend)": ratio(
                           res.get("ns_per_point"),
                           results[("pm.Mixture", backend)].get("ns_per_point")),
                       "status": res.get("error", "ok")})
    section.data["reference"] = results
    scaling_backend = "jax" if "jax" in backends else backends[0]
    for axis, values in (("N", size.logp_n), ("D", size.logp_d)):
        _scaling(section, axis, values, scaling_backend, size, opts, results)
    return section


def _scaling(section, axis, values, backend, size, opts, ref_results) -> None:
    """bayesgmm and pm.Mixture on ``backend``; bayesgmm also on numba (PyTensor's default
    mode, its nutpie backend for large data) when ``backend`` is another one; with
    ``logp_candidate_scaling``, bayesgmm's graph-level likelihood on ``backend`` too."""
    d_ref, n_ref = size.logp_ref
    fixed = f"D={d_ref}" if axis == "N" else f"N={n_ref}"
    numba_column = backend != "pytensor-default"
    table = section.table(
        f"Scaling in {axis} ({fixed}, backend {backend})",
        [axis, "bayesgmm ns/point", "pm.Mixture ns/point", "pm.Mixture / bayesgmm",
         "bayesgmm numba ns/point", "graph likelihood ns/point", "status"])
    points = sorted(set(values) | {n_ref if axis == "N" else d_ref})
    for value in points:
        d, n = (d_ref, value) if axis == "N" else (value, n_ref)
        models = [("bayesgmm", "ours", backend), ("pm.Mixture", "textbook", backend)]
        if numba_column:
            models.append(("bayesgmm", "numba", "pytensor-default"))
        if size.logp_candidate_scaling:
            models.append(("bayesgmm, graph likelihood", "graph", backend))
        row = {"numba": {}, "graph": {}}
        for name, key, model_backend in models:
            if (d, n) == (d_ref, n_ref) and (name, model_backend) in ref_results:
                row[key] = ref_results[(name, model_backend)]
            else:
                row[key] = measure(name, model_backend, d, n, opts.seed, size.logp_seconds)
        errors = [r["error"] for r in row.values() if "error" in r]
        table.add(**{axis: value, "bayesgmm ns/point": row["ours"].get("ns_per_point"),
                     "pm.Mixture ns/point": row["textbook"].get("ns_per_point"),
                     "pm.Mixture / bayesgmm": ratio(row["textbook"].get("ns_per_point"),
                                                    row["ours"].get("ns_per_point")),
                     "bayesgmm numba ns/point": row["numba"].get("ns_per_point"),
                     "graph likelihood ns/point": row["graph"].get("ns_per_point"),
                     "status": errors[0] if errors else "ok"})
        opts.log(f"  logp scaling {axis}={value}: {row['ours'].get('ns_per_point')}")
