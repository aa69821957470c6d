"""relabel(): chains in different label permutations are put back in one order."""

import numpy as np
import pytest
from helpers import label_means, match, max_rhat


@pytest.mark.slow
def test_eight_components_four_chains_converge_after_relabelling():
    """K=8 in 2-D, 4 chains, each chain's labels scrambled as if started independently.

    The fit itself starts every chain at the EM solution and needs no relabelling here
    (measured: max R-hat 1.005, no draw relabelled, 49 s with blackjax); scrambling each
    chain by its own random permutation of 8 labels is what independently started chains
    would give. Raw R-hat explodes; either relabelling algorithm restores R-hat <= 1.01 and
    the per-label sample means.
    """
    import xarray as xr
    from helpers import label_means, match, max_rhat

    from bayesgmm import BayesianGMM, diagnose, relabel
    from bayesgmm.datasets import make_mixture

    truth = make_mixture(1800, 8, 2, separation=10.0, random_state=0)
    model = BayesianGMM(8, chains=4, random_state=0).fit(truth.X)
    assert max_rhat(model.idata_) <= 1.01
    dt = model.idata_
    post = dt["posterior"].to_dataset()
    rng = np.random.default_rng(1)
    scrambled = post.copy()
    perms = [np.arange(8)] + [rng.permutation(8) for _ in range(3)]
    for name in ("weights", "means", "sigmas", "covariances"):
        values = post[name].to_numpy().copy()
        for c, perm in enumerate(perms):
            values[c] = values[c][:, perm]
        scrambled[name] = (post[name].dims, values)
    tree = {name: dt[name].to_dataset() for name in dt.children}
    tree["posterior"] = scrambled
    broken = xr.DataTree.from_dict(tree)
    assert max_rhat(broken) > 1.5
    assert "chains in different label permutations" in {p.kind for p in diagnose(broken).problems}
    emp = label_means(truth)
    for method in ("stephens", "pivot"):
        fixed = relabel(broken, method=method, max_obs=300)
        assert max_rhat(fixed) <= 1.01, method
        means = fixed["posterior"]["means"].mean(("chain", "draw")).to_numpy()
        # 8 clusters 7.7 sds apart, >= 50 points each: posterior means within 0.05 of the
        # sample means (measured 0.003).
        np.testing.assert_allclose(means[match(emp, means)], emp, atol=0.05)
        assert diagnose(fixed).ok


@pytest.mark.parametrize("method", ["stephens", "pivot"])
def test_relabel_repairs_chains_in_different_permutations(nuts_fit, blobs, method):
    """Permute the labels of one chain: raw R-hat explodes; relabelling restores it."""
    import arviz_stats as azs

    from bayesgmm.relabel import relabel

    dt = nuts_fit.idata_.copy()
    post = dt["posterior"].to_dataset()
    swapped = post.copy()
    for name in ("weights", "means", "sigmas", "covariances"):
        values = post[name].to_numpy().copy()
        values[1] = values[1][:, [2, 0, 1]]
        swapped[name] = (post[name].dims, values)
    tree = {name: dt[name].to_dataset() for name in dt.children}
    tree["posterior"] = swapped
    import xarray as xr

    broken = xr.DataTree.from_dict(tree)
    raw = azs.rhat(broken, var_names=["means"])["means"].max()
    assert float(raw) > 1.5
    fixed = relabel(broken, method=method)
    assert max_rhat(fixed) <= 1.01
    means = fixed["posterior"]["means"].mean(("chain", "draw")).to_numpy()
    emp = label_means(blobs)
    np.testing.assert_allclose(means[match(emp, means)], emp, atol=0.1)
    perm = fixed["relabeling"]["permutation"].to_numpy()
    assert np.all(np.sort(perm, axis=-1) == np.arange(3))
