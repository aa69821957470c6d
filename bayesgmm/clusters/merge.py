"""Merging mixture components into clusters, with the posterior probability of each merge.

A cluster that is not Gaussian (a banana, a ring, a skewed group) is fitted by several
Gaussian components; merging them recovers it. Two criteria, both greedy (merge the best
pair, repeat down to one cluster):

``"entropy"`` (Baudry, Raftery, Celeux, Lo and Gottardo 2010, mclust's ``clustCombi``)
    merge the pair whose union lowers the classification entropy
    ``-sum_n sum_k r_nk log r_nk`` the most; the number of clusters is where the entropy,
    against the number of clusters, bends (the change point of a two-piece linear fit, as
    Baudry et al. suggest).
``"demp"`` (Hennig 2010, the directly estimated misclassification probability)
    merge the pair (a, b) with the largest estimated probability that a point of one is
    classified into the other, ``sum_n r_na [map(n) = b] / sum_n r_na``; stop when it falls
    below ``threshold``.

Both run on every posterior draw's responsibilities (relabelled to a common order, as every
fit is), so each merge of the summary, the tree of the posterior mean responsibilities, has
a posterior probability: the fraction of draws whose tree holds the same cluster (set of
components). A noise component is never merged: the points it takes keep label -1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..fitting.result import as_tree, checked_data, known_labels, posterior_draws, thinned_draws
from ..validation import check_positive_int
from .partition import responsibility_blocks

__all__ = ["MERGE_METHODS", "Merge", "merge_components", "merge_sequence"]

#: The merging criteria of :func:`merge_components`.
MERGE_METHODS = ("entropy", "demp")


def _xlogx(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0)


def merge_sequence(r: np.ndarray, method: str = "entropy"):
    """The greedy merges of the K columns of one responsibility matrix ``r`` (N, K).

    Returns ``steps``: a list of K - 1 tuples (a, b, value) naming the merged clusters by
    their index in the current list of clusters (a < b; the union takes a's place and b is
    removed), and ``groups``: the clusters (tuples of components) after each step, starting
    with the K singletons. ``value``: the entropy after the merge ("entropy"), or the
    misclassification probability that chose it ("demp").
    """
    r = np.asarray(r, dtype=float)
    cols = [r[:, j] for j in range(r.shape[1])]
    groups = [tuple([j]) for j in range(r.shape[1])]
    history, steps = [list(groups)], []
    while len(cols) > 1:
        m = np.column_stack(cols)
        best, best_value = None, -np.inf
        if method == "entropy":
            plogp = _xlogx(m).sum(axis=0)
            for a in range(len(cols)):
                for b in range(a + 1, len(cols)):
                    gain = float(_xlogx(m[:, a] + m[:, b]).sum() - plogp[a] - plogp[b])
                    if gain > best_value + 1e-12:
                        best, best_value = (a, b), gain
        else:
            mapped = m.argmax(axis=1)
            mass = m.sum(axis=0)
            for a in range(len(cols)):
                for b in range(a + 1, len(cols)):
                    ab = m[mapped == b, a].sum() / mass[a] if mass[a] > 0 else 0.0
                    ba = m[mapped == a, b].sum() / mass[b] if mass[b] > 0 else 0.0
                    value = max(ab, ba)
                    if value > best_value + 1e-12:
                        best, best_value = (a, b), float(value)
        a, b = best
        cols[a] = cols[a] + cols[b]
        del cols[b]
        groups[a] = tuple(sorted(groups[a] + groups[b]))
        del groups[b]
        if method == "entropy":
            best_value = float(-_xlogx(np.column_stack(cols)).sum())
        steps.append((a, b, best_value))
        history.append(list(groups))
    return steps, history


def _entropy_elbow(entropies: np.ndarray) -> int:
    """Baudry et al.'s choice: the change point of a two-piece linear fit of the entropy.

    ``entropies[j]`` is the entropy with j + 1 clusters. Each piece is a least-squares line;
    they meet at the change point's value. Returns the number of clusters.
    """
    k = entropies.size
    if k <= 2:
        return k
    x = np.arange(1, k + 1, dtype=float)
    best, best_sse = k, np.inf
    for c in range(2, k):  # the change point, as a number of clusters
        sse = 0.0
        for sl in (slice(0, c), slice(c - 1, k)):
            xs, ys = x[sl], entropies[sl]
            if xs.size > 2:
                coef = np.polyfit(xs, ys, 1)
                sse += float(((np.polyval(coef, xs) - ys) ** 2).sum())
        if sse < best_sse - 1e-12:
            best, best_sse = c, sse
    return best


def _n_clusters(steps, k: int, method: str, r: np.ndarray, threshold: float) -> int:
    if method == "entropy":
        ent = [float(-_xlogx(r).sum())] + [v for _, _, v in steps]
        return _entropy_elbow(np.asarray(ent[::-1]))
    n = k
    for _, _, value in steps:
        if value < threshold:
            break
        n -= 1
    return n


@dataclass
class Merge:
    """The result of :func:`merge_components`.

    Attributes
    ----------
    labels : ndarray of shape (N,)
        Cluster of each point (argmax of :attr:`probabilities`); -1 where a noise component
        is the most probable.
    probabilities : ndarray of shape (N, n_clusters)
        Posterior mean P(cluster | x_n): the sum of its components' responsibilities.
    clusters : list of tuple
        The components of each cluster.
    n_clusters : int
    tree : pandas.DataFrame
        One row per merge of the summary (the posterior mean responsibilities' tree), in
        order: ``n_clusters`` (after it), ``merged`` (the two clusters' components),
        ``value`` (see :func:`merge_sequence`) and ``probability``, the fraction of
        posterior draws whose own tree makes the same cluster.
    n_clusters_posterior : pandas.Series
        The number of clusters each draw's own criterion chooses: its distribution.
    probability : float
        Fraction of the draws whose tree holds exactly :attr:`clusters` at that number of
        clusters.
    method : str
    """

    labels: np.ndarray
    probabilities: np.ndarray = field(repr=False)
    clusters: list = field(default_factory=list)
    n_clusters: int = 0
    tree: pd.DataFrame = field(repr=False, default=None)
    n_clusters_posterior: pd.Series = field(repr=False, default=None)
    probability: float = 1.0
    method: str = "entropy"

    def __str__(self) -> str:
        return (f"{self.n_clusters} clusters from {sum(map(len, self.clusters))} components "
                f"({self.method} merging): {self.clusters}; probability of this grouping "
                f"{self.probability:.2f}\n{self.tree.round(3).to_string(index=False)}")

    def __repr__(self) -> str:
        return str(self)


def merge_components(fitted, X=None, *, method: str = "entropy",
                     n_clusters: int | None = None, threshold: float = 0.025,
                     max_draws: int = 200) -> Merge:
    """Merge a fit's components into clusters; each merge with its posterior probability.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, optional
        Default: the fitted data (with its known labels, if any).
    method : {"entropy", "demp"}, default "entropy"
        The criterion (see the module documentation).
    n_clusters : int, optional
        Stop at this many clusters. Default: the criterion's choice (entropy: the bend of
        the entropy curve; demp: merge while the misclassification probability is at least
        ``threshold``).
    threshold : float, default 0.025
        DEMP's stopping level (Hennig 2010).
    max_draws : int, default 200
        Posterior draws, spread over the chains, in which the merges are repeated.

    Returns
    -------
    Merge

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.clusters import merge_components
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-6, 1, (60, 1)), rng.normal(0, 1, (30, 1)),
    ...                     rng.normal(1.5, 1, (30, 1))])
    >>> merged = merge_components(fit(X, 3, method="map", random_state=0), n_clusters=2)
    >>> merged.n_clusters, sorted(map(len, merged.clusters))
    (2, [1, 2])
    """
    if method not in MERGE_METHODS:
        raise ValueError(f"method must be one of {MERGE_METHODS}, got {method!r}.")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}.")
    result = as_tree(fitted)
    codes = known_labels(result) if X is None else None
    X = checked_data(result, X)
    post = result["posterior"]
    k = post.sizes["component"]
    if n_clusters is not None:
        n_clusters = check_positive_int(n_clusters, "n_clusters")
        if n_clusters > k:
            raise ValueError(f"n_clusters={n_clusters} is more than the fit's {k} components.")
    c, s = post.sizes["chain"], post.sizes["draw"]
    params = posterior_draws(post, thinned_draws(s, c, check_positive_int(max_draws,
                                                                          "max_draws")))
    total, n = params.weights.shape[0], X.shape[0]
    mean = np.zeros((n, k + ("noise_weight" in post)))
    nodes: dict = {}  # cluster (tuple of components) -> number of draws whose tree has it
    levels: dict = {}  # (n_clusters, grouping) -> draws
    chosen = np.empty(total, dtype=int)
    for sl, r in responsibility_blocks(X, params, codes):
        mean += r.sum(axis=0)
        for j in range(r.shape[0]):
            rj = r[j, :, :k]
            steps, history = merge_sequence(rj, method)
            for g in {g for groups in history for g in groups}:
                nodes[g] = nodes.get(g, 0) + 1
            for groups in history:
                key = (len(groups), tuple(sorted(groups)))
                levels[key] = levels.get(key, 0) + 1
            chosen[sl.start + j] = (n_clusters if n_clusters is not None
                                 else _n_clusters(steps, k, method, rj, threshold))
    mean /= total
    steps, history = merge_sequence(mean[:, :k], method)
    final = (n_clusters if n_clusters is not None
             else _n_clusters(steps, k, method, mean[:, :k], threshold))
    clusters = sorted(history[k - final], key=lambda g: (-mean[:, list(g)].sum(), g))
    probabilities = np.column_stack([mean[:, list(g)].sum(axis=1) for g in clusters])
    labels = probabilities.argmax(axis=1)
    if mean.shape[1] > k:  # the noise column
        labels[mean[:, k] > probabilities.max(axis=1)] = -1
    rows = []
    for step, ((a, b, value), groups) in enumerate(zip(steps, history[:-1], strict=True)):
        union = tuple(sorted(groups[a] + groups[b]))
        rows.append({"n_clusters": k - step - 1, "merged": (groups[a], groups[b]),
                     "value": value, "probability": nodes.get(union, 0) / total})
    tree = pd.DataFrame(rows, columns=["n_clusters", "merged", "value", "probability"])
    counts = np.bincount(chosen, minlength=k + 1)[1:]
    posterior_k = pd.Series(counts / total, index=pd.Index(np.arange(1, k + 1),
                                                             name="n_clusters"),
                            name="probability")
    grouping = (final, tuple(sorted(clusters)))
    return Merge(labels=labels, probabilities=probabilities, clusters=clusters,
                 n_clusters=final, tree=tree, n_clusters_posterior=posterior_k,
                 probability=levels.get(grouping, 0) / total, method=method)
