"""Helpers for click commands of hessframe and its plugins.

They check option values and output locations before a command spends time
computing, and raise ``click.BadParameter`` so that click prints a usage error
that names the option (exit status 2) instead of a traceback.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import click


def reject_non_finite(context: click.Context, parameter: click.Parameter, value: float) -> float:
    """Return ``value``, or raise click.BadParameter if it is NaN or infinite (option callback)."""
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


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
            f"cannot write into folder {str(folder)!r}: {reason}; pass a writable location",
            param_hint=option,
        ) from error
