"""Command line: ``bayesgmm fit``, ``compare``, ``select`` and ``demo``.

Errors (a missing file, an unparsable CSV, non-numeric columns, bad options) exit with
status 2 and a one-line reason on stderr, without a traceback. ``fit`` saves the fit
(``fit.nc``) before anything else; an optional output (a table or plot beside the main
result) that cannot be made is reported as ``bayesgmm: warning: NAME not written: reason``
on stderr and the others are still written. Every file is written beside its final name
and then renamed, so a failed write leaves an earlier file of that name intact.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    from .datasets import load_iris
    from .estimator import BayesianGMM
    from .plotting import plot_clusters

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X, species = load_iris()
    print(f"Fitting a 3-component Bayesian Gaussian mixture to the iris data {X.shape} "
          f"by {args.method.upper()} ...", flush=True)
    t0 = time.perf_counter()
    model = BayesianGMM(3, method=args.method, draws=args.draws, tune=args.tune,
                        random_state=args.seed).fit(X)
    print(f"done in {time.perf_counter() - t0:.1f} s\n")
    table = model.summary()
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(table.to_string())
    written: list[Path] = []
    _write(out / "summary.csv", lambda p: table.to_csv(p), written)
    assignments = _assignments_table(model, X)
    assignments["species"] = species
    _write(out / "assignments.csv", lambda p: assignments.to_csv(p, index_label="obs"),
           written)
    ari = adjusted_rand_score(species, assignments["label"])
    unsure = int((assignments["uncertainty"] > 0.1).sum())
    print(f"\nAdjusted Rand index against the species: {ari:.3f}")
    print(f"Points whose label is less than 90% certain: {unsure} of {len(X)}")

    def clusters():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        try:
            plot_clusters(model, X, features=("sepal_length", "sepal_width"), ax=axes[0])
            plot_clusters(model, X, features=("petal_length", "petal_width"), ax=axes[1])
            fig.tight_layout()
        except BaseException:
            plt.close(fig)
            raise
        return fig

    _optional(out / "clusters.png", lambda p: _save_figure(clusters(), p, dpi=110), written)
    print()
    _report(written)
    return 0


_SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _header(file: Path) -> str:
    """The first non-blank line of a file (at most 1 MB of it), for finding its separator."""
    with open(file, "rb") as f:
        for raw in f:
            line = raw[:1 << 20].decode("utf-8", errors="replace").strip("\r\n")
            if line.strip():
                return line
    return ""


def _count_outside_quotes(line: str, sep: str) -> int:
    """How often ``sep`` occurs in ``line`` outside double-quoted fields."""
    count, quoted = 0, False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            count += 1
    return count


def _separator(header: str) -> str:
    """The separator of a CSV file, from its header.

    Commas if it has any, else the most frequent of semicolons, tabs and vertical bars,
    else commas (a single column).
    """
    counts = {sep: _count_outside_quotes(header, sep) for sep in _SEPARATORS}
    if counts[","]:
        return ","
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _sep_name(sep: str) -> str:
    return "'\\t' (tab)" if sep == "\t" else repr(sep)


def _read_table(path: str, sep: str | None = None, decimal: str = "."):
    """A CSV file as a DataFrame, all its columns.

    The separator is found from the header unless ``sep`` is given. Every problem is a
    ValueError (or FileNotFoundError) that says what to change.
    """
    import pandas as pd

    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{path} is a directory, not a CSV file")
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    header = _header(file)
    chosen = _separator(header) if sep is None else sep
    if chosen == decimal:
        raise ValueError(f"the separator and the decimal mark are both {chosen!r}: pass "
                         f"--sep or --decimal to tell them apart")
    try:
        df = pd.read_csv(file, sep=chosen, decimal=decimal)
    except UnicodeDecodeError as exc:
        raise ValueError(f"could not parse {path} as CSV: it is not UTF-8 text ({exc.reason} "
                         f"at byte {exc.start}); save it as a UTF-8 CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not parse {path} as CSV: {reason}") from None
    if df.shape[1] == 1:
        others = [other for other in _SEPARATORS
                  if other != chosen and _count_outside_quotes(header, other)]
        if others:
            raise ValueError(f"{path} parses as one column, {str(df.columns[0])!r}, with the "
                             f"separator {_sep_name(chosen)}, but its header holds "
                             f"{_SEPARATORS[others[0]]}: pass --sep {_sep_name(others[0])}")
    return df


def _read_csv(path: str, columns: str | None, missing: str = "error", *,
              sep: str | None = None, decimal: str = ".", exclude: tuple[str, ...] = (),
              df=None):
    """The numeric data of a CSV file, optionally restricted to some columns.

    ``exclude`` names columns that are not data (``compare --labels``): left out of the
    default selection and refused in ``columns``. ``df`` is the file already read by
    :func:`_read_table`. Every problem a user can fix in the file or the options is a
    ValueError (or FileNotFoundError) whose message names the file, the columns or rows at
    fault, or the option to change.
    """
    import pandas as pd

    if df is None:
        df = _read_table(path, sep, decimal)
    if exclude and columns is None:
        df = df.drop(columns=list(exclude))
    if columns is not None:
        wanted = _column_names(columns)
        if not wanted:
            raise ValueError(f"--columns {columns!r} names no column; give comma-separated "
                             f"names from {list(df.columns)}")
        repeated = sorted({c for c in wanted if wanted.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} named more than once in --columns; name "
                             f"each column once")
        clash = [c for c in wanted if c in exclude]
        if clash:
            raise ValueError(f"column(s) {clash} are the true labels (--labels) and cannot "
                             f"also be data: leave them out of --columns")
        absent = [c for c in wanted if c not in df.columns]
        if absent:
            raise ValueError(f"column(s) {absent} not in {path}; it has {list(df.columns)}")
        df = df[wanted]
    if df.shape[0] == 0:
        raise ValueError(f"{path} has no data rows (only a header); it needs one row per "
                         f"observation below the header")
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
                   or pd.api.types.is_bool_dtype(df[c])]
    if non_numeric:
        hint = ""
        if decimal == "." and any(_decimal_commas(df[c]) for c in non_numeric):
            hint = (" (their values look like numbers written with decimal commas, e.g. "
                    "'1,5': pass --decimal ,)")
        raise ValueError(f"non-numeric column(s) {non_numeric} in {path}{hint}: choose "
                         f"numeric ones with --columns")
    values = df.to_numpy(dtype=float, na_value=np.nan)
    holes = np.isnan(values)
    if missing != "error":  # marginalised by the fit; rows or columns with nothing refused
        for axis, what in ((0, "column(s)"), (1, "data row(s)")):
            empty = holes.all(axis=axis)
            if empty.any():
                names = ([str(c) for c, e in zip(df.columns, empty, strict=True) if e]
                         if axis == 0 else (np.flatnonzero(empty) + 1).tolist()[:5])
                raise ValueError(f"{path} has every entry missing in {what} {names}"
                                 f"{' (counting from 1 below the header)' if axis else ''}: "
                                 f"remove them (or leave the columns out with --columns)")
        holes = np.zeros_like(holes)
    for bad, what in ((holes, "missing values"),
                      (np.isinf(values), "infinite values")):
        if bad.any():
            cols = [str(c) for c, b in zip(df.columns, bad.any(axis=0), strict=True) if b]
            rows = np.flatnonzero(bad.any(axis=1)) + 1
            shown = ", ".join(str(r) for r in rows[:5])
            more = f" and {rows.size - 5} more" if rows.size > 5 else ""
            hint = (", or pass --missing marginalize to integrate them out of the "
                    "likelihood" if what == "missing values" else "")
            raise ValueError(f"{path} has {what} in column(s) {cols}, data row(s) {shown}{more} "
                             f"(counting from 1 below the header): fill in or remove those "
                             f"rows, or leave the column(s) out with --columns{hint}")
    return df


def _decimal_commas(column) -> bool:
    """Whether a text column's values read as numbers with a decimal comma ("1,5")."""
    values = column.dropna().astype(str).str.strip()
    values = values[values != ""]
    if values.empty:
        return False
    return bool(values.str.fullmatch(r"[+-]?\d+(,\d+)?([eE][+-]?\d+)?").all()
                and values.str.contains(",").any())


def _column_names(text: str) -> list[str]:
    """The names in ``--columns``, read as one CSV record: ``'"a,b",c'`` is ``a,b`` and ``c``."""
    try:
        rows = list(csv.reader([text], skipinitialspace=True, strict=True))
    except csv.Error as exc:
        raise ValueError(f"could not read --columns {text!r} as comma-separated names "
                         f"({exc}); quote a name that contains a comma or a quote as in a "
                         f"CSV header, e.g. --columns '\"a,b\",c'") from None
    return [c.strip() for row in rows for c in row if c.strip()]


def _check_rows(df, path: str, n_components: int, option: str) -> None:
    """Refuse data with fewer rows than the fit needs, naming the option to lower."""
    need = max(2, n_components)
    if df.shape[0] < need:
        raise ValueError(f"{path} has {df.shape[0]} data row(s), but fitting {n_components} "
                         f"component(s) needs at least {need}: lower {option} or add rows")


def _assignments_table(model, df):
    """The data with each row's assignment summary beside it (what assignments.csv holds)."""
    import pandas as pd

    from .assignments import assignment_summary

    return pd.concat([df.reset_index(drop=True),
                      assignment_summary(model, df).reset_index(drop=True)], axis=1)


def _stage(message: str) -> float:
    print(message, flush=True)
    return time.perf_counter()


def _family_args(args) -> dict:
    """The select command's --families, or its --component and --noise (not both)."""
    if args.families is None:
        return {"component": args.component, "noise": _noise_setting(args.noise)}
    if args.component != "gaussian" or args.noise != "none":
        raise ValueError("--families sets the component and the noise of each model: drop "
                         "--component/--noise, or drop --families.")
    return {"families": args.families}


def _noise_setting(value: str):
    """The CLI's --noise as fit's noise setting (False for "none")."""
    return False if value == "none" else value


def _model_from_args(args, n_components: int):
    from .estimator import BayesianGMM

    return BayesianGMM(n_components, covariance_type=args.covariance_type, method=args.method,
                       draws=args.draws, tune=args.tune, chains=args.chains,
                       sampler=args.sampler, random_state=args.seed, progressbar=args.progress,
                       missing=args.missing, component=args.component, dof=args.dof,
                       noise=_noise_setting(args.noise))


def _write(path: Path, write, written: list[Path]) -> Path:
    """Call ``write(partial)`` on a name beside ``path``, then rename it to ``path``.

    A write that fails leaves any earlier file at ``path`` as it was.
    """
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    written.append(path)
    return path


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _optional(path: Path, write, written: list[Path]) -> bool:
    """Write an optional output; if it cannot be made, say why on stderr and carry on."""
    try:
        _write(path, write, written)
    except Exception as exc:  # noqa: BLE001 - any failure of an extra output is reported
        print(f"bayesgmm: warning: {path.name} not written: {type(exc).__name__}: "
              f"{_reason(exc)}", file=sys.stderr, flush=True)
        return False
    return True


def _report(written: list[Path]) -> None:
    print("Wrote " + ", ".join(str(p) for p in written) if written else "Wrote nothing")


def _save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """Write a figure as PNG and close it (also when the write fails)."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path


def _clusters_figure(model, df):
    """The clusters (and, for 2-D data, the density) as one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_clusters, plot_density, plot_pairs

    d = df.shape[1]
    if d > 2:
        return plot_pairs(model, df)[0, 0].figure
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5)) if d == 2 else plt.subplots(figsize=(6, 4))
    try:
        if d == 2:
            plot_clusters(model, df, ax=axes[0])
            plot_density(model, df, ax=axes[1])
        else:
            labels = model.predict(df)
            for k in range(model.n_components):
                axes.hist(df.to_numpy()[labels == k, 0], bins=30, alpha=0.6,
                          label=f"component {k}")
            if (labels == -1).any():
                axes.hist(df.to_numpy()[labels == -1, 0], bins=30, alpha=0.6, color="0.4",
                          label="noise")
            axes.set_xlabel(df.columns[0])
            axes.legend()
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    return fig


def _save_plots(model, df, out: Path, written: list[Path]) -> None:
    from .plotting import plot_elbo

    _optional(out / "clusters.png", lambda p: _save_figure(_clusters_figure(model, df), p),
              written)
    if "variational" in model.idata_.children:
        _optional(out / "elbo.png", lambda p: _save_figure(plot_elbo(model).figure, p),
                  written)


def _fit(args) -> int:
    import pandas as pd

    df = _read_csv(args.data, args.columns, args.missing, sep=args.sep, decimal=args.decimal)
    _check_rows(df, args.data, args.components, "--components")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"Fitting {args.components} components to {df.shape[0]} rows x "
                f"{df.shape[1]} columns of {args.data} by {args.method} ...")
    model = _model_from_args(args, args.components).fit(df)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    # The fit first: whatever goes wrong below, it is on disk.
    written: list[Path] = []
    status = 0
    try:
        model.save(out / "fit.nc")  # atomic itself, and it refuses to replace a foreign file
        written.append(out / "fit.nc")
    except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
        print(f"bayesgmm: error: fit.nc not written: {_reason(exc)}", file=sys.stderr,
              flush=True)
        status = 1
    print(model.diagnose())

    def summary(path):
        table = model.summary()
        with pd.option_context("display.width", 120, "display.max_columns", 20):
            print(table.to_string())
        table.to_csv(path)

    _optional(out / "summary.csv", summary, written)
    _optional(out / "assignments.csv",
              lambda p: _assignments_table(model, df).to_csv(p, index_label="obs"), written)
    _save_plots(model, df, out, written)
    _report(written)
    return status


def _compare(args) -> int:
    from .compare import compare_assignments
    from .ml.em import fit_em

    table = _read_table(args.data, args.sep, args.decimal)
    labels = None
    if args.labels is not None:
        labels = _labels(table, args.labels, args.data)
    df = _read_csv(args.data, args.columns, args.missing, df=table,
                   exclude=() if args.labels is None else (args.labels,))
    _check_rows(df, args.data, args.components, "--components")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"Fitting {args.components} components by {args.method} and by EM ...")
    model = _model_from_args(args, args.components).fit(df)
    em = fit_em(df, args.components, covariance_type=args.covariance_type,
                random_state=args.seed, missing=args.missing,
                noise=_noise_setting(args.noise))  # like for like: EM with the same noise
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    result = compare_assignments(model, em, df, y_true=labels)
    print(result)
    points = result.points
    if labels is not None:
        points = points.assign(**{"label_true": labels.to_numpy()})
    written: list[Path] = []
    _write(out / "comparison.csv", lambda p: points.to_csv(p, index_label="obs"), written)
    if df.shape[1] >= 2:
        def disagreements(path):
            import matplotlib

            matplotlib.use("Agg")
            from .plotting import plot_disagreements

            _save_figure(plot_disagreements(result, df).figure, path)

        _optional(out / "disagreements.png", disagreements, written)
    _report(written)
    return 0


def _labels(table, column: str, path: str):
    """The true labels of ``compare --labels COLUMN``: any values, none missing."""
    if column not in table.columns:
        raise ValueError(f"--labels {column!r} is not a column of {path}; it has "
                         f"{list(table.columns)}")
    labels = table[column]
    empty = np.flatnonzero(labels.isna().to_numpy()) + 1
    if empty.size:
        raise ValueError(f"the labels column {column!r} of {path} is empty in data row(s) "
                         f"{', '.join(map(str, empty[:5]))}"
                         f"{f' and {empty.size - 5} more' if empty.size > 5 else ''} "
                         f"(counting from 1 below the header): give every row a label, or "
                         f"drop --labels")
    return labels.astype(str) if labels.dtype == object else labels


def _plot_to(plot, *args):
    """A writer for :func:`_optional`: draw ``plot(*args)`` and save its figure as PNG."""
    def write(path):
        import matplotlib

        matplotlib.use("Agg")
        _save_figure(plot(*args).figure, path)
    return write


def _select(args) -> int:
    from .plotting import plot_selection
    from .selection import select_components

    families = _family_args(args)  # refused before anything is read or written
    df = _read_csv(args.data, args.columns, args.missing, sep=args.sep, decimal=args.decimal)
    if args.min_components > args.max_components:
        raise ValueError(f"--min-components ({args.min_components}) must not exceed "
                         f"--max-components ({args.max_components})")
    _check_rows(df, args.data, args.max_components, "--max-components")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"Fitting K = {args.min_components}..{args.max_components} by {args.method} "
                f"and comparing by PSIS-LOO ...")
    sel = select_components(df, args.max_components, min_components=args.min_components,
                            covariance_types=args.covariance_types, n_jobs=args.jobs,
                            method=args.method, draws=args.draws, tune=args.tune,
                            chains=args.chains, sampler=args.sampler, random_state=args.seed,
                            progressbar=args.progress, missing=args.missing,
                            dof=args.dof, **families)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    print(sel)
    written: list[Path] = []
    _write(out / "selection.csv", lambda p: sel.table.to_csv(p), written)
    _optional(out / "selection.png", _plot_to(plot_selection, sel), written)
    if args.sparse:
        from .plotting import plot_nonempty
        from .selection import sparse_mixture

        t0 = _stage(f"Fitting an overfitted mixture (K = {args.max_components}, sparse "
                    f"Dirichlet({args.concentration:g})) by {args.method} ...")
        sparse = sparse_mixture(df, args.max_components, concentration=args.concentration,
                                method=args.method, draws=args.draws, tune=args.tune,
                                chains=args.chains, sampler=args.sampler,
                                random_state=args.seed, progressbar=args.progress,
                                missing=args.missing, component=args.component,
                                dof=args.dof, noise=_noise_setting(args.noise))
        print(f"  done in {time.perf_counter() - t0:.1f} s")
        print(sparse)
        _write(out / "nonempty.csv", lambda p: sparse.table.to_csv(p), written)
        _optional(out / "nonempty.png", _plot_to(plot_nonempty, sparse), written)
    _report(written)
    return 0


def _add_fit_options(p: argparse.ArgumentParser, components: bool = True) -> None:
    p.add_argument("data", help="CSV file with a header row")
    if components:
        p.add_argument("--components", "-k", type=_positive_int, required=True,
                       help="number of mixture components")
        p.add_argument("--covariance-type", default="full", choices=COVARIANCE_TYPES,
                       help="covariance structure (default full)")
        methods = ["nuts", "advi", "fullrank_advi", "map"]
    else:
        p.add_argument("--max-components", type=_positive_int, required=True,
                       help="largest number of components to try")
        p.add_argument("--min-components", type=_positive_int, default=1,
                       help="smallest number of components to try (default 1)")
        p.add_argument("--covariance-types", type=_covariance_types, default=("full",),
                       help="comma-separated structures to compare, e.g. full,diag,spherical,"
                            "tied (default full)")
        p.add_argument("--families", type=_families, default=None,
                       help="comma-separated component families to compare as well, e.g. "
                            "gaussian,student_t,gaussian+noise (from "
                            f"{','.join(FAMILIES)}; then without --component/--noise)")
        p.add_argument("--jobs", type=_positive_int, default=1,
                       help="fits run in parallel (joblib worker processes; default 1)")
        methods = None
    p.add_argument("--sep", type=_separator_option, default=None,
                   help="the field separator: ',', ';', 'tab' or '|' (default: found from "
                        "the header: commas if it has any, else semicolons, tabs or bars)")
    p.add_argument("--decimal", default=".", choices=[".", ","],
                   help="the decimal mark of the numbers (default '.')")
    p.add_argument("--columns",
                   help="comma-separated columns to use (default: all), read like a CSV "
                        "header: quote a name that contains a comma, e.g. --columns "
                        "'\"a,b\",c' selects the columns a,b and c")
    if methods is None:
        p.add_argument("--method", default="nuts", type=_select_method,
                       help="nuts, advi or fullrank_advi (not map: PSIS-LOO needs posterior "
                            "draws; default nuts)")
    else:
        p.add_argument("--method", default="nuts", choices=methods)
    p.add_argument("--sampler", default="auto",
                   choices=["auto", "pymc", "nutpie", "numpyro", "blackjax"])
    p.add_argument("--draws", type=_positive_int, default=1000)
    p.add_argument("--tune", type=_positive_int, default=1000)
    p.add_argument("--chains", type=_positive_int, default=2)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--missing", default="error", choices=["error", "marginalize"],
                   help="empty cells of the CSV: refuse them (default), or marginalise them "
                        "out of the likelihood, missing at random (docs/missing.md)")
    p.add_argument("--component", default="gaussian", choices=COMPONENTS,
                   help="component distribution: gaussian (default), or student_t (heavy "
                        "tails, for data with outliers; degrees of freedom per component)")
    p.add_argument("--dof", type=_positive_float, default=None,
                   help="with --component student_t: fix every component's degrees of "
                        "freedom (default: under their Gamma(2, 0.1) prior)")
    p.add_argument("--noise", default="none", choices=("none",) + NOISE_REGIONS,
                   help="add a uniform noise component over the data's region, for points "
                        "in no cluster (label -1, p_noise in assignments.csv): box (the "
                        "bounding box), hypvol (mclust's) or hull (convex hull, up to 8 "
                        "features); default none")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default="auto",
                   help="report each step, the samplers' progress and the models as they "
                        "finish, on stderr (default: when stderr is a terminal and CI is not "
                        "set)")
    p.add_argument("--out", default="out", help="output folder (default: out)")


def _argument(convert, what: str, ok, requirement: str):
    """An argparse type: ``convert(text)`` that must satisfy ``ok``, else a one-line error."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{requirement}, got {value:g}")
        return value
    return parse


_positive_int = _argument(int, "an integer", lambda v: v >= 1, "must be at least 1")
_seed = _argument(int, "an integer", lambda v: v >= 0, "must be a non-negative integer")
_positive_float = _argument(float, "a number", lambda v: 0 < v < float("inf"),
                            "must be a positive, finite number")
_concentration = _argument(float, "a number", lambda v: 0 < v < 1, "must lie in (0, 1)")


def _separator_option(text: str) -> str:
    sep = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(sep) != 1 or sep in "\"\r\n" or sep.isalnum() or sep == ".":
        raise argparse.ArgumentTypeError(f"{text!r}: give one character such as ',', ';' or "
                                         f"'|', or 'tab'")
    return sep


def _select_method(text: str) -> str:
    if text == "map":
        raise argparse.ArgumentTypeError(
            "'map' is one point, and PSIS-LOO needs posterior draws: use nuts, advi or "
            "fullrank_advi")
    if text not in ("nuts", "advi", "fullrank_advi"):
        raise argparse.ArgumentTypeError(f"{text!r}: choose nuts, advi or fullrank_advi")
    return text


# bayesgmm.covariance.COVARIANCE_TYPES, not imported here so that the command starts without
# importing PyMC (tests/test_cli.py and tests/test_params.py check that they agree).
COVARIANCE_TYPES = ["full", "diag", "spherical", "tied"]
COMPONENTS = ["gaussian", "student_t"]  # bayesgmm.params.COMPONENTS, likewise
NOISE_REGIONS = ("box", "hypvol", "hull")  # bayesgmm.likelihood.noise.NOISE_REGIONS, likewise
FAMILIES = ("gaussian", "student_t", "gaussian+noise", "student_t+noise")  # selection's


def _families(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in FAMILIES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(FAMILIES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a family twice")
    return names


def _covariance_types(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in COVARIANCE_TYPES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated structures from "
                                         f"{', '.join(COVARIANCE_TYPES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a structure twice")
    return names


def _version() -> str:
    """The installed version, without importing the package (and PyMC) itself."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesgmm")
    except PackageNotFoundError:  # pragma: no cover - a source tree that is not installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), no usage."""

    def error(self, message: str):
        """Print ``prog: error: message (see 'prog --help')`` and exit with status 2."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = _Parser(prog="bayesgmm", description="Bayesian Gaussian mixture models.")
    parser.add_argument("--version", action="version", version=f"bayesgmm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the iris data, print a summary, write plots")
    demo.add_argument("--out", default="out", help="output folder (default: out)")
    demo.add_argument("--method", default="nuts", choices=["nuts", "advi", "fullrank_advi", "map"])
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--tune", type=int, default=1000)
    demo.add_argument("--seed", type=_seed, default=0)
    demo.set_defaults(func=_demo)
    fit = sub.add_parser("fit", help="fit a CSV file; write summary, assignments, fit, plots")
    _add_fit_options(fit)
    fit.set_defaults(func=_fit)
    compare = sub.add_parser("compare", help="compare Bayesian and EM assignments on a CSV")
    _add_fit_options(compare)
    compare.add_argument("--labels", metavar="COLUMN",
                         help="a column of true labels (any values; not used as data): adds "
                              "each fit's adjusted Rand index against them, and the labels "
                              "to comparison.csv as label_true")
    compare.set_defaults(func=_compare)
    select = sub.add_parser("select", help="choose the number of components by PSIS-LOO")
    _add_fit_options(select, components=False)
    select.add_argument("--sparse", action="store_true",
                        help="also fit one overfitted mixture with K = --max-components and a "
                             "sparse Dirichlet prior, and report the posterior of the number "
                             "of non-empty components")
    select.add_argument("--concentration", type=_concentration, default=0.01,
                        help="Dirichlet concentration for --sparse (default 0.01)")
    select.set_defaults(func=_select)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Ctrl-C (``KeyboardInterrupt``) ends it with status 130 and ``bayesgmm: interrupted`` on
    stderr, without a traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"bayesgmm: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesgmm: interrupted", file=sys.stderr)
        from .fitting.interrupt import pending

        if pending():  # compiled JAX code that cannot be stopped still runs in a thread:
            sys.stdout.flush()  # exit now rather than wait for it
            sys.stderr.flush()
            os._exit(130)
        return 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
