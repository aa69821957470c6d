"""Label permutations: find and apply the component order that makes draws agree.

Two algorithms: pivot relabelling (below) and Stephens' (2000) Kullback-Leibler algorithm
on the per-draw responsibilities, :func:`stephens_permutations`, which needs no reference.
They work on arrays; :func:`bayesgmm.relabel.relabel` applies them to a fit.

The mixture posterior is invariant to permuting the components, so chains can sit in
different permutations and draws can swap labels. Pivot relabelling matches every draw to a
reference solution (here, the EM start the chains came from) by the Hungarian algorithm on
the Kullback-Leibler divergence between each drawn Gaussian and each reference Gaussian.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["gaussian_kl_cost", "pivot_permutations", "apply_permutations",
           "apply_permutations_last", "stephens_permutations"]


def gaussian_kl_cost(means: np.ndarray, covariances: np.ndarray, ref_means: np.ndarray,
                     ref_covariances: np.ndarray) -> np.ndarray:
    """KL(N(mean_j, cov_j) || N(ref_mean_k, ref_cov_k)) for every draw and pair (j, k).

    Parameters
    ----------
    means : ndarray of shape (S, K, D)
    covariances : ndarray of shape (S, K, D, D)
    ref_means : ndarray of shape (K, D)
    ref_covariances : ndarray of shape (K, D, D)

    Returns
    -------
    ndarray of shape (S, K, K): cost[s, j, k] for draw component j against reference k.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[[0.0], [5.0]]]); c = np.ones((1, 2, 1, 1))
    >>> np.round(gaussian_kl_cost(m, c, m[0], c[0])[0], 6)
    array([[ 0. , 12.5],
           [12.5,  0. ]])
    """
    d = means.shape[-1]
    ref_prec = np.linalg.inv(ref_covariances)  # (K, D, D)
    _, ref_logdet = np.linalg.slogdet(ref_covariances)  # (K,)
    _, logdet = np.linalg.slogdet(covariances)  # (S, K)
    trace = np.einsum("kab,sjba->sjk", ref_prec, covariances)
    diff = ref_means[None, None, :, :] - means[:, :, None, :]  # (S, j, k, D)
    maha = np.einsum("sjka,kab,sjkb->sjk", diff, ref_prec, diff)
    return 0.5 * (trace + maha - d + ref_logdet[None, None, :] - logdet[:, :, None])


def pivot_permutations(cost: np.ndarray) -> np.ndarray:
    """Per-draw permutations minimising a (S, K, K) cost by the Hungarian algorithm.

    Returns ``perm`` of shape (S, K) such that ``x[s, perm[s]]`` puts draw ``s`` in the
    reference order (``perm[s, k]`` is the draw component matched to reference ``k``).

    Examples
    --------
    >>> import numpy as np
    >>> cost = np.array([[[5.0, 0.0], [0.0, 5.0]]])
    >>> pivot_permutations(cost)
    array([[1, 0]])
    """
    s, k, _ = cost.shape
    perm = np.empty((s, k), dtype=np.int64)
    for i in range(s):
        rows, cols = linear_sum_assignment(cost[i])
        perm[i, cols] = rows
    return perm


def apply_permutations(values: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 1, after the draw axis) of ``values`` by ``perm``.

    ``values`` has shape (S, K, ...) and ``perm`` shape (S, K).
    """
    idx = perm.reshape(perm.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, idx, axis=1)


def stephens_permutations(responsibilities: np.ndarray, *, init=None,
                          max_iter: int = 100) -> tuple[np.ndarray, int]:
    """Stephens' (2000) KL relabelling algorithm on per-draw responsibilities.

    Alternates between (1) the mean relabelled classification matrix
    ``Q[n, k] = mean_s p[s, n, perm_s[k]]`` and (2) for every draw, the permutation that
    minimises the Kullback-Leibler divergence ``sum_n sum_k p log(p / Q)``, found by the
    Hungarian algorithm, until no permutation changes. Each step lowers the total divergence,
    so it stops in a few iterations.

    Parameters
    ----------
    responsibilities : ndarray of shape (S, N, K)
        P(z_n = k | x_n, theta_s) for every draw s.
    init : ndarray of shape (S, K), optional
        Starting permutations (for example from pivot relabelling); identity by default.
    max_iter : int, default 100

    Returns
    -------
    perm : ndarray of shape (S, K)
        Same convention as :func:`pivot_permutations`: ``x[s, perm[s]]`` is relabelled.
    n_iter : int
        Iterations used.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.1], [0.2, 0.8]],    # draw 0
    ...               [[0.1, 0.9], [0.7, 0.3]],    # draw 1: the same, labels swapped
    ...               [[0.8, 0.2], [0.1, 0.9]]])   # draw 2
    >>> perm, _ = stephens_permutations(p)
    >>> perm
    array([[0, 1],
           [1, 0],
           [0, 1]])
    """
    p = np.asarray(responsibilities, dtype=float)
    s, _, k = p.shape
    perm = np.tile(np.arange(k), (s, 1)) if init is None else np.array(init, dtype=np.int64)
    eps = 1e-300
    for it in range(1, max_iter + 1):
        q = apply_permutations_last(p, perm).mean(axis=0)  # (N, K)
        cost = -np.einsum("snj,nk->sjk", p, np.log(q + eps), optimize=True)
        new = pivot_permutations(cost)
        if np.array_equal(new, perm):
            return perm, it
        perm = new
    return perm, max_iter


def apply_permutations_last(values: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Reorder the last (component) axis of ``values`` (S, ..., K) by ``perm`` (S, K)."""
    idx = perm.reshape((perm.shape[0],) + (1,) * (values.ndim - 2) + (perm.shape[1],))
    return np.take_along_axis(values, idx, axis=-1)
