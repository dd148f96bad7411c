"""The match plot: static gain curves and gain over time, fitted against the target's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from hessframe_audio.compressor import Compressor, CompressorSettings, static_gain_db
from hessframe_audio.io import Audio
from hessframe_audio.metrics import FRAME_MS, GATE_DB, frame_gain_db


def frame_detector_level_db(
    compressor: Compressor, audio: Audio, frame_ms: float = FRAME_MS
) -> np.ndarray:
    """Return the highest level in dBFS that ``compressor``'s detector reads in each frame.

    The frames are those of :func:`~hessframe_audio.metrics.frame_gain_db`.
    With a fast attack the smoothed gain follows these maxima, so a frame's
    measured gain lies on the static curve at this level. The frame's RMS
    lies below it by the crest factor (3 dB for a sine), which would shift
    the points off the curve.
    """
    frame = max(1, round(audio.sample_rate * frame_ms / 1000))
    with torch.no_grad():
        level = compressor.level_db(audio.samples.to(torch.float64).unsqueeze(0))[0]
    count = level.shape[-1] // frame
    return level[: count * frame].reshape(count, frame).amax(dim=1).cpu().numpy()


def write_match_plot(
    path: str | os.PathLike[str],
    input_audio: Audio,
    target: Audio,
    predicted: Audio,
    settings: CompressorSettings,
    compressor: Compressor,
) -> Path:
    """Draw the match and write it as an image (PNG, PDF or SVG by suffix) through a temporary file.

    Left: the fitted static curve (gain in dB against the detected level,
    make-up included) over the target's measured frame gains. Each frame sits
    at the highest level the fitted compressor's detector reads in it
    (:func:`frame_detector_level_db`), the level its gain computer acts on.
    Right: the measured frame gain of the target and of the fitted
    compressor over time.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    level, target_gain = frame_gain_db(input_audio, target)
    _, predicted_gain = frame_gain_db(input_audio, predicted)
    detected = frame_detector_level_db(compressor, input_audio)
    keep = level > GATE_DB
    times = np.arange(level.size) * FRAME_MS / 1000

    levels = torch.linspace(-80, 0, 400, dtype=torch.float64)
    curve = static_gain_db(levels, settings.threshold_db, settings.ratio, compressor.knee_db)
    curve = curve.numpy() + settings.makeup_db

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter(detected[keep], target_gain[keep], s=4, alpha=0.4, label="target, 10 ms frames")
    left.plot(levels.numpy(), curve, color="C3", label="fitted static curve")
    left.set_xlabel(f"detected input level, {compressor.detector} (dBFS)")
    left.set_ylabel("gain (dB)")
    left.set_title("static gain")
    left.legend()

    right.plot(times, np.where(keep, target_gain, np.nan), label="target")
    right.plot(times, np.where(keep, predicted_gain, np.nan), label="fitted", alpha=0.8)
    right.set_xlabel("time (s)")
    right.set_ylabel("gain (dB)")
    right.set_title(f"gain over time (frames above {GATE_DB:.0f} dBFS)")
    right.legend()
    figure.tight_layout()

    suffix = path.suffix.lower() or ".png"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=110)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        plt.close(figure)
    return path
