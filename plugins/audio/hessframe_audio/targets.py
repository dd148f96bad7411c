"""Units to match: Spotify's pedalboard compressor and a simulated optical levelling amplifier.

- :func:`render_pedalboard` runs ``pedalboard.Compressor`` followed by
  ``pedalboard.Gain`` for the make-up gain. The compressor is JUCE's
  ``dsp::Compressor``: a peak ballistics filter on the level of each channel
  separately, then a hard-knee gain computer. The filter's coefficient is
  exp(−2π·1000 / (t_ms·f_s)), a time constant of t_ms/2π, where this
  package's rise time t_ms is a time constant of t_ms/2.2. Its smoothing
  acts on the level, not on the gain, and its stereo channels are not
  linked, so this package's model matches it closely but not exactly.
- :func:`render_optical_leveller` simulates a feedback levelling amplifier
  in the manner of an electro-optical unit. Its detector reads the output,
  and the gain reduction attacks in about 10 ms. It releases in two stages,
  a fast one (60 ms) and a slow one (1.5 s) whose share grows the longer the
  reduction is held, so the release depends on the programme. A feed-forward
  compressor with one release time cannot represent it exactly, which makes
  it the stand-in for analogue hardware.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hessframe.errors import InvalidArgumentError
from hessframe_audio.compressor import CompressorSettings
from hessframe_audio.io import Audio


def render_pedalboard(audio: Audio, settings: CompressorSettings) -> Audio:
    """Process audio with ``pedalboard.Compressor`` and ``pedalboard.Gain`` at ``settings``."""
    import pedalboard

    board = pedalboard.Pedalboard(
        [
            pedalboard.Compressor(
                threshold_db=settings.threshold_db,
                ratio=settings.ratio,
                attack_ms=settings.attack_ms,
                release_ms=settings.release_ms,
            ),
            pedalboard.Gain(gain_db=settings.makeup_db),
        ]
    )
    samples = audio.samples.detach().to(torch.float32).cpu().numpy()
    processed = board(samples, float(audio.sample_rate))
    return Audio(
        torch.from_numpy(np.ascontiguousarray(processed)),
        audio.sample_rate,
        f"pedalboard({audio.name})",
    )


@dataclass(frozen=True)
class OpticalLevellerSettings:
    """Controls of the simulated optical levelling amplifier.

    Attributes:
        peak_reduction_db: Output level in dBFS above which the gain is reduced.
        ratio: Slope of the reduction above that level (input dB per output dB).
        gain_db: Output gain in dB.
        attack_ms: Attack time of the reduction in ms.
        fast_release_ms: Time constant of the fast release stage in ms.
        slow_release_ms: Time constant of the slow release stage in ms.
        charge_ms: Time constant with which held reduction moves into the slow stage.
    """

    peak_reduction_db: float = -24.0
    ratio: float = 3.0
    gain_db: float = 4.0
    attack_ms: float = 10.0
    fast_release_ms: float = 60.0
    slow_release_ms: float = 1500.0
    charge_ms: float = 400.0

    def __post_init__(self) -> None:
        for name in ("attack_ms", "fast_release_ms", "slow_release_ms", "charge_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidArgumentError(f"{name} must be a positive number of ms, got {value}")
        if not (math.isfinite(self.ratio) and self.ratio >= 1):
            raise InvalidArgumentError(f"ratio must be at least 1, got {self.ratio}")


def render_optical_leveller(audio: Audio, settings: OpticalLevellerSettings | None = None) -> Audio:
    """Process audio with the simulated optical levelling amplifier, sample by sample.

    The reduction R (dB) is the sum of a fast part F and a slow part S. At
    each sample the output y = x·10^(−R/20) is formed first, and its peak
    level (maximum over channels) gives the requested reduction
    W = max(0, (L_y + R − T)(1 − 1/ratio)), where L_y + R is the level the
    unit would see without reduction. If W > R, F moves towards W − S with the
    attack coefficient; otherwise F decays with the fast release and S with
    the slow release. While the level is above T, S charges from F with the
    ``charge_ms`` time constant, so a long-held reduction releases slowly.
    Coefficients are 1 − exp(−1/(t·f_s)).
    """
    settings = settings or OpticalLevellerSettings()
    rate = audio.sample_rate

    def coefficient(time_ms: float) -> float:
        return 1.0 - math.exp(-1000.0 / (time_ms * rate))

    attack = coefficient(settings.attack_ms)
    fast_release = coefficient(settings.fast_release_ms)
    slow_release = coefficient(settings.slow_release_ms)
    charge = coefficient(settings.charge_ms)
    slope = 1.0 - 1.0 / settings.ratio

    samples = audio.samples.detach().to(torch.float64).cpu().numpy()
    peaks = np.abs(samples).max(axis=0).tolist()
    gains = np.empty(samples.shape[1])
    fast = slow = 0.0
    threshold = settings.peak_reduction_db
    for n, peak in enumerate(peaks):
        reduction = fast + slow
        gain = 10.0 ** (-reduction / 20.0)
        gains[n] = gain
        level_db = 20.0 * math.log10(max(peak * gain, 1e-10))
        requested = max(0.0, (level_db + reduction - threshold) * slope)
        if requested > reduction:
            fast += attack * (requested - reduction)
        else:
            fast -= fast_release * fast
            slow -= slow_release * slow
        if requested > 0:
            moved = charge * fast
            fast -= moved
            slow += moved
    output = samples * gains * 10.0 ** (settings.gain_db / 20.0)
    return Audio(
        torch.from_numpy(output).to(audio.samples.dtype),
        rate,
        f"optical-leveller({audio.name})",
    )
