"""Command line: ``bayesgmm fit``, ``bayesgmm compare`` and ``bayesgmm demo``.

Errors (a missing file, an unparsable CSV, non-numeric columns, bad options) exit with
status 2 and a one-line reason on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
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
    table.to_csv(out / "summary.csv")
    assignments = _assignments_table(model, X)
    assignments["species"] = species
    assignments.to_csv(out / "assignments.csv", index_label="obs")
    ari = adjusted_rand_score(species, assignments["label"])
    unsure = int((assignments["uncertainty"] > 0.1).sum())
    print(f"\nAdjusted Rand index against the species: {ari:.3f}")
    print(f"Points whose label is less than 90% certain: {unsure} of {len(X)}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    plot_clusters(model, X, features=("sepal_length", "sepal_width"), ax=axes[0])
    plot_clusters(model, X, features=("petal_length", "petal_width"), ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "clusters.png", dpi=110)
    plt.close(fig)
    print(f"\nWrote {out / 'summary.csv'}, {out / 'assignments.csv'} and {out / 'clusters.png'}")
    return 0


def _read_csv(path: str, columns: str | None):
    """The numeric data of a CSV file, optionally restricted to some columns.

    Every problem a user can fix in the file or the options is a ValueError (or
    FileNotFoundError) whose message names the file, the columns or rows at fault, or the
    option to change.
    """
    import pandas as pd

    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{path} is a directory, not a CSV file")
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        df = pd.read_csv(file)
    except UnicodeDecodeError as exc:
        raise ValueError(f"could not parse {path} as CSV: it is not UTF-8 text ({exc.reason} "
                         f"at byte {exc.start}); save it as a UTF-8 CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not parse {path} as CSV: {reason}") from None
    if columns is not None:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        if not wanted:
            raise ValueError(f"--columns {columns!r} names no column; give comma-separated "
                             f"names from {list(df.columns)}")
        repeated = sorted({c for c in wanted if wanted.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} named more than once in --columns; name "
                             f"each column once")
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise ValueError(f"column(s) {missing} not in {path}; it has {list(df.columns)}")
        df = df[wanted]
    if df.shape[0] == 0:
        raise ValueError(f"{path} has no data rows (only a header); it needs one row per "
                         f"observation below the header")
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])
                   or pd.api.types.is_bool_dtype(df[c])]
    if non_numeric:
        raise ValueError(f"non-numeric column(s) {non_numeric} in {path}: choose numeric "
                         f"ones with --columns")
    values = df.to_numpy(dtype=float, na_value=np.nan)
    for bad, what in ((np.isnan(values), "missing values"),
                      (np.isinf(values), "infinite values")):
        if bad.any():
            cols = [str(c) for c, b in zip(df.columns, bad.any(axis=0), strict=True) if b]
            rows = np.flatnonzero(bad.any(axis=1)) + 1
            shown = ", ".join(str(r) for r in rows[:5])
            more = f" and {rows.size - 5} more" if rows.size > 5 else ""
            raise ValueError(f"{path} has {what} in column(s) {cols}, data row(s) {shown}{more} "
                             f"(counting from 1 below the header): fill in or remove those "
                             f"rows, or leave the column(s) out with --columns")
    return df


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


def _model_from_args(args, n_components: int):
    from .estimator import BayesianGMM

    return BayesianGMM(n_components, covariance_type=args.covariance_type, method=args.method,
                       draws=args.draws, tune=args.tune, chains=args.chains,
                       sampler=args.sampler, random_state=args.seed, progressbar=args.progress)


def _save_figure(fig, path: Path) -> Path:
    """Write a figure as PNG (100 dpi) and close it."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _save_plots(model, df, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_clusters, plot_density, plot_elbo, plot_pairs

    written = []
    d = df.shape[1]
    if d == 2:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        plot_clusters(model, df, ax=axes[0])
        plot_density(model, df, ax=axes[1])
    elif d > 2:
        axes = plot_pairs(model, df)
        fig = axes[0, 0].figure
    else:
        fig, ax = plt.subplots(figsize=(6, 4))
        labels = model.predict(df)
        for k in range(model.n_components):
            ax.hist(df.to_numpy()[labels == k, 0], bins=30, alpha=0.6, label=f"component {k}")
        ax.set_xlabel(df.columns[0])
        ax.legend()
    fig.tight_layout()
    written.append(_save_figure(fig, out / "clusters.png"))
    if "variational" in model.idata_.children:
        written.append(_save_figure(plot_elbo(model).figure, out / "elbo.png"))
    return written


def _fit(args) -> int:
    import pandas as pd

    df = _read_csv(args.data, args.columns)
    _check_rows(df, args.data, args.components, "--components")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"Fitting {args.components} components to {df.shape[0]} rows x "
                f"{df.shape[1]} columns of {args.data} by {args.method} ...")
    model = _model_from_args(args, args.components).fit(df)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    print(model.diagnose())
    table = model.summary()
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(table.to_string())
    table.to_csv(out / "summary.csv")
    assignments = _assignments_table(model, df)
    assignments.to_csv(out / "assignments.csv", index_label="obs")
    written = [out / "summary.csv", out / "assignments.csv"]
    try:
        model.save(out / "fit.nc")
        written.append(out / "fit.nc")
    except ImportError as exc:
        print(f"  not saved: {exc}")
    written += _save_plots(model, df, out)
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0


def _compare(args) -> int:
    from .baselines import fit_em
    from .compare import compare_assignments
    from .plotting import plot_disagreements

    df = _read_csv(args.data, args.columns)
    _check_rows(df, args.data, args.components, "--components")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = _stage(f"Fitting {args.components} components by {args.method} and by EM ...")
    model = _model_from_args(args, args.components).fit(df)
    em = fit_em(df, args.components, covariance_type=args.covariance_type,
                random_state=args.seed)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    result = compare_assignments(model, em, df)
    print(result)
    result.points.to_csv(out / "comparison.csv", index_label="obs")
    written = [out / "comparison.csv"]
    if df.shape[1] >= 2:
        import matplotlib

        matplotlib.use("Agg")
        ax = plot_disagreements(result, df)
        written.append(_save_figure(ax.figure, out / "disagreements.png"))
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0


def _select(args) -> int:
    import matplotlib

    matplotlib.use("Agg")

    from .plotting import plot_selection
    from .selection import select_components

    df = _read_csv(args.data, args.columns)
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
                            progressbar=args.progress)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    print(sel)
    sel.table.to_csv(out / "selection.csv")
    written = [out / "selection.csv",
               _save_figure(plot_selection(sel).figure, out / "selection.png")]
    if args.sparse:
        from .plotting import plot_nonempty
        from .selection import sparse_mixture

        t0 = _stage(f"Fitting an overfitted mixture (K = {args.max_components}, sparse "
                    f"Dirichlet({args.concentration:g})) by {args.method} ...")
        sparse = sparse_mixture(df, args.max_components, concentration=args.concentration,
                                method=args.method, draws=args.draws, tune=args.tune,
                                chains=args.chains, sampler=args.sampler,
                                random_state=args.seed, progressbar=args.progress)
        print(f"  done in {time.perf_counter() - t0:.1f} s")
        print(sparse)
        sparse.table.to_csv(out / "nonempty.csv")
        written += [out / "nonempty.csv",
                    _save_figure(plot_nonempty(sparse).figure, out / "nonempty.png")]
    print("Wrote " + ", ".join(str(p) for p in written))
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
        p.add_argument("--jobs", type=_positive_int, default=1,
                       help="fits run in parallel (joblib worker processes; default 1)")
        methods = ["nuts", "advi", "fullrank_advi"]
    p.add_argument("--columns", help="comma-separated columns to use (default: all)")
    p.add_argument("--method", default="nuts", choices=methods)
    p.add_argument("--sampler", default="auto",
                   choices=["auto", "pymc", "nutpie", "numpyro", "blackjax"])
    p.add_argument("--draws", type=_positive_int, default=1000)
    p.add_argument("--tune", type=_positive_int, default=1000)
    p.add_argument("--chains", type=_positive_int, default=2)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--progress", action="store_true", help="show the samplers' progress bars")
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
_concentration = _argument(float, "a number", lambda v: 0 < v < 1, "must lie in (0, 1)")


# bayesgmm.model.COVARIANCE_TYPES, not imported here so that the command starts without
# importing PyMC (tests/test_cli_plots.py checks that they agree).
COVARIANCE_TYPES = ["full", "diag", "spherical", "tied"]


def _covariance_types(text: str) -> tuple[str, ...]:
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in names if t not in COVARIANCE_TYPES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated structures from "
                                         f"{', '.join(COVARIANCE_TYPES)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a structure twice")
    return names


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2), no usage."""

    def error(self, message: str):
        """Print ``prog: error: message (see 'prog --help')`` and exit with status 2."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = _Parser(prog="bayesgmm", description="Bayesian Gaussian mixture models.")
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
        from ._interrupt import pending

        if pending():  # compiled JAX code that cannot be stopped still runs in a thread:
            sys.stdout.flush()  # exit now rather than wait for it
            sys.stderr.flush()
            os._exit(130)
        return 130  # 128 + SIGINT, as a shell reports a process ended by Ctrl-C


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
