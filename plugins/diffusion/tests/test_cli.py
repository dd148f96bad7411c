"""``hessframe diffusion`` commands through click's test runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hessframe_diffusion.cli import diffusion_group
from PIL import Image


def _invoke(*arguments):
    return CliRunner().invoke(diffusion_group, list(arguments))


@pytest.mark.parametrize(("scheduler", "calls"), [("ddim-lml", 4), ("langevin", 3)])
def test_sample_writes_grid_and_json(tmp_path, scheduler, calls):
    out = tmp_path / "grid.png"
    result = _invoke(
        "sample", "--scheduler", scheduler, "--steps", "4", "--num-images", "6",
        "--out", str(out), "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["image_shape"] == [8, 8, 1]
    assert summary["evaluations_per_image"] == calls
    with Image.open(out) as image:
        assert image.size == (4 * (3 * 9 + 1), 4 * (2 * 9 + 1))


def test_unknown_scheduler_lists_known(tmp_path):
    result = _invoke("sample", "--scheduler", "euler", "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert "unknown scheduler 'euler'" in result.output
    assert "ddim, dpm, ddim-lml, dpm-lml, langevin" in result.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--steps", "0", "must be >= 1"),
        ("--num-images", "0", "must be >= 1"),
        ("--lm-lambda", "0", "must be finite and > 0"),
        ("--lm-lambda", "-1", "must be finite and > 0"),
        ("--lm-mix", "2", "must be in [0, 1]"),
    ],
)
def test_sample_rejects_bad_numbers(tmp_path, option, value, message):
    result = _invoke("sample", option, value, "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert option in result.output
    assert message in result.output


def test_sample_rejects_path_that_is_not_pipeline(tmp_path):
    result = _invoke("sample", "--model", str(tmp_path), "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert "--model" in result.output
    assert "is not a diffusers pipeline" in result.output
    assert not (tmp_path / "g.png").exists()


def test_train_digits_resumes_from_checkpoint(tmp_path):
    out = tmp_path / "unet"
    first = _invoke("train-digits", "--out", str(out), "--steps", "2", "--batch-size", "4")
    assert first.exit_code == 0, first.output
    second = _invoke("train-digits", "--out", str(out), "--steps", "3", "--batch-size", "4")
    assert second.exit_code == 0, second.output
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 3
    assert record["resumed_from_step"] == 2
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_sample_accepts_pipeline_directory(tmp_path):
    from hessframe_diffusion.digits import PRETRAINED_DIGITS_PIPELINE

    result = _invoke(
        "sample", "--model", str(PRETRAINED_DIGITS_PIPELINE), "--scheduler", "dpm-lml",
        "--steps", "3", "--num-images", "2", "--out", str(tmp_path / "g.png"), "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["evaluations_per_image"] == 3
