"""Compare Bayesian posterior assignments with a point estimate (EM, gradient ML) or another fit.

:func:`compare_assignments` matches the other fit's components to the Bayesian ones (so the
result does not depend on how either labels its components), then compares the assignment
probabilities point by point and summarises the differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import linear_sum_assignment

from .assignments import assignment_summary
from .estimator import BayesianGMM, as_estimator
from .validation import check_data

__all__ = ["compare_assignments", "AssignmentComparison"]


@dataclass
class AssignmentComparison:
    """The result of :func:`compare_assignments`.

    Attributes
    ----------
    points : pandas.DataFrame
        One row per point: ``label_bayes``, ``p_bayes`` (posterior mean probability of
        that label) with ``p_bayes_lower``/``p_bayes_upper`` (HDI over the draws),
        ``label_other`` (in the Bayesian numbering, after matching), ``p_other`` (the
        other's probability of the Bayesian label), ``max_abs_diff`` (largest
        |P_bayes - P_other| over components), ``disagree`` (labels differ), and
        ``confident_other_not_bayes`` (the other is > ``confident`` sure, the posterior is
        not).
    metrics : dict
        ``matching`` (other's component -> Bayesian component), ``agreement`` (fraction
        of equal labels), ``ari`` (adjusted Rand index between the two), ``ari_bayes_true``
        and ``ari_other_true`` (with ``y_true``), ``mean_abs_diff`` and ``max_abs_diff``
        (of the probabilities), ``n_confident_other_not_bayes``, ``n_confident_bayes_not_other``,
        ``test_lpd_bayes`` and ``test_lpd_other`` (mean held-out log predictive density per
        point on ``X_test``).
    names : tuple of str
        How the two fits are called in the report.
    """

    points: pd.DataFrame
    metrics: dict
    names: tuple[str, str] = field(default=("Bayes", "other"))

    def __str__(self) -> str:
        m = self.metrics
        bayes, other = self.names
        n = len(self.points)
        lines = [
            f"Assignments: {bayes} vs {other} on {n} points",
            f"  component matching ({other} -> {bayes}): {m['matching']}",
            f"  label agreement: {m['agreement']:.1%}  ({int(self.points['disagree'].sum())} "
            f"points differ)",
            f"  adjusted Rand index between them: {m['ari']:.3f}",
        ]
        if m.get("ari_bayes_true") is not None:
            lines.append(f"  ARI vs true labels: {bayes} {m['ari_bayes_true']:.3f}, "
                         f"{other} {m['ari_other_true']:.3f}")
        lines += [
            f"  |P_{bayes} - P_{other}|: mean {m['mean_abs_diff']:.4f}, max "
            f"{m['max_abs_diff']:.4f}",
            f"  {other} confident (> {m['confident']:.0%}) but {bayes} not: "
            f"{m['n_confident_other_not_bayes']} points; the reverse: "
            f"{m['n_confident_bayes_not_other']}",
        ]
        if m.get("test_lpd_bayes") is not None:
            lines.append(f"  held-out log predictive density per point: {bayes} "
                         f"{m['test_lpd_bayes']:.4f}, {other} {m['test_lpd_other']:.4f}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


def _describe(fitted) -> str:
    method = getattr(fitted, "method", None)
    if isinstance(method, str):
        return {"em": "EM", "ml_gradient": "gradient ML"}.get(method, f"Bayes ({method})")
    return type(fitted).__name__


def compare_assignments(model, other, X, y_true=None, X_test=None, *, confident: float = 0.9,
                        hdi_prob: float = 0.94) -> AssignmentComparison:
    """Compare a Bayesian fit's assignments with another fit's, point by point.

    Parameters
    ----------
    model : BayesianGMM or xarray.DataTree
        A Bayesian fit (a fitted estimator, or the result of :func:`bayesgmm.fit`).
    other : PointEstimate, BayesianGMM or xarray.DataTree
        The fit to compare with (for example :func:`bayesgmm.ml.fit_em`), with the
        same number of components, and a noise component if ``model`` has one (compare a
        fit with ``noise=True`` with ``fit_em(..., noise=True)``): the noise is then one
        more assignment (label -1), matched to the other's noise.
    X : array-like of shape (N, D)
        Points to compare the assignments on.
    y_true : array-like of shape (N,), optional
        True labels: adds each fit's adjusted Rand index against them.
    X_test : array-like, optional
        Held-out points: adds each fit's mean log predictive density on them (for the
        Bayesian fit, the posterior predictive density; for a point estimate, its density).
    confident : float, default 0.9
        Threshold for "confident" assignments.
    hdi_prob : float, default 0.94
        Mass of the posterior interval of each point's probability.

    Returns
    -------
    AssignmentComparison
        Printing it gives a readable summary.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import BayesianGMM, compare_assignments
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 1)), rng.normal(3, 1, (40, 1))])
    >>> a = BayesianGMM(2, method="map", random_state=0).fit(X)
    >>> b = BayesianGMM(2, method="map", random_state=1).fit(X[::-1])
    >>> result = compare_assignments(a, b, X)
    >>> result.metrics["agreement"], round(result.metrics["ari"], 3)
    (1.0, 1.0)
    """
    from sklearn.metrics import adjusted_rand_score

    if not 0 < confident < 1:
        raise ValueError(f"confident must lie in (0, 1), got {confident!r}.")
    model = as_estimator(model)
    if isinstance(other, xr.DataTree):
        other = as_estimator(other)
    if not hasattr(other, "predict_proba"):
        raise TypeError("other must be a PointEstimate (bayesgmm.ml) or a fitted "
                        f"BayesianGMM, got {type(other).__name__}.")
    d = model.n_features_in_
    table = assignment_summary(model, X, hdi_prob=hdi_prob)  # checks X's columns by name
    X, _ = check_data(X, n_features=d, missing="marginalize")
    k = model.means_.shape[0]
    noise_b = "p_noise" in table.columns
    noise_o = getattr(other, "noise_weight", None) is not None or (
        isinstance(other, BayesianGMM) and hasattr(other, "noise_weight_"))
    if noise_b != noise_o:
        which = "the Bayesian fit" if noise_b else "the other fit"
        raise ValueError(f"Only {which} has a noise component, so the two do not compare "
                         f"like for like: fit both with noise (fit_em(X, k, noise=True) "
                         f"beside fit(..., noise=True)) or neither.")
    p_bayes = table[[f"p_{j}" for j in range(k)] + (["p_noise"] if noise_b else [])].to_numpy()
    p_other_raw = np.asarray(other.predict_proba(X), dtype=float)
    if p_other_raw.shape != p_bayes.shape:
        raise ValueError(f"Both fits need the same number of components: the Bayesian fit "
                         f"has {k}, the other {p_other_raw.shape[1] - noise_o}.")
    # Match components by how much probability mass the two fits put on the same points;
    # a noise component (the last column) is matched to the other's.
    overlap = p_bayes[:, :k].T @ p_other_raw[:, :k]  # (K_bayes, K_other)
    rows, cols = linear_sum_assignment(-overlap)
    matching = {int(c): int(r) for r, c in zip(rows, cols, strict=True)}
    p_other = np.empty_like(p_other_raw)
    for c_other, r_bayes in matching.items():
        p_other[:, r_bayes] = p_other_raw[:, c_other]
    if noise_b:
        p_other[:, k] = p_other_raw[:, k]

    label_b = p_bayes.argmax(axis=1)
    label_o = p_other.argmax(axis=1)
    if noise_b:  # the noise's label, as everywhere: -1
        label_b[label_b == k] = -1
        label_o[label_o == k] = -1
    idx = np.arange(X.shape[0])
    diff = np.abs(p_bayes - p_other)
    conf_o = p_other.max(axis=1) > confident
    conf_b = p_bayes.max(axis=1) > confident
    # (Label -1, the noise, indexes the last column, the noise's probability.)
    points = pd.DataFrame({
        "label_bayes": label_b,
        "p_bayes": p_bayes[idx, label_b],
        "p_bayes_lower": table["probability_lower"].to_numpy(),
        "p_bayes_upper": table["probability_upper"].to_numpy(),
        "label_other": label_o,
        "p_other": p_other[idx, label_b],
        "max_abs_diff": diff.max(axis=1),
        "disagree": label_b != label_o,
        "confident_other_not_bayes": conf_o & ~conf_b,
    }, index=pd.Index(idx, name="obs"))
    metrics = {
        "matching": matching,
        "agreement": float((label_b == label_o).mean()),
        "ari": float(adjusted_rand_score(label_b, label_o)),
        "ari_bayes_true": None,
        "ari_other_true": None,
        "mean_abs_diff": float(diff.mean()),
        "max_abs_diff": float(diff.max()),
        "confident": float(confident),
        "n_confident_other_not_bayes": int((conf_o & ~conf_b).sum()),
        "n_confident_bayes_not_other": int((conf_b & ~conf_o).sum()),
        "test_lpd_bayes": None,
        "test_lpd_other": None,
    }
    if y_true is not None:
        y = np.asarray(y_true)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y_true must have one label per row of X ({X.shape[0]}), got "
                             f"shape {y.shape}.")
        metrics["ari_bayes_true"] = float(adjusted_rand_score(y, label_b))
        metrics["ari_other_true"] = float(adjusted_rand_score(y, label_o))
    if X_test is not None:
        metrics["test_lpd_bayes"] = float(model.score_samples(X_test).mean())  # checks names
        X_test, _ = check_data(X_test, n_features=d, name="X_test", missing="marginalize")
        metrics["test_lpd_other"] = float(np.mean(other.score_samples(X_test)))
    return AssignmentComparison(points=points, metrics=metrics,
                                names=("Bayes", _describe(other)))
