"""Choosing the number of components K.

:func:`select_components` fits K = min..max and compares the fits by PSIS-LOO (ArviZ): the
expected log predictive density of a new point, with standard errors, and the Pareto k
diagnostic of every point (values above ArviZ's threshold mean LOO is unreliable for that
point). EM's BIC and AIC for the same K are shown beside it, for reference.

The rule it suggests: the smallest K whose ELPD is within two standard errors of the
difference from the best K (a larger K must earn its extra parameters).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._validation import check_data, check_positive_int

__all__ = ["select_components", "Selection"]


@dataclass
class Selection:
    """The result of :func:`select_components`.

    Attributes
    ----------
    table : pandas.DataFrame
        Index ``n_components``; columns ``elpd_loo`` and its ``se``, ``p_loo`` (effective
        number of parameters), ``elpd_diff`` and ``dse`` (difference from the best K and
        its standard error, paired over points), ``n_bad_pareto_k`` and ``max_pareto_k``,
        ``bic_em`` and ``aic_em`` (EM fits, lower is better), ``seconds``.
    best : int
        The suggested K (see the module documentation).
    fits : dict of int to BayesianGMM
    """

    table: pd.DataFrame
    best: int
    fits: dict = field(repr=False, default_factory=dict)

    def __str__(self) -> str:
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            body = self.table.round(2).to_string()
        lines = [f"Choosing K by PSIS-LOO (higher elpd_loo is better); suggested K = {self.best}",
                 body]
        bad = self.table["n_bad_pareto_k"]
        if (bad > 0).any():
            lines.append(f"  Pareto k above the threshold for some points at K = "
                         f"{bad[bad > 0].index.tolist()}: LOO is less reliable there.")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def select_components(X, max_components: int, *, min_components: int = 1,
                      method: str = "nuts", n_se: float = 2.0, random_state=None,
                      **fit_kwargs) -> Selection:
    """Fit K = ``min_components`` .. ``max_components`` and compare them by PSIS-LOO.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
    max_components : int
    min_components : int, default 1
    method : str, default "nuts"
        Fitting method (see :func:`bayesgmm.fit`); LOO needs posterior draws, so not "map".
    n_se : float, default 2.0
        A larger K is suggested only when it beats every smaller one by more than this many
        standard errors of the difference.
    random_state : int, optional
        Seed; every K gets the same one.
    **fit_kwargs
        Passed to :class:`bayesgmm.BayesianGMM` (draws, tune, chains, priors, ...).

    Returns
    -------
    Selection
        Printing it shows the table.

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
    import arviz_stats as azs

    from .baselines import fit_em
    from .estimator import BayesianGMM

    hi = check_positive_int(max_components, "max_components")
    lo = check_positive_int(min_components, "min_components")
    if lo > hi:
        raise ValueError(f"min_components ({lo}) must not exceed max_components ({hi}).")
    if method == "map":
        raise ValueError("LOO needs posterior draws: use method='nuts', 'advi' or "
                         "'fullrank_advi', not 'map'.")
    X, names = check_data(X, n_components=hi)
    rows, fits, pointwise = [], {}, {}
    for k in range(lo, hi + 1):
        t0 = time.perf_counter()
        model = BayesianGMM(k, method=method, random_state=random_state, **fit_kwargs).fit(X)
        seconds = time.perf_counter() - t0
        with warnings.catch_warnings():
            # ArviZ warns about high Pareto k; the table reports them.
            warnings.filterwarnings("ignore", message=".*Pareto.*")
            warnings.filterwarnings("ignore", message=".*pareto.*")
            loo = azs.loo(model.idata_)
        k_hat = np.asarray(loo.pareto_k).ravel()
        em = fit_em(X, k, random_state=random_state)
        fits[k] = model
        pointwise[k] = np.asarray(loo.elpd_i).ravel()
        rows.append({"n_components": k, "elpd_loo": float(loo.elpd), "se": float(loo.se),
                     "p_loo": float(loo.p), "n_bad_pareto_k": int((k_hat > loo.good_k).sum()),
                     "max_pareto_k": float(k_hat.max()), "bic_em": em.bic, "aic_em": em.aic,
                     "seconds": seconds})
    table = pd.DataFrame(rows).set_index("n_components")
    best_k = int(table["elpd_loo"].idxmax())
    diffs, dses = [], []
    for k in table.index:
        d = pointwise[k] - pointwise[best_k]
        diffs.append(float(d.sum()))
        dses.append(float(np.sqrt(d.size * d.var())))
    table.insert(3, "elpd_diff", diffs)
    table.insert(4, "dse", dses)
    # Smallest K not worse than the best by more than n_se standard errors.
    suggested = int(next(k for k in table.index
                         if table.loc[k, "elpd_diff"] >= -n_se * table.loc[k, "dse"]))
    return Selection(table=table, best=suggested, fits=fits)
