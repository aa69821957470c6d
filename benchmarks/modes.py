"""Cost of the mode search (issue 17, item 1): its share of a default fit.

    python -m benchmarks.modes [N] [D] [K]

One default NUTS fit (2 chains x (1000 tune + 1000 draws)) of ``make_mixture(N, K, D,
random_state=0)`` (N=10,000, D=5, K=3 by default), with the search's two phases timed
inside the same fit: compiling the log posterior and its gradient, and polishing every
distinct EM optimum by L-BFGS. Prints one JSON line: the seconds of each, of the whole fit,
and the search's share (the issue's aim: at most 20%). Results: benchmarks/RESULTS.md,
"Mode search".
"""

from __future__ import annotations

import json
import sys
import time


def main(n: int = 10_000, d: int = 5, k: int = 3) -> dict:
    import bayesgmm
    from bayesgmm.datasets import make_mixture
    from bayesgmm.fitting import modes, pipeline

    X = make_mixture(n, k, d, random_state=0).X
    spent = {"compile": 0.0, "polish": 0.0, "n_modes": 0}
    real_init, real_search = modes.PosteriorOptimizer.__init__, pipeline.search_modes

    def timed_init(self, *args, **kwargs):
        t0 = time.perf_counter()
        real_init(self, *args, **kwargs)
        spent["compile"] += time.perf_counter() - t0

    def timed_search(*args, **kwargs):
        t0 = time.perf_counter()
        found = real_search(*args, **kwargs)
        spent["polish"] += time.perf_counter() - t0
        spent["n_modes"] = len(found)
        return found

    modes.PosteriorOptimizer.__init__ = timed_init
    pipeline.search_modes = timed_search
    t0 = time.perf_counter()
    bayesgmm.fit(X, k, random_state=0)
    total = time.perf_counter() - t0
    search = spent["compile"] + spent["polish"]
    return {"n": n, "d": d, "k": k, "fit_s": round(total, 2),
            "search_compile_s": round(spent["compile"], 2),
            "search_polish_s": round(spent["polish"], 2), "distinct_modes": spent["n_modes"],
            "search_share": round(search / total, 3)}


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:]))))
