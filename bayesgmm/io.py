"""Saving and loading fits: the DataTree as netCDF (h5netcdf) or zarr, with the settings.

What is guaranteed:

- A save is atomic. The fit is written beside the target (same directory, a hidden
  temporary name), flushed to disk, read back and checked, and only then renamed into
  place: ``os.replace`` for a file; for a ``.zarr`` directory the previous save is renamed
  away, the new one renamed in, and the previous one deleted. On any failure (full disk,
  locked file, KeyboardInterrupt) the temporary is removed and the previous save is left
  as it was. Only a process killed outright can leave something behind: the temporary
  (``.NAME.tmp-XXXXXXXX`` beside the target), or, if killed between the two renames of a
  ``.zarr`` save, the previous save under ``.NAME.old-XXXXXXXX``.
- Nothing but a previous bayesgmm save is ever replaced or deleted: a save onto another
  file or directory is refused, naming the path.
- Every saved variable (data and coordinates), every group's attributes and the settings
  carry a SHA-256 checksum, stored with the format version in the root attributes. Load
  verifies them and raises :class:`SavedFitError` (a ``ValueError``) naming the file and
  the damaged variable; so a load either fails with that error or gives exactly the saved
  numbers.
- Every other failure to read a file (truncated, not netCDF, crafted attributes, invalid
  saved settings, a posterior the estimator cannot use) is a :class:`SavedFitError` naming
  the file and what is wrong. Files saved before checksums existed (format 0) still load,
  after the same checks of their settings and posterior, with an
  :class:`UnverifiedFitWarning`.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import importlib.util
import json
import numbers
import os
import re
import secrets
import shutil
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from .exceptions import SavedFitError, UnverifiedFitWarning

PARAMS_ATTR = "bayesgmm_estimator_params"
VERSION_ATTR = "bayesgmm_format_version"
CHECKSUM_ATTR = "bayesgmm_checksums"
FORMAT_VERSION = 1
_SETTINGS_KEY = "settings"  # the checksum entry of the settings JSON
_ZARR_METADATA = {"zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"}


NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5")


def _save_format(path: Path) -> None:
    """Refuse a save name whose extension is neither netCDF's nor zarr's.

    The format follows the extension, so ``fit.pkl`` (or a name without one) would get a
    netCDF file under a name that says something else.
    """
    suffix = path.suffix.lower()
    if suffix == ".zarr" or suffix in NETCDF_SUFFIXES:
        return
    stem = path.stem if suffix else path.name
    what = f"extension {path.suffix!r}" if suffix else "no extension"
    raise ValueError(f"cannot save to {str(path)!r}: it has {what}, and a fit is saved as "
                     f"netCDF (.nc) or zarr (.zarr); name it {stem}.nc or {stem}.zarr")


def _engine(path: Path) -> str:
    if path.suffix.lower() == ".zarr":
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


# ---------------------------------------------------------------------------- checksums
def _canonical_attrs(attrs: dict) -> bytes:
    """The attributes as JSON, in a form netCDF and zarr give back unchanged.

    Both store scalars and lists as arrays (a one-element list comes back as a scalar from
    netCDF, a float32 as a Python float from zarr), so every value is taken as a flat list
    of Python scalars.
    """
    def flat(value):
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        return np.asarray(value).ravel().tolist()

    return json.dumps({str(k): flat(v) for k, v in attrs.items()}, sort_keys=True,
                      default=str).encode()


def _variable_digest(var: xr.Variable) -> str:
    h = hashlib.sha256()
    values = np.asarray(var.values)
    h.update(json.dumps([list(var.dims), list(values.shape)]).encode())
    if values.dtype.kind in "OUS":  # strings: fixed-width or variable-length on reading
        items = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)
                 for v in values.ravel().tolist()]
        h.update(b"str" + json.dumps(items).encode())
    else:
        if values.dtype.kind in "fc":  # one NaN for all: decoding may rewrite NaN payloads
            values = np.where(np.isnan(values), np.nan, values).astype(values.dtype)
        h.update(values.dtype.str.encode() + np.ascontiguousarray(values).tobytes())
    h.update(_canonical_attrs(var.attrs))
    return h.hexdigest()


def _digests(groups: dict[str, xr.Dataset], settings: str) -> dict[str, str]:
    out = {_SETTINGS_KEY: hashlib.sha256(settings.encode("utf-8", "surrogateescape")).hexdigest()}
    for group, ds in groups.items():
        out[f"{group}/.attrs"] = hashlib.sha256(_canonical_attrs(ds.attrs)).hexdigest()
        for name, var in ds.variables.items():
            out[f"{group}/{name}"] = _variable_digest(var)
    return out


# ---------------------------------------------------------------------------- saving
def _describe(path: Path) -> str:
    return repr(str(path))


def _is_nc_save(path: Path) -> bool:
    """Whether ``path`` is a netCDF file whose root attributes mark a bayesgmm save."""
    try:
        import h5py

        with h5py.File(path, "r", locking=False) as f:
            return PARAMS_ATTR in f.attrs
    except Exception:  # not HDF5, unreadable, damaged: not known to be ours
        return False


def _zarr_metadata(path: Path) -> dict | None:
    """The zarr metadata of a node (``node_type`` and ``attributes``), or None."""
    try:
        if (path / "zarr.json").is_file():  # zarr format 3
            meta = json.loads((path / "zarr.json").read_text())
            return meta if isinstance(meta, dict) else None
        for name, kind in ((".zgroup", "group"), (".zarray", "array")):  # format 2
            if (path / name).is_file():
                attrs = path / ".zattrs"
                return {"node_type": kind,
                        "attributes": json.loads(attrs.read_text()) if attrs.is_file() else {}}
    except (OSError, ValueError):
        return None
    return None


_CHUNK_NAME = re.compile(r"c|\d+(\.\d+)*")


def _only_zarr(path: Path) -> bool:
    """Whether the directory holds a zarr node and nothing else, all the way down."""
    kind = (_zarr_metadata(path) or {}).get("node_type")
    if kind not in ("group", "array"):
        return False
    for entry in path.iterdir():
        if entry.is_symlink():
            return False
        if entry.name in _ZARR_METADATA and entry.is_file():
            continue
        if kind == "group":
            if not (entry.is_dir() and _only_zarr(entry)):
                return False
        elif not _only_chunks(entry):
            return False
    return True


def _only_chunks(path: Path) -> bool:
    if path.is_symlink() or not _CHUNK_NAME.fullmatch(path.name):
        return False
    return path.is_file() or (path.is_dir() and all(_only_chunks(p) for p in path.iterdir()))


def _is_zarr_save(path: Path) -> bool:
    """Whether ``path`` is a zarr store saved by bayesgmm, holding nothing but zarr's files.

    Its root attributes must mark a bayesgmm save, and every file in it must be zarr
    metadata or a chunk of a zarr array, so a file a user put there is never deleted with
    the previous save.
    """
    attrs = (_zarr_metadata(path) or {}).get("attributes")
    return isinstance(attrs, dict) and PARAMS_ATTR in attrs and _only_zarr(path)


def _check_target(path: Path, engine: str) -> None:
    """Refuse to replace anything but a previous bayesgmm save of the same kind."""
    if not os.path.lexists(path):
        return
    advice = "Delete or move it yourself, or save under another name."
    if engine == "zarr":
        if not path.is_dir():
            raise FileExistsError(f"{_describe(path)} exists and is not a directory; a .zarr "
                                  f"save is a directory, so bayesgmm will not replace it. "
                                  f"{advice}")
        if not _is_zarr_save(path):
            raise FileExistsError(
                f"{_describe(path)} exists and is not a fit saved by bayesgmm (or holds other "
                f"files besides one, at any depth); bayesgmm replaces only its own saves. "
                f"{advice}")
    else:
        if path.is_dir():
            raise FileExistsError(f"{_describe(path)} is a directory; bayesgmm will not "
                                  f"replace it with a file. {advice}")
        if not _is_nc_save(path):
            raise FileExistsError(
                f"{_describe(path)} exists and is not a readable fit saved by bayesgmm; "
                f"bayesgmm replaces only its own saves. {advice}")


def _check_space(directory: Path, out: xr.DataTree, path: Path) -> None:
    """Refuse early when the disk cannot hold the new save beside the previous one."""
    needed = sum(int(node.to_dataset().nbytes) for node in out.subtree)
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise OSError(errno.ENOSPC,
                      f"Not enough disk space to save {_describe(path)}: about "
                      f"{needed / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free in "
                      f"{_describe(directory)}. Free some space or save elsewhere; the "
                      f"previous save, if any, is untouched.")


def _temporary(path: Path, kind: str, directory: bool) -> Path:
    """A new, empty file or directory beside ``path``, with a hidden unique name.

    Made with the permissions a plain ``open`` or ``mkdir`` would give (the umask applies),
    not the owner-only ones of :mod:`tempfile`.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue


def _write(out: xr.DataTree, tmp: Path, engine: str) -> None:
    if engine == "zarr":
        # Zarr writes its chunks to disk concurrently: after a full disk's error, writes
        # still in flight went on creating files while the failed save was being removed,
        # and left some behind. So zarr writes into memory and Python writes the files,
        # one at a time, stopping at the first error.
        # (Zarr 3 warns that consolidated metadata is not part of its specification.)
        from zarr.storage import MemoryStore  # optional: _engine checked it is installed

        files: dict = {}
        out.to_zarr(MemoryStore(store_dict=files), mode="w", consolidated=False)
        for key, buffer in files.items():
            target = tmp.joinpath(*key.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                f.write(buffer.to_bytes())
    else:
        # HDF5 writes into memory, then Python writes the bytes: HDF5 writing to disk
        # crashed the process (a segmentation fault) after a full disk's error.
        data = out.to_netcdf(engine=engine)
        with open(tmp, "wb") as f:
            f.write(data)


def _fsync_one(path: Path) -> None:
    if os.name == "nt" and path.is_dir():  # directories cannot be opened there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    """Flush a file, or a directory tree (its files, then its directories), to disk."""
    if path.is_dir():
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files + dirs:
                _fsync_one(Path(root) / name)
    _fsync_one(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _swap_in(tmp: Path, path: Path, engine: str) -> None:
    if engine != "zarr":
        os.replace(tmp, path)  # atomic; a reader holding the old file keeps its inode
        return
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    old = _temporary(path, "old", directory=True)
    os.rmdir(old)  # only its unique name is wanted
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        warnings.warn(f"Saved {_describe(path)}, but the previous save, moved to "
                      f"{_describe(old)}, could not be deleted: delete it yourself.",
                      RuntimeWarning, stacklevel=4)


def _errno_in(message: str) -> int | None:
    """The errno HDF5 quotes in its message ("errno = 28"), if any."""
    found = re.search(r"errno = (\d+)", message)
    return int(found.group(1)) if found else None


def save_tree(tree: xr.DataTree, path, params: dict) -> Path:
    """Write ``tree`` and ``params`` to ``path`` atomically (see the module docstring)."""
    path = Path(path)
    _save_format(path)
    if path.is_symlink():  # replace the file it points to, not the link
        path = Path(os.path.realpath(path))
    engine = _engine(path)
    groups = {name: _storable(tree[name].to_dataset()) for name in tree.children}
    settings = json.dumps(_jsonable_params(params))
    root = xr.Dataset(attrs={
        VERSION_ATTR: FORMAT_VERSION,
        PARAMS_ATTR: settings,
        CHECKSUM_ATTR: json.dumps(_digests(groups, settings)),
    })
    out = xr.DataTree.from_dict({"/": root, **groups})
    _check_target(path, engine)
    parent = path.parent
    _check_space(parent, out, path)
    tmp = _temporary(path, "tmp", directory=engine == "zarr")
    untouched = ("The previous save is untouched." if os.path.lexists(path)
                 else "Nothing was left behind.")
    try:
        try:
            _write(out, tmp, engine)
            _fsync(tmp)
        except (OSError, RuntimeError) as exc:  # HDF5 reports failed writes as RuntimeError
            code = getattr(exc, "errno", None) or _errno_in(str(exc)) or errno.EIO
            raise OSError(code, f"Saving {_describe(path)} failed while writing "
                                f"({os.strerror(code)}: {type(exc).__name__}: {exc}). "
                                f"{untouched}") from exc
        try:  # what was written reads back, checksums and all
            _read(tmp, engine, shown=path)
        except SavedFitError as exc:
            raise OSError(errno.EIO, f"Saving {_describe(path)} failed: what was written "
                                     f"did not read back intact ({exc}). {untouched}"
                          ) from exc
        _swap_in(tmp, path, engine)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_one(parent)  # the rename itself
    return path


# ---------------------------------------------------------------------------- loading
def _read(path: Path, engine: str, shown: Path) -> tuple[xr.DataTree, dict, int]:
    """Open ``path``; check its version and checksums; return the tree, settings, version."""
    where = _describe(shown)
    kwargs = {"consolidated": False} if engine == "zarr" else {}
    try:
        if engine != "zarr":
            # h5netcdf, failing to open a file, leaves an object whose clean-up raises an
            # AttributeError nobody can catch: try h5py alone first.
            import h5py

            with h5py.File(path, "r") as f:
                {key: f.attrs[key] for key in f.attrs}  # what h5netcdf reads on opening
        with xr.open_datatree(path, engine=engine, **kwargs) as opened:
            tree = opened.load()
    except Exception as exc:  # h5py, zarr, numcodecs, xarray: any failure to read
        raise SavedFitError(
            f"{where} cannot be read as a saved fit: it is damaged, truncated, locked by "
            f"another program, or not a {'zarr' if engine == 'zarr' else 'netCDF'} file "
            f"({type(exc).__name__}: {exc}).") from exc
    attrs = tree.attrs
    version = _format_version(attrs, where)
    if PARAMS_ATTR not in attrs:
        raise SavedFitError(f"{where} is not a fit saved by bayesgmm (no {PARAMS_ATTR}).")
    settings = attrs[PARAMS_ATTR]
    if not isinstance(settings, str):
        raise SavedFitError(f"{where}: the saved settings ({PARAMS_ATTR}) are a "
                            f"{type(settings).__name__}, not JSON text; the file is damaged.")
    groups = {name: tree[name].to_dataset() for name in tree.children}
    if version >= 1:
        _verify(attrs.get(CHECKSUM_ATTR), groups, settings, where)
    else:
        warnings.warn(f"{where} was saved by an older bayesgmm, without checksums: its "
                      f"contents cannot be verified. Save it again to add them.",
                      UnverifiedFitWarning, stacklevel=4)
    try:
        params = json.loads(settings)
    except ValueError as exc:
        raise SavedFitError(f"{where}: the saved settings are not valid JSON ({exc}); the "
                            f"file is damaged.") from exc
    if not isinstance(params, dict):
        raise SavedFitError(f"{where}: the saved settings are a {type(params).__name__}, "
                            f"not a mapping of setting names to values; the file is damaged.")
    return xr.DataTree.from_dict(groups), params, version


def _format_version(attrs, where: str) -> int:
    if VERSION_ATTR not in attrs:
        return 0  # saved before format versions (and checksums) existed
    version = np.asarray(attrs[VERSION_ATTR])
    if version.shape != () and version.size == 1:
        version = version.reshape(())
    if version.shape != () or version.dtype.kind not in "iu":
        raise SavedFitError(f"{where}: its format version {attrs[VERSION_ATTR]!r} is not an "
                            f"integer; the file is damaged.")
    version = int(version)
    if version > FORMAT_VERSION:
        raise SavedFitError(f"{where} was saved by a newer bayesgmm (format {version}; this "
                            f"one reads up to format {FORMAT_VERSION}): upgrade bayesgmm "
                            f"(pip install -U bayesgmm) to load it.")
    if version < 1:
        raise SavedFitError(f"{where}: its format version {version} is not valid; the file "
                            f"is damaged.")
    return version


def _verify(stored, groups: dict[str, xr.Dataset], settings: str, where: str) -> None:
    damaged = f"{where} is damaged"
    try:
        expected = json.loads(stored)
        if not isinstance(expected, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in expected.items()):
            raise ValueError("not a mapping of names to digests")
    except (TypeError, ValueError) as exc:
        raise SavedFitError(f"{damaged}: its checksums ({CHECKSUM_ATTR}) are missing or "
                            f"unreadable ({exc}), so its contents cannot be verified."
                            ) from exc
    actual = _digests(groups, settings)
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            raise SavedFitError(f"{damaged}: {key!r} is missing.")
        if key not in expected:
            raise SavedFitError(f"{damaged}: {key!r} has no checksum (it was not saved by "
                                f"bayesgmm, or the file was altered).")
    bad = [key for key in sorted(actual) if actual[key] != expected[key]]
    if bad:
        what = "the saved settings" if bad == [_SETTINGS_KEY] else \
            ", ".join(repr(k) for k in bad)
        raise SavedFitError(f"{damaged}: the checksum of {what} does not match what was "
                            f"saved (corrupted bytes). Restore the file from a copy, or "
                            f"fit again.")


def check_settings(params: dict, version: int, shown) -> dict:
    """The saved settings, checked as the fit checks them, as constructor arguments."""
    from .params import PARAMETER_CONSTRAINTS, check_params

    where = _describe(Path(shown))
    unknown = sorted(set(params) - set(PARAMETER_CONSTRAINTS))
    if unknown:
        raise SavedFitError(f"{where} has saved setting(s) {unknown} that this bayesgmm does "
                            f"not know: it was saved by a newer bayesgmm; upgrade bayesgmm "
                            f"to load it.")
    missing = sorted(set(PARAMETER_CONSTRAINTS) - set(params))
    if missing and version >= 1:  # format 1 saves every setting; older ones take defaults
        raise SavedFitError(f"{where}: saved setting(s) {missing} are missing; the file is "
                            f"damaged.")
    for name, value in params.items():
        try:
            check_params({name: value})
        except (TypeError, ValueError) as exc:
            raise SavedFitError(f"{where}: saved setting {name}: {exc}") from exc
    try:
        check_params(params)
    except (TypeError, ValueError) as exc:
        raise SavedFitError(f"{where}: saved settings: {exc}") from exc
    return dict(params)


def check_posterior(tree: xr.DataTree, n_components: int | None, shown) -> None:
    """Check that ``tree`` has the posterior the estimator predicts from, with valid values.

    ``posterior`` with ``weights`` (..., component), ``means`` (..., component, feature) and
    ``covariances`` (..., component, feature, feature'), the same draws, a ``feature``
    coordinate, finite values, weights on the simplex and symmetric covariances.
    """
    where = _describe(Path(shown))
    if "posterior" not in tree.children:
        raise SavedFitError(f"{where} has no 'posterior' group; it is not a complete fit.")
    post = tree["posterior"]
    if "component" not in post.dims or "feature" not in post.dims:
        raise SavedFitError(f"{where}: the posterior has no 'component' or 'feature' "
                            f"dimension; it is not a bayesgmm fit.")
    if "feature" not in post.coords:
        raise SavedFitError(f"{where}: the posterior has no 'feature' coordinate (the "
                            f"feature names); the file is damaged.")
    k, d = post.sizes["component"], post.sizes["feature"]
    tails = {"weights": ("component",), "means": ("component", "feature"),
             "covariances": ("component", "feature", None)}
    lead = None
    for name, tail in tails.items():
        if name not in post.data_vars:
            raise SavedFitError(f"{where}: the posterior has no {name!r}; it is not a "
                                f"complete fit.")
        var = post[name]
        dims = var.dims[len(var.dims) - len(tail):] if len(var.dims) >= len(tail) else ()
        ok = len(dims) == len(tail) and all(t is None or t == got for t, got in
                                            zip(tail, dims, strict=True))
        if ok and name == "covariances":
            ok = var.sizes[dims[-1]] == d
        lead = var.dims[:-len(tail)] if lead is None else lead
        if not ok or var.dims[:-len(tail)] != lead:
            raise SavedFitError(f"{where}: the posterior's {name!r} has dimensions "
                                f"{var.dims}; expected (draw dimensions..., "
                                f"{', '.join(t or 'feature' for t in tail)}).")
        if var.dtype.kind != "f" or var.size == 0:
            raise SavedFitError(f"{where}: the posterior's {name!r} is empty or not "
                                f"floating point ({var.dtype}); the file is damaged.")
        if not np.isfinite(var.to_numpy()).all():
            raise SavedFitError(f"{where}: the posterior's {name!r} has NaN or infinite "
                                f"values; the file is damaged.")
    if isinstance(n_components, numbers.Integral) and n_components != k:
        raise SavedFitError(f"{where}: the saved setting n_components={n_components} does "
                            f"not match the posterior's {k} components; the file is damaged.")
    w = post["weights"].to_numpy().reshape(-1, k)
    total = w.sum(axis=1)
    if "noise_weight" in post.data_vars:  # a noise component: its weight is the rest
        from .fitting.result import (
            NOISE_LOG_VOLUME_ATTR,
            NOISE_LOG_WIDTHS_ATTR,
            noise_region_of,
        )

        noise = post["noise_weight"]
        if noise.dims != post["weights"].dims[:-1] or noise.dtype.kind != "f":
            raise SavedFitError(f"{where}: the posterior's 'noise_weight' does not have the "
                                f"draw dimensions of the weights; the file is damaged.")
        total = total + noise.to_numpy().reshape(-1)
        if (noise.to_numpy() < 0).any():
            total = np.full_like(total, np.nan)
        try:
            noise_region_of(post)
        except (KeyError, TypeError, ValueError):
            raise SavedFitError(f"{where}: the noise component's region (the posterior's "
                                f"attributes {NOISE_LOG_VOLUME_ATTR!r} and "
                                f"{NOISE_LOG_WIDTHS_ATTR!r}) is missing or damaged.") from None
        region = noise_region_of(post)
        if not (np.isfinite(region.log_volume) and region.log_widths.shape == (d,)
                and np.isfinite(region.log_widths).all()):
            raise SavedFitError(f"{where}: the noise component's region is not finite with "
                                f"one side per feature; the file is damaged.")
    if (w < 0).any() or not np.allclose(total, 1.0, rtol=0, atol=1e-6):
        raise SavedFitError(f"{where}: the posterior's weights are not probabilities "
                            f"(non-negative, summing to 1 with a noise component's weight); "
                            f"the file is damaged.")
    covs = post["covariances"].to_numpy().reshape(-1, k, d, d)
    if np.abs(covs - np.swapaxes(covs, -1, -2)).max() > 1e-8 * np.abs(covs).max():
        raise SavedFitError(f"{where}: the posterior's covariances are not symmetric; the "
                            f"file is damaged.")
    if "dof" in post.data_vars:  # Student-t components
        dof = post["dof"]
        if dof.dims != post["weights"].dims or dof.dtype.kind != "f" or \
                not (np.isfinite(dof.to_numpy()) & (dof.to_numpy() > 0)).all():
            raise SavedFitError(f"{where}: the posterior's 'dof' (Student-t degrees of "
                                f"freedom) is not positive and finite with the weights' "
                                f"dimensions; the file is damaged.")


def load_tree(path) -> tuple[xr.DataTree, dict]:
    """Read a fit saved by :func:`save_tree`: its tree and its checked settings.

    Raises :class:`SavedFitError` for any file that is not a complete, intact bayesgmm save.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No saved fit at {str(path)!r}.")
    engine = _engine(path)
    tree, params, version = _read(path, engine, shown=path)
    params = check_settings(params, version, path)
    check_posterior(tree, params.get("n_components"), path)
    return tree, params
