"""Every example runs, with small sizes, and reaches its point."""

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_folder_is_covered():
    tested = {"quickstart", "nuts_vs_advi"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} <= tested | {"bayes_vs_em"}


def test_quickstart(tmp_path):
    result = load("quickstart").main(small=True, out=str(tmp_path))
    assert result["ari"] > 0.9
    assert (tmp_path / "quickstart.png").stat().st_size > 10_000


def test_nuts_vs_advi():
    table = load("nuts_vs_advi").main(small=True)
    assert list(table.index) == ["nuts", "advi", "fullrank_advi", "map"]
    # Every method finds the same clusters (tolerance: a few posterior sds at N=300).
    assert (table["max |means - NUTS means|"] < 0.3).all()
    assert table.loc["map", "mean sd of means"] == 0
    assert table.loc["nuts", "mean sd of means"] > 0
