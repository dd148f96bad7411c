"""Reading, checking and writing audio: samples in [-1, 1] with their sample rate.

Files are read and written with ``soundfile`` (libsndfile), so WAV, FLAC, AIFF
and OGG work. Rates are converted with ``torchaudio.functional.resample``.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from hessframe.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

#: A signal whose peak is below this level (-120 dBFS) counts as silence.
SILENCE_PEAK = 1e-6

#: Share of samples at full scale above which a signal is reported as clipped.
CLIPPED_SHARE = 1e-3

#: Samples within this distance of ±1 count as full scale when looking for clipping.
FULL_SCALE_MARGIN = 1e-4


@dataclass(frozen=True)
class Audio:
    """Samples with their sample rate.

    Attributes:
        samples: float tensor of shape (channels, time), values in [-1, 1].
        sample_rate: Samples per second in Hz.
        name: Where the samples came from, for messages.
    """

    samples: torch.Tensor
    sample_rate: int
    name: str = "audio"

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.samples.shape[1] / self.sample_rate

    def to(self, dtype: torch.dtype) -> Audio:
        """Return the audio with samples converted to ``dtype``."""
        return Audio(self.samples.to(dtype), self.sample_rate, self.name)


def read_audio(path: str | os.PathLike[str], argument: str = "path") -> Audio:
    """Read an audio file into float32 samples (channels, time) and check them.

    Raises:
        InvalidArgumentError: The file is missing or unreadable, has no
            samples, or fails :func:`check_audio`. The message names ``argument``.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidArgumentError(f"{argument}: {str(path)!r} is a folder; pass an audio file")
    if not path.is_file():
        raise InvalidArgumentError(f"{argument}: file {str(path)!r} does not exist")
    try:
        data, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"{argument}: cannot read {str(path)!r} as audio ({error}); pass a WAV, FLAC, "
            "AIFF or OGG file"
        ) from error
    audio = Audio(torch.from_numpy(np.ascontiguousarray(data.T)), int(sample_rate), str(path))
    check_audio(audio, argument)
    return audio


def check_audio(audio: Audio, argument: str = "audio", *, levels: bool = True) -> None:
    """Raise InvalidArgumentError for empty, non-finite, out-of-range or silent audio.

    Clipping (more than 0.1 % of the samples at full scale) is logged as a
    warning, because a clipped recording can still be matched, less well.
    ``levels=False`` skips the full-scale and clipping checks, for audio
    already checked (a resampled target may overshoot full scale slightly).
    """
    if not isinstance(audio, Audio):
        raise InvalidArgumentError(
            f"{argument} must be an Audio (samples of shape (channels, time) and their sample "
            f"rate), got {type(audio).__name__}; read files with hessframe_audio.read_audio"
        )
    samples = audio.samples
    if not isinstance(samples, torch.Tensor) or samples.ndim != 2:
        raise InvalidArgumentError(
            f"{argument}: samples must be a tensor of shape (channels, time), "
            f"got {getattr(samples, 'shape', type(samples).__name__)}"
        )
    if samples.shape[0] < 1 or samples.shape[1] < 1:
        raise InvalidArgumentError(f"{argument}: {audio.name} contains no samples")
    if isinstance(audio.sample_rate, bool) or not isinstance(audio.sample_rate, int):
        raise InvalidArgumentError(
            f"{argument}: sample rate must be an integer in Hz, got {audio.sample_rate!r}"
        )
    if audio.sample_rate <= 0:
        raise InvalidArgumentError(
            f"{argument}: sample rate must be positive, got {audio.sample_rate} Hz"
        )
    if not samples.is_floating_point():
        raise InvalidArgumentError(
            f"{argument}: samples must be floating point in [-1, 1], got {samples.dtype}"
        )
    finite = torch.isfinite(samples)
    if not bool(finite.all()):
        count = int((~finite).sum())
        raise InvalidArgumentError(
            f"{argument}: {audio.name} contains {count} NaN or infinite samples; "
            "repair or re-export the file"
        )
    peak = float(samples.abs().max())
    if levels and peak > 1.0 + FULL_SCALE_MARGIN:
        raise InvalidArgumentError(
            f"{argument}: {audio.name} has samples up to {peak:.3g}, beyond full scale [-1, 1]; "
            "normalise it first"
        )
    if peak < SILENCE_PEAK:
        raise InvalidArgumentError(
            f"{argument}: {audio.name} is silent (peak {_db(peak)} dBFS, below "
            f"{_db(SILENCE_PEAK)} dBFS); a compressor cannot be matched on silence"
        )
    clipped = float((samples.abs() >= 1.0 - FULL_SCALE_MARGIN).float().mean())
    if levels and clipped > CLIPPED_SHARE:
        logger.warning(
            "%s: %.2f %% of the samples of %s are at full scale, so it is probably clipped; "
            "the match will fit the clipped waveform",
            argument,
            100 * clipped,
            audio.name,
        )


def align_pair(input_audio: Audio, target: Audio, *, resample: bool = True) -> tuple[Audio, Audio]:
    """Bring a target to the input's sample rate and check that the two belong together.

    Args:
        input_audio: The unprocessed signal.
        target: The processed signal to match.
        resample: Convert a target of another rate with
            ``torchaudio.functional.resample``; when False, a different rate is
            an error.

    Returns:
        The input and the target at the input's rate, the same length.

    Raises:
        InvalidArgumentError: Channel counts differ, rates differ and
            ``resample`` is False, or lengths differ by more than the two
            samples that resampling may round, or either is not :class:`Audio`.
    """
    for argument, audio in (("input_audio", input_audio), ("target", target)):
        if not isinstance(audio, Audio):
            raise InvalidArgumentError(
                f"{argument} must be an Audio (samples of shape (channels, time) and their "
                f"sample rate), got {type(audio).__name__}"
            )
    if input_audio.channels != target.channels:
        raise InvalidArgumentError(
            f"target: {target.name} has {target.channels} channel(s) but the input "
            f"{input_audio.name} has {input_audio.channels}; the compressor keeps the channel "
            "layout, so pass both in mono or both in stereo"
        )
    tolerance = 0
    if target.sample_rate != input_audio.sample_rate:
        if not resample:
            raise InvalidArgumentError(
                f"target: sample rate {target.sample_rate} Hz differs from the input's "
                f"{input_audio.sample_rate} Hz; resample one of them or allow resampling"
            )
        logger.info(
            "resampling the target %s from %d Hz to %d Hz",
            target.name,
            target.sample_rate,
            input_audio.sample_rate,
        )
        samples = torchaudio.functional.resample(
            target.samples.to(torch.float64), target.sample_rate, input_audio.sample_rate
        ).to(target.samples.dtype)
        target = Audio(samples, input_audio.sample_rate, target.name)
        tolerance = 2
    difference = target.samples.shape[1] - input_audio.samples.shape[1]
    if abs(difference) > tolerance:
        raise InvalidArgumentError(
            f"target: {target.name} has {target.samples.shape[1]} samples but the input "
            f"{input_audio.name} has {input_audio.samples.shape[1]} (at "
            f"{input_audio.sample_rate} Hz); pass a target rendered from this input, "
            "the same length"
        )
    length = min(target.samples.shape[1], input_audio.samples.shape[1])
    return (
        Audio(input_audio.samples[:, :length], input_audio.sample_rate, input_audio.name),
        Audio(target.samples[:, :length], target.sample_rate, target.name),
    )


def write_audio(path: str | os.PathLike[str], audio: Audio, subtype: str = "PCM_16") -> None:
    """Write audio through a temporary file in the same folder and a rename."""
    path = Path(path)
    data = audio.samples.detach().to(torch.float32).cpu().numpy().T
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".wav")
    os.close(handle)
    try:
        soundfile.write(temporary, data, audio.sample_rate, subtype=subtype, format="WAV")
        _make_readable(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _db(amplitude: float) -> str:
    return f"{20 * math.log10(amplitude):.0f}" if amplitude > 0 else "-inf"


def _make_readable(path: str) -> None:
    """Give a temporary file the permissions a plain open() would (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
