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


def write_match_plot(
    path: str | os.PathLike[str],
    input_audio: Audio,
    target: Audio,
    predicted: Audio,
    settings: CompressorSettings,
    compressor: Compressor,
) -> Path:
    """Draw the match and write it as an image (PNG, PDF or SVG by suffix) through a temporary file.

    Left: the fitted static curve (gain in dB against input level, make-up
    included) over the target's measured frame gains. Right: the measured
    frame gain of the target and of the fitted compressor over time.

    Frames sit at their RMS level, while a peak detector reads the peak, so
    with the peak detector the points lie left of the curve by about the
    signal's crest factor.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    level, target_gain = frame_gain_db(input_audio, target)
    _, predicted_gain = frame_gain_db(input_audio, predicted)
    keep = level > GATE_DB
    times = np.arange(level.size) * FRAME_MS / 1000

    levels = torch.linspace(-80, 0, 400, dtype=torch.float64)
    curve = static_gain_db(levels, settings.threshold_db, settings.ratio, compressor.knee_db)
    curve = curve.numpy() + settings.makeup_db

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter(level[keep], target_gain[keep], s=4, alpha=0.4, label="target, 10 ms frames")
    left.plot(levels.numpy(), curve, color="C3", label="fitted static curve")
    left.set_xlabel("input level (dBFS)")
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
