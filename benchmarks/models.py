"""The textbook model, and compiled log-density+gradient functions of both models.

The textbook model is the one a PyMC user writes first: ``pm.Mixture`` of ``pm.MvNormal``
components, each with a ``pm.LKJCholeskyCov`` factor. It gets the same priors as bayesgmm's
model (:class:`bayesgmm.Priors` defaults) and is fitted to the same standardised data, so both
sample the same posterior and only the implementation differs.
"""

from __future__ import annotations

import time

import numpy as np
import pymc as pm

from bayesgmm.model import build_model
from bayesgmm.priors import Priors


def textbook_model(Z: np.ndarray, n_components: int, priors: Priors | None = None) -> pm.Model:
    """``pm.Mixture`` of ``pm.MvNormal`` components with ``pm.LKJCholeskyCov`` factors.

    Free variables: ``weights`` (K,), ``mu`` (K, D) and ``chol_cov_<k>`` (packed, one per
    component): the same names and parametrisation as :func:`bayesgmm.model.build_model`, so
    the same initial points and the same draw-unpacking code serve both.
    """
    priors = Priors() if priors is None else priors
    n, d = Z.shape
    k = int(n_components)
    with pm.Model() as model:
        weights = pm.Dirichlet("weights", a=np.full(k, priors.weight_concentration))
        mu = pm.Normal("mu", 0.0, priors.mean_scale, shape=(k, d))
        comps = []
        for j in range(k):
            chol, _, _ = pm.LKJCholeskyCov(
                f"chol_cov_{j}", n=d, eta=priors.lkj_eta,
                sd_dist=pm.InverseGamma.dist(priors.scale_shape, priors.scale_scale, shape=d),
                compute_corr=True, store_in_trace=False)
            comps.append(pm.MvNormal.dist(mu=mu[j], chol=chol))
        pm.Mixture("x", w=weights, comp_dists=comps, observed=Z)
    return model


def ours_model(Z: np.ndarray, n_components: int, priors: Priors | None = None) -> pm.Model:
    """bayesgmm's model (:func:`bayesgmm.model.build_model`) on standardised data."""
    return build_model(Z, n_components, priors)


MODELS = {"bayesgmm": ours_model, "pm.Mixture": textbook_model}


def start_point(model: pm.Model, n_components: int, n_features: int,
                seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """A realistic unconstrained point: equal weights, distinct means, unit covariances.

    (PyMC's default initial point puts every component at the same place, and fails for D=1.)
    Returns the value variables' names and arrays, in ``model.value_vars`` order.
    """
    from pymc.initial_point import make_initial_point_fn

    from bayesgmm.model import point_from_params

    k, d = n_components, n_features
    rng = np.random.default_rng(seed)
    point = point_from_params(np.full(k, 1.0 / k), rng.normal(size=(k, d)),
                              np.repeat(np.eye(d)[None], k, axis=0))
    ipfn = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                 return_transformed=True)
    ip = ipfn(seed)
    names = [v.name for v in model.value_vars]
    return names, [np.asarray(ip[n], dtype=float) for n in names]


def loop_evaluations(n_obs: int) -> int:
    """Evaluations per timed call of a jitted loop: about 2e6 data points' worth, 1 to 100."""
    return int(min(100, max(1, 2_000_000 // n_obs)))


def jitted_loop(value_and_grad, x0, n_obs: int):
    """Compile ``reps`` evaluations of ``value_and_grad`` in one ``jax.lax.fori_loop``.

    This is how blackjax and numpyro call the gradient (inside one compiled program, with no
    Python dispatch per evaluation). Each evaluation moves the point by 1e-12 times the
    gradient so that XLA cannot hoist it out of the loop. Returns ``(step, reps, compile_s)``.
    """
    import jax
    import jax.numpy as jnp

    reps = loop_evaluations(n_obs)

    def many(x):
        def body(_, carry):
            x, acc = carry
            value, grad = value_and_grad(x)
            return jax.tree.map(lambda a, g: a + 1e-12 * g, x, grad), acc + value

        return jax.lax.fori_loop(0, reps, body, (x, jnp.zeros(())))

    start = time.perf_counter()
    compiled = jax.jit(many).lower(x0).compile()
    compile_s = time.perf_counter() - start
    return (lambda: jax.block_until_ready(compiled(x0))), reps, compile_s


def jax_logp_grad(model: pm.Model, n_components: int, n_features: int, n_obs: int):
    """Timed evaluations of JAX autodiff of PyMC's JAX log density (Jacobian included).

    The log density is converted by :func:`pymc.sampling.jax.get_jaxified_logp`, the function
    bayesgmm's blackjax and nutpie samplers and numpyro differentiate. Returns
    ``(step, evaluations per step, compile seconds)``; the conversion counts as compilation.
    """
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    _, x0 = start_point(model, n_components, n_features)
    start = time.perf_counter()
    # With its default negative_logp=True this returns the log density itself.
    logp = get_jaxified_logp(model)
    convert_s = time.perf_counter() - start
    step, reps, compile_s = jitted_loop(jax.value_and_grad(logp), x0, n_obs)
    return step, reps, convert_s + compile_s


def pytensor_logp_grad(model: pm.Model, n_components: int, n_features: int,
                       mode: str | None = None):
    """Timed evaluations of PyTensor's compiled log density and symbolic gradient.

    ``model.logp_dlogp_function``, called from Python, one evaluation per call. ``mode=None``
    is PyTensor's default mode (numba; what ``pm.sample`` and nutpie use on the textbook
    model); bayesgmm's PyMC sampler passes ``mode="JAX"``. Returns
    ``(step, 1, compile seconds)``; the first call, which finishes numba's compilation,
    counts as compilation.
    """
    names, values = start_point(model, n_components, n_features)
    x0 = np.concatenate([np.ravel(v) for v in values])
    start = time.perf_counter()
    kwargs = {} if mode is None else {"mode": mode}
    fn = model.logp_dlogp_function(ravel_inputs=True, **kwargs)
    fn.set_extra_values({})
    fn(x0)
    compile_s = time.perf_counter() - start
    return (lambda: fn(x0)), 1, compile_s
