"""Prediction on data of any size: in-memory arrays, Dask arrays and iterators of chunks.

A fit's prediction (``predict_proba``, ``predict``, ``score_samples``, and
:func:`bayesgmm.assignments.assignment_summary`) is a function of each row alone, so it
runs the same way on every form of input:

- an array or data frame in memory: at once, through the numba kernel
  (:mod:`bayesgmm.likelihood.predictive`), threads over rows, memory of the output;
- a Dask array: lazily, block by block of rows (``map_blocks``), the result a Dask array
  with the same row chunks; nothing is computed until it is asked for (``.compute()``,
  ``.to_zarr()``, ...), and then on Dask's scheduler;
- an iterator of chunks (arrays or data frames, e.g. from ``pandas.read_csv(...,
  chunksize=)`` or a parquet dataset's batches): a generator of results, one per chunk,
  so that no more than one chunk is in memory.

Rows are independent, so every form gives the same numbers bit for bit.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np

from .exceptions import DataWarning
from .validation import check_features, has_feature_names

__all__ = ["is_dask_array", "is_chunk_iterator", "chunk_checker", "dask_rows", "map_rows"]


def is_dask_array(X) -> bool:
    """Whether ``X`` is a Dask array (without importing Dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks") \
        and hasattr(X, "chunks")


def is_chunk_iterator(X) -> bool:
    """Whether ``X`` is an iterator (of chunks), not an array-like.

    A generator, ``iter(list_of_arrays)``, ``pandas.read_csv(..., chunksize=n)``: they
    are consumed as they are read. A list of rows is an array-like, not chunks.
    """
    return isinstance(X, Iterator)


def _unnamed_warning(fitted_names) -> None:
    warnings.warn(f"X has no feature names, but the model was fitted with feature names "
                  f"{fitted_names}: its columns are taken in that order. Pass data frames "
                  f"with those columns to have them checked.", DataWarning, stacklevel=5)


def chunk_checker(fitted_names, n_features: int, owner: str) -> Callable:
    """``check(chunk) -> ndarray``: :func:`bayesgmm.validation.check_features` per chunk.

    A data frame chunk is checked by name; an unnamed chunk of a fit with feature names is
    taken by position with one :class:`~bayesgmm.exceptions.DataWarning` for all chunks
    (not one per chunk).
    """
    warned = []

    def check(chunk) -> np.ndarray:
        if fitted_names is not None and not has_feature_names(chunk):
            if not warned:
                warned.append(True)
                _unnamed_warning(fitted_names)
            return check_features(chunk, None, n_features, owner=owner)
        return check_features(chunk, fitted_names, n_features, owner=owner)

    return check


def dask_rows(X, n_features: int, owner: str):
    """A Dask array's row blocks, one block across its columns, checked for its shape."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D Dask array of shape (n_samples, {n_features}), "
                         f"got {X.ndim} dimension(s).")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {owner} is expecting "
                         f"{n_features} features as input.")
    return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X


def map_rows(X, compute: Callable[[np.ndarray, int | None], np.ndarray], *, fitted_names,
             n_features: int, owner: str, n_columns: int | None, dtype=float):
    """``compute`` (checked rows -> one output row per row) on ``X`` in any form.

    Parameters
    ----------
    X : array-like, data frame, Dask array or iterator of chunks
    compute : callable
        ``compute(rows, n_threads)``: from a checked float64 array (n, D) to an array of n
        rows, (n, ``n_columns``) or (n,) when ``n_columns`` is None; ``n_threads`` is 1 in
        Dask's blocks (Dask runs them in parallel), None (all CPUs) otherwise.
    fitted_names : list of str or None
        The fit's feature names.
    n_features : int
    owner : str
        The model's name in messages.
    n_columns : int or None
    dtype : numpy dtype of the output

    Returns
    -------
    ndarray, Dask array (lazy) or generator of ndarrays, as ``X``.
    """
    if is_dask_array(X):
        X = dask_rows(X, n_features, owner)
        if fitted_names is not None:  # once, here, rather than in every block
            _unnamed_warning(fitted_names)

        def block(b):
            # Dask runs the blocks in parallel: one thread each.
            return compute(check_features(b, None, n_features, owner=owner), 1)

        if n_columns is None:
            return X.map_blocks(block, dtype=dtype, drop_axis=1,
                                meta=np.empty((0,), dtype=dtype))
        return X.map_blocks(block, dtype=dtype, chunks=(X.chunks[0], (n_columns,)),
                            meta=np.empty((0, 0), dtype=dtype))
    if is_chunk_iterator(X):
        check = chunk_checker(fitted_names, n_features, owner)
        return (compute(check(chunk), None) for chunk in X)
    return compute(check_features(X, fitted_names, n_features, owner=owner), None)
