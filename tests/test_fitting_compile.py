"""How a fit compiles: the backend for each sampler and size; and same seed, same draws,
whether the compiled model was compiled now or loaded from a cache.

numba keeps several copies of a kernel: its own, and one inside every function it is linked
into (PyTensor's wrapper, the compiled graph, nutpie's callback), optimised again there. A
process that compiles calls the kernel's own copy; a process that loads the graph from the
on-disk cache runs the copy inside it. With fastmath flags that let LLVM choose the rounding
("contract", "reassoc", ...) the copies differed in the last bit, and NUTS turned that into
different draws (nutpie 5e-9, PyMC's sampler 8.6e-4). The kernels now compile without them,
and bayesgmm compiles its PyTensor graphs for numba without fastmath (``exact_numba``).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import need

# One fit per case, in a subprocess whose caches are the given directories.
_FIT_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    from bayesgmm import BayesianGMM, FitWarning
    from bayesgmm.datasets import make_mixture

    cases, out = json.loads(sys.argv[1]), sys.argv[2]
    X = make_mixture(150, 3, 2, separation=6.0, random_state=7).X
    arrays = {}
    for name, kwargs in cases.items():
        with warnings.catch_warnings():
            # Chains this short cannot pass R-hat/ESS; reproducibility is the point here.
            warnings.simplefilter("ignore", FitWarning)
            fit = BayesianGMM(3, random_state=5, **kwargs).fit(X)
        for var in ("weights", "means", "covariances"):
            arrays[f"{name}/{var}"] = fit.idata_["posterior"][var].to_numpy()
    np.savez(out, **arrays)
""")

_NUTS = dict(method="nuts", draws=60, tune=60, chains=2)
_CASES = {
    # PyMC's sampler and nutpie compile with numba (its on-disk caches are the point);
    # backend="numba" asks for it on small data.
    "pymc": dict(_NUTS, sampler="pymc", backend="numba"),
    "nutpie": dict(_NUTS, sampler="nutpie", backend="numba"),
    "numpyro": dict(_NUTS, sampler="numpyro", backend="jax"),
    "blackjax": dict(_NUTS, sampler="blackjax", backend="jax"),
    "advi": dict(method="advi", draws=50, max_iter=400, backend="numba"),
    "map": dict(method="map", backend="numba"),
}


def _fit_in_subprocess(cases, cache, out):
    env = dict(os.environ,
               PYTENSOR_FLAGS=f"base_compiledir={cache / 'pytensor'}",
               NUMBA_CACHE_DIR=str(cache / "numba"))
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", _FIT_SCRIPT, json.dumps(cases), str(out)],
                   env=env, check=True, timeout=1800)
    return np.load(out)


@pytest.mark.slow  # two fresh processes, the first compiling everything: minutes
def test_same_seed_same_draws_from_empty_and_filled_caches(tmp_path):
    for sampler in ("nutpie", "numpyro", "blackjax"):
        need(sampler)
    cases = _CASES
    cache = tmp_path / "cache"  # private, empty: the first process compiles everything
    cold = _fit_in_subprocess(cases, cache, tmp_path / "cold.npz")
    assert any((cache / "numba").iterdir()) and any((cache / "pytensor" / "numba").iterdir())
    warm = _fit_in_subprocess(cases, cache, tmp_path / "warm.npz")  # loads them
    assert sorted(cold.files) == sorted(warm.files)
    for key in cold.files:
        np.testing.assert_array_equal(cold[key], warm[key], err_msg=key)


def test_large_data_compiles_with_numba():
    # Above BLACKJAX_MAX_ROWS nutpie and PyMC's sampler compile with numba, which runs the
    # fused likelihood kernel (46 ns per point at D=5, K=3 against 118 in JAX); an explicit
    # backend wins, and nutpie, which has no C backend, takes numba for "c".
    from bayesgmm.fitting.compile import BLACKJAX_MAX_ROWS, plan_compilation

    def plan(backend, n, sampler="nutpie", method="nuts"):
        return plan_compilation(backend, method=method, sampler=sampler, n_obs=n)

    assert plan("auto", BLACKJAX_MAX_ROWS).nuts_backend == "jax"
    assert plan("auto", BLACKJAX_MAX_ROWS + 1).nuts_backend == "numba"
    assert plan("jax", 10**6).nuts_backend == "jax"
    assert plan("numba", 10).nuts_backend == "numba"
    assert plan("c", 10).nuts_backend == "numba"
    # PyMC's sampler on large data compiles with numba even where "auto" means JAX; VI and
    # MAP keep JAX; the C backend stays C.
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc").compile_kwargs == {"mode": "NUMBA"}
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc", "advi").compile_kwargs == {"mode": "JAX"}
    assert plan("c", 10, "pymc").compile_kwargs == {"mode": "CVM"}
    # The data live in a pm.Data container (one cached compilation for every data set)
    # exactly when nutpie or PyMC's sampler compile with numba.
    assert plan("auto", BLACKJAX_MAX_ROWS + 1, "pymc").shared_data
    assert plan("numba", 10, "nutpie").shared_data
    assert not plan("numba", 10, "blackjax").shared_data
    assert not plan("numba", 10, "nutpie", "advi").shared_data
    assert not plan("auto", BLACKJAX_MAX_ROWS, "nutpie").shared_data
