"""The plugin registers its commands and data sets through the hessframe entry point."""

from __future__ import annotations

from click.testing import CliRunner
from hessframe_audio import plugin

from hessframe.cli import build_cli


def test_plugin_adds_audio_group():
    result = CliRunner().invoke(build_cli(), ["audio", "--help"])
    assert result.exit_code == 0, result.output
    assert "match" in result.output
    assert "export" in result.output


def test_datasets_load_shipped_audio():
    records = {record.name: record for record in plugin.hessframe_datasets()}
    inputs = records["audio-inputs"].loader()
    targets = records["audio-targets"].loader()
    assert set(inputs) == {"speech", "drums", "bass", "tone_bursts", "sweep"}
    assert inputs["drums"].channels == 2
    assert {"speech_pedalboard", "speech_optical", "bass_self", "drums_pedalboard"} <= set(targets)
    for audio in inputs.values():
        assert audio.sample_rate == 44100
        assert audio.duration_s == 3.0
