"""nutpie's numba path (bayesgmm.fitting.nutpie_driver): C callbacks cached on disk, data
passed by address.

The callbacks are checked against PyMC's own compiled log-density, gradient and constrained
values at random points; a second data set of another size must load them from the cache and
read its own data. The model has the structure of the ``blobs`` fits in test_fitting_nuts (K=3,
D=2, default priors), so whichever test runs first fills the cache for the other.
"""

import ctypes

import numpy as np
import pytest
from helpers import need

from bayesgmm.datasets import make_mixture
from bayesgmm.fitting.start import em_start
from bayesgmm.model import build_model
from bayesgmm.standardize import Standardizer

_DOUBLE_P = ctypes.POINTER(ctypes.c_double)


def _model(X):
    """The model and its EM start (constrained values), as fit builds them."""
    Z = Standardizer.fit(X).transform(X)
    return build_model(Z, 3, shared_data=True), em_start(Z, 3, random_state=0).point()


def _logp_callback(compiled, x):
    """Call the compiled logp callback as nutpie does: status, log density, gradient."""
    fn = compiled.compiled_logp_func.ctypes
    grad = np.empty_like(x)
    value = np.empty(1)
    status = fn(x.size, x.ctypes.data_as(_DOUBLE_P), grad.ctypes.data_as(_DOUBLE_P),
                value.ctypes.data_as(_DOUBLE_P), ctypes.c_void_p(compiled.user_data.ctypes.data))
    return status, value[0], grad


def _expand_callback(compiled, x):
    fn = compiled.compiled_expand_func.ctypes
    out = np.empty(compiled.n_expanded)
    status = fn(x.size, out.size, x.ctypes.data_as(_DOUBLE_P), out.ctypes.data_as(_DOUBLE_P),
                ctypes.c_void_p(compiled.user_data.ctypes.data))
    return status, out


def _check_against_pymc(model, compiled, rng):
    # PyMC's own functions, compiled by JAX (the fused Op's JAX implementation).
    logp = model.compile_logp(mode="JAX")
    dlogp = model.compile_dlogp(mode="JAX")
    names, slices, shapes = compiled.shape_info
    free = {v.name for v in model.value_vars}
    # Every stored variable as a function of the unconstrained values (what nutpie keeps).
    outputs = model.unobserved_value_vars
    values_fn = model.compile_fn(outputs, inputs=model.value_vars, on_unused_input="ignore",
                                 mode="JAX")
    for _ in range(3):
        x = rng.normal(scale=0.5, size=compiled.n_dim)
        point = {n: x[s].reshape(shape)
                 for n, s, shape in zip(names, slices, shapes, strict=True) if n in free}
        status, value, grad = _logp_callback(compiled, x)
        assert status == 0
        np.testing.assert_allclose(value, logp(point), rtol=1e-10)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)
        status, expanded = _expand_callback(compiled, x)
        assert status == 0
        by_name = dict(zip([v.name for v in outputs], values_fn(point), strict=True))
        expected = np.concatenate([np.ravel(by_name[n]) for n in names])
        np.testing.assert_allclose(expanded, expected, rtol=1e-12)


def test_callbacks_match_pymc_and_new_data_reuse_the_cache(blobs):
    need("nutpie")
    from bayesgmm.fitting.nutpie_driver import compile_numba

    rng = np.random.default_rng(3)
    model, start = _model(blobs.X)
    compiled = compile_numba(model, start)
    _check_against_pymc(model, compiled, rng)

    # Another data set, another size, same structure: loaded from the cache, reading the new
    # data through the user-data pointer (not the first data set baked into the code).
    second = make_mixture(257, 3, 2, separation=3.0, random_state=8).X
    model2, start2 = _model(second)
    compiled2 = compile_numba(model2, start2)
    assert compiled2.compiled_logp_func.cache_hits == 1
    assert compiled2.compiled_expand_func.cache_hits == 1
    _check_against_pymc(model2, compiled2, rng)
    x = rng.normal(scale=0.5, size=compiled.n_dim)
    assert _logp_callback(compiled, x)[1] != _logp_callback(compiled2, x)[1]


def test_non_finite_log_density_is_reported_to_nutpie(blobs):
    need("nutpie")
    from bayesgmm.fitting.nutpie_driver import compile_numba

    model, start = _model(blobs.X)
    compiled = compile_numba(model, start)
    x = np.zeros(compiled.n_dim)
    x[0] = np.nan
    status, _, _ = _logp_callback(compiled, x)
    assert status in (3, 4)  # nutpie's codes for a non-finite gradient or log density


def test_model_with_constant_data_falls_back_to_nutpie(monkeypatch):
    need("nutpie")
    import nutpie

    from bayesgmm.fitting.nutpie_driver import compile_numba

    calls = []
    monkeypatch.setattr(nutpie, "compile_pymc_model",
                        lambda model, **kwargs: calls.append(kwargs) or "compiled")
    X = make_mixture(60, 2, 2, random_state=1).X
    model = build_model(Standardizer.fit(X).transform(X), 2)  # data as a constant
    start = {"weights": np.array([0.25, 0.75])}
    with pytest.warns(RuntimeWarning, match="holds its data as a constant"):
        assert compile_numba(model, start) == "compiled"
    assert calls == [{"backend": "numba", "gradient_backend": "pytensor",
                      "initial_points": start, "jitter_rvs": set()}]


def test_other_nutpie_callback_signature_falls_back(monkeypatch, blobs):
    # If nutpie changed the C signature of its callbacks, ours would be called with other
    # arguments: compile_numba must notice and let nutpie compile instead.
    need("nutpie")
    import nutpie
    import nutpie.compile_pymc as cp
    from numba.core import types

    from bayesgmm.fitting.nutpie_driver import compile_numba

    real = cp._make_c_logp_func

    def changed(*args, **kwargs):
        fn, sig = real(*args, **kwargs)
        return fn, types.int64(*sig.args, types.voidptr)

    monkeypatch.setattr(cp, "_make_c_logp_func", changed)
    monkeypatch.setattr(nutpie, "compile_pymc_model", lambda model, **kwargs: "compiled")
    model, start = _model(blobs.X)
    with pytest.warns(RuntimeWarning, match="callback signatures changed"):
        assert compile_numba(model, start) == "compiled"
