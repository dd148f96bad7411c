"""The compressor: exact attack/release decisions, gain curve, smoothing and settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, varied_level_signal
from hessframe_audio.compressor import (
    Compressor,
    CompressorSettings,
    attack_decisions,
    sequential_smoothing,
    smooth_reduction,
    smoothing_coefficient,
    static_gain_db,
)

from hessframe.errors import InvalidArgumentError

SETTINGS = CompressorSettings(-20.0, 4.0, 5.0, 100.0, 3.0)


def reduction_of(audio, settings, detector="peak", dtype=torch.float64):
    compressor = Compressor(audio.sample_rate, detector=detector)
    raw = settings.to_raw(dtype)
    level = compressor.level_db(audio.samples.to(dtype).unsqueeze(0))
    alpha_attack, alpha_release = compressor.coefficients(raw)
    return compressor.target_reduction(level, raw), alpha_attack, alpha_release


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("detector", ["peak", "rms"])
@pytest.mark.parametrize(
    "settings",
    [
        SETTINGS,
        CompressorSettings(-35.0, 20.0, 0.1, 30.0),
        CompressorSettings(-10.0, 1.5, 80.0, 2000.0),
    ],
)
def test_decisions_equal_sequential_loop_exactly(dtype, detector, settings):
    reduction, alpha_attack, alpha_release = reduction_of(
        varied_level_signal(1.0), settings, detector, dtype
    )
    parallel = attack_decisions(reduction, alpha_attack, alpha_release)
    # Decisions are taken in float64 whatever the signal's dtype, so the loop runs in float64.
    _, sequential = sequential_smoothing(
        reduction.double().numpy(), float(alpha_attack), float(alpha_release)
    )
    assert np.array_equal(parallel.numpy(), sequential)


def test_decisions_cover_attack_and_release():
    reduction, alpha_attack, alpha_release = reduction_of(varied_level_signal(1.0), SETTINGS)
    attack = attack_decisions(reduction, alpha_attack, alpha_release)
    assert 0 < int(attack.sum()) < attack.numel()


def test_smoothing_values_equal_sequential_loop():
    reduction, alpha_attack, alpha_release = reduction_of(varied_level_signal(1.0), SETTINGS)
    smoothed = smooth_reduction(reduction, alpha_attack, alpha_release)
    expected, _ = sequential_smoothing(reduction.numpy(), float(alpha_attack), float(alpha_release))
    assert np.allclose(smoothed.numpy(), expected, rtol=0, atol=1e-12)


def test_stereo_detector_is_linked():
    audio = varied_level_signal(0.3, channels=2)
    compressor = Compressor(SAMPLE_RATE)
    samples = audio.samples.double().unsqueeze(0)
    output = compressor.apply(samples, SETTINGS.to_raw())
    gain = output / samples
    valid = samples.abs() > 1e-6
    both = valid[:, 0] & valid[:, 1]
    assert torch.allclose(gain[:, 0][both], gain[:, 1][both], rtol=1e-9)


def test_static_gain_hard_knee_closed_form():
    levels = torch.tensor([-40.0, -20.0, -10.0, 0.0], dtype=torch.float64)
    gain = static_gain_db(levels, -20.0, 4.0)
    expected = torch.tensor([0.0, 0.0, -7.5, -15.0], dtype=torch.float64)
    assert torch.allclose(gain, expected)


def test_static_gain_soft_knee_is_continuous_at_edges():
    knee = 6.0
    edges = torch.tensor([-23.0, -17.0], dtype=torch.float64)
    below = static_gain_db(edges - 1e-9, -20.0, 4.0, knee)
    above = static_gain_db(edges + 1e-9, -20.0, 4.0, knee)
    assert torch.allclose(below, above, atol=1e-8)
    assert float(static_gain_db(torch.tensor(-20.0), -20.0, 4.0, knee)) == pytest.approx(
        (0.25 - 1) * 9 / 12
    )


def test_smoothing_coefficient_reaches_ninety_percent_at_rise_time():
    rate = 48000
    alpha = float(smoothing_coefficient(10.0, rate))
    samples = round(10e-3 * rate)
    # 1 - (1 - α)^n from 0 reaches 1 - exp(-2.2) ≈ 0.889 after t_ms, the 10-90 % convention.
    assert 1 - (1 - alpha) ** samples == pytest.approx(1 - math.exp(-2.2), rel=1e-9)


def test_silence_passes_with_makeup_gain_only():
    samples = torch.zeros(1, 1, 1000, dtype=torch.float64)
    samples[0, 0, 500] = 1e-3
    output = Compressor(SAMPLE_RATE).apply(samples, SETTINGS.to_raw())
    assert torch.allclose(output, samples * 10 ** (3 / 20))


def test_settings_round_trip_through_raw_vector():
    back = CompressorSettings.from_raw(SETTINGS.to_raw())
    for name, value in SETTINGS.as_dict().items():
        assert getattr(back, name) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ratio", 0.5, "ratio must be at least 1"),
        ("attack_ms", 0.0, "attack_ms must be within"),
        ("release_ms", 1e5, "release_ms must be within"),
        ("threshold_db", math.nan, "threshold_db must be finite"),
    ],
)
def test_settings_reject_invalid_values(field, value, message):
    values = SETTINGS.as_dict() | {field: value}
    with pytest.raises(InvalidArgumentError, match=message):
        CompressorSettings(**values)


def test_compressor_rejects_unknown_detector():
    with pytest.raises(InvalidArgumentError, match="detector must be one of"):
        Compressor(SAMPLE_RATE, detector="vu")


def test_compressor_rejects_bad_sample_rate():
    with pytest.raises(InvalidArgumentError, match="sample_rate must be a positive integer"):
        Compressor(0)


def test_settings_accept_numpy_numbers():
    settings = CompressorSettings(np.float32(-20.0), np.float64(3.0), 10, 150.0, 0.0)
    assert settings.as_dict()["threshold_db"] == -20.0


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [("knee_db", "3", "knee_db must be a finite number"), ("rms_ms", None, "rms_ms must be")],
)
def test_compressor_rejects_non_numeric_options(keyword, value, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Compressor(SAMPLE_RATE, **{keyword: value})


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (torch.zeros(100), r"shape \(channels, time\) or \(batch, channels, time\)"),
        (torch.zeros(1, 100, dtype=torch.int16), "floating point"),
    ],
)
def test_process_rejects_bad_samples(samples, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Compressor(SAMPLE_RATE).process(samples, SETTINGS)


def test_process_rejects_settings_of_wrong_type():
    with pytest.raises(InvalidArgumentError, match="settings must be CompressorSettings"):
        Compressor(SAMPLE_RATE).process(torch.zeros(1, 100), SETTINGS.as_dict())
