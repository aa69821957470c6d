"""The benchmark harness (benchmarks/) runs end to end at tiny sizes, so it cannot rot.

Only the structure is checked: every section and table present, numbers finite and positive,
same-run ratios computed. The timings themselves are not asserted (see benchmarks/README.md).
"""

import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The smoke size, and the fastest-compiling choices (each compilation costs seconds here):
# bayesgmm's blackjax sampler against the textbook model on nutpie's JAX backend, the JAX
# log-density only, the missing-data and the t-mixture likelihoods in PyTensor's JAX mode only,
# no cold numba compiles, every fit in this process.
SMOKE = ["--size", "smoke", "--samplers", "blackjax", "--baselines", "nutpie",
         "--textbook-backend", "jax", "--logp-backends", "jax", "--missing-backends", "jax",
         "--student-t-backends", "jax", "--no-cold-compile", "--no-isolate", "--quiet",
         "--seed", "0"]


def positive(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def column(table, name):
    assert name in table.columns, (table.title, name)
    return [row.get(name) for row in table.rows]


# The sections the default test run smokes; the first fit in a fresh process ("cold",
# 17 s), the real-data NUTS fits ("realdata", 9 s) and the fit of a zarr store
# ("outofcore", 8 s; tests/test_out_of_core.py fits stores in the default run) and the
# memory table (a fit per method) run under --run-slow.
DEFAULT_SECTIONS = ["nuts", "logp", "vi", "sklearn", "missing", "student_t", "predict"]
SLOW_SECTIONS = ["cold", "realdata", "outofcore", "memory"]


def run_smoke(tmp_path_factory, sections):
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))  # benchmarks/ is not an installed package
        from benchmarks.run import main

        # The harness records every warning as a note (short chains warn by design), so
        # none reaches pytest's filterwarnings=error.
        result = main([*SMOKE, "--sections", ",".join(sections), "--out", str(out)])
    return result, out


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return run_smoke(tmp_path_factory, DEFAULT_SECTIONS)


@pytest.fixture(scope="module")
def smoke_slow(tmp_path_factory):
    return run_smoke(tmp_path_factory, SLOW_SECTIONS)


def test_the_smoke_runs_cover_every_section():
    from benchmarks.run import SECTIONS

    assert sorted(DEFAULT_SECTIONS + SLOW_SECTIONS) == sorted(SECTIONS)


def check_sections_ran(result, keys):
    sections = result["sections"]
    assert list(sections) == keys
    for key, section in sections.items():
        assert section.tables, key
        for table in section.tables:
            assert table.rows, (key, table.title)
            for status in column(table, "status") if "status" in table.columns else []:
                # Short chains do not converge: the only failure a smoke run may report.
                assert status in ("ok", "converged") or \
                    status.startswith("failed: not converged"), (key, table.title, status)


def test_every_section_ran_without_errors(smoke):
    check_sections_ran(smoke[0], DEFAULT_SECTIONS)


@pytest.mark.slow
def test_the_slow_sections_ran_without_errors(smoke_slow):
    check_sections_ran(smoke_slow[0], SLOW_SECTIONS)
    cold = smoke_slow[0]["sections"]["cold"].tables[0]
    assert all(positive(v) for v in column(cold, "first fit s"))


def test_nuts_numbers_and_ratios(smoke):
    from benchmarks.profile import XLA

    section = smoke[0]["sections"]["nuts"]
    fits, ratios, profile = section.tables[:3]
    assert column(fits, "model") == ["bayesgmm", "pm.Mixture"]
    for name in ("wall s (all fits)", "max R-hat", "min bulk ESS", "ESS/s", "grad evals/draw",
                 "tree depth", "mean error"):
        assert all(positive(v) for v in column(fits, name)), name
    assert all(v >= 1 for v in column(fits, "max R-hat"))
    assert len(ratios.rows) == 1
    for name in ("time ratio (textbook/ours)", "ESS/s ratio (ours/textbook)"):
        assert all(positive(v) for v in column(ratios, name)), name
    steps = dict(zip(column(profile, "step"), column(profile, "seconds"), strict=True))
    assert steps["whole fit"] >= steps["NUTS: compile + warm-up + sampling"] > 0
    assert steps[XLA] > 0


def test_logp_vi_sklearn_numbers(smoke):
    sections = smoke[0]["sections"]
    reference, by_n, by_d = sections["logp"].tables
    assert {"bayesgmm", "pm.Mixture"} <= set(column(reference, "model"))
    assert all(positive(v) for v in column(reference, "ns per point"))
    assert all(positive(v) for v in column(reference, "vs pm.Mixture (same backend)"))
    for table in (by_n, by_d):
        assert all(positive(v) for v in column(table, "pm.Mixture / bayesgmm"))
    vi = sections["vi"].tables[0]
    assert all(positive(v) for v in column(vi, "wall s"))
    assert all(positive(v) for v in column(vi, "mean error"))
    sk = sections["sklearn"].tables[0]
    assert set(column(sk, "estimator")) == {"GaussianMixture", "BayesianGaussianMixture"}
    assert all(positive(v) for v in column(sk, "wall s"))


def test_results_files(smoke):
    result, out = smoke
    text = out.read_text()
    for heading in ("## Machine", "## Versions", "## Targets"):
        assert heading in text
    for section in result["sections"].values():
        assert f"## {section.title}" in text
    assert "pymc" in text and "usable cores" in text
    # Targets are reported, never asserted; at the smoke size none is judged.
    assert len(result["targets"]) == 10
    assert all(t.met is None for t in result["targets"])
    doc = json.loads(out.with_suffix(".json").read_text())
    assert set(doc["sections"]) == set(result["sections"])
    assert len(doc["targets"]) == 10


@pytest.mark.slow
def test_realdata_rows(smoke_slow):
    # Iris at the smoke size: a short NUTS fit with its diagnosis, and its ARI against the
    # species beside EM's (0.90 for full covariances at K=3).
    (row,) = smoke_slow[0]["sections"]["realdata"].tables[0].rows
    assert row["case"] == "iris" and row["status"] == "ok", row
    assert row["data"] == "150 x 4" and row["K"] == 3 and row["method"] == "nuts"
    assert row["ARI (EM)"] > 0.85 and row["ARI"] > 0.8, row
    assert positive(row["wall s"]) and row["converged"] in ("yes", "no")
    assert row["max R-hat"] >= 1 and positive(row["min bulk ESS"]) and positive(row["ESS/s"])
    assert row["steps/draw"] >= 1 and row["mode repairs"] >= 0 and row["sampler"]


def test_missing_rows(smoke):
    # D=2 at the smoke size: 3 missingness patterns; the fused Op (the default) and the
    # batched graph are timed against the complete-data kernel.
    table = smoke[0]["sections"]["missing"].tables[0]
    assert column(table, "backend") == ["JAX", "JAX"]
    assert column(table, "missing-data graph") == ["fused", "batched"]
    assert column(table, "default here") == [True, False]
    assert column(table, "patterns") == [3, 3]
    assert all(0 < v < 600 for v in column(table, "observed entries"))
    for name in ("compile s (complete)", "compile s (missing)", "us per call (complete)",
                 "us per call (missing)", "ns per entry (complete)", "ns per observed entry",
                 "ratio (missing / complete)", "ratio (fastest rounds)"):
        assert all(positive(v) for v in column(table, name)), name


def test_student_t_rows(smoke):
    # D=2, N=300 at the smoke size: the t-mixture kernel (gradients in the degrees of freedom
    # included) timed against the Gaussian fused Op in the same process; its value agrees
    # with scipy's multivariate_t.
    section = smoke[0]["sections"]["student_t"]
    (table,) = section.tables
    assert column(table, "backend") == ["JAX"]
    assert column(table, "status") == ["ok"]
    for name in ("compile s (Gaussian)", "compile s (t)", "us per call (Gaussian)",
                 "us per call (t)", "ns per point (Gaussian)", "ns per point (t)",
                 "ratio (t / Gaussian)", "ratio (fastest rounds)"):
        assert all(positive(v) for v in column(table, name)), name
    assert all(0 <= v < 1e-8 for v in column(table, "t value rel. error vs scipy"))
    (target,) = [t for t in smoke[0]["targets"] if "issue 19" in t.name]
    assert target.met is None and "D=2 N=3e2" in target.measured


def test_predict_rows(smoke):
    # 2,000 rows x 20 draws at the smoke size: the kernel on all CPUs and one thread, the
    # NumPy reference (scaled from 200 rows) and scikit-learn, each timed; the kernel's
    # probabilities agree with the reference's.
    section = smoke[0]["sections"]["predict"]
    (table,) = section.tables
    assert column(table, "status") == ["ok"] * 4
    assert all(positive(v) for v in column(table, "seconds"))
    assert all(positive(v) for v in column(table, "x faster than NumPy"))
    assert positive(table.rows[0]["peak RSS MB"])
    assert section.data["result"]["max_abs_diff"] < 1e-12
    (target,) = [t for t in smoke[0]["targets"] if t.name.startswith("predict_proba")]
    assert target.met is None and "N=2,000 x 20 draws" in target.measured


@pytest.mark.slow
def test_outofcore_rows(smoke_slow):
    # D=2, N=2e4 at the smoke size: the store written chunk by chunk, fitted from its path.
    section = smoke_slow[0]["sections"]["outofcore"]
    table = section.tables[0]
    assert column(table, "status") == ["ok"]
    for name in ("store MB", "write s", "fit s", "peak RSS MB", "mean error (Mahalanobis)"):
        assert all(positive(v) for v in column(table, name)), name
    (target,) = [t for t in smoke_slow[0]["targets"] if "zarr store" in t.name]
    assert target.met is None and "D=2 N=2e4" in target.measured


@pytest.mark.slow
def test_memory_rows(smoke_slow):
    # N=1e3 at the smoke size: every method and prediction measured (in this process with
    # --no-isolate, so the numbers are the test process's, not checked beyond being there).
    section = smoke_slow[0]["sections"]["memory"]
    peak, extra, seconds = section.tables
    assert column(peak, "method") == ["nuts", "advi", "minibatch advi", "map",
                                      "predict_proba", "out of core"]
    for table in (peak, seconds):
        assert all(positive(v) for v in column(table, "N=1e+03")), table.title
