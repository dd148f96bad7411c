"""Smoke runs of the core benchmarks in ``--quick`` mode.

Each benchmark is a script under ``benchmarks/``; it is loaded from its file
and its ``main`` is run in this process. The check is on the report it writes:
the table has one row per compared method and every ratio is a finite number.
The quick sizes measure nothing worth keeping, so the timings are not checked.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module named ``name``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_quick(name: str, output: Path) -> tuple[ModuleType, str]:
    module = load_benchmark(name)
    report = module.main(["--quick", "--repeats", "1", "--output", str(output)])
    return module, report


def finite(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def test_hvp_benchmark_reports_every_method(tmp_path: Path) -> None:
    output = tmp_path / "hvp.md"
    module, report = run_quick("core_hvp", output)
    common = load_benchmark("_common")

    assert output.read_text(encoding="utf-8") == report
    rows = common.parse_markdown_table(report, module.HEADING)
    expected_methods = {module.GRADIENT_METHOD, module.HESSFRAME_METHOD, *module.PEER_METHODS}
    models = {row["model"] for row in rows}
    assert len(models) == 2
    for model in models:
        methods = {row["method"] for row in rows if row["model"] == model}
        assert methods == expected_methods
    for row in rows:
        assert finite(row["time / gradient"]), row
        assert finite(row["min / min gradient"]), row
    verdicts = [row["result"] for row in rows if row["method"] == module.HESSFRAME_METHOD]
    assert set(verdicts) <= {"PASS", "FAIL"}
    assert len(verdicts) == 2


def test_dense_benchmark_reports_every_method(tmp_path: Path) -> None:
    output = tmp_path / "dense.md"
    module, report = run_quick("core_dense", output)
    common = load_benchmark("_common")

    assert output.read_text(encoding="utf-8") == report
    rows = common.parse_markdown_table(report, module.HEADING)
    assert [row["dtype"] for row in rows] == ["float32"] * 3 + ["float64"] * 3
    for dtype in ("float32", "float64"):
        methods = {row["method"] for row in rows if row["dtype"] == dtype}
        assert methods == {module.REFERENCE_METHOD, *module.HESSFRAME_METHODS}
    for row in rows:
        assert finite(row["time / torch.func.hessian"]), row
        assert finite(row["min / min torch.func.hessian"]), row
        # Every method builds the same matrix, up to float32 rounding.
        assert float(row["max abs difference / max abs H"]) < 1e-4, row


def test_eigen_trace_benchmark_reports_every_method(tmp_path: Path) -> None:
    pytest.importorskip("pyhessian")
    pytest.importorskip("curvlinops")
    output = tmp_path / "eigen_trace.md"
    module, report = run_quick("core_eigen_trace", output)
    common = load_benchmark("_common")

    assert output.read_text(encoding="utf-8") == report
    eigen_rows = common.parse_markdown_table(report, module.EIGEN_HEADING)
    expected_methods = [*module.EIGEN_METHODS, module.PYHESSIAN_TIGHT_METHOD]
    assert [row["method"] for row in eigen_rows] == expected_methods
    for row in eigen_rows:
        assert finite(row["λ_max"]), row
        assert finite(row["hessframe / method products"]), row
        assert finite(row["hessframe / method time"]), row
    # Lanczos on a 2410-parameter Hessian resolves the top eigenvalue far
    # below the 1e-3 tolerance even on the quick data.
    hessframe_row = eigen_rows[0]
    assert float(hessframe_row["worst relative error"]) < 1e-3

    trace_rows = common.parse_markdown_table(report, module.TRACE_HEADING)
    assert len(trace_rows) == 2
    for row in trace_rows:
        assert finite(row["error ratio"]), row
        assert finite(row["predicted ratio"]), row
        assert row["result"] in {"PASS", "FAIL"}
