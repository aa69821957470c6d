"""The maximum a posteriori point, by L-BFGS from the EM start."""

from __future__ import annotations

import numpy as np

from ..covariance import covariance_names
from ..model import unpack_point
from ..seeds import draw_seed
from .compile import quiet_pymc
from .interrupt import reraise_interrupts

__all__ = ["run_map"]


@reraise_interrupts
def run_map(model, start, *, rng, compile_kwargs, progressbar, max_iter=5000):
    """L-BFGS on the unconstrained scale, without the transforms' Jacobian (the true MAP)."""
    with quiet_pymc(not progressbar):
        return _map_point(model, start, rng=rng, compile_kwargs=compile_kwargs,
                          max_iter=max_iter)


def _map_point(model, start, *, rng, compile_kwargs, max_iter):
    from pymc.blocking import DictToArrayBijection, RaveledVars
    from pymc.initial_point import make_initial_point_fn
    from scipy.optimize import minimize

    k, d = start.means.shape
    start_point = start.point()
    ipfn = make_initial_point_fn(model=model, overrides=start_point, jitter_rvs=set(),
                                 return_transformed=True)
    x0 = ipfn(draw_seed(rng))
    value_names = [v.name for v in model.value_vars]
    raveled = DictToArrayBijection.map({name: x0[name] for name in value_names})
    from pymc.model.core import ValueGradFunction

    logp_dlogp = ValueGradFunction([model.logp(jacobian=False)], model.continuous_value_vars, {},
                                   model=model, initial_point=x0, ravel_inputs=True,
                                   **compile_kwargs)
    logp_dlogp.set_extra_values({})

    def neg(x):
        logp, grad = logp_dlogp(x)
        if not np.isfinite(logp):
            return np.inf, np.zeros_like(x)
        return -float(logp), -np.asarray(grad, dtype=float)

    res = minimize(neg, raveled.data, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "maxfun": 2 * max_iter})
    if not res.success and not np.isfinite(res.fun):
        raise RuntimeError(f"MAP optimisation failed: {res.message}")
    opt = DictToArrayBijection.rmap(RaveledVars(res.x, raveled.point_map_info))
    rvs = [model[name] for name in
           ["weights", "mu"] + covariance_names(start.covariance_type, k)]
    to_constrained = model.compile_fn(model.replace_rvs_by_values(rvs), inputs=model.value_vars,
                                      mode="FAST_COMPILE", point_fn=True)
    values = to_constrained(opt)
    point = {rv.name: np.asarray(val)[None, None] for rv, val in zip(rvs, values, strict=True)}
    draws_ = unpack_point(point, k, d, start.covariance_type)
    return {"draws": draws_, "optimizer": {
        "converged": int(res.success), "message": str(res.message),
        "log_posterior": -float(res.fun), "iterations": int(res.nit)}}
