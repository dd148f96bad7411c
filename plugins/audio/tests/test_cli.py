"""The `hessframe audio` commands: output, exports, plots and errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SAMPLE_RATE, varied_level_signal
from hessframe_audio.cli import audio_group
from hessframe_audio.compressor import Compressor, CompressorSettings
from hessframe_audio.export import read_settings

TRUE = CompressorSettings(-18.0, 4.0, 5.0, 100.0, 3.0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    audio = varied_level_signal(0.3)
    target = Compressor(SAMPLE_RATE).process(audio.samples.double(), TRUE).float()
    soundfile.write(folder / "in.wav", audio.samples.numpy().T, SAMPLE_RATE, subtype="FLOAT")
    soundfile.write(folder / "out.wav", target.numpy().T, SAMPLE_RATE, subtype="FLOAT")
    return folder / "in.wav", folder / "out.wav"


def run(*arguments):
    return CliRunner().invoke(audio_group, [str(argument) for argument in arguments])


def test_match_prints_parameters_and_error(pair):
    result = run("match", *pair, "--hessian", "gauss-newton")
    assert result.exit_code == 0, result.output
    assert "threshold_db" in result.output
    assert " dB" in result.output
    assert "ESR" in result.output


def test_match_json_exports_preset_and_plot(pair, tmp_path):
    preset = tmp_path / "fit.vstpreset"
    plot = tmp_path / "fit.png"
    result = run(
        "match", *pair, "--hessian", "gauss-newton", "--json", "--export", preset, "--plot", plot
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["esr"] < 1e-6
    assert report["settings"]["ratio"] == pytest.approx(4.0, rel=1e-3)
    assert read_settings(preset).ratio == pytest.approx(report["settings"]["ratio"], rel=1e-9)
    assert plot.stat().st_size > 10_000


def test_match_adam_runs(pair):
    result = run("match", *pair, "--optimizer", "adam", "--max-iterations", "5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["iterations"] == 5


def test_json_output_of_match_exports_to_fxp(pair, tmp_path):
    # The README's chain: match --json > fit.json, then export fit.json --format fxp.
    result = run("match", *pair, "--optimizer", "adam", "--max-iterations", "3", "--json")
    assert result.exit_code == 0, result.output
    (tmp_path / "fit.json").write_text(result.output)
    fxp = tmp_path / "fit.fxp"
    exported = run("export", tmp_path / "fit.json", "--format", "fxp", "--out", fxp)
    assert exported.exit_code == 0, exported.output
    ratio = json.loads(result.output)["settings"]["ratio"]
    assert read_settings(fxp).ratio == pytest.approx(ratio, rel=1e-5)


def test_failed_export_writes_no_preset(pair, tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    loud = Compressor(SAMPLE_RATE).process(
        varied_level_signal(0.3).samples.double(), CompressorSettings(-18, 4, 5, 100, 30)
    )
    loud = (loud / loud.abs().max() * 0.99).float()
    target = tmp_path / "loud.wav"
    soundfile.write(target, loud.numpy().T, SAMPLE_RATE, subtype="FLOAT")
    # A make-up gain above the preset range cannot be stored, so the export must fail cleanly.
    quiet_input = tmp_path / "quiet.wav"
    soundfile.write(
        quiet_input, varied_level_signal(0.3).samples.numpy().T * 0.02, SAMPLE_RATE, subtype="FLOAT"
    )
    result = run(
        "match", quiet_input, target, "--hessian", "gauss-newton", "--export", folder / "fit.fxp"
    )
    assert result.exit_code == 1
    assert "lies outside the preset's range" in result.output
    assert "No file was written" in result.output
    assert list(folder.iterdir()) == []


def test_match_rejects_mono_against_stereo(pair, tmp_path):
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, varied_level_signal(0.3, channels=2).samples.numpy().T, SAMPLE_RATE)
    result = run("match", pair[0], stereo)
    assert result.exit_code == 2
    assert "2 channel(s) but the input" in result.output


def test_match_rejects_silent_input(pair, tmp_path):
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(1000), SAMPLE_RATE)
    result = run("match", silence, pair[1])
    assert result.exit_code == 2
    assert "is silent" in result.output


def test_match_rejects_unknown_preset_suffix(pair, tmp_path):
    result = run("match", *pair, "--export", tmp_path / "fit.txt")
    assert result.exit_code == 2
    assert "must end in one of" in result.output


def test_match_needs_both_files(pair):
    result = run("match", pair[0])
    assert result.exit_code == 2
    assert "give both INPUT and TARGET" in result.output


@pytest.mark.parametrize("format_name", ["json", "vstpreset", "fxp"])
def test_export_converts_between_formats(tmp_path, format_name):
    source = tmp_path / "settings.json"
    source.write_text(json.dumps({"settings": TRUE.as_dict()}))
    out = tmp_path / f"converted.{format_name}"
    result = run("export", source, "--format", format_name, "--out", out)
    assert result.exit_code == 0, result.output
    assert read_settings(out).attack_ms == pytest.approx(5.0, rel=1e-5)


def test_export_rejects_unreadable_params(tmp_path):
    source = tmp_path / "broken.json"
    source.write_text("{not json")
    result = run("export", source, "--format", "fxp")
    assert result.exit_code == 2
    assert "not valid JSON" in result.output


def test_match_rejects_nan_knee(pair):
    result = run("match", *pair, "--knee-db", "nan")
    assert result.exit_code == 2
    assert "must be a finite number ≥ 0, got nan" in result.output
