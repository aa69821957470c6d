"""Rows of data too large for memory: Dask arrays, zarr arrays and stores, parquet files.

A fit reads such data in slices of rows (:class:`RowSource`), never whole:

- :func:`scan` makes one pass in blocks: the columns' means and variances (for the
  standardisation) and a uniform random subsample of the rows (for the EM start);
- :class:`BatchStream` serves random minibatches for minibatch ADVI from a shuffle buffer:
  random pieces of the rows (at most 1/16 of the buffer each, so that a buffer mixes at
  least 16 places of the data, sorted data included) read into memory, shuffled, served
  batch after batch while a background thread reads the next buffer.

Memory is then bounded by the buffer (two of them) and the subsample, not by the number of
rows. Dask, zarr and pyarrow are imported only for the sources that need them.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np

__all__ = ["RowSource", "row_source", "is_out_of_core", "scan", "Scan", "BatchStream"]

#: Rows of a shuffle buffer by default (at D=10, 21 MB; two are held at once).
BUFFER_ROWS = 1 << 18
#: A buffer holds pieces of at most BUFFER_ROWS / PIECES rows each.
PIECES = 16


class RowSource:
    """A 2-D table of numbers read in slices of rows.

    Attributes
    ----------
    kind : str
        What it reads ("dask array", "zarr array", "parquet").
    n_rows, n_features : int
    names : list of str or None
        Column names (parquet), else None.
    blocks : list of (start, stop)
        The rows' natural blocks (Dask or zarr chunks, parquet row groups): reading one is
        reading what the storage reads anyway.
    """

    kind = "rows"

    def __init__(self, n_rows: int, n_features: int, blocks, names=None):
        self.n_rows, self.n_features = int(n_rows), int(n_features)
        self.blocks = [(int(a), int(b)) for a, b in blocks if b > a]
        self.names = names

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a float64 array (stop - start, n_features)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"<{self.kind}: {self.n_rows:,} rows x {self.n_features} features, "
                f"{len(self.blocks)} block(s)>")


def _chunk_blocks(n: int, sizes) -> list[tuple[int, int]]:
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return list(zip(edges[:-1], edges[1:], strict=True))


class _ArraySource(RowSource):
    """A Dask array, or a zarr array (chunked, on disk or in memory)."""

    def __init__(self, array, kind: str):
        if array.ndim != 2:
            raise ValueError(f"Expected a 2D {kind} of shape (n_samples, n_features), got "
                             f"shape {array.shape}.")
        if not np.issubdtype(np.dtype(array.dtype), np.number) or \
                np.issubdtype(np.dtype(array.dtype), np.complexfloating):
            raise ValueError(f"The {kind} has dtype {array.dtype}; it must hold real "
                             f"numbers (cast it, e.g. with .astype('float64')).")
        n = array.shape[0]
        if kind == "dask array":
            sizes = array.chunks[0]
        else:
            step = int(array.chunks[0]) or n
            sizes = [min(step, n - a) for a in range(0, n, step)]
        super().__init__(n, array.shape[1], _chunk_blocks(n, sizes))
        self.kind = kind
        self.array = array

    def read(self, start, stop):
        part = self.array[start:stop]
        if self.kind == "dask array":
            part = part.compute()
        return np.asarray(part, dtype=np.float64)


class _ParquetSource(RowSource):
    """Parquet files (one, a directory of them, or a pyarrow dataset's), by row groups."""

    kind = "parquet"

    def __init__(self, files: list[str]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not files:
            raise ValueError("No parquet files found: pass a .parquet file, a directory of "
                             "them, or a pyarrow dataset.")
        self.files = [pq.ParquetFile(f) for f in files]
        schema = self.files[0].schema_arrow
        bad = [f.name for f in schema if not (pa.types.is_integer(f.type)
                                              or pa.types.is_floating(f.type)
                                              or pa.types.is_boolean(f.type))]
        if bad:
            raise ValueError(f"The parquet data have non-numeric column(s) {bad}; every "
                             f"column is a feature. Write the numeric features to their own "
                             f"files, or pass dask.dataframe.read_parquet(path, columns=[...])"
                             f".to_dask_array(lengths=True).")
        names = [f.name for f in schema]
        self.groups = []  # (file index, row group index)
        sizes = []
        for i, f in enumerate(self.files):
            if f.schema_arrow.names != names:
                raise ValueError(f"Parquet file {files[i]} has columns "
                                 f"{f.schema_arrow.names}, the first {names}: all files "
                                 f"need the same columns in the same order.")
            for g in range(f.metadata.num_row_groups):
                self.groups.append((i, g))
                sizes.append(f.metadata.row_group(g).num_rows)
        blocks = _chunk_blocks(int(np.sum(sizes)), sizes)
        super().__init__(blocks[-1][1] if blocks else 0, len(names), blocks, names)
        self._starts = np.array([a for a, _ in blocks] + [self.n_rows])
        self._lock = threading.Lock()  # a ParquetFile is not safe in two threads at once

    def read(self, start, stop):
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        parts = []
        g = max(first, 0)
        while g < len(self.groups) and self._starts[g] < stop:
            i, j = self.groups[g]
            with self._lock:
                table = self.files[i].read_row_group(j)
            values = np.column_stack([np.asarray(c.to_numpy(zero_copy_only=False),
                                                 dtype=np.float64) for c in table.columns])
            a, b = self._starts[g], self._starts[g + 1]
            parts.append(values[max(start, a) - a:min(stop, b) - a])
            g += 1
        if not parts:
            return np.empty((0, self.n_features))
        return np.concatenate(parts)


def _parquet_files(path: Path) -> list[str]:
    if path.is_dir():
        return sorted(str(p) for p in path.rglob("*.parquet"))
    return [str(path)]


def row_source(X) -> RowSource | None:
    """``X`` as a :class:`RowSource` when it is data read in slices, else None.

    Out-of-core forms: a Dask array; a zarr array, or the path of a zarr store holding one
    (``*.zarr``); the path of a parquet file or of a directory of them (``*.parquet``), or
    a ``pyarrow.dataset.Dataset`` of parquet files. Anything else (arrays, data frames) is
    in memory: None.
    """
    if isinstance(X, RowSource):
        return X
    module = type(X).__module__.split(".")[0]
    if module == "dask" and hasattr(X, "chunks") and hasattr(X, "compute"):
        return _ArraySource(X, "dask array")
    if module == "zarr" and hasattr(X, "chunks") and hasattr(X, "shape"):
        return _ArraySource(X, "zarr array")
    if module == "pyarrow" and hasattr(X, "files"):
        return _ParquetSource(list(X.files))
    if isinstance(X, (str, os.PathLike)):
        path = Path(X)
        if path.suffix == ".zarr":
            import zarr

            if not path.exists():
                raise FileNotFoundError(f"No zarr store at {path}.")
            array = zarr.open(str(path), mode="r")
            if not hasattr(array, "chunks"):
                names = sorted(array.array_keys()) if hasattr(array, "array_keys") else []
                raise ValueError(f"{path} is a zarr group, not an array; pass one of its "
                                 f"arrays, e.g. zarr.open('{path}')['{names[0]}']"
                                 if names else f"{path} holds no zarr array.")
            return _ArraySource(array, "zarr array")
        if path.suffix == ".parquet" or (path.is_dir() and any(path.rglob("*.parquet"))):
            return _ParquetSource(_parquet_files(path))
    return None


def is_out_of_core(X) -> bool:
    """Whether ``X`` is one of the forms :func:`row_source` reads in slices."""
    if isinstance(X, (str, os.PathLike)):
        path = Path(X)
        return path.suffix in (".zarr", ".parquet") or (path.is_dir() and any(
            path.rglob("*.parquet")))
    module = type(X).__module__.split(".")[0]
    return isinstance(X, RowSource) or (module in ("dask", "zarr") and hasattr(X, "chunks")) \
        or (module == "pyarrow" and hasattr(X, "files"))


def pieces(source: RowSource, max_rows: int) -> list[tuple[int, int]]:
    """The source's blocks, each cut into pieces of at most ``max_rows`` rows."""
    out = []
    for a, b in source.blocks:
        for lo in range(a, b, max(1, int(max_rows))):
            out.append((lo, min(b, lo + max_rows)))
    return out


class Scan:
    """What one pass over the rows gives: column means, variances and a random subsample.

    Also each column's smallest and largest value (``low``, ``high``) and the rows holding
    them (``low_row``, ``high_row``): a data error far out in a column is one of them.
    """

    def __init__(self, mean, variance, subsample, n_rows, extremes):
        self.mean, self.variance, self.subsample, self.n_rows = mean, variance, subsample, n_rows
        self.low, self.low_row, self.high, self.high_row = extremes


def scan(source: RowSource, n_subsample: int, rng: np.random.Generator) -> Scan:
    """One pass in blocks: column means and variances, and ``n_subsample`` random rows.

    The subsample is uniform over the rows (each block contributes a hypergeometric share
    of it, then rows drawn without replacement inside the block). Raises ValueError on a
    non-finite entry (NaN, inf), naming the row.
    """
    n, d = source.n_rows, source.n_features
    m = min(int(n_subsample), n)
    counts = rng.multivariate_hypergeometric([b - a for a, b in source.blocks], m)
    count = 0
    mean = np.zeros(d)
    m2 = np.zeros(d)
    low, high = np.full(d, np.inf), np.full(d, -np.inf)
    low_row, high_row = np.zeros(d, np.int64), np.zeros(d, np.int64)
    kept = []
    for (a, b), take in zip(source.blocks, counts, strict=True):
        rows = source.read(a, b)
        if not np.isfinite(rows).all():
            bad = a + int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
            raise ValueError(f"Row {bad} of the {source.kind} has a missing or infinite "
                             f"entry: a fit from data out of memory needs complete, finite "
                             f"rows (drop or impute them, or load the data to fit them with "
                             f"missing entries marginalised).")
        if rows.shape[0]:
            at, bt = rows.argmin(axis=0), rows.argmax(axis=0)
            cols = np.arange(d)
            smaller, larger = rows[at, cols] < low, rows[bt, cols] > high
            low = np.where(smaller, rows[at, cols], low)
            low_row = np.where(smaller, a + at, low_row)
            high = np.where(larger, rows[bt, cols], high)
            high_row = np.where(larger, a + bt, high_row)
        # Chan et al.'s update of the mean and the sum of squared deviations.
        nb = rows.shape[0]
        block_mean = rows.mean(axis=0)
        block_m2 = ((rows - block_mean) ** 2).sum(axis=0)
        total = count + nb
        delta = block_mean - mean
        mean = mean + delta * nb / total
        m2 = m2 + block_m2 + delta**2 * count * nb / total
        count = total
        if take:
            kept.append(rows[np.sort(rng.choice(nb, size=int(take), replace=False))])
        del rows
    subsample = np.concatenate(kept) if kept else np.empty((0, d))
    return Scan(mean, m2 / max(count, 1), subsample, count, (low, low_row, high, high_row))


class BatchStream:
    """Random minibatches of a :class:`RowSource` from a shuffle buffer, read ahead.

    Each buffer is about ``buffer_rows`` rows: random pieces of the source (each at most
    ``buffer_rows / 16`` rows, cut from its blocks), shuffled; its batches are served in
    turn, and a background thread reads the next buffer meanwhile. The sequence of batches
    is fixed by ``seed``, whatever the threads' timing.

    Parameters
    ----------
    source : RowSource
    batch_size : int
    seed : int
    transform : callable, optional
        Applied to every buffer (the standardisation), which it may change in place.
    buffer_rows : int, optional
        Default :data:`BUFFER_ROWS`, at least 8 batches, at most the source's rows.
    """

    def __init__(self, source: RowSource, batch_size: int, seed: int, transform=None,
                 buffer_rows: int | None = None):
        self.source, self.batch_size = source, int(batch_size)
        rows = BUFFER_ROWS if buffer_rows is None else int(buffer_rows)
        self.buffer_rows = int(min(source.n_rows, max(rows, 8 * self.batch_size)))
        self.pieces = pieces(source, max(self.batch_size, self.buffer_rows // PIECES))
        self.transform = transform
        self._rng = np.random.default_rng(seed)
        self._ready: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._buffer = None
        self._at = 0
        self._thread = threading.Thread(target=self._reader, name="bayesgmm-batches",
                                        daemon=True)
        self._thread.start()

    def _fill(self) -> np.ndarray:
        order = self._rng.permutation(len(self.pieces))
        chosen, total = [], 0
        for i in order:
            a, b = self.pieces[i]
            chosen.append((a, b))
            total += b - a
            if total >= self.buffer_rows:
                break
        rows = np.concatenate([self.source.read(a, b) for a, b in sorted(chosen)])
        self._rng.shuffle(rows)  # in place, as the transform: one buffer's memory
        return self.transform(rows) if self.transform is not None else rows

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._fill()
            except BaseException as exc:  # handed to the consumer
                item = exc
            while not self._stop.is_set():
                try:
                    self._ready.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next(self) -> np.ndarray:
        """The next batch (batch_size, n_features)."""
        if self._buffer is None or self._at + self.batch_size > self._buffer.shape[0]:
            item = self._ready.get()
            if isinstance(item, BaseException):
                raise item
            self._buffer, self._at = item, 0
        batch = self._buffer[self._at:self._at + self.batch_size]
        self._at += self.batch_size
        return batch

    def close(self) -> None:
        """Stop the reader thread (it ends after its current read)."""
        self._stop.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
