"""Reading and pairing audio: every kind of bad input gets a clear error."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile
import torch
from conftest import SAMPLE_RATE, varied_level_signal
from hessframe_audio.io import Audio, align_pair, read_audio, write_audio

from hessframe.errors import InvalidArgumentError


def write(path, data, rate=SAMPLE_RATE, subtype="FLOAT"):
    soundfile.write(str(path), np.asarray(data, dtype=np.float32).T, rate, subtype=subtype)
    return path


def test_written_audio_reads_back(tmp_path):
    audio = varied_level_signal(0.1, channels=2)
    write_audio(tmp_path / "a.wav", audio, subtype="FLOAT")
    back = read_audio(tmp_path / "a.wav")
    assert back.sample_rate == SAMPLE_RATE
    assert torch.equal(back.samples, audio.samples)


def test_missing_file_is_rejected(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        read_audio(tmp_path / "missing.wav", "INPUT")


def test_unreadable_file_is_rejected(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(b"not audio at all")
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        read_audio(path, "INPUT")


def test_empty_file_is_rejected(tmp_path):
    path = write(tmp_path / "empty.wav", np.zeros((1, 0)))
    with pytest.raises(InvalidArgumentError, match="contains no samples"):
        read_audio(path)


def test_nan_samples_are_rejected(tmp_path):
    data = np.full((1, 100), 0.1)
    data[0, 10] = np.nan
    path = write(tmp_path / "nan.wav", data)
    with pytest.raises(InvalidArgumentError, match="1 NaN or infinite samples"):
        read_audio(path)


def test_silence_is_rejected(tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros((1, 1000)))
    with pytest.raises(InvalidArgumentError, match="is silent"):
        read_audio(path)


def test_samples_beyond_full_scale_are_rejected(tmp_path):
    path = write(tmp_path / "hot.wav", np.full((1, 100), 1.5))
    with pytest.raises(InvalidArgumentError, match="beyond full scale"):
        read_audio(path)


def test_clipping_is_reported(tmp_path, caplog):
    data = np.clip(3 * varied_level_signal(0.1).samples.numpy(), -1, 1)
    path = write(tmp_path / "clipped.wav", data)
    with caplog.at_level(logging.WARNING):
        read_audio(path)
    assert "probably clipped" in caplog.text


def test_target_of_other_rate_is_resampled():
    audio = varied_level_signal(0.2)
    resampled = torch.from_numpy(
        soundfile.read(str(_resample_file(audio)), dtype="float32", always_2d=True)[0].T.copy()
    )
    target = Audio(resampled, 48000, "target")
    pair = align_pair(audio, target)
    assert pair[1].sample_rate == SAMPLE_RATE
    assert pair[0].samples.shape == pair[1].samples.shape


def _resample_file(audio):
    import tempfile

    import torchaudio

    folder = tempfile.mkdtemp()
    samples = torchaudio.functional.resample(audio.samples, SAMPLE_RATE, 48000)
    path = f"{folder}/target48k.wav"
    soundfile.write(path, samples.numpy().T, 48000, subtype="FLOAT")
    return path


def test_target_of_other_rate_is_refused_without_resampling():
    audio = varied_level_signal(0.1)
    with pytest.raises(InvalidArgumentError, match="differs from the input's"):
        align_pair(audio, Audio(audio.samples, 48000, "t"), resample=False)


def test_different_lengths_are_refused():
    audio = varied_level_signal(0.1)
    shorter = Audio(audio.samples[:, :-100], SAMPLE_RATE, "t")
    with pytest.raises(InvalidArgumentError, match="has 4310 samples but the input"):
        align_pair(audio, shorter)


def test_mono_against_stereo_is_refused():
    mono = varied_level_signal(0.1)
    stereo = varied_level_signal(0.1, channels=2)
    with pytest.raises(InvalidArgumentError, match="2 channel\\(s\\) but the input"):
        align_pair(mono, stereo)


def test_folder_is_rejected_as_folder(tmp_path):
    with pytest.raises(InvalidArgumentError, match="is a folder"):
        read_audio(tmp_path, argument="INPUT")


def test_align_pair_rejects_a_path_for_the_target():
    audio = varied_level_signal(0.05)
    with pytest.raises(InvalidArgumentError, match="target must be an Audio"):
        align_pair(audio, "wet.wav")
