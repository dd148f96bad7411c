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


def test_sample_rejects_seed_torch_cannot_take(tmp_path):
    result = _invoke("sample", "--seed", str(2**64), "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert "--seed" in result.output
    assert "0<=x<=18446744073709551615" in result.output


@pytest.mark.parametrize(
    ("scheduler", "steps", "limit"), [("dpm", 1001, 1000), ("langevin", 2001, 2000)]
)
def test_sample_rejects_more_steps_than_training_steps(tmp_path, scheduler, steps, limit):
    # diffusers' DPM-Solver runs 1001 steps on 1000 training steps and returns NaN.
    result = _invoke(
        "sample", "--scheduler", scheduler, "--steps", str(steps), "--out", str(tmp_path / "g.png")
    )
    assert result.exit_code == 2
    assert "--steps" in result.output
    assert f"must be at most {limit}" in result.output
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("index", ["[1, 2]", '{"_class_name": "NoSuchPipeline"}'])
def test_sample_rejects_malformed_model_index(tmp_path, index):
    (tmp_path / "model_index.json").write_text(index)
    result = _invoke("sample", "--model", str(tmp_path), "--out", str(tmp_path / "g.png"))
    assert result.exit_code == 2
    assert "--model" in result.output
    assert "diffusers could not load the pipeline" in result.output


def _tiny_pipeline(scheduler):
    import torch
    from diffusers import DDPMPipeline, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    return DDPMPipeline(unet=unet, scheduler=scheduler)


def test_sample_rejects_pipeline_without_beta_schedule(tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler

    # Built from a flow-matching config, DDIM would fall back to diffusers'
    # default betas, which the model was not trained with.
    _tiny_pipeline(FlowMatchEulerDiscreteScheduler()).save_pretrained(tmp_path / "flow")
    result = _invoke(
        "sample", "--model", str(tmp_path / "flow"), "--out", str(tmp_path / "g.png")
    )
    assert result.exit_code == 2
    assert "--model" in result.output
    assert "FlowMatchEulerDiscreteScheduler has no variance-preserving beta schedule" in (
        result.output
    )


@pytest.mark.parametrize(
    ("scheduler", "message"), [("ddim", "non-finite pixels"), ("ddim-lml", "NaN or infinite")]
)
def test_sample_images_rejects_non_finite_pixels(scheduler, message):
    import torch
    from diffusers import DDPMScheduler
    from hessframe_diffusion.sampling import sample_images

    from hessframe.errors import NonFiniteError

    pipeline = _tiny_pipeline(DDPMScheduler())
    with torch.no_grad():
        pipeline.unet.conv_out.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=message):
        sample_images(pipeline, scheduler, steps=2, num_images=2, seed=0)
