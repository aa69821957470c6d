"""Diagnostics of a fit that survive label switching, with advice for each problem.

Every fit is relabelled before anything here looks at it (see :mod:`bayesgmm.relabel`), so
R-hat and ESS measure mixing, not the arbitrary order of the components. On top of the usual
NUTS checks (divergences, tree depth, R-hat, ESS) a mixture needs its own:

* **chains in different label permutations**: harmless once relabelled, but a posterior that
  was not relabelled (for example chains combined by hand) averages different clusters
  together. Detected by matching each chain's mean components to the first chain's.
* **chains in different modes**: the label-free total log-likelihood, log p(X | theta), must
  have the same distribution in every chain; its R-hat says whether it does.
* **near-empty components**: fewer effective points (posterior mean weight x N) than its
  covariance needs to be determined by the data (D + 1 for a full covariance in D
  dimensions; see :func:`min_points`), and **collapsed components**: a component the EM
  start fills that the fit emptied (its weight under :data:`COLLAPSE_RATIO` of the
  start's). A collapse is a failure of the fit, not evidence for fewer components, and gets
  the advice that fits the method.
* **near-singular covariances** (a direction with almost no spread, in units of the data's
  standard deviation) and **collinear features** (a component's correlation matrix with an
  eigenvalue under :data:`COLLINEAR_EIGENVALUE`), naming the features involved.
* **sparse Dirichlet priors** (``weight_concentration < 1``, an overfitted mixture): empty
  components are then the intended result, not a problem. Their parameters only sample
  their prior and have no meaningful R-hat, so R-hat, ESS and the chain permutations are
  computed over the non-empty components.
* **VI**: the ELBO must have stopped rising, and its noise must be of the size a good
  Gaussian approximation gives. **MAP**: the optimiser must have converged.

:func:`diagnose` returns all of it as a :class:`Diagnostics` object; :func:`check` also
issues a warning per problem (fits call it); :func:`summary` is the one table per fit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from .covariance import COLLINEAR_EIGENVALUE, SINGULAR_EIGENVALUE, n_parameters
from .exceptions import ConvergenceWarning, FitWarning, LabelSwitchingWarning
from .fitting.result import as_tree, fit_info, start_weights, total_log_likelihood
from .permutations import gaussian_kl_cost, pivot_permutations
from .validation import describe_outliers

__all__ = ["Problem", "Diagnostics", "diagnose", "check", "summary", "min_points",
           "ESS_MIN", "COLLINEAR_EIGENVALUE", "COLLAPSE_RATIO"]

RHAT_MAX = 1.01
# The log-likelihood is one scalar per draw: its R-hat is noisier than the maximum over
# parameters (1.010 was seen with chain means 0.3 nats apart), and chains in different
# modes differ by many nats, far above this.
LOGLIK_RHAT_MAX = 1.05
#: Bulk and tail ESS wanted in total, whatever the number of chains: Vehtari et al. (2021),
#: "Rank-normalization, folding, and localization: an improved R-hat", section 4.
ESS_MIN = 400
#: A component whose posterior mean weight is below this fraction of its EM start's weight
#: (and that the start filled with at least :func:`min_points` points) has collapsed.
COLLAPSE_RATIO = 0.2
TREEDEPTH_FRACTION_MAX = 0.01
# ELBO noise over a good approximation's (see _elbo_noise).
ELBO_NOISE_MAX = 10.0
MAX_TREEDEPTH = 10


@dataclass(frozen=True)
class Problem:
    """One problem found in a fit: what it is, what it means and what to do."""

    kind: str
    message: str
    category: type[Warning] = FitWarning

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


@dataclass
class Diagnostics:
    """Everything :func:`diagnose` measured on a fit.

    Attributes
    ----------
    method, sampler : str
    n_chains, n_draws : int
    n_divergent : int or None
        Divergent transitions after tuning (NUTS).
    treedepth_fraction : float or None
        Fraction of draws that hit the maximum tree depth (NUTS, where recorded).
    max_rhat, min_ess_bulk, min_ess_tail : float or None
        Over weights, means and sigmas (and ``dof``, ``noise_weight`` where the fit has
        them), after relabelling (NUTS with two or more chains); over the
        ``checked_components`` only. ESS is in total over the chains.
    loglik_rhat : float or None
        R-hat of the label-free total log-likelihood log p(X | theta) across chains.
    chain_permutations : ndarray of shape (n_chains, K)
        Order of the components in each chain matched to chain 0 (identity rows when the
        posterior is consistently labelled).
    relabelled_fraction : ndarray of shape (n_chains,) or None
        Fraction of each chain's draws that relabelling changed (from ``relabeling``).
    mean_weights : ndarray of shape (K,)
    effective_points : ndarray of shape (K,) or None
        Posterior mean weight times the number of observations.
    start_points : ndarray of shape (K,) or None
        The same for the EM start the fit began from.
    min_points : int
        Effective points a component needs for its covariance (:func:`min_points`).
    collapsed : ndarray of int
        Components the start filled and the fit emptied (weight under
        :data:`COLLAPSE_RATIO` of the start's).
    min_eigenvalue : ndarray of shape (K,)
        Smallest eigenvalue of each component's posterior mean correlation-scale covariance
        (the covariance divided by the data's feature standard deviations).
    min_correlation_eigenvalue : ndarray of shape (K,)
        Smallest eigenvalue of each component's posterior mean correlation matrix (1 for
        diagonal and spherical covariances); under :data:`COLLINEAR_EIGENVALUE`, features
        are nearly collinear within the component.
    elbo_converged : bool or None
    elbo_noise : float or None
        Draw-to-draw noise of the last 500 ELBO values (from successive differences, so
        that a drift does not count) in units of a good Gaussian approximation's,
        sqrt(n_parameters / 2); above 10 is reported for a converged ELBO.
    optimizer_converged : bool or None
    mode_repairs : int
        Chains restarted by the mode repair (NUTS; see :mod:`bayesgmm.fitting.modes`), over
        all rounds.
    mode_gaps : ndarray or None
        Each chain's final mean log density below the best chain's, in nats (NUTS with
        two or more chains, from the ``modes`` group).
    sparse : bool
        The weights have a sparse Dirichlet prior (concentration below 1).
    checked_components : ndarray of int
        The components R-hat, ESS and chain permutations were computed over: all of them,
        or with a sparse prior, those whose median weight is worth at least one
        observation.
    problems : list of Problem
    """

    method: str
    sampler: str
    n_chains: int
    n_draws: int
    mean_weights: np.ndarray
    min_eigenvalue: np.ndarray
    chain_permutations: np.ndarray
    min_correlation_eigenvalue: np.ndarray | None = None
    effective_points: np.ndarray | None = None
    start_points: np.ndarray | None = None
    min_points: int = 1
    collapsed: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    n_divergent: int | None = None
    treedepth_fraction: float | None = None
    max_rhat: float | None = None
    min_ess_bulk: float | None = None
    min_ess_tail: float | None = None
    loglik_rhat: float | None = None
    relabelled_fraction: np.ndarray | None = None
    elbo_converged: bool | None = None
    elbo_noise: float | None = None
    optimizer_converged: bool | None = None
    mode_repairs: int = 0
    mode_gaps: np.ndarray | None = None
    sparse: bool = False
    checked_components: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def converged(self) -> bool:
        """True when no problem says the inference itself failed.

        Those are the :class:`ConvergenceWarning` and :class:`LabelSwitchingWarning` ones
        (R-hat, ESS, modes, divergences, a collapsed component, an unconverged ELBO or
        optimiser, ...). The others (an empty component, collinear features) describe the
        model and the data: its posterior can be converged and still have them.
        """
        return not any(issubclass(p.category, (ConvergenceWarning, LabelSwitchingWarning))
                       for p in self.problems)

    def _rows(self) -> list[tuple[str, str]]:
        """What was measured, as (name, value) rows, for the text and the HTML views.

        What a method does not measure (R-hat of VI draws, divergences of a MAP fit) is
        left out, not shown as "n/a".
        """
        def listed(values, spec):
            return str([float(format(v, spec)) for v in values])

        rows = []
        if self.n_divergent is not None:
            rows.append(("divergences", f"{self.n_divergent:d}"))
        if self.treedepth_fraction is not None:
            rows.append(("max tree depth hit", f"{self.treedepth_fraction:.1%}"))
        if self.max_rhat is not None:
            rows.append(("max R-hat", f"{self.max_rhat:.3f}"))
        if self.min_ess_bulk is not None:
            rows.append(("min bulk ESS", f"{self.min_ess_bulk:.0f}"))
        if self.min_ess_tail is not None:
            rows.append(("min tail ESS", f"{self.min_ess_tail:.0f}"))
        if self.loglik_rhat is not None:
            rows.append(("log-likelihood R-hat across chains", f"{self.loglik_rhat:.3f}"))
        rows.append(("mean weights", str(np.round(self.mean_weights, 3).tolist())))
        rows.append(("smallest covariance eigenvalue (feature-sd units)",
                     listed(self.min_eigenvalue, ".2g")))
        if self.effective_points is not None:
            start = ("" if self.start_points is None else
                     f" (EM start: {np.round(self.start_points, 1).tolist()})")
            rows.append(("effective points per component",
                         f"{np.round(self.effective_points, 1).tolist()}{start}; each needs "
                         f"{self.min_points}"))
        if self.min_correlation_eigenvalue is not None:
            rows.append(("smallest correlation eigenvalue",
                         listed(self.min_correlation_eigenvalue, ".2g")))
        if self.mode_gaps is not None:
            rows.append(("mode repair", f"{self.mode_repairs} chain(s) restarted from the best "
                         f"chain; final gaps below the best chain's mean log density: "
                         f"{np.round(self.mode_gaps, 1).tolist()} nats"))
        if self.sparse and self.checked_components is not None:
            rows.append(("sparse Dirichlet prior", f"R-hat and ESS over the non-empty "
                         f"components {self.checked_components.tolist()}"))
        if self.elbo_converged is not None:
            rows.append(("ELBO converged", str(self.elbo_converged)))
        if self.elbo_noise is not None:
            rows.append(("ELBO noise (x a good approximation's)", f"{self.elbo_noise:.1f}"))
        if self.optimizer_converged is not None:
            rows.append(("optimiser converged", str(self.optimizer_converged)))
        return rows

    def __str__(self) -> str:
        lines = [f"bayesgmm diagnostics: method={self.method}"
                 + (f", sampler={self.sampler}" if self.sampler else "")
                 + f", {self.n_chains} chain(s) x {self.n_draws} draw(s)"]
        lines += [f"  {name}: {value}" for name, value in self._rows()]
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s):")
            lines += [f"  - {p}" for p in self.problems]
        else:
            lines.append("  no problems found")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))

    def _repr_html_(self) -> str:  # Jupyter
        from .display import diagnostics_html

        return diagnostics_html(self)


def _rhat_ess(post: xr.Dataset, var_names) -> tuple[float, float, float]:
    """Worst R-hat, bulk ESS and tail ESS over the named variables.

    Elements that are exactly constant over all draws (the weight of a one-component
    mixture) have no R-hat or ESS and are left out; any other NaN counts as a failure.
    """
    import arviz_stats as azs

    post = post[list(var_names)]
    constant = {v: (post[v].max(("chain", "draw")) == post[v].min(("chain", "draw"))).to_numpy()
                for v in var_names}

    def extreme(ds, worst_is_max: bool):
        values = []
        for v in ds.data_vars:
            arr = ds[v].to_numpy()[~constant[v]]
            arr = np.where(np.isnan(arr), np.inf if worst_is_max else 0.0, arr)
            if arr.size:
                values.append(float(arr.max() if worst_is_max else arr.min()))
        if not values:
            return 1.0 if worst_is_max else float("inf")
        return max(values) if worst_is_max else min(values)

    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = azs.rhat(post)
        bulk = azs.ess(post, method="bulk")
        tail = azs.ess(post, method="tail")
    return extreme(rhat, True), extreme(bulk, False), extreme(tail, False)


def _singular_advice(result) -> str:
    """What to do about a near-singular component: outlying rows first, where there are any.

    A few rows far beyond the others (a value mistyped by orders of magnitude) make the
    other components look like one tight point on the standardised scale.
    """
    if "observed_data" in result.children:
        X = result["observed_data"]["x"].to_numpy()
        names = [str(f) for f in result["observed_data"]["feature"].to_numpy()]
        outliers = describe_outliers(X, names)
        if outliers:
            return (f"The data have outlying rows: {outliers}. Check them for data errors and "
                    f"remove them (or transform a skewed column), then fit again.")
    return ("Check for duplicated rows or linearly dependent columns, reduce n_components, "
            "or strengthen the priors (larger Priors(scale_scale=...) or "
            "Priors(lkj_eta=...)).")


def _chain_permutations(post: xr.Dataset) -> np.ndarray:
    """Match every chain's mean components to chain 0's (Hungarian on Gaussian KL)."""
    means = post["means"].mean("draw").to_numpy()  # (C, K, D)
    covs = post["covariances"].mean("draw").to_numpy()  # (C, K, D, D)
    return pivot_permutations(gaussian_kl_cost(means, covs, means[0], covs[0]))


def _treedepth_fraction(stats: xr.Dataset) -> float | None:
    for name in ("reached_max_treedepth", "maxdepth_reached"):
        if name in stats:
            return float(stats[name].astype(float).mean())
    if "tree_depth" in stats:  # numpyro and blackjax: at most 10 doublings by default
        return float((stats["tree_depth"] >= MAX_TREEDEPTH).mean())
    return None


def _elbo_noise(result: xr.DataTree, k: int, d: int) -> float | None:
    """Noise of the last 500 ELBO values over sqrt(n_parameters / 2).

    The noise is the sd of successive differences over sqrt(2), so that a drift does not
    count. A one-draw ELBO estimate under a good Gaussian approximation varies like half a
    chi-square with one degree per parameter: standard deviation sqrt(P / 2). Measured
    here: 0.7-1.5 times that for mean-field fits, up to 4 for full-rank ones; a
    mean-field fit of full covariances at D = 20 gave about 40,000.
    """
    elbo = result["variational"]["elbo"].to_numpy()[-500:]
    if elbo.size < 100 or not np.isfinite(elbo).all():
        return None
    covariance_type = fit_info(result).covariance_type
    # From successive differences, so that a slow drift does not count as noise.
    sd = float(np.diff(elbo).std() / np.sqrt(2.0))
    return sd / float(np.sqrt(n_parameters(k, d, covariance_type) / 2))


def diagnose(fitted) -> Diagnostics:
    """Measure everything that can go wrong with a fit and list the problems found.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
        A fit (a fitted estimator, or the result of :func:`bayesgmm.fit`).

    Returns
    -------
    Diagnostics
        The measurements, with ``problems`` listing each one that needs action (each with
        advice). Printing it gives a readable report.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.diagnostics import diagnose
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (50, 1)), rng.normal(3, 1, (50, 1))])
    >>> report = diagnose(fit(X, 2, method="map", random_state=0))
    >>> report.ok, report.optimizer_converged
    (True, True)
    """
    result = as_tree(fitted)
    post = result["posterior"]
    info = fit_info(result)
    method, sampler = info.method, info.sampler
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    k = post.sizes["component"]
    n_obs = result["observed_data"].sizes["obs"] if "observed_data" in result.children else None
    mean_w = post["weights"].mean(("chain", "draw")).to_numpy()

    scale = (result["constant_data"]["scale"].to_numpy() if "constant_data" in result.children
             else np.ones(post.sizes["feature"]))
    cov = post["covariances"].mean(("chain", "draw")).to_numpy() / np.outer(scale, scale)
    min_eig = np.linalg.eigvalsh(cov)[:, 0]
    corr_eig = (_correlation_eigen(cov)[0] if info.covariance_type in ("full", "tied")
                else np.ones(k))
    sparse = info.sparse
    if n_obs is None:
        occupied = np.ones(k, bool)
    elif sparse:
        # An empty component's weight is heavy-tailed (rare excursions dominate its mean):
        # call it occupied when its median weight is worth one observation.
        occupied = post["weights"].median(("chain", "draw")).to_numpy() * n_obs >= 1.0
    else:
        occupied = mean_w * n_obs >= 1.0
    # With a sparse prior, empty components roam their prior: leave them out of R-hat, ESS
    # and the chain matching (none of which means anything for them).
    checked = np.flatnonzero(occupied) if sparse and method != "map" else np.arange(k)
    sub = post.to_dataset().isel(component=checked)
    perms = np.tile(np.arange(k), (n_chains, 1))
    if n_chains > 1:
        perms[:, checked] = checked[_chain_permutations(sub)]
    w0 = start_weights(result)
    diag = Diagnostics(method=method, sampler=sampler, n_chains=n_chains, n_draws=n_draws,
                       mean_weights=mean_w, min_eigenvalue=min_eig, chain_permutations=perms,
                       sparse=sparse, checked_components=checked,
                       min_correlation_eigenvalue=corr_eig,
                       min_points=min_points(info.covariance_type, post.sizes["feature"]),
                       effective_points=None if n_obs is None else mean_w * n_obs,
                       start_points=None if n_obs is None or w0 is None or w0.size != k
                       else w0 * n_obs)
    _component_checks(result, diag)
    if method == "nuts":
        _nuts_checks(result, diag, sub)
    if "variational" in result.children:
        _vi_checks(result, diag)
    if "optimizer" in result.children:
        _map_checks(result, diag)
    return diag


def min_points(covariance_type: str, n_features: int) -> int:
    """Effective points a component needs for the data to determine its covariance.

    D + 1 for a full covariance in D dimensions (D + 1 points in general position span a
    D-dimensional simplex), 2 for a diagonal or spherical one (a spread along every
    axis), 1 for a tied one (the shared covariance comes from all components: a component
    needs a point only for its mean). With fewer, the component's covariance is its prior's.
    """
    return {"full": n_features + 1, "diag": 2, "spherical": 2}.get(covariance_type, 1)


def _correlation_eigen(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest eigenvalue (K,) and its eigenvector (K, D) of each covariance's correlation."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    vals, vecs = np.linalg.eigh(corr)
    return vals[:, 0], vecs[:, :, 0]


def _collapse_advice(method: str) -> str:
    """What to do when a fit emptied a component that its EM start fills."""
    keep = " Do not reduce n_components for this: EM fills the component."
    if method == "advi":
        return ("Mean-field ADVI can empty a component that the data fill, above all in many "
                "dimensions: use method='fullrank_advi', covariance_type='diag' (far fewer "
                "parameters), or method='nuts'." + keep)
    if method == "fullrank_advi":
        return ("Use method='nuts', or covariance_type='diag' (far fewer parameters)." + keep)
    if method == "nuts":
        return ("The chains left the EM solution for one with this component (nearly) empty. "
                "Compare with method='map', which starts from the same solution; if the MAP "
                "fills the component, the chains found another mode: tune longer or run more "
                "chains." + keep)
    return ("Under the priors the EM solution is not a mode here (EM may have fitted this "
            "component to a few points with a tiny covariance): compare with method='nuts'.")


def _collinear_features(result: xr.DataTree, cov: np.ndarray, components: np.ndarray) -> str:
    """The features nearly collinear within ``components``, and their strongest pair."""
    names = [str(f) for f in result["posterior"]["feature"].to_numpy()]
    _, vecs = _correlation_eigen(cov[components])
    parts = []
    for c, v in zip(components, vecs, strict=True):
        # The features the near-null direction loads on: the ones that (nearly) sum to zero.
        involved = np.flatnonzero(np.abs(v) >= 0.3 * np.abs(v).max())
        sd = np.sqrt(np.diag(cov[c]))
        corr = cov[c] / np.outer(sd, sd)
        sub = np.abs(corr[np.ix_(involved, involved)]) - np.eye(involved.size)
        i, j = np.unravel_index(np.argmax(sub), sub.shape)
        parts.append(f"component {int(c)}: {[names[f] for f in involved]} (the strongest "
                     f"pair, {names[involved[i]]!r} and {names[involved[j]]!r}, correlate "
                     f"{corr[involved[i], involved[j]]:.3f})")
    return "; ".join(parts)


def _component_checks(result: xr.DataTree, diag: Diagnostics) -> None:
    """Near-empty and collapsed components, near-singular covariances, collinear features.

    And chains in other label permutations.
    """
    problems, checked, min_eig = diag.problems, diag.checked_components, diag.min_eigenvalue
    mean_w, perms, n_chains = diag.mean_weights, diag.chain_permutations, diag.n_chains
    k = mean_w.size
    need, counts, start_counts = diag.min_points, diag.effective_points, diag.start_points
    d = result["posterior"].sizes["feature"]
    filled = np.ones(k, bool)
    if counts is not None and checked.size == k:
        if start_counts is not None and not diag.sparse:  # sparse: emptying is intended
            diag.collapsed = np.flatnonzero((start_counts >= need)
                                            & (counts < COLLAPSE_RATIO * start_counts))
        if diag.collapsed.size:
            c = diag.collapsed
            problems.append(Problem(
                "collapsed component",
                f"Component(s) {c.tolist()} hold far fewer points than the EM start gave them "
                f"(effective points {np.round(counts[c], 1).tolist()}, against "
                f"{np.round(start_counts[c], 1).tolist()} at the start): the fit emptied "
                f"component(s) that the data fill. " + _collapse_advice(diag.method),
                ConvergenceWarning))
        near_empty = np.setdiff1d(np.flatnonzero(counts < need), diag.collapsed)
        filled[near_empty] = filled[diag.collapsed] = False
        if near_empty.size:
            what = ("under one observation" if need == 1 else
                    f"fewer than the {need} a {fit_info(result).covariance_type} covariance "
                    f"in {d} dimension(s) needs, so their covariance is their prior's")
            problems.append(Problem(
                "empty component",
                f"Component(s) {near_empty.tolist()} are (nearly) empty (posterior mean weight "
                f"{np.round(mean_w[near_empty], 5).tolist()}, effective points "
                f"{np.round(counts[near_empty], 1).tolist()}: {what}). The data support "
                f"fewer components: reduce n_components (or use a sparse Dirichlet, "
                f"Priors(weight_concentration=0.01), with method='nuts' or 'advi', to let "
                f"the fit switch them off: see bayesgmm.selection.sparse_mixture).",
                FitWarning))
    singular = checked[min_eig[checked] < SINGULAR_EIGENVALUE]
    if singular.size:
        problems.append(Problem(
            "near-singular covariance",
            f"Component(s) {singular.tolist()} have a nearly singular covariance (smallest "
            f"eigenvalue {[float(f'{v:.2g}') for v in min_eig[singular]]} in units of the "
            f"feature variances): the component is collapsing onto a point, a line or a "
            f"plane. " + _singular_advice(result),
            FitWarning))
    corr_eig = diag.min_correlation_eigenvalue
    collinear = np.setdiff1d(checked[corr_eig[checked] < COLLINEAR_EIGENVALUE], singular)
    collinear = collinear[filled[collinear]]
    if collinear.size and d > 1:
        post = result["posterior"]
        cov = post["covariances"].mean(("chain", "draw")).to_numpy()
        problems.append(Problem(
            "collinear features",
            f"Features are nearly collinear within component(s) {collinear.tolist()} "
            f"(smallest correlation eigenvalue "
            f"{[float(f'{v:.2g}') for v in corr_eig[collinear]]}, under "
            f"{COLLINEAR_EIGENVALUE}): {_collinear_features(result, cov, collinear)}. The "
            f"posterior of such a covariance is a narrow ridge: slow to sample and poorly "
            f"determined. Drop or combine the features (keep one of each collinear group, or "
            f"their sum or first principal component), use covariance_type='diag', or pull "
            f"the correlations towards 0 with a larger Priors(lkj_eta=...) (e.g. 10).",
            FitWarning))

    if n_chains > 1 and not np.array_equal(perms, np.tile(np.arange(k), (n_chains, 1))):
        rows = {c: perms[c].tolist() for c in range(n_chains)
                if not np.array_equal(perms[c], np.arange(k))}
        problems.append(Problem(
            "chains in different label permutations",
            f"Chains sit in different orders of the components (component order of each "
            f"chain matched to chain 0: {rows}), so summaries would average different "
            f"clusters together. Relabel first: bayesgmm.relabel(result).",
            LabelSwitchingWarning))

    if "relabeling" in result.children:
        perm = result["relabeling"]["permutation"].to_numpy()
        diag.relabelled_fraction = (perm != np.arange(k)).any(axis=-1).mean(axis=1)


def _nuts_checks(result: xr.DataTree, diag: Diagnostics, sub: xr.Dataset) -> None:
    """Divergences, tree depth, R-hat and ESS (of the checked components), chains in modes."""
    problems, n_chains, n_draws, sparse = diag.problems, diag.n_chains, diag.n_draws, diag.sparse
    if "sample_stats" in result.children:
        stats = result["sample_stats"]
        if "diverging" in stats:
            diag.n_divergent = int(stats["diverging"].sum())
            if diag.n_divergent:
                problems.append(Problem(
                    "divergences",
                    f"{diag.n_divergent} divergent transition(s) after tuning "
                    f"({diag.n_divergent / (n_chains * n_draws):.1%} of draws). The posterior "
                    f"may be biased: increase target_accept (e.g. 0.95), tune longer, or "
                    f"reduce n_components.",
                    ConvergenceWarning))
        diag.treedepth_fraction = _treedepth_fraction(stats)
        if diag.treedepth_fraction is not None and \
                diag.treedepth_fraction > TREEDEPTH_FRACTION_MAX:
            problems.append(Problem(
                "tree depth",
                f"{diag.treedepth_fraction:.1%} of draws hit the maximum tree depth: the "
                f"sampler takes very long trajectories (a badly scaled or strongly correlated "
                f"posterior). Tune longer, reduce n_components, or strengthen the priors."
                + (" With a sparse Dirichlet prior this is expected: an empty component's log "
                   "weight has a posterior spread of about 1/weight_concentration. The "
                   "non-empty components and their number remain usable when R-hat and ESS "
                   "(computed on them) pass; fewer components make it faster."
                   if sparse else ""),
                ConvergenceWarning))

    if n_chains > 1 and n_draws >= 4:
        # Student-t components' dof and a noise component's weight mix with the others.
        names = ("weights", "means", "sigmas") + tuple(
            v for v in ("dof", "noise_weight") if v in sub.data_vars)
        diag.max_rhat, diag.min_ess_bulk, diag.min_ess_tail = _rhat_ess(sub, names)
        # From the stored group, or computed block by block when the fit did not store it.
        total = total_log_likelihood(result)
        if total is not None:
            import arviz_stats as azs

            diag.loglik_rhat = float(azs.rhat(total))
        if "modes" in result.children:
            modes = result["modes"]
            diag.mode_repairs = int(modes["restarted"].sum())
            last = modes["round"].to_numpy() == int(modes["round"].max())
            final = modes["mean_log_density"].to_numpy()[last]
            diag.mode_gaps = final.max() - final
        if diag.loglik_rhat is not None and diag.loglik_rhat > LOGLIK_RHAT_MAX:
            means = total.mean("draw").to_numpy()
            problems.append(Problem(
                "chains in different modes",
                f"The total log-likelihood differs between chains (R-hat {diag.loglik_rhat:.3f};"
                f" chain means {np.round(means, 1).tolist()}): the chains explore different "
                f"solutions, not just different labels. " + _modes_advice(result, diag),
                ConvergenceWarning))
        if not np.isfinite(diag.max_rhat) or diag.max_rhat > RHAT_MAX:
            problems.append(Problem(
                "R-hat",
                f"Max R-hat is {diag.max_rhat:.3f} (> {RHAT_MAX}) after relabelling: the "
                f"chains have not mixed. Increase tune and draws, or check for several modes "
                f"(fewer components, stronger priors).",
                ConvergenceWarning))
        if not np.isfinite(diag.min_ess_bulk) or \
                min(diag.min_ess_bulk, diag.min_ess_tail) < ESS_MIN:
            problems.append(Problem(
                "ESS",
                f"Effective sample size too small (bulk {diag.min_ess_bulk:.0f}, tail "
                f"{diag.min_ess_tail:.0f}; want at least {ESS_MIN} of each in total, "
                f"Vehtari et al. 2021): means and intervals are noisy. Increase draws (ESS "
                f"grows about in proportion) or chains.",
                ConvergenceWarning))


def _modes_advice(result: xr.DataTree, diag: Diagnostics) -> str:
    """What to do about chains in different modes: it depends on how far apart they are."""
    from .fitting.modes import MODE_GAP_NATS

    gaps = diag.mode_gaps
    if gaps is not None and gaps.max() <= MODE_GAP_NATS:
        return (f"Their mean log densities are within {gaps.max():.1f} nats: modes of "
                f"similar posterior mass, a genuinely multimodal posterior that no restart "
                f"should hide. Compare the chains' clusters (the co-clustering matrix is "
                f"label-free), report the modes, or use fewer components or stronger priors "
                f"if one solution is wanted.")
    if "modes" not in result.children:
        return ("Fit with repair_modes=True (the default) to restart chains left in a mode "
                "of negligible mass from the best chain, or run longer with fewer components.")
    return (f"Chains remain more than {MODE_GAP_NATS:.0f} nats apart after "
            f"{int(result['modes']['round'].max())} round(s) of mode repair "
            f"({diag.mode_repairs} restart(s)): tune longer (tune=2000), run more chains, or "
            f"use fewer components.")


def _vi_checks(result: xr.DataTree, diag: Diagnostics) -> None:
    """The ELBO has stopped rising, and its noise is that of a good approximation."""
    post = result["posterior"]
    problems, k = diag.problems, post.sizes["component"]
    diag.elbo_converged = bool(result["variational"].attrs.get("converged", 0))
    diverged = result["variational"].attrs.get("fullrank_diverged_elbo")
    if diverged is not None:
        problems.append(Problem(
            "full-rank ADVI diverged",
            f"The full-rank phase diverged (its ELBO ended at {diverged:.3g}, below the mean "
            f"field it started from): the result is that mean-field approximation. Use "
            f"method='nuts' for the posterior itself, or covariance_type='diag' (far fewer "
            f"parameters, which a full-rank approximation can follow).",
            ConvergenceWarning))
    if not diag.elbo_converged:
        problems.append(Problem(
            "ELBO",
            "The ELBO has not converged: increase max_iter (the ELBO history is in "
            "result['variational']['elbo']).",
            ConvergenceWarning))
    noise = diag.elbo_noise = _elbo_noise(result, k, post.sizes["feature"])
    # Only for an ELBO that has stopped rising (a rising one is reported above).
    if diag.elbo_converged and noise is not None and noise > ELBO_NOISE_MAX:
        problems.append(Problem(
            "ELBO noise",
            f"The ELBO's draw-to-draw noise is {noise:.0f} times what a good Gaussian "
            f"approximation gives (about sqrt(n_parameters / 2)): the approximation "
            f"puts mass where the model fits very badly, so its draws, log-likelihood "
            f"and LOO are not to be trusted. Use method='nuts', or a simpler "
            f"covariance_type ('diag' has far fewer parameters than 'full' in many "
            f"dimensions).",
            ConvergenceWarning))


def _map_checks(result: xr.DataTree, diag: Diagnostics) -> None:
    """The optimiser converged."""
    problems = diag.problems
    diag.optimizer_converged = bool(result["optimizer"].attrs.get("converged", 0))
    if not diag.optimizer_converged:
        problems.append(Problem(
            "MAP",
            f"The optimiser stopped before converging "
            f"({result['optimizer'].attrs.get('message', '')}): the point may not be the "
            f"MAP. Increase max_iter, or use method='nuts'.",
            ConvergenceWarning))


def check(fitted, *, stacklevel: int = 2) -> Diagnostics:
    """:func:`diagnose` a fit and issue one warning (with advice) per problem found.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    stacklevel : int, default 2
        Where the warnings point: 2 is the caller of ``check``.

    Returns
    -------
    Diagnostics
    """
    diag = diagnose(fitted)
    for problem in diag.problems:
        warnings.warn(problem.message, problem.category, stacklevel=stacklevel + 1)
    return diag


def summary(fitted, var_names=("weights", "means", "sigmas")) -> pd.DataFrame:
    """The posterior summary table of a fit, on relabelled draws.

    NUTS with several chains: mean, sd, HDI, MCSE, bulk and tail ESS and R-hat (ArviZ).
    VI or one chain: the statistics of the draws only. MAP: the point (column ``mean``).

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
        A fit (a fitted estimator, or the result of :func:`bayesgmm.fit`).
    var_names : sequence of str, default ("weights", "means", "sigmas")
        Posterior variables to summarise (``covariances`` is also available).

    Returns
    -------
    pandas.DataFrame
        One row per scalar, named like ``means[1, petal_length]``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit, summary
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (50, 1)), rng.normal(3, 1, (50, 1))])
    >>> table = summary(fit(X, 2, method="map", random_state=0))
    >>> table.index.tolist()
    ['weights[0]', 'weights[1]', 'means[0, x0]', 'means[1, x0]', 'sigmas[0, x0]', 'sigmas[1, x0]']
    """
    result = as_tree(fitted)
    post = result["posterior"]
    if post.sizes["draw"] == 1 and post.sizes["chain"] == 1:
        rows = {}
        for name in var_names:
            da = post[name].isel(chain=0, draw=0)
            for idx in np.ndindex(da.shape):
                labels = [str(da[dim].to_numpy()[i]) for dim, i in zip(da.dims, idx, strict=True)]
                rows[f"{name}[{', '.join(labels)}]"] = float(da.to_numpy()[idx])
        return pd.DataFrame({"mean": pd.Series(rows)})
    import arviz_stats as azs

    kind = "all" if post.sizes["chain"] > 1 else "stats"
    return _intervals_at_value_precision(
        azs.summary(result, var_names=list(var_names), kind=kind))


def _decimals(table, idx) -> int | None:
    """Decimal places of a row's mean: from 2 x its MCSE (ArviZ's rule), else its sd.

    Without an MCSE (VI, one chain), the places that give the sd two significant figures.
    None when neither is a positive finite number.
    """
    for col, scale, offset in (("mcse_mean", 2, 0), ("sd", 1, 1)):
        if col in table.columns:
            v = scale * float(table.loc[idx, col])
            if np.isfinite(v) and v > 0:
                return offset - int(np.floor(np.log10(v)))
    return None


def _intervals_at_value_precision(table):
    """ArviZ's display of ``table`` with its mean and interval bounds at the same decimals.

    ArviZ (1.x) shows the interval columns at two significant figures: a mean of 217.18
    with an HDI of 216.25-218.03 read ``217.18 ... 220 220``. The values themselves (and
    ``to_csv``) are never rounded; only the display is.
    """
    fmt_map = getattr(table, "_fmt_map", None)
    if not fmt_map:
        return table
    columns = ["mean"] + [c for c in table.columns if c.endswith(("_lb", "_ub"))]
    for idx in table.index:
        places = _decimals(table, idx)
        if places is None:
            continue
        for col in columns:
            val = float(table.loc[idx, col])
            if np.isfinite(val):
                fmt_map.setdefault(col, {})[idx] = f"{round(val, places):.{max(places, 0)}f}"
    return table
