"""The ``hessframe diffusion`` commands: ``train-digits`` and ``sample``.

The core's ``hessframe`` command adds :data:`diffusion_group` through this
plugin's ``hessframe_commands`` hook; the group also runs on its own, for
example through :class:`click.testing.CliRunner`.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import click

from hessframe.clickutils import prepare_output_folder

logger = logging.getLogger(__name__)

#: torch generators take seeds below 2**64.
MAX_SEED = 2**64 - 1

diffusion_group = click.Group(
    "diffusion",
    help="Diffusion sampling with Levenberg-Marquardt-Langevin schedulers for diffusers models.",
)


@diffusion_group.command("train-digits")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("hessframe-out") / "digits-unet",
    show_default=True,
    help="Folder of the DDPMPipeline to write (save_pretrained layout, safetensors weights).",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the resumable checkpoint [default: OUT.checkpoint beside --out].",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=3500,
    show_default=True,
    help="Total optimiser steps, counting those of a resumed checkpoint.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Images per optimiser step.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the initialisation, batches, noise and time steps.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="torch intra-op threads.",
)
def train_digits_command(
    out: Path, checkpoint_dir: Path | None, steps: int, batch_size: int, seed: int, threads: int
) -> None:
    """Train the digits UNet2DModel and write it as a DDPMPipeline directory.

    A checkpoint is written every 500 steps; running the same command again
    after an interruption resumes from it.
    """
    import torch
    from tqdm import tqdm

    from hessframe_diffusion.digits import train_digits_unet

    torch.set_num_threads(threads)
    prepare_output_folder(out.parent, "--out")
    command = shlex.join(
        [
            "hessframe",
            "diffusion",
            "train-digits",
            "--out",
            str(out),
            "--steps",
            str(steps),
            "--batch-size",
            str(batch_size),
            "--seed",
            str(seed),
            "--threads",
            str(threads),
        ]
        + (["--checkpoint-dir", str(checkpoint_dir)] if checkpoint_dir else [])
    )
    with tqdm(total=steps, desc="training", unit="step") as bar:

        def progress(step: int, loss: float) -> None:
            bar.n = step
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(0)

        result = train_digits_unet(
            out,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            checkpoint_dir=checkpoint_dir,
            progress=progress,
            command=command,
        )
    click.echo(
        f"trained {result.steps} steps (resumed from {result.resumed_from_step}) in "
        f"{result.total_seconds:.0f} s in total: final loss {result.final_loss:.4f}; wrote {out}"
    )


@diffusion_group.command("train-classifier")
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Passes of Adam over the training split.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the initialisation, batch order and shifts.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Weights file (.safetensors); the JSON record goes beside it "
    "[default: the shipped classifier's file].",
)
def train_classifier_command(epochs: int, seed: int, out: Path | None) -> None:
    """Train the digits classifier whose features give the Fréchet distance and KID."""
    import torch

    from hessframe_diffusion.metrics import PRETRAINED_CLASSIFIER, train_digits_classifier

    torch.set_num_threads(1)
    out = out or PRETRAINED_CLASSIFIER
    if out.suffix != ".safetensors":
        raise click.BadParameter(f"must end in .safetensors, got {str(out)!r}", param_hint="--out")
    prepare_output_folder(out.parent, "--out")
    record = train_digits_classifier(out, epochs=epochs, seed=seed)
    click.echo(
        f"trained for {epochs} epochs in {record['seconds']:.1f} s: test accuracy "
        f"{record['test_accuracy']:.4f}; wrote {out}"
    )


@diffusion_group.command("sample")
@click.option(
    "--model",
    default="digits",
    show_default=True,
    help="'digits' (the shipped UNet) or the path of a diffusers pipeline directory.",
)
@click.option(
    "--scheduler",
    "scheduler_name",
    default="ddim-lml",
    show_default=True,
    help="One of: ddim, dpm, ddim-lml, dpm-lml, langevin, lml-corrector.",
)
@click.option(
    "--steps",
    type=int,
    default=10,
    show_default=True,
    help="Network evaluations per image (corrector schedulers use (steps+1)//2 predictor steps).",
)
@click.option("--num-images", type=int, default=16, show_default=True, help="Images to sample.")
@click.option(
    "--seed",
    type=click.IntRange(min=0, max=MAX_SEED),
    default=0,
    show_default=True,
    help="Seed of the initial noise and the corrector noise.",
)
@click.option(
    "--lm-lambda",
    type=float,
    default=1.0,
    show_default=True,
    help="Levenberg-Marquardt damping λ > 0.",
)
@click.option(
    "--lm-mix",
    type=float,
    default=1.0,
    show_default=True,
    help="Mixing weight of the LM increment correction, in [0, 1].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("hessframe-out") / "diffusion" / "grid.png",
    show_default=True,
    help="PNG file of the image grid.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def sample_command(
    model: str,
    scheduler_name: str,
    steps: int,
    num_images: int,
    seed: int,
    lm_lambda: float,
    lm_mix: float,
    out: Path,
    as_json: bool,
) -> None:
    """Sample images from a diffusers pipeline with the chosen scheduler and write a grid."""
    import json
    import math

    import torch

    from hessframe.errors import InvalidArgumentError
    from hessframe.spectrum import write_files_atomically
    from hessframe_diffusion.sampling import (
        SCHEDULERS,
        check_variance_preserving,
        image_grid_png,
        load_pipeline,
        predictor_steps,
        sample_images,
    )

    if scheduler_name not in SCHEDULERS:
        raise click.BadParameter(
            f"unknown scheduler {scheduler_name!r}; known: {', '.join(SCHEDULERS)}",
            param_hint="--scheduler",
        )
    if steps < 1:
        raise click.BadParameter(f"must be >= 1, got {steps}", param_hint="--steps")
    if num_images < 1:
        raise click.BadParameter(f"must be >= 1, got {num_images}", param_hint="--num-images")
    if not (math.isfinite(lm_lambda) and lm_lambda > 0):
        raise click.BadParameter(
            f"must be finite and > 0 (the damping), got {lm_lambda}", param_hint="--lm-lambda"
        )
    if not 0 <= lm_mix <= 1:
        raise click.BadParameter(f"must be in [0, 1], got {lm_mix}", param_hint="--lm-mix")
    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"must end in .png, got {str(out)!r}", param_hint="--out")
    prepare_output_folder(out.parent, "--out")

    torch.set_num_threads(1)
    try:
        pipeline = load_pipeline(model)
    except InvalidArgumentError as error:
        raise click.BadParameter(str(error), param_hint="--model") from error
    try:
        check_variance_preserving(pipeline.scheduler.config)
    except InvalidArgumentError as error:
        raise click.BadParameter(str(error), param_hint="--model") from error
    try:
        predictor_steps(
            scheduler_name, steps, pipeline.scheduler.config.get("num_train_timesteps")
        )
    except InvalidArgumentError as error:
        raise click.BadParameter(str(error), param_hint="--steps") from error
    result = sample_images(
        pipeline,
        scheduler_name,
        steps=steps,
        num_images=num_images,
        seed=seed,
        lm_lambda=lm_lambda,
        lm_mix=lm_mix,
        show_progress=not as_json,
    )
    write_files_atomically({out: image_grid_png(result.images)})
    summary = {
        "model": str(model),
        "scheduler": scheduler_name,
        "evaluations_per_image": result.evaluations,
        "num_inference_steps": result.num_inference_steps,
        "num_images": num_images,
        "image_shape": list(result.images.shape[1:]),
        "seconds": result.seconds,
        "seconds_per_image": result.seconds / num_images,
        "out": str(out),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(
        f"{num_images} images with {scheduler_name} ({result.evaluations} evaluations each) in "
        f"{result.seconds:.2f} s ({1000 * result.seconds / num_images:.1f} ms per image); "
        f"wrote {out}"
    )
