"""Peak memory against N for every method and for prediction (issue 22).

Each case runs in a fresh process: it makes the data (D=10, K=3, float64, generated chunk by
chunk into one array, or written chunk by chunk to a zarr store for the out-of-core fit),
records the process's resident memory, runs one fit or one prediction, and records the peak
(``ru_maxrss``). The table gives the peak and the part of it above the data's own size, so
that what each path costs beyond the data is on record:

* ``nuts``: ``bayesgmm.fit(X, 3)``, 2 chains x (100 warm-up + 100 draws) (short: memory
  depends on N and on the draws kept, not on the chain's length otherwise);
* ``advi``: full-batch ADVI, ``max_iter=300``;
* ``minibatch advi``: ``batch_size=1024``, ``max_iter=2000``, the data in memory;
* ``map``: ``method="map"``;
* ``predict_proba``: 200 draws (random, K=3) over N rows, the fit's kernel;
* ``out of core``: minibatch ADVI from a zarr store's path (``max_iter=2000``).

Cases whose time would pass the size's budget are not run and say so: NUTS above 1e5 rows
(4 minutes at 1e5 on 2 cores, a pass over all rows per gradient; 1e6 would take about 40),
full-batch ADVI and MAP above 1e6.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .common import Section, Stopwatch, mixture_chunks
from .sizes import Size
from .worker import run_task

D, K = 10, 3
METHODS = ("nuts", "advi", "minibatch advi", "map", "predict_proba", "out of core")
#: The largest N each method is run at (above: "not run", its time would pass the budget).
MAX_N = {"nuts": 100_000, "advi": 1_000_000, "map": 1_000_000}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mixture_rows(n: int, seed: int):
    """n rows of a K-component mixture, made chunk by chunk: (X, truth of the mixture)."""
    truth, chunks = mixture_chunks(n, D, K, seed)
    X = np.empty((n, D))
    for lo, rows in chunks:
        X[lo:lo + rows.shape[0]] = rows
    return X, truth


def measure(spec: dict) -> dict:
    """Task: one method at one N in this (fresh) process; peak RSS and seconds."""
    import bayesgmm

    n, method, seed = spec["n"], spec["method"], spec["seed"]
    tmp = None
    try:
        if method == "out of core":
            from .outofcore import write_store

            tmp = Path(tempfile.mkdtemp(prefix="bayesgmm-mem-", dir=spec.get("dir")))
            write_store(tmp / "x.zarr", n, D, K, seed)
            X = str(tmp / "x.zarr")
        else:
            X, _ = mixture_rows(n, seed)
        before = _rss_mb()
        watch = Stopwatch()
        if method == "predict_proba":
            from bayesgmm.likelihood.predictive import PredictiveParameters, posterior_predictive

            from .predict import random_draws

            posterior_predictive(X, PredictiveParameters(*random_draws(200, K, D, seed)))
        else:
            kwargs = {"nuts": dict(method="nuts", draws=100, tune=100, chains=2),
                      "advi": dict(method="advi", max_iter=300),
                      "minibatch advi": dict(method="advi", batch_size=1024, max_iter=2000),
                      "map": dict(method="map"),
                      "out of core": dict(method="advi", batch_size=min(1024, n // 4),
                                          max_iter=2000),
                      }[method]
            bayesgmm.fit(X, K, random_state=seed, progressbar=False, **kwargs)
        return {"seconds": watch.seconds, "before_mb": before, "peak_mb": _rss_mb(),
                "data_mb": n * D * 8 / 1e6}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run(size: Size, opts) -> Section:
    ns = size.memory_n
    section = Section(
        "memory", "Peak memory against N, per method and for prediction",
        f"D={D}, K={K} (seed {opts.seed}); each case in a fresh process: the data made "
        f"chunk by chunk (in memory, or written to a zarr store for 'out of core'), then one "
        f"fit or prediction; peak RSS (ru_maxrss) of the process, and the data's own size. "
        f"nuts: 2 chains x (100 + 100); advi: full batch, 300 iterations; minibatch advi and "
        f"out of core: batch 1024, 2000 iterations; map; predict_proba: 200 draws. A process "
        f"with bayesgmm imported holds about 0.3 GB; a fit's compilation adds more.")
    peak = section.table("peak RSS MB", ["method", *[f"N={n:.0e}" for n in ns]])
    extra = section.table("peak RSS above the data in memory, MB (data: N x D x 8 bytes; "
                          "none for out of core)", ["method", *[f"N={n:.0e}" for n in ns]])
    secs = section.table("seconds (fit or prediction)", ["method", *[f"N={n:.0e}" for n in ns]])
    results = {}
    for method in METHODS:
        rows = [{"method": method} for _ in range(3)]
        for n in ns:
            col = f"N={n:.0e}"
            if n > MAX_N.get(method, n):
                for row in rows:
                    row[col] = "not run (time)"
                continue
            spec = {"task": "memory_case", "label": f"memory {method} {n}", "n": int(n),
                    "method": method, "seed": opts.seed}
            res = run_task(spec, isolate=opts.isolate, timeout=size.memory_timeout_s)
            section.notes += res.pop("warnings", [])
            results[(method, int(n))] = res
            opts.log(f"  memory {method} N={n:.0e}: {res.get('peak_mb', res.get('error'))}")
            if "peak_mb" not in res:
                for row in rows:
                    row[col] = res.get("error", "failed")
                continue
            data = 0.0 if method == "out of core" else res["data_mb"]
            rows[0][col] = res["peak_mb"]
            rows[1][col] = res["peak_mb"] - data
            rows[2][col] = res["seconds"]
        peak.add(**rows[0])
        extra.add(**rows[1])
        secs.add(**rows[2])
    section.data["results"] = results
    return section
