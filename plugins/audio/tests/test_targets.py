"""The targets: pedalboard's compressor and the simulated optical leveller behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE
from hessframe_audio.compressor import CompressorSettings
from hessframe_audio.io import Audio
from hessframe_audio.metrics import gain_reduction_error_db, loudness_error_lu
from hessframe_audio.targets import (
    OpticalLevellerSettings,
    render_optical_leveller,
    render_pedalboard,
)


def tone(level_db, seconds, rate=SAMPLE_RATE):
    time = torch.arange(int(seconds * rate), dtype=torch.float64) / rate
    return 10 ** (level_db / 20) * torch.sin(2 * torch.pi * 1000 * time)


def test_pedalboard_reaches_static_curve_on_steady_tone():
    audio = Audio(tone(-6, 1.0).float().unsqueeze(0), SAMPLE_RATE)
    settings = CompressorSettings(-20.0, 4.0, 1.0, 50.0, 2.0)
    output = render_pedalboard(audio, settings).samples.numpy()[0]
    # A peak of -6 dBFS is 14 dB over the threshold; 4:1 leaves 3.5 dB, so the gain is -10.5 + 2 dB.
    tail = slice(-4410, None)
    ratio = np.abs(output[tail]).max() / float(audio.samples[0, tail].abs().max())
    tail_gain_db = 20 * np.log10(ratio)
    assert tail_gain_db == pytest.approx(-8.5, abs=0.5)


def juce_compressor(samples, rate, threshold_db, ratio, attack_ms, release_ms):
    """JUCE 7 dsp::Compressor from its source: a peak BallisticsFilter per channel with the
    coefficient exp(-2π·1000 / (t_ms·f_s)), then gain (envelope / threshold)^(1/ratio - 1)."""
    attack = np.exp(-2 * np.pi * 1000 / (attack_ms * rate))
    release = np.exp(-2 * np.pi * 1000 / (release_ms * rate))
    threshold = 10 ** (threshold_db / 20)
    output = np.empty(samples.shape)
    for channel, row in enumerate(samples.astype(np.float64)):
        envelope = 0.0
        for n, value in enumerate(row):
            level = abs(value)
            envelope = level + (attack if level > envelope else release) * (envelope - level)
            gain = 1.0 if envelope < threshold else (envelope / threshold) ** (1 / ratio - 1)
            output[channel, n] = gain * value
    return output


def test_pedalboard_matches_juce_ballistics():
    # pedalboard runs JUCE's ballistics filter per channel, with time constants
    # of t_ms/2π. The two channels differ, so a linked detector would not match.
    left = tone(-8, 0.05) * torch.linspace(0.1, 1.0, 2205, dtype=torch.float64)
    right = tone(-14, 0.05).roll(7)
    audio = Audio(torch.stack([left, right]).float(), SAMPLE_RATE)
    settings = CompressorSettings(-24.0, 4.0, 3.0, 60.0, 0.0)
    output = render_pedalboard(audio, settings).samples.numpy()
    expected = juce_compressor(audio.samples.numpy(), SAMPLE_RATE, -24.0, 4.0, 3.0, 60.0)
    assert np.abs(output - expected).max() < 1e-5


def test_optical_leveller_is_transparent_below_threshold():
    audio = Audio(tone(-40, 0.2).unsqueeze(0), SAMPLE_RATE)
    settings = OpticalLevellerSettings(peak_reduction_db=-20.0, gain_db=3.0)
    output = render_optical_leveller(audio, settings)
    assert torch.allclose(output.samples, audio.samples * 10 ** (3 / 20))


def reduction_after_release_db(hold_seconds, delay_seconds=0.3):
    """Gain reduction in dB left ``delay_seconds`` after a -3 dBFS tone of the given length."""
    loud = tone(-3, hold_seconds)
    quiet = tone(-40, 1.0)
    audio = Audio(torch.cat([loud, quiet]).unsqueeze(0), SAMPLE_RATE)
    output = render_optical_leveller(audio, OpticalLevellerSettings(gain_db=0.0)).samples[0]
    start = loud.numel() + int(delay_seconds * SAMPLE_RATE)
    window = slice(start, start + 441)
    return -20 * np.log10(float(output[window].abs().max() / quiet[:441].abs().max()))


def test_optical_leveller_release_depends_on_programme():
    after_long = reduction_after_release_db(2.0)
    after_short = reduction_after_release_db(0.05)
    assert after_long > 1.0
    assert after_long > 2 * after_short


def test_metrics_vanish_for_identical_audio():
    audio = Audio(tone(-10, 1.0).float().unsqueeze(0), SAMPLE_RATE)
    assert gain_reduction_error_db(audio, audio, audio) == 0.0
    assert loudness_error_lu(audio, audio) == 0.0
