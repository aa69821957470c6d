"""ADVI, full-rank ADVI and minibatch ADVI: time to convergence and accuracy.

Each fit is :func:`bayesgmm.fit` with ``method="advi"`` or ``"fullrank_advi"`` (and
``batch_size`` for minibatch ADVI), which stops once the ELBO stops rising (or at
``max_iter``). Its wall time includes compilation, the EM start and the assembly of the
result; the EM start and the optimisation are also shown apart. Accuracy: the largest
Mahalanobis distance (under the true covariance) between a fitted mean (the mean of the draws
from the approximation) and the true mean it is matched to, and the largest weight error.
"""

from __future__ import annotations

from .common import Section, Stopwatch, case_label, is_number, make_data, means_error
from .sizes import RECOVERY_TOLERANCE, Size
from .worker import run_task


def fit_vi(spec: dict) -> dict:
    """Task: one VI fit, timed step by step."""
    import bayesgmm

    from .profile import ordered, stage_timers

    truth = make_data(spec["n"], spec["d"], spec["k"], spec["seed"])
    with stage_timers() as stages:
        watch = Stopwatch()
        result = bayesgmm.fit(truth.X, spec["k"], method=spec["method"],
                              batch_size=spec.get("batch_size"), max_iter=spec["max_iter"],
                              random_state=spec["seed"])
        wall = watch.seconds
    post = result["posterior"]
    err_mean, err_weight = means_error(truth, post["weights"].mean(("chain", "draw")).to_numpy(),
                                       post["means"].mean(("chain", "draw")).to_numpy())
    steps = dict(ordered(stages))
    return {
        "wall_s": wall,
        "em_s": steps.get("EM start (scikit-learn, n_init=5)"),
        "vi_s": steps.get("VI: compile + optimisation + draws"),
        "iterations": int(result["variational"].sizes["iteration"]),
        "converged": bool(result["variational"].attrs.get("converged", 0)),
        "mean_error": err_mean, "weight_error": err_weight,
    }


def configurations(size: Size) -> list[tuple[tuple[int, int, int], str, int | None]]:
    """((D, N, K), method, batch_size) of every fit."""
    case = size.vi_case
    out = [(case, "advi" if m == "minibatch_advi" else m,
            size.batch_size if m == "minibatch_advi" else None) for m in size.vi_methods]
    return out + [(size.minibatch_case, "advi", size.batch_size)]


def run(size: Size, opts) -> Section:
    section = Section(
        "vi", "Variational inference: time to convergence and accuracy",
        f"ELBO-plateau stopping, at most {size.vi_max_iter} iterations per phase; wall time "
        f"includes compilation, the EM start and the result's assembly. 'recovered': every "
        f"fitted mean within Mahalanobis distance {RECOVERY_TOLERANCE} of its true mean.")
    table = section.table("Fits", ["case", "method", "batch", "wall s", "EM start s", "VI s",
                                   "iterations", "ELBO converged", "mean error",
                                   "weight error", "recovered", "status"])
    for (d, n, k), method, batch in configurations(size):
        spec = {"task": "vi_fit", "d": d, "n": n, "k": k, "method": method,
                "batch_size": batch, "max_iter": size.vi_max_iter, "seed": opts.seed,
                "label": f"vi {case_label(d, n, k)} {method}"}
        res = run_task(spec, isolate=opts.isolate, timeout=size.timeout_s)
        err = res.get("mean_error")
        table.add(**{
            "case": case_label(d, n, k), "method": method, "batch": batch or "all",
            "wall s": res.get("wall_s"), "EM start s": res.get("em_s"), "VI s": res.get("vi_s"),
            "iterations": res.get("iterations"),
            "ELBO converged": None if "converged" not in res else
            ("yes" if res["converged"] else "no"),
            "mean error": err, "weight error": res.get("weight_error"),
            "recovered": None if not is_number(err) else
            ("yes" if err <= RECOVERY_TOLERANCE else "no"),
            "status": res.get("error", "ok")})
        section.notes += res.get("warnings", [])[:3]
        section.data.setdefault("results", []).append(
            {"case": (d, n, k), "method": method, "batch": batch, **res})
        opts.log(f"  vi {case_label(d, n, k)} {method} batch={batch}: {res.get('wall_s')}")
    return section
