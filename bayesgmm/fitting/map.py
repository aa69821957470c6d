"""The maximum a posteriori point, by L-BFGS from the EM start or the best of the mode search."""

from __future__ import annotations

import numpy as np

from ..progress import say, step
from ..seeds import draw_seed
from .compile import quiet_pymc
from .interrupt import reraise_interrupts
from .modes import Mode, PosteriorOptimizer

__all__ = ["run_map"]


@reraise_interrupts
def run_map(model, start, *, rng, compile_kwargs, progressbar, max_iter=5000,
            modes: list[Mode] | None = None, optimizer: PosteriorOptimizer | None = None):
    """L-BFGS on the unconstrained scale, without the transforms' Jacobian (the true MAP).

    ``modes`` (from :func:`bayesgmm.fitting.modes.search_modes`, best first): the search
    has already polished every EM optimum, and the best is the MAP. Otherwise L-BFGS runs
    from ``start``.
    """
    with quiet_pymc(not progressbar):
        if modes:
            best = modes[0]
            point, log_posterior = best.start, best.log_posterior
            converged, message, iterations = best.converged, best.message, best.iterations
        else:
            # Without the mode search (large data, a sparse prior) this is the fit's one
            # long step: reported, with the optimiser's verdict.
            with step("MAP: compiling and L-BFGS", progressbar):
                if optimizer is None:
                    optimizer = PosteriorOptimizer(model, start, compile_kwargs=compile_kwargs)
                point, log_posterior, res = optimizer.optimize(start, seed=draw_seed(rng),
                                                               max_iter=max_iter)
            converged, message, iterations = bool(res.success), str(res.message), int(res.nit)
            say(f"MAP: {iterations} iterations, "
                f"{'converged' if converged else 'NOT converged: ' + message}", progressbar)
    draws = {"weights": point.weights[None, None], "means": point.means[None, None],
             "chols": point.chols[None, None]}
    if point.dof is not None:
        draws["dof"] = point.dof[None, None]
    if point.noise_weight is not None:
        draws["noise_weight"] = np.asarray(point.noise_weight, dtype=float)[None, None]
    return {"draws": draws, "optimizer": {
        "converged": int(converged), "message": message,
        "log_posterior": float(log_posterior), "iterations": iterations}}
