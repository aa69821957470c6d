"""nutpie on the numba backend, with C callbacks that numba caches on disk.

``nutpie.compile_pymc_model(backend="numba")`` wraps the model's log-density+gradient in a
``numba.cfunc`` that numba cannot cache (it reads nutpie's data record through dynamic
globals). Every fit then optimises the whole model's LLVM module again, because a function
loaded from numba's cache cannot be linked into a new one, and that optimisation was most of
nutpie's compile time with every cache warm (docs/fitting.md, "Why these defaults").

Here nutpie's own helper builds the same PyTensor functions (log-density+gradient of the flat
unconstrained vector, and the map to the stored variables), and the two C callbacks are
generated source registered with PyTensor's numba cache under a key derived from PyTensor's
key for the compiled graph. The data enter as an argument (the model must hold them in its
``pm.Data`` container ``x_data``, see ``build_model(shared_data=True)``): the callback reads
the data's address and row count from a small array nutpie hands it, so the compiled code
depends on neither the values nor the number of rows. Every data set fitted with the same
model structure (K, D, covariance structure, priors) then loads the callbacks from the cache,
and samples the same draws at the same speed.

It leans on nutpie helpers that are not public (``_make_functions``,
``_prepare_dims_and_coords``, ``CompiledPyMCModel``) and on PyTensor's numba cache; where
one is missing or changed, or nutpie's own callbacks have other C signatures than these,
:func:`compile_numba` falls back to ``nutpie.compile_pymc_model``, which gives the same draws
more slowly.
"""

from __future__ import annotations

import warnings

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["compile_numba"]

#: Part of the cache keys: change it whenever the generated sources below change. (2: the
#: module moved from bayesgmm._nutpie, and its name is now part of the key too.)
_CALLBACK_VERSION = 2

_LOGP_SRC = """
def bayesgmm_logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    meta = carray(user_data_, (2,), uint64)
    data = carray(as_voidptr(meta[0]), (meta[1], {n_features}), float64)
    x = carray(x_, ({n_dim},))
    value, grad = fgraph(x, data)
    status = 0
    for i in range({n_dim}):
        g = grad[i]
        out_[i] = g
        if not isfinite(g):
            status = 3
    logp_[0] = value
    if status == 0 and not isfinite(value):
        status = 4
    return status
"""

_EXPAND_SRC = """
def bayesgmm_expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim} or expanded != {n_expanded}:
        return -1
    x = carray(x_, ({n_dim},))
    values = fgraph(x)[0]
    for i in range({n_expanded}):
        out_[i] = values[i]
    return 0
"""

# nutpie's C signatures: logp(dim, x, grad out, logp out, user data) and
# expand(dim, n_expanded, x, out, user data); 0 means success.
_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double),
                        types.CPointer(types.double), types.CPointer(types.double),
                        types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)


@intrinsic
def _as_voidptr(typingctx, address):
    """An integer address as a ``void*`` (for ``numba.carray``)."""
    sig = types.voidptr(address)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


def _callback(src: str, name: str, fgraph, graph_key: str | None, signature, **sizes):
    """Compile a generated C callback around ``fgraph``, cached when PyTensor cached the graph."""
    from pytensor.link.numba.cache import compile_numba_function_src

    env = {"fgraph": fgraph, "carray": numba.carray, "as_voidptr": _as_voidptr,
           "isfinite": np.isfinite, "uint64": np.uint64, "float64": np.float64,
           # numba rebuilds a cached function's environment from its module's name.
           "__name__": __name__}
    code = src.format(**sizes)
    key = None
    if graph_key is not None:
        shape = "_".join(f"{k}{v}" for k, v in sorted(sizes.items()))
        # The module's name is part of the key: numba rebuilds a cached callback's
        # environment by importing the module it was compiled in, so an entry written by a
        # module of another name (an older layout of the package) must not be found.
        key = f"{name}_v{_CALLBACK_VERSION}_{__name__}_{shape}_{graph_key}"
    py_func = compile_numba_function_src(code, name, global_env=env, cache_key=key)
    return numba.cfunc(signature, cache=key is not None)(py_func)


def _fallback(model, initial_point: dict, reason: str):
    import nutpie

    warnings.warn(f"bayesgmm's cached nutpie path is unavailable ({reason}); compiling with "
                  "nutpie.compile_pymc_model instead (same draws, slower compilation).",
                  RuntimeWarning, stacklevel=4)
    return nutpie.compile_pymc_model(model, backend="numba", gradient_backend="pytensor",
                                     initial_points=initial_point, jitter_rvs=set())


def compile_numba(model, initial_point: dict):
    """Compile ``model`` for ``nutpie.sample`` with numba, every chain starting at one point.

    Parameters
    ----------
    model : pymc.Model
        Built with ``build_model(..., shared_data=True)``: the data in ``x_data``.
    initial_point : dict
        Values of the free variables on the constrained scale (no jitter is added).

    Returns
    -------
    nutpie compiled model
        Accepted by ``nutpie.sample``; the draws carry the model's variable names and dims.
    """
    from ..likelihood.ops import exact_numba

    with exact_numba():  # same draws whether the graphs are compiled now or loaded
        return _compile(model, initial_point)


def _compile(model, initial_point: dict):
    from pymc.initial_point import make_initial_point_fn

    try:
        from nutpie.compile_pymc import (
            CompiledPyMCModel,
            _make_c_expand_func,
            _make_c_logp_func,
            _make_functions,
            _prepare_dims_and_coords,
            _wrap_with_lock,
            make_user_data,
        )
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
    except ImportError as err:
        return _fallback(model, initial_point, str(err))
    if "x_data" not in model.named_vars:
        return _fallback(model, initial_point, "the model holds its data as a constant")

    point_fn = _wrap_with_lock(make_initial_point_fn(
        model=model, overrides=initial_point, jitter_rvs=set(), return_transformed=True))
    with warnings.catch_warnings():
        # nutpie's helper compiles a shape probe in PyTensor's C mode, which has no BLAS
        # here; nothing of bayesgmm runs there.
        warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
        n_dim, n_expanded, logp_pt, expand_pt, flat_point_fn, shape_info, reparameterized = (
            _make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                            pymc_initial_point_fn=point_fn))
    data_var = model["x_data"]
    if [v.name for v in logp_pt.get_shared()] != [data_var.name] or expand_pt.get_shared():
        return _fallback(model, initial_point, "unexpected shared variables")
    logp_fn, expand_fn = logp_pt.vm.jit_fn, expand_pt.vm.jit_fn
    # nutpie's own callbacks' C signatures (built, not compiled): ours must match them, or
    # nutpie would call our code with other arguments.
    nutpie_data = make_user_data({}, {})
    signatures = (_make_c_logp_func(n_dim, logp_fn, nutpie_data, [], {})[1],
                  _make_c_expand_func(n_dim, n_expanded, expand_fn, nutpie_data, [], {})[1])
    if signatures != (_LOGP_SIG, _EXPAND_SIG):
        return _fallback(model, initial_point, "nutpie's callback signatures changed")
    data = np.ascontiguousarray(data_var.get_value(), dtype=np.float64)
    data.flags.writeable = False
    logp_cb = _callback(_LOGP_SRC, "bayesgmm_logp_callback", logp_fn,
                        CACHED_SRC_FUNCTIONS.get(logp_fn.py_func), _LOGP_SIG,
                        n_dim=n_dim, n_features=data.shape[1])
    expand_cb = _callback(_EXPAND_SRC, "bayesgmm_expand_callback", expand_fn,
                          CACHED_SRC_FUNCTIONS.get(expand_fn.py_func), _EXPAND_SIG,
                          n_dim=n_dim, n_expanded=n_expanded)
    # What the logp callback reads through its user-data pointer: the data's address and rows.
    user_data = np.array([data.ctypes.data, data.shape[0]], dtype=np.uint64)
    dims, coords = _prepare_dims_and_coords(model, shape_info, reparameterized)
    try:
        return CompiledPyMCModel(
            _n_dim=n_dim, dims=dims, _coords=coords,
            _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
            compiled_logp_func=logp_cb, compiled_expand_func=expand_cb,
            initial_point_func=flat_point_fn,
            # nutpie keeps these alive with the compiled model; user_data points into data.
            shared_data={"x_data": data}, shared_var_keys={}, user_data=user_data,
            n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_pt,
            expand_func=expand_pt, reparameterized_names=reparameterized)
    except TypeError as err:  # nutpie changed its compiled-model record
        return _fallback(model, initial_point, str(err))
