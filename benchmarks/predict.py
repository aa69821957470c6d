"""Prediction after a fit: posterior mean P(component | x) over the draws (issue 22).

The requirement: ``predict_proba`` on 1e6 rows x 200 draws at K=10, D=10 in under 60 s on 2
cores, with memory under 2 GB. Before, the posterior average over the draws ran in NumPy
(:func:`bayesgmm.likelihood.reference.mean_responsibilities`) and took 91 s for 1e5 rows.

Timed, on random draws (Dirichlet weights, normal means, random covariances; the same for
every method) and data from a K-component mixture:

* **kernel**: :func:`bayesgmm.likelihood.predictive.posterior_predictive`, what
  ``BayesianGMM.predict_proba``, ``predict`` and ``score_samples`` call (the responsibilities'
  mean and the log predictive density in one pass), on all CPUs, and on one thread;
* **NumPy reference**: the previous implementation, on the first ``ref_n`` rows only (it
  holds (draws, rows, K, D) intermediates), scaled to N per row, the baseline of the ratio;
* **scikit-learn**: ``GaussianMixture.predict_proba`` with one set of parameters (the first
  draw's), N rows: a point estimate's prediction, the floor a Bayesian one is compared with
  (it costs 1 / draws of ours by construction).

Each case runs in a fresh process (unless ``--no-isolate``), whose peak resident memory
(``ru_maxrss``) is reported after the kernel (data, draws and outputs included) and again at
the end. Results agree: the kernel's probabilities against the reference's on the
reference's rows, the largest absolute difference.
"""

from __future__ import annotations

import resource

import numpy as np

from .common import Section, Stopwatch, ratio
from .sizes import TARGET_PREDICT_MB, TARGET_PREDICT_SECONDS, Size
from .worker import run_task


def random_draws(s: int, k: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k), s)
    means = rng.normal(0.0, 3.0, (s, k, d))
    a = rng.normal(0.0, 0.5, (s, k, d, d))
    cov = a @ np.swapaxes(a, -1, -2) + 0.3 * np.eye(d)
    return weights, means, np.linalg.cholesky(cov)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def time_case(spec: dict) -> dict:
    """Task: the kernel (all CPUs, one thread), the NumPy reference, scikit-learn."""
    from sklearn.mixture import GaussianMixture

    from bayesgmm.likelihood.predictive import (
        PredictiveParameters,
        default_threads,
        posterior_predictive,
    )
    from bayesgmm.likelihood.reference import mean_responsibilities

    n, s, k, d, ref_n = (int(spec[key]) for key in ("n", "draws", "k", "d", "ref_n"))
    weights, means, chols = random_draws(s, k, d, spec["seed"])
    rng = np.random.default_rng(spec["seed"] + 1)
    labels = rng.choice(k, size=n, p=weights[0])
    X = rng.normal(size=(n, d))
    for c in range(k):  # in place, component by component: no (n, d, d) array
        rows = labels == c
        X[rows] = means[0, c] + X[rows] @ chols[0, c].T
    params = PredictiveParameters(weights, means, chols)
    posterior_predictive(X[:100], params)  # compile (or load from numba's cache)
    start_mb = _peak_mb()
    watch = Stopwatch()
    proba, _ = posterior_predictive(X, params)
    kernel_s = watch.seconds
    kernel_mb = _peak_mb()
    one = min(n, max(ref_n * 10, 10_000))
    watch = Stopwatch()
    posterior_predictive(X[:one], params, n_threads=1)
    one_thread_s = watch.seconds * n / one
    watch = Stopwatch()
    reference = mean_responsibilities(X[:ref_n], weights, means, chols)
    reference_s = watch.seconds * n / ref_n
    gm = GaussianMixture(k, covariance_type="full")
    gm.weights_, gm.means_ = weights[0], means[0]
    gm.covariances_ = chols[0] @ np.swapaxes(chols[0], -1, -2)
    gm.precisions_cholesky_ = np.swapaxes(np.linalg.inv(chols[0]), -1, -2)
    watch = Stopwatch()
    gm.predict_proba(X)
    sklearn_s = watch.seconds
    return {"kernel_s": kernel_s, "one_thread_s": one_thread_s, "reference_s": reference_s,
            "sklearn_s": sklearn_s, "threads": default_threads(),
            "start_mb": start_mb, "kernel_mb": kernel_mb, "end_mb": _peak_mb(),
            "max_abs_diff": float(np.abs(proba[:ref_n] - reference).max())}


def run(size: Size, opts) -> Section:
    n, s, k, d = size.predict_case
    ref_n = size.predict_ref_n
    section = Section(
        "predict", "Prediction: posterior mean P(component | x) over the draws",
        f"N={n:,} rows x {s} draws, K={k}, D={d} (seed {opts.seed}; random draws, data from "
        f"the first draw's mixture). 'kernel': bayesgmm.likelihood.predictive."
        f"posterior_predictive (what predict_proba, predict and score_samples call: the mean "
        f"responsibilities and the log predictive density in one pass), on all CPUs and on "
        f"one thread (timed on {min(n, max(ref_n * 10, 10_000)):,} rows, scaled to N). "
        f"'NumPy reference': the previous implementation (reference.mean_responsibilities), "
        f"timed on {ref_n:,} rows and scaled to N, the ratio's baseline (same run). "
        f"'scikit-learn': GaussianMixture.predict_proba with one draw's parameters, N rows "
        f"(a point estimate: one draw against our {s}). Peak RSS (ru_maxrss) of the case's "
        f"process after the kernel, data and outputs included. Target (issue 22, at 1e6 x "
        f"200, K=10, D=10): < {TARGET_PREDICT_SECONDS:g} s and < {TARGET_PREDICT_MB:g} MB.")
    table = section.table(
        f"predict_proba, N={n:,} x {s} draws, K={k}, D={d}",
        ["method", "seconds", "x faster than NumPy", "peak RSS MB", "status"])
    spec = {"task": "predict_case", "label": "predict", "n": n, "draws": s, "k": k, "d": d,
            "ref_n": ref_n, "seed": opts.seed}
    res = run_task(spec, isolate=opts.isolate, timeout=size.predict_timeout_s)
    section.notes += res.pop("warnings", [])
    status = res.get("error", "ok")
    opts.log(f"  predict: {res.get('kernel_s', status)}")
    ref = res.get("reference_s")
    table.add(method=f"kernel, {res.get('threads', '?')} thread(s)", seconds=res.get("kernel_s"),
              **{"x faster than NumPy": ratio(ref, res.get("kernel_s")),
                 "peak RSS MB": res.get("kernel_mb"), "status": status})
    table.add(method="kernel, 1 thread", seconds=res.get("one_thread_s"),
              **{"x faster than NumPy": ratio(ref, res.get("one_thread_s")),
                 "peak RSS MB": "n/a", "status": status})
    table.add(method="NumPy reference (scaled)", seconds=ref,
              **{"x faster than NumPy": 1.0 if ref else "n/a", "peak RSS MB": "n/a",
                 "status": status})
    table.add(method="scikit-learn, 1 draw", seconds=res.get("sklearn_s"),
              **{"x faster than NumPy": ratio(ref, res.get("sklearn_s")),
                 "peak RSS MB": "n/a", "status": status})
    if "end_mb" in res:
        section.notes.append(f"peak RSS: {res['start_mb']:.0f} MB before the kernel (data and "
                             f"draws), {res['kernel_mb']:.0f} MB after it, {res['end_mb']:.0f} "
                             f"MB at the end (the NumPy reference's intermediates)")
    if "max_abs_diff" in res:
        section.notes.append(f"kernel against the NumPy reference on {ref_n:,} rows: largest "
                             f"absolute difference of the probabilities "
                             f"{res['max_abs_diff']:.1e}")
    section.data["result"] = res
    section.data["case"] = (n, s, k, d)
    return section
