"""The issue's targets, judged on the numbers of this run (never asserted by the tests).

A target is judged only where the run measured the size it names; otherwise the nearest
measurement is shown and the result reads "not measured at this size".
"""

from __future__ import annotations

from .common import Section, Target, case_label, is_number, ratio
from .profile import TRACE, XLA
from .sizes import (
    OUTOFCORE_CASE,
    PREDICT_CASE,
    RECOVERY_TOLERANCE,
    TARGET_COLD_SECONDS,
    TARGET_MINIBATCH_SECONDS,
    TARGET_MISSING_RATIO,
    TARGET_NS_PER_POINT,
    TARGET_NUTS_SECONDS,
    TARGET_NUTS_SPEEDUP,
    TARGET_OUTOFCORE_MB,
    TARGET_OUTOFCORE_SECONDS,
    TARGET_PREDICT_MB,
    TARGET_PREDICT_SECONDS,
    TARGET_REALDATA_RATIO,
    TARGET_STUDENT_T_RATIO,
    Size,
)

NUTS_CASE = (5, 10_000)
COMPILE_STEPS = ("  PyTensor -> JAX log density", TRACE, XLA, "  nutpie compile")
LOGP_D = 5
MINIBATCH_CASE = (10, 1_000_000, 10)
COLD_CASE = (5, 10_000)
MISSING_CASE = (5, 10_000, 3, 0.2)  # D, N, K, fraction of the entries missing
STUDENT_T_CASE = (5, 10_000, 3)  # D, N, K


def _times(x: float, goal: float) -> str:
    return f"{x / goal:.1f}x the target" if is_number(x) else ""


def nuts_targets(section: Section | None, size: Size) -> list[Target]:
    name_t = f"converged posterior, {case_label(*NUTS_CASE)}"
    name_r = "speed-up vs textbook model with nutpie (same run)"
    goal_t = f"<= {TARGET_NUTS_SECONDS:g} s wall incl. compilation"
    goal_r = f">= {TARGET_NUTS_SPEEDUP:g}x"
    if section is None:
        return [Target(name_t, goal_t, "section not run", None),
                Target(name_r, goal_r, "section not run", None)]
    results, default = section.data["results"], section.data["default_sampler"]
    d, n = size.target_case
    at_target = (d, n) == NUTS_CASE
    ours = results.get((d, n, "bayesgmm", default), {})
    ok = ours.get("status") == "converged"
    where = "" if at_target else f" at {case_label(d, n)}"
    measured = (f"{ours['total_s']:.1f} s ({default}){where}" if ok else
                f"{ours.get('status', 'not run')} ({default}){where}")
    best = _best_ours(results, d, n)
    detail = _times(ours.get("total_s"), TARGET_NUTS_SECONDS) if ok else ""
    if best:
        detail += f"; fastest bayesgmm sampler: {best[0]} {best[1]:.1f} s"
    t1 = Target(name_t, goal_t, measured,
                (ok and ours["total_s"] <= TARGET_NUTS_SECONDS) if at_target else None,
                detail.strip("; "))
    theirs = results.get((d, n, "pm.Mixture", "nutpie"))
    if theirs is None:
        t2 = Target(name_r, goal_r, "textbook nutpie not run", None)
    else:
        both = ok and theirs.get("status") == "converged"
        r = (theirs["total_s"] / ours["total_s"]
             if is_number(theirs.get("total_s")) and is_number(ours.get("total_s")) else None)
        measured = "n/a" if r is None else f"{r:.2f}x ({default}){where}"
        detail = (f"textbook nutpie {theirs.get('total_s') or 0:.1f} s vs bayesgmm "
                  f"{ours.get('total_s') or 0:.1f} s")
        if not both:
            detail += "; not both converged: " + ("textbook " + str(theirs.get("status"))
                                                  if ok else "bayesgmm did not converge")
        t2 = Target(name_r, goal_r, measured,
                    (both and r >= TARGET_NUTS_SPEEDUP) if at_target and r else None, detail)
    return [t1, t2]


def _best_ours(results, d, n):
    done = [(key[3], res["total_s"]) for key, res in results.items()
            if key[:3] == (d, n, "bayesgmm") and res.get("status") == "converged"]
    return min(done, key=lambda x: x[1]) if done else None


def default_logp_backend(n_obs: int) -> str:
    """The logp section's backend that bayesgmm's default sampler runs at ``n_obs`` rows."""
    from bayesgmm.fitting.compile import plan_compilation
    from bayesgmm.fitting.nuts import default_sampler

    if default_sampler(n_obs) == "nutpie" and plan_compilation(
            "auto", method="nuts", sampler="nutpie", n_obs=n_obs).nuts_backend == "numba":
        return "pytensor-default"
    return "jax"


def logp_target(section: Section | None, size: Size) -> Target:
    name = f"log-density+gradient per point, D={LOGP_D}, K=3"
    goal = f"<= {TARGET_NS_PER_POINT:g} ns"
    if section is None:
        return Target(name, goal, "section not run", None)
    ref = section.data["reference"]
    d, n = size.logp_ref
    backend = default_logp_backend(n)
    if ("bayesgmm", backend) not in ref:
        backend = "jax"
    ours = ref.get(("bayesgmm", backend), {})
    ns = ours.get("ns_per_point")
    if not is_number(ns):
        return Target(name, goal, ours.get("error", "not measured"), None)
    others = {k[1]: v["ns_per_point"] for k, v in ref.items()
              if k[0] == "bayesgmm" and is_number(v.get("ns_per_point"))}
    best_backend = min(others, key=others.get)
    detail = (f"{_times(ns, TARGET_NS_PER_POINT)}; fastest backend for bayesgmm: "
              f"{best_backend} {others[best_backend]:.0f} ns")
    for label in ("bayesgmm, graph likelihood", "candidate: one GEMM",
                  "hand-written JAX likelihood",
                  "hand-written JAX, analytic gradient"):
        cands = {k[1]: v["ns_per_point"] for k, v in ref.items()
                 if k[0] == label and is_number(v.get("ns_per_point"))}
        if cands:
            b = min(cands, key=cands.get)
            detail += f"; {label}: {cands[b]:.0f} ns ({b})"
    return Target(name, goal, f"{ns:.0f} ns ({backend}, the default sampler's) at N={n}",
                  ns <= TARGET_NS_PER_POINT if d == LOGP_D else None, detail)


def minibatch_target(section: Section | None, size: Size) -> Target:
    name = f"minibatch ADVI, D={MINIBATCH_CASE[0]} N=1e6 K={MINIBATCH_CASE[2]}"
    goal = (f"<= {TARGET_MINIBATCH_SECONDS:g} s, means recovered (Mahalanobis <= "
            f"{RECOVERY_TOLERANCE:g})")
    if section is None:
        return Target(name, goal, "section not run", None)
    res = next((r for r in section.data["results"]
                if tuple(r["case"]) == size.minibatch_case and r["batch"]), {})
    if "error" in res or not res:
        return Target(name, goal, res.get("error", "not run"), None)
    d, n, k = size.minibatch_case
    where = "" if size.minibatch_case == MINIBATCH_CASE else f" at {case_label(d, n, k)}"
    recovered = res["mean_error"] <= RECOVERY_TOLERANCE
    measured = (f"{res['wall_s']:.1f} s, mean error {res['mean_error']:.3f} "
                f"({'recovered' if recovered else 'not recovered'}){where}")
    detail = (f"{_times(res['wall_s'], TARGET_MINIBATCH_SECONDS)}; EM start "
              f"{res.get('em_s') or 0:.1f} s, VI {res.get('vi_s') or 0:.1f} s, "
              f"{res.get('iterations')} iterations")
    met = (res["wall_s"] <= TARGET_MINIBATCH_SECONDS and recovered) \
        if size.minibatch_case == MINIBATCH_CASE else None
    return Target(name, goal, measured, met, detail)


def cold_target(section: Section | None, size: Size) -> Target:
    name = f"first fit, fresh process, empty caches, {case_label(*COLD_CASE)}"
    goal = f"<= {TARGET_COLD_SECONDS:g} s"
    if section is None:
        return Target(name, goal, "section not run", None)
    res = next((r for r in section.data.get("results", []) if r["task"] == "cold_fit"), {})
    if "error" in res or not res:
        return Target(name, goal, res.get("error", "not run"), None)
    total = res["import_s"] + res["fit_s"]
    at_target = size.cold_case == COLD_CASE and not size.cold_fit
    settings = ", ".join(f"{k}={v!r}" for k, v in size.cold_fit.items()) or "defaults"
    where = "" if at_target else f" at {case_label(*size.cold_case)}, {settings}"
    top = sorted(res["stages"], key=lambda s: -s[1])[:3]
    detail = (f"{_times(total, TARGET_COLD_SECONDS)}; import {res['import_s']:.1f} s, fit "
              f"{res['fit_s']:.1f} s; largest steps: "
              + ", ".join(f"{label.strip()} {s:.1f} s" for label, s in top))
    return Target(name, goal, f"{total:.1f} s{where}",
                  total <= TARGET_COLD_SECONDS if at_target else None, detail)


def evaluate(sections: dict[str, Section], size: Size) -> list[Target]:
    return (nuts_targets(sections.get("nuts"), size)
            + [logp_target(sections.get("logp"), size),
               minibatch_target(sections.get("vi"), size),
               cold_target(sections.get("cold"), size),
               realdata_target(sections.get("realdata"), size),
               missing_target(sections.get("missing"), size),
               student_t_target(sections.get("student_t"), size),
               predict_target(sections.get("predict"), size),
               outofcore_target(sections.get("outofcore"), size)])


def outofcore_target(section: Section | None, size: Size) -> Target:
    name = f"minibatch ADVI from a zarr store, {case_label(*OUTOFCORE_CASE)} (issue 22)"
    goal = (f"< {TARGET_OUTOFCORE_SECONDS:g} s and < {TARGET_OUTOFCORE_MB:g} MB peak RSS, "
            f"means recovered (Mahalanobis <= {RECOVERY_TOLERANCE})")
    if section is None:
        return Target(name, goal, "section not run", None)
    res = section.data["result"]
    if not is_number(res.get("wall_s")):
        return Target(name, goal, res.get("error", "not measured"), False)
    at_target = tuple(section.data["case"]) == OUTOFCORE_CASE
    where = "" if at_target else f" at {case_label(*section.data['case'])}"
    recovered = res["mean_error"] <= RECOVERY_TOLERANCE
    met = (res["wall_s"] < TARGET_OUTOFCORE_SECONDS and res["peak_mb"] < TARGET_OUTOFCORE_MB
           and recovered)
    return Target(name, goal, f"{res['wall_s']:.0f} s, {res['peak_mb']:.0f} MB, mean error "
                  f"{res['mean_error']:.3f}{where}", met if at_target else None,
                  f"{res['iterations']} iterations, converged: {res['converged']}; store "
                  f"{res['store_mb']:.0f} MB written in {res['write_s']:.0f} s")


def predict_target(section: Section | None, size: Size) -> Target:
    n, s, k, d = PREDICT_CASE
    name = f"predict_proba, {n:,} rows x {s} draws, K={k}, D={d} (issue 22)"
    goal = f"< {TARGET_PREDICT_SECONDS:g} s and < {TARGET_PREDICT_MB:g} MB peak RSS"
    if section is None:
        return Target(name, goal, "section not run", None)
    res = section.data["result"]
    if not is_number(res.get("kernel_s")):
        return Target(name, goal, res.get("error", "not measured"), False)
    at_target = tuple(section.data["case"]) == PREDICT_CASE
    where = "" if at_target else " at N={:,} x {} draws, K={}, D={}".format(*section.data["case"])
    met = res["kernel_s"] < TARGET_PREDICT_SECONDS and res["kernel_mb"] < TARGET_PREDICT_MB
    return Target(name, goal, f"{res['kernel_s']:.1f} s, {res['kernel_mb']:.0f} MB{where}",
                  met if at_target else None,
                  f"{ratio(res['reference_s'], res['kernel_s']):.0f}x the NumPy reference "
                  f"(same run, scaled); {res['threads']} thread(s)")


def missing_target(section: Section | None, size: Size) -> Target:
    """Judged on the default missing-data graph of every backend measured (the worst)."""
    d, n, k, fraction = MISSING_CASE
    name = (f"log-density+gradient per observed entry, {case_label(d, n, k)}, "
            f"{fraction:.0%} missing (MCAR)")
    goal = f"<= {TARGET_MISSING_RATIO:g}x the complete-data kernel per entry (same run)"
    if section is None:
        return Target(name, goal, "section not run", None)
    results = section.data["results"]
    default = {backend: res for (backend, _), res in results.items()
               if res.get("default") and is_number(res.get("ratio"))}
    if not default:
        return Target(name, goal, "not measured", None)
    worst = max(default, key=lambda b: default[b]["ratio"])
    where = "" if section.data["case"] == MISSING_CASE else \
        f" at {case_label(*section.data['case'][:3])}, {section.data['case'][3]:.0%} missing"
    detail = "; ".join(
        f"{backend} {variant}: {res['ratio']:.2f}x ({res['ns_missing']:.0f} against "
        f"{res['ns_complete']:.0f} ns per entry{', default' if res.get('default') else ''})"
        for (backend, variant), res in results.items() if is_number(res.get("ratio")))
    met = all(r["ratio"] <= TARGET_MISSING_RATIO for r in default.values())
    return Target(name, goal, f"{default[worst]['ratio']:.2f}x ({worst}, default graph){where}",
                  met if section.data["case"] == MISSING_CASE else None, detail)


def student_t_target(section: Section | None, size: Size) -> Target:
    """Judged on every backend measured (the worst), as the missing-data target."""
    name = f"t-mixture log-density+gradient per point, {case_label(*STUDENT_T_CASE)} (issue 19)"
    goal = f"<= {TARGET_STUDENT_T_RATIO:g}x the Gaussian kernel (same run)"
    if section is None:
        return Target(name, goal, "section not run", None)
    results = section.data["results"]
    measured = {backend: res for backend, res in results.items() if is_number(res.get("ratio"))}
    if not measured:
        return Target(name, goal, "not measured", None)
    worst = max(measured, key=lambda b: measured[b]["ratio"])
    at_target = tuple(section.data["case"]) == STUDENT_T_CASE
    where = "" if at_target else f" at {case_label(*section.data['case'])}"
    detail = "; ".join(
        f"{backend}: {res['ratio']:.2f}x ({res['ns_t']:.0f} against {res['ns_gauss']:.0f} ns "
        f"per point)" for backend, res in measured.items())
    detail += f"; dof {section.data['dof']:g}"
    met = all(r["ratio"] <= TARGET_STUDENT_T_RATIO for r in measured.values())
    return Target(name, goal, f"{measured[worst]['ratio']:.2f}x ({worst}){where}",
                  met if at_target else None, detail)


def realdata_target(section: Section | None, size: Size) -> Target:
    name = "breast cancer [:5] at K=4 vs blobs of the same N, D, K (issue 17)"
    goal = f"converged in <= {TARGET_REALDATA_RATIO:g}x the blobs' time (same run)"
    if section is None:
        return Target(name, goal, "section not run", None)
    results = section.data["results"]
    real = results.get("breast cancer [:5]")
    twin = results.get("  blobs twin of breast cancer [:5]")
    if real is None or twin is None:
        return Target(name, goal, "not measured at this size", None)
    if not (real.get("converged") and twin.get("converged")):
        state = ", ".join(
            f"{who} " + ("converged" if r.get("converged") else r.get("error", "not converged"))
            for who, r in (("breast cancer", real), ("blobs", twin)))
        return Target(name, goal, state, False)
    r = real["wall_s"] / twin["wall_s"]
    return Target(name, goal, f"{r:.1f}x ({real['wall_s']:.0f} s against {twin['wall_s']:.0f} s)",
                  r <= TARGET_REALDATA_RATIO,
                  f"{real['sampler']} {real['steps_per_draw']:.1f} steps/draw against "
                  f"{twin['sampler']} {twin['steps_per_draw']:.1f}")


def analysis(sections: dict[str, Section], size: Size) -> list[str]:
    """Sentences on what bounds the NUTS time, from this run's own measurements."""
    out = []
    nuts, logp = sections.get("nuts"), sections.get("logp")
    profiled = nuts.data["results"].get(size.target_case + ("bayesgmm", nuts.data["profiled"]),
                                        {}) if nuts else {}
    if "stages" in profiled:
        stages = dict(profiled["stages"])
        compile_s = sum(stages.get(label, 0.0) for label in COMPILE_STEPS)
        other = {label.strip(): s for label, s in stages.items()
                 if label.startswith("  ") and label not in COMPILE_STEPS}
        nuts_s = stages.get("NUTS: compile + warm-up + sampling", 0.0)
        out.append(f"The profiled fit ({nuts.data['profiled']}, {profiled['wall_s']:.1f} s): "
                   f"compilation {compile_s:.1f} s ({compile_s / profiled['wall_s']:.0%}), "
                   f"warm-up and sampling (the rest of the NUTS step) "
                   f"{nuts_s - compile_s:.1f} s; "
                   + ", ".join(f"{k} {v:.2f} s" for k, v in other.items()) + ".")
    one = nuts.data.get("one_chain") if nuts else None
    if one and is_number(one.get("per_grad_s")):
        d, n = size.target_case
        per_grad = one["per_grad_s"]
        grads = one["grad_evals"]
        line = (f"NUTS at {case_label(d, n)} (one chain alone): XLA compile "
                f"{one['full_compile_s']:.1f} s, warm-up {one['warmup_run_s']:.1f} s, sampling "
                f"{one['sampling_s']:.1f} s for {grads:.0f} gradient evaluations "
                f"({grads / one['draws']:.1f} per draw) at {per_grad * 1e6:.0f} us each "
                f"= {per_grad / n * 1e9:.0f} ns per point inside the sampler.")
        at_target = TARGET_NS_PER_POINT * 1e-9 * n
        line += (f" At the {TARGET_NS_PER_POINT:g} ns/point target the same work would take "
                 f"{(one['warmup_run_s'] + one['sampling_s']) * at_target / per_grad:.1f} s "
                 f"per chain (warm-up + sampling), plus compilation.")
        out.append(line)
    for backend in ("pytensor-default", "jax") if logp else ():
        ref = logp.data["reference"]
        ours, theirs = ref.get(("bayesgmm", backend), {}), ref.get(("pm.Mixture", backend), {})
        if is_number(ours.get("ns_per_point")) and is_number(theirs.get("ns_per_point")):
            out.append(f"Per gradient ({backend} backend), pm.Mixture costs "
                       f"{theirs['ns_per_point'] / ours['ns_per_point']:.2f}x bayesgmm's "
                       f"model: the NUTS speed-up over the textbook model can only come from "
                       f"this ratio, fewer gradient evaluations per draw, less compilation "
                       f"and fewer draws needed for the ESS.")
    return out
