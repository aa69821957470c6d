"""Data out of memory: zarr stores, parquet files and Dask arrays read in slices, never whole."""

import tracemalloc
import warnings

import numpy as np
import pytest
from helpers import need
from scipy.optimize import linear_sum_assignment

import bayesgmm
from bayesgmm import sources
from bayesgmm.datasets import make_mixture
from bayesgmm.fitting import streamed
from bayesgmm.fitting.vi import _IterateAverage
from bayesgmm.sources import BatchStream, row_source, scan


def write_zarr(path, X, rows_per_chunk):
    import zarr

    z = zarr.open_array(str(path), mode="w", shape=X.shape, dtype="f8",
                        chunks=(rows_per_chunk, X.shape[1]))
    z[:] = X
    return path


def write_parquet(path, X, rows_per_group, names):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir()
    half = X.shape[0] // 2  # two files, as a partitioned data set is
    for i, part in enumerate((X[:half], X[half:])):
        table = pa.table({name: part[:, j] for j, name in enumerate(names)})
        pq.write_table(table, path / f"part-{i}.parquet", row_group_size=rows_per_group)
    return path


def matched(estimate, truth):
    cost = ((estimate[:, None, :] - truth[None, :, :]) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return estimate[rows], truth[cols]


# ---------------------------------------------------------------- the pieces, on their own
def test_scan_gives_numpy_moments_and_a_uniform_subsample(tmp_path):
    need("zarr")
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, [1.0, 1e3, 1e-3], (10_007, 3))  # uneven last chunk, wide scales
    source = row_source(write_zarr(tmp_path / "x.zarr", X, 1_000))
    assert (source.n_rows, source.n_features, len(source.blocks)) == (10_007, 3, 11)
    seen = scan(source, 2_000, np.random.default_rng(1))
    np.testing.assert_allclose(seen.mean, X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(seen.variance, X.var(axis=0), rtol=1e-12)
    # The subsample: 2,000 distinct rows of X, spread over all of it (a uniform draw puts
    # about 200 in every tenth of the rows; binomial sd 13).
    index = {row.tobytes(): i for i, row in enumerate(X)}
    taken = np.array([index[row.tobytes()] for row in seen.subsample])
    assert taken.size == np.unique(taken).size == 2_000
    per_tenth = np.bincount(taken * 10 // X.shape[0], minlength=10)
    assert per_tenth.min() > 140 and per_tenth.max() < 260, per_tenth


def test_a_batch_stream_is_fixed_by_its_seed_and_covers_the_rows():
    need("dask")
    import dask.array as da

    X = np.arange(40_000, dtype=float).reshape(-1, 2)  # row i holds 2i, 2i + 1
    source = row_source(da.from_array(X, chunks=(3_000, 2)))

    def batches(seed, n):
        with BatchStream(source, 100, seed=seed, buffer_rows=2_000) as stream:
            return [stream.next() for _ in range(n)]

    first, again, other = batches(0, 300), batches(0, 300), batches(1, 3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    rows = (np.concatenate(first)[:, 0] / 2).astype(int)
    # Whole rows of X, shuffled; 30,000 draws of 20,000 rows cover most of them, and a
    # buffer mixes pieces from far apart (at most 2,000 / 16 = 125 rows each).
    assert first[0].shape == (100, 2) and np.all(np.concatenate(first)[:, 1] == 2 * rows + 1)
    assert np.unique(rows).size > 0.7 * 20_000
    assert np.ptp(rows[:2_000]) > 10_000


# ---------------------------------------------------------------- fits
def test_a_zarr_store_is_fitted_without_ever_holding_it(tmp_path, monkeypatch):
    # 2e5 rows x 10 (16 MB), sorted by component (the hard case for batches read in
    # pieces), written by the test and dropped; small buffers (16,384 rows) and subsample
    # (3,000 rows). A memory probe (tracemalloc: every NumPy array and Python object) over
    # the two phases that read the store, the pass over the rows and the iterations, shows
    # each allocated less than half the array (the iterations: two shuffle buffers and the
    # reads that fill one, about 5 x 1.3 MB). In between, the EM start sees the
    # subsample only (3,000 rows, the fit's observed data), and compilation allocates
    # PyTensor's rewrites, not data; the modules the pass imports on first use are
    # imported before the probe (a pass over a small store).
    need("zarr")
    truth = make_mixture(200_000, 3, 10, separation=6.0, random_state=0)
    order = np.argsort(truth.labels, kind="stable")
    path = write_zarr(tmp_path / "data.zarr", truth.X[order], 10_000)
    whole = truth.X.nbytes
    means = truth.means
    del truth, order
    monkeypatch.setattr(sources, "BUFFER_ROWS", 16_384)
    monkeypatch.setattr(streamed, "SUBSAMPLE_ROWS", 3_000)
    small = np.random.default_rng(0).normal(size=(500, 10))
    scan(row_source(write_zarr(tmp_path / "small.zarr", small, 100)), 50, np.random.default_rng(0))

    grown = {}
    calls = []
    run_scan, next_batch, averaged = streamed.scan, BatchStream.next, _IterateAverage.apply

    def start_probe():
        tracemalloc.start()
        grown["base"] = tracemalloc.get_traced_memory()[0]

    def end_probe(phase):
        grown[phase] = tracemalloc.get_traced_memory()[1] - grown.pop("base")
        tracemalloc.stop()

    def scan_(*args, **kwargs):
        start_probe()
        seen = run_scan(*args, **kwargs)
        end_probe("pass over the rows")
        return seen

    def next_of(stream):
        calls.append(1)
        if len(calls) == 2:  # after the first iteration: compiled
            start_probe()
        return next_batch(stream)

    def apply(averager, approx):  # the iterations have ended (sampling compiles next)
        end_probe("iterations")
        return averaged(averager, approx)

    monkeypatch.setattr(streamed, "scan", scan_)
    monkeypatch.setattr(BatchStream, "next", next_of)
    monkeypatch.setattr(_IterateAverage, "apply", apply)
    try:
        fit = bayesgmm.fit(str(path), 3, method="advi", batch_size=256, max_iter=3_000,
                           draws=200, random_state=0)
    finally:
        tracemalloc.stop()
    assert set(grown) == {"pass over the rows", "iterations"}, grown
    for phase, size in grown.items():
        assert size < whole / 2, (phase, size / 1e6, whole / 1e6)
    estimate = fit["posterior"]["means"].mean(("chain", "draw")).to_numpy()
    # Posterior sd of a mean ~ 1 / sqrt(6e4) = 0.004; minibatch ADVI's averaged iterates
    # within a few hundredths.
    np.testing.assert_allclose(*matched(estimate, means), atol=0.1)
    observed = fit["observed_data"]
    assert observed.sizes["obs"] == 3_000
    assert observed.attrs["bayesgmm_data_rows"] == 200_000
    assert "zarr array: 200,000 rows" in observed.attrs["bayesgmm_data_source"]


def test_parquet_and_dask_give_the_same_fit(tmp_path):
    # The same rows in the same blocks (chunks, row groups; two parquet files) in two forms:
    # the pass, the subsample and the batches are the same, so are the fits, bit for bit.
    # Parquet's column names become the features.
    need("zarr")
    need("dask")
    import dask.array as da

    truth = make_mixture(12_000, 2, 2, separation=6.0, random_state=3)
    names = ["length", "width"]
    forms = {  # (zarr's own fit is the test above)
        "parquet": write_parquet(tmp_path / "x.parquet", truth.X, 2_000, names),
        "dask": da.from_array(truth.X, chunks=(2_000, 2)),
    }
    fits = {form: bayesgmm.fit(X, 2, method="advi", batch_size=200, max_iter=1_000,
                               draws=100, random_state=4) for form, X in forms.items()}
    ref = fits["dask"]["posterior"]["means"].to_numpy()
    np.testing.assert_array_equal(fits["parquet"]["posterior"]["means"].to_numpy(), ref)
    assert list(fits["parquet"]["posterior"]["feature"].to_numpy()) == names
    np.testing.assert_allclose(*matched(ref.mean(axis=(0, 1)), truth.means), atol=0.15)
    # The estimator of such a fit predicts on the data out of memory (lazily) as on arrays.
    model = bayesgmm.BayesianGMM.from_fit(fits["dask"])
    np.testing.assert_array_equal(model.predict(forms["dask"]).compute(),
                                  model.predict(truth.X))


def test_data_out_of_memory_bad_input(tmp_path):
    need("zarr")
    X = make_mixture(3_000, 2, 2, random_state=0).X
    store = str(write_zarr(tmp_path / "x.zarr", X, 500))
    with pytest.raises(ValueError, match="fitted by minibatch ADVI: pass method='advi'"):
        bayesgmm.fit(store, 2, method="nuts")
    with pytest.raises(NotImplementedError, match="labels is not supported out of memory"):
        bayesgmm.fit(store, 2, method="advi", labels=np.zeros(3_000, int))
    with pytest.raises(ValueError, match="must be below the data's 3,000 rows"):
        bayesgmm.fit(store, 2, method="advi", batch_size=5_000)
    holes = X.copy()
    holes[1_234, 1] = np.nan
    with pytest.raises(ValueError, match="Row 1234 of the zarr array has a missing"):
        bayesgmm.fit(str(write_zarr(tmp_path / "holes.zarr", holes, 500)), 2, method="advi")
    import zarr

    group = zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    group.create_array("data", shape=(10, 2), dtype="f8")
    with pytest.raises(ValueError, match="is a zarr group, not an array"):
        bayesgmm.fit(str(tmp_path / "group.zarr"), 2, method="advi")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["a", "b"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) \['name'\]"):
        bayesgmm.fit(str(tmp_path / "t.parquet"), 2, method="advi")
    with pytest.raises(FileNotFoundError, match="No zarr store"):
        bayesgmm.fit(str(tmp_path / "absent.zarr"), 2, method="advi")


def test_a_point_far_out_in_a_store_is_named_before_the_fit(tmp_path):
    # One point at 1e12 among 3,000 (the adversarial case of a fit in memory, which names it
    # through check_data): the pass over the rows keeps each column's extremes, scored
    # against the subsample's medians and MADs, so the row is named even if the subsample
    # missed it.
    need("zarr")
    X = make_mixture(3_000, 2, 2, random_state=0).X
    X[1_717, 1] = 1e12
    source = row_source(write_zarr(tmp_path / "far.zarr", X, 500))
    seen = scan(source, 200, np.random.default_rng(0))
    assert 1_717 not in [i for i, row in enumerate(X) if (seen.subsample == row).all(1).any()]
    with pytest.warns(bayesgmm.DataWarning, match=r"row\(s\) 1717 \(x1 = 1e\+12"):
        streamed._warn_extremes(seen, ["x0", "x1"], source)
    clean = scan(row_source(write_zarr(tmp_path / "clean.zarr", X[:1_700], 500)), 200,
                 np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        streamed._warn_extremes(clean, ["x0", "x1"], source)  # nothing to say
