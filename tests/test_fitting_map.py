"""The MAP fit: recovery of known truth, one draw, a converged optimiser."""

from helpers import check_recovery


def test_map_recovers_truth(map_fit, blobs):
    check_recovery(map_fit, blobs, mean_tol=0.1, weight_tol=0.02, sd_rtol=0.1)
    assert map_fit.idata_["posterior"].sizes["draw"] == 1
    assert map_fit.idata_["optimizer"].attrs["converged"] == 1
