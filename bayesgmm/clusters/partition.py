"""A point estimate of the partition, its credible ball and per-point uncertainty.

The posterior over parameters induces one over partitions of the data: in each draw theta_s,
the assignments z_n are independent with P(z_n = k) = r_{s,n,k}, so drawing them gives
posterior draws of the partition. :func:`partition` finds the partition that minimises the
posterior expected loss, estimated on those draws, for Binder's loss or the variation of
information (Wade and Ghahramani 2018), with the SALSO search of Dahl, Johnson and Müller
(2022); :func:`credible_ball` is Wade and Ghahramani's credible ball around it.

Memory: the draws' labels take draws x N x 2 bytes (``max_draws`` x N is capped at
:data:`MAX_LABELS`, so 200 MB), and the search keeps per draw a table of the estimate's
clusters against the draw's, never an N x N matrix; time is about sweeps x N x clusters x
draws. A point that a noise component takes in a draw is a cluster of its own in that draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..fitting.result import (
    as_tree,
    checked_data,
    known_labels,
    posterior_draws,
    thinned_draws,
    with_known_labels,
)
from ..likelihood.reference import responsibilities as draw_responsibilities
from ..seeds import check_random_state
from ..validation import check_positive_int
from . import salso

__all__ = ["LOSSES", "MAX_LABELS", "Partition", "CredibleBall", "partition", "draw_labels",
           "expected_loss", "partition_distance", "credible_ball", "responsibility_blocks"]

#: The losses :func:`partition` minimises.
LOSSES = ("vi", "binder")
#: Largest number of (draw, point) labels held (2 bytes each).
MAX_LABELS = 100_000_000
_BLOCK = 4_000_000  # responsibilities per block of draws


@dataclass
class CredibleBall:
    """Wade and Ghahramani's credible ball around a partition estimate.

    The smallest ball (in the loss's distance) around the estimate that holds ``level`` of
    the posterior draws of the partition, and the draws that bound it.

    Attributes
    ----------
    radius : float
        Its radius, in the loss's unit.
    level : float
    horizontal : ndarray of shape (N,)
        The labels of a draw in the ball furthest from the estimate.
    upper : ndarray of shape (N,)
        Vertical upper bound: among the draws in the ball with the fewest clusters, the one
        furthest from the estimate.
    lower : ndarray of shape (N,)
        Vertical lower bound: among those with the most clusters, the furthest.
    n_clusters : tuple of int
        The fewest and the most clusters of a partition in the ball.
    """

    radius: float
    level: float
    horizontal: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)
    lower: np.ndarray = field(repr=False)
    n_clusters: tuple = (0, 0)


@dataclass
class Partition:
    """The result of :func:`partition`.

    Attributes
    ----------
    labels : ndarray of shape (N,)
        The estimate: cluster labels 0 .. n_clusters - 1, largest cluster first.
    loss : str
        "vi" or "binder".
    expected_loss : float
        Its posterior expected loss (VI in nats; Binder as the fraction of pairs of points
        it treats differently from the posterior), estimated on the draws.
    probability : ndarray of shape (N,)
        Per point, the posterior probability that it is clustered with the estimate's
        other members of its cluster (their mean co-clustering probability); for a point
        alone, the probability that it is apart from each other point.
    credible_ball : CredibleBall
        At 95%.
    n_draws : int
        Partition draws used (parameter draws x assignment draws per parameter draw).
    runs : int
        Search runs; the best is kept.
    """

    labels: np.ndarray
    loss: str
    expected_loss: float
    probability: np.ndarray = field(repr=False)
    credible_ball: CredibleBall = field(repr=False)
    n_draws: int = 0
    runs: int = 0

    @property
    def n_clusters(self) -> int:
        """Number of clusters of the estimate."""
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def uncertainty(self) -> np.ndarray:
        """1 - :attr:`probability`."""
        return 1.0 - self.probability

    def table(self) -> pd.DataFrame:
        """Per point: ``label``, ``probability`` and ``uncertainty``."""
        return pd.DataFrame({"label": self.labels, "probability": self.probability,
                             "uncertainty": self.uncertainty},
                            index=pd.Index(np.arange(self.labels.size), name="obs"))

    def __str__(self) -> str:
        sizes = np.bincount(self.labels)
        ball = self.credible_ball
        return (f"Partition estimate ({self.loss} loss): {self.n_clusters} clusters of sizes "
                f"{sizes.tolist()}, expected loss {self.expected_loss:.4g} over "
                f"{self.n_draws} draws; {int((self.uncertainty > 0.1).sum())} points less "
                f"than 90% sure; 95% credible ball radius {ball.radius:.4g} "
                f"({ball.n_clusters[0]} to {ball.n_clusters[1]} clusters)")

    def __repr__(self) -> str:
        return str(self)


def _check_loss(loss: str) -> int:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    return salso.VI if loss == "vi" else salso.BINDER


def responsibility_blocks(X: np.ndarray, params, codes: np.ndarray | None):
    """Yield (slice, r): per-draw responsibilities (b, N, K[+1]) a block of draws at a time.

    ``params``: :class:`~bayesgmm.fitting.result.Draws`; ``codes``: known labels (or None),
    given to their components. A block holds about 4 million values.
    """
    total, k = params.weights.shape
    block = max(1, _BLOCK // max(1, X.shape[0] * (k + 1)))
    for start in range(0, total, block):
        sl = slice(start, min(total, start + block))
        yield sl, with_known_labels(draw_responsibilities(X, *params.sliced(sl)), codes)


def draw_labels(fitted, X=None, *, max_draws: int = 500, min_draws: int = 200,
                random_state=0) -> np.ndarray:
    """Posterior draws of the partition: z_n ~ Categorical(r_{s,n}) in each parameter draw.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, optional
        Default: the fitted data (with its known labels, if any).
    max_draws : int, default 500
        Parameter draws used, spread over each chain; fewer when draws x N would pass
        :data:`MAX_LABELS`.
    min_draws : int, default 200
        With fewer parameter draws than this (a MAP fit has one), each gives several
        assignment draws, so that there are at least this many partitions.
    random_state : int or numpy.random.Generator, default 0

    Returns
    -------
    ndarray of shape (n_draws, N), int16
        Component of each point in each draw; -1 where a noise component took it.
    """
    result = as_tree(fitted)
    codes = known_labels(result) if X is None else None
    X = checked_data(result, X)
    n = X.shape[0]
    post = result["posterior"]
    c, s = post.sizes["chain"], post.sizes["draw"]
    k = post.sizes["component"]
    if k > np.iinfo(np.int16).max:
        raise ValueError(f"At most {np.iinfo(np.int16).max} components, got {k}.")
    rng = check_random_state(random_state)
    max_draws = check_positive_int(max_draws, "max_draws")
    min_draws = check_positive_int(min_draws, "min_draws")
    cap = max(1, MAX_LABELS // max(n, 1))
    params = posterior_draws(post, thinned_draws(s, c, min(max_draws, cap)))
    total = params.weights.shape[0]
    repeats = max(1, min(-(-min_draws // total), cap // total))
    out = np.empty((total * repeats, n), dtype=np.int16)
    row = 0
    for _, r in responsibility_blocks(X, params, codes):
        cum = np.cumsum(r, axis=-1)
        for _ in range(repeats):
            u = rng.random(r.shape[:-1] + (1,))
            z = np.minimum((cum < u * cum[..., -1:]).sum(axis=-1), r.shape[-1] - 1)
            z[z >= k] = -1  # the noise component's column
            out[row:row + z.shape[0]] = z
            row += z.shape[0]
    return out


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts of the pairs of labels (a_n, b_n); labels -1 in b are singletons."""
    single = b < 0
    keep = ~single
    ka, kb = int(a.max()) + 1, int(b[keep].max()) + 1 if keep.any() else 0
    cells = np.bincount(a[keep] * kb + b[keep], minlength=ka * kb)
    return cells.reshape(ka, kb).astype(float), np.bincount(a[single], minlength=ka)


def partition_distance(a, b, loss: str = "vi") -> float:
    """Binder's loss or the variation of information between two label vectors.

    Labels -1 in ``b`` are points alone. VI in nats; Binder as the fraction of the pairs
    of points that one partition puts together and the other apart.
    """
    _check_loss(loss)
    a, b = np.asarray(a), np.asarray(b)
    n = a.size
    a = np.unique(a, return_inverse=True)[1]
    table, singles = _contingency(a, b)
    rows = table.sum(axis=1) + singles
    cols = np.concatenate([table.sum(axis=0), np.ones(int(singles.sum()))])
    cells = np.concatenate([table.ravel(), np.ones(int(singles.sum()))])
    if loss == "binder":
        pairs = 0.5 * ((rows ** 2).sum() + (cols ** 2).sum() - 2.0 * (cells ** 2).sum())
        return float(pairs / (0.5 * n * (n - 1))) if n > 1 else 0.0

    def f(v):
        v = v[v > 1]
        return float((v * np.log(v)).sum())

    return (f(rows) + f(cols) - 2.0 * f(cells)) / n


def _distances(labels, Z: np.ndarray, loss: str) -> np.ndarray:
    return np.array([partition_distance(labels, z, loss) for z in Z])


def expected_loss(labels, Z: np.ndarray, loss: str = "vi") -> float:
    """The mean of :func:`partition_distance` between ``labels`` and each row of ``Z``."""
    return float(np.mean(_distances(labels, Z, loss)))


def _relabelled(c: np.ndarray) -> np.ndarray:
    """Labels 0.. by decreasing cluster size (ties: first appearance)."""
    uniq, first, inverse, sizes = np.unique(c, return_index=True, return_inverse=True,
                                            return_counts=True)
    order = np.lexsort((first, -sizes))
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64)


def credible_ball(labels, Z: np.ndarray, loss: str = "vi", level: float = 0.95) -> CredibleBall:
    """Wade and Ghahramani's credible ball of the partition draws ``Z`` around ``labels``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}.")
    return _ball(Z, _distances(labels, Z, loss), level)


def _ball(Z: np.ndarray, distances: np.ndarray, level: float) -> CredibleBall:
    """The credible ball from each draw's distance to the estimate."""
    radius = float(np.quantile(distances, level, method="inverted_cdf"))
    inside = np.flatnonzero(distances <= radius + 1e-12)
    n_clusters = np.array([np.unique(z[z >= 0]).size + int((z < 0).sum()) for z in Z])

    def furthest(rows):
        return Z[rows[np.argmax(distances[rows])]].astype(np.int64)

    fewest, most = n_clusters[inside].min(), n_clusters[inside].max()
    return CredibleBall(radius=radius, level=float(level),
                        horizontal=furthest(inside),
                        upper=furthest(inside[n_clusters[inside] == fewest]),
                        lower=furthest(inside[n_clusters[inside] == most]),
                        n_clusters=(int(fewest), int(most)))


def _starts(Z: np.ndarray, kind: int, capacity: int, n_labels: int, limit: int) -> np.ndarray:
    """The draws' own partitions as candidates (as labels 0..), and their losses."""
    rows = np.unique(np.linspace(0, Z.shape[0] - 1, min(limit, Z.shape[0])).round()
                     .astype(int))
    candidates = np.empty((rows.size, Z.shape[1]), dtype=np.int64)
    for j, r in enumerate(rows):
        z = Z[r].astype(np.int64)
        single = np.flatnonzero(z < 0)
        z[single] = n_labels + np.arange(single.size)  # points alone: clusters of their own
        candidates[j] = np.unique(z, return_inverse=True)[1]
    keep = candidates.max(axis=1) < capacity
    candidates = candidates[keep]
    return candidates, salso.partial_losses(salso.flog_table(Z.shape[1]), candidates, Z,
                                           capacity, n_labels, kind)


def partition(fitted, X=None, *, loss: str = "vi", max_draws: int = 500, n_runs: int = 8,
              max_clusters: int | None = None, level: float = 0.95,
              random_state=0) -> Partition:
    """The partition that minimises the posterior expected loss, with its uncertainty.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, optional
        Points to cluster (default: the fitted data, with its known labels, if any).
    loss : {"vi", "binder"}, default "vi"
        The variation of information (Meilă 2007; the default, as Wade and Ghahramani
        recommend: Binder's loss tends to split off many small clusters) or Binder's loss
        with equal costs (its minimiser puts i and j together exactly when their
        co-clustering probability exceeds 1/2, where that is a partition).
    max_draws : int, default 500
        Parameter draws used, spread over each chain (see :func:`draw_labels`).
    n_runs : int, default 8
        Search runs from random orders; one more starts from the best of the draws' own
        partitions, so the estimate's expected loss is never above theirs.
    max_clusters : int, optional
        Most clusters the estimate may have (default: the components plus the points a
        noise component takes in some draw, at most 100 of them, so that such points can
        stand alone; the search's time grows with it).
    level : float, default 0.95
        Of the credible ball.
    random_state : int or numpy.random.Generator, default 0
        Seeds the assignment draws and the search orders.

    Returns
    -------
    Partition

    Notes
    -----
    Draws of the partition come from the fit's parameter draws with the assignments drawn
    given each (:func:`draw_labels`); the search is SALSO's (sequential allocation, then
    sweeps and cluster dissolution until nothing improves), on the draws' contingency
    tables, so its memory is draws x N x 2 bytes plus draws x clusters x components
    counts, whatever N. The credible ball is computed on the same draws.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.clusters import partition
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-4, 1, (40, 1)), rng.normal(4, 1, (40, 1))])
    >>> est = partition(fit(X, 2, method="map", random_state=0))
    >>> est.n_clusters, np.bincount(est.labels).tolist()
    (2, [40, 40])
    """
    kind = _check_loss(loss)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}.")
    n_runs = check_positive_int(n_runs, "n_runs")
    rng = check_random_state(random_state)
    Z = draw_labels(fitted, X, max_draws=max_draws, random_state=rng)
    n = Z.shape[1]
    n_labels = int(Z.max()) + 1 if (Z >= 0).any() else 1
    alone = int((Z < 0).any(axis=0).sum())
    capacity = min(n, n_labels + min(alone, 100)) if max_clusters is None else min(
        n, check_positive_int(max_clusters, "max_clusters"))
    capacity = max(capacity, 1)
    Z = np.ascontiguousarray(Z)
    best, best_loss = None, np.inf
    candidates, losses = _starts(Z, kind, capacity, n_labels, limit=max(
        1, min(Z.shape[0], int(2e8 // max(1, Z.shape[0] * n)))))
    inits = [np.full(n, -1, dtype=np.int64) for _ in range(n_runs)]
    if candidates.shape[0]:
        inits.append(candidates[np.argmin(losses)].copy())
    fl = salso.flog_table(n)
    for init in inits:
        order = rng.permutation(n).astype(np.int64)
        c, value = salso.search(fl, Z, init, capacity, n_labels, kind, order, 100)
        if value < best_loss - 1e-9:
            best, best_loss = c, value
    labels = _relabelled(best)
    n_clusters = int(labels.max()) + 1
    probability = salso.mate_probability(labels, Z, n_clusters)
    distances = _distances(labels, Z, loss)  # for the expected loss and the ball alike
    return Partition(labels=labels, loss=loss, expected_loss=float(distances.mean()),
                     probability=probability, credible_ball=_ball(Z, distances, level),
                     n_draws=Z.shape[0], runs=len(inits))
