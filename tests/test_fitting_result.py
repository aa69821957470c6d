"""The fit's DataTree: the same layout for every method, ready for ArviZ."""

import warnings

import numpy as np
import pytest
from helpers import scipy_loglik

from bayesgmm import FitWarning, fit
from bayesgmm.fitting import result as fit_result


def test_every_method_returns_the_same_layout(nuts_fit, advi_fit, fullrank_fit, map_fit):
    # Each fit against the documented layout (bayesgmm.fitting.pipeline), not against another
    # fit, so that every one of them can fail on its own.
    common = {"posterior", "log_likelihood", "observed_data", "constant_data", "relabeling",
              "initial_point", "mode_search"}
    sample = ("chain", "draw")
    dims = {"weights": sample + ("component",), "means": sample + ("component", "feature"),
            "sigmas": sample + ("component", "feature"),
            "covariances": sample + ("component", "feature", "feature_bis")}
    for fitted, extra in [(nuts_fit, {"sample_stats", "modes"}), (advi_fit, {"variational"}),
                          (fullrank_fit, {"variational"}), (map_fit, {"optimizer"})]:
        dt = fitted.idata_
        assert set(dt.children) == common | extra, fitted.method
        ms = dt["mode_search"]
        assert ms["weights"].dims == ("mode", "component") and ms.sizes["mode"] >= 1
        post = dt["posterior"]
        assert {name: post[name].dims for name in post.data_vars} == dims, fitted.method
        assert dict(post.sizes) == {"chain": post.sizes["chain"], "draw": post.sizes["draw"],
                                    "component": 3, "feature": 2, "feature_bis": 2}
        np.testing.assert_array_equal(post["component"].to_numpy(), [0, 1, 2])
        for coord in ("feature", "feature_bis"):
            assert list(post[coord].to_numpy()) == ["x0", "x1"], (fitted.method, coord)
        assert dt["log_likelihood"]["x"].dims == sample + ("obs",)


def test_result_layout(nuts_fit, blobs):
    dt = nuts_fit.idata_
    for group in ("posterior", "log_likelihood", "observed_data", "sample_stats",
                  "constant_data", "relabeling", "initial_point"):
        assert group in dt.children, group
    post = dt["posterior"]
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert dict(post.sizes) == {"chain": 2, "draw": 1000, "component": 3, "feature": 2,
                                "feature_bis": 2}
    assert dt["log_likelihood"]["x"].shape == (2, 1000, 400)
    np.testing.assert_array_equal(dt["observed_data"]["x"].to_numpy(), blobs.X)
    perm = dt["relabeling"]["permutation"].to_numpy()
    assert np.all(np.sort(perm, axis=-1) == np.arange(3))


def test_log_likelihood_group_is_independent_recomputation(map_fit, blobs):
    # SciPy's mixture density at the stored draw (the fit computes it with
    # bayesgmm.likelihood, which comparing with would test nothing).
    post = map_fit.idata_["posterior"]
    w = post["weights"].to_numpy()[0, 0]
    mu = post["means"].to_numpy()[0, 0]
    cov = post["covariances"].to_numpy()[0, 0]
    ll = map_fit.idata_["log_likelihood"]["x"].to_numpy()[0, 0]
    np.testing.assert_allclose(ll, scipy_loglik(blobs.X, w, mu, cov), rtol=0, atol=1e-10)


def test_loo_runs_on_result(nuts_fit):
    import arviz_stats as azs

    loo = azs.loo(nuts_fit.idata_)
    assert np.isfinite(loo.elpd) and loo.elpd < 0


def test_arviz_summary_of_whole_result(nuts_fit):
    import arviz as az

    table = az.summary(nuts_fit.idata_)
    assert "covariances[1, x0, x1]" in table.index
    # Relabelled draws: no label switching left for R-hat to see.
    assert table["r_hat"].astype(float).max() <= 1.01


def test_not_storing_warns_once_with_the_size_and_the_remedy(blobs, monkeypatch):
    monkeypatch.setattr(fit_result, "LOG_LIKELIHOOD_MAX_BYTES", 1e3)
    with pytest.warns(FitWarning) as record:
        result = fit(blobs.X, 3, method="map", random_state=0)
    messages = [str(w.message) for w in record if "not stored" in str(w.message)]
    # 1 draw x 400 points x 8 bytes = 3.2 kB > 1 kB
    assert len(messages) == 1 and "0 MB" in messages[0]
    assert "store_log_likelihood=True" in messages[0]
    assert "log_likelihood" not in result.children
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own choice: nothing to say
        fit(blobs.X, 3, method="map", store_log_likelihood=False, random_state=0)
