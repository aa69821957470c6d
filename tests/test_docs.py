"""The docs cannot drift: the API reference matches the docstrings, links resolve."""

import importlib.util
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_api_reference_is_up_to_date():
    spec = importlib.util.spec_from_file_location("build_api", DOCS / "build_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python docs/build_api.py"


def test_every_page_is_linked_and_links_resolve():
    pages = {p.name for p in DOCS.glob("*.md")}
    index = (DOCS / "index.md").read_text()
    linked = set(re.findall(r"\]\(([^)]+\.md)\)", index))
    assert pages - {"index.md"} == linked
    for page in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", page.read_text()):
            assert (DOCS / target).exists(), (page.name, target)


def test_license_is_declared_in_the_current_pyproject_form():
    """An SPDX expression and a license file (PEP 639), which setuptools >= 77 reads without
    the deprecation warning a ``{text = ...}`` table gets; the wheel carries the file."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    for name in project["license-files"]:
        assert "BSD 3-Clause License" in (root / name).read_text()


def test_the_site_lists_every_page_and_notebook():
    """mkdocs.yml's navigation holds every page of docs/ and every example notebook."""
    import yaml

    config = yaml.safe_load((DOCS.parent / "mkdocs.yml").read_text())

    def entries(nav):
        for item in nav:
            for value in item.values():
                yield from entries(value) if isinstance(value, list) else [value]

    listed = set(entries(config["nav"]))
    pages = {p.name for p in DOCS.glob("*.md")}
    notebooks = {f"examples/{p.name}" for p in (DOCS.parent / "examples").glob("*.py")}
    assert listed == pages | notebooks
    assert (DOCS / "examples").resolve() == (DOCS.parent / "examples").resolve()
