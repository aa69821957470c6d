"""Where a fit's time goes: wall-clock timers wrapped around the steps of :func:`bayesgmm.fit`.

The timers replace module attributes for the duration of a ``with`` block (the package is not
changed); each records the seconds spent inside one step. Nested steps (the relabelling and
the log-likelihood inside the assembly) are reported as such.
"""

from __future__ import annotations

import importlib
import time
from collections import defaultdict
from contextlib import ExitStack, contextmanager

# (module, attribute, label): the steps of a fit, outermost first.
STEPS = (
    ("bayesgmm.fitting.pipeline", "em_start", "EM start (scikit-learn, n_init=5)"),
    ("bayesgmm.fitting.pipeline", "build_model", "model build"),
    ("bayesgmm.fitting.pipeline", "run_nuts", "NUTS: compile + warm-up + sampling"),
    ("pymc.sampling.jax", "get_jaxified_logp", "  PyTensor -> JAX log density"),
    ("nutpie", "compile_pymc_model", "  nutpie compile"),
    ("bayesgmm.fitting.nutpie_driver", "compile_numba",
     "  nutpie compile (numba, cached callbacks)"),
    ("nutpie", "sample", "  nutpie warm-up + sampling"),
    ("bayesgmm.fitting.pipeline", "run_vi", "VI: compile + optimisation + draws"),
    ("bayesgmm.fitting.pipeline", "run_map", "MAP: compile + optimisation"),
    ("bayesgmm.fitting.pipeline", "assemble", "assemble the result"),
    ("bayesgmm.fitting.result", "gaussian_kl_cost", "  relabelling: KL costs"),
    ("bayesgmm.fitting.result", "pivot_permutations", "  relabelling: Hungarian"),
    ("bayesgmm.fitting.result", "pointwise_log_likelihood", "  pointwise log-likelihood"),
    ("bayesgmm.fitting.pipeline", "check", "diagnostics (R-hat, ESS, checks)"),
    # A fit of data out of memory (bayesgmm.fitting.streamed).
    ("bayesgmm.fitting.streamed", "scan", "pass over the rows (moments, subsample)"),
    ("bayesgmm.fitting.streamed", "em_start", "EM start on the subsample"),
    ("bayesgmm.fitting.streamed", "run_vi", "minibatch ADVI: compile + iterations + draws"),
    ("bayesgmm.fitting.streamed", "assemble", "assemble the result (streamed)"),
    ("bayesgmm.fitting.streamed", "check", "diagnostics (streamed)"),
)
TRACE = "  JAX trace of the chain"
XLA = "  XLA compile of the chain"


def _timed(fn, label, stages):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[label] += time.perf_counter() - start

    wrapper.__wrapped__ = fn
    return wrapper


class _TimedLowered:
    def __init__(self, lowered, stages):
        self._lowered, self._stages = lowered, stages

    def compile(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._lowered.compile(*args, **kwargs)
        finally:
            self._stages[XLA] += time.perf_counter() - start


class _TimedJit:
    """``jax.jit(run)`` of bayesgmm's blackjax chain, timing its trace and its compilation."""

    def __init__(self, jitted, stages):
        self._jitted, self._stages = jitted, stages

    def __call__(self, *args, **kwargs):
        return self._jitted(*args, **kwargs)

    def lower(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            lowered = self._jitted.lower(*args, **kwargs)
        finally:
            self._stages[TRACE] += time.perf_counter() - start
        return _TimedLowered(lowered, self._stages)


@contextmanager
def _patch(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


@contextmanager
def stage_timers():
    """Yield a dict ``label -> seconds`` that fills while :func:`bayesgmm.fit` runs inside."""
    stages: dict[str, float] = defaultdict(float)
    with ExitStack() as stack:
        for module_name, attr, label in STEPS:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            if not hasattr(module, attr):  # renamed in the package: that row goes missing
                continue
            stack.enter_context(_patch(module, attr, _timed(getattr(module, attr), label,
                                                            stages)))
        try:
            import jax
        except ImportError:
            pass
        else:
            real_jit = jax.jit

            def jit(fun, /, *args, **kwargs):
                jitted = real_jit(fun, *args, **kwargs)
                if "_chain_functions" in getattr(fun, "__qualname__", ""):  # warm-up, draws
                    return _TimedJit(jitted, stages)
                return jitted

            stack.enter_context(_patch(jax, "jit", jit))
        yield stages


def ordered(stages: dict[str, float]) -> list[tuple[str, float]]:
    """The recorded steps in the order of :data:`STEPS` (the JAX compile ones in place)."""
    labels = [label for _, _, label in STEPS]
    labels.insert(labels.index("  nutpie compile"), XLA)
    labels.insert(labels.index(XLA), TRACE)
    return [(label, stages[label]) for label in labels if stages.get(label, 0.0) > 0.0]
