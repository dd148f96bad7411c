"""Checks of output locations, run before a command spends time computing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click


def prepare_output_folder(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and check that files can be written in it.

    Raises:
        click.BadParameter: The folder cannot be created or written to; the
            message names ``option`` and the operating system's reason.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hessframe-write-check."):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise click.BadParameter(
            f"cannot write into folder {str(folder)!r}: {reason}; pass a writable folder",
            param_hint=option,
        ) from error
