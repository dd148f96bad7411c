"""The match plot places each frame's measured gain at the level the detector reads."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLE_RATE
from hessframe_audio import Audio, Compressor, CompressorSettings
from hessframe_audio.compressor import static_gain_db
from hessframe_audio.metrics import frame_gain_db
from hessframe_audio.plot import frame_detector_level_db


def test_steady_tone_on_static_curve():
    # Rising 1 kHz tone bursts, 0.1 s each, compressed at a fast attack: in the
    # settled half of each burst the measured gain is the closed-form static
    # curve at the tone's peak level (the amplitude), 3 dB above its RMS.
    levels_db = [-40.0, -30.0, -24.0, -18.0, -12.0, -6.0]
    burst = SAMPLE_RATE // 10
    time = torch.arange(burst * len(levels_db), dtype=torch.float64) / SAMPLE_RATE
    envelope = (10 ** (torch.tensor(levels_db, dtype=torch.float64) / 20)).repeat_interleave(burst)
    samples = (envelope * torch.sin(2 * torch.pi * 1000 * time)).unsqueeze(0)
    settings = CompressorSettings(-30.0, 4.0, 0.5, 500.0, 3.0)
    compressor = Compressor(SAMPLE_RATE)
    clean = Audio(samples, SAMPLE_RATE)
    compressed = Audio(compressor.process(samples, settings), SAMPLE_RATE)

    _, gain = frame_gain_db(clean, compressed)
    detected = frame_detector_level_db(compressor, clean)
    settled = [index * 10 + offset for index in range(len(levels_db)) for offset in (6, 7, 8)]
    curve = static_gain_db(torch.from_numpy(detected[settled]), -30.0, 4.0) + 3.0
    assert detected[settled] == pytest.approx(
        [level for level in levels_db for _ in range(3)], abs=0.01
    )
    assert (torch.from_numpy(gain[settled]) - curve).abs().max() < 0.15
