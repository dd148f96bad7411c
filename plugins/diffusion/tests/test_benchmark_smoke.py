"""The benchmark's quick mode runs and reports a row per sampler."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "diffusion_lm.py"


def test_quick_mixture_benchmark_writes_report(tmp_path):
    spec = importlib.util.spec_from_file_location("diffusion_lm", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    output = tmp_path / "report.md"

    assert module.main(["--quick", "--skip-digits", "--output", str(output)]) == 0

    text = output.read_text()
    assert "mode: quick" in text
    for name in module.SAMPLERS:
        assert f"| {name} |" in text
    for variant, base in module.PAIRS.items():
        assert f"| {variant} − {base} |" in text
