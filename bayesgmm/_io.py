"""Saving and loading fits: the DataTree as netCDF (h5netcdf) or zarr, with the settings."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import xarray as xr

PARAMS_ATTR = "bayesgmm_estimator_params"


def _engine(path: Path) -> str:
    if path.suffix == ".zarr":
        needed, engine = "zarr", "zarr"
    else:
        needed, engine = "h5netcdf", "h5netcdf"
    if importlib.util.find_spec(needed) is None:
        raise ImportError(f"Saving to {path.name!r} needs the {needed} package: "
                          f"pip install 'bayesgmm[io]'.")
    return engine


def _storable(ds: xr.Dataset) -> xr.Dataset:
    """Object-dtype variables (nutpie's divergence messages) become fixed-width strings."""
    out = ds.copy()
    for name, var in ds.data_vars.items():
        if var.dtype == object:
            out[name] = var.astype(str)
    return out


def _jsonable_params(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)
        elif isinstance(value, np.random.Generator):
            value = None  # a generator's state is not a setting; the draws are saved
        elif isinstance(value, np.integer):
            value = int(value)
        elif isinstance(value, np.floating):
            value = float(value)
        out[key] = value
    return out


def save_tree(tree: xr.DataTree, path, params: dict) -> Path:
    path = Path(path)
    engine = _engine(path)
    groups = {name: _storable(tree[name].to_dataset()) for name in tree.children}
    root = xr.Dataset(attrs={PARAMS_ATTR: json.dumps(_jsonable_params(params))})
    out = xr.DataTree.from_dict({"/": root, **groups})
    if engine == "zarr":
        # Zarr 3 warns that consolidated metadata is not part of its specification.
        out.to_zarr(path, mode="w", consolidated=False)
    else:
        out.to_netcdf(path, engine=engine)
    return path


def load_tree(path) -> tuple[xr.DataTree, dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved fit at {str(path)!r}.")
    engine = _engine(path)
    kwargs = {"consolidated": False} if engine == "zarr" else {}
    with xr.open_datatree(path, engine=engine, **kwargs) as opened:
        tree = opened.load()
    if PARAMS_ATTR not in tree.attrs:
        raise ValueError(f"{str(path)!r} is not a fit saved by bayesgmm (no {PARAMS_ATTR}).")
    params = json.loads(tree.attrs[PARAMS_ATTR])
    groups = {name: tree[name].to_dataset() for name in tree.children}
    return xr.DataTree.from_dict(groups), params
