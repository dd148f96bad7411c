"""Tests of ``hessframe transport solve`` through click's test runner.

Reference values come from POT (``ot.dist`` for the cost matrix, ``ot.sinkhorn``
for the plan) on inputs read here with Pillow and numpy, independently of
:mod:`hessframe_transport.io` and :mod:`hessframe_transport.cost`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import ot
import pytest
from click.testing import CliRunner
from hessframe_transport.cli import DEFAULT_REG, transport_group
from hessframe_transport.io import load_plan
from PIL import Image
from sklearn.datasets import load_digits

DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "transport"


def image_measure(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the (row, col) points of the positive pixels and their normalised masses."""
    rows, cols = np.nonzero(image > 0)
    weights = image[rows, cols].astype(np.float64)
    return np.column_stack([rows, cols]).astype(np.float64), weights / weights.sum()


def pot_cost(
    x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, reg: float, metric: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """Return ⟨P, M⟩, P and M from POT's Sinkhorn on the max-scaled cost matrix."""
    cost = ot.dist(x, y, metric=metric)
    cost = cost / cost.max()
    plan = ot.sinkhorn(a, b, cost, reg, numItermax=100_000, stopThr=1e-13)
    return float(np.sum(plan * cost)), plan, cost


def invoke(*arguments: str):
    return CliRunner().invoke(transport_group, ["solve", *arguments], catch_exceptions=False)


@pytest.fixture(scope="module")
def small_images(tmp_path_factory) -> tuple[Path, Path]:
    """Two raw 8×8 scikit-learn digits (a 0 and a 3) saved as .npy images."""
    folder = tmp_path_factory.mktemp("images")
    images = load_digits().images
    np.save(folder / "zero.npy", images[0])
    np.save(folder / "three.npy", images[3])
    return folder / "zero.npy", folder / "three.npy"


@pytest.fixture(scope="module")
def small_clouds(tmp_path_factory) -> tuple[Path, Path]:
    """Every fourth row of the shipped digit point clouds, as CSV files with weights."""
    folder = tmp_path_factory.mktemp("clouds")
    paths = []
    for name in ("source_points.csv", "target_points.csv"):
        lines = (DATASET_DIR / name).read_text().splitlines()
        (folder / name).write_text("\n".join([lines[0], *lines[1::4]]) + "\n")
        paths.append(folder / name)
    return paths[0], paths[1]


def test_default_run_matches_pot():
    result = invoke("--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    source = np.asarray(Image.open(DATASET_DIR / "source.png"), dtype=np.float64)
    target = np.asarray(Image.open(DATASET_DIR / "target.png"), dtype=np.float64)
    (x, a), (y, b) = image_measure(source), image_measure(target)
    expected, _, _ = pot_cost(x, y, a, b, DEFAULT_REG, "sqeuclidean")
    assert summary["source"].endswith("source.png")
    assert (summary["n_source"], summary["n_target"]) == (a.size, b.size)
    assert summary["reg"] == DEFAULT_REG
    assert summary["converged"] is True
    assert summary["marginal_error"] < summary["tol"]
    assert summary["cost"] == pytest.approx(expected, rel=1e-6)
    assert summary["cost_scale"] == pytest.approx(ot.dist(x, y).max(), rel=1e-12)
    assert summary["cost_unscaled"] == pytest.approx(summary["cost"] * summary["cost_scale"])


def test_text_summary_reports_cost_and_iterations(small_images):
    result = invoke(*map(str, small_images))

    assert result.exit_code == 0, result.output
    assert "transport cost:" in result.output
    assert "marginal error:" in result.output
    assert "Sinkhorn," in result.output
    assert "Newton" in result.output


def test_euclidean_point_clouds_match_pot(small_clouds):
    result = invoke(*map(str, small_clouds), "--cost", "euclidean", "--reg", "0.02", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    data = [np.loadtxt(path, delimiter=",", skiprows=1) for path in small_clouds]
    x, y = data[0][:, :2], data[1][:, :2]
    a, b = data[0][:, 2] / data[0][:, 2].sum(), data[1][:, 2] / data[1][:, 2].sum()
    expected, _, _ = pot_cost(x, y, a, b, 0.02, "euclidean")
    assert summary["source_kind"] == "points"
    assert summary["marginal_error"] < summary["tol"]
    assert summary["cost"] == pytest.approx(expected, rel=1e-6)


def test_out_writes_plan_with_matching_marginals(small_images, tmp_path):
    out = tmp_path / "plan.npz"

    result = invoke(*map(str, small_images), "--out", str(out), "--tol", "1e-10", "--json")

    assert result.exit_code == 0, result.output
    saved = load_plan(out)
    images = load_digits().images
    (x, a), (y, b) = image_measure(images[0]), image_measure(images[3])
    expected, expected_plan, cost = pot_cost(x, y, a, b, DEFAULT_REG, "sqeuclidean")
    np.testing.assert_allclose(saved.a, a, rtol=1e-12)
    np.testing.assert_allclose(saved.b, b, rtol=1e-12)
    np.testing.assert_array_equal(saved.source_points, x)
    assert np.abs(saved.plan.sum(axis=1) - a).sum() < 1e-10
    assert np.abs(saved.plan.sum(axis=0) - b).sum() < 1e-10
    np.testing.assert_allclose(saved.plan, expected_plan, atol=1e-8)
    assert saved.cost == pytest.approx(np.sum(saved.plan * cost), rel=1e-12)
    assert saved.cost == pytest.approx(expected, rel=1e-6)
    assert saved.reg == DEFAULT_REG
    assert saved.metric == "sqeuclidean"


def test_no_scale_keeps_pixel_units(small_images):
    result = invoke(*map(str, small_images), "--no-scale", "--reg", "2.0", "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    images = load_digits().images
    (x, a), (y, b) = image_measure(images[0]), image_measure(images[3])
    cost = ot.dist(x, y)
    plan = ot.sinkhorn(a, b, cost, 2.0, numItermax=100_000, stopThr=1e-13)
    assert summary["cost_scale"] == 1.0
    assert summary["cost"] == pytest.approx(float(np.sum(plan * cost)), rel=1e-6)


@pytest.mark.parametrize("inputs", ["small_images", "small_clouds"])
def test_plot_writes_png(inputs, request, tmp_path):
    paths = request.getfixturevalue(inputs)
    plot = tmp_path / "matches.png"

    result = invoke(*map(str, paths), "--plot", str(plot))

    assert result.exit_code == 0, result.output
    with Image.open(plot) as image:
        assert image.format == "PNG"
        assert min(image.size) > 100
    assert [path.name for path in tmp_path.iterdir()] == ["matches.png"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--reg", "-1"),
        ("--reg", "0"),
        ("--cost", "manhattan"),
        ("--max-iter", "0"),
        ("--tol", "0"),
        ("--kind", "mesh"),
    ],
)
def test_bad_option_value_names_option(small_images, option, value):
    result = invoke(*map(str, small_images), option, value)

    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output


def test_missing_output_folder_names_option(small_images, tmp_path):
    result = invoke(*map(str, small_images), "--out", str(tmp_path / "absent" / "plan.npz"))

    assert result.exit_code == 2
    assert "Invalid value for --out" in result.output
    assert "does not exist" in result.output


def test_source_without_target_is_rejected(small_images):
    result = invoke(str(small_images[0]))

    assert result.exit_code == 2
    assert "give both SOURCE and TARGET" in result.output


def test_unreadable_source_names_argument(small_images, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")

    result = invoke(str(fake), str(small_images[1]))

    assert result.exit_code == 2
    assert "Invalid value for SOURCE" in result.output
    assert "Pillow cannot read it as an image" in result.output


def test_mismatched_dimensions_are_rejected(small_images):
    result = invoke(str(small_images[0]), str(DATASET_DIR / "target_colors.csv"))

    assert result.exit_code == 2
    assert "SOURCE points have 2 coordinates but TARGET points have 3" in result.output


def test_readme_python_examples_run(monkeypatch):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    monkeypatch.chdir(readme.parents[2])  # the examples read datasets/ from the repository root

    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(readme), "exec"), {"__name__": "readme_example"})


def test_iteration_cap_reports_not_converged(small_images, tmp_path):
    out = tmp_path / "plan.npz"

    result = CliRunner().invoke(
        transport_group, ["solve", *map(str, small_images), "--max-iter", "2", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "warning: the solver stopped before the marginal error reached the tolerance" in (
        result.output
    )
    assert load_plan(out).marginal_error > 1e-9
