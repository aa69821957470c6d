"""Conditional mixtures: imputation draws and Gaussian-mixture regression.

Checked on posteriors built by hand (known parameters, several draws), against independent
computations: the conditional normal from the precision matrix, SciPy's marginal densities,
and Monte Carlo of the joint mixture. Imputation on real fits (coverage of held-out values)
is in test_missing.py.
"""

import numpy as np
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

from bayesgmm import conditional, impute
from bayesgmm.likelihood.conditional import conditional_mixture


def random_posterior(n_draws, k, d, seed, names=None):
    """A DataTree laid out as a fit's posterior: 2 chains of random parameters."""
    rng = np.random.default_rng(seed)
    s = 2 * n_draws
    w = rng.dirichlet(np.full(k, 3.0), s)
    means = rng.normal(0, 2, (s, k, d))
    a = rng.normal(size=(s, k, d, d))
    covs = a @ np.swapaxes(a, -1, -2) / d + 0.3 * np.eye(d)
    names = names or [f"x{j}" for j in range(d)]
    post = xr.Dataset(
        {"weights": (("chain", "draw", "component"), w.reshape(2, n_draws, k)),
         "means": (("chain", "draw", "component", "feature"), means.reshape(2, n_draws, k, d)),
         "covariances": (("chain", "draw", "component", "feature", "feature_bis"),
                         covs.reshape(2, n_draws, k, d, d))},
        coords={"chain": [0, 1], "draw": np.arange(n_draws), "component": np.arange(k),
                "feature": names, "feature_bis": names},
        attrs={"bayesgmm_feature_names_in": int(names[0] != "x0")})
    return xr.DataTree.from_dict({"posterior": post}), (w, means, covs)


def by_precision(v, mean, cov, b, a):
    """The conditional normal of x_a given x_b = v, from the precision matrix."""
    prec = np.linalg.inv(cov)
    cond_cov = np.linalg.inv(prec[np.ix_(a, a)])
    cond_mean = mean[a] - cond_cov @ prec[np.ix_(a, b)] @ (v - mean[b])
    return cond_mean, cond_cov


def test_conditional_mixture_against_the_precision_matrix_and_scipy():
    _, (w, means, covs) = random_posterior(3, 3, 5, seed=0)
    rng = np.random.default_rng(1)
    b, a = np.array([3, 0]), np.array([1, 4, 2])
    v = rng.normal(size=(4, 2))
    cw, cm, cc = conditional_mixture(v, w, means, covs, b, a)
    for s in range(w.shape[0]):
        dens = np.array([[w[s, j] * multivariate_normal(means[s, j, b],
                          covs[s, j][np.ix_(b, b)]).pdf(x) for j in range(3)] for x in v])
        np.testing.assert_allclose(cw[s], dens / dens.sum(axis=1, keepdims=True), rtol=1e-10)
        for j in range(3):
            for n in range(v.shape[0]):
                mean, cov = by_precision(v[n], means[s, j], covs[s, j], b, a)
                np.testing.assert_allclose(cm[s, j, n], mean, rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(cc[s, j], cov, rtol=1e-10, atol=1e-12)


def test_conditional_with_one_component_is_the_conditional_normal():
    tree, (_, means, covs) = random_posterior(3, 1, 3, seed=2)
    v = np.array([[0.5], [-1.0]])
    out = conditional(tree, v, given=[1])
    reg = out["predictions"]["mean"].to_numpy().reshape(6, 2, 2)
    cov = out["posterior"]["covariances"].to_numpy().reshape(6, 1, 2, 2)
    for s in range(6):
        for n in range(2):
            mean, c = by_precision(v[n], means[s, 0], covs[s, 0], np.array([1]),
                                   np.array([0, 2]))
            np.testing.assert_allclose(reg[s, n], mean, rtol=1e-10)
            np.testing.assert_allclose(cov[s, 0], c, rtol=1e-10)
    # The summary's mean is the posterior predictive mean: the average over draws.
    np.testing.assert_allclose(out["summary"]["mean"].to_numpy(), reg.mean(axis=0), rtol=1e-12)
    assert out["posterior"]["weights"].to_numpy() == pytest.approx(1.0)
    assert list(out["summary"]["feature"].to_numpy()) == ["x0", "x2"]


def test_conditional_predictive_mean_and_sd_match_monte_carlo_of_the_joint():
    """K=2: E[x_1 | x_0 = v] and its sd, from joint draws with x_0 within 0.05 of v."""
    tree, (w, means, covs) = random_posterior(2, 2, 2, seed=3)
    rng = np.random.default_rng(4)
    per_draw = 1_000_000
    samples = []
    for s in range(w.shape[0]):
        z = rng.choice(2, per_draw, p=w[s])
        chol = np.linalg.cholesky(covs[s])
        samples.append(means[s][z] + np.einsum("nij,nj->ni", chol[z],
                                               rng.standard_normal((per_draw, 2))))
    # Equal numbers of joint draws per posterior draw would weight each draw by its
    # density at v; the predictive averages p(x_1 | v, theta_s) with equal weights, so
    # average the per-draw window means.
    vs = [float(np.median(samples[0][:, 0])), float(np.quantile(samples[0][:, 0], 0.3))]
    out = conditional(tree, np.array(vs)[:, None], given=["x0"], random_state=0)
    for n, v in enumerate(vs):
        mc_mean, mc_second = [], []
        for x in samples:
            near = x[np.abs(x[:, 0] - v) < 0.05, 1]
            assert near.size > 2000
            mc_mean.append(near.mean())
            mc_second.append((near ** 2).mean())
        mc_mean = np.mean(mc_mean)
        mc_sd = np.sqrt(np.mean(mc_second) - mc_mean ** 2)
        # Monte Carlo: > 2000 points per draw and window, sd ~1-2: se < 0.045 per draw,
        # 0.02 for the average of 4; the window's bias is O(0.05^2). 0.08 is 4 se.
        assert out["summary"]["mean"].to_numpy()[n, 0] == pytest.approx(mc_mean, abs=0.08)
        assert out["summary"]["sd"].to_numpy()[n, 0] == pytest.approx(mc_sd, abs=0.08)


def test_conditional_takes_names_in_any_order_and_refuses_what_it_cannot_do():
    import pandas as pd

    tree, _ = random_posterior(2, 2, 3, seed=5, names=["a", "b", "c"])
    v = np.array([[0.1, 0.2]])
    by_name = conditional(tree, v, given=["c", "a"])
    by_index = conditional(tree, v, given=[2, 0])
    by_frame = conditional(tree, pd.DataFrame(v, columns=["c", "a"]))
    for other in (by_index, by_frame):
        np.testing.assert_array_equal(other["summary"]["mean"].to_numpy(),
                                      by_name["summary"]["mean"].to_numpy())
    assert list(by_name["summary"]["feature"].to_numpy()) == ["b"]
    with pytest.raises(ValueError, match=r"pass X_given\[\['a', 'c'\]\]"):
        conditional(tree, pd.DataFrame(v, columns=["c", "a"]), given=["a", "c"])
    with pytest.raises(ValueError, match="not a feature of the fit"):
        conditional(tree, v, given=["a", "z"])
    with pytest.raises(ValueError, match="nothing to predict"):
        conditional(tree, np.zeros((1, 3)), given=["a", "b", "c"])
    with pytest.raises(ValueError, match="given="):
        conditional(tree, v)
    with pytest.raises(ValueError, match=r"3 column\(s\), but given names 2 feature"):
        conditional(tree, np.zeros((1, 3)), given=["a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        conditional(tree, np.array([[np.nan, 1.0]]), given=["a", "b"])


def test_imputation_draws_follow_the_conditional_mixture():
    """One row, x_1 and x_2 missing: the imputations' moments and the share of draws near
    each component's conditional mean, against the precision-matrix conditionals."""
    tree, (w, means, covs) = random_posterior(1, 2, 3, seed=6)
    # Components 6 apart in x_0, the row near the first: its conditional weights are far
    # from the weights themselves (0.4, 0.6). One posterior draw, repeated 4000 times:
    # the imputations then sample one known conditional mixture.
    means[0, :, 0] = [-3.0, 3.0]
    w[0] = [0.4, 0.6]
    post = tree["posterior"].to_dataset().isel(draw=[0] * 4000, chain=[0])
    post["means"].values[...] = means[0]
    post["weights"].values[...] = w[0]
    post = post.assign_coords(draw=np.arange(4000))
    tree = xr.DataTree.from_dict({"posterior": post})
    x = np.array([[-1.5, np.nan, np.nan]])
    imp = impute(tree, x, random_state=1)
    draws = imp["posterior_predictive"]["x"].to_numpy().reshape(-1, 2)
    b, a = np.array([0]), np.array([1, 2])
    dens = np.array([w[0, j] * multivariate_normal(means[0, j, 0], covs[0, j, 0, 0]).pdf(-1.5)
                     for j in range(2)])
    p = dens / dens.sum()
    assert abs(p[0] - w[0, 0]) > 0.3
    parts = [by_precision(x[0, b], means[0, j], covs[0, j], b, a) for j in range(2)]
    mix_mean = sum(p[j] * parts[j][0] for j in range(2))
    mix_cov = sum(p[j] * (parts[j][1] + np.outer(parts[j][0], parts[j][0]))
                  for j in range(2)) - np.outer(mix_mean, mix_mean)
    # 4000 draws: the mean's se is sd / 63 (sd < 3), the covariance's a few percent.
    np.testing.assert_allclose(draws.mean(axis=0), mix_mean, atol=0.15)
    np.testing.assert_allclose(np.cov(draws.T), mix_cov, rtol=0.1, atol=0.1)
    assert list(imp["posterior_predictive"]["x"]["column"].to_numpy()) == ["x1", "x2"]
    assert list(imp["posterior_predictive"]["x"]["row"].to_numpy()) == [0, 0]
    completed = imp["completed"]["x"].to_numpy()
    assert completed[0, 0] == -1.5
    # The completed data and the summary hold the exact conditional moments.
    np.testing.assert_allclose(completed[0, 1:], mix_mean, rtol=1e-10)
    np.testing.assert_allclose(imp["summary"]["sd"].to_numpy(), np.sqrt(np.diag(mix_cov)),
                               rtol=1e-10)


def test_imputation_is_reproducible_and_keyed_by_row_and_column():
    import pandas as pd

    tree, _ = random_posterior(50, 3, 4, seed=7, names=["a", "b", "c", "d"])
    rng = np.random.default_rng(8)
    X = rng.normal(size=(30, 4))
    X[rng.random(X.shape) < 0.3] = np.nan
    X[5] = np.nan  # nothing observed: drawn from the mixture itself
    frame = pd.DataFrame(X, columns=list("abcd"), index=[f"r{i}" for i in range(30)])
    first = impute(tree, frame, random_state=3)
    again = impute(tree, frame, random_state=3)
    other = impute(tree, frame, random_state=4)
    x1 = first["posterior_predictive"]["x"].to_numpy()
    np.testing.assert_array_equal(x1, again["posterior_predictive"]["x"].to_numpy())
    assert not np.array_equal(x1, other["posterior_predictive"]["x"].to_numpy())
    entries = np.argwhere(np.isnan(X))
    table = first["summary"].to_dataset().to_dataframe()
    assert table["row"].tolist() == [f"r{i}" for i in entries[:, 0]]
    assert table["column"].tolist() == [list("abcd")[j] for j in entries[:, 1]]
    assert (table["lower"] < table["mean"]).all() and (table["mean"] < table["upper"]).all()
    # max_draws thins the posterior evenly; the entries stay the same.
    thin = impute(tree, frame, max_draws=10, random_state=3)
    assert thin["posterior_predictive"]["x"].shape == (2, 5, len(entries))
    with pytest.raises(ValueError, match="nothing to impute"):
        impute(tree, frame.fillna(0.0))
    with pytest.raises(ValueError, match="interval_prob"):
        impute(tree, frame, interval_prob=1.5)


def test_far_from_zero_and_point_estimates_keep_their_spread():
    """Data at 1e8: the sd is that of the same mixture at 0 (no cancellation). A point
    estimate (one draw) is repeated, so its imputations and intervals have the spread of
    the conditional distribution, and its mean is the exact conditional mean."""
    tree, (w, means, covs) = random_posterior(1, 2, 2, seed=9)
    shifted = tree["posterior"].to_dataset().copy(deep=True)
    shifted["means"].values[...] += 1e8
    far = conditional(xr.DataTree.from_dict({"posterior": shifted}), [[1e8 + 0.5]], given=[0])
    near = conditional(tree, [[0.5]], given=[0])
    np.testing.assert_allclose(far["summary"]["sd"].to_numpy(),
                               near["summary"]["sd"].to_numpy(), rtol=1e-6)
    one = tree["posterior"].to_dataset().isel(chain=[0], draw=[0])
    point = xr.DataTree.from_dict({"posterior": one})
    reg = conditional(point, [[0.5]], given=[0])["summary"].to_dataset().squeeze()
    assert float(reg["lower"]) < float(reg["mean"]) < float(reg["upper"])
    imp = impute(point, [[0.5, np.nan]], random_state=0)  # a list, not an array
    draws = imp["posterior_predictive"]["x"].to_numpy().ravel()
    assert draws.size == 1000 and draws.std() > 0
    exact = float(reg["mean"])  # the same conditional mean, computed by conditional
    summary = imp["summary"].to_dataset()
    np.testing.assert_allclose(summary["mean"].to_numpy(), [exact], rtol=1e-12)
    np.testing.assert_allclose(summary["sd"].to_numpy(), [float(reg["sd"])], rtol=1e-12)
    # 1000 draws: the sample sd within 10% of the exact one.
    assert draws.std() == pytest.approx(float(reg["sd"]), rel=0.1)
