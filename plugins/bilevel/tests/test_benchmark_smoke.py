"""Smoke run of ``benchmarks/bilevel_solvers.py`` in ``--quick`` mode.

The benchmark is a script under the repository's ``benchmarks/`` folder; it is
loaded from its file and its ``main`` is run in this process. The check is on the
report it writes: every table has a row per compared method with finite numbers,
and every target has a verdict. The quick sizes measure nothing worth keeping, so
the values themselves are not checked.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS_DIR = Path(__file__).resolve().parents[3] / "benchmarks"

pytestmark = pytest.mark.skipif(
    not (BENCHMARKS_DIR / "bilevel_solvers.py").is_file(),
    reason="needs the repository checkout with benchmarks/bilevel_solvers.py",
)


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module named ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, str, Path]:
    output = tmp_path_factory.mktemp("benchmark") / "bilevel.md"
    module = load_benchmark("bilevel_solvers")
    text = module.main(["--quick", "--output", str(output)])
    return module, text, output


def test_benchmark_writes_report_it_returns(report):
    _, text, output = report
    assert output.read_text(encoding="utf-8") == text
    assert "- mode: quick" in text


def test_toy_table_has_every_method(report):
    module, text, _ = report
    rows = load_benchmark("_common").parse_markdown_table(text, module.TOY_HEADING)
    assert [(row["toy"], row["method"]) for row in rows] == [
        ("coupled", module.LVHBA),
        ("coupled", module.RANDOM_SEARCH),
        ("quadratic", module.LVHBA),
        ("quadratic", module.IMPLICIT),
        ("quadratic", module.UNROLLED),
        ("quadratic", module.RANDOM_SEARCH),
    ]
    for row in rows:
        assert finite(row["median time (s)"]), row
        assert finite(row["worst final relative distance"]), row
        assert finite(row["median peak memory (MiB)"]), row


def test_svm_table_has_both_data_sets(report):
    module, text, _ = report
    rows = load_benchmark("_common").parse_markdown_table(text, module.SVM_HEADING)
    expected = [
        (name, method)
        for name in module.SVM_DATASETS
        for method in (module.LVHBA, module.LVHBA_SLACK, module.SVM_GRID_SEARCH)
    ]
    assert [(row["data set"], row["method"]) for row in rows] == expected
    for row in rows:
        accuracy = float(row["test accuracy (mean ± std)"].split()[0])
        assert 0.0 <= accuracy <= 1.0, row
        assert finite(row["median time (s)"]), row


def test_hyperclean_table_and_targets_have_verdicts(report):
    module, text, _ = report
    common = load_benchmark("_common")
    rows = common.parse_markdown_table(text, module.HYPERCLEAN_HEADING)
    assert [row["method"] for row in rows] == [
        module.LVHBA,
        module.IMPLICIT,
        module.UNROLLED,
        module.HYPERCLEAN_GRID_SEARCH,
    ]
    for row in rows:
        assert finite(row["median peak memory (MiB)"]), row
    targets = common.parse_markdown_table(text, module.TARGET_HEADING)
    assert len(targets) == 5
    assert {row["result"] for row in targets} <= {"PASS", "FAIL"}
