"""The package's dependency rules (docs/architecture.md), checked on the source with ``ast``.

Every import counts, function-level ones included:

* no import cycle between modules; importing ``a.b.c`` from outside ``a.b`` also runs
  ``a/b/__init__.py``, so it counts as an import of ``a.b`` too;
* no underscore name, and no underscore module, imported from another module: a helper two
  modules need is a named part of one of them;
* the layers: ``likelihood`` imports nothing else of bayesgmm and nothing of PyMC;
  ``fitting`` and ``ml`` import nothing of the estimator, plots, CLI or comparisons;
* the result's attribute names are written in ``fitting/result.py`` (and the file format's
  in ``io.py``) only: everything else reads a fit through ``fitting.result``.

The checker is tested on small made-up packages first, so that a rule that cannot fail
would show.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesgmm"


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, imported name or None, line) for every import of the package."""
    root = name.split(".")[0]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == root:
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != root:
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if full in modules:  # "from . import kernels": a module
                    yield full, None, node.lineno
                else:
                    yield module, alias.name, node.lineno


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for module, _, _ in _imports(name, path, modules):
            if module in modules and module != name:
                graph[name].add(module)
            parts = module.split(".")
            # Importing a.b.c runs a/b/__init__.py: an edge to every package on the way that
            # the importer is not inside of (the top package only gathers the public API).
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and not f"{name}.".startswith(f"{parent}."):
                    graph[name].add(parent)
    return graph


def find_cycles(root: Path) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = _graph(_modules(root))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def find_private_imports(root: Path) -> list[str]:
    modules = _modules(root)
    found = []
    for name, path in modules.items():
        for module, imported, line in _imports(name, path, modules):
            private_module = any(p.startswith("_") for p in module.split("."))
            private_name = imported is not None and imported.startswith("_") \
                and not imported.startswith("__")
            if private_module or private_name:
                what = module if imported is None else f"{module}.{imported}"
                found.append(f"{path.relative_to(root.parent)}:{line} imports {what}")
    return found


def imports_of(root: Path, prefix: str) -> dict[str, set[str]]:
    """The bayesgmm modules, and the outside packages, that modules under ``prefix`` import."""
    modules = _modules(root)
    out: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        seen = out.setdefault(name, set())
        for module, _, _ in _imports(name, path, modules):
            seen.add(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                seen.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                seen.add(node.module)
    return out


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


# ----------------------------------------------------------------------------- the checker


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import g\n",
        "b.py": "def g():\n    from .c import h\n",
        "c.py": "import pkg.a\n",
        "d.py": "from .a import f\n",
    })
    assert find_cycles(root) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_checker_counts_a_subpackage_init_as_imported(tmp_path):
    # diagnostics -> fitting.result runs fitting/__init__.py, which imports the pipeline,
    # which imports diagnostics: a cycle at import time although no two modules import
    # each other.
    root = _package(tmp_path, {
        "__init__.py": "from .diagnostics import check\n",
        "diagnostics.py": "from .fitting.result import info\n",
        "fitting/__init__.py": "from .pipeline import fit\n",
        "fitting/pipeline.py": "from ..diagnostics import check\n",
        "fitting/result.py": "from .vi import elbo\n",
        "fitting/vi.py": "",
    })
    assert find_cycles(root) == [["pkg.diagnostics", "pkg.fitting", "pkg.fitting.pipeline"]]


def test_checker_finds_private_names_and_modules(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "_helpers.py": "x = 1\n",
        "a.py": "def _f():\n    pass\n",
        "b.py": "from .a import _f\nfrom . import _helpers\n",
        "c.py": "def g():\n    from pkg._helpers import x\n",
        "d.py": "from .a import __doc__\n",
    })
    found = find_private_imports(root)
    assert found == ["pkg/b.py:1 imports pkg.a._f", "pkg/b.py:2 imports pkg._helpers",
                     "pkg/c.py:2 imports pkg._helpers.x"]


# ----------------------------------------------------------------------------- bayesgmm


def test_no_import_cycles():
    assert find_cycles(PACKAGE) == []


def test_no_private_names_across_modules():
    assert find_private_imports(PACKAGE) == []


@pytest.mark.parametrize("layer, forbidden", [
    # The likelihood layer: numba kernels, PyTensor Ops, NumPy; nothing of models or fits.
    ("bayesgmm.likelihood", ("pymc", "bayesgmm.model", "bayesgmm.fitting", "bayesgmm.ml",
                             "bayesgmm.estimator", "bayesgmm.diagnostics")),
    # Fitting and the point estimates know nothing of estimators, plots, comparisons, CLI.
    ("bayesgmm.fitting", ("bayesgmm.estimator", "bayesgmm.plotting", "bayesgmm.cli",
                          "bayesgmm.compare", "bayesgmm.selection", "bayesgmm.assignments",
                          "matplotlib")),
    ("bayesgmm.ml", ("bayesgmm.fitting", "bayesgmm.model", "bayesgmm.estimator",
                     "bayesgmm.plotting", "bayesgmm.cli", "bayesgmm.diagnostics", "matplotlib",
                     "pymc")),
])
def test_layers(layer, forbidden):
    bad = {name: sorted(m for m in seen if any(m == f or m.startswith(f + ".")
                                               for f in forbidden))
           for name, seen in imports_of(PACKAGE, layer).items()}
    assert {name: mods for name, mods in bad.items() if mods} == {}
    if layer == "bayesgmm.likelihood":
        inside = {m for seen in imports_of(PACKAGE, layer).values() for m in seen
                  if m.startswith("bayesgmm") and not m.startswith(layer)}
        assert inside == set()


def test_result_attributes_written_in_one_place():
    # Every attribute of a fit is named once, as a constant of fitting/result.py (the file
    # format's own in io.py); the readers use fitting.result's accessors and constants.
    from bayesgmm.fitting import result

    names = {value for key, value in vars(result).items() if key.endswith("_ATTR")}
    assert {"bayesgmm_method", "bayesgmm_covariance_type"} <= names
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "fitting" / "result.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value}")
    assert found == []


# docs/architecture.md: each layer imports only itself and the layers above it.
LAYERS = [
    ["exceptions", "params", "seeds", "validation", "covariance", "standardize", "priors",
     "progress", "sources"],
    ["likelihood"],
    ["ml"],
    ["model", "permutations"],
    ["fitting", "diagnostics", "display"],
    ["estimator", "assignments", "relabel", "singularity", "selection", "compare",
     "plotting", "io", "datasets", "classifier", "conditional", "clusters", "prediction"],
    ["cli", ""],
]


def _layer(module: str) -> int:
    rest = module.removeprefix("bayesgmm").removeprefix(".")
    top = rest.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer of docs/architecture.md: add it")


def test_layers_import_only_upwards():
    modules = _modules(PACKAGE)
    wrong = []
    for name, path in modules.items():
        for module, _, line in _imports(name, path, modules):
            if _layer(module) > _layer(name):
                wrong.append(f"{name}:{line} (layer {_layer(name)}) imports {module} "
                             f"(layer {_layer(module)})")
    assert wrong == []
