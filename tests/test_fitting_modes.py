"""The mode search before sampling and the mode repair after it."""

import warnings

import numpy as np
import pytest

from bayesgmm import ConvergenceWarning, diagnose, fit
from bayesgmm.fitting import nuts as fitting_nuts
from bayesgmm.fitting.compile import plan_compilation, quiet_pymc
from bayesgmm.fitting.modes import (
    MODE_GAP_NATS,
    PosteriorOptimizer,
    chain_log_density,
    lagging_chains,
    restart_points,
    search_modes,
)
from bayesgmm.fitting.start import Start, em_start, jittered
from bayesgmm.model import build_model
from bayesgmm.standardize import Standardizer


def test_lagging_chains_are_those_more_than_the_gap_below_the_best():
    lp = np.zeros((4, 50))
    lp[1] -= MODE_GAP_NATS + 0.5  # a poorer mode
    lp[2] -= MODE_GAP_NATS - 0.5  # within the gap: genuine multimodality, left alone
    lp[3] += 0.3
    assert lagging_chains(lp).tolist() == [1]


def test_restart_points_are_distinct_late_draws_of_the_best_chain():
    rng = np.random.default_rng(0)
    draws = {"weights": rng.random((3, 100, 2)), "means": rng.random((3, 100, 2, 1)),
             "chols": rng.random((3, 100, 2, 1, 1))}
    points = restart_points(draws, best=2, n=3)
    picked = [np.flatnonzero((draws["weights"][2] == w).all(axis=1))[0] for w, *_ in points]
    assert picked[0] == 99 and len(set(picked)) == 3 and min(picked) >= 50
    np.testing.assert_array_equal(points[1][1], draws["means"][2, picked[1]])


def test_chain_log_density_reads_every_samplers_name():
    import xarray as xr

    lp = np.arange(6.0).reshape(2, 3)
    for name in ("lp", "logp"):
        ds = xr.Dataset({name: (("chain", "draw"), lp)})
        np.testing.assert_array_equal(chain_log_density(ds), lp)
    assert chain_log_density(xr.Dataset()) is None


def merged_start(start: Start) -> Start:
    """A poorer mode: components 0 and 1 merged into one broad component, 2 split in two."""
    m, c = start.means, start.covariances
    mid = 0.5 * (m[0] + m[1])
    spread = np.outer(m[0] - mid, m[0] - mid) + 0.5 * (c[0] + c[1])
    offset = 0.3 * np.sqrt(np.diag(c[2]))
    return Start(weights=np.array([2 / 3, 1 / 6, 1 / 6]),
                 means=np.stack([mid, m[2] + offset, m[2] - offset]),
                 covariances=np.stack([spread, 0.5 * c[2], 0.5 * c[2]]),
                 covariance_type=start.covariance_type)


def test_search_ranks_the_optima_by_log_posterior(blobs):
    Z = Standardizer.fit(blobs.X).transform(blobs.X)
    good = em_start(Z, 3, random_state=0)
    model = build_model(Z, 3)
    compile_kwargs = plan_compilation("auto", method="map", sampler="auto",
                                      n_obs=len(Z)).compile_kwargs
    rng = np.random.default_rng(0)
    with quiet_pymc(True):  # PyTensor's notice that its C backend has no BLAS
        optimizer = PosteriorOptimizer(model, good, compile_kwargs=compile_kwargs)
        modes = search_modes(optimizer, [merged_start(good), good], rng=rng)
    assert len(modes) == 2
    # The good solution, second in the pool, comes first, far above the merged one.
    assert modes[0].em_rank == 1 and modes[1].em_rank == 0
    assert modes[0].log_posterior > modes[1].log_posterior + 50
    # Its log posterior is the model's at the polished point, and the point is a maximum.
    from pymc.initial_point import make_initial_point_fn

    logp = model.compile_logp(jacobian=False, **compile_kwargs)

    def log_posterior(point):
        fn = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set(),
                                   return_transformed=True)
        return float(logp(fn(0)))

    assert modes[0].log_posterior == pytest.approx(log_posterior(modes[0].start.point()),
                                                   abs=1e-6)
    for _ in range(3):
        assert log_posterior(jittered(modes[0].start, rng, 0.01)) < modes[0].log_posterior
    np.testing.assert_allclose(np.sort(modes[0].start.weights), np.sort(good.weights), atol=0.02)


def test_a_fit_starts_its_chains_in_the_best_mode(map_fit_seed0):
    ms = map_fit_seed0.idata_["mode_search"]
    assert ms.sizes["mode"] >= 1 and bool(ms["converged"].all())
    assert np.all(np.diff(ms["log_posterior"].to_numpy()) < 0)  # best first
    # The MAP is the best mode: its log posterior, and its weights.
    opt = map_fit_seed0.idata_["optimizer"].attrs
    assert opt["log_posterior"] == pytest.approx(float(ms["log_posterior"][0]), abs=1e-9)
    np.testing.assert_allclose(np.sort(map_fit_seed0.weights_)[::-1],
                               ms["weights"].to_numpy()[0], atol=1e-8)


def test_a_chain_left_in_a_poorer_mode_is_restarted_from_the_best(blobs, monkeypatch):
    # The first run's chain 1 is made to report a log density 100 nats below chain 0's (a
    # mode of negligible mass); the repair must sample it again, for real, from chain 0's
    # states, and record both rounds.
    real = fitting_nuts.ADAPTERS["blackjax"]
    runs = []

    def first_run_lags(model, initvals, settings):
        posterior, stats = real(model, initvals, settings)
        runs.append((len(initvals), posterior))
        if len(runs) == 1:
            lp = stats["lp"].to_numpy().copy()
            lp[1] -= 100.0
            stats = stats.assign(lp=(stats["lp"].dims, lp))
        return posterior, stats

    monkeypatch.setitem(fitting_nuts.ADAPTERS, "blackjax", first_run_lags)
    X = blobs.X[:200]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # short chains: ESS under 400
        result = fit(X, 3, draws=200, tune=300, chains=2, sampler="blackjax", random_state=1)
    assert [n for n, _ in runs] == [2, 1]  # one repair: one chain sampled again
    modes = result["modes"]
    np.testing.assert_array_equal(modes["chain"], [0, 1, 0, 1])
    np.testing.assert_array_equal(modes["round"], [0, 0, 1, 1])
    np.testing.assert_array_equal(modes["restarted"], [0, 1, 0, 0])
    gap = modes["mean_log_density"].to_numpy()
    assert gap[0] - gap[1] == pytest.approx(100.0, abs=10.0) and abs(gap[2] - gap[3]) < 10
    # Chain 1 of the result is the second run's chain, chain 0 the first run's.
    first, second = runs[0][1], runs[1][1]
    w = result["posterior"]["weights"].to_numpy()
    assert np.allclose(np.sort(w[1], axis=-1), np.sort(second["weights"].to_numpy()[0], -1))
    assert np.allclose(np.sort(w[0], axis=-1), np.sort(first["weights"].to_numpy()[0], -1))
    diag = diagnose(result)
    assert diag.mode_repairs == 1 and diag.mode_gaps.max() < MODE_GAP_NATS
    assert "mode repair: 1 chain(s) restarted" in str(diag)
    # Both chains describe the same posterior after the repair.
    means = np.sort(w.mean(axis=1), axis=1)
    np.testing.assert_allclose(means[0], means[1], atol=0.05)


def test_without_repair_no_chain_is_restarted(blobs, monkeypatch):
    calls = []
    real = fitting_nuts.ADAPTERS["blackjax"]

    def counted(model, initvals, settings):
        calls.append(len(initvals))
        posterior, stats = real(model, initvals, settings)
        lp = stats["lp"].to_numpy().copy()
        lp[1] -= 100.0
        return posterior, stats.assign(lp=(stats["lp"].dims, lp))

    monkeypatch.setitem(fitting_nuts.ADAPTERS, "blackjax", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(blobs.X[:200], 3, draws=200, tune=300, chains=2, sampler="blackjax",
                     random_state=1, repair_modes=False)
    assert calls == [2] and (result["modes"]["restarted"] == 0).all()
    assert diagnose(result).mode_repairs == 0


# ------------------------------------------------------ the compiled optimiser, reused


def test_a_refit_reuses_the_compiled_optimiser_and_gives_the_same_bits(monkeypatch):
    # A refit of the same data and model takes the optimiser the first fit compiled; the
    # draws are the same bits as with a freshly compiled one, for MAP and for ADVI (whose
    # draws did change when the optimiser was compiled on the fit's own model).
    from bayesgmm.fitting import modes

    built = []
    real_init = PosteriorOptimizer.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(PosteriorOptimizer, "__init__", counting_init)
    monkeypatch.setattr(modes, "_OPTIMIZERS", type(modes._OPTIMIZERS)())
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-3, 1, (60, 2)), rng.normal(3, 1, (60, 2))])

    def fits(method, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a short ADVI run warns; the bits are the point
            return [fit(X, 2, method=method, random_state=1, **kw) for _ in range(2)]

    for method, kw in (("map", {}), ("advi", dict(draws=50, max_iter=300))):
        modes._OPTIMIZERS.clear()
        fresh, reused = fits(method, **kw)
        for name in ("weights", "means", "covariances"):
            np.testing.assert_array_equal(fresh["posterior"][name], reused["posterior"][name])
    assert len(built) == 2  # one compilation per method: the refits took it from the cache
    # Other data (one point moved by 1e-9) or another K: another model, compiled anew.
    X[0, 0] += 1e-9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K=3 on two clusters warns
        fit(X, 2, method="map", random_state=1)
        fit(X, 3, method="map", random_state=1)
    assert len(built) == 4


def test_the_cache_lends_an_optimiser_to_one_fit_at_a_time():
    from bayesgmm.fitting import modes

    made = []

    def build():
        made.append(object())
        return made[-1]

    key = ("test", "lend")
    with modes.reused_optimizer(key, build) as first:
        with modes.reused_optimizer(key, build) as second:  # a fit in another thread
            assert second is not first
    with modes.reused_optimizer(key, build) as again:
        assert again in made and len(made) == 2
    with pytest.raises(RuntimeError):  # a fit that fails does not return its optimiser
        with modes.reused_optimizer(key, build) as taken:
            raise RuntimeError("interrupted")
    with modes.reused_optimizer(key, build) as after:
        assert after is not taken
    for i in range(modes.OPTIMIZER_CACHE_SIZE + 2):
        with modes.reused_optimizer(("test", i), build):
            pass
    assert len(modes._OPTIMIZERS) == modes.OPTIMIZER_CACHE_SIZE
    assert key not in modes._OPTIMIZERS  # the least recently used went first
