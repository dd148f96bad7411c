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
        ("--reg", "nan"),
        ("--reg", "inf"),
        ("--tol", "nan"),
        ("--tol", "inf"),
        ("--out", "plan.txt"),
        ("--plot", "matches.jpg"),
    ],
)
def test_bad_option_value_names_option(small_images, option, value):
    result = invoke(*map(str, small_images), option, value)

    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output


@pytest.mark.parametrize(("option", "extension"), [("--out", ".npz"), ("--plot", ".png")])
def test_wrong_extension_names_accepted_one(small_images, tmp_path, option, extension):
    path = tmp_path / "result.txt"

    result = invoke(*map(str, small_images), option, str(path))

    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert f"pass a path ending in {extension}" in result.output
    assert not path.exists()


def test_missing_output_folders_are_created(small_images, tmp_path):
    out = tmp_path / "new" / "plans" / "plan.npz"
    plot = tmp_path / "figures" / "matches.png"

    result = invoke(*map(str, small_images), "--out", str(out), "--plot", str(plot))

    assert result.exit_code == 0, result.output
    assert load_plan(out).plan.shape == (load_plan(out).a.size, load_plan(out).b.size)
    with Image.open(plot) as image:
        assert image.format == "PNG"


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_unwritable_output_fails_before_solving(small_images, option, monkeypatch):
    import hessframe_transport.solver as solver

    def fail(*arguments, **options):
        raise AssertionError("the solver ran before the output location was checked")

    monkeypatch.setattr(solver, "sinkhorn_newton_sparse", fail)
    name = "plan.npz" if option == "--out" else "matches.png"

    result = CliRunner().invoke(
        transport_group, ["solve", *map(str, small_images), option, f"/proc/absent/{name}"]
    )

    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}: cannot write into folder '/proc/absent'" in (result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_source_without_target_is_rejected(small_images):
    result = invoke(str(small_images[0]))

    assert result.exit_code == 2
    assert "give both SOURCE and TARGET" in result.output


def test_unreadable_source_names_argument(small_images, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")

    result = invoke(str(fake), str(small_images[1]))

    assert result.exit_code == 2
    assert f"Invalid value for SOURCE: {str(fake)!r}: Pillow cannot read it" in result.output
    assert f"SOURCE {str(fake)!r}" not in result.output


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


def test_iteration_cap_reports_not_converged(small_images, tmp_path, caplog):
    out = tmp_path / "plan.npz"

    result = CliRunner().invoke(
        transport_group, ["solve", *map(str, small_images), "--max-iter", "2", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert result.stderr.count("warning") == 1
    assert "warning: the solver stopped at --max-iter 2" in result.stderr
    assert "numItermax" not in result.output
    assert [record.message for record in caplog.records if record.levelname == "WARNING"] == []
    assert load_plan(out).marginal_error > 1e-9


def test_iteration_cap_warning_goes_into_json(small_images):
    result = CliRunner().invoke(
        transport_group, ["solve", *map(str, small_images), "--max-iter", "2", "--json"]
    )

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["converged"] is False
    assert len(summary["warnings"]) == 1
    assert "--max-iter 2" in summary["warnings"][0]
    assert result.stderr == ""


def test_converged_run_has_no_warnings(small_images):
    result = invoke(*map(str, small_images), "--json")

    assert json.loads(result.stdout)["warnings"] == []


def test_overflowing_costs_are_a_usage_error(tmp_path):
    cloud = tmp_path / "huge.csv"
    cloud.write_text("x,y\n0,0\n1e200,0\n")

    result = invoke(str(cloud), str(cloud))

    assert result.exit_code == 2, result.output
    assert "costs between SOURCE and TARGET overflow float64" in result.output
    assert "coordinates up to 1e+200" in result.output


def test_underflowed_plan_is_an_error(small_images, tmp_path):
    out = tmp_path / "plan.npz"

    result = CliRunner().invoke(
        transport_group,
        [
            "solve",
            *map(str, small_images),
            "--reg",
            "1e-300",
            "--max-iter",
            "50",
            "--out",
            str(out),
        ],
    )

    assert result.exit_code == 1, result.output
    assert "the plan underflowed: its total mass is 0 instead of 1" in result.output
    assert "raise --max-iter or --reg" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
