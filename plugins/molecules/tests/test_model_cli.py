"""The build-dataset, train and evaluate commands: option errors and a small evaluation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hessframe_molecules.cli import molecules_group


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["build-dataset", "--workers", "0"], "must be a positive integer, got 0"),
        (["build-dataset", "--geometries", "0"], "must be a positive integer, got 0"),
        (["build-dataset", "--max-s22-atoms", "-1"], "must be 0 or more, got -1"),
        (["evaluate", "--split", "everything"], "'everything' is not one of"),
        (["train", "--out", "x", "--lr", "nan"], "must be a finite number"),
        (["train", "--out", "x", "--epochs", "0"], "must be a positive integer, got 0"),
    ],
)
def test_invalid_option_is_reported_by_name(arguments, message) -> None:
    result = CliRunner().invoke(molecules_group, arguments)
    assert result.exit_code == 2
    assert message in result.output


def test_build_dataset_rejects_unwritable_out(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(molecules_group, ["build-dataset", "--out", str(blocker / "sub")])
    assert result.exit_code == 2
    assert "--out" in result.output


def test_evaluate_json_reports_both_hessians(tiny_dataset) -> None:
    result = CliRunner().invoke(
        molecules_group,
        ["evaluate", "--data", str(tiny_dataset), "--max-geometries", "1", "--json"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["split"] == "test"
    assert metrics["num_geometries"] == 1
    for kind in ("predicted", "autodiff"):
        assert metrics[kind]["symmetry_error"] == 0.0
        assert metrics[kind]["rotation_equivariance_error"] < 1e-3
        assert metrics[kind]["hessian_mae"] > 0


def test_train_command_writes_weights_and_resumes(tiny_dataset, tmp_path) -> None:
    arguments = ["train", "--data", str(tiny_dataset), "--out", str(tmp_path)]
    arguments += ["--epochs", "1", "--max-geometries", "1", "--batch-size", "2"]
    first = CliRunner().invoke(molecules_group, arguments)
    assert first.exit_code == 0, first.output
    assert "best epoch 1: validation MAE" in first.output
    assert (tmp_path / "weights.pt").is_file()
    assert (tmp_path / "checkpoint.pt").is_file()

    again = CliRunner().invoke(molecules_group, arguments)
    assert again.exit_code == 0, again.output
    assert "trained for" in again.output
