"""Every example notebook runs, with small sizes, shows no warning, and reaches its point.

The examples are Jupyter notebooks kept as plain Python files (jupytext's percent format).
Each is executed here by nbclient in a fresh kernel, as the docs build executes it, with
``BAYESGMM_EXAMPLES_SMALL=1``; a cell appended by the test prints what the assertions
check, as JSON.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

#: Text that must not appear in any output: a warning shown to the reader is one the
#: example should have avoided or explained (the kernel's own log is not an output).
WARNING_TEXT = re.compile(r"Warning|warnings\.warn|Traceback")


def run(name, checks: str, monkeypatch, tmp_path) -> dict:
    """Execute ``examples/{name}.py`` as a notebook; the JSON that ``checks`` prints."""
    monkeypatch.setenv("BAYESGMM_EXAMPLES_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = jupytext.read(EXAMPLES / f"{name}.py")
    nb.cells.append(nbformat.v4.new_code_cell("import json as _json\n" + checks))
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    for o in outputs:
        text = o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items()
                                           if k.startswith("text/"))
        assert not WARNING_TEXT.search(text), text[:2000]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure rendered"
    last = outputs[-1]["text"]
    return json.loads(last[last.index("{"):])


def test_examples_folder_is_covered():
    tested = {"quickstart", "nuts_vs_advi", "bayes_vs_em", "covariance_structures"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(monkeypatch, tmp_path):
    r = run("quickstart", "print(_json.dumps({'ari': float(ari), "
            "'rhat': float(model.diagnose().max_rhat)}))", monkeypatch, tmp_path)
    assert r["ari"] > 0.9 and r["rhat"] <= 1.01


#: The MAP row is the maximum a posteriori: on the model's (standardised) scale its point
#: has a higher log posterior than the EM start it began from, and than each of 20 random
#: points 0.01 away (in the means, the log weights and the Cholesky factors' entries, the
#: diagonal's on the log scale). At a maximum such a step lowers the log posterior by
#: ~0.5 x 0.01^2 x n_k / sd_k^2 ~ 0.1 here, far above the optimiser's first-order remainder
#: (a gradient of ~1e-5 times 0.01).
MAP_CHECK = """
from bayesgmm.model import build_model, log_posterior, point_from_params
from bayesgmm.standardize import Standardizer
m = fits["map"]
std = Standardizer.fit(truth.X)
logpost = log_posterior(build_model(std.transform(truth.X), 3))
def scaled(w, mu, cov):
    return w, std.means_to_model(mu), np.linalg.cholesky(std.covariances_to_model(cov))
def lp(w, mu, ch):
    return float(logpost(point_from_params(w, mu, ch)))
w, mu, ch = scaled(m.weights_, m.means_, m.covariances_)
best = lp(w, mu, ch)
s = m.idata_["initial_point"]
from_start = lp(*scaled(*(s[v].to_numpy() for v in ("weights", "means", "covariances"))))
g = np.random.default_rng(0)
diag = np.eye(ch.shape[-1], dtype=bool)
near = []
for _ in range(20):
    wn = w * np.exp(0.01 * g.standard_normal(w.shape))
    step = 0.01 * np.tril(g.standard_normal(ch.shape))
    chn = np.where(diag, ch * np.exp(step), ch + step)
    near.append(lp(wn / wn.sum(), mu + 0.01 * g.standard_normal(mu.shape), chn))
print(_json.dumps({"table": table.reset_index().to_dict("list"), "best": best,
                   "start": from_start, "near": near}))
"""


def test_nuts_vs_advi(monkeypatch, tmp_path):
    r = run("nuts_vs_advi", MAP_CHECK, monkeypatch, tmp_path)
    table = r["table"]
    assert table["method"] == ["nuts", "advi", "fullrank_advi", "map"]
    # Every method finds the same clusters (tolerance: a few posterior sds at N=300).
    assert max(table["max |means - NUTS means|"]) < 0.3
    assert table["mean sd of means"][0] > 0
    assert r["best"] > r["start"]
    assert max(r["near"]) < r["best"], (max(r["near"]), r["best"])


def test_bayes_vs_em(monkeypatch, tmp_path):
    checks = """
pts = comparison.points
print(_json.dumps({"bayes_rule_error": bayes_rule_error, "ml_vs_em": ml_vs_em,
                   "diverged": bool(collapsed.info["diverged"]), "warned": collapse_warned,
                   "ll": path["log_likelihood"].tolist(), "lp": path["log_posterior"].tolist(),
                   "metrics": {k: float(v) for k, v in comparison.metrics.items()
                               if np.isscalar(v)},
                   "between_x": X[pts["confident_other_not_bayes"].to_numpy(), 0].tolist()}))
"""
    r = run("bayes_vs_em", checks, monkeypatch, tmp_path)
    assert r["bayes_rule_error"] < 1e-10
    assert r["ml_vs_em"] < 1e-6
    assert r["diverged"] and r["warned"]
    ll, lp = np.array(r["ll"]), np.array(r["lp"])
    assert np.all(np.diff(ll[-10:]) > 0) and np.all(np.diff(lp[-10:]) < 0)
    m = r["metrics"]
    assert m["n_confident_other_not_bayes"] > 0 and m["agreement"] > 0.95
    # The points where EM is sure and the posterior is not lie between clusters: none is
    # outside the band between the two overlapping ones (centred at x = -1.75 and 1.75).
    assert np.abs(r["between_x"]).max() < 1.75


def test_covariance_structures(monkeypatch, tmp_path):
    # In one process (n_jobs=1 at the small size): the parallel grid is checked against the
    # serial one by a slow test in test_selection.py.
    checks = """
t = sel.table
print(_json.dumps({"best": sel.best_covariance_type, "mean_error": mean_error,
                   "full": [t.loc[("full", 3), "elpd_diff"], t.loc[("full", 3), "dse"]],
                   "spherical": [t.loc[("spherical", 3), "elpd_diff"],
                                 t.loc[("spherical", 3), "dse"]]}))
"""
    r = run("covariance_structures", checks, monkeypatch, tmp_path)
    assert r["best"] == "diag"
    # The full structure does not beat the diagonal truth; spherical is clearly worse.
    assert r["full"][0] <= 2 * r["full"][1]
    assert r["spherical"][0] < -2 * r["spherical"][1]
    # 50 points per cluster, standard deviations up to 2: means within 0.9 (3 standard
    # errors of the widest feature).
    assert r["mean_error"] < 0.9
