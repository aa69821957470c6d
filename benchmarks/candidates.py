"""Other log-likelihoods for bayesgmm's model, measured beside the package's fused Op.

``graph_model``: the likelihood as a PyTensor graph, as bayesgmm had it before the fused Op
(:func:`bayesgmm.model.mixture_log_likelihood_graph`).

``gemm_mixture_logp`` computes the same per-observation log-likelihood as
:func:`bayesgmm.model.mixture_logp`, but whitens the data for all K components with one
matrix product, ``Z = X W - b`` with ``W = [L_1^-T, ..., L_K^-T]`` (D, K*D) and
``b = [mu_1 L_1^-T, ..., mu_K L_K^-T]``, instead of forming the residuals ``X - mu_k`` (N, D)
once per component. The gradient then needs one product ``X^T dZ`` for all components
instead of K reductions of residual-sized arrays.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from bayesgmm.covariance import _unpack_graph as _unpack
from bayesgmm.likelihood.ops import core_parameters, mixture_log_likelihood_graph
from bayesgmm.priors import Priors

_LOG_2PI = float(np.log(2.0 * np.pi))


def gemm_mixture_logp(value, weights, means, chols, n_components: int, n_features=None):
    """Per-observation mixture log-likelihood (N,), whitening all components in one GEMM."""
    weights, means, chols, k = core_parameters(weights, means, chols, n_components)
    d = means.shape[-1]
    eye = pt.eye(d)
    linv_t = [solve_triangular(chols[j], eye, lower=True).T for j in range(k)]
    w = pt.concatenate(linv_t, axis=1)  # (D, K*D)
    b = pt.concatenate([pt.dot(means[j], linv_t[j]) for j in range(k)])  # (K*D,)
    z = pt.dot(value, w) - b  # (N, K*D)
    quad = pt.sum(pt.reshape(z**2, (value.shape[0], k, d)), axis=2)  # (N, K)
    logdet = pt.stack([pt.sum(pt.log(pt.diagonal(chols[j]))) for j in range(k)])
    logp = -0.5 * quad - logdet + pt.log(weights) - 0.5 * pt.cast(d, "float64") * _LOG_2PI
    return pt.logsumexp(logp, axis=1, keepdims=False)


def gemm_model(Z: np.ndarray, n_components: int, priors: Priors | None = None) -> pm.Model:
    """bayesgmm's model (same priors and variables) with :func:`gemm_mixture_logp`."""
    return _model_with(Z, n_components, priors, gemm_mixture_logp)


def graph_model(Z: np.ndarray, n_components: int, priors: Priors | None = None) -> pm.Model:
    """bayesgmm's model with the likelihood as a PyTensor graph
    (:func:`bayesgmm.model.mixture_log_likelihood_graph`), as it was before the fused Op."""
    return _model_with(Z, n_components, priors, mixture_log_likelihood_graph)


def _model_with(Z, n_components, priors, likelihood) -> pm.Model:
    priors = Priors() if priors is None else priors
    d = Z.shape[1]
    k = int(n_components)
    with pm.Model() as model:
        weights = pm.Dirichlet("weights", a=np.full(k, priors.weight_concentration))
        mu = pm.Normal("mu", 0.0, priors.mean_scale, shape=(k, d))
        packed = [
            pm.LKJCholeskyCov(
                f"chol_cov_{j}", n=d, eta=priors.lkj_eta,
                sd_dist=pm.InverseGamma.dist(priors.scale_shape, priors.scale_scale, shape=d),
                compute_corr=False)
            for j in range(k)
        ]
        chols = _unpack(packed, d)

        def logp(value, w, m, c):
            return likelihood(value, w, m, c, n_components=k)

        pm.CustomDist("x", weights, mu, chols, logp=logp, observed=Z,
                      signature="(k),(k,d),(k,d,d)->(d)")
    return model


def _jax_likelihood(Z: np.ndarray, n_components: int):
    """JAX functions of (log-weights, means, P) where ``P_k = L_k^-1`` (lower triangular).

    ``forward`` returns the total log-likelihood and the responsibilities (N, K), whitening
    all components with one matrix product; ``gradient`` returns the gradient from the
    responsibilities alone, through the weighted sufficient statistics
    ``S0_k = sum_n r_nk``, ``S1_k = sum_n r_nk x_n`` and ``S2_k = sum_n r_nk x_n x_n^T``
    (two matrix products over the data instead of the reverse pass of every operation):

    * d/d logw_k = S0_k - N w_k (w = softmax(logw));
    * d/d mu_k = P_k^T P_k (S1_k - S0_k mu_k);
    * d/d P_k = S0_k P_k^-T - P_k C_k, lower triangle, with
      C_k = S2_k - S1_k mu_k^T - mu_k S1_k^T + S0_k mu_k mu_k^T.
    """
    import jax
    import jax.numpy as jnp

    n, d = Z.shape
    k = int(n_components)
    data = jnp.asarray(Z)

    def forward(logw, mu, prec):
        w = jnp.transpose(prec, (2, 0, 1)).reshape(d, k * d)  # column k*d+i = row i of P_k
        b = jnp.einsum("kij,kj->ki", prec, mu).reshape(-1)
        quad = ((data @ w - b) ** 2).reshape(n, k, d).sum(-1)
        logdet = jnp.log(jnp.abs(jnp.diagonal(prec, axis1=1, axis2=2))).sum(-1)
        lp = -0.5 * quad + logdet + jax.nn.log_softmax(logw) - 0.5 * d * _LOG_2PI
        top = jax.lax.stop_gradient(lp.max(axis=1, keepdims=True))
        e = jnp.exp(lp - top)
        total = e.sum(axis=1, keepdims=True)
        return (jnp.log(total) + top).sum(), e / total

    def gradient(resp, logw, mu, prec):
        s0 = resp.sum(axis=0)
        s1 = resp.T @ data
        weighted = (resp[:, :, None] * data[:, None, :]).reshape(n, k * d)
        s2 = (weighted.T @ data).reshape(k, d, d)
        outer = jnp.einsum("ki,kj->kij", s1, mu)
        c = s2 - outer - jnp.swapaxes(outer, 1, 2) + s0[:, None, None] * jnp.einsum(
            "ki,kj->kij", mu, mu)
        g_logw = s0 - n * jax.nn.softmax(logw)
        g_mu = jnp.einsum("kji,kjl,kl->ki", prec, prec, s1 - s0[:, None] * mu)
        g_prec = s0[:, None, None] * jnp.swapaxes(jnp.linalg.inv(prec), 1, 2) \
            - jnp.einsum("kij,kjl->kil", prec, c)
        return g_logw, g_mu, jnp.tril(g_prec)

    return forward, gradient


def handwritten_jax_logp_grad(Z: np.ndarray, n_components: int, seed: int = 0, *,
                              analytic: bool = False):
    """Value and gradient of the mixture log-likelihood written directly in JAX.

    The likelihood only (no priors, no transforms: those cost O(K D^2), not O(N)),
    parametrised by log-weights, means and inverse Cholesky factors, whitening all components
    with one matrix product like :func:`gemm_mixture_logp`. The gradient is JAX's autodiff,
    or (``analytic``) the closed form from the weighted sufficient statistics (a
    ``jax.custom_vjp``; see :func:`_jax_likelihood`). A reference for how fast the per-point
    work can be in JAX on this machine. Timed like the models' JAX functions
    (:func:`benchmarks.models.jitted_loop`); returns ``(step, evaluations per step,
    compile seconds)``.
    """
    import jax
    import jax.numpy as jnp

    from .models import jitted_loop

    jax.config.update("jax_enable_x64", True)
    d = Z.shape[1]
    k = int(n_components)
    forward, gradient = _jax_likelihood(Z, k)

    @jax.custom_vjp
    def loglik_analytic(logw, mu, prec):
        return forward(logw, mu, prec)[0]

    def fwd(logw, mu, prec):
        value, resp = forward(logw, mu, prec)
        return value, (resp, logw, mu, prec)

    def bwd(res, g):
        return tuple(g * part for part in gradient(*res))

    loglik_analytic.defvjp(fwd, bwd)

    def loglik_auto(logw, mu, prec):
        return forward(logw, mu, prec)[0]

    loglik = loglik_analytic if analytic else loglik_auto
    rng = np.random.default_rng(seed)
    params = (jnp.asarray(rng.normal(size=k)), jnp.asarray(rng.normal(size=(k, d))),
              jnp.asarray(np.tril(0.2 * rng.normal(size=(k, d, d))) + 1.5 * np.eye(d)))
    value_and_grad = jax.value_and_grad(lambda p: loglik(*p))
    return jitted_loop(value_and_grad, params, Z.shape[0])


def analytic_gradient_error(Z: np.ndarray, n_components: int, seed: int = 0) -> float:
    """Largest absolute difference between the analytic and the autodiff gradient."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    d, k = Z.shape[1], int(n_components)
    forward, gradient = _jax_likelihood(Z, k)
    rng = np.random.default_rng(seed)
    params = (jnp.asarray(rng.normal(size=k)), jnp.asarray(rng.normal(size=(k, d))),
              jnp.asarray(np.tril(0.2 * rng.normal(size=(k, d, d))) + 1.5 * np.eye(d)))
    auto = jax.grad(lambda *p: forward(*p)[0], argnums=(0, 1, 2))(*params)
    auto = (auto[0], auto[1], jnp.tril(auto[2]))
    analytic = gradient(forward(*params)[1], *params)
    return max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(auto, analytic, strict=True))
