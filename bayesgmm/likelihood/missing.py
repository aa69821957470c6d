"""Missing entries marginalised out of the mixture likelihood (missing at random).

A row that observes the coordinates ``O`` has the likelihood of its observed sub-vector under
each component's marginal: ``log sum_k w_k N(x_O | mu_k[O], Sigma_k[O, O])``. Rows are
grouped by their missingness pattern (which coordinates they observe), so that each
pattern's sub-covariances are factorised once per component per evaluation, not once per
row, and each pattern's rows run through the same kernels as complete data
(:mod:`bayesgmm.likelihood.kernels`): the per-row work is that of a complete row of
``len(O)`` features.

This module knows nothing of PyMC models; :func:`marginal_log_likelihood_graph` builds the
PyTensor term the model uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Pattern", "missingness_patterns", "marginal_chols", "by_pattern",
           "marginal_log_likelihood_graph", "masked_log_likelihood_graph",
           "masked_rows_log_likelihood", "pattern_table", "fill_missing"]

@dataclass(frozen=True)
class Pattern:
    """The rows that observe the same coordinates.

    Attributes
    ----------
    observed : ndarray of int
        The observed columns, increasing.
    rows : ndarray of int
        The rows with exactly these columns observed, increasing.
    """

    observed: np.ndarray
    rows: np.ndarray

    def is_prefix(self, d: int) -> bool:
        """Whether the observed columns are ``0, ..., m - 1`` (the complete pattern too).

        The marginal Cholesky factor is then the leading block of the full one.
        """
        return bool(np.array_equal(self.observed, np.arange(self.observed.size)))


def missingness_patterns(X: np.ndarray) -> list[Pattern]:
    """The missingness patterns of ``X`` (NaN = missing), most rows first.

    Ties are broken by the pattern's first row, so the order depends on ``X`` alone.

    Examples
    --------
    >>> X = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 1.0], [4.0, 5.0]])
    >>> [(p.observed.tolist(), p.rows.tolist()) for p in missingness_patterns(X)]
    [([0, 1], [1, 3]), ([0], [0]), ([1], [2])]
    """
    observed = ~np.isnan(X)
    uniq, first, inverse, counts = np.unique(observed, axis=0, return_index=True,
                                             return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.cumsum(counts)[:-1])
    patterns = [Pattern(np.flatnonzero(uniq[j]), groups[j]) for j in range(uniq.shape[0])]
    ranking = sorted(range(len(patterns)), key=lambda j: (-counts[j], first[j]))
    return [patterns[j] for j in ranking]


def marginal_chols(chols: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Cholesky factors (..., K, M, M) of the covariances' ``observed`` sub-matrices.

    From the factors (..., K, D, D) of the full covariances. A leading block of coordinates
    needs no new factorisation: its factor is the leading block of the full one.
    """
    m = observed.size
    if np.array_equal(observed, np.arange(m)):
        return chols[..., :m, :m]
    sub = chols[..., observed, :]
    return np.linalg.cholesky(sub @ np.swapaxes(sub, -1, -2))


def by_pattern(X: np.ndarray, means: np.ndarray, chols: np.ndarray,
               evaluate: Callable, out_shape: tuple, row_axis: int) -> np.ndarray:
    """Run ``evaluate(X_O, means_O, chols_O)`` per missingness pattern and put rows back.

    ``means`` (..., K, D) and ``chols`` (..., K, D, D); ``evaluate`` returns an array whose
    axis ``row_axis`` runs over the pattern's rows. ``out_shape`` is the shape of the result
    for all rows of ``X``. Rows that observe nothing get ``evaluate`` on zero columns.
    """
    out = np.empty(out_shape)
    for p in missingness_patterns(X):
        sub = X[np.ix_(p.rows, p.observed)]
        values = evaluate(sub, means[..., p.observed], marginal_chols(chols, p.observed))
        index = [slice(None)] * len(out_shape)
        index[row_axis] = p.rows
        out[tuple(index)] = values
    return out


def fill_missing(X: np.ndarray, value: float = 0.0) -> np.ndarray:
    """``X`` with NaN entries replaced by ``value`` (a copy)."""
    return np.where(np.isnan(X), value, X)


def marginal_log_likelihood_graph(Z: np.ndarray, weights, means, chols, *, n_components: int,
                                  dense: bool = True, graph: str = "fused",
                                  term: Callable | None = None):
    """The per-row log-likelihood (N,) of data ``Z`` with NaN entries, as a PyTensor graph.

    ``Z`` is a constant (the patterns are part of the graph). Per pattern, the observed
    sub-matrices of the covariances ``L_k L_k^T`` are factorised (inside the fused Op by
    default; in the graph for the other two: for a leading block of coordinates, or for
    diagonal factors when ``dense`` is False, the sub-block of ``L_k`` is that factor
    already), and each pattern's rows are scored on their observed columns.

    Parameters
    ----------
    Z : ndarray of shape (N, D), NaN where missing; no row entirely missing
    weights, means, chols : TensorVariables (K,), (K, D, D), (K, D, D)
    n_components : int
    dense : bool, default True
        Whether the factors can have off-diagonal entries.
    graph : {"fused", "per pattern", "batched"}, default "fused"
        ``"fused"``: one Op for all patterns
        (:class:`~bayesgmm.likelihood.ops.MaskedMixtureLogLik`, the kernels of complete data
        run pattern by pattern; its graph and memory do not grow with the number of
        patterns). ``"per pattern"``: one complete-data ``term`` per pattern (the graph grows
        with the patterns; the tests' oracle). ``"batched"``:
        :func:`masked_log_likelihood_graph` (N x K x D x D values per evaluation; the graph of
        minibatches with missing entries).
    term : callable, optional
        For ``graph="per pattern"``: the complete-data likelihood, called as ``term(X,
        weights, means, chols, n_components=K, n_features=M)``; by default the fused Op
        (:func:`~bayesgmm.likelihood.ops.mixture_log_likelihood`), the tests pass the plain
        graph (:func:`~bayesgmm.likelihood.ops.mixture_log_likelihood_graph`).

    Returns
    -------
    TensorVariable of shape (N,), rows in the order of ``Z``
    """
    import pytensor.tensor as pt
    from pytensor.tensor.linalg import cholesky

    from .ops import mixture_log_likelihood

    if graph not in ("fused", "per pattern", "batched"):
        raise ValueError(f"graph must be 'fused', 'per pattern' or 'batched', got {graph!r}")
    if term is not None and graph != "per pattern":
        raise ValueError("term is used by graph='per pattern' only")
    patterns = missingness_patterns(Z)
    if graph == "batched":
        return masked_log_likelihood_graph(Z, weights, means, chols, n_components=n_components,
                                           patterns=patterns)
    if graph == "fused":
        return _fused_marginal(Z, patterns, weights, means, chols)
    term = mixture_log_likelihood if term is None else term
    k = int(n_components)
    n, d = Z.shape
    parts, rows = [], []
    for p in patterns:
        obs = p.observed
        m = obs.size
        if m == 0:
            raise ValueError("marginal_log_likelihood_graph: rows "
                             f"{p.rows[:5].tolist()} have every entry missing.")
        if p.is_prefix(d):
            sub_chols = chols[:, :m, :m]
        elif not dense:
            sub_chols = chols[:, obs][:, :, obs]
        else:
            rows_of = chols[:, obs, :]
            sub_chols = cholesky(pt.matmul(rows_of, rows_of.transpose(0, 2, 1)), lower=True)
        parts.append(term(pt.constant(Z[np.ix_(p.rows, obs)]), weights, means[:, obs],
                          sub_chols, n_components=k, n_features=m))
        rows.append(p.rows)
    inverse = np.empty(n, dtype=np.int64)
    inverse[np.concatenate(rows)] = np.arange(n)
    return (pt.concatenate(parts) if len(parts) > 1 else parts[0])[inverse]


def _fused_marginal(Z, patterns, weights, means, chols):
    """The ``graph="fused"`` term of :func:`marginal_log_likelihood_graph`."""
    import pytensor.tensor as pt

    from .ops import masked_fused_log_likelihood

    masks, _ = pattern_table(Z, patterns)
    n = Z.shape[0]
    order = np.concatenate([p.rows for p in patterns])
    starts = np.concatenate([[0], np.cumsum([p.rows.size for p in patterns])])
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    filled = np.ascontiguousarray(fill_missing(Z)[order])
    # The Op factorises each pattern's sub-covariances itself; dense or not, the same term.
    ll = masked_fused_log_likelihood(pt.constant(filled), pt.constant(starts),
                                     pt.constant(masks.astype(np.int64)), pt.log(weights),
                                     means, chols)
    return ll[position]


def pattern_table(Z: np.ndarray, patterns: list[Pattern] | None = None):
    """The observed masks of the patterns of ``Z`` (P, D) and each row's pattern (N,).

    Rows with nothing observed are refused (their marginal density is 1, with no data).
    """
    patterns = missingness_patterns(Z) if patterns is None else patterns
    if any(p.observed.size == 0 for p in patterns):
        raise ValueError("masked_log_likelihood_graph: some rows have every entry missing.")
    masks = np.zeros((len(patterns), Z.shape[1]))
    which = np.empty(Z.shape[0], dtype=np.int64)
    for i, p in enumerate(patterns):
        masks[i, p.observed] = 1.0
        which[p.rows] = i
    return masks, which


def masked_log_likelihood_graph(Z: np.ndarray, weights, means, chols, *, n_components: int,
                                patterns: list[Pattern] | None = None):
    """:func:`marginal_log_likelihood_graph` as one batched PyTensor graph for all patterns.

    For pattern p with observed mask ``m``, the covariance ``S~ = M S M + (I - M)``
    (``M = diag(m)``) is the observed sub-matrix with the identity on the missing
    coordinates, and the residual is 0 there: ``N_D(e~ | 0, S~)`` is the marginal density of
    the observed entries times ``(2 pi)^(-|missing| / 2)``, which is divided out. One
    batched Cholesky of the (P, K) matrices, whatever the number P of patterns; each row
    then takes its pattern's inverse factors (N x K x D x D values). ``patterns``: those of
    ``Z`` (:func:`missingness_patterns`), when the caller has them.
    """
    masks, which = pattern_table(Z, patterns)
    return masked_rows_log_likelihood(np.nan_to_num(Z), which, masks, weights, means, chols,
                                      n_components=n_components)


def masked_rows_log_likelihood(filled, which, masks: np.ndarray, weights, means, chols, *,
                               n_components: int):
    """The graph of :func:`masked_log_likelihood_graph` from rows given as tensors.

    ``filled`` (N, D): the data with 0 in place of missing entries; ``which`` (N,) int: each
    row's pattern, a row of the constant ``masks`` (P, D) of observed coordinates. Both may
    be symbolic, for example a minibatch of rows drawn with their patterns (minibatch ADVI
    with missing entries).
    """
    import pytensor.tensor as pt
    from pytensor.tensor.linalg import cholesky, solve_triangular

    from .kernels import LOG_2PI

    k = int(n_components)
    n_patterns, d = masks.shape
    both = masks[:, None, :, None] * masks[:, None, None, :]  # (P, 1, D, D)
    elsewhere = (1.0 - masks)[:, None, :, None] * np.eye(d)  # identity on missing coords
    cov = pt.matmul(chols, chols.transpose(0, 2, 1))  # (K, D, D)
    factors = cholesky(cov[None] * both + elsewhere, lower=True)  # (P, K, D, D)
    eye = pt.broadcast_to(pt.eye(d), (n_patterns, k, d, d))
    inverse = solve_triangular(factors, eye, lower=True)
    idx = np.arange(d)
    logdet = pt.sum(pt.log(factors[:, :, idx, idx]), axis=-1)  # (P, K)
    row_masks = pt.as_tensor(masks)[which]  # (N, D)
    resid = (pt.as_tensor(filled)[:, None, :] - means[None]) * row_masks[:, None, :]
    z = pt.sum(inverse[which] * resid[:, :, None, :], axis=-1)  # (N, K, D)
    observed = row_masks.sum(axis=1)  # (N,)
    lp = (pt.log(weights)[None] - logdet[which] - 0.5 * pt.sum(z**2, axis=-1)
          - 0.5 * LOG_2PI * observed[:, None])
    return pt.logsumexp(lp, axis=1)
