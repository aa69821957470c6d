"""Command line: run the sections, print their tables, write RESULTS.md and RESULTS.json.

    .venv/bin/python -m benchmarks                     # everything, at the issue's sizes
    .venv/bin/python -m benchmarks --size small --sections logp,sklearn
    .venv/bin/python -m benchmarks --sections missing --out benchmarks/RESULTS-missing.md
    .venv/bin/python -m benchmarks --sections student_t --out benchmarks/RESULTS-student-t.md
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import report
from .common import (
    Section,
    Stopwatch,
    captured,
    failure,
    limit_blas_threads,
    load_average,
    machine,
    versions,
)
from .sizes import SIZES
from .targets import analysis, evaluate

SECTIONS = {
    "nuts": "benchmarks.nuts",
    "logp": "benchmarks.logp",
    "cold": "benchmarks.cold",
    "vi": "benchmarks.vi",
    "sklearn": "benchmarks.sklearn_baselines",
    "realdata": "benchmarks.realdata",
    "missing": "benchmarks.missing",
    "student_t": "benchmarks.student_t",
    "predict": "benchmarks.predict",
    "outofcore": "benchmarks.outofcore",
    "memory": "benchmarks.memory",
}
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


def _list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help="comma-separated subset of: " + ", ".join(SECTIONS) + " (default all)")
    p.add_argument("--size", choices=list(SIZES), default="full",
                   help="smoke (seconds; the test suite), small (minutes), full (the issue's "
                        "sizes, hours; the default)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="Markdown report (default benchmarks/RESULTS.md); the raw results go "
                        "to the same name with .json")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and every fit")
    p.add_argument("--draws", type=int, help="nuts: draws per chain of the first fit (default: "
                                             "the size's, 1000 at small and full)")
    p.add_argument("--tune", type=int, help="nuts: tuning steps per chain (default: the "
                                            "size's, 1000 at small and full)")
    p.add_argument("--samplers", help="bayesgmm samplers to time (default: every installed "
                                      "one of blackjax, nutpie, numpyro, pymc)")
    p.add_argument("--baselines", help="textbook-model samplers: pm.sample, nutpie "
                                       "(default both)")
    p.add_argument("--textbook-init", choices=["em", "default"], default="em",
                   help="start of the textbook chains: bayesgmm's EM start (default) or the "
                        "sampler's own")
    p.add_argument("--textbook-backend", choices=["default", "jax"], default="default",
                   help="PyTensor backend of the textbook samplers: their default (numba) or "
                        "JAX (compiles faster; used by the smoke test)")
    p.add_argument("--logp-backends", help="subset of jax, pytensor-jax, pytensor-default "
                                           "(default all)")
    p.add_argument("--missing-backends", help="missing section: subset of numba, jax (PyTensor "
                                              "modes NUMBA and JAX; default both)")
    p.add_argument("--student-t-backends", help="student_t section: subset of numba, jax "
                                                "(PyTensor modes NUMBA and JAX; default both)")
    p.add_argument("--no-cold-compile", dest="cold_compile", action="store_false",
                   help="cold section: only the first fit, not the cold logp compiles")
    p.add_argument("--no-warm-caches", dest="warm_caches", action="store_false",
                   help="nuts: skip the untimed textbook fits that fill the numba cache before "
                        "each case")
    p.add_argument("--no-isolate", dest="isolate", action="store_false",
                   help="run the NUTS and VI fits in this process instead of one fresh process "
                        "each (faster to start; no per-fit timeout)")
    p.add_argument("--blas-threads", type=int,
                   help="cap BLAS/OpenMP threads (default: the libraries' own, one per core). "
                        "On a busy machine OpenBLAS threads can make the numba-compiled "
                        "textbook model 20x slower; 1 removes that noise")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    args = p.parse_args(argv)
    args.sections = _list(args.sections)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}; choose from {list(SECTIONS)}")
    args.samplers = _list(args.samplers)
    args.baselines = _list(args.baselines)
    args.logp_backends = _list(args.logp_backends)
    args.missing_backends = _list(args.missing_backends)
    if args.missing_backends and set(args.missing_backends) - {"numba", "jax"}:
        p.error(f"--missing-backends: choose from numba, jax, not {args.missing_backends}")
    args.student_t_backends = _list(args.student_t_backends)
    if args.student_t_backends and set(args.student_t_backends) - {"numba", "jax"}:
        p.error(f"--student-t-backends: choose from numba, jax, not {args.student_t_backends}")
    args.log = (lambda msg: None) if args.quiet else \
        (lambda msg: print(msg, file=sys.stderr, flush=True))
    return args


def run_section(key: str, size, opts) -> Section:
    """One section; a crash of the section itself becomes a note, not the end of the run."""
    watch = Stopwatch()
    opts.log(f"[{key}] ...")
    notes: list[str] = []
    try:
        with captured(notes, key):
            section = importlib.import_module(SECTIONS[key]).run(size, opts)
    except Exception as exc:
        section = Section(key, key, "The section stopped with an error.")
        notes.append(failure(exc))
    section.notes += notes
    section.seconds = watch.seconds
    opts.log(f"[{key}] done in {section.seconds:.0f} s")
    return section


def command_line(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join([".venv/bin/python -m benchmarks", *args])


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return the sections and targets (for the tests)."""
    opts = parse_args(argv)
    if opts.blas_threads is not None:
        limit_blas_threads(opts.blas_threads)
    size = SIZES[opts.size]
    overrides = {k: getattr(opts, k) for k in ("draws", "tune") if getattr(opts, k) is not None}
    size = dataclasses.replace(size, **overrides)
    started = datetime.now(UTC)
    load_before = load_average()
    watch = Stopwatch()
    sections = {key: run_section(key, size, opts) for key in opts.sections}
    targets = evaluate(sections, size)
    notes = analysis(sections, size)
    header = {
        "command": f"`{command_line(argv)}`",
        "size": opts.size + ("" if opts.size == "full" else
                             " (NOT the issue's sizes: targets are judged only where the "
                             "size matches)"),
        "seed": str(opts.seed),
        "BLAS threads": "library default" if opts.blas_threads is None
        else str(opts.blas_threads),
        "started": started.isoformat(timespec="seconds"),
        "total wall time": f"{watch.seconds:.0f} s",
        "load average (1, 5, 15 min) before / after": f"{load_before} / {load_average()}",
    }
    mach, vers = machine(), versions()
    for section in sections.values():
        print("\n" + report.section_text(section))
    print("\n" + report.text_table(report.targets_table(targets)))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(report.markdown(header, mach, vers, targets, list(sections.values()),
                                        notes))
    opts.out.with_suffix(".json").write_text(
        report.to_json(header, mach, vers, targets, list(sections.values())))
    opts.log(f"wrote {opts.out} and {opts.out.with_suffix('.json')}")
    return {"sections": sections, "targets": targets}
