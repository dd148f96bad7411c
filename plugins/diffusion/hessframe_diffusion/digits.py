"""A small diffusers ``UNet2DModel`` trained on scikit-learn's 8×8 handwritten digits.

The images come from :func:`sklearn.datasets.load_digits` (1797 images, grey
levels 0-16, nothing downloaded), split as the core's digits classifier splits
them (:func:`hessframe.digits.load_digits_split`, stratified, seed 0). Pixels
are mapped to [-1, 1] by x / 8 - 1, so the images keep their native 8×8 size:
the UNet downsamples twice, 8 → 4 → 2.

:func:`train_digits_unet` trains the network to predict the noise ε of the
DDPM forward process x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε (1000 steps, linear β from
1e-4 to 0.02), keeps an exponential moving average of the weights, and writes
a checkpoint that a later call resumes from. The result is a ``DDPMPipeline``
directory written by ``save_pretrained`` (safetensors weights and JSON configs).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hessframe.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 8
NUM_TRAIN_TIMESTEPS = 1000
#: Folder of the shipped pipeline (weights and configs) inside the package.
PRETRAINED_DIGITS_PIPELINE = Path(__file__).resolve().parent / "weights" / "digits-unet"
CHECKPOINT_NAME = "checkpoint.pt"
TRAINING_RECORD = "training.json"


def load_digit_images(split: str) -> torch.Tensor:
    """Return the digits of one split as a float32 tensor (m, 1, 8, 8) with values in [-1, 1].

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"`` (the core's fixed split).

    Raises:
        InvalidArgumentError: ``split`` is not one of the three names.
    """
    from sklearn.datasets import load_digits

    from hessframe.digits import load_digits_split

    indices = load_digits_split(split).indices
    images = load_digits().images[indices].astype(np.float32)
    return torch.from_numpy(images / 8.0 - 1.0).unsqueeze(1)


def load_digit_labels(split: str) -> torch.Tensor:
    """Return the labels (int64, 0-9) of one split, in the order of :func:`load_digit_images`."""
    from hessframe.digits import load_digits_split

    return torch.from_numpy(np.array(load_digits_split(split).labels))


def build_digits_unet():
    """Return an untrained ``UNet2DModel`` for 1-channel 8×8 images (about 0.5 M parameters)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=IMAGE_SIZE,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=16,
    )


def build_training_scheduler():
    """Return the ``DDPMScheduler`` of the forward process the network is trained on."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        prediction_type="epsilon",
        clip_sample=True,
    )


@dataclass(frozen=True)
class TrainingResult:
    """Record of one :func:`train_digits_unet` run.

    Attributes:
        steps: Optimiser steps done in total, over all resumed runs.
        resumed_from_step: Step of the checkpoint this run started from (0 for a fresh run).
        seconds: Wall time of this run alone.
        total_seconds: Wall time summed over every run that led to the result.
        final_loss: Mean noise-prediction loss over the last 200 steps.
        output: The pipeline directory written.
        command: The command line that produced the result, when given.
    """

    steps: int
    resumed_from_step: int
    seconds: float
    total_seconds: float
    final_loss: float
    output: str
    command: str | None = None


def train_digits_unet(
    output: Path | str,
    *,
    steps: int = 3500,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint_every: int = 500,
    checkpoint_dir: Path | str | None = None,
    progress: Callable[[int, float], None] | None = None,
    command: str | None = None,
) -> TrainingResult:
    """Train the digits UNet and write it as a ``DDPMPipeline`` directory.

    A checkpoint (network, moving average, optimiser, generator state, step)
    is written every ``checkpoint_every`` steps to ``checkpoint_dir``. A run
    that finds one there continues from it with the optimiser, learning-rate
    schedule and random-generator state restored. The pipeline directory is
    written to a temporary folder beside ``output`` and renamed into place,
    and contains the moving-average weights.

    Args:
        output: Folder of the pipeline to write (replaced if it exists).
        steps: Total optimiser steps, counting the steps of a resumed checkpoint.
        batch_size: Images per step, drawn with replacement from the training split.
        learning_rate: AdamW learning rate before cosine decay to zero.
        ema_decay: Decay of the exponential moving average of the weights, in [0, 1).
        seed: Seed of initialisation, batches, noise and time steps.
        checkpoint_every: Steps between checkpoints.
        checkpoint_dir: Folder of the checkpoint; None uses ``<output>.checkpoint``.
        progress: Called after every step with (step, loss).
        command: Command line recorded in ``training.json`` of the pipeline.

    Returns:
        The :class:`TrainingResult`.

    Raises:
        InvalidArgumentError: A count is below 1, the learning rate is not
            positive and finite, or ``ema_decay`` is outside [0, 1).
    """
    for name, value in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise InvalidArgumentError(f"learning_rate must be finite and > 0, got {learning_rate}")
    if not 0 <= ema_decay < 1:
        raise InvalidArgumentError(f"ema_decay must be in [0, 1), got {ema_decay}")

    output = Path(output)
    checkpoint_dir = (
        Path(checkpoint_dir) if checkpoint_dir else output.with_name(output.name + ".checkpoint")
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = checkpoint_dir / CHECKPOINT_NAME

    torch.manual_seed(seed)
    images = load_digit_images("train")
    model = build_digits_unet()
    ema_model = copy.deepcopy(model).requires_grad_(False)
    scheduler = build_training_scheduler()
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    )
    generator = torch.Generator().manual_seed(seed)

    start_step, previous_seconds = 0, 0.0
    losses: list[float] = []
    if checkpoint_path.is_file():
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state["model"])
        ema_model.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        generator.set_state(state["generator"])
        start_step, previous_seconds = state["step"], state["seconds"]
        losses = state["losses"]
        logger.info("resuming from %s at step %d", checkpoint_path, start_step)

    started = time.perf_counter()
    model.train()
    for step in range(start_step + 1, steps + 1):
        batch_index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        clean = images[batch_index]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, NUM_TRAIN_TIMESTEPS, (batch_size,), generator=generator)
        alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise

        loss = torch.nn.functional.mse_loss(model(noisy, timesteps).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        with torch.no_grad():
            for averaged, current in zip(ema_model.parameters(), model.parameters(), strict=True):
                averaged.lerp_(current, 1 - ema_decay)

        losses = [*losses[-199:], float(loss)]
        if progress is not None:
            progress(step, float(loss))
        if step % 100 == 0:
            logger.info("step %d/%d loss %.4f", step, steps, sum(losses) / len(losses))
        if step % checkpoint_every == 0 or step == steps:
            _save_checkpoint(
                checkpoint_path,
                {
                    "model": model.state_dict(),
                    "ema": ema_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "lr_schedule": lr_schedule.state_dict(),
                    "generator": generator.get_state(),
                    "step": step,
                    "seconds": previous_seconds + time.perf_counter() - started,
                    "losses": losses,
                },
            )

    seconds = time.perf_counter() - started
    result = TrainingResult(
        steps=steps,
        resumed_from_step=start_step,
        seconds=seconds,
        total_seconds=previous_seconds + seconds,
        final_loss=sum(losses) / max(len(losses), 1),
        output=str(output),
        command=command,
    )
    _write_pipeline(ema_model.eval(), output, result)
    return result


def _save_checkpoint(path: Path, state: dict) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(state, name)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _write_pipeline(unet, output: Path, result: TrainingResult) -> None:
    """Write the pipeline to a temporary folder beside ``output`` and rename it into place."""
    from diffusers import DDPMPipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}."))
    try:
        DDPMPipeline(unet=unet, scheduler=build_training_scheduler()).save_pretrained(staging)
        (staging / TRAINING_RECORD).write_text(json.dumps(asdict(result), indent=2) + "\n")
        # mkdtemp and the safetensors writer create owner-only modes; give the
        # files the modes that ordinary writes get under the current umask.
        umask = os.umask(0)
        os.umask(umask)
        for path in [staging, *staging.rglob("*")]:
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if output.exists():
            shutil.rmtree(output)
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
