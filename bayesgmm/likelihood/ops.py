"""The mixture log-likelihood as PyTensor Ops, and the backends that compile them.

``MixtureLogLik()(X, log_weights, means, prec)`` returns the per-row log-likelihood (N,) and
the responsibilities (K, N) (see :mod:`bayesgmm.likelihood.kernels` for the formulas); its
gradient is a second Op, :class:`MixtureLogLikGrad`. Two implementations, one per PyTensor
backend:

* numba (PyTensor's NUMBA mode; also what :meth:`perform` calls, so the C and Python modes
  use it too): the kernels of :mod:`bayesgmm.likelihood.kernels`.
* JAX: the same formulas in ``jax.numpy``, used by nutpie's, numpyro's and blackjax's
  JAX paths.

:func:`mixture_log_likelihood` is the likelihood term the model uses (the Cholesky factors
inverted in the graph, then the fused Op); :func:`mixture_log_likelihood_graph`, the same
likelihood as a plain PyTensor graph, is its test oracle.
"""

from __future__ import annotations

import functools
import hashlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.linalg import solve_triangular

from . import kernels
from .kernels import LOG_2PI

__all__ = ["MixtureLogLik", "MixtureLogLikGrad", "MaskedMixtureLogLik", "MaskedMixtureLogLikGrad",
           "fused_log_likelihood", "masked_fused_log_likelihood", "core_parameters",
           "mixture_log_likelihood", "mixture_log_likelihood_graph", "exact_numba",
           "kernel_version"]


def _as_float64(x):
    x = pt.as_tensor_variable(x)
    return x if x.dtype == "float64" else pt.cast(x, "float64")


class MixtureLogLik(Op):
    """Per-row mixture log-likelihood and responsibilities; see :mod:`bayesgmm.likelihood.kernels`.

    Inputs: ``X`` (N, D), ``log_weights`` (K,), ``means`` (K, D), ``prec`` (K, D, D) with
    ``prec[k] = L_k^-1``. Outputs: log-likelihood (N,), responsibilities (K, N).
    """

    __props__ = ()

    def make_node(self, X, log_weights, means, prec):
        """The Apply node, inputs cast to float64."""
        X, log_weights, means, prec = map(_as_float64, (X, log_weights, means, prec))
        for var, ndim, name in ((X, 2, "X"), (log_weights, 1, "log_weights"),
                                (means, 2, "means"), (prec, 3, "prec")):
            if var.ndim != ndim:
                raise TypeError(f"MixtureLogLik: {name} must have {ndim} dimensions, "
                                f"got {var.ndim}")
        n = X.type.shape[0]
        k = means.type.shape[0]
        outputs = [pt.tensor(dtype="float64", shape=(n,)),
                   pt.tensor(dtype="float64", shape=(k, n))]
        return Apply(self, [X, log_weights, means, prec], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        out, resp = kernels.loglik(*inputs)
        output_storage[0][0] = out
        output_storage[1][0] = resp

    def infer_shape(self, node, input_shapes):
        """(N,) and (K, N)."""
        n = input_shapes[0][0]
        k = input_shapes[2][0]
        return [(n,), (k, n)]

    def pullback(self, inputs, outputs, output_grads):
        """The gradient through :class:`MixtureLogLikGrad` (none for ``X``)."""
        X, log_weights, means, prec = inputs
        g_loglik, g_resp = output_grads
        if not isinstance(g_resp.type, DisconnectedType):
            raise NotImplementedError("MixtureLogLik: the responsibilities have no gradient")
        if isinstance(g_loglik.type, DisconnectedType):
            return [grad_not_implemented(self, 0, X), log_weights.zeros_like(),
                    means.zeros_like(), prec.zeros_like()]
        g_w, g_m, g_p = MixtureLogLikGrad()(X, means, prec, outputs[1], g_loglik)
        return [grad_not_implemented(self, 0, X), g_w, g_m, g_p]


class MixtureLogLikGrad(Op):
    """Gradient of ``sum_n g_n loglik_n`` from the responsibilities.

    The formulas are in :mod:`bayesgmm.likelihood.kernels`.

    Inputs: ``X`` (N, D), ``means`` (K, D), ``prec`` (K, D, D), ``resp`` (K, N), ``g`` (N,).
    Outputs: the gradients with respect to the log-weights, means and ``prec``.
    """

    __props__ = ()

    def make_node(self, X, means, prec, resp, g):
        """The Apply node, inputs cast to float64."""
        X, means, prec, resp, g = map(_as_float64, (X, means, prec, resp, g))
        outputs = [pt.tensor(dtype="float64", shape=(means.type.shape[0],)),
                   means.type(), prec.type()]
        return Apply(self, [X, means, prec, resp, g], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        for storage, value in zip(output_storage, kernels.gradient(*inputs), strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        """(K,), and the shapes of the means and ``prec``."""
        return [(input_shapes[1][0],), input_shapes[1], input_shapes[2]]


class MaskedMixtureLogLik(Op):
    """:class:`MixtureLogLik` for rows grouped by missingness pattern, all patterns in one Op.

    Inputs: ``X`` (N, D), its rows sorted by pattern (entries off a row's pattern are not
    read); ``starts`` (P + 1,) int, pattern ``p``'s rows being ``starts[p]:starts[p + 1]``;
    ``masks`` (P, D) int, nonzero on the columns pattern ``p`` observes; ``log_weights``
    (K,); ``means`` (K, D); ``prec`` (P, K, D, D), ``prec[p, k]`` the inverse of the lower
    Cholesky factor of component k's covariance on pattern p's columns (read on those
    columns only). Outputs: the per-row log-likelihood of the observed entries (N,) and the
    responsibilities (K, N), rows in the order of ``X``. See
    :func:`bayesgmm.likelihood.kernels.masked_loglik`.
    """

    __props__ = ()

    def make_node(self, X, starts, masks, log_weights, means, prec):
        """The Apply node, float inputs cast to float64, ``starts`` and ``masks`` to int64."""
        X, log_weights, means, prec = map(_as_float64, (X, log_weights, means, prec))
        starts, masks = (pt.cast(pt.as_tensor_variable(v), "int64") for v in (starts, masks))
        for var, ndim, name in ((X, 2, "X"), (starts, 1, "starts"), (masks, 2, "masks"),
                                (log_weights, 1, "log_weights"), (means, 2, "means"),
                                (prec, 4, "prec")):
            if var.ndim != ndim:
                raise TypeError(f"MaskedMixtureLogLik: {name} must have {ndim} dimensions, "
                                f"got {var.ndim}")
        n = X.type.shape[0]
        k = means.type.shape[0]
        outputs = [pt.tensor(dtype="float64", shape=(n,)),
                   pt.tensor(dtype="float64", shape=(k, n))]
        return Apply(self, [X, starts, masks, log_weights, means, prec], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        out, resp = kernels.masked_loglik(*inputs)
        output_storage[0][0] = out
        output_storage[1][0] = resp

    def infer_shape(self, node, input_shapes):
        """(N,) and (K, N)."""
        return [(input_shapes[0][0],), (input_shapes[4][0], input_shapes[0][0])]

    def pullback(self, inputs, outputs, output_grads):
        """The gradient through :class:`MaskedMixtureLogLikGrad` (none for the data)."""
        X, starts, masks, log_weights, means, prec = inputs
        g_loglik, g_resp = output_grads
        if not isinstance(g_resp.type, DisconnectedType):
            raise NotImplementedError("MaskedMixtureLogLik: the responsibilities have no "
                                      "gradient")
        data = [grad_not_implemented(self, i, v) for i, v in enumerate((X, starts, masks))]
        if isinstance(g_loglik.type, DisconnectedType):
            return [*data, log_weights.zeros_like(), means.zeros_like(), prec.zeros_like()]
        g_w, g_m, g_p = MaskedMixtureLogLikGrad()(X, starts, masks, means, prec, outputs[1],
                                                  g_loglik)
        return [*data, g_w, g_m, g_p]


class MaskedMixtureLogLikGrad(Op):
    """Gradient of ``sum_n g_n loglik_n`` for :class:`MaskedMixtureLogLik`.

    Inputs: ``X``, ``starts``, ``masks``, ``means``, ``prec`` as there, the responsibilities
    (K, N) and ``g`` (N,). Outputs: the gradients with respect to the log-weights (K,), the
    means (K, D) and ``prec`` (P, K, D, D; zero off each pattern's columns and above the
    diagonal), from each pattern's weighted sufficient statistics.
    """

    __props__ = ()

    def make_node(self, X, starts, masks, means, prec, resp, g):
        """The Apply node, float inputs cast to float64."""
        X, means, prec, resp, g = map(_as_float64, (X, means, prec, resp, g))
        starts, masks = (pt.cast(pt.as_tensor_variable(v), "int64") for v in (starts, masks))
        outputs = [pt.tensor(dtype="float64", shape=(means.type.shape[0],)),
                   means.type(), prec.type()]
        return Apply(self, [X, starts, masks, means, prec, resp, g], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        for storage, value in zip(output_storage, kernels.masked_gradient(*inputs),
                                  strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        """(K,), and the shapes of the means and ``prec``."""
        return [(input_shapes[3][0],), input_shapes[3], input_shapes[4]]


def masked_fused_log_likelihood(X, starts, masks, log_weights, means, prec):
    """Per-row log-likelihood (N,) through :class:`MaskedMixtureLogLik`."""
    _register_backends()
    return MaskedMixtureLogLik()(X, starts, masks, log_weights, means, prec)[0]


def fused_log_likelihood(X, log_weights, means, prec):
    """Per-row mixture log-likelihood (N,) through :class:`MixtureLogLik`."""
    _register_backends()
    return MixtureLogLik()(X, log_weights, means, prec)[0]


def core_parameters(weights, means, chols, n_components: int | None = None):
    """The likelihood's parameters without batch dimensions, and K.

    CustomDist hands them over with broadcast batch dimensions of length 1. K comes from
    ``n_components``, else from the static shape of ``means``.
    """
    while weights.ndim > 1:
        weights = weights[0]
    while means.ndim > 2:
        means = means[0]
    while chols.ndim > 3:
        chols = chols[0]
    k = n_components if n_components is not None else means.type.shape[0]
    if k is None:
        raise ValueError("the mixture likelihood needs n_components when the means have no "
                         "static shape")
    return weights, means, chols, k


def mixture_log_likelihood(value, weights, means, chols, n_components: int | None = None,
                 n_features: int | None = None):
    """Per-observation log-likelihood of the mixture, assignments summed out.

    Computed by one fused Op (:class:`MixtureLogLik`) from the inverses of
    the Cholesky factors; its gradient comes from the responsibilities and the weighted
    sufficient statistics of the residuals in one more pass over the data.

    Parameters
    ----------
    value : TensorVariable of shape (N, D)
    weights : TensorVariable of shape (K,)
    means : TensorVariable of shape (K, D)
    chols : TensorVariable of shape (K, D, D), lower Cholesky factors of the covariances
    n_components : int, optional
        K, when the static shape of ``means`` does not tell it.
    n_features : int, optional
        D, when the static shape of ``means`` does not tell it.

    Returns
    -------
    TensorVariable of shape (N,)
    """
    weights, means, chols, k = core_parameters(weights, means, chols, n_components)
    d = n_features if n_features is not None else means.type.shape[1]
    if d is None:
        raise ValueError("mixture_log_likelihood needs n_features when the means have no "
                         "static shape")
    eye = pt.eye(int(d))
    prec = pt.stack([solve_triangular(chols[j], eye, lower=True) for j in range(k)])
    return fused_log_likelihood(value, pt.log(weights), means, prec)


def mixture_log_likelihood_graph(value, weights, means, chols, n_components: int | None = None,
                           n_features: int | None = None):
    """:func:`mixture_log_likelihood` written as a PyTensor graph: the test oracle for the fused Op.

    A loop over components: each small Cholesky factor is inverted once, then the residuals
    are multiplied by it. Parameters and result as for :func:`mixture_log_likelihood`; a known
    ``n_features`` also makes the diagonals of the factors read at constant indices.
    """
    weights, means, chols, k = core_parameters(weights, means, chols, n_components)
    d = means.shape[-1] if n_features is None else int(n_features)
    eye = pt.eye(d)
    comps = []
    for j in range(k):
        linv = solve_triangular(chols[j], eye, lower=True)
        z = pt.dot(value - means[j], linv.T)
        if n_features is None:
            diagonal = pt.diagonal(chols[j])
        else:
            # Constant indices: for diagonal factors (covariance_type "diag"/"spherical")
            # PyTensor rewrites pt.diagonal into an arange of a symbolic length, which its
            # JAX backend cannot compile.
            idx = np.arange(d)
            diagonal = chols[j][idx, idx]
        comps.append(-0.5 * pt.sum(z**2, axis=1) - pt.sum(pt.log(diagonal)))
    logp = pt.stack(comps, axis=1) + pt.log(weights) - 0.5 * pt.cast(d, "float64") * LOG_2PI
    return pt.logsumexp(logp, axis=1, keepdims=False)


# ----------------------------------------------------------------------------- backends
@functools.cache
def kernel_version() -> int:
    """A hash of the kernels' and the Ops' modules: part of PyTensor's numba cache key.

    Compiled graphs are cached on disk with the kernels inside them, so a changed kernel
    must change the key, or a graph compiled by an older bayesgmm would be loaded.
    """
    digest = hashlib.sha256()
    # The module names too: numba loads a cached graph by importing the modules its
    # functions were compiled in, so a graph cached by modules of other names (an older
    # layout of the package) must not match.
    for module, path in ((kernels.__name__, Path(kernels.__file__)), (__name__, Path(__file__))):
        digest.update(module.encode() + b"\0" + path.read_bytes())
    return int(digest.hexdigest()[:15], 16)


@contextmanager
def exact_numba():
    """Compile PyTensor graphs for numba without fastmath inside this context.

    PyTensor's default fastmath flags include "contract", "reassoc", "arcp" and "afn", with
    which the copies of a compiled function (see :mod:`bayesgmm.likelihood.kernels`) round
    differently: the same seed gave other draws depending on whether the graph came from the cache
    (nutpie by 5e-9, PyMC's sampler by 8.6e-4). The flag is part of PyTensor's cache key.
    PyMC's parallel chains inherit the compiled functions through ``fork``, Linux's default
    start method up to Python 3.13.
    """
    import pytensor

    with pytensor.config.change_flags(numba__fastmath=False):
        yield


def _register_numba():
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    @register_funcify_default_op_cache_key(MixtureLogLik)
    def _numba_loglik(op, node=None, **kwargs):
        return kernels.loglik, kernel_version()

    @register_funcify_default_op_cache_key(MixtureLogLikGrad)
    def _numba_gradient(op, node=None, **kwargs):
        return kernels.gradient, kernel_version()

    @register_funcify_default_op_cache_key(MaskedMixtureLogLik)
    def _numba_masked_loglik(op, node=None, **kwargs):
        return kernels.masked_loglik, kernel_version()

    @register_funcify_default_op_cache_key(MaskedMixtureLogLikGrad)
    def _numba_masked_gradient(op, node=None, **kwargs):
        return kernels.masked_gradient, kernel_version()


def _jax_forward(X, log_weights, means, prec):
    import jax.numpy as jnp

    k, d = means.shape
    resid = X[None, :, :] - means[:, None, :]  # (K, N, D)
    z = jnp.einsum("kij,knj->kni", jnp.tril(prec), resid)
    logdet = jnp.sum(jnp.log(jnp.diagonal(prec, axis1=1, axis2=2)), axis=1)
    lp = (log_weights + logdet - 0.5 * d * LOG_2PI)[:, None] - 0.5 * jnp.sum(z * z, axis=2)
    top = jnp.max(lp, axis=0)
    e = jnp.exp(lp - top)
    total = jnp.sum(e, axis=0)
    return top + jnp.log(total), e / total


def _jax_gradient(X, means, prec, resp, g):
    import jax.numpy as jnp

    w = resp * g  # (K, N)
    resid = X[None, :, :] - means[:, None, :]  # (K, N, D)
    s0 = jnp.sum(w, axis=1)
    s1 = jnp.einsum("kn,knd->kd", w, resid)
    c = jnp.einsum("kn,kni,knj->kij", w, resid, resid)
    prec = jnp.tril(prec)
    g_means = jnp.einsum("kji,kj->ki", prec, jnp.einsum("kij,kj->ki", prec, s1))
    diag = jnp.diagonal(prec, axis1=1, axis2=2)
    eye = jnp.eye(means.shape[1])
    g_prec = jnp.tril(eye * (s0[:, None] / diag)[:, None, :] - prec @ c)
    return s0, g_means, g_prec


def _jax_rows(starts, masks, n):
    """Each row's pattern (N,) and observed mask (N, D), from the pattern boundaries."""
    import jax.numpy as jnp

    which = jnp.repeat(jnp.arange(masks.shape[0]), jnp.diff(starts), total_repeat_length=n)
    return which, masks[which].astype(jnp.float64)


def _jax_masked_prec(masks, prec):
    """``prec`` lower triangular and zero off each pattern's observed columns."""
    import jax.numpy as jnp

    m = masks.astype(jnp.float64)
    return jnp.tril(prec) * m[:, None, :, None] * m[:, None, None, :]


def _jax_masked_forward(X, starts, masks, log_weights, means, prec):
    import jax.numpy as jnp

    which, row_masks = _jax_rows(starts, masks, X.shape[0])
    prec = _jax_masked_prec(masks, prec)
    resid = (X[None, :, :] - means[:, None, :]) * row_masks[None]  # (K, N, D)
    z = jnp.einsum("nkij,knj->kni", prec[which], resid)
    diag = jnp.diagonal(prec, axis1=2, axis2=3)  # (P, K, D), 0 off the pattern
    m = masks.astype(jnp.float64)[:, None, :]
    logdet = jnp.sum(jnp.log(jnp.where(m > 0, diag, 1.0)), axis=2)  # (P, K)
    lp = (log_weights[:, None] + logdet[which].T
          - 0.5 * LOG_2PI * jnp.sum(row_masks, axis=1)[None] - 0.5 * jnp.sum(z * z, axis=2))
    top = jnp.max(lp, axis=0)
    e = jnp.exp(lp - top)
    total = jnp.sum(e, axis=0)
    return top + jnp.log(total), e / total


def _jax_masked_gradient(X, starts, masks, means, prec, resp, g):
    import jax
    import jax.numpy as jnp

    n_patterns = masks.shape[0]
    which, row_masks = _jax_rows(starts, masks, X.shape[0])
    prec = _jax_masked_prec(masks, prec)
    w = resp * g  # (K, N)
    resid = (X[None, :, :] - means[:, None, :]) * row_masks[None]  # (K, N, D)
    we = w[:, :, None] * resid
    s0 = jax.ops.segment_sum(w.T, which, n_patterns)  # (P, K)
    s1 = jax.ops.segment_sum(jnp.swapaxes(we, 0, 1), which, n_patterns)  # (P, K, D)
    c = jax.ops.segment_sum(jnp.einsum("kni,knj->nkij", we, resid), which, n_patterns)
    g_means = jnp.einsum("pkji,pkj->ki", prec, jnp.einsum("pkij,pkj->pki", prec, s1))
    diag = jnp.diagonal(prec, axis1=2, axis2=3)
    m = masks.astype(jnp.float64)[:, None, :]
    inv_diag = jnp.where(m > 0, s0[:, :, None] / jnp.where(m > 0, diag, 1.0), 0.0)
    eye = jnp.eye(means.shape[1])
    g_prec = jnp.tril(eye * inv_diag[:, :, None, :] - prec @ c)
    return jnp.sum(w, axis=1), g_means, g_prec


def _register_jax():
    import importlib.util

    if importlib.util.find_spec("jax") is None:  # no JAX, no JAX backend
        return
    import jax
    from pytensor.link.jax.dispatch import jax_funcify

    @jax.custom_vjp
    def forward(X, log_weights, means, prec):
        return _jax_forward(X, log_weights, means, prec)

    def forward_fwd(X, log_weights, means, prec):
        out = _jax_forward(X, log_weights, means, prec)
        return out, (X, means, prec, out[1])

    def forward_bwd(res, cotangents):
        # JAX's own autodiff of the log density (blackjax, numpyro, nutpie's JAX backend)
        # gets the closed-form gradient. The responsibilities' cotangent is ignored: in a
        # log density they only feed MixtureLogLikGrad, which is never differentiated.
        X, means, prec, resp = res
        g_w, g_m, g_p = _jax_gradient(X, means, prec, resp, cotangents[0])
        return (None, g_w, g_m, g_p)

    forward.defvjp(forward_fwd, forward_bwd)

    @jax_funcify.register(MixtureLogLik)
    def _jax_loglik(op, **kwargs):
        return forward

    @jax_funcify.register(MixtureLogLikGrad)
    def _jax_grad(op, **kwargs):
        return _jax_gradient

    @jax.custom_vjp
    def masked_forward(X, starts, masks, log_weights, means, prec):
        return _jax_masked_forward(X, starts, masks, log_weights, means, prec)

    def masked_forward_fwd(X, starts, masks, log_weights, means, prec):
        out = _jax_masked_forward(X, starts, masks, log_weights, means, prec)
        return out, (X, starts, masks, means, prec, out[1])

    def masked_forward_bwd(res, cotangents):
        X, starts, masks, means, prec, resp = res
        g_w, g_m, g_p = _jax_masked_gradient(X, starts, masks, means, prec, resp,
                                             cotangents[0])
        return (None, None, None, g_w, g_m, g_p)

    masked_forward.defvjp(masked_forward_fwd, masked_forward_bwd)

    @jax_funcify.register(MaskedMixtureLogLik)
    def _jax_masked_loglik(op, **kwargs):
        return masked_forward

    @jax_funcify.register(MaskedMixtureLogLikGrad)
    def _jax_masked_grad(op, **kwargs):
        return _jax_masked_gradient


_REGISTERED = []


def _register_backends() -> None:
    """Register the numba and JAX implementations, once, when the first graph is built.

    Importing JAX costs about a second; ``import bayesgmm`` should not pay it.
    """
    if not _REGISTERED:
        _register_numba()
        _register_jax()
        _REGISTERED.append(True)
