"""Problem sizes of the presets: ``smoke`` (the test suite), ``small``, ``full`` (the issue's)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    # nuts: (D, N) cases, K=3; the last case is the one the targets name.
    nuts_cases: tuple[tuple[int, int], ...]
    draws: int
    tune: int
    chains: int
    attempts: int  # fits per configuration, doubling the draws until converged
    timeout_s: float  # per fit, when isolated in a subprocess
    # logp: (D, N) of the reference point, then the scaling in N (at the reference D)
    # and in D (at the reference N).
    logp_ref: tuple[int, int]
    logp_n: tuple[int, ...]
    logp_d: tuple[int, ...]
    logp_seconds: float  # timing budget per measurement
    logp_candidate_scaling: bool  # also time the candidate log-likelihood at every size
    # cold: (D, N) of the first fit in a fresh process, and its fit settings.
    cold_case: tuple[int, int]
    cold_fit: dict
    # vi: (D, N, K) of ADVI / full-rank ADVI / minibatch ADVI, and of the large minibatch run.
    vi_case: tuple[int, int, int]
    vi_methods: tuple[str, ...]  # on vi_case: "advi", "fullrank_advi", "minibatch_advi"
    vi_max_iter: int
    minibatch_case: tuple[int, int, int]
    batch_size: int
    # nuts: also compile and run one chain alone, to time warm-up and sampling apart.
    profile_split: bool
    # missing: (D, N) at K=3, the fraction of entries missing (MCAR), the missing-data
    # graphs timed ("fused", "batched", "per pattern"), the timing budget per case (both functions)
    # and the timeout of a case in its own process: about 3 minutes of compilation for the
    # missing-data function, beside the complete-data one's and the timing.
    missing_case: tuple[int, int] = (5, 10_000)
    missing_fraction: float = 0.2
    missing_variants: tuple[str, ...] = ("fused", "batched")
    missing_seconds: float = 4.0
    missing_timeout_s: float = 215.0
    # student_t: (D, N) at K=3 of the t-mixture kernel against the Gaussian one, the degrees
    # of freedom of every component, the timing budget per backend (both functions) and the
    # timeout of a backend's case in its own process.
    student_t_case: tuple[int, int] = (5, 10_000)
    student_t_dof: float = 5.0
    student_t_seconds: float = 4.0
    student_t_timeout_s: float = 215.0
    # predict: (N, draws, K, D) of prediction over the draws, the rows the NumPy reference
    # is timed on (scaled to N), the timeout of the case's process.
    predict_case: tuple[int, int, int, int] = (1_000_000, 200, 10, 10)
    predict_ref_n: int = 2_000
    predict_timeout_s: float = 900.0
    # outofcore: (D, N, K) of minibatch ADVI from a zarr store (batch_size, vi_max_iter as
    # the vi section's), the timeout of its process (writing the store included).
    outofcore_case: tuple[int, int, int] = (10, 10_000_000, 10)
    outofcore_timeout_s: float = 1800.0
    # memory: the N of the peak-memory table (every method and prediction, D=10, K=3), the
    # timeout of each case's process.
    memory_n: tuple[int, ...] = (10_000, 100_000, 1_000_000, 10_000_000)
    memory_timeout_s: float = 1800.0

    @property
    def target_case(self) -> tuple[int, int]:
        return self.nuts_cases[-1]


SIZES = {
    "smoke": Size(
        name="smoke",
        nuts_cases=((2, 300),), draws=100, tune=100, chains=2, attempts=1, timeout_s=600,
        logp_ref=(2, 1000), logp_n=(), logp_d=(), logp_seconds=0.05,
        logp_candidate_scaling=False,
        cold_case=(2, 300), cold_fit={"draws": 100, "tune": 100},
        vi_case=(2, 300, 3), vi_methods=(), vi_max_iter=200,
        minibatch_case=(2, 3000, 3), batch_size=256, profile_split=False,
        missing_case=(2, 300), missing_seconds=0.05,
        student_t_case=(2, 300), student_t_seconds=0.05,
        predict_case=(2_000, 20, 3, 2), predict_ref_n=200,
        outofcore_case=(2, 20_000, 3), memory_n=(1_000,),
    ),
    "small": Size(
        name="small",
        nuts_cases=((2, 1000),), draws=1000, tune=1000, chains=2, attempts=2, timeout_s=1200,
        logp_ref=(5, 10_000), logp_n=(1000, 10_000, 100_000), logp_d=(1, 2, 5, 10),
        logp_seconds=1.0, logp_candidate_scaling=True,
        cold_case=(2, 1000), cold_fit={},
        vi_case=(5, 10_000, 3), vi_methods=("advi", "fullrank_advi", "minibatch_advi"),
        vi_max_iter=10_000, minibatch_case=(5, 100_000, 5), batch_size=1024,
        profile_split=True, missing_variants=("fused",), missing_seconds=2.0,
        student_t_seconds=2.0, predict_case=(100_000, 200, 10, 10), predict_ref_n=1_000,
        outofcore_case=(10, 1_000_000, 10), memory_n=(10_000, 100_000, 1_000_000),
    ),
    "full": Size(
        name="full",
        nuts_cases=((2, 1000), (2, 10_000), (5, 10_000)), draws=1000, tune=1000, chains=2,
        attempts=2, timeout_s=3600,
        logp_ref=(5, 10_000), logp_n=(1000, 10_000, 100_000, 1_000_000),
        logp_d=(1, 2, 5, 10, 20), logp_seconds=2.0, logp_candidate_scaling=True,
        cold_case=(5, 10_000), cold_fit={},
        vi_case=(5, 10_000, 3), vi_methods=("advi", "fullrank_advi", "minibatch_advi"),
        vi_max_iter=10_000, minibatch_case=(10, 1_000_000, 10), batch_size=1024,
        profile_split=True,
    ),
}

# The targets, at the full size.
TARGET_NUTS_SECONDS = 15.0
TARGET_NUTS_SPEEDUP = 3.0
TARGET_NS_PER_POINT = 60.0
TARGET_MINIBATCH_SECONDS = 120.0
TARGET_COLD_SECONDS = 30.0
TARGET_PREDICT_SECONDS = 60.0  # issue 22: 1e6 rows x 200 draws, K=10, D=10
TARGET_PREDICT_MB = 2000.0
PREDICT_CASE = (1_000_000, 200, 10, 10)
TARGET_OUTOFCORE_SECONDS = 600.0  # issue 22: D=10 N=1e7 K=10 from a zarr store
TARGET_OUTOFCORE_MB = 2000.0
OUTOFCORE_CASE = (10, 10_000_000, 10)
TARGET_REALDATA_RATIO = 3.0  # issue 17: breast cancer [:5] vs its blobs twin
# Missing entries: log-density+gradient per observed entry at D=5 N=1e4 K=3, 20% MCAR, at
# most this many times the complete-data kernel's per entry (same run).
TARGET_MISSING_RATIO = 2.0
# Issue 19: the t-mixture log-density+gradient per point at D=5 N=1e4 K=3, at most this many
# times the Gaussian kernel's (same run).
TARGET_STUDENT_T_RATIO = 1.5
# A fitted mean "recovers" the true one within this Mahalanobis distance (true covariance).
RECOVERY_TOLERANCE = 0.1
