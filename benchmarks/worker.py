"""Run one measurement, in this process or in a fresh one.

A fresh process (``python -m benchmarks.worker SPEC.json RESULT.json``) isolates a fit's memory
and threads, lets the runner stop it after a timeout, and gives the cold-start measurements
their empty caches. A task is a function ``spec -> dict`` named in :data:`TASKS`; its result
must be JSON.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .common import captured, failure

ROOT = Path(__file__).resolve().parent.parent

TASKS = {
    "nuts_ours": "benchmarks.nuts:fit_ours",
    "nuts_textbook": "benchmarks.nuts:fit_textbook",
    "cold_fit": "benchmarks.cold:first_fit",
    "cold_compile": "benchmarks.cold:first_compile",
    "vi_fit": "benchmarks.vi:fit_vi",
    "realdata_fit": "benchmarks.realdata:fit_case",
    "missing_case": "benchmarks.missing:time_case",
    "student_t_case": "benchmarks.student_t:time_case",
    "predict_case": "benchmarks.predict:time_case",
    "outofcore_fit": "benchmarks.outofcore:fit_case",
    "memory_case": "benchmarks.memory:measure",
}


def _resolve(task: str):
    module, func = TASKS[task].split(":")
    return getattr(importlib.import_module(module), func)


def call(spec: dict) -> dict:
    """Run a task here; an exception becomes ``{"error": "failed: ..."}``."""
    notes: list[str] = []
    try:
        with captured(notes, spec.get("label", spec["task"])):
            result = _resolve(spec["task"])(spec)
    except Exception as exc:  # a failed configuration is a result, not a crash
        result = {"error": failure(exc)}
    result["warnings"] = notes
    return result


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON: {type(obj).__name__}")


def run_task(spec: dict, *, isolate: bool, timeout: float | None = None,
             env: dict[str, str] | None = None) -> dict:
    """Run a task in this process, or (``isolate``) in a fresh one stopped after ``timeout``."""
    if not isolate:
        return call(spec)
    with tempfile.TemporaryDirectory(prefix="bayesgmm-bench-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec, default=_json_default))
        cmd = [sys.executable, "-m", "benchmarks.worker", str(spec_path), str(result_path)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The fit may have started worker processes of its own: stop its whole group.
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"error": failure(f"timed out after {timeout:.0f} s"), "timed_out": True,
                    "warnings": []}
        if result_path.exists():
            return json.loads(result_path.read_text())
        tail = " | ".join((err or "").strip().splitlines()[-3:])
        return {"error": failure(f"worker exited with code {proc.returncode}: {tail}"),
                "warnings": []}


def main(argv: list[str] | None = None) -> int:
    spec_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text())
    result = call(spec)
    Path(result_path).write_text(json.dumps(result, default=_json_default))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
