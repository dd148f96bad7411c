"""Match-quality measures: frame gains, gain-reduction error and loudness error.

The gain a unit applied is measured from its input and output alone, as the
ratio of their RMS in short frames, so it is defined for any target, also
for hardware whose internal gain is unknown.
"""

from __future__ import annotations

import numpy as np
import pyloudnorm
import torch

from hessframe_audio.io import Audio

#: Frame length of the measured gain in ms.
FRAME_MS = 10.0

#: Frames whose input RMS is below this level (dBFS) are left out of the gain error.
GATE_DB = -50.0


def frame_rms_db(samples: torch.Tensor, sample_rate: int, frame_ms: float = FRAME_MS) -> np.ndarray:
    """Return the RMS level in dBFS of consecutive frames, over all channels."""
    frame = max(1, round(sample_rate * frame_ms / 1000))
    data = samples.detach().to(torch.float64).cpu().numpy()
    count = data.shape[-1] // frame
    frames = data[..., : count * frame].reshape(data.shape[0], count, frame)
    power = (frames**2).mean(axis=(0, 2))
    return 10 * np.log10(np.maximum(power, 1e-20))


def frame_gain_db(
    input_audio: Audio, output: Audio, frame_ms: float = FRAME_MS
) -> tuple[np.ndarray, np.ndarray]:
    """Return the input level and the gain output/input in dB per frame."""
    level = frame_rms_db(input_audio.samples, input_audio.sample_rate, frame_ms)
    gain = frame_rms_db(output.samples, output.sample_rate, frame_ms) - level
    return level, gain


def gain_reduction_error_db(input_audio: Audio, predicted: Audio, target: Audio) -> float:
    """Return the RMS difference in dB of the measured frame gains, frames above :data:`GATE_DB`."""
    level, predicted_gain = frame_gain_db(input_audio, predicted)
    _, target_gain = frame_gain_db(input_audio, target)
    keep = level > GATE_DB
    if not keep.any():
        return float("nan")
    return float(np.sqrt(np.mean((predicted_gain[keep] - target_gain[keep]) ** 2)))


def loudness_lufs(audio: Audio) -> float:
    """Return the integrated loudness (ITU-R BS.1770-4) in LUFS by ``pyloudnorm``."""
    meter = pyloudnorm.Meter(audio.sample_rate)
    data = audio.samples.detach().to(torch.float64).cpu().numpy().T
    return float(meter.integrated_loudness(data))


def loudness_error_lu(predicted: Audio, target: Audio) -> float:
    """Return the absolute difference of integrated loudness in LU."""
    return abs(loudness_lufs(predicted) - loudness_lufs(target))
