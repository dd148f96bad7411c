"""Make the audio plugin's shipped inputs and targets (see README.md next to this script).

    python datasets/audio/make_audio_data.py            # writes next to the script
    python datasets/audio/make_audio_data.py --out-dir DIR

Needs the espeak-ng program (Debian package espeak-ng) for the speech, and the
hessframe-audio plugin installed for the targets. Every other signal is
synthesised here from fixed seeds. Files are 16-bit PCM WAV at 44.1 kHz,
3 s long, peaks at or below -1 dBFS.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from hessframe_audio.compressor import Compressor, CompressorSettings
from hessframe_audio.io import Audio, write_audio
from hessframe_audio.targets import (
    OpticalLevellerSettings,
    render_optical_leveller,
    render_pedalboard,
)

SAMPLE_RATE = 44100
SECONDS = 3.0
PEAK = 10 ** (-1 / 20)

#: Phrases spoken by espeak-ng with their amplitude option (-a, 0 to 200), so
#: that the speech moves between loud and quiet.
PHRASES = (
    ("Newton steps find the compressor.", 180),
    ("Quietly now,", 40),
    ("then loud again!", 200),
)

#: Settings of the targets rendered from the inputs.
PEDALBOARD_SPEECH = CompressorSettings(-28.0, 4.0, 3.0, 120.0, 6.0)
PEDALBOARD_DRUMS = CompressorSettings(-20.0, 6.0, 10.0, 80.0, 4.0)
SELF_BASS = CompressorSettings(-22.0, 5.0, 8.0, 200.0, 3.0)
OPTICAL_SPEECH = OpticalLevellerSettings(peak_reduction_db=-26.0, ratio=3.0, gain_db=5.0)


def speech(rate: int) -> np.ndarray:
    """Return espeak-ng speech of :data:`PHRASES`, resampled to ``rate``, mono."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed; install the Debian package espeak-ng")
    pieces = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (text, amplitude) in enumerate(PHRASES):
            path = Path(folder) / f"phrase{index}.wav"
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    "en-us",
                    "-s",
                    "190",
                    "-a",
                    str(amplitude),
                    "-w",
                    str(path),
                    text,
                ],
                check=True,
            )
            data, source_rate = soundfile.read(str(path), dtype="float64")
            resampled = torchaudio.functional.resample(
                torch.from_numpy(data), source_rate, rate
            ).numpy()
            pieces.append(resampled)
            pieces.append(np.zeros(int(0.08 * rate)))
    return np.concatenate(pieces)


def drums(rate: int, rng: np.random.Generator) -> np.ndarray:
    """Return a 120 bpm kick, snare and hi-hat pattern in stereo (hats panned right)."""
    length = int(SECONDS * rate)
    left = np.zeros(length)
    right = np.zeros(length)
    step = int(rate * 60 / 120 / 4)
    for index, start in enumerate(range(0, length, step)):
        beat = index % 16
        if beat in (0, 6, 8, 11):
            n = np.arange(min(int(0.35 * rate), length - start))
            frequency = 50 + 90 * np.exp(-n / (0.03 * rate))
            phase = 2 * np.pi * np.cumsum(frequency) / rate
            kick = 0.9 * np.sin(phase) * np.exp(-n / (0.12 * rate))
            left[start : start + n.size] += kick
            right[start : start + n.size] += kick
        if beat in (4, 12):
            n = np.arange(min(int(0.2 * rate), length - start))
            snare = 0.5 * rng.standard_normal(n.size) * np.exp(-n / (0.05 * rate))
            snare += 0.3 * np.sin(2 * np.pi * 190 * n / rate) * np.exp(-n / (0.04 * rate))
            left[start : start + n.size] += snare
            right[start : start + n.size] += snare
        n = np.arange(min(int(0.05 * rate), length - start))
        hat = rng.standard_normal(n.size)
        hat = np.diff(hat, prepend=0.0) * 0.12 * (1.0 if beat % 2 == 0 else 0.5)
        right[start : start + n.size] += hat * np.exp(-n / (0.01 * rate))
        left[start : start + n.size] += 0.4 * hat * np.exp(-n / (0.01 * rate))
    return np.stack([left, right])


def bass(rate: int) -> np.ndarray:
    """Return a plucked sawtooth bass line through a low-pass biquad, mono."""
    length = int(SECONDS * rate)
    notes = (41.2, 41.2, 55.0, 49.0, 41.2, 61.7, 55.0, 36.7)
    velocities = (1.0, 0.4, 0.8, 0.3, 1.0, 0.6, 0.9, 0.2)
    signal = np.zeros(length)
    note_length = length // len(notes)
    for index, (frequency, velocity) in enumerate(zip(notes, velocities, strict=True)):
        n = np.arange(note_length)
        saw = 2 * ((frequency * n / rate) % 1.0) - 1
        envelope = velocity * np.exp(-n / (0.25 * rate)) * (1 - np.exp(-n / (0.002 * rate)))
        signal[index * note_length : (index + 1) * note_length] = saw * envelope
    filtered = torchaudio.functional.lowpass_biquad(torch.from_numpy(signal), rate, 400.0)
    return filtered.numpy()


def tone_bursts(rate: int) -> np.ndarray:
    """Return 1 kHz bursts of 250 ms on, 125 ms off, stepping from -40 to -3 dBFS."""
    length = int(SECONDS * rate)
    signal = np.zeros(length)
    period = int(0.375 * rate)
    on = int(0.25 * rate)
    levels = np.linspace(-40, -3, length // period)
    for index, level in enumerate(levels):
        n = np.arange(on)
        start = index * period
        signal[start : start + on] = 10 ** (level / 20) * np.sin(2 * np.pi * 1000 * n / rate)
    return signal


def sweep(rate: int) -> np.ndarray:
    """Return a logarithmic sine sweep from 30 Hz to 16 kHz whose level rises from -40 dBFS."""
    n = np.arange(int(SECONDS * rate))
    start, stop = 30.0, 16000.0
    duration = SECONDS
    rate_of_growth = math.log(stop / start)
    phase = (
        2
        * np.pi
        * start
        * duration
        / rate_of_growth
        * (np.exp(n / rate / duration * rate_of_growth) - 1)
    )
    level_db = -40 + 37 * n / n[-1]
    return 10 ** (level_db / 20) * np.sin(phase)


def normalise(signal: np.ndarray) -> np.ndarray:
    """Scale to a peak of -1 dBFS and shape as (channels, time)."""
    signal = np.atleast_2d(signal)
    return signal * (PEAK / np.abs(signal).max())


def fit_length(signal: np.ndarray, rate: int) -> np.ndarray:
    """Cut or zero-pad the time axis to :data:`SECONDS`."""
    length = int(SECONDS * rate)
    signal = np.atleast_2d(signal)[:, :length]
    return np.pad(signal, ((0, 0), (0, length - signal.shape[1])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    arguments = parser.parse_args()
    out = arguments.out_dir
    (out / "targets").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    inputs = {
        "speech": speech(SAMPLE_RATE),
        "drums": drums(SAMPLE_RATE, rng),
        "bass": bass(SAMPLE_RATE),
        "tone_bursts": tone_bursts(SAMPLE_RATE),
        "sweep": sweep(SAMPLE_RATE),
    }
    audio = {}
    for name, signal in inputs.items():
        samples = torch.from_numpy(normalise(fit_length(signal, SAMPLE_RATE))).to(torch.float32)
        audio[name] = Audio(samples, SAMPLE_RATE, f"{name}.wav")
        write_audio(out / f"{name}.wav", audio[name])

    targets = {
        "speech_pedalboard": (
            render_pedalboard(audio["speech"], PEDALBOARD_SPEECH),
            PEDALBOARD_SPEECH,
        ),
        "drums_pedalboard": (render_pedalboard(audio["drums"], PEDALBOARD_DRUMS), PEDALBOARD_DRUMS),
        "speech_optical": (
            render_optical_leveller(audio["speech"], OPTICAL_SPEECH),
            OPTICAL_SPEECH,
        ),
        "bass_self": (
            Audio(
                Compressor(SAMPLE_RATE).process(audio["bass"].samples.double(), SELF_BASS).float(),
                SAMPLE_RATE,
            ),
            SELF_BASS,
        ),
    }
    settings = {}
    for name, (target, target_settings) in targets.items():
        peak = float(target.samples.abs().max())
        if peak >= 1.0:
            raise SystemExit(f"target {name} peaks at {peak:.3f}, which 16-bit PCM would clip")
        write_audio(out / "targets" / f"{name}.wav", target)
        settings[name] = target_settings.__dict__
    (out / "targets" / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


if __name__ == "__main__":
    main()
