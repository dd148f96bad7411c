"""Build a scheduler by name, load a pipeline from disk, sample images and write a grid."""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hessframe.errors import InvalidArgumentError, NonFiniteError
from hessframe_diffusion.digits import PRETRAINED_DIGITS_PIPELINE

logger = logging.getLogger(__name__)

#: Scheduler names of :func:`build_scheduler`:
#: ``ddim`` and ``dpm`` are diffusers' DDIM and DPM-Solver++ (order 2);
#: ``ddim-lml`` and ``dpm-lml`` add the LM increment correction (no extra evaluations);
#: ``langevin`` is DDIM with a first-order Langevin corrector;
#: ``lml-corrector`` is DDIM with the LML corrector and the LM increment correction.
SCHEDULERS = ("ddim", "dpm", "ddim-lml", "dpm-lml", "langevin", "lml-corrector")
CORRECTOR_SCHEDULERS = ("langevin", "lml-corrector")


def build_scheduler(
    name: str,
    config: Any,
    *,
    lm_lambda: float = 1.0,
    lm_mix: float = 1.0,
    lm_snr: float = 0.1,
    solver_order: int = 2,
    timestep_spacing: str = "trailing",
) -> Any:
    """Return the scheduler ``name`` configured from a pipeline's scheduler ``config``.

    ``timestep_spacing="trailing"`` starts every sampler at the last training
    step, where the initial noise is drawn.

    Raises:
        InvalidArgumentError: ``name`` is not in :data:`SCHEDULERS` (the message
            lists them), or an LM parameter is out of range.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    from hessframe_diffusion import LMDDIMScheduler, LMDPMSolverMultistepScheduler

    if name not in SCHEDULERS:
        raise InvalidArgumentError(
            f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}"
        )
    common = {"timestep_spacing": timestep_spacing}
    lm = {"lm_lambda": lm_lambda, "lm_mix": lm_mix, "lm_snr": lm_snr}
    if name == "ddim":
        return DDIMScheduler.from_config(config, **common)
    if name == "dpm":
        return DPMSolverMultistepScheduler.from_config(config, solver_order=solver_order, **common)
    if name == "ddim-lml":
        return LMDDIMScheduler.from_config(config, lm_corrector="none", **lm, **common)
    if name == "dpm-lml":
        return LMDPMSolverMultistepScheduler.from_config(
            config, solver_order=solver_order, lm_corrector="none", **lm, **common
        )
    if name == "langevin":
        return LMDDIMScheduler.from_config(
            config, lm_corrector="langevin", **{**lm, "lm_mix": 0.0}, **common
        )
    return LMDDIMScheduler.from_config(config, lm_corrector="lml", **lm, **common)


def predictor_steps(name: str, evaluations: int, num_train_timesteps: int | None = None) -> int:
    """Return the ``num_inference_steps`` that spends at most ``evaluations`` network calls.

    A corrector scheduler with N predictor steps makes 2N - 1 calls. With
    ``num_train_timesteps``, N may not exceed it (the schedulers have no more
    distinct levels).

    Raises:
        InvalidArgumentError: ``evaluations`` is below 1, or needs more
            predictor steps than ``num_train_timesteps``.
    """
    if evaluations < 1:
        raise InvalidArgumentError(f"steps must be >= 1, got {evaluations}")
    steps = max(1, (evaluations + 1) // 2) if name in CORRECTOR_SCHEDULERS else evaluations
    if num_train_timesteps is not None and steps > num_train_timesteps:
        limit = 2 * num_train_timesteps if name in CORRECTOR_SCHEDULERS else num_train_timesteps
        raise InvalidArgumentError(
            f"steps must be at most {limit} for scheduler {name!r} on this pipeline, whose "
            f"scheduler has {num_train_timesteps} training time steps; got {evaluations}"
        )
    return steps


def check_variance_preserving(config: Any) -> None:
    """Raise InvalidArgumentError unless a pipeline's scheduler ``config`` has a β schedule.

    DDIM, DPM-Solver and the LM schedulers are built from the pipeline's
    scheduler config. Without ``beta_schedule`` (for example in a flow-matching
    or variance-exploding scheduler), they would silently fall back to
    diffusers' default β schedule, which is not the one the model was trained on.
    """
    if "beta_schedule" not in config or config.get("use_flow_sigmas", False):
        raise InvalidArgumentError(
            f"model: the pipeline's scheduler {config.get('_class_name', '(unnamed)')} has no "
            "variance-preserving beta schedule (no beta_schedule in its config, or flow "
            "sigmas); supported: pipelines saved with a DDPM-family scheduler such as "
            "DDPMScheduler, DDIMScheduler or DPMSolverMultistepScheduler"
        )


def load_pipeline(model: str | Path) -> Any:
    """Load ``"digits"`` (the shipped pipeline) or a diffusers pipeline directory from disk.

    Nothing is downloaded: the directory must hold ``model_index.json`` and the
    weights it names.

    Raises:
        InvalidArgumentError: ``model`` is neither ``"digits"`` nor a directory
            with ``model_index.json``, or diffusers cannot load it.
    """
    from diffusers import DiffusionPipeline

    path = PRETRAINED_DIGITS_PIPELINE if str(model) == "digits" else Path(model)
    if not path.is_dir():
        raise InvalidArgumentError(
            f"model must be 'digits' or a diffusers pipeline directory, got {str(model)!r}, "
            "which is not a directory"
        )
    if not (path / "model_index.json").is_file():
        raise InvalidArgumentError(
            f"model {str(model)!r} is not a diffusers pipeline: {path / 'model_index.json'} is "
            "missing (write one with pipeline.save_pretrained)"
        )
    try:
        return DiffusionPipeline.from_pretrained(
            path, local_files_only=True, low_cpu_mem_usage=False
        )
    except (OSError, ValueError, KeyError, ImportError, TypeError, AttributeError) as error:
        # A malformed model_index.json (a list, an unknown class) surfaces as a
        # TypeError or AttributeError deep inside diffusers.
        raise InvalidArgumentError(
            f"model {str(model)!r}: diffusers could not load the pipeline: {error}"
        ) from error


@dataclass(frozen=True)
class SampleResult:
    """Images and timing of one sampling run.

    Attributes:
        images: float32 array (K, H, W, C) with values in [0, 1].
        seconds: Wall time of the pipeline call.
        evaluations: Network evaluations per image.
        num_inference_steps: Predictor steps passed to the pipeline.
    """

    images: np.ndarray
    seconds: float
    evaluations: int
    num_inference_steps: int


def sample_images(
    pipeline: Any,
    scheduler_name: str,
    *,
    steps: int,
    num_images: int,
    seed: int,
    lm_lambda: float = 1.0,
    lm_mix: float = 1.0,
    show_progress: bool = False,
) -> SampleResult:
    """Sample ``num_images`` images with at most ``steps`` network evaluations each.

    Raises:
        InvalidArgumentError: A count is below 1, or ``steps`` needs more
            predictor steps than the scheduler has training time steps. Also
            raised when the seed is outside [0, 2**64), the scheduler name is
            unknown or an LM parameter is out of range. Also raised when the
            pipeline's scheduler has no variance-preserving β schedule, or the
            pipeline's ``__call__`` takes no ``batch_size`` (it is not
            unconditional).
        NonFiniteError: The pipeline returned NaN or infinite pixels.
    """
    import inspect

    if num_images < 1:
        raise InvalidArgumentError(f"num_images must be >= 1, got {num_images}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise InvalidArgumentError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    config = pipeline.scheduler.config
    check_variance_preserving(config)
    scheduler = build_scheduler(scheduler_name, config, lm_lambda=lm_lambda, lm_mix=lm_mix)
    inference_steps = predictor_steps(scheduler_name, steps, scheduler.config.num_train_timesteps)
    if "batch_size" not in inspect.signature(pipeline.__call__).parameters:
        raise InvalidArgumentError(
            f"model: {type(pipeline).__name__} takes no batch_size, so it is not an "
            "unconditional pipeline; sample it by setting pipeline.scheduler to an "
            "hessframe_diffusion scheduler in your own code"
        )
    pipeline.scheduler = scheduler
    pipeline.set_progress_bar_config(disable=not show_progress, leave=False)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    output = pipeline(
        batch_size=num_images,
        generator=generator,
        num_inference_steps=inference_steps,
        output_type="np",
    )
    seconds = time.perf_counter() - started
    calls = len(scheduler.timesteps)
    images = np.asarray(output.images, dtype=np.float32)
    if not np.isfinite(images).all():
        raise NonFiniteError(
            f"the pipeline returned non-finite pixels with scheduler {scheduler_name!r} and "
            f"{steps} steps; no grid is written"
        )
    return SampleResult(
        images=images,
        seconds=seconds,
        evaluations=calls,
        num_inference_steps=inference_steps,
    )


def image_grid_png(images: np.ndarray, scale: int = 4) -> bytes:
    """Return a PNG of images (K, H, W, C) in [0, 1] tiled in a near-square grid."""
    from PIL import Image

    count, height, width, channels = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), np.float32)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = 1 + row * (height + 1), 1 + column * (width + 1)
        grid[top : top + height, left : left + width] = image
    pixels = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
