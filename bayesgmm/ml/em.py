"""EM for Gaussian mixtures: :func:`fit_em`, and the EM solution every Bayesian fit starts from.

:func:`fit_em` runs many EM starts over several strategies (Ward agglomeration as in mclust,
k-means, k-means++, random) and views of the data, sets degenerate optima aside and returns
the best as a :class:`~bayesgmm.ml.point_estimate.PointEstimate`. :func:`em_for_start` is
the same search as the Bayesian fits use it: subsampled on large data, then refined.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..covariance import (
    SINGULAR_EIGENVALUE,
    check_covariance_type,
    expand_covariances,
    structure,
    structured_precisions,
)
from ..exceptions import ConvergenceWarning, FitWarning
from ..seeds import check_random_state, draw_seed, draw_seeds
from ..standardize import Standardizer
from ..validation import (
    check_data,
    check_model_size,
    check_n_components,
    check_positive_int,
    check_sample_weight,
)
from .point_estimate import PointEstimate, check_number, constant_column_advice, one_thread

__all__ = ["EM_STRATEGIES", "fit_em", "em_for_start", "params_from_labels"]

#: Initialisation strategies :func:`fit_em` cycles through. "hierarchical" is Ward
#: agglomeration (like R's mclust, on its scaled-SVD view of the data); the others are
#: scikit-learn's ``init_params``.
EM_STRATEGIES = ("hierarchical", "kmeans", "k-means++", "random_from_data", "random")

# A component is degenerate when it explains fewer points (weight * N) than its covariance
# needs to be non-singular without the regularisation (the structure's min_count: D + 1 for
# "full", 2 for "diag" and "spherical"; none for "tied", estimated from all N points), or when
# the smallest eigenvalue of its covariance, in feature-variance units and without the
# regularisation EM adds, is under diagnostics.SINGULAR_EIGENVALUE (see _degeneracy).

# mclust agglomerates a random subset of this many rows when the data are larger: Ward
# needs the N (N - 1) / 2 pairwise distances.
_HIERARCHICAL_SUBSET = 2000



def params_from_labels(Z: np.ndarray, labels: np.ndarray, k: int, reg: float):
    """Weights, means and regularised covariances of the groups of a hard partition of ``Z``.

    A group with at most D rows has a singular sample covariance; it is shrunk towards the
    covariance of all the data (D + 1 pseudo-observations), so that the start is proper.
    """
    n, d = Z.shape
    overall = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
    weights = np.empty(k)
    means = np.empty((k, d))
    covs = np.empty((k, d, d))
    for j in range(k):
        rows = Z[labels == j]
        m = rows.shape[0]
        if m == 0:  # not produced by Ward or k-means; be safe anyway
            weights[j], means[j], covs[j] = 0.5 / n, Z.mean(axis=0), overall
            continue
        weights[j] = m / n
        means[j] = rows.mean(axis=0)
        resid = rows - means[j]
        scatter = resid.T @ resid
        covs[j] = (scatter + (d + 1) * overall) / (m + d + 1) if m <= d else scatter / m
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2)) + reg * np.eye(d)
    return weights / weights.sum(), means, covs


def _degeneracy(weights, covariances, n: int, reg: float,
                covariance_type: str = "full") -> tuple[bool, int, str]:
    """Whether a solution on the standardised scale is degenerate, which component, and why.

    ``covariances`` are scikit-learn's ``covariances_`` of ``covariance_type``. Degenerate: a
    component explains fewer points (weight * N) than its ML covariance needs to be
    non-singular (:meth:`~bayesgmm.covariance.CovarianceStructure.min_count`: D + 1 for
    "full", 2 for "diag" and "spherical", no minimum for "tied", whose covariance is pooled
    over all N points), or the smallest eigenvalue of its covariance without the
    regularisation ``reg`` (in units of the feature variances, i.e. on the correlation
    scale) is under 1e-6.
    """
    counts = np.asarray(weights) * n
    k = counts.shape[0]
    covariance = structure(covariance_type)
    covs = covariance.singular_blocks(np.asarray(covariances, dtype=float), k)
    d = covs.shape[-1]
    min_count = covariance.min_count(d)
    eig = np.linalg.eigvalsh(covs - reg * np.eye(d)).min(axis=1)
    reasons = []
    for j in range(counts.shape[0]):
        if counts[j] < min_count:
            reasons.append((j, f"component {j} explains {counts[j]:.3g} point(s) (weight "
                               f"{weights[j]:.3g})"))
        elif eig[j] < SINGULAR_EIGENVALUE:  # the threshold diagnose() uses too
            reasons.append((j, f"component {j} has a near-singular covariance (smallest "
                               f"eigenvalue {max(eig[j], 0.0):.3g} in units of the feature "
                               f"variances)"))
    if not reasons:
        return False, -1, ""
    return True, reasons[0][0], "; ".join(r for _, r in reasons)


# One cycle of (strategy, view) for the starts of fit_em. Views: "svd" is mclust's default
# for its hierarchical start (standardised data rotated onto their singular vectors, each
# scaled by the square root of its singular value), "standardized" the data with unit
# variances, "raw" the user's data. Which start wins varies from data set to data set (on
# iris, k-means on the raw data; on wine and breast cancer, k-means++ or Ward on the SVD
# view), hence the mixture.
_EM_CYCLE = (
    ("hierarchical", "svd"), ("kmeans", "raw"), ("k-means++", None), ("kmeans", "svd"),
    ("random_from_data", None), ("hierarchical", "standardized"), ("kmeans", "standardized"),
    ("k-means++", None), ("random", None), ("hierarchical", "raw"),
)


def _em_schedule(n_init: int, subsample: bool) -> list[tuple[str, str | None]]:
    """(strategy, view) of each start: the cycle above, repeated.

    Without subsampling the hierarchical starts are deterministic, so in repeated cycles
    they are replaced by k-means++ starts.
    """
    schedule = []
    while len(schedule) < n_init:
        for strategy, view in _EM_CYCLE:
            if strategy == "hierarchical" and len(schedule) >= len(_EM_CYCLE) and not subsample:
                strategy, view = "k-means++", None
            schedule.append((strategy, view))
    return schedule[:n_init]


def _views(X: np.ndarray, Z: np.ndarray) -> dict[str, np.ndarray]:
    u, s, _ = np.linalg.svd(Z - Z.mean(axis=0), full_matrices=False)
    return {"raw": X, "standardized": Z, "svd": u * np.sqrt(s)}


def _make_em(Z, views, k, strategy, view, seed, reg_covar, max_iter, tol,
             covariance_type="full"):
    """An unfitted GaussianMixture that starts as ``strategy`` on ``view`` says."""
    from sklearn.cluster import AgglomerativeClustering, KMeans
    from sklearn.mixture import GaussianMixture

    kwargs: dict = {"init_params": strategy}
    if strategy == "hierarchical" or (strategy == "kmeans" and view != "standardized"):
        rows = np.arange(Z.shape[0])
        if strategy == "hierarchical":
            if rows.size > _HIERARCHICAL_SUBSET:  # mclust's default subset for large data
                rng = np.random.default_rng(seed)
                rows = np.sort(rng.choice(rows.size, size=_HIERARCHICAL_SUBSET, replace=False))
            data = views[view][rows]
            if view == "svd" and rows.size < Z.shape[0]:
                data = _views(views["raw"][rows], Z[rows])["svd"]
            labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(data)
        else:
            labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(views[view]).labels_
        # A floor on the start's regularisation keeps it proper when reg_covar is 0.
        weights, means, covs = params_from_labels(Z[rows], labels, k, max(reg_covar, 1e-6))
        kwargs = {"weights_init": weights, "means_init": means,
                  "precisions_init": structured_precisions(weights, covs, covariance_type),
                  "init_params": "random_from_data"}  # unused: all three are given
    return GaussianMixture(n_components=k, covariance_type=covariance_type, n_init=1,
                           reg_covar=reg_covar, max_iter=max_iter, tol=tol, random_state=seed,
                           warm_start=True, **kwargs)


def _run_start(Z, views, k, strategy, view, seed, *, reg_covar, max_iter, tol, n_candidates,
               short_iter, deterministic, covariance_type="full"):
    """One EM start: the best of ``n_candidates`` short runs, continued to convergence.

    Returns (fitted GaussianMixture, seed of the chosen candidate, total EM iterations).
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    n = Z.shape[0]
    cand_seeds = ([seed] if deterministic or n_candidates == 1
                  else draw_seeds(np.random.default_rng(seed), n_candidates))
    short = min(short_iter, max_iter) if len(cand_seeds) > 1 else max_iter
    best, best_key, error = None, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        for s in cand_seeds:
            try:
                gm = _make_em(Z, views, k, strategy, view, s, reg_covar, short, tol,
                              covariance_type).fit(Z)
            except (ValueError, np.linalg.LinAlgError) as exc:  # ill-defined covariance
                error = ValueError(str(exc))
                continue
            degenerate = _degeneracy(gm.weights_, gm.covariances_, n, reg_covar,
                                     covariance_type)[0]
            key = (not degenerate, float(gm.score(Z)))
            if best_key is None or key > best_key:
                best, best_key, best_seed = gm, key, s
        if best is None:
            raise error
        n_iter = best.n_iter_
        if short < max_iter and not best.converged_:
            best.set_params(max_iter=max_iter - short)
            best.fit(Z)  # warm start: continues from the short run
            n_iter += best.n_iter_
    return best, best_seed, n_iter


def fit_em(X, n_components, *, n_init: int = 10, random_state=None, reg_covar: float = 1e-6,
           max_iter: int = 1000, tol: float = 1e-8, n_candidates: int = 10,
           short_iter: int = 10, covariance_type: str = "full",
           missing: str = "marginalize", sample_weight=None,
           noise: bool | str = False) -> PointEstimate:
    """Maximum likelihood by EM: the best of several starts of scikit-learn's GaussianMixture.

    The starts cycle through :data:`EM_STRATEGIES` and views of the data: a model-based
    hierarchical start like R's mclust (Ward agglomeration on mclust's scaled-SVD view of the
    data, then on the standardised and the raw data; on a random subset of 2000 rows for
    larger data), k-means on the raw, SVD and standardised views, and scikit-learn's
    ``"k-means++"``, ``"random_from_data"`` and ``"random"``. Each start has its own seed
    drawn from ``random_state``. Every random start is the best (highest log-likelihood,
    non-degenerate first) of ``n_candidates`` short runs of ``short_iter`` EM iterations,
    continued to convergence ("short EM", Biernacki, Celeux and Govaert 2003).

    scikit-learn's default (``n_init`` k-means starts) can stop short of the best
    log-likelihood that other starts reach: on the first 5 features of scikit-learn's breast
    cancer data with K=4 it ends at -4253.5 for every seed tried, where these starts reach
    -4246.1. The likelihood of a mixture has many local maxima, though, and no number of
    starts is guaranteed to find the best one.

    EM runs on the standardised data (columns centred and divided by their standard
    deviations): EM is affine-equivariant, so this only makes ``reg_covar`` and the k-means
    starts independent of the units. The parameters and the log-likelihood are reported on
    the user's scale.

    ``covariance_type`` restricts the covariances as scikit-learn's argument of that name
    does (mclust's VVV, VVI, VII and EEE): "full", "diag" (diagonal), "spherical"
    (``s_k**2 * I``) or "tied" (one full covariance shared by all components). "spherical"
    is not invariant to rescaling single features, so for it the data are centred and divided
    by one common scale (the root mean feature variance) instead of each column's standard
    deviation; "diag" and "tied" are invariant to that and use the usual standardisation.

    A degenerate optimum (a component explaining fewer than D + 1 points, 2 for "diag" and
    "spherical", none for "tied"; or with a covariance whose smallest eigenvalue, without
    ``reg_covar``, is under 1e-6 of the feature variances) is a singularity of the
    likelihood, not a better fit: the best non-degenerate start is chosen when there is one,
    and a :class:`~bayesgmm.FitWarning` says so when the best start overall was degenerate,
    or when all were.

    Parameters
    ----------
    X : array-like of shape (N, D)
    n_components : int
    n_init : int, default 10
        Number of EM starts. (The Bayesian fits' start runs the same search with their own
        ``n_init``, 5 by default, on at most ``EM_START_ROWS`` rows: see
        :func:`em_for_start`.)
    random_state : int, numpy.random.Generator or None
        Seeds every start.
    reg_covar : float, default 1e-6
        Added to the diagonal of every covariance at each M-step, in units of each feature's
        variance (of the mean feature variance for "spherical").
    max_iter : int, default 1000
        EM iterations per start.
    tol : float, default 1e-8
        Convergence threshold on the change of the mean per-point log-likelihood.
    n_candidates : int, default 10
        Short runs per random start; 1 runs each start straight to convergence.
    short_iter : int, default 10
        EM iterations of each short run.
    covariance_type : {"full", "diag", "spherical", "tied"}, default "full"
        Structure of the covariances (see :data:`COVARIANCE_TYPES`).
    missing : {"marginalize", "error"}, default "marginalize"
        Missing entries (NaN): "marginalize" runs EM with missing data (missing at random;
        :func:`~bayesgmm.ml.missing.em_missing`) from every optimum the starts reach on the
        data with each column's observed mean in place of its missing entries, and keeps
        the best by the observed-data log-likelihood; ``info`` then has no
        ``sklearn_model`` and records the refined starts in ``starts`` (the search on the
        filled data in ``filled_search``). "error" refuses them.
    sample_weight : array-like of shape (N,), optional
        Frequency weights of the rows: row n counts ``sample_weight[n]`` times in the
        log-likelihood (integer weights give the fit of the repeated rows). The starts
        search on the rows unweighted, then EM with the weights continues from every
        optimum found, as for missing entries; ``log_likelihood``, BIC and AIC are
        weighted (N is the total weight).
    noise : bool or {"box", "hypvol", "hull"}, default False
        Add a uniform noise component over the data's region, as mclust's EM with
        ``noise`` (and :func:`bayesgmm.fit`'s ``noise``, so that the two compare like for
        like; :mod:`bayesgmm.likelihood.noise` describes the regions). EM with it
        (:func:`~bayesgmm.ml.missing.em_missing`) runs from every optimum of the search
        (noise weight 0.05) and from the K + 1 component optimum with each component in
        turn made the noise; the best by log-likelihood is kept. The estimate then has
        ``noise_weight`` and ``noise_region``, its ``weights`` sum to 1 minus the noise
        weight, and its responsibilities have a last column, the noise's.

    Returns
    -------
    PointEstimate
        ``method="em"``, with ``covariance_type`` set and ``covariances`` always the
        (K, D, D) full matrices; ``converged`` is scikit-learn's ``converged_`` of the chosen start.
        ``info`` holds ``n_iter``, ``strategy``, ``view`` and ``seed`` of the chosen start,
        one record per start in ``starts`` (strategy, view, seed, log-likelihood, converged,
        degenerate and why), ``degenerate_starts`` (their indices),
        ``best_degenerate_log_likelihood`` (or None), ``failed_starts`` (index: error),
        ``optima`` (every non-degenerate start's optimum, best first: ``start``,
        ``log_likelihood``, ``weights``, ``means``, ``covariances`` on the user's scale),
        ``sklearn_model`` (the chosen scikit-learn model, fitted on the standardised data
        ``(X - center) / scale``) with ``center`` and ``scale`` (for "spherical" all entries
        of ``scale`` are equal).

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X = make_mixture(200, 2, 2, random_state=0).X
    >>> est = fit_em(X, 2, n_init=3, random_state=0)
    >>> est.method, est.converged, est.means.shape
    ('em', True, (2, 2))
    >>> [s["strategy"] for s in est.info["starts"]]
    ['hierarchical', 'kmeans', 'k-means++']
    >>> bool(abs(est.to_sklearn().score(X) * 200 - est.log_likelihood) < 1e-8)
    True
    """
    k = check_n_components(n_components)
    X, names = check_data(X, n_components=k, missing=missing)
    n_init = check_positive_int(n_init, "n_init")
    max_iter = check_positive_int(max_iter, "max_iter")
    n_candidates = check_positive_int(n_candidates, "n_candidates")
    short_iter = check_positive_int(short_iter, "short_iter")
    reg_covar = check_number(reg_covar, "reg_covar", minimum=0.0, strict=False)
    tol = check_number(tol, "tol", minimum=0.0, strict=True)
    covariance_type = check_covariance_type(covariance_type)
    rng = check_random_state(random_state)
    n, d = X.shape
    check_model_size(n, d, k, covariance_type)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, n)
    from ..params import check_params

    noise = check_params({"noise": noise})["noise"]
    if np.isnan(X).any() or sample_weight is not None or noise:
        return _fit_em_with_missing(
            X, names, k, n_init=n_init, rng=rng, reg_covar=reg_covar, max_iter=max_iter,
            tol=tol, n_candidates=n_candidates, short_iter=short_iter,
            covariance_type=covariance_type, sample_weight=sample_weight, noise=noise)
    std = Standardizer.fit(X)
    views = _views(X, std.transform(X))  # the starting partitions use the usual views
    std = Standardizer.for_structure(X, covariance_type)
    Z = std.transform(X)
    subsample = n > _HIERARCHICAL_SUBSET
    schedule = _em_schedule(n_init, subsample)
    seeds = draw_seeds(rng, n_init)

    starts, models, failed = [], {}, {}
    with one_thread():
        for i, ((strategy, view), seed) in enumerate(zip(schedule, seeds, strict=True)):
            record = {"strategy": strategy, "view": view, "seed": seed}
            try:
                gm, used_seed, n_iter = _run_start(
                    Z, views, k, strategy, view, seed, reg_covar=reg_covar, max_iter=max_iter,
                    tol=tol, n_candidates=n_candidates, short_iter=short_iter,
                    deterministic=strategy == "hierarchical" and not subsample,
                    covariance_type=covariance_type)
            except ValueError as exc:
                failed[i] = str(exc)
                record.update(log_likelihood=None, converged=False, degenerate=None)
                starts.append(record)
                continue
            degenerate, _, reason = _degeneracy(gm.weights_, gm.covariances_, n, reg_covar,
                                                covariance_type)
            loglik = float(gm.score(Z)) * n + n * std.log_jacobian
            record.update(candidate_seed=used_seed, log_likelihood=loglik,
                          converged=bool(gm.converged_), n_iter=int(n_iter),
                          degenerate=degenerate, degenerate_reason=reason or None)
            starts.append(record)
            models[i] = gm
    if not models:
        raise ValueError(
            f"All {n_init} EM starts failed ({next(iter(failed.values()))}). Increase "
            f"reg_covar (now {reg_covar}) or reduce n_components (now {k})."
        )

    def ll(i):
        return starts[i]["log_likelihood"]

    ok = [i for i in models if not starts[i]["degenerate"]]
    bad = [i for i in models if starts[i]["degenerate"]]
    best_bad = max(bad, key=ll) if bad else None
    best = max(ok, key=ll) if ok else best_bad
    if best_bad is not None and (not ok or ll(best_bad) > ll(best)):
        advice = ("The likelihood of a Gaussian mixture is unbounded (a component can collapse "
                  "onto a few points), so its largest values are singularities, not better "
                  "fits. Use the Bayesian fit (BayesianGMM), whose priors remove the "
                  "singularity, or fewer components.")
        advice = constant_column_advice(X, names) or advice
        if ok:
            msg = (f"The highest EM log-likelihood ({ll(best_bad):.6g}, start {best_bad}) is a "
                   f"degenerate solution: {starts[best_bad]['degenerate_reason']}. The best "
                   f"non-degenerate start ({ll(best):.6g}, start {best}) was kept instead. "
                   + advice)
        else:
            msg = (f"All {len(models)} EM starts ended in degenerate solutions; the best "
                   f"({ll(best):.6g}) was kept: {starts[best]['degenerate_reason']}. " + advice)
        warnings.warn(msg, FitWarning, stacklevel=2)
    gm = models[best]
    if not gm.converged_:
        warnings.warn(
            f"EM did not converge within max_iter={max_iter} iterations (tol={tol}) from the "
            f"chosen start; increase max_iter or tol.", ConvergenceWarning, stacklevel=2)
    covariances = structure(covariance_type).covariances_to_user(gm.covariances_, k, d, std)
    # Every non-degenerate optimum, best first: the Bayesian fits search modes from them.
    optima = [{"start": int(i), "log_likelihood": ll(i), "weights": models[i].weights_,
               "means": std.means_to_user(models[i].means_),
               "covariances": structure(covariance_type).covariances_to_user(
                   models[i].covariances_, k, d, std)}
              for i in sorted(ok, key=ll, reverse=True)]
    info = {
        "n_iter": starts[best]["n_iter"],
        "strategy": starts[best]["strategy"],
        "view": starts[best]["view"],
        "seed": starts[best]["seed"],
        "best_start": int(best),
        "starts": starts,
        "degenerate_starts": bad,
        "best_degenerate_log_likelihood": None if best_bad is None else ll(best_bad),
        "failed_starts": failed,
        "optima": optima,
        "reg_covar": reg_covar,
        "sklearn_model": gm,
        "center": std.center,
        "scale": std.scale,
    }
    return PointEstimate.from_parameters(
        X, gm.weights_, std.means_to_user(gm.means_), covariances,
        converged=bool(gm.converged_), method="em", info=info, covariance_type=covariance_type)


def _fit_em_with_missing(X, names, k, *, n_init, rng, reg_covar, max_iter, tol,
                         n_candidates, short_iter, covariance_type,
                         sample_weight=None, noise: str | bool = False) -> PointEstimate:
    """:func:`fit_em` on data with NaN entries or weighted rows, or with a noise component.

    See ``missing``, ``sample_weight`` and ``noise`` there.
    """
    from ..likelihood.noise import noise_region
    from .missing import em_missing

    n, d = X.shape
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    with warnings.catch_warnings():  # the filled data's troubles are not the fit's
        warnings.simplefilter("ignore")
        search = fit_em(filled, k, n_init=n_init, random_state=draw_seed(rng),
                        reg_covar=reg_covar, max_iter=max_iter, tol=tol,
                        n_candidates=n_candidates, short_iter=short_iter,
                        covariance_type=covariance_type)
    shape = structure(covariance_type)
    std = Standardizer.for_structure(X, covariance_type, sample_weight)
    Z = std.transform(X)
    row_weights = np.ones(n) if sample_weight is None else sample_weight
    candidates = search.info["optima"] or [{
        "start": search.info["best_start"], "weights": search.weights,
        "means": search.means, "covariances": search.covariances}]
    region = noise_ld = None
    if noise:
        region = noise_region(X, noise)
        noise_ld = region.rescaled(std.scale).log_density(Z)
        candidates = [{**opt, "noise_weight": 0.05, "weights": 0.95 * opt["weights"]}
                      for opt in candidates] + _dropped_candidates(
            filled, k, search, n_init=n_init, rng=rng, reg_covar=reg_covar,
            max_iter=max_iter, tol=tol, n_candidates=n_candidates, short_iter=short_iter,
            covariance_type=covariance_type)
    starts, fits = [], []
    for opt in candidates:
        record = {"start": opt["start"], **{key: search.info["starts"][opt["start"]][key]
                                            for key in ("strategy", "view", "seed")}}
        if noise:
            record["noise_start"] = opt.get("noise_from", "weight 0.05")
        try:
            out = em_missing(Z, opt["weights"], std.means_to_model(opt["means"]),
                             std.covariances_to_model(opt["covariances"]),
                             covariance_type=covariance_type, reg_covar=reg_covar,
                             max_iter=max_iter, tol=tol, sample_weight=sample_weight,
                             noise_log_density=noise_ld,
                             noise_weight=opt.get("noise_weight", 0.05))
        except np.linalg.LinAlgError as exc:
            record.update(log_likelihood=None, converged=False, degenerate=None,
                          error=str(exc))
            starts.append(record)
            continue
        reduced = shape.reduce(out["covariances"])
        degenerate, _, reason = _degeneracy(out["weights"], reduced, row_weights.sum(),
                                            reg_covar, covariance_type)
        # The Jacobian of the standardisation, for the observed entries only.
        loglik = out["log_likelihood"] - float(
            (np.log(std.scale) * ~np.isnan(X) * row_weights[:, None]).sum())
        record.update(log_likelihood=loglik, converged=out["converged"],
                      n_iter=out["n_iter"], degenerate=degenerate,
                      degenerate_reason=reason or None)
        starts.append(record)
        fits.append((record, out, reduced))
    if not fits:
        raise ValueError(f"EM with missing data failed from every start. Increase reg_covar "
                         f"(now {reg_covar}) or reduce n_components (now {k}).")
    fits.sort(key=lambda f: (not f[0]["degenerate"], f[0]["log_likelihood"]), reverse=True)
    record, out, reduced = fits[0]
    if record["degenerate"]:
        warnings.warn(f"EM with missing data ended in degenerate solutions only; the best "
                      f"({record['log_likelihood']:.6g}) was kept: "
                      f"{record['degenerate_reason']}. Use the Bayesian fit (BayesianGMM), "
                      f"whose priors remove the singularity, or fewer components.",
                      FitWarning, stacklevel=3)
    if not out["converged"]:
        warnings.warn(f"EM with missing data did not converge within max_iter={max_iter} "
                      f"iterations (tol={tol}); increase max_iter or tol.",
                      ConvergenceWarning, stacklevel=3)
    holes = np.isnan(X)
    optima = [{"start": r["start"], "log_likelihood": r["log_likelihood"],
               "weights": o["weights"], "means": std.means_to_user(o["means"]),
               "covariances": shape.covariances_to_user(red, k, d, std)}
              for r, o, red in fits if not r["degenerate"]]
    info = {"n_iter": record["n_iter"], "strategy": record["strategy"],
            "view": record["view"], "seed": record["seed"], "best_start": record["start"],
            "starts": starts, "optima": optima, "reg_covar": reg_covar,
            "filled_search": search.info["starts"], "center": std.center,
            "scale": std.scale,
            "missing": {"entries": int(holes.sum()), "rows": int(holes.any(axis=1).sum())}}
    return PointEstimate.from_parameters(
        X, out["weights"], std.means_to_user(out["means"]),
        shape.covariances_to_user(reduced, k, d, std), converged=out["converged"],
        method="em", info=info, covariance_type=covariance_type, sample_weight=sample_weight,
        noise_weight=out.get("noise_weight"), noise_region=region)


def _dropped_candidates(filled, k, search, **kwargs) -> list[dict]:
    """Starts for EM with noise: the best K + 1 component optimum, each component made noise.

    Each component in turn becomes the noise (its weight the noise weight): Gaussian EM
    gives far outliers a component of their own, and dropping it is the start that EM with
    noise needs.
    """
    if search.info.get("best_start") is None:
        return []
    with warnings.catch_warnings():  # a K + 1 search's troubles are not the fit's
        warnings.simplefilter("ignore")
        try:
            extra = fit_em(filled, k + 1, n_init=kwargs["n_init"],
                           random_state=draw_seed(kwargs["rng"]),
                           reg_covar=kwargs["reg_covar"], max_iter=kwargs["max_iter"],
                           tol=kwargs["tol"], n_candidates=kwargs["n_candidates"],
                           short_iter=kwargs["short_iter"],
                           covariance_type=kwargs["covariance_type"])
        except ValueError:  # too few rows for K + 1 components
            return []
    start = search.info["best_start"]
    return [{"start": start, "noise_from": f"component {j} of {k + 1}",
             "noise_weight": float(np.clip(extra.weights[j], 1e-3, 0.5)),
             "weights": np.delete(extra.weights, j) * (1 - np.clip(extra.weights[j], 1e-3, 0.5))
             / np.delete(extra.weights, j).sum(),
             "means": np.delete(extra.means, j, axis=0),
             "covariances": np.delete(extra.covariances, j, axis=0)}
            for j in range(k + 1)]


# EM for the start: fit_em's strategies run on at most EM_START_ROWS rows, then one EM
# refines on at most EM_REFINE_ROWS rows; on all rows the start took minutes at N=1e6 for the
# same components (docs/fitting.md, "Why these defaults"). The sampler or VI does the rest.
EM_START_ROWS = 3_000
EM_REFINE_ROWS = 100_000


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


def em_for_start(Z: np.ndarray, k: int, n_init: int, random_state: int | None,
        covariance_type: str, n_distinct: int, raw=None, alternatives: list | None = None,
        sample_weight: np.ndarray | None = None):
    """EM for the start: (weights, means, (K, D, D) covariances, BIC on all rows).

    ``alternatives``: a list that receives the other distinct non-degenerate optima of the
    search, best first, as (weights, means, covariances) on the scale of ``Z`` (from the
    subsample, unrefined, for large N), for the mode search of the Bayesian fits.

    :func:`fit_em`'s multi-strategy starts (Ward, k-means, k-means++,
    random; degenerate optima set aside), not scikit-learn's k-means alone: at N=1e5, D=5,
    K=5 the best of five k-means starts merged two clusters and split another, and no
    sampler or VI moves away from such a start. On a subsample of ``EM_START_ROWS`` rows
    for large N, refined by EM on up to ``EM_REFINE_ROWS`` rows (the BIC is on those
    rows). ``n_distinct``: the number of distinct rows, exact up to ``k``
    (:func:`~bayesgmm.validation.count_distinct_rows`). ``raw``: ``(X, standardizer)``, the
    same rows on the user's scale and the map to ``Z``; fit_em then runs on the user's rows,
    so that its k-means start on the user's units is one of the views (see :func:`em_start`).

    With missing entries (NaN in ``Z``), the search runs on the data with each column's
    observed mean in their place, and each optimum it finds is refined by EM with missing
    data (:func:`~bayesgmm.ml.missing.em_missing`) on the data as they are. With
    ``sample_weight`` (frequency weights of the rows) likewise: the search on the rows
    unweighted, the refinement weighted.
    """
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
    from sklearn.mixture import GaussianMixture

    if np.isnan(Z).any() or sample_weight is not None:
        return _refined_start(Z, k, n_init, random_state, covariance_type, n_distinct,
                              raw, alternatives, sample_weight)
    n, d = Z.shape
    rng = np.random.default_rng(random_state)
    if n_distinct <= k:
        # No more distinct rows than components (duplicated data): fit_em's strategies
        # have nothing to choose between; scikit-learn's EM, or data rows.
        return _sklearn_em(Z, k, n_init, random_state, covariance_type)
    rows = None if n <= EM_START_ROWS else rng.choice(n, EM_START_ROWS, replace=False)
    sub = Z if rows is None else Z[rows]
    refine = Z if n <= EM_REFINE_ROWS else Z[rng.choice(n, EM_REFINE_ROWS, replace=False)]
    with warnings.catch_warnings():
        # The start's own troubles (degenerate EM optima, constant columns) are not the
        # fit's: the fit's diagnostics judge its result.
        warnings.simplefilter("ignore")
        try:
            data = sub if raw is None else (raw[0] if rows is None else raw[0][rows])
            est = fit_em(data, k, n_init=n_init, random_state=draw_seed(rng), reg_covar=1e-3,
                         covariance_type=covariance_type)
        except ValueError:  # degenerate data (e.g. fewer distinct rows than components)
            return _rows_start(Z, k, rng)
        weights, means, covs = est.weights, est.means, est.covariances
        if raw is not None:  # back to the standardised scale of Z
            std = raw[1]
            means, covs = std.means_to_model(means), std.covariances_to_model(covs)
        if alternatives is not None:
            seen = [est.log_likelihood]
            for opt in est.info["optima"][1:]:
                # The same optimum reached from several starts counts once.
                if min(abs(opt["log_likelihood"] - v) for v in seen) <= 1e-6 * abs(
                        opt["log_likelihood"]) + 1e-8:
                    continue
                seen.append(opt["log_likelihood"])
                m, c = opt["means"], opt["covariances"]
                if raw is not None:
                    m, c = raw[1].means_to_model(m), raw[1].covariances_to_model(c)
                alternatives.append((opt["weights"], m, c))
        if sub is Z:
            return weights, means, covs, est.bic
        gm = GaussianMixture(
            n_components=k, covariance_type=covariance_type, reg_covar=1e-3, max_iter=100,
            weights_init=weights, means_init=means,
            precisions_init=structured_precisions(weights, covs, covariance_type),
            random_state=0)
        warnings.simplefilter("ignore", SkConvergenceWarning)
        try:
            gm.fit(refine)
        except ValueError:
            return weights, means, covs, est.bic
    covs = expand_covariances(gm.covariances_, covariance_type, k, d)
    return gm.weights_, gm.means_, covs, float(gm.bic(refine))


def _refined_start(Z, k, n_init, random_state, covariance_type, n_distinct, raw,
                   alternatives, sample_weight):
    """:func:`em_for_start` on data with NaN entries or weighted rows.

    The search runs on mean-imputed data, rows unweighted, then EM with missing data and
    the weights from each optimum it found (on at most ``EM_REFINE_ROWS`` rows).
    """
    from ..likelihood.missing import fill_missing
    from .missing import em_missing

    n = Z.shape[0]
    filled = fill_missing(Z)  # 0: each column's observed mean, on the standardised scale
    if raw is not None:
        raw = (np.where(np.isnan(raw[0]), raw[1].center, raw[0]), raw[1])
    others: list = []
    found = em_for_start(filled, k, n_init, random_state, covariance_type, n_distinct, raw,
                         alternatives=others)
    rng = np.random.default_rng(random_state)
    rows = (slice(None) if n <= EM_REFINE_ROWS
            else np.sort(rng.choice(n, EM_REFINE_ROWS, replace=False)))
    data = Z[rows]
    row_weights = None if sample_weight is None else np.asarray(sample_weight, float)[rows]
    refined = []
    for weights, means, covs in [found[:3]] + others:
        try:
            out = em_missing(data, weights, means, covs, covariance_type=covariance_type,
                             reg_covar=1e-3, max_iter=200, tol=1e-6,
                             sample_weight=row_weights)
        except np.linalg.LinAlgError:
            continue
        if np.isfinite(out["log_likelihood"]):
            refined.append(out)
    if not refined:
        return found
    refined.sort(key=lambda o: -o["log_likelihood"])
    best = refined[0]
    if alternatives is not None:
        seen = [best["log_likelihood"]]
        for o in refined[1:]:
            if min(abs(o["log_likelihood"] - v) for v in seen) <= 1e-6 * abs(
                    o["log_likelihood"]) + 1e-8:
                continue
            seen.append(o["log_likelihood"])
            alternatives.append((o["weights"], o["means"], o["covariances"]))
    d = Z.shape[1]
    p = k - 1 + k * d + structure(covariance_type).n_parameters(k, d)
    total = data.shape[0] if row_weights is None else float(row_weights.sum())
    bic = -2.0 * best["log_likelihood"] + p * np.log(total)
    return best["weights"], best["means"], best["covariances"], float(bic)
