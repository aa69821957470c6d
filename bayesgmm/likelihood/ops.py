"""The mixture log-likelihood as PyTensor Ops, and the backends that compile them.

``MixtureLogLik()(X, log_weights, means, prec)`` returns the per-row log-likelihood (N,) and
the responsibilities (K, N) (see :mod:`bayesgmm.likelihood.kernels` for the formulas); its
gradient is a second Op, :class:`MixtureLogLikGrad`. Two implementations, one per PyTensor
backend:

* numba (PyTensor's NUMBA mode; also what :meth:`perform` calls, so the C and Python modes
  use it too): the kernels of :mod:`bayesgmm.likelihood.kernels`.
* JAX: the same formulas in ``jax.numpy``, used by nutpie's, numpyro's and blackjax's
  JAX paths.

:class:`MaskedMixtureLogLik` (and its gradient, :class:`MaskedMixtureLogLikGrad`) is the same
for rows with missing entries, grouped by missingness pattern: all patterns in one Op, each
pattern's sub-covariances factorised inside it (numba: the kernels run pattern by pattern;
JAX: each pattern's rows in blocks of :data:`JAX_BLOCK`, for which JAX needs the pattern
boundaries as constants of the graph, as
:func:`bayesgmm.likelihood.missing.marginal_log_likelihood_graph` builds them).

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
           "kernel_version", "StudentTMixtureLogLik", "StudentTMixtureLogLikGrad",
           "student_t_log_constants", "student_t_mixture_log_likelihood",
           "student_t_mixture_log_likelihood_graph", "component_dof"]


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
    (K,); ``means`` (K, D); ``chols`` (K, D, D), the lower Cholesky factors of the
    covariances (each pattern's sub-covariances are factorised inside the Op). Outputs: the
    per-row log-likelihood of the observed entries (N,) and the responsibilities (K, N), rows
    in the order of ``X``. See :func:`bayesgmm.likelihood.kernels.masked_loglik`.
    """

    __props__ = ()

    def make_node(self, X, starts, masks, log_weights, means, chols):
        """The Apply node, float inputs cast to float64, ``starts`` and ``masks`` to int64."""
        X, log_weights, means, chols = map(_as_float64, (X, log_weights, means, chols))
        starts, masks = (pt.cast(pt.as_tensor_variable(v), "int64") for v in (starts, masks))
        for var, ndim, name in ((X, 2, "X"), (starts, 1, "starts"), (masks, 2, "masks"),
                                (log_weights, 1, "log_weights"), (means, 2, "means"),
                                (chols, 3, "chols")):
            if var.ndim != ndim:
                raise TypeError(f"MaskedMixtureLogLik: {name} must have {ndim} dimensions, "
                                f"got {var.ndim}")
        n = X.type.shape[0]
        k = means.type.shape[0]
        outputs = [pt.tensor(dtype="float64", shape=(n,)),
                   pt.tensor(dtype="float64", shape=(k, n))]
        return Apply(self, [X, starts, masks, log_weights, means, chols], outputs)

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
        X, starts, masks, log_weights, means, chols = inputs
        g_loglik, g_resp = output_grads
        if not isinstance(g_resp.type, DisconnectedType):
            raise NotImplementedError("MaskedMixtureLogLik: the responsibilities have no "
                                      "gradient")
        data = [grad_not_implemented(self, i, v) for i, v in enumerate((X, starts, masks))]
        if isinstance(g_loglik.type, DisconnectedType):
            return [*data, log_weights.zeros_like(), means.zeros_like(), chols.zeros_like()]
        g_w, g_m, g_c = MaskedMixtureLogLikGrad()(X, starts, masks, means, chols, outputs[1],
                                                  g_loglik)
        return [*data, g_w, g_m, g_c]


class MaskedMixtureLogLikGrad(Op):
    """Gradient of ``sum_n g_n loglik_n`` for :class:`MaskedMixtureLogLik`.

    Inputs: ``X``, ``starts``, ``masks``, ``means``, ``chols`` as there, the
    responsibilities (K, N) and ``g`` (N,). Outputs: the gradients with respect to the
    log-weights (K,), the means (K, D) and ``chols`` (K, D, D; lower triangle, zeros above),
    from each (pattern, component)'s weighted sufficient statistics.
    """

    __props__ = ()

    def make_node(self, X, starts, masks, means, chols, resp, g):
        """The Apply node, float inputs cast to float64."""
        X, means, chols, resp, g = map(_as_float64, (X, means, chols, resp, g))
        starts, masks = (pt.cast(pt.as_tensor_variable(v), "int64") for v in (starts, masks))
        outputs = [pt.tensor(dtype="float64", shape=(means.type.shape[0],)),
                   means.type(), chols.type()]
        return Apply(self, [X, starts, masks, means, chols, resp, g], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        for storage, value in zip(output_storage, kernels.masked_gradient(*inputs),
                                  strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        """(K,), and the shapes of the means and ``prec``."""
        return [(input_shapes[3][0],), input_shapes[3], input_shapes[4]]


def masked_fused_log_likelihood(X, starts, masks, log_weights, means, chols):
    """Per-row log-likelihood (N,) through :class:`MaskedMixtureLogLik`."""
    _register_backends()
    return MaskedMixtureLogLik()(X, starts, masks, log_weights, means, chols)[0]


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
    d = _n_features(means, n_features)
    return fused_log_likelihood(value, pt.log(weights), means, _inverse_factors(chols, k, d))


def _n_features(means, n_features: int | None) -> int:
    """D: ``n_features``, else the static shape of the means."""
    d = n_features if n_features is not None else means.type.shape[1]
    if d is None:
        raise ValueError("the mixture likelihood needs n_features when the means have no "
                         "static shape")
    return int(d)


def _inverse_factors(chols, k: int, d: int):
    """``P_j = L_j^-1`` (K, D, D), each small factor inverted once in the graph."""
    eye = pt.eye(d)
    return pt.stack([solve_triangular(chols[j], eye, lower=True) for j in range(k)])


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


class StudentTMixtureLogLik(Op):
    """:class:`MixtureLogLik` for Student-t components; see :func:`kernels.t_loglik`.

    Inputs: ``X`` (N, D), ``log_consts`` (K,) (the log weights and the t densities'
    normalising constants, :func:`student_t_log_constants`), ``means`` (K, D), ``prec``
    (K, D, D) with ``prec[k] = L_k^-1`` (the scale matrices' factors), ``dof`` (K,).
    Outputs: log-likelihood (N,), responsibilities (K, N), and two (K, N) arrays the
    gradient reads (each row's weight in each component's quadratic form, and its term of
    the derivative in the degrees of freedom).
    """

    __props__ = ()

    def make_node(self, X, log_consts, means, prec, dof):
        """The Apply node, inputs cast to float64."""
        X, log_consts, means, prec, dof = map(_as_float64, (X, log_consts, means, prec, dof))
        for var, ndim, name in ((X, 2, "X"), (log_consts, 1, "log_consts"),
                                (means, 2, "means"), (prec, 3, "prec"), (dof, 1, "dof")):
            if var.ndim != ndim:
                raise TypeError(f"StudentTMixtureLogLik: {name} must have {ndim} dimensions, "
                                f"got {var.ndim}")
        n = X.type.shape[0]
        k = means.type.shape[0]
        outputs = [pt.tensor(dtype="float64", shape=(n,)),
                   *(pt.tensor(dtype="float64", shape=(k, n)) for _ in range(3))]
        return Apply(self, [X, log_consts, means, prec, dof], outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        for storage, value in zip(output_storage, kernels.t_loglik(*inputs), strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        """(N,), and (K, N) thrice."""
        n = input_shapes[0][0]
        k = input_shapes[2][0]
        return [(n,), (k, n), (k, n), (k, n)]

    def pullback(self, inputs, outputs, output_grads):
        """The gradient through :class:`StudentTMixtureLogLikGrad` (none for ``X``)."""
        X, log_consts, means, prec, dof = inputs
        g_loglik, *g_rest = output_grads
        if not all(isinstance(v.type, DisconnectedType) for v in g_rest):
            raise NotImplementedError("StudentTMixtureLogLik: only the log-likelihood has a "
                                      "gradient")
        if isinstance(g_loglik.type, DisconnectedType):
            return [grad_not_implemented(self, 0, X), log_consts.zeros_like(),
                    means.zeros_like(), prec.zeros_like(), dof.zeros_like()]
        grads = StudentTMixtureLogLikGrad()(X, means, prec, *outputs[1:], g_loglik)
        return [grad_not_implemented(self, 0, X), *grads]


class StudentTMixtureLogLikGrad(Op):
    """Gradient of ``sum_n g_n loglik_n`` for :class:`StudentTMixtureLogLik`.

    Inputs: ``X``, ``means``, ``prec``, the three (K, N) outputs of the forward Op,
    ``g`` (N,). Outputs: the gradients with respect to ``log_consts``, the means, ``prec``
    and ``dof`` (the latter only through the quadratic forms' term; see
    :func:`kernels.t_gradient`).
    """

    __props__ = ()

    def make_node(self, X, means, prec, resp, weight, dterm, g):
        """The Apply node, inputs cast to float64."""
        inputs = list(map(_as_float64, (X, means, prec, resp, weight, dterm, g)))
        k = inputs[1].type.shape[0]
        outputs = [pt.tensor(dtype="float64", shape=(k,)), inputs[1].type(), inputs[2].type(),
                   pt.tensor(dtype="float64", shape=(k,))]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Run the numba kernel (the C and Python modes)."""
        for storage, value in zip(output_storage, kernels.t_gradient(*inputs), strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        """(K,), the shapes of the means and ``prec``, and (K,)."""
        k = input_shapes[1][0]
        return [(k,), input_shapes[1], input_shapes[2], (k,)]


def student_t_log_constants(log_weights, dof, n_features: int):
    """``log w_k + lgamma((nu_k + D) / 2) - lgamma(nu_k / 2) - D / 2 log(nu_k pi)`` (K,).

    Above :data:`~bayesgmm.likelihood.kernels.T_STIRLING_DOF` degrees of freedom from
    Stirling's series, as :func:`~bayesgmm.likelihood.kernels.student_t_log_norm`.
    """
    h = 0.5 * float(n_features)
    a = 0.5 * dof
    direct = pt.gammaln(a + h) - pt.gammaln(a) - h * pt.log(dof * np.pi)
    series = ((a - 0.5 + h) * pt.log1p(h / a) - h * np.log(2.0 * np.pi) - h
              + kernels.stirling_correction(a + h) - kernels.stirling_correction(a))
    return log_weights + pt.switch(dof > kernels.T_STIRLING_DOF, series, direct)


def student_t_mixture_log_likelihood(value, weights, means, chols, dof,
                                     n_components: int | None = None,
                                     n_features: int | None = None):
    """Per-observation log-likelihood of a mixture of multivariate Student-t components.

    Component k: location ``means[k]``, scale matrix ``chols[k] chols[k]^T`` (the
    covariance is ``nu / (nu - 2)`` times it for ``nu > 2``) and ``dof[k]`` degrees of
    freedom. One fused Op (:class:`StudentTMixtureLogLik`): the same pass over the data as
    :func:`mixture_log_likelihood` plus one logarithm per row and component.

    Parameters
    ----------
    value, weights, means, chols, n_components, n_features
        As for :func:`mixture_log_likelihood`.
    dof : TensorVariable of shape (K,)
        Degrees of freedom, positive.

    Returns
    -------
    TensorVariable of shape (N,)
    """
    weights, means, chols, k = core_parameters(weights, means, chols, n_components)
    dof = component_dof(dof, k)
    d = _n_features(means, n_features)
    _register_backends()
    consts = student_t_log_constants(pt.log(weights), dof, d)
    return StudentTMixtureLogLik()(value, consts, means, _inverse_factors(chols, k, d), dof)[0]


def component_dof(dof, k: int):
    """The degrees of freedom as a (K,) vector.

    Batch dimensions (CustomDist's) dropped; one value is broadcast to every component.
    """
    dof = pt.as_tensor_variable(dof)
    while dof.ndim > 1:
        dof = dof[0]
    return pt.broadcast_to(dof, (k,))


def student_t_mixture_log_likelihood_graph(value, weights, means, chols, dof,
                                           n_components: int | None = None,
                                           n_features: int | None = None):
    """:func:`student_t_mixture_log_likelihood` as a PyTensor graph: the fused Op's oracle."""
    weights, means, chols, k = core_parameters(weights, means, chols, n_components)
    dof = component_dof(dof, k)
    d = _n_features(means, n_features)
    eye = pt.eye(d)
    idx = np.arange(d)
    consts = student_t_log_constants(pt.log(weights), dof, d)
    comps = []
    for j in range(k):
        z = pt.dot(value - means[j], solve_triangular(chols[j], eye, lower=True).T)
        comps.append(consts[j] - pt.sum(pt.log(chols[j][idx, idx]))
                     - 0.5 * (dof[j] + d) * pt.log1p(pt.sum(z**2, axis=1) / dof[j]))
    return pt.logsumexp(pt.stack(comps, axis=1), axis=1, keepdims=False)


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

    @register_funcify_default_op_cache_key(StudentTMixtureLogLik)
    def _numba_t_loglik(op, node=None, **kwargs):
        return kernels.t_loglik, kernel_version()

    @register_funcify_default_op_cache_key(StudentTMixtureLogLikGrad)
    def _numba_t_gradient(op, node=None, **kwargs):
        return kernels.t_gradient, kernel_version()


def _jax_quadratic_forms(X, means, prec):
    """``|P_k (x_n - mu_k)|^2`` (K, N) and ``log|P_k|`` (K,)."""
    import jax.numpy as jnp

    resid = X[None, :, :] - means[:, None, :]  # (K, N, D)
    z = jnp.einsum("kij,knj->kni", jnp.tril(prec), resid)
    logdet = jnp.sum(jnp.log(jnp.diagonal(prec, axis1=1, axis2=2)), axis=1)
    return jnp.sum(z * z, axis=2), logdet


def _jax_normalise(lp):
    """The log-likelihood (N,) and responsibilities (K, N) from joint log densities (K, N)."""
    import jax.numpy as jnp

    top = jnp.max(lp, axis=0)
    e = jnp.exp(lp - top)
    total = jnp.sum(e, axis=0)
    return top + jnp.log(total), e / total


def _jax_forward(X, log_weights, means, prec):
    d = means.shape[1]
    q, logdet = _jax_quadratic_forms(X, means, prec)
    return _jax_normalise((log_weights + logdet - 0.5 * d * LOG_2PI)[:, None] - 0.5 * q)


def _jax_gradient(X, means, prec, resp, g, scale=None):
    """The gradients of :mod:`bayesgmm.likelihood.kernels` (log-weights, means, ``prec``).

    ``scale`` (K, N): each row's weight in the quadratic form (Student-t components), which
    ``S1`` and ``C`` take and ``S0`` does not.
    """
    import jax.numpy as jnp

    w = resp * g  # (K, N)
    resid = X[None, :, :] - means[:, None, :]  # (K, N, D)
    s0 = jnp.sum(w, axis=1)
    if scale is not None:
        w = w * scale
    s1 = jnp.einsum("kn,knd->kd", w, resid)
    c = jnp.einsum("kn,kni,knj->kij", w, resid, resid)
    prec = jnp.tril(prec)
    g_means = jnp.einsum("kji,kj->ki", prec, jnp.einsum("kij,kj->ki", prec, s1))
    diag = jnp.diagonal(prec, axis1=1, axis2=2)
    eye = jnp.eye(means.shape[1])
    g_prec = jnp.tril(eye * (s0[:, None] / diag)[:, None, :] - prec @ c)
    return s0, g_means, g_prec


def _jax_t_forward(X, log_consts, means, prec, dof):
    import jax.numpy as jnp

    d = means.shape[1]
    q, logdet = _jax_quadratic_forms(X, means, prec)
    ll, resp = _jax_normalise((log_consts + logdet)[:, None]
                              - 0.5 * (dof + d)[:, None] * jnp.log1p(q / dof[:, None]))
    nu = dof[:, None]
    u = (nu + d) / (nu + q)
    # As kernels._dof_term: u q / nu - log1p(q / nu) without cancellation at large nu.
    x = q / nu
    small = x * x * jnp.polyval(jnp.asarray(kernels._X_MINUS_LOG1P_COEFFICIENTS), x)
    rest = jnp.where(x < 0.1, small, x - jnp.log1p(x))
    dterm = jnp.where(jnp.isinf(q), 0.0, x * (d - q) / (nu + q) + rest)
    return ll, resp, u, dterm


def _jax_t_gradient(X, means, prec, resp, u, dterm, g):
    import jax.numpy as jnp

    g_dof = 0.5 * jnp.sum(resp * g * dterm, axis=1)
    return (*_jax_gradient(X, means, prec, resp, g, scale=u), g_dof)


def _jax_masked_prec(masks, chols):
    """Per pattern, the inverse factors (P, K, D, D) of the observed sub-covariances.

    Zero off the pattern's columns. The covariance with the identity on the missing
    coordinates, ``M S M + (I - M)``, has the factor of the observed sub-covariance on the
    observed coordinates.
    """
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular as jax_solve

    m = masks.astype(jnp.float64)
    both = m[:, None, :, None] * m[:, None, None, :]
    lower = jnp.tril(chols)
    cov = lower @ jnp.swapaxes(lower, 1, 2)
    eye = jnp.eye(chols.shape[1])
    masked = cov[None] * both + (1.0 - m)[:, None, :, None] * eye
    if chols.shape[1] <= JAX_UNROLL_FEATURES:
        return _jax_unrolled_inverse_factor(masked) * both
    factors = jnp.linalg.cholesky(masked)
    inverse = jax_solve(factors, jnp.broadcast_to(eye, factors.shape), lower=True)
    return jnp.tril(inverse) * both


def _jax_unrolled_inverse_factor(S):
    """``inv(cholesky(S))`` (..., D, D), lower, written out entry by entry.

    For stacks of small matrices, where XLA's batched Cholesky and triangular solve on the
    CPU cost more than the whole likelihood (JAX differentiates these elementwise
    operations, fused, too). NaN where ``S`` is not positive definite.
    """
    import jax.numpy as jnp

    d = S.shape[-1]
    f = {}
    for j in range(d):  # Cholesky, column by column
        acc = S[..., j, j]
        for t in range(j):
            acc = acc - f[j, t] * f[j, t]
        f[j, j] = jnp.sqrt(acc)
        for i in range(j + 1, d):
            acc = S[..., i, j]
            for t in range(j):
                acc = acc - f[i, t] * f[j, t]
            f[i, j] = acc / f[j, j]
    inv = {}
    for j in range(d):  # its inverse, by forward substitution
        inv[j, j] = 1.0 / f[j, j]
        for i in range(j + 1, d):
            acc = f[i, j] * inv[j, j]
            for t in range(j + 1, i):
                acc = acc + f[i, t] * inv[t, j]
            inv[i, j] = -acc / f[i, i]
    zero = jnp.zeros_like(S[..., 0, 0])
    return jnp.stack([jnp.stack([inv.get((i, j), zero) for j in range(d)], axis=-1)
                      for i in range(d)], axis=-2)


#: Rows per block of the JAX kernel for missing entries: each block of a pattern's rows
#: takes its pattern's factors once (the last block of each pattern is padded).
JAX_BLOCK = 32


def _block_layout(starts: np.ndarray, n: int, block: int = JAX_BLOCK):
    """The rows of each pattern in blocks, for the JAX kernels.

    ``(index (B, block), pattern (B,), position (N,))``: ``index`` holds row numbers,
    ``n`` (a row of zeros appended to the data) where a pattern's last block is padded,
    ``pattern`` each block's pattern; row r is entry ``position[r]`` of the flattened
    blocks.
    """
    index, pattern = [], []
    for p in range(starts.size - 1):
        rows = np.arange(starts[p], starts[p + 1])
        count = -(-rows.size // block)
        padded = np.full(count * block, n, dtype=np.int64)
        padded[:rows.size] = rows
        index.append(padded.reshape(count, block))
        pattern += [p] * count
    index = np.concatenate(index)
    flat = index.ravel()
    position = np.empty(n, dtype=np.int64)
    position[flat[flat < n]] = np.flatnonzero(flat < n)
    return index, np.asarray(pattern, dtype=np.int64), position


#: Up to this many features, the JAX block kernel writes its quadratic forms out entry by
#: entry (XLA fuses them into one loop over the rows; a batched product of the small
#: matrices cost 1.7x more on the CPU at D=5), and the factors of the sub-covariances;
#: above, a batched product and LAPACK.
JAX_UNROLL_FEATURES = 12


def _jax_quadratic(prec, resid):
    """``|P e|^2`` per row: ``prec`` (B, K, D, D) lower, ``resid`` (B, K, D, block)."""
    import jax.numpy as jnp

    d = resid.shape[2]
    if d > JAX_UNROLL_FEATURES:
        return jnp.sum((prec @ resid) ** 2, axis=2)
    q = 0.0
    for i in range(d):
        z = 0.0
        for j in range(i + 1):
            z = z + prec[:, :, i, j][:, :, None] * resid[:, :, j]
        q = q + z * z
    return q


def _jax_blocks(layout, X, masks, means):
    """The blocks' residuals (B, K, D, block), zero off their pattern; their masks (B, D).

    Rows last: XLA vectorises the operations of the kernels over the rows of a block (at
    D=5 on the CPU, the gradient's sums cost 25% less than with the features last).
    """
    import jax.numpy as jnp

    index, pattern = layout[:2]
    padded = jnp.concatenate([X, jnp.zeros((1, X.shape[1]))])
    block_masks = masks[pattern].astype(jnp.float64)
    resid = jnp.swapaxes(padded[index], 1, 2)[:, None] - means[None, :, :, None]
    return resid * block_masks[:, None, :, None], block_masks


def _jax_block_core(layout, X, masks, log_weights, means, prec):
    """The log-likelihood (N,) and responsibilities (K, N) from the inverse factors.

    ``prec`` (P, K, D, D), zero off each pattern's columns (:func:`_jax_masked_prec`). Each
    block of a pattern's rows takes its pattern's factors once: no per-row copy of them.
    """
    import jax.numpy as jnp

    pattern, position = layout[1:3]
    k = means.shape[0]
    resid, block_masks = _jax_blocks(layout, X, masks, means)
    q = _jax_quadratic(jnp.tril(prec[pattern]), resid)  # (B, K, block)
    diag = jnp.diagonal(prec, axis1=2, axis2=3)
    m = masks.astype(jnp.float64)[:, None, :]
    logdet = jnp.sum(jnp.log(jnp.where(m > 0, diag, 1.0)), axis=2)  # (P, K)
    lp = (log_weights[None, :, None] + logdet[pattern][:, :, None]
          - 0.5 * LOG_2PI * jnp.sum(block_masks, axis=1)[:, None, None] - 0.5 * q)
    top = jnp.max(lp, axis=1)
    e = jnp.exp(lp - top[:, None])
    total = jnp.sum(e, axis=1)
    ll = (top + jnp.log(total)).reshape(-1)[position]
    resp = jnp.swapaxes(e / total[:, None], 0, 1).reshape(k, -1)[:, position]
    return ll, resp


def _jax_block_core_gradient(layout, X, masks, means, prec, resp, g):
    """The gradients of the block kernel, from each (pattern, component)'s sums.

    With ``a = (1, e)`` for each row's residual ``e``, one batched product per block gives
    ``sum w a a^T``: ``S0``, ``S1`` and ``C`` at once, summed then over each pattern's
    blocks (at D=5 on the CPU, XLA took 2.5x as long for the same sums written out
    entry by entry, and more for sums row by row over the flattened blocks).
    """
    import jax
    import jax.numpy as jnp

    index, pattern = layout[:2]
    k, d = means.shape
    resid, _ = _jax_blocks(layout, X, masks, means)  # (B, K, D, block)
    g_blocks = jnp.concatenate([g, jnp.zeros(1)])[index]  # (B, block), 0 on padding
    r_blocks = jnp.concatenate([resp, jnp.zeros((k, 1))], axis=1)[:, index]  # (K, B, block)
    w = jnp.swapaxes(r_blocks, 0, 1) * g_blocks[:, None, :]  # (B, K, block)
    a = jnp.concatenate([jnp.ones_like(resid[:, :, :1]), resid], axis=2)  # (B, K, D+1, block)
    sums = jax.ops.segment_sum((w[:, :, None, :] * a) @ jnp.swapaxes(a, 2, 3), pattern,
                               masks.shape[0], indices_are_sorted=True)  # (P, K, D+1, D+1)
    return _jax_gradient_from_sums(masks, prec, sums[:, :, 0, 0], sums[:, :, 1:, 0],
                                   sums[:, :, 1:, 1:])


def _jax_gradient_from_sums(masks, prec, s0, s1, c):
    """The gradients (log-weights, means, inverse factors) from the sums per pattern.

    ``S0`` (P, K), ``S1`` (P, K, D) and ``C`` (P, K, D, D) of each (pattern, component).
    """
    import jax.numpy as jnp

    g_means = jnp.einsum("pkji,pkj->ki", prec, jnp.einsum("pkij,pkj->pki", prec, s1))
    diag = jnp.diagonal(prec, axis1=2, axis2=3)
    m = masks.astype(jnp.float64)[:, None, :]
    inv_diag = jnp.where(m > 0, s0[:, :, None] / jnp.where(m > 0, diag, 1.0), 0.0)
    eye = jnp.eye(prec.shape[-1])
    g_prec = jnp.tril(eye * inv_diag[:, :, None, :] - prec @ c)
    return jnp.sum(s0, axis=0), g_means, g_prec


def _constant_layout(node):
    """The block layout of a node of the masked Ops whose ``starts`` is a constant, else None."""
    from pytensor.graph.basic import Constant

    starts = node.inputs[1] if node is not None else None
    if not isinstance(starts, Constant):
        return None
    starts = np.asarray(starts.data)
    return _block_layout(starts, int(starts[-1]))


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
    def t_forward(X, log_consts, means, prec, dof):
        return _jax_t_forward(X, log_consts, means, prec, dof)

    def t_forward_fwd(X, log_consts, means, prec, dof):
        out = _jax_t_forward(X, log_consts, means, prec, dof)
        return out, (X, means, prec, *out[1:])

    def t_forward_bwd(res, cotangents):
        # As forward_bwd: only the log-likelihood's cotangent is used.
        return (None, *_jax_t_gradient(*res, cotangents[0]))

    t_forward.defvjp(t_forward_fwd, t_forward_bwd)

    @jax_funcify.register(StudentTMixtureLogLik)
    def _jax_t_loglik(op, **kwargs):
        return t_forward

    @jax_funcify.register(StudentTMixtureLogLikGrad)
    def _jax_t_grad(op, **kwargs):
        return _jax_t_gradient

    def masked_functions(layout):
        """The forward and gradient functions of the masked Ops, block by block.

        ``layout`` (:func:`_block_layout`) comes from the constant pattern boundaries.
        """
        if layout is None:
            raise NotImplementedError(
                "MaskedMixtureLogLik: JAX needs the pattern boundaries (starts) as a "
                "constant of the graph, as marginal_log_likelihood_graph builds them.")

        def core(X, starts, masks, log_weights, means, prec):
            return _jax_block_core(layout, X, masks, log_weights, means, prec)

        def core_gradient(X, starts, masks, means, prec, resp, g):
            return _jax_block_core_gradient(layout, X, masks, means, prec, resp, g)

        @jax.custom_vjp
        def fused(X, starts, masks, log_weights, means, prec):
            return core(X, starts, masks, log_weights, means, prec)

        def fused_fwd(X, starts, masks, log_weights, means, prec):
            out = core(X, starts, masks, log_weights, means, prec)
            return out, (X, starts, masks, means, prec, out[1])

        def fused_bwd(res, cotangents):
            X, starts, masks, means, prec, resp = res
            g_w, g_m, g_p = core_gradient(X, starts, masks, means, prec, resp, cotangents[0])
            return (None, None, None, g_w, g_m, g_p)

        fused.defvjp(fused_fwd, fused_bwd)

        def forward(X, starts, masks, log_weights, means, chols):
            # JAX differentiates the factorisation; the core has the closed-form gradient.
            return fused(X, starts, masks, log_weights, means, _jax_masked_prec(masks, chols))

        def gradient(X, starts, masks, means, chols, resp, g):
            prec, pullback = jax.vjp(lambda c: _jax_masked_prec(masks, c), chols)
            g_w, g_m, g_p = core_gradient(X, starts, masks, means, prec, resp, g)
            return g_w, g_m, pullback(g_p)[0]

        return forward, gradient

    @jax_funcify.register(MaskedMixtureLogLik)
    def _jax_masked_loglik(op, node=None, **kwargs):
        return masked_functions(_constant_layout(node))[0]

    @jax_funcify.register(MaskedMixtureLogLikGrad)
    def _jax_masked_grad(op, node=None, **kwargs):
        return masked_functions(_constant_layout(node))[1]


_REGISTERED = []


def _register_backends() -> None:
    """Register the numba and JAX implementations, once, when the first graph is built.

    Importing JAX costs about a second; ``import bayesgmm`` should not pay it.
    """
    if not _REGISTERED:
        _register_numba()
        _register_jax()
        _REGISTERED.append(True)
