"""Fit the Bayesian Gaussian mixture by NUTS, variational inference or MAP.

One entry point, :func:`fit`, returns the same kind of object for every method: an
``xarray.DataTree`` with groups

``posterior``
    ``weights`` (chain, draw, component), ``means`` (..., component, feature), ``sigmas``
    (..., component, feature) and ``covariances`` (..., component, feature, feature_bis),
    on the user's scale, relabelled so every draw has the same component order. VI: draws
    from the approximation (one chain); MAP: the optimum as one draw.
``log_likelihood``
    ``x`` (chain, draw, obs), log p(x_n | theta) per observation, for LOO.
``observed_data``
    ``x`` (obs, feature).
``constant_data``
    ``center`` and ``scale`` (feature) of the internal standardisation.
``sample_stats``
    the sampler's statistics (NUTS only).
``relabeling``
    ``permutation`` (chain, draw, component): which sampled component became each reported one.
``variational``
    ``elbo`` (iteration), the ELBO history (VI only).
``initial_point``
    the EM solution the fit started from (``weights``, ``means``, ``covariances``).

Ctrl-C (SIGINT) during any phase of any method raises ``KeyboardInterrupt``; no truncated
fit is returned (see :mod:`bayesgmm._interrupt`). Compiled JAX code cannot be stopped: after
an interrupt, numpyro's run and blackjax's current warm-up or chunk of draws finish in a
background thread, which the interpreter waits for at exit.
"""

from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pymc as pm
import xarray as xr

from . import _math
from ._fused import exact_numba
from ._interrupt import reraise_interrupts, wait_interruptibly
from ._math import expand_covariances
from ._params import BACKENDS, METHODS, SAMPLERS, check_params
from ._validation import (
    FEATURE_NAMES_ATTR,
    check_data,
    check_model_size,
    count_distinct_rows,
    has_feature_names,
)
from .diagnostics import ConvergenceWarning, FitWarning, check
from .model import (
    Standardizer,
    build_model,
    covariance_names,
    point_from_params,
    unpack_point,
)
from .priors import Priors
from .relabel import apply_permutations, gaussian_kl_cost, pivot_permutations

__all__ = ["fit", "METHODS", "SAMPLERS", "ConvergenceWarning", "FitWarning"]


@dataclass(frozen=True)
class _Start:
    """A point estimate on the standardised scale."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D)
    order_by: int | None = None  # feature the model's means are ordered along, if any
    covariance_type: str = "full"

    def ordered(self, order_by: int | None) -> _Start:
        """The same solution, components sorted along feature ``order_by`` (if given)."""
        if order_by is None:
            return self
        idx = np.argsort(self.means[:, order_by], kind="stable")
        return _Start(self.weights[idx], self.means[idx], self.covariances[idx], order_by,
                      self.covariance_type)

    def point(self) -> dict:
        return point_from_params(self.weights, self.means, self.chols, self.order_by,
                                 self.covariance_type)

    @property
    def chols(self) -> np.ndarray:
        return np.linalg.cholesky(self.covariances)


def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}.")
        return np.random.default_rng(random_state)
    if random_state is None:
        return np.random.default_rng()
    raise TypeError(
        "random_state must be None, an int or a numpy Generator, got "
        f"{type(random_state).__name__}."
    )


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


# EM for the start: fit_em's strategies run on at most _EM_START_ROWS rows (they cost ~29 s
# at N=1e5, D=5, K=5 with 5 starts), then one EM refines on at most _EM_REFINE_ROWS rows.
# Measured with 10,000 and all rows: em_start took 2.5 s at N=1e4, D=5, K=3 and 34 s at
# N=1e6, D=10, K=10 (mostly the refinement on all rows); with 3,000 and 100,000 rows it is
# about 1.6 s and 4 s, with the same components. The sampler or VI does the rest.
_EM_START_ROWS = 3_000
_EM_REFINE_ROWS = 100_000


def _rows_start(Z: np.ndarray, k: int, rng: np.random.Generator):
    """Equal weights, means on random rows, covariance 0.25 I: when EM cannot run."""
    n, d = Z.shape
    means = Z[rng.choice(n, size=k, replace=n < k)]
    return np.full(k, 1.0 / k), means, np.repeat(np.eye(d)[None] * 0.25, k, axis=0), np.inf


def _sklearn_em(Z: np.ndarray, k: int, n_init: int, random_state: int | None,
                covariance_type: str):
    """Best of ``n_init`` scikit-learn EM runs (k-means starts), or random rows if it fails."""
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.mixture import GaussianMixture

    d = Z.shape[1]
    gm = GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=n_init,
                         reg_covar=1e-3, max_iter=500, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        try:
            gm.fit(Z)
            covs = expand_covariances(gm.covariances_, covariance_type, k, d)
            return gm.weights_, gm.means_, covs, gm.bic(Z)
        except ValueError:  # e.g. fewer distinct rows than components
            return _rows_start(Z, k, np.random.default_rng(random_state))


def _em(Z: np.ndarray, k: int, n_init: int, random_state: int | None,
        covariance_type: str, n_distinct: int, raw=None):
    """EM for the start: (weights, means, (K, D, D) covariances, BIC on all rows).

    :func:`bayesgmm.baselines.fit_em`'s multi-strategy starts (Ward, k-means, k-means++,
    random; degenerate optima set aside), not scikit-learn's k-means alone: at N=1e5, D=5,
    K=5 the best of five k-means starts merged two clusters and split another, and no
    sampler or VI moves away from such a start. On a subsample of ``_EM_START_ROWS`` rows
    for large N, refined by EM on up to ``_EM_REFINE_ROWS`` rows (the BIC is on those
    rows). ``n_distinct``: the number of distinct rows, exact up to ``k``
    (:func:`~bayesgmm._validation.count_distinct_rows`). ``raw``: ``(X, standardizer)``, the
    same rows on the user's scale and the map to ``Z``; fit_em then runs on the user's rows,
    so that its k-means start on the user's units is one of the views (see :func:`em_start`).
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.mixture import GaussianMixture

    from .baselines import _structured_precisions, fit_em

    n, d = Z.shape
    rng = np.random.default_rng(random_state)
    if n_distinct <= k:
        # No more distinct rows than components (duplicated data): fit_em's strategies
        # have nothing to choose between; scikit-learn's EM, or data rows.
        return _sklearn_em(Z, k, n_init, random_state, covariance_type)
    rows = None if n <= _EM_START_ROWS else rng.choice(n, _EM_START_ROWS, replace=False)
    sub = Z if rows is None else Z[rows]
    refine = Z if n <= _EM_REFINE_ROWS else Z[rng.choice(n, _EM_REFINE_ROWS, replace=False)]
    with warnings.catch_warnings():
        # The start's own troubles (degenerate EM optima, constant columns) are not the
        # fit's: the fit's diagnostics judge its result.
        warnings.simplefilter("ignore")
        try:
            data = sub if raw is None else (raw[0] if rows is None else raw[0][rows])
            est = fit_em(data, k, n_init=n_init, random_state=_seed(rng), reg_covar=1e-3,
                         covariance_type=covariance_type)
        except ValueError:  # degenerate data (e.g. fewer distinct rows than components)
            return _rows_start(Z, k, rng)
        weights, means, covs = est.weights, est.means, est.covariances
        if raw is not None:  # back to the standardised scale of Z
            std = raw[1]
            means, covs = std.means_to_model(means), std.covariances_to_model(covs)
        if sub is Z:
            return weights, means, covs, est.bic
        gm = GaussianMixture(
            n_components=k, covariance_type=covariance_type, reg_covar=1e-3, max_iter=100,
            weights_init=weights, means_init=means,
            precisions_init=_structured_precisions(weights, covs, covariance_type),
            random_state=0)
        warnings.simplefilter("ignore", SkConvergenceWarning)
        try:
            gm.fit(refine)
        except ValueError:
            return weights, means, covs, est.bic
    covs = expand_covariances(gm.covariances_, covariance_type, k, d)
    return gm.weights_, gm.means_, covs, float(gm.bic(refine))


def em_start(Z: np.ndarray, n_components: int, *, n_init: int = 5,
             random_state: int | None = None, sparse: bool = False,
             covariance_type: str = "full", raw=None) -> _Start:
    """The best EM solution of ``covariance_type`` on standardised data.

    ``n_init`` starts of several strategies (see :func:`_em`). ``raw``: ``(X, standardizer)``
    with ``Z = standardizer.transform(X)``; then one of those strategies (k-means on the
    user's units) sees ``X`` itself. Standardising shrinks a separation along one feature
    when the other features are noise: at D=20, N=800 (two clusters 11 sd apart along one
    feature) EM on ``Z`` alone found them for 3 of 4 seeds, and at D=30, N=400 for none.

    The covariances are regularised (1e-3 on the diagonal, in feature standard deviations),
    and weights kept above 1e-3, so the start lies inside the support of the priors.

    ``sparse=True`` (a sparse Dirichlet prior on the weights: an overfitted mixture) starts
    where such a posterior puts its mass: EM with the number of components K' <= K that
    has the lowest BIC, padded with K - K' empty components of weight 1e-3, each as wide
    as the data (identity covariance on the standardised scale) and near its centre. A wide
    component explains no point better than the fitted ones, so the likelihood pushes its
    weight down; empty components started on data points with narrow covariances were
    pulled into the clusters instead (N=200, K=8: all eight filled, and NUTS did not empty
    them again), and a K-way split of the data would leave NUTS to merge components across
    low-probability valleys.
    """
    k = n_components
    d = Z.shape[1]
    n_distinct = count_distinct_rows(Z, k)  # exact up to k: _em only compares it with K' <= k
    if sparse and k > 1:
        fits = [_em(Z, j, n_init, random_state, covariance_type, n_distinct, raw)
                for j in range(1, k + 1)]
        best = int(np.argmin([f[3] for f in fits]))
        weights, means, covs, _ = fits[best]
        pad = k - weights.size
        if pad:
            rng = np.random.default_rng(random_state)
            weights = np.concatenate([weights * (1 - pad * 1e-3), np.full(pad, 1e-3)])
            means = np.concatenate([means, 0.1 * rng.standard_normal((pad, d))])
            pad_covs = (np.repeat(covs[:1], pad, 0) if covariance_type == "tied"
                        else np.repeat(np.eye(d)[None], pad, 0))
            covs = np.concatenate([covs, pad_covs])
    else:
        weights, means, covs, _ = _em(Z, k, n_init, random_state, covariance_type, n_distinct,
                                      raw)
    weights = np.maximum(weights, 1e-3)
    weights = weights / weights.sum()
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2)) + 1e-6 * np.eye(d)
    return _Start(weights=weights, means=np.array(means, dtype=float), covariances=covs,
                  covariance_type=covariance_type)


def _jittered(start: _Start, rng: np.random.Generator, scale: float = 0.05) -> dict:
    """A chain's start: the EM solution with small noise, as a constrained PyMC point."""
    k, d = start.means.shape
    sds = np.sqrt(np.diagonal(start.covariances, axis1=1, axis2=2))
    means = start.means + scale * sds * rng.standard_normal((k, d))
    weights = start.weights * np.exp(scale * rng.standard_normal(k))
    chols = start.chols * np.exp(scale * rng.standard_normal((k, d)))[:, :, None]
    return point_from_params(weights / weights.sum(), means, chols, start.order_by,
                             start.covariance_type)


def _compile_kwargs(backend: str) -> dict:
    if backend not in BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {BACKENDS}.")
    if backend == "auto":
        try:
            import jax  # noqa: F401
        except ImportError:
            return {}
        backend = "jax"
    mode = {"jax": "JAX", "numba": "NUMBA", "c": "CVM"}[backend]
    return {"mode": mode}


@contextmanager
def _quiet_pymc(quiet: bool):
    """Silence PyMC's log messages (unless ``quiet`` is False) and PyTensor's BLAS notice.

    The notice says PyTensor's C backend has no BLAS; bayesgmm compiles with JAX (or numba),
    which bring their own, so it asks nothing of the user.
    """
    logger = logging.getLogger("pymc")
    old = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
            yield
    finally:
        logger.setLevel(old)


def _draws_from_posterior(post: xr.Dataset, k: int, d: int,
                          covariance_type: str = "full") -> dict[str, np.ndarray]:
    names = ["weights", "mu"] + covariance_names(covariance_type, k)
    point = {name: post[name].to_numpy() for name in names}
    return unpack_point(point, k, d, covariance_type)


# Up to this many rows "auto" prefers blackjax, above it nutpie (see _default_sampler).
_BLACKJAX_MAX_ROWS = 3000


def _default_sampler(n_obs: int | None = None) -> str:
    """The fastest installed sampler for ``n_obs`` rows.

    Measured here (2 cores; K=3; 2 chains x (1000 tune + 1000 draws), compile included, to
    a converged posterior, numba caches warm): D=2, N=1,000: blackjax 9.3 s, nutpie
    12.9 s, numpyro 22.0 s, PyMC 29.2 s (compilation dominates, and JAX compiles faster
    than nutpie's JAX path). D=2, N=10,000: nutpie 10.7 s, PyMC 14.4 s, blackjax 37.3 s;
    D=5, N=10,000: nutpie 13.2 s, PyMC 19.4 s, blackjax 57.2 s (nutpie runs the numba
    likelihood kernel there, 2.5x faster per gradient than JAX, and its adaptation needs
    fewer gradient evaluations per draw, 7.0 against 8.3). Hence blackjax up to
    ``_BLACKJAX_MAX_ROWS`` rows and nutpie above, each falling back to the other, then to
    PyMC's own.
    """
    import importlib.util

    small = n_obs is None or n_obs <= _BLACKJAX_MAX_ROWS
    for sampler in (("blackjax", "nutpie") if small else ("nutpie", "blackjax")):
        if importlib.util.find_spec(sampler) is not None:
            return sampler
    return "pymc"


def _require(sampler: str) -> None:
    """Raise an ImportError naming the extra to install when a sampler is missing."""
    if sampler == "pymc":
        return
    import importlib.util

    if importlib.util.find_spec(sampler) is None:
        raise ImportError(
            f"sampler={sampler!r} needs the {sampler} package, which is not installed. "
            f"Install it with: pip install 'bayesgmm[{sampler}]' (or 'bayesgmm[all]')."
        )


def _large_data_backend(backend: str, n_obs: int) -> str:
    """The compiler of nutpie and PyMC's sampler: numba on large data, else JAX.

    Large: above ``_BLACKJAX_MAX_ROWS`` rows; ``backend="numba"`` or ``"c"`` ask for numba.

    numba runs the fused likelihood kernel (:mod:`bayesgmm._fused`) at about 45 ns per point
    at D=5, K=3 against about 110-130 ns in JAX. It compiled in about 8.5 s the first time
    and 2 s once cached (nutpie, :mod:`bayesgmm._nutpie`; the model then holds its data in
    a ``pm.Data`` container so the cache serves any data set), against 2-5 s for JAX.
    Measured at D=5, N=1e4, 2 chains x (1000 + 1000): nutpie 59.5 s with JAX, 24.6 s with
    numba through ``nutpie.compile_pymc_model`` and 16.3 s with the cached callbacks
    (13.2 s with target_accept 0.8); PyMC's sampler 109 s with JAX (chains one after the
    other), 43.7 s with numba, 26.1-26.2 s with numba and the chains in two processes,
    19.4 s with the ``pm.Data`` model and target_accept 0.8 (14.4 s at D=2, N=1e4).
    """
    if backend in ("numba", "c"):  # nutpie has no C backend
        return "numba"
    if backend == "jax":
        return "jax"
    return "numba" if n_obs > _BLACKJAX_MAX_ROWS else "jax"


@reraise_interrupts
def _run_nuts(model, start, *, draws, tune, chains, cores, target_accept, rng, compile_kwargs,
              progressbar, sampler, large_backend="jax"):
    k, d = start.means.shape
    initvals = [_jittered(start, rng) for _ in range(chains)]
    seed = _seed(rng)
    with _quiet_pymc(not progressbar):
        if sampler == "pymc":
            if large_backend == "numba" and compile_kwargs.get("mode") == "JAX":
                compile_kwargs = {"mode": "NUMBA"}  # backend="auto" on large data
            # With JAX the chains run one after the other: worker processes that import
            # PyMC and JAX cost more than they save at the sizes JAX is chosen for. Compiled
            # by numba (or C) they run in parallel processes.
            if cores is None:
                cores = 1 if compile_kwargs.get("mode") == "JAX" else min(
                    chains, os.cpu_count() or 1)
            idata = pm.sample(
                draws=draws, tune=tune, chains=chains, cores=cores,
                random_seed=seed, initvals=initvals, init="adapt_diag",
                target_accept=target_accept, progressbar=progressbar,
                compute_convergence_checks=False, compile_kwargs=compile_kwargs, model=model,
                quiet=not progressbar,
            )
        elif sampler == "nutpie":
            import nutpie

            # nutpie's default jitter (uniform(-1, 1) on every unconstrained value) throws
            # chains out of the EM basin: start every chain at the EM solution instead.
            if large_backend == "numba":
                from ._nutpie import compile_numba

                compiled = compile_numba(model, initvals[0])
            else:
                compiled = nutpie.compile_pymc_model(
                    model, backend="jax", gradient_backend="jax",
                    initial_points=initvals[0], jitter_rvs=set())
            # Not blocking: nutpie's blocking call returns the trace so far on Ctrl-C.
            background = nutpie.sample(
                compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                cores=min(chains, os.cpu_count() or 1) if cores is None else cores,
                progress_bar=progressbar, target_accept=target_accept, save_warmup=False,
                blocking=False)
            try:
                idata = background.wait()
            except BaseException:
                background.cancel()  # stops nutpie's sampling threads
                raise
        elif sampler == "blackjax":
            # PyMC 6.4's own blackjax path fails with blackjax 1.7 (it hands the kernel a
            # progress_bar argument); bayesgmm drives blackjax itself.
            from ._blackjax import sample_blackjax

            posterior, stats = sample_blackjax(
                model, initvals, draws=draws, tune=tune, chains=chains,
                target_accept=target_accept, seed=seed, cores=cores)
            return {"draws": _draws_from_posterior(posterior, k, d, start.covariance_type),
                    "sample_stats": stats}
        else:
            from pymc.sampling.jax import sample_jax_nuts

            # One compiled call that cannot be interrupted: run it in a thread and wait
            # where SIGINT reaches (on Ctrl-C it is abandoned and runs to its end).
            idata = wait_interruptibly(lambda: sample_jax_nuts(
                draws=draws, tune=tune, chains=chains, target_accept=target_accept,
                random_seed=seed, initvals=initvals, jitter=False, model=model,
                progressbar=progressbar, chain_method="vectorized",
                compute_convergence_checks=False, nuts_sampler=sampler,
                idata_kwargs={"log_likelihood": False}))
    draws_ = _draws_from_posterior(idata["posterior"].to_dataset(), k, d, start.covariance_type)
    stats = idata["sample_stats"].to_dataset()
    return {"draws": draws_, "sample_stats": stats}


class _ElboPlateau:
    """Callback that stops VI once the ELBO stops rising (see :func:`_elbo_converged`)."""

    def __init__(self, window: int = 500):
        self.window = window

    def __call__(self, approx, losses, i):
        # On StopIteration PyMC keeps the history without the last loss: decide on what it
        # keeps, or the final check on that history can disagree and warn for nothing.
        if i % self.window == 0 and _elbo_converged(-np.asarray(losses[:-1]), self.window):
            raise StopIteration("ELBO converged")


class _IterateAverage:
    """Polyak-Ruppert averaging of the variational parameters.

    With a constant step, stochastic gradients (Monte Carlo ELBO estimates, and minibatches
    above all) leave the final iterate wandering around the optimum; the average of the
    recent iterates sits much closer to it. This keeps an exponential moving average over
    about ``tau`` iterations (a plain running mean for the first ``tau``), and
    :meth:`apply` writes it into the approximation at the end.
    """

    def __init__(self, tau: int = 250):
        self.tau = tau
        self.n = 0
        self.avg: dict[str, np.ndarray] = {}

    def __call__(self, approx, losses, i):
        self.n += 1
        rate = 1.0 / min(self.n, self.tau)
        for name, shared in approx.shared_params.items():
            value = shared.get_value()
            if name not in self.avg:
                self.avg[name] = np.array(value, dtype=float)
            else:
                self.avg[name] += rate * (value - self.avg[name])

    def apply(self, approx) -> None:
        for name, shared in approx.shared_params.items():
            if name in self.avg:
                shared.set_value(self.avg[name].astype(shared.dtype))


def _start_sigma(model, scale: float) -> dict:
    """``start_sigma`` for PyMC's ADVI: ``scale`` for every unconstrained coordinate.

    PyMC matches the keys to the value variables' names ("weights_simplex__",
    "chol_cov_0_cholesky-cov-packed__"); under the random variables' names every transformed
    variable silently kept PyMC's default of 0.69, and at N=1e6, D=10, K=10 that blur made
    the mean field collapse onto one broad component (mean error 7.7).
    """
    ip = model.initial_point()
    return {vv.name: np.full(np.size(ip[vv.name]), scale) for vv in model.value_vars}


def _vi_start_scale(n_obs: int, k: int) -> float:
    """Start standard deviation of the mean field: 0.05, or ``1 / sqrt(N / K)`` if smaller.

    ``1 / sqrt(N / K)`` is the order of the posterior sd of a component mean on the
    standardised scale: at N=1e6 the approximation's sd of the means then came out 1.1x the
    analytic posterior sd, against 3.4x from 0.05.
    """
    return float(min(0.05, 1.0 / np.sqrt(max(n_obs, 1) / k)))


@reraise_interrupts
def _run_vi(model, start, *, method, draws, max_iter, rng, compile_kwargs, progressbar,
            n_obs):
    """Mean-field ADVI from the EM start; full-rank ADVI then starts from the mean field.

    PyMC's default start (unit standard deviations on the unconstrained scale, Adagrad at
    1e-3) took about 20,000 iterations on 500 points; starting the standard deviations at
    0.05 and using Adam at 0.02 converges in about 2,000. The result is the average of the
    recent iterates (:class:`_IterateAverage`): with minibatches of 256 rows out of 6,000
    the last iterate was up to 0.16 feature-sd from the sample means, the average 0.013.
    """
    k, d = start.means.shape
    start_point = start.point()
    window = 500
    with model, _quiet_pymc(not progressbar):
        # The JAX backend copies PyMC's random generator into the compiled graph and says so;
        # the seed still fixes the result.
        warnings.filterwarnings("ignore", message=".*RandomType SharedVariables.*")
        # PyMC builds the approximation from the model's initial point, whose default fails
        # for D=1 (LKJCholeskyCov with n=1): give every variable the EM start instead.
        for name, value in start_point.items():
            model.set_initval(model[name], value)
        inference = pm.ADVI(start=start_point,
                            start_sigma=_start_sigma(model, _vi_start_scale(n_obs, k)),
                            random_seed=_seed(rng))
        averager = _IterateAverage()
        approx = inference.fit(max_iter, obj_optimizer=pm.adam(learning_rate=0.02),
                               callbacks=[averager, _ElboPlateau(window)],
                               progressbar=progressbar, compile_kwargs=compile_kwargs)
        averager.apply(approx)
        hist = np.asarray(approx.hist, dtype=float)
        if method == "fullrank_advi":
            mf_mean = approx.mean.get_value()
            mf_std = approx.std.eval()
            inference = pm.FullRankADVI(start=start_point, random_seed=_seed(rng))
            params = inference.approx.shared_params
            params["mu"].set_value(mf_mean)
            n = mf_std.size
            rows, cols = np.tril_indices(n)
            # The diagonal of L is stored as rho, with sigma = softplus(rho).
            rho = np.log(np.expm1(mf_std))
            params["L_tril"].set_value(np.where(rows == cols, rho[rows], 0.0))
            averager = _IterateAverage()
            approx = inference.fit(max_iter, obj_optimizer=pm.adam(learning_rate=0.002),
                                   callbacks=[averager, _ElboPlateau(window)],
                                   progressbar=progressbar, compile_kwargs=compile_kwargs)
            averager.apply(approx)
            # One history for the whole fit: the mean-field phase, then the full-rank one.
            hist = np.concatenate([hist, np.asarray(approx.hist, dtype=float)])
        idata = approx.sample(draws, random_seed=_seed(rng))
    draws_ = _draws_from_posterior(idata["posterior"].to_dataset(), k, d, start.covariance_type)
    return {"draws": draws_, "elbo": -hist}


@reraise_interrupts
def _run_map(model, start, *, rng, compile_kwargs, progressbar, max_iter=5000):
    """L-BFGS on the unconstrained scale, without the transforms' Jacobian (the true MAP)."""
    with _quiet_pymc(not progressbar):
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
    x0 = ipfn(_seed(rng))
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


def _elbo_converged(elbo: np.ndarray, window: int = 500) -> bool:
    """Whether the ELBO has stopped rising.

    The mean over the last ``window`` iterations differs from the mean over the window before
    by less than three Monte Carlo standard errors, or by less than 1e-4 relative.
    """
    elbo = np.asarray(elbo, dtype=float)
    if elbo.size < 2 * window or not np.isfinite(elbo[-2 * window:]).all():
        return False
    last, prev = elbo[-window:], elbo[-2 * window:-window]
    noise = 3.0 * np.sqrt(last.var() / window + prev.var() / window)
    return bool(abs(last.mean() - prev.mean()) <= max(noise, 1e-4 * abs(last.mean())))


def fit(
    X,
    n_components: int = 2,
    *,
    method: str = "nuts",
    priors: Priors | dict | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    cores: int | None = None,
    sampler: str = "auto",
    target_accept: float = 0.8,
    max_iter: int = 10_000,
    n_init: int = 5,
    batch_size: int | None = None,
    order_by: int | str | None = None,
    covariance_type: str = "full",
    backend: str = "auto",
    store_log_likelihood: bool | None = None,
    random_state=None,
    progressbar: bool = False,
) -> xr.DataTree:
    """Fit a Bayesian Gaussian mixture and return the result as an ``xarray.DataTree``.

    Parameters
    ----------
    X : array-like or data frame of shape (n_samples, n_features)
        Data: an array, or a pandas, polars or pyarrow frame (any that narwhals reads). A
        frame's column names become the ``feature`` coordinate, and predictions then check
        columns by name.
    n_components : int, default 2
        Number of components K.
    method : {"nuts", "advi", "fullrank_advi", "map"}, default "nuts"
        NUTS (full posterior), mean-field or full-rank ADVI (draws from the approximation),
        or the maximum a posteriori point.
    priors : Priors or dict, optional
        Prior settings (see :class:`bayesgmm.Priors`).
    draws : int, default 1000
        Posterior draws per chain (NUTS) or draws from the approximation (VI).
    tune : int, default 1000
        NUTS tuning steps per chain.
    chains : int, default 2
        NUTS chains.
    cores : int, optional
        Parallel chains. Default: nutpie runs ``min(chains, cpu_count)`` chains in threads;
        PyMC's sampler runs them one after the other when it compiles with JAX (up to 3,000
        rows; worker processes that import PyMC and JAX cost more than they save there) and
        in ``min(chains, cpu_count)`` processes when it compiles with numba (above; scripts
        on macOS and Windows then need an ``if __name__ == "__main__":`` guard); numpyro
        vectorises them; blackjax runs one compiled chain per thread, ``min(chains,
        cpu_count)`` at a time.
    sampler : {"auto", "pymc", "nutpie", "numpyro", "blackjax"}, default "auto"
        NUTS implementation; all sample the same model. "auto" takes the fastest
        installed, as measured here: blackjax up to 3,000 rows, nutpie above (3.5x as fast
        at D=2 and 4.3x at D=5 with 10,000 rows), then PyMC's own (see
        ``_default_sampler`` for the timings). nutpie, numpyro and blackjax are optional
        extras (``pip install 'bayesgmm[blackjax]'``, or ``'bayesgmm[all]'``).
    target_accept : float, default 0.8
        NUTS target acceptance rate (the default of PyMC, Stan, nutpie and numpyro). Raise
        it (0.9-0.95) if divergences are reported. Measured here with the default sampler
        on five data sets (blobs, overlapping blobs, iris, 8 components in 2-D, D=5 with
        10,000 rows; two seeds each): no divergences at 0.8 or 0.9; at 0.8 larger bulk
        ESS on the first three and the same failures to converge on the 8 components (one
        seed each); at D=5 7.0 gradients per draw against 12.1-13.0, bulk ESS 1,887-2,329
        against 2,337-2,397, fit 11.7-14.2 s against 16.0-17.4 s.
    max_iter : int, default 10000
        Maximum VI iterations (stops earlier once the ELBO stops rising), or MAP optimiser
        iterations.
    n_init : int, default 5
        EM restarts for the starting solution.
    batch_size : int, optional
        VI only: minibatch ADVI, each iteration using a random batch of this many rows
        (the log-likelihood scaled by N / batch_size). For large N.
    order_by : int, str or "auto", optional
        Constrain the component means to increase along one feature (its index or name;
        "auto": the feature along which the EM solution's components are best separated,
        i.e. whose smallest gap between neighbouring means, in their standard deviations,
        is largest). An alternative to relabelling for users who want it. Where clusters
        overlap along that feature it cuts the posterior (components swap roles at the
        boundary), so the default (None) relabels the unconstrained posterior instead.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Covariance structure (scikit-learn's names): a full covariance per component (LKJ
        correlations, inverse-gamma standard deviations), a diagonal one per component
        (inverse-gamma standard deviations), one standard deviation per component, or one
        full covariance shared by all components. Every structure keeps the inverse-gamma
        scale prior, so none has the maximum-likelihood singularity; the posterior's
        ``covariances`` are always (K, D, D). Spherical components are spherical in the
        user's units: the data are then scaled by one common scale, not per column.
    backend : {"auto", "jax", "numba", "c"}, default "auto"
        PyTensor compilation backend; "auto" uses JAX when installed (it compiles in 2-5
        seconds), except for nutpie and PyMC's sampler above 3,000 rows, which then
        compile with numba: its likelihood kernel is about 2.5x faster per gradient. numba
        caches the compiled model on disk for every data set of the same structure (K, D,
        covariance structure, priors, ordering): at D=5 the first compilation on a machine
        took about 8.5 s, later ones about 2 s.
    store_log_likelihood : bool, optional
        Store the pointwise log-likelihood (chains x draws x N doubles). Default: when it
        takes at most 200 MB; otherwise a :class:`FitWarning` says so, and
        :func:`bayesgmm.selection.loo` and :func:`bayesgmm.assignments.log_likelihood`
        compute it from the draws when needed.
    random_state : int or numpy.random.Generator, optional
        Seed for every random step (EM start, jitter, sampler, VI draws).
    progressbar : bool, default False
        Show PyMC's progress bar and log messages.

    Returns
    -------
    xarray.DataTree
        See the module documentation for its groups.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (50, 1)), rng.normal(3, 1, (50, 1))])
    >>> result = fit(X, 2, method="map", random_state=0)
    >>> sorted(result.children)[:4]
    ['constant_data', 'initial_point', 'log_likelihood', 'observed_data']
    >>> np.sort(result["posterior"]["means"].values.ravel()).round(0)
    array([-3.,  3.])
    """
    checked = check_params(dict(
        n_components=n_components, method=method, sampler=sampler, draws=draws,
        chains=chains, tune=tune, max_iter=max_iter, n_init=n_init, cores=cores,
        batch_size=batch_size, target_accept=target_accept, priors=priors,
        covariance_type=covariance_type, backend=backend, random_state=random_state,
        order_by=order_by, store_log_likelihood=store_log_likelihood,
        progressbar=progressbar))
    k, draws, chains, tune = (checked["n_components"], checked["draws"], checked["chains"],
                              checked["tune"])
    max_iter, n_init, cores = checked["max_iter"], checked["n_init"], checked["cores"]
    batch_size, target_accept = checked["batch_size"], checked["target_accept"]
    priors = checked["priors"]
    if method == "nuts" and sampler != "auto":
        _require(sampler)
    compile_kwargs = _compile_kwargs(backend)
    rng = _rng(random_state)

    named_features = has_feature_names(X)
    X, names = check_data(X, n_components=k)
    n, d = X.shape
    check_model_size(n, d, k, covariance_type,
                     n_draws={"nuts": chains * draws, "map": 1}.get(method, draws),
                     batch_size=batch_size)
    if sampler == "auto":
        sampler = _default_sampler(n)
    std = Standardizer.for_structure(X, covariance_type)
    Z = std.transform(X)
    start = em_start(Z, k, n_init=n_init, random_state=_seed(rng),
                     sparse=priors.weight_concentration < 1, covariance_type=covariance_type,
                     raw=(X, std))
    order_by = _resolve_order_by(order_by, names, start, k)
    start = start.ordered(order_by)
    use_batches = batch_size is not None and batch_size < n
    large_backend = _large_data_backend(backend, n)
    model = build_model(Z, k, priors, feature_names=names,
                        batch_size=batch_size if use_batches else None, order_by=order_by,
                        covariance_type=covariance_type,
                        # numba's cache then serves every data set of this model structure
                        shared_data=method == "nuts" and large_backend == "numba"
                        and sampler in ("nutpie", "pymc"))

    with exact_numba():
        if method == "nuts":
            out = _run_nuts(
                model, start, draws=draws, tune=tune, chains=chains, cores=cores,
                target_accept=target_accept, rng=rng, compile_kwargs=compile_kwargs,
                progressbar=progressbar, sampler=sampler, large_backend=large_backend)
        elif method in ("advi", "fullrank_advi"):
            out = _run_vi(
                model, start, method=method, draws=draws, max_iter=max_iter, rng=rng,
                compile_kwargs=compile_kwargs, progressbar=progressbar, n_obs=n)
        else:
            out = _run_map(model, start, rng=rng, compile_kwargs=compile_kwargs,
                           progressbar=progressbar, max_iter=max_iter)

    result = _assemble(X, names, std, start, out, method=method, sampler=sampler,
                       priors=priors, store_log_likelihood=store_log_likelihood,
                       named_features=named_features)
    check(result, stacklevel=2)
    return result


def _best_separated_feature(start: _Start) -> int:
    """Feature along which the EM components are best separated.

    For each feature, sort the component means along it and take the smallest gap between
    neighbours in units of their pooled standard deviation along that feature; return the
    feature where this smallest gap is largest. The ordering constraint then binds least: a
    feature of large spread can still hold two components at the same place.
    """
    sds = np.sqrt(np.diagonal(start.covariances, axis1=1, axis2=2))  # (K, D)
    idx = np.argsort(start.means, axis=0)
    m = np.take_along_axis(start.means, idx, axis=0)
    s = np.take_along_axis(sds, idx, axis=0)
    gaps = np.diff(m, axis=0) / np.sqrt(s[1:] ** 2 + s[:-1] ** 2)
    return int(np.argmax(gaps.min(axis=0)))


def _resolve_order_by(order_by, names: list[str], start: _Start, k: int) -> int | None:
    """Feature index for the ordering constraint (None: no constraint)."""
    if order_by is None:
        return None
    if k < 2:
        raise ValueError("order_by needs n_components >= 2: one component has no order.")
    if isinstance(order_by, str):
        if order_by == "auto":
            return _best_separated_feature(start)
        if order_by not in names:
            raise ValueError(f"order_by={order_by!r} is not a feature; the features are "
                             f"{names} (or pass 'auto' or a column index).")
        return names.index(order_by)
    if isinstance(order_by, (int, np.integer)) and not isinstance(order_by, bool) \
            and 0 <= order_by < len(names):
        return int(order_by)
    raise ValueError(f"order_by must be None, 'auto', a feature name or a column index in "
                     f"[0, {len(names)}), got {order_by!r}.")


# Largest pointwise log-likelihood (chains x draws x N doubles) stored by default.
LOG_LIKELIHOOD_MAX_BYTES = 200e6
# How the warning that the group was not stored begins (selection recognises it by this).
LOG_LIKELIHOOD_NOT_STORED = "Pointwise log-likelihood not stored"


def _assemble(X, names, std, start, out, *, method, sampler, priors,
              store_log_likelihood, named_features=False) -> xr.DataTree:
    w, mu, chols = out["draws"]["weights"], out["draws"]["means"], out["draws"]["chols"]
    stats, elbo = out.get("sample_stats"), out.get("elbo")
    n_chains, n_draws, k = w.shape
    d = mu.shape[-1]
    flat = n_chains * n_draws
    if start.order_by is None:
        # Relabel every draw to the EM start, on the standardised scale.
        covs_std = chols @ np.swapaxes(chols, -1, -2)
        cost = gaussian_kl_cost(mu.reshape(flat, k, d), covs_std.reshape(flat, k, d, d),
                                start.means, start.covariances)
        perm = pivot_permutations(cost)
    else:  # the ordering constraint fixes the labels
        perm = np.tile(np.arange(k), (flat, 1))
    w = apply_permutations(w.reshape(flat, k), perm)
    mu = apply_permutations(mu.reshape(flat, k, d), perm)
    chols = apply_permutations(chols.reshape(flat, k, d, d), perm)
    # Back to the user's scale.
    means = std.means_to_user(mu)
    chols_user = std.chols_to_user(chols)
    covs = chols_user @ np.swapaxes(chols_user, -1, -2)
    sigmas = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))

    shape = (n_chains, n_draws)
    cd = ("chain", "draw")
    coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws),
              "component": np.arange(k), "feature": names, "feature_bis": names}
    attrs = {
        "created_at": datetime.now(UTC).isoformat(),
        "inference_library": "pymc",
        "inference_library_version": pm.__version__,
        "bayesgmm_method": method,
        "bayesgmm_sampler": sampler if method == "nuts" else "",
        "bayesgmm_priors": repr(priors),
        "bayesgmm_weight_concentration": priors.weight_concentration,
        "bayesgmm_covariance_type": start.covariance_type,
        "bayesgmm_order_by": "" if start.order_by is None else str(names[start.order_by]),
        FEATURE_NAMES_ATTR: int(named_features),
    }
    posterior = xr.Dataset(
        {
            "weights": (cd + ("component",), w.reshape(shape + (k,))),
            "means": (cd + ("component", "feature"), means.reshape(shape + (k, d))),
            "sigmas": (cd + ("component", "feature"), sigmas.reshape(shape + (k, d))),
            "covariances": (cd + ("component", "feature", "feature_bis"),
                            covs.reshape(shape + (k, d, d))),
        },
        coords=coords,
        attrs=attrs,
    )
    n = X.shape[0]
    tree: dict[str, xr.Dataset] = {"posterior": posterior}
    if store_log_likelihood is None:
        store_log_likelihood = flat * n * 8 <= LOG_LIKELIHOOD_MAX_BYTES
        if not store_log_likelihood:
            warnings.warn(
                f"{LOG_LIKELIHOOD_NOT_STORED}: {n_chains} chain(s) x {n_draws} draws x "
                f"{n} points take {flat * n * 8 / 1e6:.0f} MB (more than "
                f"{LOG_LIKELIHOOD_MAX_BYTES / 1e6:.0f} MB). bayesgmm.selection.loo(fit) and "
                f"select_components compute LOO from the draws in chunks, and "
                f"bayesgmm.assignments.log_likelihood(fit) returns the array; for arviz_stats."
                f"loo(fit) itself, fit with store_log_likelihood=True.", FitWarning,
                stacklevel=3)
    if store_log_likelihood:
        ll = _math.pointwise_loglik(X, w, means, chols_user).reshape(shape + (n,))
        tree["log_likelihood"] = xr.Dataset(
            {"x": (cd + ("obs",), ll)}, coords={**coords, "obs": np.arange(n)}, attrs=attrs)
    tree["observed_data"] = xr.Dataset(
        {"x": (("obs", "feature"), X)}, coords={"obs": np.arange(n), "feature": names},
        attrs=attrs)
    tree["constant_data"] = xr.Dataset(
        {"center": ("feature", std.center), "scale": ("feature", std.scale)},
        coords={"feature": names}, attrs=attrs)
    if stats is not None:
        tree["sample_stats"] = stats.assign_attrs(attrs)
    tree["relabeling"] = xr.Dataset(
        {"permutation": (cd + ("component",), perm.reshape(shape + (k,)))},
        coords={k_: coords[k_] for k_ in ("chain", "draw", "component")}, attrs=attrs)
    if elbo is not None:
        tree["variational"] = xr.Dataset(
            {"elbo": ("iteration", elbo)}, coords={"iteration": np.arange(elbo.size)},
            attrs={**attrs, "converged": int(_elbo_converged(elbo))})
    if "optimizer" in out:
        tree["optimizer"] = xr.Dataset(attrs={**attrs, **out["optimizer"]})
    start_covs = start.covariances * np.outer(std.scale, std.scale)
    tree["initial_point"] = xr.Dataset(
        {
            "weights": ("component", start.weights),
            "means": (("component", "feature"), std.means_to_user(start.means)),
            "covariances": (("component", "feature", "feature_bis"), start_covs),
        },
        coords={key: coords[key] for key in ("component", "feature", "feature_bis")},
        attrs=attrs,
    )
    return xr.DataTree.from_dict(tree)
