"""save/load: a loaded model predicts exactly as the saved one."""

import numpy as np
import pytest
from helpers import need

from bayesgmm import BayesianGMM, Priors


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_save_load_roundtrip(nuts_fit, blobs, tmp_path, suffix):
    need("h5netcdf" if suffix == ".nc" else "zarr")
    path = tmp_path / f"fit{suffix}"
    nuts_fit.save(path)
    loaded = BayesianGMM.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(blobs.X), nuts_fit.predict_proba(blobs.X))
    np.testing.assert_array_equal(loaded.score_samples(blobs.X),
                                  nuts_fit.score_samples(blobs.X))
    assert loaded.get_params() == nuts_fit.get_params()
    assert set(loaded.idata_.children) == set(nuts_fit.idata_.children)
    assert loaded.idata_["posterior"].attrs == nuts_fit.idata_["posterior"].attrs
    assert loaded.diagnose().ok


def test_save_load_map_fit_with_priors_and_names(tmp_path, blobs):
    import pandas as pd

    need("h5netcdf")
    df = pd.DataFrame(blobs.X[:100], columns=["height", "width"])
    model = BayesianGMM(3, method="map", priors=Priors(lkj_eta=3.0), random_state=0).fit(df)
    model.save(tmp_path / "map.nc")
    loaded = BayesianGMM.load(tmp_path / "map.nc")
    assert loaded.priors == Priors(lkj_eta=3.0)
    assert list(loaded.feature_names_in_) == ["height", "width"]
    np.testing.assert_array_equal(loaded.predict_proba(df), model.predict_proba(df))


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved fit"):
        BayesianGMM.load(tmp_path / "missing.nc")
    import xarray as xr

    need("h5netcdf")
    xr.DataTree.from_dict({"a": xr.Dataset({"v": ("x", [1.0])})}).to_netcdf(
        tmp_path / "other.nc", engine="h5netcdf")
    with pytest.raises(ValueError, match="not a fit saved by bayesgmm"):
        BayesianGMM.load(tmp_path / "other.nc")
    with pytest.raises(Exception, match="NotFitted|not fitted"):
        BayesianGMM(2).save(tmp_path / "x.nc")
