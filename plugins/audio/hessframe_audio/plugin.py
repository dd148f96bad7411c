"""The hessframe hooks of the audio plugin: its data sets and commands.

Registered through the entry point ``audio = "hessframe_audio.plugin"`` of the
group ``hessframe``. The plugin registers no curvature provider of its own:
its four Hessian strategies are the core's autodiff, low-rank damped and
finite-difference providers (see :func:`hessframe_audio.match.curvature_at`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from hessframe import DatasetRecord, hookimpl

if TYPE_CHECKING:
    import click

logger = logging.getLogger(__name__)

#: datasets/audio of the checkout this package was installed from in editable mode.
DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "audio"

LICENCE = (
    "made by datasets/audio/make_audio_data.py (speech by espeak-ng, the rest synthesised); "
    "MIT like the project, see datasets/audio/README.md"
)


@hookimpl
def hessframe_curvature_providers() -> list:
    """Return no providers: the audio plugin uses the core's."""
    return []


@hookimpl
def hessframe_datasets() -> list[DatasetRecord]:
    """Return the shipped inputs and targets, when running from a checkout."""
    if not (DATASET_DIR / "speech.wav").is_file():
        logger.debug("no audio data sets: %s does not exist", DATASET_DIR)
        return []
    return [
        DatasetRecord(
            name="audio-inputs",
            description="Speech, drums (stereo), bass, tone bursts and a sweep, 3 s each at "
            "44.1 kHz, 16-bit; the loader returns {name: Audio}",
            licence=LICENCE,
            path=DATASET_DIR,
            loader=_load_inputs,
        ),
        DatasetRecord(
            name="audio-targets",
            description="The inputs processed by pedalboard's compressor, the simulated optical "
            "leveller and this plugin's compressor; the loader returns {name: Audio}",
            licence=LICENCE,
            path=DATASET_DIR / "targets",
            loader=_load_targets,
        ),
    ]


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    """Add the ``hessframe audio`` group."""
    from hessframe_audio.cli import audio_group

    cli.add_command(audio_group)


def _load_inputs() -> dict:
    from hessframe_audio.io import read_audio

    return {path.stem: read_audio(path) for path in sorted(DATASET_DIR.glob("*.wav"))}


def _load_targets() -> dict:
    from hessframe_audio.io import read_audio

    return {path.stem: read_audio(path) for path in sorted((DATASET_DIR / "targets").glob("*.wav"))}
