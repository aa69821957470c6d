"""NUTS and minibatch ADVI on a GPU against the CPU (issue 22); no test depends on it.

    .venv/bin/python -m benchmarks.gpu                  # N = 1e5 and 1e6, GPU and CPU
    .venv/bin/python -m benchmarks.gpu --n 2000 --cpu-only   # check the script on a CPU

Each case runs in a fresh process: once with JAX's default platform (the GPU when JAX finds
one: ``jax[cuda12]`` or ``jax[cuda13]`` installed) and once with ``JAX_PLATFORMS=cpu``, and
the table gives the wall times and their ratio (CPU / GPU). The fits:

* NUTS: ``bayesgmm.fit(X, K, method="nuts", sampler="blackjax", backend="jax")``, 2 chains
  x (500 warm-up + 500 draws) by default: every gradient is a pass over all N rows, which
  is what an accelerator speeds up;
* minibatch ADVI: ``method="advi", batch_size=1024, backend="jax"`` (each iteration touches
  one batch: little for a GPU to do at D=10, and the ratio shows it).

Data: the well-separated synthetic mixture of :func:`benchmarks.common.make_data` at D=10,
K=10. Everything runs in float64 (PyMC's default): the Cholesky factors of nearly singular
covariances need it, and data-centre GPUs (A100, H100, H200) run float64 at half their
float32 rate or better. The numbers are printed and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
import jax
spec = json.loads(sys.argv[1])
import bayesgmm
from benchmarks.common import make_data, means_error
truth = make_data(spec["n"], spec["d"], spec["k"], spec["seed"])
kwargs = dict(method="nuts", sampler="blackjax", draws=spec["draws"], tune=spec["tune"],
              chains=2) if spec["method"] == "nuts" else dict(method="advi", batch_size=1024,
                                                               max_iter=spec["max_iter"])
t = time.perf_counter()
fit = bayesgmm.fit(truth.X, spec["k"], backend="jax", random_state=spec["seed"],
                   progressbar=False, **kwargs)
wall = time.perf_counter() - t
post = fit["posterior"]
err, _ = means_error(truth, post["weights"].mean(("chain", "draw")).to_numpy(),
                     post["means"].mean(("chain", "draw")).to_numpy())
device = jax.devices()[0]
print(json.dumps({"wall_s": wall, "mean_error": err, "platform": device.platform,
                  "device": str(getattr(device, "device_kind", device))}))
"""


def run_child(spec: dict, platform: str | None, timeout: float) -> dict:
    env = dict(os.environ)
    if platform is not None:
        env["JAX_PLATFORMS"] = platform
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                              capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="100000,1000000", help="rows, comma-separated")
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--methods", default="nuts,advi")
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--max-iter", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-only", action="store_true", help="skip the default-platform run")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--out", type=Path, default=None, help="JSON file of the results")
    args = p.parse_args(argv)
    rows = []
    for n in [int(v) for v in args.n.split(",")]:
        for method in args.methods.split(","):
            spec = {"n": n, "d": args.d, "k": args.k, "method": method, "draws": args.draws,
                    "tune": args.tune, "max_iter": args.max_iter, "seed": args.seed}
            t = time.perf_counter()
            cpu = run_child(spec, "cpu", args.timeout)
            gpu = {} if args.cpu_only else run_child(spec, None, args.timeout)
            row = {"n": n, "method": method, "cpu": cpu, "default": gpu,
                   "seconds": time.perf_counter() - t}
            if "wall_s" in cpu and "wall_s" in gpu:
                row["cpu_over_default"] = cpu["wall_s"] / gpu["wall_s"]
            rows.append(row)
            print(f"N={n:>9,} {method:5s} cpu {cpu.get('wall_s', cpu.get('error'))!s:>22} "
                  f"| {gpu.get('platform', 'default')} "
                  f"{gpu.get('wall_s', gpu.get('error', 'skipped'))!s:>22} "
                  f"| ratio {row.get('cpu_over_default', 'n/a')}", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
