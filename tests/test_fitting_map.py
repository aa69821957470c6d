"""The MAP fit: recovery of known truth, one draw, a converged optimiser."""

from helpers import check_recovery


def test_map_recovers_truth(map_fit, blobs):
    check_recovery(map_fit, blobs, mean_tol=0.1, weight_tol=0.02, sd_rtol=0.1)
    assert map_fit.idata_["posterior"].sizes["draw"] == 1
    assert map_fit.idata_["optimizer"].attrs["converged"] == 1


def test_a_map_fit_without_the_mode_search_reports_its_optimisation(monkeypatch, blobs):
    # Above MODE_SEARCH_MAX_ROWS rows the MAP's L-BFGS is the fit's one long step: with
    # progress on it is reported (it printed nothing on 1e5 rows), with the verdict.
    import contextlib
    import io
    import re

    from bayesgmm import fit
    from bayesgmm.fitting import pipeline

    monkeypatch.setattr(pipeline, "MODE_SEARCH_MAX_ROWS", 10)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        result = fit(blobs.X, 3, method="map", random_state=0, progressbar=True)
    lines = err.getvalue().splitlines()
    assert not any("mode search" in line for line in lines), lines
    assert re.fullmatch(r"bayesgmm: MAP: compiling and L-BFGS \.\.\. [0-9.]+ s", lines[1])
    iterations = int(result["optimizer"].attrs["iterations"])
    assert lines[2] == f"bayesgmm: MAP: {iterations} iterations, converged"
