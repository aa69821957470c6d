"""The prior on the number of non-empty components K+ implied by a Dirichlet concentration.

With K components, weights w ~ Dirichlet(gamma, ..., gamma) and N assignments drawn from
them, the probability of one set partition of the N points into k labelled blocks of sizes
n_1..n_k is Gamma(K gamma) / Gamma(N + K gamma) prod_j Gamma(n_j + gamma) / Gamma(gamma).
Summing over the set partitions into k blocks (the weighted Stirling numbers S_gamma(N, k),
with S(n + 1, k) = gamma S(n, k - 1) + (n + k gamma) S(n, k)) and over the K! / (K - k)!
ways to give the blocks components:

    P(K+ = k) = K! / (K - k)! * Gamma(K gamma) / Gamma(N + K gamma) * S_gamma(N, k),

the static case of Frühwirth-Schnatter, Malsiner-Walli and Grün (2021), what their fipp
package computes. The recursion runs in log space, N x K steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln, logsumexp

from ..validation import check_positive_int

__all__ = ["nonempty_prior"]


def nonempty_prior(n_obs: int, n_components: int, concentration: float) -> pd.Series:
    """P(K+ = k) a priori: how many of K components a Dirichlet(gamma) prior fills.

    Parameters
    ----------
    n_obs : int
        N, the number of points.
    n_components : int
        K.
    concentration : float
        gamma, the symmetric Dirichlet concentration.

    Returns
    -------
    pandas.Series
        Indexed by ``n_nonempty`` 1 .. min(N, K), summing to 1.

    Examples
    --------
    >>> from bayesgmm.clusters import nonempty_prior
    >>> p = nonempty_prior(100, 10, 0.01)
    >>> int(p.idxmax()), bool(abs(p.sum() - 1) < 1e-12)
    (1, True)
    """
    n = check_positive_int(n_obs, "n_obs")
    k_max = check_positive_int(n_components, "n_components")
    if not (isinstance(concentration, (int, float)) and concentration > 0
            and np.isfinite(concentration)):
        raise ValueError(f"concentration must be a positive number, got {concentration!r}.")
    g = float(concentration)
    top = min(n, k_max)
    ks = np.arange(1, top + 1)
    # log S(m, k) for k = 1..top; S(1, 1) = gamma.
    log_s = np.full(top, -np.inf)
    log_s[0] = np.log(g)
    log_g = np.log(g)
    for m in range(1, n):
        grow = np.log(m + ks * g) + log_s  # joins one of k blocks
        new = np.concatenate([[-np.inf], log_g + log_s[:-1]])  # opens block k
        log_s = np.logaddexp(grow, new)
    log_p = (gammaln(k_max + 1) - gammaln(k_max - ks + 1) + gammaln(k_max * g)
             - gammaln(n + k_max * g) + log_s)
    log_p -= logsumexp(log_p)  # rounding only: the terms sum to 1
    return pd.Series(np.exp(log_p), index=pd.Index(ks, name="n_nonempty"),
                     name="prior_probability")
