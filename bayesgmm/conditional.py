"""Conditioning a fitted mixture on what is known: imputation and mixture regression.

For every posterior draw, the distribution of some coordinates given the others is again a
Gaussian mixture (:mod:`bayesgmm.likelihood.conditional`). Two uses:

- :func:`impute`: the missing entries of each row given its observed ones. Per posterior
  draw, a component is drawn from the row's responsibilities (computed from its observed
  entries), then the missing entries from that component's conditional normal. The draws
  carry both the noise of the data and the uncertainty about the parameters, so their
  intervals are honest where a single imputation (a mean, or EM's) understates it.
- :func:`conditional`: ``p(x_a | x_b = v)`` for chosen given features ``b`` at given
  values ``v``, per draw (weights, means, covariances), with the regression function
  ``E[x_a | x_b = v]`` and its credible interval, and predictive draws and intervals:
  Gaussian-mixture regression with uncertainty.

Both take a fitted :class:`bayesgmm.BayesianGMM` or a result of :func:`bayesgmm.fit`, and
return an ``xarray.DataTree``; seeds are passed to every random step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .fitting.result import (
    as_tree,
    checked_data,
    feature_names_in,
    known_labels,
    thinned_draws,
    with_known_labels,
)
from .likelihood.conditional import conditional_mixture, sample_mixture
from .likelihood.missing import missingness_patterns
from .validation import check_data, check_positive_int

__all__ = ["impute", "conditional"]

_MAX_ELEMENTS = 50_000_000  # 400 MB of doubles: as bayesgmm.assignments
_CHUNK_ELEMENTS = 4_000_000  # per intermediate array, working through the draws


def _check_prob(interval_prob) -> float:
    prob = float(interval_prob)
    if not 0.0 < prob < 1.0:
        raise ValueError(f"interval_prob must lie strictly between 0 and 1, got "
                         f"{interval_prob!r}.")
    return prob


#: A point estimate (MAP: one draw) is repeated this many times, so that its imputations and
#: predictive draws have a spread and intervals (those of the conditional distribution).
POINT_ESTIMATE_DRAWS = 1000


def _draws(post, max_draws):
    """Weights (S, K), means (S, K, D), covariances (S, K, D, D), and their coordinates.

    ``max_draws`` thins evenly (see :func:`~bayesgmm.fitting.result.thinned_draws`); a
    posterior of one draw is repeated :data:`POINT_ESTIMATE_DRAWS` times.
    """
    if "dof" in post:
        raise NotImplementedError(
            "impute and conditional do not handle Student-t components yet (a t "
            "component's conditional is a t with more degrees of freedom and a scale that "
            "depends on the given values): use a fit with component='gaussian' for them.")
    if "noise_weight" in post:
        raise NotImplementedError(
            "impute and conditional do not handle a noise component yet (the noise's "
            "conditional is uniform over the rest of its region, and it changes which "
            "component the given values come from): use a fit without noise for them.")
    c, s = post.sizes["chain"], post.sizes["draw"]
    if max_draws is not None:
        max_draws = check_positive_int(max_draws, "max_draws")
    keep = np.arange(s) if max_draws is None else thinned_draws(s, c, max_draws)
    sub = post.isel(draw=keep)
    k, d = post.sizes["component"], post.sizes["feature"]
    w = sub["weights"].to_numpy().reshape(-1, k)
    m = sub["means"].to_numpy().reshape(-1, k, d)
    cov = sub["covariances"].to_numpy().reshape(-1, k, d, d)
    coords = {"chain": post["chain"].to_numpy(), "draw": post["draw"].to_numpy()[keep]}
    if w.shape[0] == 1:
        reps = POINT_ESTIMATE_DRAWS
        w, m, cov = (np.repeat(a, reps, axis=0) for a in (w, m, cov))
        coords["draw"] = np.arange(reps)
    return w, m, cov, coords


def _moments(cw, cm, cc):
    """Mean (S, N, A) and variance (S, N, A) of each draw's conditional mixture.

    The variance is taken about each draw's own mean, so that nothing cancels when the data
    sit far from zero.
    """
    mean = np.einsum("snk,skna->sna", cw, cm)
    spread = np.diagonal(cc, axis1=-2, axis2=-1)[:, :, None, :] \
        + (cm - mean[:, None, :, :]) ** 2  # (S, K, N, A)
    return mean, np.einsum("snk,skna->sna", cw, spread)


def _pooled(means, variances):
    """Posterior predictive mean and sd from per-draw means and variances (axis 0)."""
    mean = means.mean(axis=0)
    return mean, np.sqrt(variances.mean(axis=0) + means.var(axis=0))


def _draw_steps(n_draws: int, per_draw: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, per_draw))
    return [slice(i, min(n_draws, i + step)) for i in range(0, n_draws, step)]


def _row_labels(X, n: int) -> np.ndarray:
    index = getattr(X, "index", None)  # a frame's index (a list's .index is a method)
    if index is not None and not callable(index) and len(index) == n:
        return np.asarray(index)
    return np.arange(n)


def _intervals(draws: np.ndarray, prob: float, axis: int = 0):
    tail = (1.0 - prob) / 2.0
    lower, upper = np.quantile(draws, [tail, 1.0 - tail], axis=axis)
    return lower, upper


def impute(fitted, X=None, *, max_draws: int | None = None, interval_prob: float = 0.9,
           random_state=0) -> xr.DataTree:
    """Posterior draws of the missing entries of ``X`` given its observed entries.

    For each posterior draw s and each row with missing entries: a component is drawn
    with the row's probabilities P(z = k | x_observed, theta_s), then the missing entries
    from that component's normal conditional on the observed ones. One imputation per
    posterior draw; the draws are multiple imputations, each a complete data set.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like or data frame of shape (N, D), optional
        Rows with missing entries (NaN, or a frame's nulls). Default: the fitted data.
    max_draws : int, optional
        Use at most this many posterior draws, spread evenly over each chain (at least one
        per chain). Default: all. A point estimate (MAP, one draw) is repeated
        :data:`POINT_ESTIMATE_DRAWS` times, so its imputations still have a spread.
    interval_prob : float, default 0.9
        Mass of the equal-tailed intervals in the summary (quantiles of the draws).
    random_state : int or numpy.random.Generator, default 0
        Seed of the component and normal draws; the same seed gives the same draws.

    Returns
    -------
    xarray.DataTree
        - ``posterior_predictive``: ``x`` (chain, draw, entry), the imputed values; the
          entry coordinates ``row`` (the frame's index label, else the row number) and
          ``column`` (the feature name) say which entry each is.
        - ``summary``: ``mean`` and ``sd`` per entry (exact: from each draw's conditional
          mixture, by the law of total variance), ``lower``, ``upper`` (quantiles of the
          draws); ``tree["summary"].to_dataset().to_dataframe()`` gives a table.
        - ``completed``: ``x`` (obs, feature), ``X`` with the posterior means filled in.

        On the fitted data (``X`` None) of a fit with known labels, a labelled row is
        imputed from its own component.

    Raises
    ------
    ValueError
        If ``X`` has no missing entry (there is nothing to impute).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from bayesgmm import DataWarning, fit, impute
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 200)
    >>> X[:20, 1] = np.nan
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DataWarning)  # it says 20 entries are missing
    ...     fitted = fit(X, 1, method="map", random_state=0)
    >>> imp = impute(fitted, random_state=0)
    >>> imp["posterior_predictive"]["x"].sizes["entry"]
    20
    >>> table = imp["summary"].to_dataset().to_dataframe()
    >>> list(table.columns)
    ['mean', 'sd', 'lower', 'upper', 'row', 'column']
    >>> int(table["row"][0]), table["column"][0]
    (0, 'x1')
    """
    tree = as_tree(fitted)
    prob = _check_prob(interval_prob)
    codes = known_labels(tree) if X is None else None
    values = checked_data(tree, X)
    rows = _row_labels(X, values.shape[0]) if X is not None else np.arange(values.shape[0])
    holes = np.isnan(values)
    if not holes.any():
        raise ValueError("X has no missing entries (NaN or nulls), so there is nothing to "
                         "impute; pass rows with missing entries.")
    post = tree["posterior"]
    w, m, c, sample_coords = _draws(post, max_draws)
    n_samples, k = w.shape
    entries = np.argwhere(holes)  # row-major: (row, column) pairs
    if 3 * n_samples * entries.shape[0] > _MAX_ELEMENTS:
        raise MemoryError(
            f"Imputing {entries.shape[0]} entries with {n_samples} draws takes "
            f"{3 * n_samples * entries.shape[0] * 8 / 1e9:.1f} GB; pass max_draws (e.g. "
            f"max_draws=200) or fewer rows.")
    position = np.full(values.shape, -1)
    position[holes] = np.arange(entries.shape[0])
    out = np.empty((n_samples, entries.shape[0]))
    cond_mean, cond_var = np.empty_like(out), np.empty_like(out)
    rng = np.random.default_rng(random_state)
    for p in missingness_patterns(values):
        target = np.setdiff1d(np.arange(values.shape[1]), p.observed)
        if target.size == 0:
            continue
        given_values = values[np.ix_(p.rows, p.observed)]
        slots = position[np.ix_(p.rows, target)]  # (n, A)
        per_draw = k * p.rows.size * (target.size + p.observed.size + target.size ** 2)
        for sl in _draw_steps(n_samples, per_draw):
            cw, cm, cc = conditional_mixture(given_values, w[sl], m[sl], c[sl], p.observed,
                                             target)
            if codes is not None:  # the fitted rows' known components are certain
                cw = with_known_labels(cw, codes[p.rows])
            out[sl][:, slots] = sample_mixture(rng, cw, cm, cc)
            cond_mean[sl][:, slots], cond_var[sl][:, slots] = _moments(cw, cm, cc)
    names = [str(f) for f in post["feature"].to_numpy()]
    shape = (sample_coords["chain"].size, sample_coords["draw"].size)
    entry_coords = {"entry": np.arange(entries.shape[0]), "row": ("entry", rows[entries[:, 0]]),
                    "column": ("entry", np.asarray(names, dtype=object)[entries[:, 1]])}
    draws = xr.DataArray(out.reshape(*shape, -1), dims=("chain", "draw", "entry"),
                         coords={**sample_coords, **entry_coords})
    lower, upper = _intervals(out, prob)
    mean, sd = _pooled(cond_mean, cond_var)
    summary = xr.Dataset(
        {"mean": ("entry", mean), "sd": ("entry", sd),
         "lower": ("entry", lower), "upper": ("entry", upper)},
        coords=entry_coords, attrs={"interval_prob": prob, "n_draws": n_samples})
    completed = values.copy()
    completed[holes] = mean
    completed_ds = xr.Dataset({"x": (("obs", "feature"), completed)},
                              coords={"obs": rows, "feature": names})
    return xr.DataTree.from_dict({
        "posterior_predictive": xr.Dataset({"x": draws}),
        "summary": summary,
        "completed": completed_ds,
    })


def _given_indices(given, X_given, names: list[str], named_fit: bool) -> np.ndarray:
    d = len(names)
    from_argument = given is not None
    if given is None:
        columns = getattr(X_given, "columns", None)
        if columns is None or not named_fit:
            raise ValueError("Say which features X_given holds: pass given=[names or column "
                             "indices], one per column of X_given.")
        given = [str(col) for col in columns]
    if isinstance(given, (str, int, np.integer)):
        given = [given]
    out = []
    for g in given:
        if isinstance(g, (int, np.integer)) and not isinstance(g, bool):
            if not -d <= int(g) < d:
                raise ValueError(f"given has index {g}, but the fit has {d} features.")
            out.append(int(g) % d)
        elif str(g) in names:
            out.append(names.index(str(g)))
        else:
            source = "given names" if from_argument else "X_given has the column"
            raise ValueError(f"{source} {g!r}, which is not a feature of the fit; its "
                             f"features are {names}.")
    index = np.asarray(out, dtype=int)
    if np.unique(index).size != index.size:
        raise ValueError(f"given names a feature twice: {list(given)}.")
    if index.size == d:
        raise ValueError("given names every feature, leaving nothing to predict; leave at "
                         "least one feature out.")
    columns = getattr(X_given, "columns", None)
    if columns is not None and named_fit and all(isinstance(col, str) for col in columns):
        have, want = [str(col) for col in columns], [names[j] for j in index]
        if have != want:
            how = (f"pass X_given[{want}] so that each column is the feature it names"
                   if sorted(have) == sorted(want) else
                   f"its columns must be the given features, {want}, in that order")
            raise ValueError(f"X_given has columns {have}, but given is {want}: {how}.")
    return index


def conditional(fitted, X_given, given: Sequence | None = None, *,
                max_draws: int | None = None, interval_prob: float = 0.9,
                random_state=0) -> xr.DataTree:
    """The posterior of ``p(x_a | x_b = v)``: Gaussian-mixture regression with uncertainty.

    For each posterior draw, conditioning the mixture on the features ``b`` (``given``) at
    the values ``v`` (the rows of ``X_given``) gives a mixture over the other features
    ``a``: weights P(k | x_b = v), means linear in ``v``, and covariances that do not depend
    on ``v``. Its mean E[x_a | x_b = v] is the regression function of that draw; over the
    draws, its spread is the uncertainty about the regression, and draws from the mixtures
    give the predictive distribution of a new ``x_a``.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X_given : array-like or data frame of shape (N, B)
        Values of the given features, one column per entry of ``given``, in that order.
        They must be finite.
    given : sequence of str or int, optional
        The given features, by name or position. Default: the columns of ``X_given`` when
        it is a data frame and the fit saw feature names.
    max_draws : int, optional
        Use at most this many posterior draws, spread evenly over each chain. Default: all;
        when the per-draw conditional means would take more than 400 MB, a MemoryError
        says to pass it.
    interval_prob : float, default 0.9
        Mass of the equal-tailed intervals in the summary.
    random_state : int or numpy.random.Generator, default 0
        Seed of the predictive draws.

    Returns
    -------
    xarray.DataTree
        - ``posterior``: the conditional mixture of every draw, ``weights`` (chain, draw,
          obs, component), ``means`` (chain, draw, obs, component, feature) and
          ``covariances`` (chain, draw, component, feature, feature_bis), over the
          predicted features ``a``.
        - ``predictions``: ``mean`` (chain, draw, obs, feature), E[x_a | x_b = v] per draw.
        - ``posterior_predictive``: ``x`` (chain, draw, obs, feature), one draw of x_a from
          each draw's conditional mixture.
        - ``summary``: per (obs, feature), ``mean`` (the posterior predictive mean),
          ``mean_lower``/``mean_upper`` (credible interval of the regression function),
          ``sd`` (predictive standard deviation, exact by the law of total variance) and
          ``lower``/``upper`` (predictive interval, quantiles of the predictive draws).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import conditional, fit
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.8], [0.8, 1]], 300)
    >>> reg = conditional(fit(X, 1, method="map", random_state=0), [[1.0], [-1.0]], given=[0])
    >>> reg["summary"]["mean"].round(1).values.ravel().tolist()
    [0.8, -0.8]
    """
    tree = as_tree(fitted)
    prob = _check_prob(interval_prob)
    post = tree["posterior"]
    names = [str(f) for f in post["feature"].to_numpy()]
    b = _given_indices(given, X_given, names, feature_names_in(tree) is not None)
    a = np.setdiff1d(np.arange(len(names)), b)
    width = np.shape(X_given)[1] if np.ndim(X_given) == 2 else None
    if width is not None and width != b.size:
        raise ValueError(f"X_given has {width} column(s), but given names {b.size} "
                         f"feature(s), {[names[j] for j in b]}: pass one column per given "
                         f"feature, in that order.")
    v = check_data(X_given, name="X_given", n_features=b.size)[0]
    n = v.shape[0]
    k = post.sizes["component"]
    w, m, cov, sample_coords = _draws(post, max_draws)
    n_samples = w.shape[0]
    if n_samples * n * k * a.size > _MAX_ELEMENTS:
        raise MemoryError(
            f"The conditional means for {n_samples} draws x {n} points x {k} components x "
            f"{a.size} features take {n_samples * n * k * a.size * 8 / 1e9:.1f} GB; pass "
            f"max_draws (e.g. max_draws=200) or fewer points.")
    cw = np.empty((n_samples, n, k))
    cm = np.empty((n_samples, k, n, a.size))
    cc = np.empty((n_samples, k, a.size, a.size))
    predictive = np.empty((n_samples, n, a.size))
    rng = np.random.default_rng(random_state)
    for sl in _draw_steps(n_samples, k * n * (a.size + b.size + a.size ** 2)):
        cw[sl], cm[sl], cc[sl] = conditional_mixture(v, w[sl], m[sl], cov[sl], b, a)
        predictive[sl] = sample_mixture(rng, cw[sl], cm[sl], cc[sl])
    # E[x_a | v] and Var[x_a | v] per draw; over draws, the law of total variance.
    reg, var = _moments(cw, cm, cc)
    mean, sd = _pooled(reg, var)
    mean_lower, mean_upper = _intervals(reg, prob)
    lower, upper = _intervals(predictive, prob)
    target_names = [names[j] for j in a]
    shape = (sample_coords["chain"].size, sample_coords["draw"].size)
    coords = {**sample_coords, "obs": np.arange(n),
              "component": post["component"].to_numpy(), "feature": target_names,
              "feature_bis": target_names}
    posterior = xr.Dataset(
        {"weights": (("chain", "draw", "obs", "component"), cw.reshape(*shape, n, k)),
         "means": (("chain", "draw", "obs", "component", "feature"),
                   np.swapaxes(cm, 1, 2).reshape(*shape, n, k, a.size)),
         "covariances": (("chain", "draw", "component", "feature", "feature_bis"),
                         cc.reshape(*shape, k, a.size, a.size))},
        coords=coords, attrs={"given": [names[j] for j in b]})
    given_values = xr.DataArray(v, dims=("obs", "given"),
                                coords={"obs": np.arange(n), "given": [names[j] for j in b]})
    sample_dims = ("chain", "draw", "obs", "feature")
    summary_coords = {"obs": np.arange(n), "feature": target_names}
    return xr.DataTree.from_dict({
        "posterior": posterior,
        "predictions": xr.Dataset({"mean": (sample_dims, reg.reshape(*shape, n, a.size))},
                                  coords={k_: coords[k_] for k_ in
                                          ("chain", "draw", "obs", "feature")}),
        "posterior_predictive": xr.Dataset(
            {"x": (sample_dims, predictive.reshape(*shape, n, a.size))},
            coords={k_: coords[k_] for k_ in ("chain", "draw", "obs", "feature")}),
        "summary": xr.Dataset(
            {"mean": (("obs", "feature"), mean), "sd": (("obs", "feature"), sd),
             "mean_lower": (("obs", "feature"), mean_lower),
             "mean_upper": (("obs", "feature"), mean_upper),
             "lower": (("obs", "feature"), lower), "upper": (("obs", "feature"), upper)},
            coords=summary_coords, attrs={"interval_prob": prob, "n_draws": n_samples}),
        "constant_data": xr.Dataset({"x_given": given_values}),
    })
