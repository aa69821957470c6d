"""Input checks shared by the estimator, the baselines and the command line."""

from __future__ import annotations

import numbers
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from .covariance import DIAG, structure
from .exceptions import DataWarning

__all__ = ["check_data", "check_features", "check_sample_weight", "check_labels",
           "check_model_size",
           "check_n_components", "check_positive_int", "has_feature_names", "outlying_rows",
           "default_feature_names", "count_distinct_rows", "describe_outliers"]

def _describe_rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {rows.size - limit} more" if rows.size > limit else ""
    return f"row(s) {shown}{more}"


#: What :func:`check_data` can do with missing entries.
MISSING = ("marginalize", "error")


def _is_sparse(X) -> bool:
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


def default_feature_names(n_features: int) -> list[str]:
    """The names of unnamed columns: ``x0``, ``x1``, ..."""
    return [f"x{j}" for j in range(n_features)]


def _eager_frame(X, name: str):
    """``X`` as a narwhals eager DataFrame if it is a data frame (pandas, polars, pyarrow, ...).

    Returns None for arrays and nested lists. A lazy frame (polars ``LazyFrame``, DuckDB,
    ...) or a one-column series is refused with what to call instead.
    """
    if isinstance(X, (np.ndarray, list, tuple)) or np.isscalar(X):
        return None
    import narwhals.stable.v2 as nw

    try:
        native = nw.from_native(X, pass_through=True, allow_series=True)
    except ValueError:  # narwhals refuses repeated column names: say which and what to do
        columns = getattr(X, "columns", None)
        if columns is not None:
            _check_unique([str(c) for c in columns])
        raise
    if native is X:  # not a data frame narwhals knows
        return None
    if isinstance(native, nw.Series):
        raise TypeError(f"{name} is a one-dimensional series ({type(X).__name__}); pass a "
                        f"data frame with one column per feature, for example "
                        f"series.to_frame().")
    if isinstance(native, nw.LazyFrame):
        raise TypeError(f"{name} is a lazy frame ({type(X).__name__}); collect it into an "
                        f"eager data frame first (for example X.collect()).")
    return native


def _frame_values(frame, name: str, task: str,
                  missing: str = "error") -> tuple[list[str], np.ndarray]:
    """Column names and float64 values of a narwhals DataFrame, refusing what cannot fit.

    Missing values (nulls, NaN) become NaN with ``missing="marginalize"``.
    """
    import narwhals.stable.v2 as nw

    schema = frame.schema
    names = [str(c) for c in schema]
    non_numeric = [str(c) for c, dt in schema.items()
                   if not dt.is_numeric() or dt == nw.Boolean]
    if non_numeric:
        dropped = [c for c in schema if str(c) in non_numeric]
        raise TypeError(
            f"{name} has non-numeric column(s) {non_numeric}. Drop them, or encode them as "
            f"numbers, before {task} (for example X.drop(columns={dropped!r})).")
    if frame.shape[1] and frame.shape[0] and missing == "error":
        holes = frame.select(nw.all().is_null()).to_numpy().astype(bool)
        if holes.any():
            drop = "X.drop_nulls()" if frame.implementation.is_polars() else "X.dropna()"
            raise ValueError(
                f"{name} has missing values in {_describe_rows(holes.any(axis=1))}. Drop "
                f"those rows ({drop}) or impute them before {task}.")
    if missing != "error":  # nulls as NaN, whatever the column's type
        frame = frame.select(nw.all().cast(nw.Float64))
    values = frame.to_numpy()
    values = values.reshape(frame.shape) if values.size == 0 else values
    return names, np.asarray(values, dtype=np.float64)


def _check_unique(names: list[str]) -> None:
    if len(set(names)) != len(names):
        repeated = sorted({f for f in names if names.count(f) > 1})
        raise ValueError(f"Feature names must be unique, got {names}: rename or drop the "
                         f"repeated column(s) {repeated}.")


def _frame_with_names(X, name: str = "X"):
    """``(X as a narwhals frame or None, whether its column names are all strings)``.

    A lazy frame or a series counts as no frame here: :func:`check_data` refuses them.
    """
    try:
        frame = _eager_frame(X, name)
    except TypeError:
        return None, False
    return frame, frame is not None and all(isinstance(c, str) for c in frame.columns)


def has_feature_names(X) -> bool:
    """Whether ``X`` is a data frame whose column names are all strings (scikit-learn's rule).

    Column names that are not strings (a pandas frame built from an array has 0, 1, ...) do
    not count as feature names, as in scikit-learn.
    """
    return _frame_with_names(X)[1]


def check_features(X, fitted: list[str] | None, n_features: int, *,
                   name: str = "X", owner: str = "the fit") -> np.ndarray:
    """Data to predict for against a fit: as :func:`check_data`, columns checked by name.

    As scikit-learn does: when the fit saw feature names, a data frame must have the same
    columns in the same order (an error names them and the fix); data without names, or
    names where the fit saw none, are taken by position with a :class:`DataWarning`.

    Parameters
    ----------
    X : array-like or data frame of shape (n_samples, n_features)
    fitted : list of str or None
        The feature names the fit saw (None: it saw none; see
        :func:`bayesgmm.fitting.result.feature_names_in`).
    n_features : int
        The number of features the fit saw.
    name : str
        How to call the data in messages.
    owner : str
        How to call the fitted model in messages (an estimator's class name, which
        scikit-learn's wording expects).

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64
    """
    frame, named = _frame_with_names(X, name)
    if fitted is not None and named:
        given = [str(c) for c in frame.columns]
        if given != fitted:
            if sorted(given) == sorted(fitted):
                how = f"the same columns in another order: pass {name}[{fitted}]"
            else:
                unseen = [c for c in given if c not in fitted]
                lacking = [c for c in fitted if c not in given]
                how = "; ".join(part for part in (
                    f"column(s) {unseen} were not seen in fit" if unseen else "",
                    f"column(s) {lacking} are missing" if lacking else "") if part)
                how += f": pass the fitted columns in that order, {name}[{fitted}]"
            raise ValueError(f"{name} has columns {given}, but the model was fitted on "
                             f"{fitted}; {how}.")
    values = check_data(X, n_features=n_features, name=name, missing="marginalize",
                        owner=owner)[0]
    if fitted is not None and frame is None:
        # (a frame with non-string column labels is taken by position, as an array)
        warnings.warn(f"{name} has no feature names, but the model was fitted with feature "
                      f"names {fitted}: its columns are taken in that order. Pass a data "
                      f"frame with those columns to have them checked.", DataWarning,
                      stacklevel=3)
    elif fitted is None and named:
        warnings.warn(f"{name} has feature names, but the model was fitted without feature "
                      f"names: its columns are taken by position.", DataWarning, stacklevel=3)
    return values


def check_data(
    X,
    *,
    n_components: int | None = None,
    n_features: int | None = None,
    feature_names: Sequence[str] | None = None,
    name: str = "X",
    warn: bool = True,
    missing: str = "error",
    owner: str = "the fit",
) -> tuple[np.ndarray, list[str]]:
    """Validate data and return it as a float64 array with feature names.

    Parameters
    ----------
    X : array-like or pandas.DataFrame of shape (n_samples, n_features)
        The data.
    n_components : int, optional
        When given, fitting data: at least ``max(2, n_components)`` rows are required.
    n_features : int, optional
        When given (prediction), the number of columns the model was fitted on.
    feature_names : sequence of str, optional
        Names used when ``X`` carries none.
    name : str
        How to call the data in messages.
    warn : bool
        Emit :class:`DataWarning` for constant columns and duplicated rows (fitting only).
    missing : {"error", "marginalize"}, default "error"
        What to do with missing entries (NaN, or nulls of a data frame): refuse them, or
        keep them as NaN, to be marginalised out of the likelihood. With "marginalize",
        fitting data (``n_components`` given) must observe something in every row, and a
        :class:`DataWarning` (with ``warn``) says how many entries are missing.
    owner : str
        How to call the fitted model in messages about its features.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    feature_names : list of str
    """
    names = None
    task = "fitting" if n_features is None else "predicting"
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING))}, got "
                         f"{missing!r}.")
    if _is_sparse(X):
        raise TypeError(f"{name} is a sparse matrix or array: sparse input is not supported "
                        f"(a Gaussian mixture needs dense data). Pass {name}.toarray().")
    frame = _eager_frame(X, name)
    if frame is not None:
        names, X = _frame_values(frame, name, task, missing)
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # ragged nested lists and the like
            raise ValueError(f"{name} could not be read as a 2-D numeric array ({exc}). Give "
                             f"every row the same number of numeric entries.") from exc
        if arr.dtype.kind in "OUSV" or arr.dtype.kind == "b":
            if arr.dtype.kind == "O":
                try:
                    arr = arr.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"{name} must be numeric; it has dtype object with non-numeric entries "
                        f"({exc}). Convert it with np.asarray(X, dtype=float) after removing "
                        f"text."
                    ) from None
            else:
                raise TypeError(
                    f"{name} must be numeric, got an array of dtype {arr.dtype}. Convert it "
                    f"to floats (np.asarray(X, dtype=float)) or drop non-numeric columns."
                )
        if arr.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}. Pass "
                             f"real numbers, for example X.real, or the real and imaginary "
                             f"parts as separate columns.")
        X = arr
    if X.size == 0:
        found = "".join(
            f" Found {count} {what}(s) (shape={X.shape}) while a minimum of 1 is required."
            for count, what in zip(X.shape, ("sample", "feature"), strict=False)
            if X.ndim == 2 and count == 0)
        raise ValueError(f"{name} is empty (shape {X.shape}); it needs at least one row and one "
                         f"column.{found}")
    if X.ndim != 2:
        if X.ndim == 1:
            raise ValueError(
                f"Expected a 2-D array for {name}, got a 1-D array of shape {X.shape}. Reshape "
                f"your data: X.reshape(-1, 1) if it holds one feature, or X.reshape(1, -1) if "
                f"it holds one sample."
            )
        raise ValueError(f"Expected a 2-D array for {name}, got {X.ndim} dimension(s) "
                         f"(shape {X.shape}).")
    X = np.ascontiguousarray(X, dtype=np.float64)
    n, d = X.shape
    bad = ~np.isfinite(X)
    if missing != "error":
        bad &= ~np.isnan(X)
    if bad.any():
        has_nan, has_inf = bool(np.isnan(X[bad]).any()), bool(np.isinf(X).any())
        kind = ("NaN or infinite values" if has_nan and has_inf
                else "NaN" if has_nan else "infinite values")
        raise ValueError(
            f"{name} contains {kind} in {_describe_rows(bad.any(axis=1))}. Drop those rows "
            f"or impute them before {task}."
        )
    if n_features is not None and d != n_features:
        raise ValueError(
            f"{name} has {d} features, but {owner} is expecting {n_features} features as "
            f"input (it was fitted on {n_features} columns). Pass data with the same columns "
            f"as in fit."
        )
    if names is None:
        if feature_names is not None:
            names = [str(f) for f in feature_names]
        else:
            names = default_feature_names(d)
    if len(names) != d:
        raise ValueError(f"Got {len(names)} feature names for {d} column(s).")
    _check_unique(names)
    if n_components is not None and missing != "error":
        _check_missing(X, name, warn)
    if n_components is not None:
        min_rows = max(2, n_components)
        if n < min_rows:
            raise ValueError(
                f"{name} has {n} sample(s) (rows), but fitting {n_components} component(s) "
                f"needs at least {min_rows}. Reduce n_components or provide more data."
            )
        if warn:
            _warn_degenerate(X, names, n_components, name)
    return X, names


def _check_missing(X: np.ndarray, name: str, warn: bool) -> None:
    """Refuse rows with nothing observed; say how many entries will be marginalised."""
    holes = np.isnan(X)
    if not holes.any():
        return
    empty = holes.all(axis=1)
    if empty.any():
        raise ValueError(f"{name} has every entry missing in {_describe_rows(empty)}: they "
                         f"carry no information. Drop those rows before fitting.")
    if holes.all(axis=0).any():
        cols = np.flatnonzero(holes.all(axis=0)).tolist()
        raise ValueError(f"{name} has every entry missing in column(s) {cols}: drop them "
                         f"before fitting.")
    if warn:
        n_patterns = np.unique(holes[holes.any(axis=1)], axis=0).shape[0]
        warnings.warn(
            f"{name} has {int(holes.sum())} missing entries ({holes.mean():.1%}) in "
            f"{int(holes.any(axis=1).sum())} of {X.shape[0]} rows, in {n_patterns} "
            f"pattern(s) of missing columns; they are marginalised out of the likelihood, "
            f"which assumes they are missing at random. Pass missing='error' to refuse them.",
            DataWarning, stacklevel=3)


def check_sample_weight(sample_weight, n_rows: int) -> np.ndarray:
    """Frequency weights of ``n_rows`` rows as float64: finite, non-negative, not all zero.

    Examples
    --------
    >>> check_sample_weight([1, 2, 0], 3)
    array([1., 2., 0.])
    """
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"sample_weight must be numbers, one per row; got "
                        f"{type(sample_weight).__name__}.") from None
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise ValueError(f"sample_weight must have one weight per row of X: shape "
                         f"({n_rows},), got {w.shape}.")
    if not np.isfinite(w).all() or (w < 0).any():
        bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
        raise ValueError(f"sample_weight must be finite and non-negative; rows "
                         f"{bad[:5].tolist()} are not. Give such rows weight 0 or drop them.")
    if not w.sum() > 0:
        raise ValueError("sample_weight is zero for every row: give some rows a positive "
                         "weight.")
    return w


def _is_unknown(value, as_text: bool = False) -> bool:
    """Whether a label marks an unknown component: -1, None, NaN or a frame's null.

    ``as_text``: the labels came as a NumPy string array, where NumPy has already turned a
    -1 or NaN into the text "-1" or "nan".
    """
    if value is None or value is getattr(sys.modules.get("pandas"), "NA", None):
        return True
    if as_text and value in ("-1", "nan"):
        return True
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return True
    if isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, bool):
        return value == -1
    return False


def check_labels(y, n_rows: int, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Known component labels of some rows: their codes and the distinct labels.

    ``y`` holds one label per row; -1 (or None, or NaN) marks a row whose component is
    unknown. Labels may be any hashable values that sort (numbers, strings); the distinct
    known labels, sorted, name components 0, 1, ... in that order.

    Returns
    -------
    codes : ndarray of shape (n_rows,), int
        The component of each row, -1 where unknown.
    classes : ndarray
        The distinct known labels, sorted: ``classes[c]`` is component c's label.

    Examples
    --------
    >>> codes, classes = check_labels(["b", -1, "a", "b", None], 5, 3)
    >>> codes.tolist(), classes.tolist()
    ([1, -1, 0, 1, -1], ['a', 'b'])
    """
    integer = str(getattr(y, "dtype", "")).lower().lstrip("u").startswith("int")
    if hasattr(y, "to_numpy"):  # a pandas or polars series (nullable: nulls become NaN)
        y = np.asarray(y.to_numpy(), dtype=object)
    values = np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != n_rows:
        raise ValueError(f"labels must hold one label per row of X (-1 where unknown): shape "
                         f"({n_rows},), got {values.shape}.")
    as_text = values.dtype.kind in "US"
    unknown = np.array([_is_unknown(v, as_text) for v in values.tolist()], dtype=bool)
    known = values[~unknown]
    kinds = {"number" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
             else type(v).__name__ for v in known.tolist()}
    try:
        if len(kinds) > 1:
            raise TypeError
        classes = np.unique(np.asarray(known.tolist()))
        if integer and classes.dtype.kind == "f":  # integer labels with nulls: still ints
            classes = classes.astype(np.int64)
    except TypeError:
        raise TypeError("The labels must be of one kind that sorts (numbers or "
                        "strings), with -1 or None where unknown.") from None
    if classes.size > n_components:
        raise ValueError(f"labels has {classes.size} distinct values, but the mixture has "
                         f"{n_components} component(s): each label names a component, so "
                         f"raise n_components to at least {classes.size}.")
    codes = np.full(n_rows, -1, dtype=np.int64)
    if known.size:
        codes[~unknown] = np.searchsorted(classes, np.asarray(known.tolist()))
    return codes, classes


def count_distinct_rows(X: np.ndarray, at_most: int) -> int:
    """The number of distinct rows of ``X`` if it is at most ``at_most``, else ``at_most + 1``.

    Counts the first rows first: sorting all rows (``np.unique``) is slow on large data,
    and only data with very few distinct rows need it.
    """
    head = X[: 10 * (at_most + 1)]
    if head.shape[0] < X.shape[0] and np.unique(head, axis=0).shape[0] > at_most:
        return at_most + 1
    return min(np.unique(X, axis=0).shape[0], at_most + 1)


def _warn_degenerate(X: np.ndarray, names: list[str], n_components: int, name: str) -> None:
    constant = [names[j] for j in range(X.shape[1]) if np.nanmax(X[:, j]) == np.nanmin(X[:, j])]
    if constant:
        warnings.warn(
            f"{name} has constant column(s) {constant}: they carry no information about the "
            f"clusters and their fitted variances will be tiny. Consider dropping them.",
            DataWarning,
            stacklevel=3,
        )
    outliers = describe_outliers(X, names)
    if outliers:
        warnings.warn(
            f"{name}: {outliers}. A Gaussian component will be spent on them, or stretched "
            f"over the clusters to reach them. Check them for data errors and remove them, "
            f"or transform a skewed column (for example its logarithm).",
            DataWarning, stacklevel=3)
    n_distinct = count_distinct_rows(X, n_components)
    if n_distinct < n_components:
        warnings.warn(
            f"{name} has only {n_distinct} distinct row(s) for {n_components} components: some "
            f"components can only be empty. Reduce n_components.",
            DataWarning,
            stacklevel=3,
        )


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} "
                        f"{value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_n_components(value) -> int:
    """Validate ``n_components``."""
    return check_positive_int(value, "n_components", 1)


# A row whose robust z-score (distance from the column's median in robust standard
# deviations) exceeds this in some column is named before the fit. scikit-learn's real data
# sets stay below 43 (breast cancer 38, digits 42, wine 5.1, iris 3.1, diabetes 4.6).
OUTLIER_ROBUST_Z = 100.0


def outlying_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows far beyond all the others, by a per-column robust z-score.

    The z-score of ``X[n, j]`` is ``|X[n, j] - median_j| / s_j`` with ``s_j`` 1.4826 times
    the median absolute deviation of column j (the standard deviation for Gaussian data),
    or, where more than half of a column is one value, 1.4826 times the median deviation
    of the other values. Clusters inside the data's range stay within a few tens; a row
    beyond :data:`OUTLIER_ROBUST_Z` lies outside every cluster a mixture could fit.

    Parameters
    ----------
    X : ndarray of shape (N, D)

    Returns
    -------
    rows : ndarray of int
        The outlying rows, most extreme first.
    z : ndarray of float
        Their largest robust z-score.
    columns : ndarray of int
        The column where each reaches it.
    """
    median = np.nanmedian if np.isnan(X).any() else np.median  # NaN: missing entries
    med = median(X, axis=0)
    dev = np.abs(X - med)
    scale = 1.4826 * median(dev, axis=0)
    for j in np.flatnonzero(scale == 0):
        other = dev[:, j][dev[:, j] > 0]
        scale[j] = 1.4826 * np.median(other) if other.size else np.inf  # constant: skip
    z = np.nan_to_num(dev / scale, nan=0.0)
    col = z.argmax(axis=1)
    zmax = z[np.arange(X.shape[0]), col]
    rows = np.flatnonzero(zmax > OUTLIER_ROBUST_Z)
    rows = rows[np.argsort(-zmax[rows], kind="stable")]
    return rows, zmax[rows], col[rows]


def describe_outliers(X: np.ndarray, names: list[str]) -> str:
    """A sentence naming the outlying rows of ``X`` (see :func:`outlying_rows`), or ""."""
    rows, z, cols = outlying_rows(X)
    if not rows.size:
        return ""
    shown = ", ".join(f"{r} ({names[c]} = {X[r, c]:.4g}, {zz:.2g} robust sd)"
                      for r, zz, c in zip(rows[:5], z[:5], cols[:5], strict=True))
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    return (f"row(s) {shown}{more} lie more than {OUTLIER_ROBUST_Z:g} robust standard "
            f"deviations from the median of their column")


# Data values per free parameter of a component below which the likelihood no longer pins
# a component down (warned about where a component also has more free parameters than
# rows). Measured with two clusters 11 sd apart along one feature and noise in the others
# (4 seeds each): full covariances at D=10, 20, 30 found them from 6.1 values per parameter
# up, and failed for some seeds at 3.0-4.6 (30-50 rows per component for 65-495 parameters).
MIN_VALUES_PER_PARAMETER = 5.0
# The posterior keeps draws x K x D x D covariances (and the estimator their Cholesky
# factors); above this many bytes a fit is refused before it starts.
MAX_POSTERIOR_BYTES = 4e9
# Floating-point operations of one evaluation of the likelihood (N K D^2 + K D^3 for full or
# tied covariances, N K D for the others), or of the D x D work every fit does once; above
# this a fit is refused before EM.
MAX_WORK_PER_EVALUATION = 1e11


def check_model_size(n: int, d: int, k: int, covariance_type: str, *, n_draws: int = 1,
                     batch_size: int | None = None, name: str = "X") -> None:
    """Refuse fits that cannot finish, and warn when the data cannot pin the model down.

    Called before EM. Raises ValueError (with what to change) when the posterior's
    covariances would take more than :data:`MAX_POSTERIOR_BYTES` or one likelihood
    evaluation more than :data:`MAX_WORK_PER_EVALUATION` operations; warns
    (:class:`DataWarning`) when each component has more free parameters than rows and fewer
    than :data:`MIN_VALUES_PER_PARAMETER` data values per free parameter, where EM and the
    posterior can split the data along noise.

    Parameters
    ----------
    n, d, k : int
        Rows, features and components.
    covariance_type : str
    n_draws : int
        Draws the fit keeps (chains x draws; 1 for a point estimate).
    batch_size : int, optional
        Rows per likelihood evaluation (minibatch ADVI).
    name : str
        How to call the data in messages.
    """
    fewer = ("fewer features (for example the leading principal components, "
             "sklearn.decomposition.PCA)")
    size = 8.0 * n_draws * k * d * d * 2
    if size > MAX_POSTERIOR_BYTES:
        raise ValueError(
            f"{name} has {d} features: {n_draws} posterior draws of {k} covariance matrices "
            f"of {d} x {d} would take {size / 1e9:.3g} GB (the limit is "
            f"{MAX_POSTERIOR_BYTES / 1e9:g} GB). Use {fewer}, or fewer draws.")
    rows = n if batch_size is None else min(batch_size, n)
    covariance = structure(covariance_type)
    per_eval = covariance.evaluation_cost(rows, k, d)
    # Whatever the structure, the EM start estimates and inverts K D x D matrices and the
    # result keeps and factors them for every draw.
    setup = min(n, 3000) * k * d * d + k * d**3 * max(n_draws, 1)
    if max(per_eval, setup) > MAX_WORK_PER_EVALUATION:
        if per_eval >= setup and covariance.dense:  # D x D factors: diagonal ones cost less
            advice = f"covariance_type='diag', {fewer}"
        else:
            advice = fewer + ("" if per_eval < setup else ", or fewer rows")
        if per_eval >= setup and batch_size is None and n > d:  # minibatches would help
            advice += ", or minibatch ADVI (method='advi', batch_size=1000)"
        what = ("each evaluation of the likelihood" if per_eval >= setup else
                f"the {k} covariance matrices of {d} x {d} that the start estimates and the "
                f"result keeps and factors for each of its {n_draws} draw(s)")
        raise ValueError(
            f"{name} ({n} rows x {d} features) with {k} '{covariance_type}' components needs "
            f"about {max(per_eval, setup):.2g} operations for {what}: the fit would not "
            f"finish. Use {advice}.")
    ratio, p = covariance.values_per_parameter(n, d, k)
    if ratio < MIN_VALUES_PER_PARAMETER and p > n / k:
        if covariance.dense:
            r_diag, p_diag = DIAG.values_per_parameter(n, d, k)
            advice = (f"Use covariance_type='diag' ({p_diag} parameters per component, "
                      f"{r_diag:.3g} values each), {fewer}, or fewer components")
        else:
            advice = f"Use fewer components, {fewer}, or more rows"
        warnings.warn(
            f"{name} has {n} rows of {d} features for {k} component(s): with "
            f"covariance_type='{covariance_type}' each component has {p} free parameters and "
            f"about {n / k:.3g} rows, {ratio:.3g} data values per parameter (fewer than "
            f"{MIN_VALUES_PER_PARAMETER:g}). The likelihood cannot pin them down, and EM or "
            f"the posterior can split the data along noise. {advice}.",
            DataWarning, stacklevel=3)
