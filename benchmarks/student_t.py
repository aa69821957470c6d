"""t-mixture log-density + gradient per point, against the Gaussian kernel (issue 19).

The requirement: at D=5, N=1e4, K=3 the log-likelihood of a mixture of multivariate Student-t
components and its gradient cost at most 1.5 times the Gaussian mixture kernel's time per
point.

Timed here is the likelihood term alone, without priors or transforms: for symbolic weights
``w`` (K,), means ``m`` (K, D), lower Cholesky factors ``c`` (K, D, D) and (t only) degrees of
freedom ``nu`` (K,), the functions

* Gaussian: ``(w, m, c) -> (ll.sum(), d/dw, d/dm, d/dc)`` with
  :func:`bayesgmm.likelihood.ops.mixture_log_likelihood` (the fused Op);
* t: ``(w, m, c, nu) -> (ll.sum(), d/dw, d/dm, d/dc, d/dnu)`` with
  :func:`bayesgmm.likelihood.ops.student_t_mixture_log_likelihood`,

both on the same standardised data (a constant of the graph) with static shapes, compiled with
``pytensor.function`` in mode ``NUMBA`` (without fastmath, as ``bayesgmm.fit`` compiles:
:func:`bayesgmm.likelihood.ops.exact_numba`) or ``JAX`` (64-bit), called from Python at one
fixed random parameter point (the same weights, means and factors for both; every component
with the size's degrees of freedom; the JAX outputs are waited for). The t log-likelihood's
value there is checked against :func:`scipy.stats.multivariate_t` (``shape`` = c c^T), and
reported as a relative error.

Each backend runs in one process (a fresh one unless ``--no-isolate``, stopped after the
size's timeout), which compiles both functions and times them interleaved, as
:mod:`benchmarks.missing` does: ``repeats`` rounds, each one batch of calls of the Gaussian
function then one of the t function; the time per call is the median over the rounds, and the
ratio is that of the medians (both measured under the same load). Time per point: per call
divided by N.
"""

from __future__ import annotations

import statistics
from contextlib import nullcontext

import numpy as np

from .common import K_DEFAULT, Section, Stopwatch, case_label, make_data, ratio
from .missing import MODES, REPEATS, _caller, interleaved_times, parameter_point
from .sizes import TARGET_STUDENT_T_RATIO, Size
from .worker import run_task

BACKENDS = ("numba", "jax")
# A relative error of the t value against scipy above this is reported in the notes.
VALUE_TOLERANCE = 1e-8


def _compile(mode: str, inputs: list, loglik, point: tuple):
    """``(function, compile seconds, outputs at point)``: ``inputs -> (sum ll, its gradients
    in the inputs)``, the first call (at ``point``) included.

    ``pytensor.function`` returns before numba and JAX compile: both compile at the first
    call (7 s of numba's here at D=2, with its caches warm, against 0.3 s for
    ``pytensor.function``).
    """
    import pytensor

    from bayesgmm.likelihood.ops import exact_numba

    watch = Stopwatch()
    with exact_numba() if mode == "NUMBA" else nullcontext():
        total = loglik(*inputs).sum()
        fn = pytensor.function(inputs, [total, *pytensor.grad(total, inputs)], mode=mode)
    outputs = _caller(fn, point, mode)()
    return fn, watch.seconds, outputs


def reference_log_likelihood(Z: np.ndarray, weights: np.ndarray, means: np.ndarray,
                             chols: np.ndarray, dof: np.ndarray) -> float:
    """Sum over the rows of the t-mixture log-likelihood, by :func:`scipy.stats.multivariate_t`."""
    from scipy.special import logsumexp
    from scipy.stats import multivariate_t

    comps = np.stack([np.log(w) + multivariate_t(loc=mu, shape=c @ c.T, df=nu).logpdf(Z)
                      for w, mu, c, nu in zip(weights, means, chols, dof, strict=True)], axis=1)
    return float(logsumexp(comps, axis=1).sum())


def time_case(spec: dict) -> dict:
    """Task: compile and time the Gaussian and the t-mixture functions of one backend."""
    import pytensor.tensor as pt

    from bayesgmm.likelihood.ops import mixture_log_likelihood, student_t_mixture_log_likelihood

    mode, k, d, n = spec["mode"], spec.get("k", K_DEFAULT), spec["d"], spec["n"]
    if mode == "JAX":
        import jax

        jax.config.update("jax_enable_x64", True)
    X = make_data(n, d, k, spec["seed"]).X
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    point = parameter_point(k, d, spec["seed"])
    dof = np.full(k, float(spec["dof"]))
    # Static shapes, as in the model (JAX needs them).
    w = pt.vector("w", shape=(k,))
    m = pt.matrix("m", shape=(k, d))
    c = pt.tensor3("c", shape=(k, d, d))
    nu = pt.vector("nu", shape=(k,))
    gauss, gauss_s, _ = _compile(mode, [w, m, c], lambda w, m, c: mixture_log_likelihood(
        pt.constant(Z), w, m, c, n_components=k, n_features=d), point)
    student, student_s, outputs = _compile(
        mode, [w, m, c, nu], lambda w, m, c, nu: student_t_mixture_log_likelihood(
            pt.constant(Z), w, m, c, nu, n_components=k, n_features=d), (*point, dof))
    value = float(outputs[0])
    grads_finite = all(np.all(np.isfinite(g)) for g in outputs[1:])
    if not (np.isfinite(value) and grads_finite):
        raise FloatingPointError(f"t-mixture log-likelihood {value}, gradients finite: "
                                 f"{grads_finite}")
    reference = reference_log_likelihood(Z, *point, dof)
    rel_error = abs(value - reference) / abs(reference)
    t_gauss, t_student = interleaved_times(
        [_caller(gauss, point, mode), _caller(student, (*point, dof), mode)],
        seconds=spec["seconds"])
    med_g, med_t = statistics.median(t_gauss), statistics.median(t_student)
    return {
        "compile_gauss_s": gauss_s, "compile_t_s": student_s,
        "us_gauss": med_g * 1e6, "us_t": med_t * 1e6,
        "ns_gauss": med_g / n * 1e9, "ns_t": med_t / n * 1e9,
        "ratio": med_t / med_g, "ratio_fastest": min(t_student) / min(t_gauss),
        "value_t": value, "value_scipy": reference, "rel_error": rel_error,
        "times_gauss": t_gauss, "times_t": t_student,
    }


def run(size: Size, opts) -> Section:
    d, n = size.student_t_case
    k = K_DEFAULT
    dof = size.student_t_dof
    chosen = getattr(opts, "student_t_backends", None)
    backends = [b for b in BACKENDS if chosen is None or b in chosen]
    section = Section(
        "student_t", "Student-t mixture: log-density + gradient per point vs the Gaussian kernel",
        f"{case_label(d, n, k)} (seed {opts.seed}, standardised data), every component with "
        f"{dof:g} degrees of freedom. The likelihood term alone, (weights, means, Cholesky "
        f"factors[, degrees of freedom]) -> (sum of the log-likelihood, its gradients, the "
        f"degrees of freedom's included for t), compiled by pytensor.function in mode NUMBA "
        f"(no fastmath, as bayesgmm.fit) or JAX, one Python call per evaluation, at the same "
        f"fixed random parameter point. 'Gaussian' is the fused Op "
        f"(bayesgmm.likelihood.ops.mixture_log_likelihood); 't' is "
        f"bayesgmm.likelihood.ops.student_t_mixture_log_likelihood, its value checked against "
        f"scipy.stats.multivariate_t (shape = c c^T). Each backend compiles and times both in "
        f"one process, {REPEATS} interleaved rounds, {size.student_t_seconds:g} s in all; "
        f"times are the medians of the rounds, ns per point = time per call / N. Compile "
        f"times include the first call and depend on the state of the numba and PyTensor "
        f"caches (the user's default ones). Target (issue 19): ratio <= "
        f"{TARGET_STUDENT_T_RATIO:g}.")
    table = section.table(
        f"{case_label(d, n, k)}, dof {dof:g}: t-mixture vs Gaussian kernel, per point",
        ["backend", "compile s (Gaussian)", "compile s (t)", "us per call (Gaussian)",
         "us per call (t)", "ns per point (Gaussian)", "ns per point (t)",
         "ratio (t / Gaussian)", "ratio (fastest rounds)", "t value rel. error vs scipy",
         "status"])
    results = {}
    for backend in backends:
        spec = {"task": "student_t_case", "label": f"student_t {backend}",
                "mode": MODES[backend], "d": d, "n": n, "k": k, "dof": dof, "seed": opts.seed,
                "seconds": size.student_t_seconds}
        res = run_task(spec, isolate=opts.isolate, timeout=size.student_t_timeout_s)
        section.notes += res.pop("warnings", [])
        if res.get("timed_out"):
            res["error"] = (f"skipped: not compiled and timed within "
                            f"{size.student_t_timeout_s:g} s (stopped)")
        if res.get("rel_error", 0.0) > VALUE_TOLERANCE:
            section.notes.append(
                f"student_t {backend}: the t log-likelihood {res['value_t']!r} differs from "
                f"scipy's {res['value_scipy']!r} by {res['rel_error']:.2g} (relative)")
        results[backend] = res
        opts.log(f"  student_t {backend}: {res.get('ratio', res.get('error'))}")
        table.add(**{"backend": MODES[backend],
                     "compile s (Gaussian)": res.get("compile_gauss_s"),
                     "compile s (t)": res.get("compile_t_s"),
                     "us per call (Gaussian)": res.get("us_gauss"),
                     "us per call (t)": res.get("us_t"),
                     "ns per point (Gaussian)": res.get("ns_gauss"),
                     "ns per point (t)": res.get("ns_t"),
                     "ratio (t / Gaussian)": ratio(res.get("ns_t"), res.get("ns_gauss")),
                     "ratio (fastest rounds)": res.get("ratio_fastest"),
                     "t value rel. error vs scipy": res.get("rel_error"),
                     "status": res.get("error", "ok")})
    section.data["results"] = results
    section.data["case"] = (d, n, k)
    section.data["dof"] = dof
    return section
