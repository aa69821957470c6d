"""Notebook display: the HTML of a fit and of its diagnostics, and the summary's digits."""

import re

import numpy as np
import pandas as pd
import pytest
import sklearn
import xarray as xr

from bayesgmm import BayesianGMM, summary
from bayesgmm.diagnostics import Diagnostics, Problem, _intervals_at_value_precision
from bayesgmm.exceptions import ConvergenceWarning


def cells(html, tag="td"):
    return [re.sub("<[^>]+>", "", c) for c in re.findall(f"<{tag}[^>]*>(.*?)</{tag}>", html)]


def test_a_fit_shows_its_method_size_time_verdict_and_weights(map_fit):
    html = map_fit._repr_mimebundle_()["text/html"]
    assert "<b>BayesianGMM</b>" in html
    assert "400 rows &times; 2 features: x0, x1" in html
    assert re.search(r"fit time</th><td>[0-9.]+ s", html)
    assert "no problems found" in html
    assert "sk-global" in html  # scikit-learn's diagram is kept below ours
    # The weights' cells are the fit's weights, to three decimals.
    shown = [float(c) for c in cells(html) if re.fullmatch(r"0\.\d{3}", c)]
    np.testing.assert_allclose(shown, map_fit.weights_, atol=5e-4)
    # One point (MAP): no interval column.
    assert "94% interval" not in html


def test_a_vi_fit_shows_intervals_of_the_weights(advi_fit):
    html = advi_fit._repr_html_()
    assert "advi, 1 chain(s) &times; 400 draw(s)" in html
    bounds = re.findall(r"(0\.\d{3}) &ndash; (0\.\d{3})", html)
    assert len(bounds) == 3
    w = advi_fit._draws.weights
    lo, hi = np.quantile(w, [0.03, 0.97], axis=0)
    np.testing.assert_allclose(np.array(bounds, float), np.c_[lo, hi], atol=5e-4)


def test_names_are_escaped_and_an_unfitted_estimator_is_only_the_diagram():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"<b>a</b>": np.r_[rng.normal(0, 1, 20), rng.normal(6, 1, 20)]})
    model = BayesianGMM(2, method="map", random_state=0)
    assert "bayesgmm-repr" not in model._repr_html_()
    html = model.fit(X)._repr_html_()
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<b>a</b>" not in html
    with sklearn.config_context(display="text"):  # the user's choice of no HTML holds
        assert "text/html" not in model._repr_mimebundle_()


def test_diagnostics_show_what_applies_to_the_method(map_fit, advi_fit, nuts_fit):
    for fitted, absent, present in [
            (map_fit, ["R-hat", "divergences", "ESS", "n/a", "ELBO"], ["optimiser converged"]),
            (advi_fit, ["R-hat", "divergences", "n/a", "optimiser"], ["ELBO converged"]),
            (nuts_fit, ["n/a", "ELBO", "optimiser"], ["max R-hat", "divergences"])]:
        diag = fitted.diagnose()
        for text in (str(diag), diag._repr_html_()):
            for word in absent:
                assert word not in text, (diag.method, word)
            for word in present:
                assert word in text, (diag.method, word)


def test_diagnostics_html_lists_each_problem_with_its_advice(map_fit):
    diag = map_fit.diagnose()
    bad = Diagnostics(**{**diag.__dict__, "problems": [
        Problem("rhat", "R-hat is 1.2 > 1.01: run longer chains & <check>.",
                ConvergenceWarning)]})
    html = bad._repr_html_()
    assert "1 problem(s)" in html and "no problems found" not in html
    assert "<b>rhat</b> (ConvergenceWarning): R-hat is 1.2 &gt; 1.01: run longer chains " \
           "&amp; &lt;check&gt;." in html


def summary_tree(mean, sd, n_draws=2000, n_chains=1, seed=0):
    rng = np.random.default_rng(seed)
    draws = rng.normal(mean, sd, (n_chains, n_draws))
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw"), draws)})})


@pytest.mark.parametrize("n_chains", [1, 4])
@pytest.mark.parametrize(("mean", "sd"), [(217.18, 0.56), (0.0123, 0.0004), (5e4, 300.0)])
def test_intervals_are_shown_at_the_precision_of_their_values(mean, sd, n_chains):
    import arviz_stats as azs

    kind = "all" if n_chains > 1 else "stats"
    tree = summary_tree(mean, sd, n_chains=n_chains)
    table = _intervals_at_value_precision(azs.summary(tree, kind=kind))
    shown = table._display_df().loc["mu"]
    bounds = [c for c in table.columns if c.endswith(("_lb", "_ub"))]
    places = {len(str(shown[c]).partition(".")[2]) for c in ["mean", *bounds]}
    assert len(places) == 1, shown  # the same decimals for the mean and both bounds
    # Each shown bound is its value rounded (never 2 significant figures of a large one).
    for c in bounds:
        assert abs(float(shown[c]) - table.loc["mu", c]) <= 0.05 * sd, (c, shown[c])
    # The values are not rounded: what a program reads (and to_csv writes) is exact.
    assert table.loc["mu", bounds[0]] == float(azs.summary(tree, kind=kind, round_to="none")
                                               .loc["mu", bounds[0]])


def test_the_summary_of_a_fit_shows_intervals_at_value_precision(nuts_fit):
    table = summary(nuts_fit)
    shown = table._display_df()
    bounds = [c for c in table.columns if c.endswith(("_lb", "_ub"))]
    for idx in table.index:
        places = {len(str(shown.loc[idx, c]).partition(".")[2]) for c in ["mean", *bounds]}
        assert len(places) == 1, (idx, shown.loc[idx].to_dict())
