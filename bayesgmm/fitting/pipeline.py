"""The fit pipeline: :func:`fit` for every method.

X -> checks -> standardise -> EM start -> PyMC model -> NUTS, VI or MAP -> the result's
``xarray.DataTree`` (:mod:`bayesgmm.fitting.result` describes its layout) -> diagnostics.

Ctrl-C (SIGINT) during any phase of any method raises ``KeyboardInterrupt``; no truncated
fit is returned (see :mod:`bayesgmm.fitting.interrupt`). Compiled JAX code cannot be
stopped: after an interrupt, numpyro's run and blackjax's current warm-up or chunk of draws
finish in a background thread, which the interpreter waits for at exit.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import xarray as xr

from ..diagnostics import check
from ..likelihood.noise import noise_region
from ..likelihood.ops import exact_numba
from ..model import build_model
from ..params import DEFAULTS, check_params
from ..priors import Priors
from ..progress import resolve as resolve_progress
from ..progress import step
from ..seeds import check_random_state, draw_seed
from ..sources import is_out_of_core, row_source
from ..standardize import Standardizer
from ..validation import (
    check_data,
    check_labels,
    check_model_size,
    check_sample_weight,
    has_feature_names,
)
from .compile import plan_compilation, quiet_pymc
from .map import run_map
from .modes import (
    MODE_SEARCH_MAX_ROWS,
    PosteriorOptimizer,
    model_key,
    reused_optimizer,
    search_modes,
)
from .nuts import default_sampler, require_sampler, run_nuts
from .result import FIT_SECONDS_ATTR, assemble
from .start import START_DOF, em_start, resolve_order_by
from .streamed import fit_streamed
from .vi import run_vi

__all__ = ["fit"]


def fit(
    X,
    n_components: int = DEFAULTS["n_components"],
    *,
    method: str = DEFAULTS["method"],
    priors: Priors | dict | None = DEFAULTS["priors"],
    draws: int = DEFAULTS["draws"],
    tune: int = DEFAULTS["tune"],
    chains: int = DEFAULTS["chains"],
    cores: int | None = DEFAULTS["cores"],
    sampler: str = DEFAULTS["sampler"],
    target_accept: float = DEFAULTS["target_accept"],
    max_iter: int = DEFAULTS["max_iter"],
    n_init: int = DEFAULTS["n_init"],
    batch_size: int | None = DEFAULTS["batch_size"],
    order_by: int | str | None = DEFAULTS["order_by"],
    covariance_type: str = DEFAULTS["covariance_type"],
    backend: str = DEFAULTS["backend"],
    store_log_likelihood: bool | None = DEFAULTS["store_log_likelihood"],
    repair_modes: bool = DEFAULTS["repair_modes"],
    random_state=DEFAULTS["random_state"],
    progressbar: bool | str = DEFAULTS["progressbar"],
    missing: str = DEFAULTS["missing"],
    component: str = DEFAULTS["component"],
    dof: float | None = DEFAULTS["dof"],
    noise: bool | str = DEFAULTS["noise"],
    sample_weight=None,
    labels=None,
) -> xr.DataTree:
    """Fit a Bayesian Gaussian mixture and return the result as an ``xarray.DataTree``.

    Parameters
    ----------
    X : array-like, data frame, or data out of memory, of shape (n_samples, n_features)
        Data: an array, or a pandas, polars or pyarrow frame (any that narwhals reads). A
        frame's column names become the ``feature`` coordinate, and predictions then check
        columns by name. Data that need not fit in memory: a Dask array, a zarr array or
        the path of a zarr store (``*.zarr``), the path of a parquet file or directory
        (``*.parquet``; its column names become the features) or a pyarrow dataset; they
        are read in slices, never whole, and fitted by minibatch ADVI
        (:mod:`bayesgmm.fitting.streamed`: ``method="advi"``, ``batch_size`` default
        1024, complete rows, no weights, labels or noise component).
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
        cpu_count)`` at a time (see :func:`bayesgmm.fitting.compile.default_cores`).
    sampler : {"auto", "pymc", "nutpie", "numpyro", "blackjax"}, default "auto"
        NUTS implementation; all sample the same model. "auto" takes the fastest
        installed: blackjax up to 3,000 rows, nutpie above, then PyMC's own; and nutpie at
        every size when features are nearly collinear (its low-rank mass matrix follows the
        correlations; see :func:`bayesgmm.fitting.nuts.default_sampler` and
        docs/fitting.md). nutpie, numpyro and blackjax are optional extras
        (``pip install 'bayesgmm[blackjax]'``, or ``'bayesgmm[all]'``).
    target_accept : float, default 0.8
        NUTS target acceptance rate (the default of PyMC, Stan, nutpie and numpyro). Raise
        it (0.9-0.95) if divergences are reported (docs/fitting.md has the comparison of
        0.8 and 0.9 on five data sets).
    max_iter : int, default 10000
        Maximum VI iterations (stops earlier once the ELBO stops rising), or MAP optimiser
        iterations.
    n_init : int, default 5
        EM restarts for the starting solution (:func:`bayesgmm.ml.em.em_for_start`: the
        search of :func:`bayesgmm.ml.fit_em`, whose own default is 10 starts).
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
        PyTensor compilation backend; "auto" uses JAX when installed (it compiles fastest),
        except for nutpie and PyMC's sampler above 3,000 rows, which then compile with
        numba, whose likelihood kernel is faster per gradient (see
        :func:`bayesgmm.fitting.compile.plan_compilation`; timings in docs/fitting.md).
        numba caches the compiled model on disk for every data set of the same structure
        (K, D, covariance structure, priors, ordering).
    store_log_likelihood : bool, optional
        Store the pointwise log-likelihood (chains x draws x N doubles). Default: when it
        takes at most 200 MB; otherwise a :class:`FitWarning` says so, and
        :func:`bayesgmm.selection.loo` and :func:`bayesgmm.assignments.log_likelihood`
        compute it from the draws when needed.
    repair_modes : bool, default True
        NUTS: restart chains whose mean log density ends more than 10 nats below the best
        chain's (a mode of negligible posterior mass) from the best chain's draws, for at
        most two rounds; the ``modes`` group records every chain's mode in every round (see
        :mod:`bayesgmm.fitting.modes`, and docs/fitting.md for when to turn it off).
    random_state : int or numpy.random.Generator, optional
        Seed for every random step (EM start, jitter, sampler, VI draws).
    progressbar : bool or "auto", default "auto"
        Report progress on standard error: the EM start, the mode search, the compilation,
        and the sampler's warm-up and draws with an ETA (blackjax: one bar over all chains,
        counted every 100 steps; the other samplers: their own bars), or
        VI's iterations, ending with whether the ELBO converged; and PyMC's log messages.
        "auto": where a person watches (a terminal or a Jupyter kernel; not under CI, nor
        into a file or a pipe; see :mod:`bayesgmm.progress`).
    missing : {"marginalize", "error"}, default "marginalize"
        Missing entries of ``X`` (NaN, or a data frame's nulls). "marginalize": a row's
        likelihood is that of its observed entries (each component's marginal on them),
        which assumes the entries are missing at random; a :class:`DataWarning` says how
        many there are, and rows with nothing observed are refused. Every structure and
        method handles them (minibatch ADVI draws each batch row with its pattern of
        missing entries); the EM start runs EM with missing data
        (:func:`bayesgmm.ml.missing.em_missing`). "error": refuse them.
    component : {"gaussian", "student_t"}, default "gaussian"
        The components' distribution. "student_t": multivariate Student-t components, for
        data with outliers or heavy tails: each has a location (``means``), a scale matrix
        (stored as ``covariances``; the covariance itself is ``dof / (dof - 2)`` times it
        where ``dof > 2``) and degrees of freedom ``dof`` (the posterior's ``dof``
        variable, per component), under a Gamma(``priors.dof_shape``, ``priors.dof_rate``)
        prior (Gamma(2, 0.1): Juarez and Steel 2010), whose density vanishes at 0 and lets
        large values (near-Gaussian components) through. Every method, sampler and
        covariance structure, with missing entries (a row's t marginal on its observed
        features: the t of the same degrees of freedom; not with minibatches) and known
        labels.
    dof : float, optional
        Student-t components only: fix every component's degrees of freedom to this value
        (> 0) instead of giving them a prior (``dof=1``: Cauchy components). The
        posterior's ``dof`` then holds the fixed value.
    noise : bool or {"box", "hypvol", "hull"}, default False
        Add a uniform noise component (mclust's ``noise``): a background of constant
        density ``1 / V`` over the data's region, for points that belong to no cluster.
        ``True`` is "box", the data's bounding box; "hypvol" mclust's ``hypvol`` (the
        smaller of the bounding box and the box in principal-component coordinates);
        "hull" the convex hull (up to 8 features). ``V`` is computed from the fitted data
        and kept with the fit (:mod:`bayesgmm.likelihood.noise`). Its weight is the
        posterior's ``noise_weight``, in one Dirichlet(a, ..., a) with the components'
        ``weights`` (which then sum to 1 minus it); the assignments get P(noise | x)
        (:func:`bayesgmm.assignments.assignment_summary`'s ``p_noise``, label -1). Every
        method and structure, Student-t components, missing entries ("box" only), known
        labels and weights.
    sample_weight : array-like of shape (n_samples,), optional
        Frequency weights: row n's log-likelihood term is multiplied by
        ``sample_weight[n]`` (finite, non-negative), for every method; integer weights give
        exactly the log posterior of the data with row n repeated ``sample_weight[n]``
        times. The standardisation and the EM start are weighted alike. The stored
        pointwise log-likelihood is per row, unweighted. The result keeps the weights in
        ``constant_data``.
    labels : array-like of shape (n_samples,), optional
        Known components of some rows (semi-supervised), -1 (or None) where unknown. The
        distinct labels (any values that sort: numbers, strings) name components 0, 1,
        ... in sorted order, so ``n_components`` must be at least their number; further
        components are free. A labelled row contributes ``log w_j + log N(x | mu_j,
        Sigma_j)`` of its own component only. The labels identify the components, so the
        draws are not relabelled, and ``order_by`` is refused. The result keeps the codes
        (``constant_data["labels"]``, -1 where unknown) and the labels (its ``class``
        coordinate). Not with minibatch ADVI.

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
    >>> sorted(result.children)[:5]
    ['constant_data', 'initial_point', 'log_likelihood', 'mode_search', 'observed_data']
    >>> np.sort(result["posterior"]["means"].values.ravel()).round(0)
    array([-3.,  3.])
    """
    began = time.perf_counter()
    checked = check_params(dict(
        n_components=n_components, method=method, sampler=sampler, draws=draws,
        chains=chains, tune=tune, max_iter=max_iter, n_init=n_init, cores=cores,
        batch_size=batch_size, target_accept=target_accept, priors=priors,
        covariance_type=covariance_type, backend=backend, random_state=random_state,
        order_by=order_by, store_log_likelihood=store_log_likelihood,
        repair_modes=repair_modes, progressbar=progressbar, missing=missing,
        component=component, dof=dof, noise=noise))
    progressbar = resolve_progress(checked["progressbar"])
    k, draws, chains, tune = (checked["n_components"], checked["draws"], checked["chains"],
                              checked["tune"])
    max_iter, n_init, cores = checked["max_iter"], checked["n_init"], checked["cores"]
    batch_size, target_accept = checked["batch_size"], checked["target_accept"]
    priors = checked["priors"]
    component, dof, noise = checked["component"], checked["dof"], checked["noise"]
    student = component == "student_t"
    if method == "nuts" and sampler != "auto":
        require_sampler(sampler)
    rng = check_random_state(random_state)
    if is_out_of_core(X):  # read in slices, never whole: minibatch ADVI
        return fit_streamed(row_source(X), checked, rng=rng, progressbar=progressbar,
                            began=began, sample_weight=sample_weight, labels=labels,
                            store_log_likelihood=store_log_likelihood)

    named_features = has_feature_names(X)
    X, names = check_data(X, n_components=k, missing=checked["missing"])
    n, d = X.shape
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, n)
    known, labels, classes = labels, None, None
    if known is not None:
        labels, classes = check_labels(known, n, k)
        if classes.size == 0:  # nothing known: an unsupervised fit
            labels = classes = None
        elif checked["order_by"] is not None:
            raise ValueError("order_by and known labels both fix which component is "
                             "which: pass one of them.")
        elif batch_size is not None and batch_size < n:
            raise NotImplementedError("Minibatch ADVI (batch_size) does not handle known "
                                      "labels yet: fit without batch_size.")
    if student and batch_size is not None and batch_size < n and np.isnan(X).any():
        raise NotImplementedError(
            "Minibatch ADVI with Student-t components does not take missing entries yet: "
            "fit without batch_size (the t marginals are then exact), or "
            "component='gaussian'.")
    check_model_size(n, d, k, covariance_type,
                     n_draws={"nuts": chains * draws, "map": 1}.get(method, draws),
                     batch_size=batch_size)
    if sampler == "auto":
        sampler = default_sampler(n, X)
    std = Standardizer.for_structure(X, covariance_type, sample_weight)
    Z = std.transform(X)
    region = noise_ld = None
    if noise:  # the region in the user's units; its density on Z's scale
        region = noise_region(X, noise)
        noise_ld = region.rescaled(std.scale).log_density(Z)
        noise_ld = float(noise_ld[0]) if np.ptp(noise_ld) == 0 else noise_ld
    sparse = priors.weight_concentration < 1
    use_batches = batch_size is not None and batch_size < n
    # The mode search polishes every EM optimum to the MAP (not for a sparse prior, whose
    # MAP is unbounded, nor minibatches, whose log posterior is noisy).
    search = not sparse and not use_batches and n <= MODE_SEARCH_MAX_ROWS
    pool: list = []
    with step(f"EM start, {n} x {d}, K={k}", progressbar):
        start = em_start(Z, k, n_init=n_init, random_state=draw_seed(rng), sparse=sparse,
                         covariance_type=covariance_type, raw=(X, std),
                         pool=pool if search else None, sample_weight=sample_weight,
                         labels=labels,
                         t_dof=(START_DOF if dof is None else dof) if student else None,
                         noise_log_density=noise_ld)
    if student and dof is not None:  # fixed: not a variable of the model, nor of the start
        start = replace(start, dof=None)
        pool = [replace(p, dof=None) for p in pool]
    order_by = resolve_order_by(order_by, names, start, k)
    start = start.ordered(order_by)
    compilation = plan_compilation(backend, method=method, sampler=sampler, n_obs=n)

    model_args = dict(feature_names=names, batch_size=batch_size if use_batches else None,
                      order_by=order_by, covariance_type=covariance_type,
                      shared_data=compilation.shared_data, sample_weight=sample_weight,
                      labels=labels, component=component, dof=dof,
                      noise_log_density=noise_ld)
    model = build_model(Z, k, priors, **model_args)

    with exact_numba():
        modes, candidates = [], [start] + [p.ordered(order_by) for p in pool]
        if search:
            key = model_key(Z, k, priors, compile_kwargs=compilation.compile_kwargs,
                            **model_args)

            def build_optimizer():
                # On a model of its own: what compiling it leaves in the fit's model would
                # make the fit's draws depend on whether the optimiser came from the cache.
                return PosteriorOptimizer(build_model(Z, k, priors, **model_args), start,
                                          compile_kwargs=compilation.compile_kwargs)

            with (step(f"mode search from {len(candidates)} EM optim"
                       f"{'a' if len(candidates) > 1 else 'um'}", progressbar),
                  quiet_pymc(not progressbar),
                  reused_optimizer(key, build_optimizer) as optimizer):
                modes = search_modes(optimizer, candidates, rng=rng, max_iter=max_iter)
        # Chains and VI start in the best mode. The MAP is that mode, and its start is the
        # EM optimum it was polished from.
        if not modes:
            begin = start
        elif method == "map":
            begin = candidates[modes[0].em_rank]
        else:
            begin = modes[0].start
        if method == "nuts":
            out = run_nuts(
                model, begin, draws=draws, tune=tune, chains=chains, cores=cores,
                target_accept=target_accept, rng=rng, compilation=compilation,
                progressbar=progressbar, sampler=sampler, repair_modes=repair_modes)
        elif method in ("advi", "fullrank_advi"):
            out = run_vi(
                model, begin, method=method, draws=draws, max_iter=max_iter, rng=rng,
                compile_kwargs=compilation.compile_kwargs, progressbar=progressbar, n_obs=n)
        else:
            out = run_map(model, begin, rng=rng, compile_kwargs=compilation.compile_kwargs,
                          progressbar=progressbar, max_iter=max_iter, modes=modes)
    out["mode_search"] = modes
    if student and dof is not None:  # fixed: every draw holds it
        out["draws"]["dof"] = np.full(out["draws"]["weights"].shape, dof)

    result = assemble(X, names, std, begin, out, method=method, sampler=sampler,
                      priors=priors, store_log_likelihood=store_log_likelihood,
                      named_features=named_features, sample_weight=sample_weight,
                      labels=labels, classes=classes, noise=region)
    result["posterior"].attrs[FIT_SECONDS_ATTR] = round(time.perf_counter() - began, 3)
    check(result, stacklevel=2)
    return result
