"""Every example runs, with small sizes, and reaches its point."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_folder_is_covered():
    tested = {"quickstart", "nuts_vs_advi", "bayes_vs_em", "covariance_structures"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(tmp_path):
    result = load("quickstart").main(small=True, out=str(tmp_path))
    assert result["ari"] > 0.9
    assert (tmp_path / "quickstart.png").stat().st_size > 10_000


def test_nuts_vs_advi(monkeypatch):
    import numpy as np

    from bayesgmm.model import build_model, log_posterior, point_from_params
    from bayesgmm.standardize import Standardizer

    module = load("nuts_vs_advi")
    fits = {}

    class Recording(module.BayesianGMM):
        """The example's estimator, keeping each fit and its data for the checks below."""

        def fit(self, X, y=None):
            fits[self.method] = (super().fit(X, y), np.asarray(X))
            return self

    monkeypatch.setattr(module, "BayesianGMM", Recording)
    table = module.main(small=True)
    assert list(table.index) == ["nuts", "advi", "fullrank_advi", "map"]
    # Every method finds the same clusters (tolerance: a few posterior sds at N=300).
    assert (table["max |means - NUTS means|"] < 0.3).all()
    assert table.loc["nuts", "mean sd of means"] > 0
    # The MAP row is the maximum a posteriori: on the model's (standardised) scale its point
    # has a higher log posterior than the EM start it began from, and than each of 20 random
    # points 0.01 away (in the means, the log weights and the Cholesky factors' entries, the
    # diagonal's on the log scale). At a maximum such a step lowers the log posterior by
    # ~0.5 x 0.01^2 x n_k / sd_k^2 ~ 0.1 here, far above the optimiser's first-order remainder
    # (a gradient of ~1e-5 times 0.01).
    model, X = fits["map"]
    std = Standardizer.fit(X)
    logpost = log_posterior(build_model(std.transform(X), 3))

    def on_model_scale(weights, means, covariances):
        return (weights, std.means_to_model(means),
                np.linalg.cholesky(std.covariances_to_model(covariances)))

    def lp(weights, means, chols):
        return float(logpost(point_from_params(weights, means, chols)))

    w, mu, chols = on_model_scale(model.weights_, model.means_, model.covariances_)
    best = lp(w, mu, chols)
    start = model.idata_["initial_point"]
    assert best > lp(*on_model_scale(*(start[v].to_numpy()
                                       for v in ("weights", "means", "covariances"))))
    rng = np.random.default_rng(0)
    diagonal = np.eye(chols.shape[-1], dtype=bool)
    for _ in range(20):
        w_near = w * np.exp(0.01 * rng.standard_normal(w.shape))
        step = 0.01 * np.tril(rng.standard_normal(chols.shape))
        chols_near = np.where(diagonal, chols * np.exp(step), chols + step)
        near = lp(w_near / w_near.sum(), mu + 0.01 * rng.standard_normal(mu.shape), chols_near)
        assert near < best, (near, best)


def test_bayes_vs_em(tmp_path):
    import numpy as np

    r = load("bayes_vs_em").main(small=True, out=str(tmp_path))
    assert r["bayes_rule_error"] < 1e-10
    assert r["ml_vs_em"] < 1e-6
    assert r["collapsed"].info["diverged"] and r["collapse_warned"]
    ll, lp = r["path"]["log_likelihood"].to_numpy(), r["path"]["log_posterior"].to_numpy()
    assert np.all(np.diff(ll[-10:]) > 0) and np.all(np.diff(lp[-10:]) < 0)
    m = r["comparison"].metrics
    assert m["n_confident_other_not_bayes"] > 0 and m["agreement"] > 0.95
    # The points where EM is sure and the posterior is not lie between clusters: none is
    # outside the band between the two overlapping ones (centred at x = -1.75 and 1.75).
    between = r["comparison"].points["confident_other_not_bayes"].to_numpy()
    assert np.abs(r["X"][between, 0]).max() < 1.75
    assert (tmp_path / "bayes_vs_em.png").stat().st_size > 10_000


def test_covariance_structures():
    # In this process (n_jobs=1): the parallel grid is checked against the serial one by a
    # slow test in test_selection.py; worker processes would only add their start-up
    # (importing PyMC, compiling) to the default run.
    r = load("covariance_structures").main(small=True, n_jobs=1)
    t = r["selection"].table
    assert r["selection"].best_covariance_type == "diag"
    # The full structure does not beat the diagonal truth; spherical is clearly worse.
    assert t.loc[("full", 3), "elpd_diff"] <= 2 * t.loc[("full", 3), "dse"]
    assert t.loc[("spherical", 3), "elpd_diff"] < -2 * t.loc[("spherical", 3), "dse"]
    # 50 points per cluster, standard deviations up to 2: means within 0.9 (3 standard
    # errors of the widest feature).
    assert r["mean_error"] < 0.9
