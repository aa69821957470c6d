"""Time to the first fit in a fresh process with empty compile caches (a notebook user's wait).

Each measurement runs in a new Python process whose PyTensor compiledir, numba cache and XDG
cache are empty temporary directories and whose JAX persistent compilation cache is off. The
data are read from a ``.npy`` file before the clock starts; then ``import bayesgmm`` and
``BayesianGMM(3, random_state=seed).fit(X)`` (defaults otherwise) are timed separately.
Python's bytecode caches stay warm, as they are for an installed package.

For context, the same fresh process measures the first compilation of the textbook model's
(and bayesgmm's) log-density+gradient in PyTensor's default mode (numba), the backend of
``pm.sample`` and nutpie.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .common import K_DEFAULT, Section, Stopwatch, make_data
from .sizes import Size
from .worker import run_task


def cold_env(tmp: Path) -> dict[str, str]:
    """Environment of a process with empty compile caches under ``tmp``."""
    env = dict(os.environ)
    flags = env.get("PYTENSOR_FLAGS", "")
    compiledir = f"compiledir={tmp / 'pytensor'}"
    env["PYTENSOR_FLAGS"] = f"{flags},{compiledir}" if flags else compiledir
    env["NUMBA_CACHE_DIR"] = str(tmp / "numba")
    env["XDG_CACHE_HOME"] = str(tmp / "xdg")
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


def first_fit(spec: dict) -> dict:
    """Task (fresh process): time ``import bayesgmm`` and the first ``BayesianGMM.fit``."""
    X = np.load(spec["data_path"])
    watch = Stopwatch()
    from bayesgmm import BayesianGMM

    import_s = watch.seconds
    from .profile import ordered, stage_timers

    with stage_timers() as stages:
        watch = Stopwatch()
        BayesianGMM(spec.get("k", K_DEFAULT), random_state=spec["seed"],
                    **spec.get("fit", {})).fit(X)
        fit_s = watch.seconds
    return {"import_s": import_s, "fit_s": fit_s, "stages": ordered(stages)}


def first_compile(spec: dict) -> dict:
    """Task (fresh process): first compile of a model's logp+grad in PyTensor's default mode."""
    X = np.load(spec["data_path"])
    watch = Stopwatch()
    from .models import MODELS, pytensor_logp_grad

    import_s = watch.seconds
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    k = spec.get("k", K_DEFAULT)
    watch = Stopwatch()
    model = MODELS[spec["model"]](Z, k)
    _, _, compile_s = pytensor_logp_grad(model, k, Z.shape[1], None)
    return {"import_s": import_s, "fit_s": watch.seconds, "compile_s": compile_s}


CONFIGS = (
    ("bayesgmm", "BayesianGMM(3{settings}).fit(X)", "cold_fit"),
    ("bayesgmm", "logp+grad compile only, PyTensor default mode", "cold_compile"),
    ("pm.Mixture", "logp+grad compile only, PyTensor default mode", "cold_compile"),
)


def run(size: Size, opts) -> Section:
    d, n = size.cold_case
    settings = ", ".join(f"{k}={v!r}" for k, v in size.cold_fit.items()) or "defaults"
    section = Section(
        "cold", "First fit in a fresh process, empty compile caches",
        f"D={d}, N={n}, K={K_DEFAULT}; fit settings: {settings}. Fresh Python process, empty "
        f"PyTensor compiledir, numba and XDG caches, JAX persistent cache off; the clock starts "
        f"after the data are loaded. 'first fit' = import + fit.")
    table = section.table("Fresh process", ["model", "what", "import s", "fit/compile s",
                                            "first fit s", "status"])
    configs = CONFIGS if opts.cold_compile else CONFIGS[:1]
    with tempfile.TemporaryDirectory(prefix="bayesgmm-cold-") as tmp:
        data_path = Path(tmp) / "X.npy"
        np.save(data_path, make_data(n, d, K_DEFAULT, opts.seed).X)
        for model, what, task in configs:
            cache = Path(tmp) / f"cache-{task}-{model}"
            cache.mkdir()
            spec = {"task": task, "model": model, "seed": opts.seed, "data_path": str(data_path),
                    "fit": size.cold_fit, "label": f"cold {model}"}
            res = run_task(spec, isolate=True, timeout=size.timeout_s, env=cold_env(cache))
            total = (res["import_s"] + res["fit_s"]) if "error" not in res else None
            what = what.format(settings="".join(f", {k}={v!r}"
                                                for k, v in size.cold_fit.items()))
            table.add(**{"model": model, "what": what, "import s": res.get("import_s"),
                         "fit/compile s": res.get("fit_s"), "first fit s": total,
                         "status": res.get("error", "ok")})
            section.notes += res.get("warnings", [])[:3]
            section.data.setdefault("results", []).append({"model": model, "task": task, **res})
            opts.log(f"  cold {model}/{task}: {total}")
    fit = next((r for r in section.data["results"] if r["task"] == "cold_fit"), None)
    if fit and "stages" in fit:
        prof = section.table("Where the first fit's time went", ["step", "seconds"])
        prof.add(step="import bayesgmm", seconds=fit["import_s"])
        for label, seconds in fit["stages"]:
            prof.add(step=label, seconds=seconds)
        prof.add(step="fit (whole)", seconds=fit["fit_s"])
    return section
