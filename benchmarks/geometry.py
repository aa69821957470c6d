"""Hard geometry (issue 17, item 3): leapfrog steps per draw with each mass matrix.

One fit per call, printed as one JSON line:

    python -m benchmarks.geometry DATA SAMPLER MASS [K]

DATA: "breast_cancer" (scikit-learn's, first 5 columns: radius, texture, perimeter, area,
smoothness; K=4), "blobs" (``make_mixture(569, 4, 5, random_state=0)``, K=4) or "blobs_10k"
(``make_mixture(10_000, 3, 5, random_state=0)``, K=3). SAMPLER: "blackjax" or "nutpie".
MASS: "diag", "dense" (blackjax) or "low_rank" (nutpie). Defaults: 2 chains, 1000 tune +
1000 draws, random_state=0. Results: benchmarks/RESULTS-geometry.md.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def load(name: str):
    """(X, K) of a case; the data come from :func:`benchmarks.realdata.load`."""
    from .realdata import load as load_data

    cases = {"breast_cancer": ("breast_cancer_5", 4), "blobs": ("blobs:569:5:4", 4),
             # nutpie's own size (above BLACKJAX_MAX_ROWS)
             "blobs_10k": ("blobs:10000:5:3", 3)}
    if name not in cases:
        raise ValueError(name)
    data, k = cases[name]
    return load_data(data, seed=0)[0], k


def smallest_correlation_eigenvalue(X) -> float:
    """Smallest eigenvalue of the columns' correlation matrix (1: uncorrelated, 0: collinear)."""
    return float(np.linalg.eigvalsh(np.corrcoef(np.asarray(X, dtype=float), rowvar=False))[0])


def run(data: str, sampler: str, mass: str, k: int | None = None) -> dict:
    import bayesgmm
    from bayesgmm.fitting import blackjax_driver, nuts

    X, k_default = load(data)
    k = k or k_default
    if sampler == "blackjax":
        real = blackjax_driver.sample_blackjax

        def sample_blackjax(*args, **kwargs):
            return real(*args, dense_mass_matrix=mass == "dense", **kwargs)

        blackjax_driver.sample_blackjax = sample_blackjax
    else:
        nuts.NUTPIE_ADAPTATION = mass
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bayesgmm.fit(X, k, sampler=sampler, random_state=0)
        seconds = time.perf_counter() - t0
        diag = bayesgmm.diagnose(result)
    stats = result["sample_stats"]
    steps = stats["n_steps"] if "n_steps" in stats else 2 ** stats["tree_depth"]
    steps_per_draw = float(np.asarray(steps).mean())
    ess = float(diag.min_ess_bulk)
    n_draws = int(np.asarray(steps).size)
    return {
        "data": data, "sampler": sampler, "mass": mass, "k": k,
        "min_eig_corr": round(smallest_correlation_eigenvalue(X), 5),
        "steps_per_draw": round(steps_per_draw, 1),
        "min_ess_bulk": round(ess, 0), "max_rhat": round(float(diag.max_rhat), 4),
        "divergences": int(np.asarray(stats["diverging"]).sum()),
        "ess_per_1000_grads": round(1000 * ess / (steps_per_draw * n_draws), 2),
        # blackjax only: the warm-up's leapfrog steps per warm-up step (tune = draws).
        "tune_steps_per_draw": (round(stats.attrs["tune_n_steps"] / n_draws, 1)
                                if "tune_n_steps" in stats.attrs else None),
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2], sys.argv[3],
                         int(sys.argv[4]) if len(sys.argv) > 4 else None)), flush=True)
