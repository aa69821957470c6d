"""Generate docs/api.md, the API reference, from the docstrings.

Run:  python docs/build_api.py        (writes docs/api.md)
      python docs/build_api.py --check (exit 1 if docs/api.md is out of date; the tests run it)
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

# Public modules and, for each, the names documented (in this order).
MODULES = {
    "bayesgmm": ["fit", "BayesianGMM", "BayesianGMMClassifier", "impute", "conditional",
                 "Priors", "relabel", "diagnose", "summary",
                 "compare_assignments", "FitWarning", "ConvergenceWarning",
                 "LabelSwitchingWarning", "DataWarning", "SavedFitError",
                 "UnverifiedFitWarning"],
    "bayesgmm.assignments": ["responsibilities", "assignment_summary", "coclustering",
                             "log_likelihood"],
    "bayesgmm.ml": ["PointEstimate", "fit_em", "fit_ml_gradient"],
    "bayesgmm.singularity": ["singularity_path"],
    "bayesgmm.selection": ["select_components", "Selection", "sparse_mixture", "SparseMixture",
                           "loo"],
    "bayesgmm.clusters": ["partition", "Partition", "CredibleBall", "credible_ball",
                          "draw_labels", "partition_distance", "expected_loss",
                          "merge_components", "Merge", "nonempty_prior"],
    "bayesgmm.diagnostics": ["Diagnostics", "Problem", "check"],
    "bayesgmm.permutations": ["stephens_permutations", "pivot_permutations",
                              "gaussian_kl_cost", "apply_permutations"],
    "bayesgmm.plotting": ["plot_clusters", "plot_density", "plot_pairs", "plot_elbo",
                          "plot_disagreements", "plot_singularity_path", "plot_selection",
                          "plot_nonempty", "plot_coclustering", "plot_partition",
                          "plot_merge_tree"],
    "bayesgmm.datasets": ["make_mixture", "load_iris"],
}
OUT = Path(__file__).resolve().parent / "api.md"


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _section(qualname: str, obj) -> list[str]:
    kind = "class" if inspect.isclass(obj) else "function"
    lines = [f"### `{qualname}{_signature(obj)}`", "", f"*{kind}*", ""]
    doc = inspect.getdoc(obj) or "(no docstring)"
    lines += ["```text", doc, "```", ""]
    if inspect.isclass(obj) and not issubclass(obj, Warning):
        for name, member in vars(obj).items():  # what the class itself defines
            if isinstance(member, classmethod):
                member = member.__func__
            if name.startswith("_") or not (inspect.isfunction(member)
                                            or isinstance(member, property)):
                continue
            mdoc = inspect.getdoc(member) or ""
            first = mdoc.strip().splitlines()[0] if mdoc.strip() else ""
            sig = "" if isinstance(member, property) else _signature(member)
            lines.append(f"- `{name}{sig}`: {first}")
        lines.append("")
    return lines


def render() -> str:
    """The API reference as Markdown."""
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/build_api.py`; do not edit.", ""]
    for module_name, names in MODULES.items():
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", ""]
        summary = (inspect.getdoc(module) or "").strip().splitlines()
        if summary:
            lines += [summary[0], ""]
        for name in names:
            lines += _section(f"{module_name}.{name}", getattr(module, name))
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    """Write docs/api.md, or with --check report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print("docs/api.md is out of date: run python docs/build_api.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
