"""Modes: the search before sampling, and the repair of chains left in a poorer mode after.

A mixture's posterior has many modes besides the label permutations: merged or split
clusters, a component spanning two groups. Their posterior mass falls off as the exponential
of their log density: for modes of about the same width (the same K and D, so the same
dimension and similar curvature), a mode whose mean log density is 90 nats lower carries
about exp(-90) = 1e-39 of the mass of the better one. A chain that spends its run there
describes nothing of the posterior, and R-hat is right to reject the fit; but the fix is
not longer chains, it is to put the chain where the mass is.

* :func:`search_modes`, before sampling: every distinct optimum of the multi-strategy EM
  search (:func:`bayesgmm.fitting.start.em_start` with ``pool``) is polished to the maximum
  of the Bayesian model's log posterior by L-BFGS (:class:`PosteriorOptimizer`), and the
  optima are ranked by that log posterior, not by the EM log-likelihood: the priors count
  (a component EM fitted to a few points with a tiny covariance is penalised by the scale
  prior). The chains start in the best.
* :func:`lagging_chains`, after sampling: chains whose mean log density is more than
  :data:`MODE_GAP_NATS` below the best chain's are in a mode of negligible mass. The NUTS
  driver restarts them from the best chain's draws (:func:`restart_points`) for at most
  ``max_rounds`` rounds. Chains whose means differ by less are left alone: several modes
  within a few nats are genuine multimodality, which the diagnostics report (the
  log-likelihood R-hat across chains) and no restart should hide.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..covariance import covariance_names
from ..model import mode_log_jacobian, unpack_point
from .start import Start

__all__ = ["MODE_GAP_NATS", "MODE_SEARCH_MAX_ROWS", "OPTIMIZER_CACHE_SIZE", "PosteriorOptimizer",
           "Mode", "model_key", "reused_optimizer", "search_modes", "chain_log_density",
           "lagging_chains", "restart_points"]

#: A chain whose mean log density is this many nats below the best chain's is restarted
#: (at equal widths, such a mode holds under exp(-10) = 5e-5 of the best one's mass, far
#: below the Monte Carlo error of a fit's draws).
MODE_GAP_NATS = 10.0
#: The pool of EM optima is polished on all rows up to this many rows; above, only the
#: best EM solution is kept, unpolished (each L-BFGS run costs a few hundred gradients
#: over all rows; the sampler then does the rest).
MODE_SEARCH_MAX_ROWS = 20_000
#: Compiled optimisers kept in this process for refits of the same data and model (another
#: seed, method or number of draws): compiling one costs seconds, more than the search on
#: small data. Least recently used first out.
OPTIMIZER_CACHE_SIZE = 4


class PosteriorOptimizer:
    """L-BFGS on a model's log posterior (unconstrained scale, no Jacobian), compiled once.

    The Jacobian of the transforms is left out, so the optimum is the MAP of the model's
    own parametrisation (weights, means, covariances), the point :func:`bayesgmm.fit`'s
    ``method="map"`` returns; with Student-t components of free degrees of freedom, of the
    density over log standard deviations, correlations and log degrees of freedom instead
    (:func:`bayesgmm.model.mode_log_jacobian`).
    """

    def __init__(self, model, start: Start, *, compile_kwargs: dict):
        from pymc.model.core import ValueGradFunction

        self.model = model
        self.covariance_type = start.covariance_type
        self._names = [v.name for v in model.value_vars]
        # The model's own initial point fails for D = 1 (LKJCholeskyCov with n = 1): the
        # shapes come from a start instead.
        point = self._transformed(start, seed=0)
        # The pool's first start is polished next: keep its point (no jitter, so the seed
        # does not change it) rather than compile the initial-point function for it again.
        self._first = (start, point)
        objective = model.logp(jacobian=False) + mode_log_jacobian(model)
        self._fn = ValueGradFunction([objective], model.continuous_value_vars,
                                     {}, model=model, initial_point=point,
                                     ravel_inputs=True, **compile_kwargs)
        self._fn.set_extra_values({})
        self._to_constrained = None

    def optimize(self, start: Start, *, seed, max_iter: int = 5000):
        """Polish ``start``: ``(Start at the optimum, its log posterior, scipy's result)``."""
        from pymc.blocking import DictToArrayBijection, RaveledVars
        from scipy.optimize import minimize

        x0 = self._first[1] if start is self._first[0] else self._transformed(start, seed)
        raveled = DictToArrayBijection.map({name: x0[name] for name in self._names})

        def neg(x):
            logp, grad = self._fn(x)
            if not np.isfinite(logp):
                return np.inf, np.zeros_like(x)
            return -float(logp), -np.asarray(grad, dtype=float)

        res = minimize(neg, raveled.data, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "maxfun": 2 * max_iter})
        if not res.success and not np.isfinite(res.fun):
            raise RuntimeError(f"MAP optimisation failed: {res.message}")
        opt = DictToArrayBijection.rmap(RaveledVars(res.x, raveled.point_map_info))
        k, d = start.means.shape
        draws = self.constrained(opt, k, d)
        w, mu, chols = (draws[name][0, 0] for name in ("weights", "means", "chols"))
        polished = Start(weights=w, means=mu, covariances=chols @ np.swapaxes(chols, -1, -2),
                         order_by=start.order_by, covariance_type=start.covariance_type,
                         dof=draws["dof"][0, 0] if "dof" in draws else None,
                         noise_weight=float(draws["noise_weight"][0, 0])
                         if "noise_weight" in draws else None)
        return polished, -float(res.fun), res

    def _transformed(self, start: Start, seed) -> dict:
        """``start`` as a point of the model's value variables (unconstrained)."""
        from pymc.initial_point import make_initial_point_fn

        ipfn = make_initial_point_fn(model=self.model, overrides=start.point(),
                                     jitter_rvs=set(), return_transformed=True)
        return ipfn(seed)

    def constrained(self, point: dict, k: int, d: int) -> dict:
        """Weights, means and Cholesky factors (1, 1, ...) of an unconstrained point."""
        names = ["weights", "mu"] + covariance_names(self.covariance_type, k)
        if "dof" in self.model.named_vars:  # Student-t components with free dof
            names.append("dof")
        if "noise_weight" in self.model.named_vars:  # a noise component
            names.append("noise_weight")
        rvs = [self.model[name] for name in names]
        if self._to_constrained is None:
            self._to_constrained = self.model.compile_fn(
                self.model.replace_rvs_by_values(rvs), inputs=self.model.value_vars,
                mode="FAST_COMPILE", point_fn=True)
        values = self._to_constrained(point)
        named = {rv.name: np.asarray(val)[None, None] for rv, val in zip(rvs, values,
                                                                         strict=True)}
        return unpack_point(named, k, d, self.covariance_type)


_OPTIMIZERS: OrderedDict[tuple, PosteriorOptimizer] = OrderedDict()
_OPTIMIZERS_LOCK = threading.Lock()


def model_key(Z: np.ndarray, k: int, priors, **structure) -> tuple:
    """What the compiled log posterior of :func:`bayesgmm.model.build_model` depends on.

    The standardised data bit for bit (a digest), K, the priors and every other argument of
    ``build_model`` and of the compilation (``structure``, as keyword arguments): two fits
    with the same key build the same graph, so one compiled function serves both and gives
    the same bits.
    """
    def exact(value):  # arrays (the rows' weights) by digest, not by their abbreviated repr
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value)
            return (hashlib.sha256(value.view(np.uint8)).hexdigest(), value.shape,
                    value.dtype.str)
        return value

    Z = np.ascontiguousarray(Z)
    digest = hashlib.sha256(Z.view(np.uint8)).hexdigest()
    return (digest, Z.shape, Z.dtype.str, int(k), repr(priors),
            repr(sorted((name, exact(v)) for name, v in structure.items())))


@contextmanager
def reused_optimizer(key: tuple, build: Callable[[], PosteriorOptimizer]
                     ) -> Iterator[PosteriorOptimizer]:
    """The optimiser compiled for ``key`` by an earlier fit of this process, or ``build()``.

    The optimiser is taken out of the cache while in use (a fit running at the same time
    in another thread compiles its own) and put back, as the most recently used, when the
    block ends without an error.
    """
    with _OPTIMIZERS_LOCK:
        optimizer = _OPTIMIZERS.pop(key, None)
    if optimizer is None:
        optimizer = build()
    yield optimizer
    with _OPTIMIZERS_LOCK:
        _OPTIMIZERS[key] = optimizer
        while len(_OPTIMIZERS) > OPTIMIZER_CACHE_SIZE:
            _OPTIMIZERS.popitem(last=False)


@dataclass(frozen=True)
class Mode:
    """One optimum of the mode search."""

    start: Start  # the polished optimum
    log_posterior: float  # at the optimum (no Jacobian)
    em_rank: int  # rank of the EM optimum it was polished from (0: EM's best)
    converged: bool  # L-BFGS converged
    iterations: int
    message: str  # L-BFGS's


def search_modes(optimizer: PosteriorOptimizer, pool: list[Start], *, rng,
                 max_iter: int = 5000) -> list[Mode]:
    """Polish every start of ``pool`` (best EM first) and rank the optima, best first.

    Optima that polish to the same log posterior (within 1e-6 relative) count once, the
    first EM rank kept.
    """
    from ..seeds import draw_seed

    modes: list[Mode] = []
    for rank, start in enumerate(pool):
        polished, logp, res = optimizer.optimize(start, seed=draw_seed(rng), max_iter=max_iter)
        if any(abs(m.log_posterior - logp) <= 1e-6 * abs(logp) for m in modes):
            continue
        modes.append(Mode(polished, logp, rank, bool(res.success), int(res.nit),
                          str(res.message)))
    return sorted(modes, key=lambda m: -m.log_posterior)


def chain_log_density(stats) -> np.ndarray | None:
    """Each draw's log density (chain, draw) from a sampler's statistics, if recorded.

    PyMC, numpyro and blackjax call it ``lp``, nutpie ``logp``: the log density on the
    unconstrained scale, the same function in every chain of a fit.
    """
    for name in ("lp", "logp"):
        if name in stats:
            return np.asarray(stats[name], dtype=float)
    return None


def lagging_chains(log_density: np.ndarray, gap: float = MODE_GAP_NATS) -> np.ndarray:
    """Chains whose mean log density is more than ``gap`` nats below the best chain's."""
    means = log_density.mean(axis=1)
    return np.flatnonzero(means < means.max() - gap)


def restart_points(draws: dict, best: int, n: int) -> list[tuple]:
    """``n`` distinct states of chain ``best`` to restart chains from.

    (weights, means, Cholesky factors, degrees of freedom or None, noise weight or None)
    of draws evenly spaced over its second half, the last one first.
    """
    n_draws = draws["weights"].shape[1]
    picks = np.linspace(n_draws - 1, n_draws // 2, n).round().astype(int)
    dof, noise = draws.get("dof"), draws.get("noise_weight")
    return [(draws["weights"][best, i], draws["means"][best, i], draws["chols"][best, i],
             None if dof is None else dof[best, i],
             None if noise is None else noise[best, i])
            for i in picks]
