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


def test_nuts_vs_advi():
    table = load("nuts_vs_advi").main(small=True)
    assert list(table.index) == ["nuts", "advi", "fullrank_advi", "map"]
    # Every method finds the same clusters (tolerance: a few posterior sds at N=300).
    assert (table["max |means - NUTS means|"] < 0.3).all()
    assert table.loc["map", "mean sd of means"] == 0
    assert table.loc["nuts", "mean sd of means"] > 0


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
    r = load("covariance_structures").main(small=True)
    t = r["selection"].table
    assert r["selection"].best_covariance_type == "diag"
    # The full structure does not beat the diagonal truth; spherical is clearly worse.
    assert t.loc[("full", 3), "elpd_diff"] <= 2 * t.loc[("full", 3), "dse"]
    assert t.loc[("spherical", 3), "elpd_diff"] < -2 * t.loc[("spherical", 3), "dse"]
    # 50 points per cluster, standard deviations up to 2: means within 0.9 (3 standard
    # errors of the widest feature).
    assert r["mean_error"] < 0.9
