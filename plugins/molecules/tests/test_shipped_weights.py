"""The shipped weights reach the documented metrics on the ten test molecules at their minima.

The expected numbers are those of the README's table for
``hessframe molecules evaluate --max-geometries 1``.
"""

from __future__ import annotations

import pytest
from hessframe_molecules.evaluate import evaluate
from hessframe_molecules.model import load_pretrained
from hessframe_molecules.paths import DATASET_DIR

EXPECTED = {
    ("predicted", "hessian_mae"): 0.2539,
    ("autodiff", "hessian_mae"): 0.3911,
    ("predicted", "frequency_mae_cm"): 49.11,
    ("autodiff", "frequency_mae_cm"): 64.32,
    ("predicted", "eigenvalue_mae"): 0.3808,
    ("autodiff", "eigenvalue_mae"): 0.5445,
}


@pytest.fixture(scope="module")
def minima_metrics() -> dict:
    return evaluate(load_pretrained(), DATASET_DIR, "test", max_geometries_per_molecule=1)


@pytest.mark.parametrize(("kind", "metric"), list(EXPECTED))
def test_shipped_weights_reach_documented_metric(minima_metrics, kind, metric) -> None:
    assert minima_metrics["num_geometries"] == 10
    assert minima_metrics[kind][metric] == pytest.approx(EXPECTED[kind, metric], rel=0.02)


def test_predicted_head_beats_autodiff_hessian_on_test_minima(minima_metrics) -> None:
    assert minima_metrics["predicted"]["hessian_mae"] < minima_metrics["autodiff"]["hessian_mae"]


def test_shipped_hessians_are_symmetric_and_equivariant(minima_metrics) -> None:
    for kind in ("predicted", "autodiff"):
        assert minima_metrics[kind]["symmetry_error"] == 0.0
        assert minima_metrics[kind]["rotation_equivariance_error"] < 1e-3
