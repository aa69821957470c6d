"""Choosing the number of components K.

:func:`select_components` fits K = min..max and compares the fits by PSIS-LOO (ArviZ): the
expected log predictive density of a new point, with standard errors, and the Pareto k
diagnostic of every point (values above ArviZ's threshold mean LOO is unreliable for that
point). EM's BIC and AIC for the same K are shown beside it, for reference.

The rule it suggests: the smallest K whose ELPD is within two standard errors of the
difference from the best K (a larger K must earn its extra parameters). With several
covariance structures (``covariance_types=("full", "diag", ...)``, like mclust's families)
the grid of structures and K is compared the same way, the simplest model being the one
with the fewest free parameters. ``families=("gaussian", "student_t", "gaussian+noise")``
adds the component families to the grid: Student-t components (K more parameters, their
degrees of freedom) and a uniform noise component (one more, its weight), so that the
comparison says whether the data's tails or outliers need them. The fits are independent
and run in parallel through joblib (``n_jobs``), locally or on a Dask or Ray cluster through
joblib's backends.

:func:`sparse_mixture` answers the same question with one fit instead of many: an
overfitted mixture (K larger than needed) with a sparse Dirichlet prior on the weights
(concentration much less than 1, Malsiner-Walli, Fruhwirth-Schnatter and Grun 2016; Rousseau
and Mengersen 2011) empties the components the data do not need, and the posterior of the
number of non-empty components K+ (components holding at least one point, with the
assignments drawn from P(z | x, theta) in every posterior draw) is the answer.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .assignments import assignment_summary
from .clusters.prior import nonempty_prior
from .covariance import check_covariance_type
from .diagnostics import diagnose
from .estimator import BayesianGMM
from .exceptions import ConvergenceWarning, FitWarning
from .fitting.result import (
    LOG_LIKELIHOOD_NOT_STORED,
    as_tree,
    checked_data,
    fit_info,
    known_labels,
    log_likelihood_blocks,
    posterior_draws,
    sample_coords,
    thinned_draws,
)
from .likelihood.reference import draw_chunks, responsibilities
from .ml.em import fit_em
from .params import DEFAULTS
from .priors import Priors
from .progress import resolve as resolve_progress
from .progress import say
from .seeds import check_random_state, draw_seed
from .validation import check_data, check_positive_int, default_feature_names

__all__ = ["select_components", "Selection", "FAMILIES", "family_settings", "sparse_mixture",
           "SparseMixture", "loo"]


def loo(fitted):
    """PSIS-LOO of a fit, whether or not it stored its pointwise log-likelihood.

    With the ``log_likelihood`` group this is ``arviz_stats.loo(result, pointwise=True)``.
    Without it (fits whose log-likelihood would take more than 200 MB), the
    log-likelihood is computed from the posterior draws and the observed data block by
    block of points, and each block is smoothed by ArviZ's PSIS with the relative
    efficiency ArviZ computes from the posterior: the same numbers, in bounded memory.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree

    Returns
    -------
    arviz_stats.ELPDDataLOO
        With ``elpd_i`` and ``pareto_k`` per point (``log_weights`` only when stored).

    Warns
    -----
    UserWarning
        ArviZ's warning when a Pareto k exceeds its threshold (stored group);
        :class:`bayesgmm.diagnostics.FitWarning` with the count (computed).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.selection import loo
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, (60, 1)), rng.normal(4, 1, (60, 1))])
    >>> result = fit(X, 2, method="advi", draws=300, store_log_likelihood=False,
    ...              random_state=0)
    >>> res = loo(result)
    >>> res.n_data_points, bool(res.elpd < 0)
    (120, True)
    """
    import arviz_stats as azs
    import xarray as xr
    from arviz_stats import ELPDDataLOO
    from arviz_stats.base import array_stats

    result = as_tree(fitted)
    post = result["posterior"]
    n_total = post.sizes["chain"] * post.sizes["draw"]
    if n_total < 2:
        raise ValueError(
            f"LOO needs posterior draws, and this fit has {n_total} draw(s) (a point "
            f"estimate: method={fit_info(result).method!r}). Fit with method='nuts', 'advi' or "
            "'fullrank_advi' to compare by LOO, or compare point estimates by their "
            "held-out log-likelihood (BayesianGMM.score on data not fitted).")
    if "log_likelihood" in result.children:
        return azs.loo(result, pointwise=True)
    if "observed_data" not in result.children:
        raise ValueError("LOO needs the fitted data: this result has neither a "
                         "log_likelihood nor an observed_data group.")
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    n_samples = n_chains * n_draws
    if n_chains == 1:  # as arviz_stats.loo computes it
        reff = 1.0
    else:
        ess = post.azstats.ess(method="mean")
        reff = np.hstack([ess[v].values.flatten() for v in ess.data_vars]).mean() / n_samples
    X = checked_data(result)
    obs = np.arange(X.shape[0])
    elpd_i, pareto_k, p_i = (np.empty(X.shape[0]) for _ in range(3))
    for sl, block in log_likelihood_blocks(result, X, labels=known_labels(result)):
        # ArviZ's array function (what arviz_stats.loo runs on the DataArray); DataArrays
        # around the blocks stayed in reference cycles, memory that grew with N.
        elpd_i[sl], pareto_k[sl], p_i[sl] = array_stats.loo(block, chain_axis=0,
                                                             draw_axis=1, r_eff=reff)
        del block
    elpd_i, pareto_k, p_i = (xr.DataArray(a, dims="obs", coords={"obs": obs}, name=name)
                             for a, name in ((elpd_i, "elpd_i"), (pareto_k, "pareto_k"),
                                             (p_i, "p_loo_i")))
    elpd, se, p_loo, _ = elpd_i.azstats.loo_summary(p_i)
    good_k = min(1 - 1 / np.log10(n_samples), 0.7)
    n_bad = int((pareto_k.values > good_k).sum())
    if n_bad:
        warnings.warn(f"Pareto k above {good_k:.2f} for {n_bad} of {X.shape[0]} points: "
                      f"PSIS-LOO is less reliable there.", FitWarning, stacklevel=2)
    return ELPDDataLOO(elpd=elpd, se=se, p=p_loo, n_samples=n_samples,
                       n_data_points=X.shape[0], scale="log", warning=n_bad > 0,
                       good_k=good_k, elpd_i=elpd_i, pareto_k=pareto_k,
                       approx_posterior=False)


@dataclass
class Selection:
    """The result of :func:`select_components`.

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``n_components`` (one covariance structure) or (``covariance_type``,
        ``n_components``) (several); columns ``elpd_loo`` and its ``se``, ``p_loo``
        (effective number of parameters), ``elpd_diff`` and ``dse`` (difference from the
        best model and its standard error, paired over points), ``n_bad_pareto_k`` and
        ``max_pareto_k``, ``n_parameters`` (free parameters of the structure),
        ``bic_em``, ``aic_em`` and ``icl_em`` (EM fits of the same structure, lower is
        better; see :meth:`bayesgmm.ml.PointEstimate.icl`), ``entropy`` (the
        classification entropy of the fit's posterior mean responsibilities, summed over
        the points, in nats: large where components overlap; ICL's penalty is twice its
        hard version),
        ``max_rhat`` and ``min_ess`` (the smaller of bulk and tail ESS; NaN for VI),
        ``mode_repairs`` (chains the NUTS mode repair restarted),
        ``converged`` (:attr:`bayesgmm.diagnostics.Diagnostics.converged`), ``problems``
        (the kinds of problem :func:`bayesgmm.diagnose` found, comma-separated) and
        ``seconds``. The reference row of ``elpd_diff`` is the best converged model.
    best : int or None
        The suggested K (see the module documentation); only a converged model is ever
        suggested, and None when none converged.
    best_covariance_type : str or None
        The suggested covariance structure.
    fits : dict
        The fitted :class:`BayesianGMM` models, keyed by K (one structure), by
        (covariance_type, K), or with ``families`` by (family, covariance_type, K).
    best_family : str or None
        The suggested component family ("gaussian", "student_t", "gaussian+noise",
        "student_t+noise"); the one fitted where ``families`` was not given.
    """

    table: pd.DataFrame
    best: int | None
    fits: dict = field(repr=False, default_factory=dict)
    best_covariance_type: str | None = "full"
    best_family: str | None = "gaussian"

    def __str__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            body = self.table.round(2).to_string()
        grid = isinstance(self.table.index, pd.MultiIndex)
        families = grid and "family" in self.table.index.names
        if self.best is None:
            choice = "no model converged, so none is suggested"
        elif families:
            choice = (f"suggested K = {self.best}, covariance_type = "
                      f"{self.best_covariance_type!r}, family {self.best_family!r}")
        elif grid:
            choice = (f"suggested K = {self.best}, covariance_type = "
                      f"{self.best_covariance_type!r}")
        else:
            choice = f"suggested K = {self.best}"
        lines = [f"Choosing K by PSIS-LOO (higher elpd_loo is better); {choice}", body]
        failed = self.table.index[~self.table["converged"].to_numpy(bool)].tolist()
        if failed:
            lines.append(f"  Not converged, never suggested: {failed}. Refit them with longer "
                         f"chains (see selection.fits[key].diagnose() for each problem's "
                         f"advice).")
        bad = self.table["n_bad_pareto_k"]
        if (bad > 0).any():
            lines.append(f"  Pareto k above the threshold for some points at "
                         f"{bad[bad > 0].index.tolist()}: LOO is less reliable there.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


#: The component families :func:`select_components` compares: the components' distribution,
#: and "+noise" for a uniform noise component over the data's bounding box.
FAMILIES = ("gaussian", "student_t", "gaussian+noise", "student_t+noise")


def family_settings(family: str) -> dict:
    """``component`` and ``noise`` of :func:`bayesgmm.fit` for a family of :data:`FAMILIES`."""
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose from {FAMILIES}.")
    component, _, noise = family.partition("+")
    return {"component": component, "noise": "box" if noise else False}


def _family_of(settings: dict) -> str:
    """The family of fit settings (their ``component`` and ``noise``)."""
    component = settings.get("component", DEFAULTS["component"])
    return component + ("+noise" if settings.get("noise", DEFAULTS["noise"]) else "")


def _fit_one(X, covariance_type: str, k: int, method: str, random_state, fit_kwargs: dict):
    """Fit one model of the grid and score it; runs in a joblib worker.

    Warnings are recorded and returned, so that the caller can show them whatever the
    joblib backend (worker processes do not forward warnings). EM's BIC and AIC are those
    of EM with the same noise component; Student-t components have no EM baseline here
    (NaN), and their degrees of freedom count as K more free parameters when free.
    """
    student = fit_kwargs.get("component", DEFAULTS["component"]) == "student_t"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        model = BayesianGMM(k, covariance_type=covariance_type, method=method,
                            random_state=random_state, **fit_kwargs).fit(X)
        seconds = time.perf_counter() - t0
        em = fit_em(X, k, covariance_type=covariance_type, random_state=random_state,
                    noise=fit_kwargs.get("noise", DEFAULTS["noise"]))
        diag = diagnose(model)
    shown = [(w.category, str(w.message)) for w in record
             # ArviZ warns about high Pareto k; the table reports them. LOO below does
             # not need the stored log-likelihood.
             if "pareto" not in str(w.message).lower()
             and not str(w.message).startswith(LOG_LIKELIHOOD_NOT_STORED)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Pp]areto.*")
        res = loo(model)
    k_hat = np.asarray(res.pareto_k).ravel()
    free_dof = student and fit_kwargs.get("dof") is None
    row = {"family": _family_of(fit_kwargs), "covariance_type": covariance_type,
           "n_components": k, "elpd_loo": float(res.elpd),
           "se": float(res.se), "p_loo": float(res.p),
           "n_bad_pareto_k": int((k_hat > res.good_k).sum()), "max_pareto_k": float(k_hat.max()),
           "n_parameters": em.n_parameters + (k if free_dof else 0),
           "bic_em": np.nan if student else em.bic, "aic_em": np.nan if student else em.aic,
           "icl_em": np.nan if student else em.icl(),
           "entropy": float(assignment_summary(model, max_draws=200)["entropy"].sum()),
           "max_rhat": np.nan if diag.max_rhat is None else diag.max_rhat,
           "min_ess": (np.nan if diag.min_ess_bulk is None
                       else min(diag.min_ess_bulk, diag.min_ess_tail)),
           "mode_repairs": diag.mode_repairs,
           "converged": diag.converged,
           "problems": ", ".join(p.kind for p in diag.problems),
           "seconds": seconds}
    say(f"K={k} ({row['family']}, {covariance_type}): ELPD {row['elpd_loo']:.1f} +- "
        f"{row['se']:.1f}, {'converged' if diag.converged else 'NOT converged'}, "
        f"{seconds:.1f} s", resolve_progress(fit_kwargs.get("progressbar",
                                                            DEFAULTS["progressbar"])))
    return row, np.asarray(res.elpd_i).ravel(), model, shown


def select_components(X, max_components: int, *, min_components: int = 1,
                      covariance_types=("full",), method: str = "nuts", n_se: float = 2.0,
                      n_jobs: int | None = 1, backend: str | None = None, random_state=None,
                      families=None, **fit_kwargs) -> Selection:
    """Fit K = ``min_components`` .. ``max_components`` and compare them by PSIS-LOO.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    max_components : int
    min_components : int, default 1
    covariance_types : sequence of str, default ("full",)
        Covariance structures to compare ("full", "diag", "spherical", "tied"): the grid is
        every structure with every K.
    method : str, default "nuts"
        Fitting method (see :func:`bayesgmm.fit`); LOO needs posterior draws, so not "map".
    n_se : float, default 2.0
        A more complex model (more free parameters) is suggested only when it beats every
        simpler one by more than this many standard errors of the difference.
    n_jobs : int or None, default 1
        Fits run at once, through joblib (``-1``: one per core). The fits are independent;
        each worker compiles its own model, which pays off for fits of more than a few
        seconds.
    backend : str or dask.distributed.Client, optional
        Where the fits run. A ``dask.distributed.Client``: on its cluster, as tasks of its
        scheduler (through joblib's Dask backend; ``n_jobs`` 1 or None then means as many
        at once as its workers have threads). A joblib backend name: None (joblib's
        default, worker processes on this machine), "threading", or one registered with
        joblib, such as "ray" (after ``ray.util.joblib.register_ray()``). See
        docs/scale.md for a cluster that already runs.
    random_state : int, optional
        Seed; every model of the grid gets the same one, so the table does not depend on
        ``n_jobs`` or the backend (a cluster's workers included).
    families : sequence of str, optional
        Component families to compare as well (from :data:`FAMILIES`: "gaussian",
        "student_t", "gaussian+noise", "student_t+noise"; "+noise" is a uniform noise
        component over the bounding box, see :func:`bayesgmm.fit`): the grid is then every
        family with every structure and K, the table indexed by (family, covariance_type,
        n_components), and the simplest model within ``n_se`` of the best is suggested
        (Student-t components count K more parameters, a noise component one). Then
        ``component`` and ``noise`` are not passed in ``fit_kwargs``. Default: the one
        family of ``fit_kwargs`` (Gaussian unless they say otherwise).
    **fit_kwargs
        Passed to :class:`bayesgmm.BayesianGMM` (draws, tune, chains, priors, ...).

    Returns
    -------
    Selection
        Printing it shows the table.

    Warns
    -----
    FitWarning
        Each fit's warnings (convergence, empty components, ...), prefixed with the model
        they concern.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.selection import select_components
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, (60, 1)), rng.normal(4, 1, (60, 1))])
    >>> sel = select_components(X, 2, method="advi", draws=500, random_state=0)
    >>> sel.best, list(sel.table.index)
    (2, [1, 2])
    """
    from joblib import Parallel, delayed, parallel_config

    hi = check_positive_int(max_components, "max_components")
    lo = check_positive_int(min_components, "min_components")
    if lo > hi:
        raise ValueError(f"min_components ({lo}) must not exceed max_components ({hi}).")
    if method == "map":
        raise ValueError("LOO needs posterior draws: use method='nuts', 'advi' or "
                         "'fullrank_advi', not 'map'.")
    if isinstance(covariance_types, str):
        covariance_types = (covariance_types,)
    types = [check_covariance_type(t) for t in covariance_types]
    if not types or len(set(types)) != len(types):
        raise ValueError(f"covariance_types must name each structure once, got {types}.")
    # Missing entries as the fits treat them (marginalised unless missing="error").
    X, names = check_data(X, n_components=hi,
                          missing=fit_kwargs.get("missing", DEFAULTS["missing"]))
    if names != default_feature_names(X.shape[1]):
        X = pd.DataFrame(X, columns=names)  # keep the names for the fits' coords
    by_family = families is not None
    if by_family:
        if isinstance(families, str):
            families = (families,)
        families = list(families)
        for name in families:
            family_settings(name)
        if not families or len(set(families)) != len(families):
            raise ValueError(f"families must name each family once, got {families}.")
        clash = sorted({"component", "noise"} & set(fit_kwargs))
        if clash:
            raise ValueError(f"With families, the family sets {clash}: pass them in "
                             f"families (e.g. 'student_t+noise'), not as settings.")
    else:
        families = [_family_of(fit_kwargs)]
    grid = [(f, t, k) for f in families for t in types for k in range(lo, hi + 1)]

    def settings(family: str) -> dict:
        if not by_family:
            return fit_kwargs
        extra = family_settings(family)
        if extra["component"] != "student_t":  # a fixed dof is a t setting only
            return {**{k_: v for k_, v in fit_kwargs.items() if k_ != "dof"}, **extra}
        return {**fit_kwargs, **extra}

    tasks = (delayed(_fit_one)(X, t, k, method, random_state, settings(f))
             for f, t, k in grid)
    if _is_dask_client(backend):
        # joblib's Dask backend on this client: the fits are tasks of its scheduler, run
        # by its workers (n_jobs=-1: as many at once as the workers have threads).
        with parallel_config(backend="dask", client=backend):
            results = Parallel(n_jobs=-1 if n_jobs in (None, 1) else n_jobs)(tasks)
    else:
        results = Parallel(n_jobs=n_jobs, backend=backend)(tasks)

    single = len(types) == 1 and not by_family
    levels = (["family"] if by_family else []) + ([] if single else ["covariance_type"]) \
        + ["n_components"]
    rows, fits, pointwise = [], {}, {}
    for (f, t, k), (row, elpd_i, model, shown) in zip(grid, results, strict=True):
        key = k if single else tuple({"family": f, "covariance_type": t,
                                      "n_components": k}[name] for name in levels)
        rows.append(row)
        fits[key], pointwise[key] = model, elpd_i
        label = _label(key, levels)
        for category, message in shown:
            warnings.warn(f"[{label}] {message}", category, stacklevel=2)
    table = pd.DataFrame(rows).drop(columns=[c for c in ("family", "covariance_type")
                                             if c not in levels])
    table = table.set_index(levels[0] if single else levels)
    converged = table["converged"].to_numpy(bool)
    # The reference row (elpd_diff 0) is the best converged model: an unconverged fit's
    # ELPD is not an estimate of anything.
    candidates = table[converged] if converged.any() else table
    best_key = candidates["elpd_loo"].idxmax()
    diffs, dses = [], []
    for key in table.index:
        d = pointwise[key] - pointwise[best_key]
        diffs.append(float(d.sum()))
        dses.append(float(np.sqrt(d.size * d.var())))
    table.insert(3, "elpd_diff", diffs)
    table.insert(4, "dse", dses)
    failed = [key for key, ok in zip(table.index, converged, strict=True) if not ok]
    if failed:
        warnings.warn(_refit_advice(table, failed, bool(converged.any()), levels),
                      ConvergenceWarning, stacklevel=2)
    if not converged.any():
        return Selection(table=table, best=None, fits=fits, best_covariance_type=None,
                         best_family=None)
    # The simplest converged model (fewest free parameters) not worse than the best by more
    # than n_se standard errors; for one structure, the smallest such K.
    ok = table[converged & (table["elpd_diff"] >= -n_se * table["dse"]).to_numpy()]
    chosen = ok.sort_values(["n_parameters", "elpd_loo"], ascending=[True, False]).index[0]
    named = dict(zip(levels, (chosen,) if single else chosen, strict=True))
    return Selection(table=table, best=int(named["n_components"]), fits=fits,
                     best_covariance_type=named.get("covariance_type", types[0]),
                     best_family=named.get("family", families[0]))


def _is_dask_client(backend) -> bool:
    """Whether ``backend`` is a ``dask.distributed.Client`` (without importing Dask)."""
    kind = type(backend)
    return kind.__name__ == "Client" and kind.__module__.split(".")[0] == "distributed"


def _label(key, levels: list[str]) -> str:
    """A grid model's name in messages: "K=3", "K=3, diag" or "K=3, diag, student_t"."""
    named = dict(zip(levels, key if isinstance(key, tuple) else (key,), strict=True))
    return ", ".join([f"K={named['n_components']}"]
                     + [str(named[n]) for n in ("covariance_type", "family") if n in named])


def _refit_advice(table: pd.DataFrame, failed: list, any_converged: bool,
                  levels: list[str]) -> str:
    """Which models did not converge, why, and how to refit them."""
    parts = []
    for key in failed:
        row = table.loc[key]
        label = _label(key, levels)
        stats = [] if np.isnan(row["max_rhat"]) else [
            f"max R-hat {row['max_rhat']:.2f}", f"min ESS {row['min_ess']:.0f}"]
        parts.append(f"{label} ({'; '.join(stats + [row['problems']])})")
    lead = ("left out of the suggestion" if any_converged else
            "so no K is suggested (Selection.best is None)")
    return (f"{len(failed)} model(s) did not converge, {lead}: {', '.join(parts)}. Each fit's "
            f"warnings above give the advice for its problems, and selection.fits[key]."
            f"diagnose() repeats them; refit those models with longer chains (tune and draws "
            f"2000, or more chains) or the method each advice names, then compare again.")


@dataclass
class SparseMixture:
    """The result of :func:`sparse_mixture`.

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``n_nonempty`` (1 .. K); column ``probability``, the posterior probability
        that exactly that many components hold at least one point, and ``prior``, the
        probability the Dirichlet concentration gives it before seeing the data
        (:func:`bayesgmm.clusters.nonempty_prior`).
    best : int
        The most probable number of non-empty components.
    n_nonempty : xarray.DataArray
        K+ in every (thinned) posterior draw, dims (chain, draw).
    model : BayesianGMM
        The overfitted fit (its empty components sample their prior).
    concentration : float
        The Dirichlet concentration used.
    """

    table: pd.DataFrame
    best: int
    n_nonempty: object = field(repr=False)
    model: object = field(repr=False)
    concentration: float = 0.01

    def __str__(self) -> str:
        k = self.model.n_components
        shown = self.table[(self.table["probability"] > 0) | (self.table["prior"] > 5e-4)]
        lines = [f"Overfitted mixture: K = {k}, sparse Dirichlet({self.concentration:g}) "
                 f"weights; prior and posterior of the number of non-empty components "
                 f"(most probable: {self.best})",
                 shown.round(3).to_string()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def _count_nonempty(resp: np.ndarray, rng: np.random.Generator,
                    n_components: int | None = None) -> np.ndarray:
    """Draw z_n ~ Categorical(resp[..., n, :]) and count the distinct components.

    ``resp`` has shape (..., N, K); returns K+ with shape (...). ``n_components``: count
    only the first ones (a noise component's column, last, is no component of the
    mixture).
    """
    k = resp.shape[-1]
    u = rng.random(resp.shape[:-1] + (1,))
    z = np.minimum((np.cumsum(resp, axis=-1) < u).sum(axis=-1), k - 1)
    occupied = np.zeros(resp.shape[:-2] + (k,), dtype=bool)
    np.put_along_axis(occupied, z, True, axis=-1)
    return occupied[..., :n_components].sum(axis=-1)


def _nonempty_per_draw(result, max_draws: int, rng: np.random.Generator):
    """K+ in evenly thinned draws, as a DataArray (chain, draw); memory bounded by chunks."""
    import xarray as xr

    post = result["posterior"]
    X = result["observed_data"]["x"].to_numpy()
    c, s_, k = post.sizes["chain"], post.sizes["draw"], post.sizes["component"]
    draws = thinned_draws(s_, c, max_draws)
    params = posterior_draws(post, draws)
    flat = params.weights.shape[0]
    counts = np.empty(flat, dtype=int)
    for sl in draw_chunks(flat, X.shape[0], k, X.shape[1]):
        resp = responsibilities(X, *params.sliced(sl))
        counts[sl] = _count_nonempty(resp, rng, k)
    return xr.DataArray(counts.reshape(c, draws.size), dims=("chain", "draw"),
                        coords=sample_coords(post, draws), name="n_nonempty")


def sparse_mixture(X, max_components: int = 10, *, concentration: float = 0.01,
                   method: str = "nuts", max_draws: int = 1000, random_state=None,
                   **fit_kwargs) -> SparseMixture:
    """Fit an overfitted mixture with a sparse Dirichlet prior; report how many components fill.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    max_components : int, default 10
        K of the overfitted mixture: an upper bound on the number of clusters.
    concentration : float, default 0.01
        Dirichlet concentration of the weights; much less than 1 (Malsiner-Walli et al.
        recommend 0.01) so that superfluous components empty rather than split clusters.
        An empty component's log weight then has a posterior spread of about
        1/concentration, which NUTS explores with long trajectories: expect a tree-depth
        warning and a fit several times slower than one with the right K.
    method : {"nuts", "advi", "fullrank_advi"}, default "nuts"
        VI is faster, but a mean-field approximation stays near its start (the BIC-best EM
        solution padded with empty components), so its K+ mostly echoes BIC.
    max_draws : int, default 1000
        Posterior draws (spread over the chains) in which the assignments are drawn.
    random_state : int, optional
        Seed of the fit and of the assignment draws.
    **fit_kwargs
        Passed to :class:`bayesgmm.BayesianGMM` (draws, tune, chains, other priors, ...).

    Returns
    -------
    SparseMixture
        Printing it shows the posterior of K+.

    Warns
    -----
    FitWarning
        When the posterior puts more than 5% on all K components filled: K is too small to
        be an upper bound.

    Notes
    -----
    The fit starts from the EM solution with the lowest BIC over 1..K components, padded
    with empty components (see :func:`bayesgmm.fitting.start.em_start`), and its diagnostics
    compute R-hat and ESS over the non-empty components only.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.selection import sparse_mixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, (60, 1)), rng.normal(4, 1, (60, 1))])
    >>> result = sparse_mixture(X, 4, method="advi", draws=400, random_state=0)
    >>> result.best
    2
    """
    k = check_positive_int(max_components, "max_components")
    if k < 2:
        raise ValueError(f"max_components must be at least 2 for an overfitted mixture, "
                         f"got {k}.")
    if method == "map":
        raise ValueError("A sparse Dirichlet prior makes the MAP ill-posed (the density is "
                         "unbounded as a weight goes to 0): use method='nuts' or 'advi'.")
    if not (isinstance(concentration, (int, float)) and 0 < concentration < 1):
        raise ValueError(f"concentration must lie in (0, 1) for a sparse mixture, got "
                         f"{concentration!r}; 0.01 is the usual choice.")
    rng = check_random_state(random_state)
    priors = Priors.coerce(fit_kwargs.pop("priors", None)).replace(
        weight_concentration=float(concentration))
    model = BayesianGMM(k, method=method, priors=priors, random_state=draw_seed(rng),
                        **fit_kwargs).fit(X)
    n_nonempty = _nonempty_per_draw(model.idata_, check_positive_int(max_draws, "max_draws"),
                                    rng)
    counts = n_nonempty.to_numpy()
    probs = np.bincount(counts.ravel(), minlength=k + 1)[1:] / counts.size
    n_obs = model.idata_["observed_data"].sizes["obs"]
    prior = nonempty_prior(n_obs, k, float(concentration)).reindex(np.arange(1, k + 1),
                                                                    fill_value=0.0)
    table = pd.DataFrame({"probability": probs, "prior": prior.to_numpy()},
                         index=pd.Index(np.arange(1, k + 1), name="n_nonempty"))
    if probs[-1] > 0.05:
        warnings.warn(
            f"All {k} components hold points in {probs[-1]:.0%} of the draws: K = {k} is "
            f"not an upper bound on the number of clusters. Increase max_components.",
            FitWarning, stacklevel=2)
    return SparseMixture(table=table, best=int(np.argmax(probs)) + 1, n_nonempty=n_nonempty,
                         model=model, concentration=float(concentration))
