"""numba kernels of the partition search: posterior expected Binder and VI losses.

Both losses are functions of the contingency table of the candidate partition ``c`` against
each posterior draw's partition ``z_s``, so the search keeps, per draw, the table
``T[s, k, l]`` (points in candidate cluster k and draw cluster l) and never an N x N matrix.
A label -1 in a draw means that the point is a cluster of its own in that draw (a point the
noise component took): its cell of the table holds 1, it enters no other cell, and moving it
between candidate clusters changes only the candidate's cluster sizes.

With ``n_k`` the candidate's cluster sizes, ``m_l`` a draw's and ``n_kl`` the table,
``f(n) = n log n`` and N points:

- Binder (unit costs), as the fraction of the N (N - 1) / 2 pairs that the two partitions
  treat differently: ``(sum_k n_k^2 + sum_l m_l^2 - 2 sum_kl n_kl^2) / (N (N - 1))``;
- the variation of information (nats): ``(sum_k f(n_k) + sum_l f(m_l) - 2 sum_kl f(n_kl)) / N``.

Moving a point changes the loss by an amount that takes one pass over the draws per
candidate cluster; the search (SALSO's, Dahl, Johnson and Müller 2022) allocates the
points in a random order to their best cluster (sequential allocation), then sweeps over
them moving each to its best cluster until none moves, then tries to dissolve each cluster
and allocate its points again ("zealous" updates), keeping what lowers the loss.
"""

from __future__ import annotations

import numba
import numpy as np

BINDER, VI = 0, 1


def flog_table(n: int) -> np.ndarray:
    """``f(m) = m log m`` for m = 0 .. n + 1 (f(0) = f(1) = 0), looked up by the kernels."""
    m = np.arange(n + 2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m > 1, m * np.log(m), 0.0)


@numba.njit(cache=True)
def _remove(i, a, Z, T, sizes):
    s_n = Z.shape[0]
    for s in range(s_n):
        lab = Z[s, i]
        if lab >= 0:
            T[s, a, lab] -= 1
    sizes[a] -= 1


@numba.njit(cache=True)
def _add(i, b, Z, T, sizes):
    s_n = Z.shape[0]
    for s in range(s_n):
        lab = Z[s, i]
        if lab >= 0:
            T[s, b, lab] += 1
    sizes[b] += 1


@numba.njit(cache=True)
def _insertion_cost(fl, i, b, Z, T, sizes, kind):
    """The loss's change (times N for VI, times N (N - 1) / 2 for Binder) of adding i to b."""
    s_n = Z.shape[0]
    acc = 0.0
    nb = sizes[b]
    if kind == BINDER:
        for s in range(s_n):
            lab = Z[s, i]
            if lab >= 0:
                acc += T[s, b, lab]
        return nb - 2.0 * acc / s_n
    for s in range(s_n):
        lab = Z[s, i]
        if lab >= 0:
            t = T[s, b, lab]
            acc += fl[t + 1] - fl[t]
    return fl[nb + 1] - fl[nb] - 2.0 * acc / s_n


@numba.njit(cache=True)
def _best_cluster(fl, i, Z, T, sizes, kind):
    """The cheapest cluster for point i (not in any): an occupied one, or an empty one."""
    best, best_cost, empty = -1, np.inf, -1
    for b in range(sizes.shape[0]):
        if sizes[b] == 0:
            if empty < 0:
                empty = b
            continue
        cost = _insertion_cost(fl, i, b, Z, T, sizes, kind)
        if cost < best_cost - 1e-12:
            best, best_cost = b, cost
    # A new cluster costs 0 (nothing to share the point with).
    if empty >= 0 and (best < 0 or best_cost > 1e-12):
        return empty
    return best


@numba.njit(cache=True)
def _partial_loss(fl, Z, T, sizes, kind):
    """The candidate-dependent part of the expected loss, on the table's scale."""
    s_n = Z.shape[0]
    row = 0.0
    for k in range(sizes.shape[0]):
        row += sizes[k] * sizes[k] * 0.5 if kind == BINDER else fl[sizes[k]]
    joint = 0.0
    for s in range(s_n):
        for k in range(T.shape[1]):
            for lab in range(T.shape[2]):
                t = T[s, k, lab]
                joint += t * t if kind == BINDER else fl[t]
    return row - joint / s_n if kind == BINDER else row - 2.0 * joint / s_n


@numba.njit(cache=True)
def _tables(c, Z, capacity, n_labels):
    s_n, n = Z.shape
    T = np.zeros((s_n, capacity, n_labels), dtype=np.int32)
    sizes = np.zeros(capacity, dtype=np.int64)
    for i in range(n):
        if c[i] >= 0:
            _add(i, c[i], Z, T, sizes)
    return T, sizes


@numba.njit(cache=True)
def _sweeten(fl, c, Z, T, sizes, kind, order, max_sweeps):
    """Move points to their best cluster until none moves; returns the sweeps done."""
    for sweep in range(max_sweeps):
        moved = 0
        for i in order:
            a = c[i]
            _remove(i, a, Z, T, sizes)
            b = _best_cluster(fl, i, Z, T, sizes, kind)
            if b != a:
                # Stay unless the move is strictly better (no cycling on ties).
                if (_insertion_cost(fl, i, b, Z, T, sizes, kind)
                        < _insertion_cost(fl, i, a, Z, T, sizes, kind) - 1e-9):
                    moved += 1
                else:
                    b = a
            _add(i, b, Z, T, sizes)
            c[i] = b
        if moved == 0:
            return sweep + 1
    return max_sweeps


@numba.njit(cache=True)
def _zealous(fl, c, Z, T, sizes, kind, rng_order):
    """Dissolve each cluster of two or more points in turn and allocate its points again.

    The loss's change is summed move by move (no full recomputation, no copy of the
    tables); a dissolution that does not lower the loss is undone.
    """
    capacity = sizes.shape[0]
    # Members at the start of the pass, cluster by cluster, in the run's order.
    by_cluster = np.argsort(c[rng_order], kind="mergesort")
    members_all = rng_order[by_cluster]
    starts = np.zeros(capacity + 1, dtype=np.int64)
    for i in range(c.shape[0]):
        starts[c[i] + 1] += 1
    for k in range(capacity):
        starts[k + 1] += starts[k]
    improved = 0
    for k in range(capacity):
        if starts[k + 1] - starts[k] < 2:
            continue
        candidates = members_all[starts[k]:starts[k + 1]]
        members = candidates[c[candidates] == k]
        if members.size < 2:
            continue
        delta = 0.0
        for i in members:
            _remove(i, k, Z, T, sizes)
            delta -= _insertion_cost(fl, i, k, Z, T, sizes, kind)
            c[i] = -1
        for i in members:
            b = _best_cluster(fl, i, Z, T, sizes, kind)
            delta += _insertion_cost(fl, i, b, Z, T, sizes, kind)
            _add(i, b, Z, T, sizes)
            c[i] = b
        if delta < -1e-9:
            improved += 1
        else:
            for i in members:
                _remove(i, c[i], Z, T, sizes)
            for i in members:
                _add(i, k, Z, T, sizes)
                c[i] = k
    return improved


@numba.njit(cache=True)
def search(fl, Z, init, capacity, n_labels, kind, order, max_sweeps):
    """One run of the search from ``init`` (-1 entries: allocated sequentially in ``order``).

    Returns the labels and the candidate-dependent part of the loss.
    """
    c = init.copy()
    T, sizes = _tables(c, Z, capacity, n_labels)
    for i in order:
        if c[i] < 0:
            b = _best_cluster(fl, i, Z, T, sizes, kind)
            _add(i, b, Z, T, sizes)
            c[i] = b
    for _ in range(20):
        _sweeten(fl, c, Z, T, sizes, kind, order, max_sweeps)
        if _zealous(fl, c, Z, T, sizes, kind, order) == 0:
            break
    return c, _partial_loss(fl, Z, T, sizes, kind)


@numba.njit(cache=True)
def partial_losses(fl, candidates, Z, capacity, n_labels, kind):
    """The candidate-dependent loss of each row of ``candidates`` (labels 0 .. capacity-1)."""
    out = np.empty(candidates.shape[0])
    for r in range(candidates.shape[0]):
        T, sizes = _tables(candidates[r], Z, capacity, n_labels)
        out[r] = _partial_loss(fl, Z, T, sizes, kind)
    return out


@numba.njit(cache=True)
def mate_probability(c, Z, n_clusters):
    """Per point: the posterior probability that it shares a cluster with its estimate's mates.

    For a point in a cluster of m > 1 points, the mean over draws of the fraction of its
    m - 1 mates that the draw puts with it (the mean co-clustering probability with them);
    for a point alone, the mean fraction of the other points that the draw keeps apart
    from it.
    """
    s_n, n = Z.shape
    n_labels = 0
    for s in range(s_n):
        for i in range(n):
            if Z[s, i] + 1 > n_labels:
                n_labels = Z[s, i] + 1
    T, sizes = _tables(c, Z, n_clusters, max(n_labels, 1))
    col = np.zeros((s_n, max(n_labels, 1)), dtype=np.int64)
    for s in range(s_n):
        for i in range(n):
            if Z[s, i] >= 0:
                col[s, Z[s, i]] += 1
    out = np.empty(n)
    for i in range(n):
        a = c[i]
        acc = 0.0
        for s in range(s_n):
            lab = Z[s, i]
            if sizes[a] > 1:
                if lab >= 0:
                    acc += (T[s, a, lab] - 1) / (sizes[a] - 1)
            elif n > 1:
                together = 0 if lab < 0 else col[s, lab] - 1
                acc += 1.0 - together / (n - 1)
            else:
                acc += 1.0
        out[i] = acc / s_n
    return out
