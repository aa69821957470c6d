"""Where every fit starts: the best EM solution, jittered per chain, ordered if asked."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..covariance import structure
from ..ml.em import EM_REFINE_ROWS, em_for_start
from ..model import point_from_params
from ..validation import count_distinct_rows

__all__ = ["START_DOF", "NOISE_REFINE_ROWS", "Start", "em_start", "jittered", "resolve_order_by",
           "best_separated_feature"]


#: Student-t components' degrees of freedom tried at the start (one for all components of
#: an EM solution, the one its t log-likelihood prefers): from Cauchy tails to nearly
#: Gaussian ones; the mode search and the samplers then move each where the data say.
START_DOF = (1.0, 3.0, 10.0, 30.0)


@dataclass(frozen=True)
class Start:
    """A point estimate on the standardised scale."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D)
    order_by: int | None = None  # feature the model's means are ordered along, if any
    covariance_type: str = "full"
    # Student-t components: their degrees of freedom (K,) when the model's ``dof`` is a free
    # variable; None for Gaussian components (and for degrees of freedom fixed by the user).
    dof: np.ndarray | None = None
    # A noise component's weight; ``weights`` are then the components' shares of the rest
    # (summing to 1). None without a noise component.
    noise_weight: float | None = None

    def permuted(self, idx, **changes) -> Start:
        """The same solution with its components in the order ``idx`` (and ``changes``)."""
        return replace(self, weights=self.weights[idx], means=self.means[idx],
                       covariances=self.covariances[idx],
                       dof=None if self.dof is None else self.dof[idx], **changes)

    def ordered(self, order_by: int | None) -> Start:
        """The same solution, components sorted along feature ``order_by`` (if given)."""
        if order_by is None:
            return self
        return self.permuted(np.argsort(self.means[:, order_by], kind="stable"),
                             order_by=order_by)

    def largest_first(self) -> Start:
        """The same solution, components sorted by weight, largest first (stable).

        The numbering of the components then follows the data, not the order in which the
        EM search happened to find them: the same data in another row order, or with
        integer weights in place of repeated rows, give the same numbering.
        """
        return self.permuted(np.argsort(-self.weights, kind="stable"))

    def with_dof(self, dof) -> Start:
        """The same solution with Student-t components of ``dof`` (a number or (K,))."""
        return replace(self, dof=np.broadcast_to(np.asarray(dof, dtype=float),
                                                 self.weights.shape).copy())

    def point(self) -> dict:
        """The solution as a constrained PyMC point of the model."""
        return point_from_params(self.weights, self.means, self.chols, self.order_by,
                                 self.covariance_type, self.dof, self.noise_weight)

    @property
    def chols(self) -> np.ndarray:
        """Cholesky factors (K, D, D) of the covariances."""
        return np.linalg.cholesky(self.covariances)


#: Up to this many rows, the EM start collapses repeated rows into one weighted row.
COLLAPSE_ROWS = 100_000


def _collapsed(Z, raw, sample_weight, k):
    """The distinct rows of ``Z``, in sorted order, each weighted by its total weight.

    Rows of weight 0 are dropped. The start is then the same for the same data in any row
    order, and for integer weights in place of repeated rows (scikit-learn's
    ``check_sample_weight_equivalence``). Only for at most :data:`COLLAPSE_ROWS` rows
    without missing entries, and with more distinct rows than components (data with fewer
    have their own start), and only where it changes something: rows repeated or weighted.
    """
    n = Z.shape[0]
    if n > COLLAPSE_ROWS or np.isnan(Z).any():
        return Z, raw, sample_weight
    unique, first, inverse = np.unique(Z, axis=0, return_index=True, return_inverse=True)
    if unique.shape[0] <= k or (unique.shape[0] == n and sample_weight is None):
        return Z, raw, sample_weight
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    total = np.bincount(inverse.ravel(), weights=w, minlength=unique.shape[0])
    keep = total > 0
    if np.count_nonzero(keep) <= k:
        return Z, raw, sample_weight
    if raw is not None:
        raw = (np.asarray(raw[0])[first[keep]], raw[1])
    return unique[keep], raw, total[keep]


def _canonical(search):
    """``search`` (the EM start) on repeated rows collapsed, numbered largest first.

    Without ``labels``: the rows go through :func:`_collapsed`, and the components of the
    start returned and of those in ``pool`` are numbered largest weight first
    (:meth:`Start.largest_first`). Known labels number the components themselves.
    """
    @functools.wraps(search)
    def wrapper(Z, n_components, *, raw=None, pool=None, sample_weight=None, labels=None,
                **kwargs):
        if labels is not None:
            return search(Z, n_components, raw=raw, pool=pool, sample_weight=sample_weight,
                          labels=labels, **kwargs)
        Z, raw, sample_weight = _collapsed(Z, raw, sample_weight, n_components)
        start = search(Z, n_components, raw=raw, pool=pool, sample_weight=sample_weight,
                       **kwargs)
        if pool is not None:
            pool[:] = [p.largest_first() for p in pool]
        return start.largest_first()

    return wrapper


@_canonical
def em_start(Z: np.ndarray, n_components: int, *, n_init: int = 5,
             random_state: int | None = None, sparse: bool = False,
             covariance_type: str = "full", raw=None, pool: list | None = None,
             sample_weight: np.ndarray | None = None,
             labels: np.ndarray | None = None,
             t_dof: float | Sequence[float] | None = None,
             noise_log_density: float | np.ndarray | None = None) -> Start:
    """The best EM solution of ``covariance_type`` on standardised data.

    ``t_dof``: the start of Student-t components: their fixed degrees of freedom, or
    candidate values (:data:`START_DOF`), of which each start takes the one its t
    log-likelihood prefers. Gaussian EM gives outliers a component of their own, or widens
    one over several clusters to hold them, and no optimiser of the t model leaves such a
    start (two clusters with 5% far outliers: both Gaussian EM optima did so, and their
    t-polished modes lay 144 nats below the t posterior's mode). So Gaussian EM with K + 1
    components also runs, and each of its components is dropped in turn: K + 1 more
    candidates, one of them the clusters without the extra component that took the
    outliers. Every candidate is scored by the t mixture's log-likelihood; the best is
    returned and the others go to ``pool``, best first, each polished under the t model
    by the mode search.

    ``noise_log_density``: the start of a mixture with a uniform noise component of this
    log density (a number, or one per row; see :mod:`bayesgmm.likelihood.noise`). The same
    candidates as for t components (a dropped component's weight becoming the noise
    weight; the others start with noise weight 0.05) are each refined by EM with the
    noise component (:func:`~bayesgmm.ml.missing.em_missing`, on at most
    :data:`NOISE_REFINE_ROWS` rows), then scored by the log-likelihood with it.

    ``labels``: known components of some rows (-1 where unknown; see
    :func:`bayesgmm.model.build_model`). The search's solution is then matched to them
    (component j is the one holding most of the rows labelled j) and refined by
    semi-supervised EM (:func:`~bayesgmm.ml.missing.em_missing` with ``labels``); ``pool``
    receives no other optimum of the search, only the candidates of t or noise starts,
    each matched to the labels in the same way, and scored with the labelled rows' own
    terms.

    ``sample_weight``: frequency weights of the rows (see
    :func:`~bayesgmm.ml.em.em_for_start`). ``pool``: a list that receives the other
    distinct EM optima of the search as :class:`Start` objects, best first (not with
    ``sparse``), for :func:`bayesgmm.fitting.modes.search_modes`.

    ``n_init`` starts of several strategies (see :func:`~bayesgmm.ml.em.em_for_start`).
    ``raw``: ``(X, standardizer)`` with ``Z = standardizer.transform(X)``; then one of those
    strategies (k-means on the user's units) sees ``X`` itself. Standardising shrinks a
    separation along one feature when the other features are noise: at D=20, N=800 (two
    clusters 11 sd apart along one feature) EM on ``Z`` alone found them for 3 of 4 seeds,
    and at D=30, N=400 for none.

    Without ``labels``, repeated rows are collapsed into weighted ones first (up to
    :data:`COLLAPSE_ROWS` rows; the same data in any row order, or integer weights in place
    of repeats, then give the same start), and the components of the returned start and of
    those in ``pool`` are numbered largest weight first (:meth:`Start.largest_first`), and
    so are the fit's.

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
        fits = [em_for_start(Z, j, n_init, random_state, covariance_type, n_distinct, raw,
                             sample_weight=sample_weight)
                for j in range(1, k + 1)]
        best = int(np.argmin([f[3] for f in fits]))
        weights, means, covs, _ = fits[best]
        pad = k - weights.size
        if pad:
            rng = np.random.default_rng(random_state)
            weights = np.concatenate([weights * (1 - pad * 1e-3), np.full(pad, 1e-3)])
            means = np.concatenate([means, 0.1 * rng.standard_normal((pad, d))])
            pad_covs = structure(covariance_type).empty_covariances(covs, pad)
            covs = np.concatenate([covs, pad_covs])
    else:
        others = [] if pool is not None and labels is None else None
        weights, means, covs, _ = em_for_start(Z, k, n_init, random_state, covariance_type,
                                               n_distinct, raw, alternatives=others,
                                               sample_weight=sample_weight)
        if others is not None:
            pool.extend(_inside_priors(*other, covariance_type) for other in others)
    if labels is not None:
        weights, means, covs = _matched_to_labels(Z, labels, weights, means, covs,
                                                  covariance_type, sample_weight)
    best = _inside_priors(weights, means, covs, covariance_type)
    noise = noise_log_density
    if t_dof is None and noise is None:
        return best
    candidates = [best] + ([] if pool is None else list(pool))
    extra = em_for_start(Z, k + 1, n_init, random_state, covariance_type,
                         count_distinct_rows(Z, k + 1), raw, sample_weight=sample_weight)
    if extra[0].size == k + 1:
        for j in range(k + 1):
            parts = (np.delete(extra[0], j), np.delete(extra[1], j, axis=0),
                     np.delete(extra[2], j, axis=0))
            if labels is not None:  # component j holding the rows labelled j, again
                parts = _matched_to_labels(Z, labels, *parts, covariance_type, sample_weight)
            c = _inside_priors(*parts, covariance_type)
            candidates.append(c if noise is None else
                              replace(c, noise_weight=float(extra[0][j])))
    if noise is not None:
        candidates = [_refined_with_noise(Z, c, noise, sample_weight, labels)
                      for c in candidates]
    grid = [None] if t_dof is None else np.atleast_1d(np.asarray(t_dof, dtype=float))
    chosen, scores = [], []
    for c in candidates:
        tried = [c if nu is None else c.with_dof(nu) for nu in grid]
        ll = [_start_log_likelihood(Z, t, sample_weight, noise, labels) for t in tried]
        chosen.append(tried[int(np.argmax(ll))])
        scores.append(max(ll))
    order = sorted(range(len(chosen)), key=lambda i: -scores[i])
    if pool is not None:
        pool[:] = [chosen[i] for i in order[1:]]
    return chosen[order[0]]


#: The EM refinement of a start with a noise component runs on at most this many rows
#: (evenly spaced): it only places the start, which the mode search polishes on all rows.
NOISE_REFINE_ROWS = 20_000


def _refined_with_noise(Z, start: Start, noise_log_density, sample_weight, labels) -> Start:
    """``start`` refined by EM with a noise component (its weight from 0.05 if unset)."""
    from ..ml.missing import em_missing

    step = max(1, Z.shape[0] // NOISE_REFINE_ROWS)
    ld = np.broadcast_to(np.asarray(noise_log_density, float), (Z.shape[0],))[::step]
    w0 = 0.05 if start.noise_weight is None else float(np.clip(start.noise_weight, 1e-3, 0.5))
    out = em_missing(Z[::step], (1 - w0) * start.weights, start.means, start.covariances,
                     covariance_type=start.covariance_type, reg_covar=1e-3, max_iter=200,
                     tol=1e-6,
                     sample_weight=None if sample_weight is None else sample_weight[::step],
                     labels=None if labels is None else labels[::step],
                     noise_log_density=ld, noise_weight=w0)
    w0 = float(np.clip(out["noise_weight"], 1e-3, 1 - 1e-3))
    refined = _inside_priors(out["weights"], out["means"], out["covariances"],
                             start.covariance_type)
    return replace(refined, noise_weight=w0)


def _start_log_likelihood(Z, start: Start, sample_weight, noise_log_density=None,
                          labels=None) -> float:
    """The start's mixture log-likelihood of at most ``EM_REFINE_ROWS`` rows of Z.

    Its t components and its noise component included, where it has them; a row with a
    known label (``labels >= 0``) scored by its own component's term.
    """
    from scipy.special import logsumexp

    from ..likelihood.reference import weighted_log_densities

    step = max(1, Z.shape[0] // EM_REFINE_ROWS)
    w0 = start.noise_weight
    weights = start.weights if w0 is None else (1 - w0) * start.weights
    joint = weighted_log_densities(Z[::step], weights[None], start.means[None],
                                   start.chols[None],
                                   None if start.dof is None else start.dof[None])[0]
    ll = logsumexp(joint, axis=-1)
    if labels is not None:
        own = labels[::step]
        known = own >= 0
        ll[known] = joint[np.flatnonzero(known), own[known]]
    if w0 is not None:
        ld = np.broadcast_to(np.asarray(noise_log_density, float), (Z.shape[0],))[::step]
        free = slice(None) if labels is None else labels[::step] < 0
        # (A labelled row's term, its component's, holds the factor 1 - w0 already.)
        ll[free] = np.logaddexp(ll[free], np.log(w0) + ld[free])
    if sample_weight is not None:
        ll = ll * np.asarray(sample_weight, float)[::step]
    total = float(ll.sum())
    return total if np.isfinite(total) else -np.inf


def _matched_to_labels(Z, labels, weights, means, covs, covariance_type, sample_weight):
    """An EM solution with component j holding the rows labelled j, refined by EM.

    The refinement is EM that keeps the known labels.
    """
    from scipy.optimize import linear_sum_assignment

    from ..likelihood.reference import responsibilities
    from ..ml.missing import em_missing

    k = weights.size
    known = labels >= 0
    r = responsibilities(Z[known], weights[None], means[None], np.linalg.cholesky(covs)[None])[0]
    counts = np.zeros((k, k))
    np.add.at(counts, labels[known], r)  # counts[j, c]: rows labelled j held by c
    _, chosen = linear_sum_assignment(-counts)
    n_classes = int(labels.max()) + 1
    order = list(chosen[:n_classes]) + [c for c in range(k) if c not in chosen[:n_classes]]
    out = em_missing(Z, weights[order], means[order], covs[order],
                     covariance_type=covariance_type, reg_covar=1e-3, max_iter=500,
                     sample_weight=sample_weight, labels=labels)
    return out["weights"], out["means"], out["covariances"]


def _inside_priors(weights, means, covs, covariance_type: str) -> Start:
    """An EM solution as a Start inside the priors' support (weights >= 1e-3, covs > 0)."""
    d = np.shape(means)[1]
    weights = np.maximum(weights, 1e-3)
    weights = weights / weights.sum()
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2)) + 1e-6 * np.eye(d)
    return Start(weights=weights, means=np.array(means, dtype=float), covariances=covs,
                  covariance_type=covariance_type)


def jittered(start: Start, rng: np.random.Generator, scale: float = 0.05) -> dict:
    """A chain's start: the EM solution with small noise, as a constrained PyMC point."""
    k, d = start.means.shape
    sds = np.sqrt(np.diagonal(start.covariances, axis1=1, axis2=2))
    means = start.means + scale * sds * rng.standard_normal((k, d))
    weights = start.weights * np.exp(scale * rng.standard_normal(k))
    chols = start.chols * np.exp(scale * rng.standard_normal((k, d)))[:, :, None]
    dof = None if start.dof is None else start.dof * np.exp(scale * rng.standard_normal(k))
    w0 = start.noise_weight
    if w0 is not None:  # on the log-odds scale, inside (0, 1)
        w0 = 1 / (1 + (1 / w0 - 1) * np.exp(-scale * rng.standard_normal()))
    return point_from_params(weights / weights.sum(), means, chols, start.order_by,
                             start.covariance_type, dof, w0)


def best_separated_feature(start: Start) -> int:
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


def resolve_order_by(order_by, names: list[str], start: Start, k: int) -> int | None:
    """Feature index for the ordering constraint (None: no constraint)."""
    if order_by is None:
        return None
    if k < 2:
        raise ValueError("order_by needs n_components >= 2: one component has no order.")
    if isinstance(order_by, str):
        if order_by == "auto":
            return best_separated_feature(start)
        if order_by not in names:
            raise ValueError(f"order_by={order_by!r} is not a feature; the features are "
                             f"{names} (or pass 'auto' or a column index).")
        return names.index(order_by)
    if isinstance(order_by, (int, np.integer)) and not isinstance(order_by, bool) \
            and 0 <= order_by < len(names):
        return int(order_by)
    raise ValueError(f"order_by must be None, 'auto', a feature name or a column index in "
                     f"[0, {len(names)}), got {order_by!r}.")
