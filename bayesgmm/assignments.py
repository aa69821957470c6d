"""Posterior cluster assignments P(z_n = k | x_n) and their uncertainty.

Given parameters theta, Bayes' rule gives each point's responsibilities
``r[n, k] = w_k N(x_n | mu_k, Sigma_k) / sum_j w_j N(x_n | mu_j, Sigma_j)``. The posterior
adds uncertainty about theta: every draw gives its own responsibilities, and their
distribution over draws says how sure the assignment is. :func:`responsibilities` returns
them per draw, :func:`assignment_summary` summarises them per point, and
:func:`coclustering` gives the label-free P(z_i = z_j). :func:`log_likelihood` returns the
pointwise log p(x_n | theta) per draw, from the fit's ``log_likelihood`` group or computed
from the draws when the fit did not store it.

Every function takes a fitted :class:`bayesgmm.BayesianGMM` or a result of
:func:`bayesgmm.fit`, and the data ``X`` (default: the data it was fitted to).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .fitting.result import (
    as_tree,
    checked_data,
    feature_names_in,
    known_labels,
    log_likelihood_blocks,
    point_blocks,
    posterior_draws,
    sample_coords,
    thinned_draws,
    with_known_labels,
)
from .likelihood.predictive import PredictiveParameters, responsibility_draws
from .prediction import chunk_checker, dask_rows, is_chunk_iterator, is_dask_array
from .validation import check_positive_int

__all__ = ["responsibilities", "assignment_summary", "coclustering", "log_likelihood"]

_MAX_ELEMENTS = 50_000_000  # 400 MB of doubles
_COCLUSTER_BLOCK = 4_000_000  # responsibilities per block of draws in coclustering


def responsibilities(fitted, X=None, *, max_draws: int | None = None,
                     random_state=0) -> xr.DataArray:
    """P(z_n = k | x_n, theta) for every posterior draw.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like of shape (N, D), optional
        Points to assign (default: the fitted data).
    max_draws : int, optional
        Use at most this many draws, spread evenly over each chain (keeps
        chains x draws x N x K within memory for large N). Default: all draws, unless they
        would take more than 400 MB, in which case an error says what to pass.
    random_state : int, optional
        Unused (the thinning is deterministic); accepted for a uniform API.

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, obs, component), relabelled like the posterior. With a noise
        component, one more ``component``, -1, holds P(noise | x_n, theta).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.assignments import responsibilities
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 1)), rng.normal(3, 1, (40, 1))])
    >>> r = responsibilities(fit(X, 2, method="map", random_state=0))
    >>> r.dims, bool(np.allclose(r.sum("component"), 1.0))
    (('chain', 'draw', 'obs', 'component'), True)
    """
    result = as_tree(fitted)
    codes = known_labels(result) if X is None else None
    X = checked_data(result, X)
    obs = np.arange(X.shape[0])
    post = result["posterior"]
    c, s = post.sizes["chain"], post.sizes["draw"]
    names = _assignment_names(post)
    k = names.size
    if max_draws is not None:
        draws = thinned_draws(s, c, max_draws)
    else:
        if c * s * X.shape[0] * k > _MAX_ELEMENTS:
            raise MemoryError(
                f"Responsibilities for {c * s} draws x {X.shape[0]} points x {k} components "
                f"take {c * s * X.shape[0] * k * 8 / 1e9:.1f} GB; pass max_draws (e.g. "
                f"max_draws=200) or fewer points.")
        draws = np.arange(s)
    sub = post.isel(draw=draws)
    r = with_known_labels(responsibility_draws(X, PredictiveParameters(
        *posterior_draws(sub))), codes)
    r = r.reshape(c, draws.size, X.shape[0], k)
    return xr.DataArray(
        r, dims=("chain", "draw", "obs", "component"),
        coords={"chain": post["chain"].to_numpy(), "draw": post["draw"].to_numpy()[draws],
                "obs": obs, "component": names},
        name="responsibilities")


def _assignment_names(post) -> np.ndarray:
    """The components a point can be assigned to: the fit's, and -1 for a noise one."""
    names = post["component"].to_numpy()
    return np.append(names, -1) if "noise_weight" in post else names


def assignment_summary(fitted, X=None, *, hdi_prob: float = 0.94,
                       max_draws: int | None = None) -> pd.DataFrame:
    """Per point: posterior mean probabilities, hard label and its uncertainty.

    Columns: ``p_<k>`` (posterior mean of P(z_n = k | x_n) per component; with a noise
    component also ``p_noise``), ``label`` (argmax; -1 for the noise), ``probability``
    (the label's posterior mean probability) with its HDI
    ``probability_lower``/``probability_upper`` over the draws, ``uncertainty``
    (1 - probability) and ``entropy`` (of the mean probabilities, in nats; 0 when sure,
    log K at most, log(K + 1) with a noise component).

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, Dask array or iterator of chunks, optional
        Default: the fitted data. A Dask array is computed block by block of rows into one
        table; an iterator of chunks (arrays or data frames) gives a generator of tables,
        one per chunk, their ``obs`` numbered on from chunk to chunk.
    hdi_prob : float, default 0.94
        Mass of the highest density interval.
    max_draws : int, optional
        Use at most this many draws, spread evenly over each chain. Default: all draws.
        The points are worked through in blocks, so memory stays bounded whatever N (and
        unlike :func:`responsibilities`, all draws need no more than a block's worth).

    Returns
    -------
    pandas.DataFrame, or a generator of them for an iterator of chunks
        One row per point.

    Notes
    -----
    The responsibilities of every draw come from the prediction kernel
    (:func:`bayesgmm.likelihood.predictive.responsibility_draws`), a block of points at a
    time.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.assignments import assignment_summary
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 1)), rng.normal(3, 1, (40, 1))])
    >>> table = assignment_summary(fit(X, 2, method="map", random_state=0))
    >>> list(table.columns)[:4]
    ['p_0', 'p_1', 'label', 'probability']
    """
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1), got {hdi_prob!r}.")
    result = as_tree(fitted)
    post = result["posterior"]
    c, s = post.sizes["chain"], post.sizes["draw"]
    names = _assignment_names(post)
    draws = np.arange(s) if max_draws is None else thinned_draws(s, c, max_draws)
    params = PredictiveParameters(*posterior_draws(post, draws))

    def table(rows, codes, first):
        return _summary_table(rows, codes, first, params, (c, draws.size), names, hdi_prob)

    if X is None:
        return table(checked_data(result, None), known_labels(result), 0)
    fitted_names = feature_names_in(result)
    n_features = post.sizes["feature"]
    if is_dask_array(X):
        X = dask_rows(X, n_features, "the fit")
        check = chunk_checker(fitted_names, n_features, "the fit")
        parts, first = [], 0
        for i in range(X.numblocks[0]):
            rows = check(X.blocks[i].compute())
            parts.append(table(rows, None, first))
            first += rows.shape[0]
        return pd.concat(parts) if parts else table(np.empty((0, n_features)), None, 0)
    if is_chunk_iterator(X):
        return _summary_chunks(X, chunk_checker(fitted_names, n_features, "the fit"), table)
    return table(checked_data(result, X), None, 0)


def _summary_chunks(chunks, check, table):
    """:func:`assignment_summary` of each chunk, its ``obs`` numbered on from the last."""
    first = 0
    for chunk in chunks:
        rows = check(chunk)
        yield table(rows, None, first)
        first += rows.shape[0]


def _summary_table(X, codes, first, params, shape, names, hdi_prob) -> pd.DataFrame:
    """The rows of :func:`assignment_summary` for the points ``X`` (``obs`` from ``first``).

    ``shape``: (chains, draws) of ``params``' draws; ``codes``: the points' known labels.
    """
    from arviz_stats.base import array_stats

    c, n_per_chain = shape
    n, k = X.shape[0], names.size
    n_draws = c * n_per_chain
    mean = np.empty((n, k))
    lower, upper = np.empty(n), np.empty(n)
    # Block by block of points, so that memory stays bounded whatever N: every number of
    # a point depends on that point's responsibilities in every draw only.
    for sl in point_blocks(n, n_draws * k):
        r = with_known_labels(responsibility_draws(X[sl], params),
                              None if codes is None else codes[sl])
        mean[sl] = r.mean(axis=0)
        if n_draws > 1:
            chosen = np.take_along_axis(r, mean[sl].argmax(axis=1)[None, :, None],
                                        axis=-1)[..., 0].reshape(c, n_per_chain, -1)
            # ArviZ's array function (what arviz_stats.hdi runs on a DataArray): wrapping
            # each block in a DataArray left it in reference cycles, memory that grew with N.
            with np.errstate(invalid="ignore"):
                hdi = array_stats.hdi(chosen, hdi_prob, axis=(0, 1))  # (block, 2)
            lower[sl], upper[sl] = hdi[:, 0], hdi[:, 1]
            del chosen
        del r  # before the next block's is made
    label = mean.argmax(axis=1)
    table = pd.DataFrame({f"p_{'noise' if name < 0 else name}": mean[:, j]
                          for j, name in enumerate(names)},
                         index=pd.Index(np.arange(first, first + n), name="obs"))
    table["label"] = names[label]
    table["probability"] = mean[np.arange(n), label]
    if n_draws > 1:
        table["probability_lower"] = lower
        table["probability_upper"] = upper
    else:  # a point estimate (MAP): no spread
        table["probability_lower"] = table["probability"]
        table["probability_upper"] = table["probability"]
    table["uncertainty"] = 1.0 - table["probability"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(axis=1)
    table["entropy"] = ent
    return table


def coclustering(fitted, X=None, *, max_obs: int = 2000, max_draws: int | None = 1000,
                 random_state=0) -> xr.DataArray:
    """The label-free co-clustering matrix P(z_i = z_j | data).

    For each draw, z_i and z_j are independent given theta, so
    P(z_i = z_j | theta) = sum_k r_ik r_jk; the matrix is its posterior mean. It does not
    depend on how components are labelled, so it needs no relabelling. With a noise
    component the sum is over the mixture's components only: the noise is not a cluster,
    and two points it takes are not clustered together.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like, optional
        Default: the fitted data.
    max_obs : int, default 2000
        With more points, a random subset of this many (seeded by ``random_state``) is used,
        so memory stays at about 2 max_obs^2 doubles (the matrix and one block's product);
        the ``obs`` coordinate says which. Sizes that would need more than 400 MB are
        refused with an error that says which max_obs fits.
    max_draws : int, optional, default 1000
        Draws used (spread evenly over each chain); None: all.
    random_state : int, optional

    Returns
    -------
    xarray.DataArray
        Dims (obs, obs_bis), symmetric, ones on the diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.assignments import coclustering
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 1)), rng.normal(3, 1, (40, 1))])
    >>> cc = coclustering(fit(X, 2, method="map", random_state=0))
    >>> cc.shape, float(cc[0, 1].round(2)), float(cc[0, 79].round(2))
    ((80, 80), 1.0, 0.0)
    """
    result = as_tree(fitted)
    codes = known_labels(result) if X is None else None
    X = checked_data(result, X)
    obs = np.arange(X.shape[0])
    max_obs = check_positive_int(max_obs, "max_obs")
    k = result["posterior"].sizes["component"]
    n = min(X.shape[0], max_obs)
    # The matrix, the temporary of one block's product, and one block of responsibilities
    # with its reshaped copy (a block is at least one draw).
    need = 2 * n * n + 2 * max(_COCLUSTER_BLOCK, n * k)
    if need > _MAX_ELEMENTS:
        fits = int(np.sqrt(max(_MAX_ELEMENTS / 2 - _COCLUSTER_BLOCK, 1)))
        raise MemoryError(
            f"The co-clustering matrix of {n} points takes {need * 8 / 1e9:.1f} GB "
            f"({n} x {n} doubles, twice, plus the per-draw responsibilities), more than "
            f"{_MAX_ELEMENTS * 8 / 1e9:.1f} GB: pass max_obs={fits} or less (a random "
            f"subset of the points, seeded by random_state).")
    if X.shape[0] > max_obs:
        obs = np.sort(np.random.default_rng(random_state).choice(X.shape[0], max_obs,
                                                                 replace=False))
        X = X[obs]
        codes = None if codes is None else codes[obs]
    post = result["posterior"]
    c, s = post.sizes["chain"], post.sizes["draw"]
    if max_draws is not None:
        post = post.isel(draw=thinned_draws(s, c, max_draws))
    params = posterior_draws(post)
    n, total = X.shape[0], params.weights.shape[0]
    acc = np.zeros((n, n))
    # Blocks of draws: each holds block x n x k responsibilities.
    block = max(1, _COCLUSTER_BLOCK // max(1, n * k))
    for start in range(0, total, block):
        sl = slice(start, min(total, start + block))
        block_params = PredictiveParameters(*params.sliced(sl))
        r = with_known_labels(responsibility_draws(X, block_params),
                              codes)[..., :k]  # (b, n, k), without a noise column
        flat = np.moveaxis(r, 0, 1).reshape(n, -1)  # (n, b * k)
        acc += flat @ flat.T
    acc /= total
    acc = 0.5 * (acc + acc.T)
    np.fill_diagonal(acc, 1.0)  # sum_k r_ik^2 <= 1; P(z_i = z_i) is 1 by definition
    return xr.DataArray(acc, dims=("obs", "obs_bis"), coords={"obs": obs, "obs_bis": obs},
                        name="coclustering")


def log_likelihood(fitted, X=None, *, max_draws: int | None = None) -> xr.DataArray:
    """Log p(x_n | theta) for every posterior draw and point, stored or not.

    A fit stores this array (its ``log_likelihood`` group, what ``arviz_stats.loo``
    reads) when it takes at most 200 MB; otherwise it is computed here from the draws.

    Parameters
    ----------
    fitted : BayesianGMM or xarray.DataTree
    X : array-like of shape (N, D), optional
        Points (default: the fitted data, whose stored values are returned when present).
    max_draws : int, optional
        Use at most this many draws, spread evenly over each chain. Default: all draws,
        unless the array would take more than 400 MB, in which case an error says what to
        pass (:func:`bayesgmm.selection.loo` needs no such array: it works in blocks).

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, obs).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import fit
    >>> from bayesgmm.assignments import log_likelihood
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, (40, 1)), rng.normal(3, 1, (40, 1))])
    >>> result = fit(X, 2, method="map", store_log_likelihood=False, random_state=0)
    >>> "log_likelihood" in result.children, log_likelihood(result).dims
    (False, ('chain', 'draw', 'obs'))
    """
    result = as_tree(fitted)
    if X is None and max_draws is None and "log_likelihood" in result.children:
        return result["log_likelihood"]["x"]
    codes = known_labels(result) if X is None else None
    X = checked_data(result, X)
    obs = np.arange(X.shape[0])
    post = result["posterior"]
    c, s = post.sizes["chain"], post.sizes["draw"]
    draws = np.arange(s) if max_draws is None else thinned_draws(s, c, max_draws)
    size = c * draws.size * X.shape[0]
    if max_draws is None and size > _MAX_ELEMENTS:
        raise MemoryError(
            f"The log-likelihood of {c * s} draws x {X.shape[0]} points takes "
            f"{size * 8 / 1e9:.1f} GB; pass max_draws (e.g. max_draws=200) or fewer points. "
            f"For LOO, bayesgmm.selection.loo(fit) works through the points in blocks.")
    out = np.empty((c, draws.size, X.shape[0]))
    for sl, block in log_likelihood_blocks(result, X, draws, labels=codes):
        out[:, :, sl] = block
    return xr.DataArray(out, dims=("chain", "draw", "obs"),
                        coords={**sample_coords(post, draws), "obs": obs}, name="x")
