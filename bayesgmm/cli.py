"""Command line: ``bayesgmm demo``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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
    proba = model.predict_proba(X)
    assignments = X.copy()
    for k in range(proba.shape[1]):
        assignments[f"p_{k}"] = proba[:, k]
    assignments["label"] = proba.argmax(axis=1)
    assignments["uncertainty"] = 1.0 - proba.max(axis=1)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bayesgmm`` command."""
    parser = argparse.ArgumentParser(prog="bayesgmm",
                                     description="Bayesian Gaussian mixture models.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit the iris data, print a summary, write plots")
    demo.add_argument("--out", default="out", help="output folder (default: out)")
    demo.add_argument("--method", default="nuts", choices=["nuts", "advi", "fullrank_advi", "map"])
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--tune", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"bayesgmm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
