"""Choosing K by PSIS-LOO, with EM's BIC beside it."""

import warnings

import pytest

from bayesgmm import FitWarning
from bayesgmm.selection import select_components


def check_three_is_chosen(sel):
    t = sel.table
    # K=3 beats K=2 by far more than two standard errors of the paired difference...
    assert t.loc[3, "elpd_loo"] - t.loc[2, "elpd_loo"] > 2 * t.loc[2, "dse"] + 2 * t.loc[3, "dse"]
    # ...and K=4 is not better than K=3 beyond its standard error.
    dse = max(t.loc[3, "dse"], t.loc[4, "dse"])
    assert t.loc[4, "elpd_loo"] - t.loc[3, "elpd_loo"] <= 2 * dse
    assert sel.best == 3
    assert t["bic_em"].idxmin() == 3
    assert "suggested K = 3" in str(sel)


def test_loo_chooses_three_well_separated_clusters_advi(blobs):
    sel = select_components(blobs.X, 4, min_components=2, method="advi", draws=500,
                            random_state=0)
    assert list(sel.table.index) == [2, 3, 4]
    assert {"elpd_loo", "se", "p_loo", "elpd_diff", "dse", "n_bad_pareto_k", "bic_em",
            "aic_em"} <= set(sel.table.columns)
    assert set(sel.fits) == {2, 3, 4}
    check_three_is_chosen(sel)


@pytest.mark.slow
def test_loo_chooses_three_well_separated_clusters_nuts(blobs):
    # K=4 is overfitted: its fit warns (tree depth, R-hat), as it should; the table is what
    # is tested here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        sel = select_components(blobs.X, 4, min_components=2, random_state=0)
    check_three_is_chosen(sel)
    assert (sel.table["n_bad_pareto_k"] == 0).all()


def test_selection_bad_input(blobs):
    with pytest.raises(ValueError, match="must not exceed"):
        select_components(blobs.X, 2, min_components=3)
    with pytest.raises(ValueError, match="posterior draws"):
        select_components(blobs.X, 2, method="map")
    with pytest.raises(ValueError, match="max_components"):
        select_components(blobs.X, 0)
