"""Same seed, same draws, whether the compiled model was compiled now or loaded from a cache.

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

import numba
import numpy as np
import pytest
from helpers import need

from bayesgmm.likelihood import kernels


def _inlined(kernel):
    """The kernel's source compiled inside another function, as it runs in a compiled graph."""
    options = {key: value for key, value in kernel.targetoptions.items()
               if key not in ("cache", "inline", "nopython")}
    return numba.njit(inline="always", **options)(kernel.py_func)


def _callers():
    loglik, gradient = _inlined(kernels.loglik_kernel), _inlined(kernels.gradient_kernel)

    @numba.njit
    def call_loglik(X, log_weights, means, prec, out, resp):
        loglik(X, log_weights, means, prec, out, resp)

    @numba.njit
    def call_gradient(X, means, prec, resp, g, g_log_weights, g_means, g_prec):
        gradient(X, means, prec, resp, g, g_log_weights, g_means, g_prec)

    return call_loglik, call_gradient


def test_kernels_give_the_same_bits_inlined_into_another_function():
    # Under the old fastmath flags the copy compiled inside a caller differed from the
    # kernel's own in the last bits of the gradient for every one of these 20 draws.
    rng = np.random.default_rng(1)
    n, d, k = 203, 3, 3  # not a multiple of the block size: the tail is exercised too
    X = rng.normal(size=(n, d))
    loglik, gradient = _callers()
    for _ in range(20):
        log_weights = np.log(rng.dirichlet(np.ones(k)))
        means = rng.normal(size=(k, d))
        prec = np.tril(rng.normal(size=(k, d, d)) * 0.3) + 1.5 * np.eye(d)
        g = rng.normal(size=n)
        results = []
        for fns in ((kernels.loglik_kernel, kernels.gradient_kernel), (loglik, gradient)):
            out, resp = np.empty(n), np.empty((k, n))
            fns[0](X, log_weights, means, prec, out, resp)
            grads = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
            fns[1](X, means, prec, resp, g, *grads)
            results.append(np.concatenate([out, resp.ravel(), *(v.ravel() for v in grads)]))
        np.testing.assert_array_equal(results[0], results[1])


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
