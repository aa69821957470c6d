"""Fitting data that does not fit in memory: minibatch ADVI on batches read in slices.

:func:`bayesgmm.fit` comes here when ``X`` is a Dask array, a zarr array or store, or
parquet files (:mod:`bayesgmm.sources`). The steps are those of a fit in memory, with the
data read in slices:

1. one pass over the rows in blocks (:func:`bayesgmm.sources.scan`): the columns' means and
   variances, which standardise the data as a fit in memory does, and a uniform random
   subsample of :data:`SUBSAMPLE_ROWS` rows;
2. the EM start on the subsample;
3. minibatch ADVI, the model's batch (``pm.Data``, :data:`bayesgmm.model.STREAM_DATA`) set
   to the next batch of a :class:`bayesgmm.sources.BatchStream` after every iteration, the
   log-likelihood scaled to all N rows;
4. the result as a fit in memory's, its ``observed_data`` the subsample (its attributes
   give the data's rows and source; the diagnostics and what reads the fitted data read
   the subsample).

Memory is bounded by the subsample, two shuffle buffers and the model, not by N.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace

import numpy as np

from ..covariance import structure
from ..diagnostics import check
from ..exceptions import DataWarning
from ..model import STREAM_DATA, build_model
from ..progress import step
from ..seeds import draw_seed
from ..sources import BatchStream, RowSource, scan
from ..standardize import Standardizer
from ..validation import OUTLIER_ROBUST_Z, default_feature_names
from .compile import plan_compilation
from .result import FIT_SECONDS_ATTR, assemble, mark_subsample
from .start import START_DOF, em_start, resolve_order_by
from .vi import run_vi

__all__ = ["fit_streamed", "SUBSAMPLE_ROWS", "STREAM_BATCH_SIZE"]

#: Rows of the random subsample the EM start (and the diagnostics) run on.
SUBSAMPLE_ROWS = 50_000
#: Minibatch rows when ``batch_size`` is not given.
STREAM_BATCH_SIZE = 1024


def _refuse(source: RowSource, checked: dict, sample_weight, labels) -> None:
    where = f"Data read in slices (a {source.kind}, {source.n_rows:,} rows)"
    if checked["method"] not in ("advi", "fullrank_advi"):
        raise ValueError(f"{where} are fitted by minibatch ADVI: pass method='advi' "
                         f"(batch_size defaults to {STREAM_BATCH_SIZE}), or load the data "
                         f"(e.g. a subsample) into memory to fit it by "
                         f"method={checked['method']!r}.")
    for name, given in (("sample_weight", sample_weight is not None),
                        ("labels", labels is not None), ("noise", bool(checked["noise"]))):
        if given:
            raise NotImplementedError(f"{where}: {name} is not supported out of memory yet; "
                                      f"load the data into memory to fit with {name}.")
    k = checked["n_components"]
    if source.n_rows < k:
        raise ValueError(f"X has {source.n_rows} sample(s) (rows), but fitting {k} "
                         f"component(s) needs at least {k}.")


def _warn_extremes(seen, names: list[str], source: RowSource) -> None:
    """Name each column's extreme row if it lies beyond the outlier threshold of a fit in memory.

    As :func:`bayesgmm.validation.outlying_rows` does for data in memory, with the medians and
    median absolute deviations of the subsample: each column's smallest and largest value
    (from the pass over all rows) is scored, so the most extreme row of each column is found.
    """
    X = seen.subsample
    if not X.shape[0]:
        return
    median = np.median(X, axis=0)
    scale = 1.4826 * np.median(np.abs(X - median), axis=0)
    found = []
    for j, name in enumerate(names):
        if not scale[j] > 0:
            continue
        for value, row in ((seen.low[j], seen.low_row[j]), (seen.high[j], seen.high_row[j])):
            z = abs(value - median[j]) / scale[j]
            if z > OUTLIER_ROBUST_Z:
                found.append((z, int(row), name, float(value)))
    if found:
        found.sort(reverse=True)
        shown = ", ".join(f"{row} ({name} = {value:.4g}, {z:.2g} robust sd)"
                          for z, row, name, value in found[:5])
        warnings.warn(
            f"The {source.kind}'s row(s) {shown} lie more than {OUTLIER_ROBUST_Z:g} robust "
            f"standard deviations from the median of their column. A Gaussian component will "
            f"be spent on them, or stretched over the clusters to reach them, and they "
            f"inflate the standardisation. Check them for data errors and remove them, or "
            f"transform a skewed column (for example its logarithm).", DataWarning,
            stacklevel=4)


def fit_streamed(source: RowSource, checked: dict, *, rng, progressbar: bool, began: float,
                 sample_weight=None, labels=None, store_log_likelihood=None):
    """:func:`bayesgmm.fit` on a :class:`bayesgmm.sources.RowSource`; see the module docstring.

    ``checked``: the fit's checked settings (:func:`bayesgmm.params.check_params`).
    """
    _refuse(source, checked, sample_weight, labels)
    k, method, covariance_type = (checked["n_components"], checked["method"],
                                  checked["covariance_type"])
    n, d = source.n_rows, source.n_features
    batch_size = int(checked["batch_size"] or STREAM_BATCH_SIZE)
    if batch_size >= n:
        raise ValueError(f"batch_size ({batch_size}) must be below the data's {n:,} rows; "
                         f"data this small fit in memory: pass them as an array.")
    priors, component, dof = checked["priors"], checked["component"], checked["dof"]
    student = component == "student_t"
    names = list(source.names) if source.names is not None else default_feature_names(d)
    m = min(n, SUBSAMPLE_ROWS)
    with step(f"reading {n:,} rows x {d} ({source.kind}): means, variances and a "
              f"{m:,}-row subsample", progressbar):
        seen = scan(source, m, rng)
    _warn_extremes(seen, names, source)
    std = Standardizer.from_moments(seen.mean, seen.variance,
                                    common_scale=structure(covariance_type).common_scale)
    X_sub = seen.subsample
    Z_sub = std.transform(X_sub)
    with step(f"EM start on the subsample, {m:,} x {d}, K={k}", progressbar):
        start = em_start(Z_sub, k, n_init=checked["n_init"], random_state=draw_seed(rng),
                         sparse=priors.weight_concentration < 1,
                         covariance_type=covariance_type, raw=(X_sub, std),
                         t_dof=(START_DOF if dof is None else dof) if student else None)
    if student and dof is not None:
        start = replace(start, dof=None)
    order_by = resolve_order_by(checked["order_by"], names, start, k)
    start = start.ordered(order_by)
    compilation = plan_compilation(checked["backend"], method=method, sampler="",
                                   n_obs=batch_size)
    def standardise(rows):  # in place: a buffer is read into memory once
        rows -= std.center
        rows /= std.scale
        return rows

    with BatchStream(source, batch_size, seed=draw_seed(rng), transform=standardise) \
            as stream:
        model = build_model(stream.next(), k, priors, feature_names=names,
                            order_by=order_by, covariance_type=covariance_type,
                            component=component, dof=dof, streamed_rows=n)
        batch = model[STREAM_DATA]

        def feed(approx, losses, i):
            batch.set_value(stream.next())

        out = run_vi(model, start, method=method, draws=checked["draws"],
                     max_iter=checked["max_iter"], rng=rng,
                     compile_kwargs=compilation.compile_kwargs, progressbar=progressbar,
                     n_obs=n, callbacks=[feed])
    out["mode_search"] = []
    if student and dof is not None:
        out["draws"]["dof"] = np.full(out["draws"]["weights"].shape, dof)
    # The pointwise log-likelihood of the subsample is not the data's: stored on request only.
    result = assemble(X_sub, names, std, start, out, method=method, sampler="",
                      priors=priors, store_log_likelihood=bool(store_log_likelihood),
                      named_features=source.names is not None)
    mark_subsample(result, n, repr(source))
    result["posterior"].attrs[FIT_SECONDS_ATTR] = round(time.perf_counter() - began, 3)
    check(result, stacklevel=3)
    return result
