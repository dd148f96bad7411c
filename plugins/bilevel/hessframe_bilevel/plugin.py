"""The hessframe hooks of the bilevel plugin: its curvature provider and its data sets.

Registered through the entry point ``bilevel = "hessframe_bilevel.plugin"`` of
the group ``hessframe``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import torch

from hessframe import DatasetRecord, ProviderRecord, hookimpl
from hessframe.errors import InvalidArgumentError


def lower_level_hessian(
    lower: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    **kwargs: Any,
):
    """Build the lower-level Hessian ∇²_yy f(x, y) as an ``AutodiffHessian`` of f(x, ·).

    Args:
        lower: f(x, y), returning a 0-d tensor.
        x: The upper-level variable, held fixed (detached and copied).
        y: The point of the Hessian, a flat floating tensor.
        **kwargs: Passed to ``AutodiffHessian`` (``mode``, ``retain_graph``, ...).

    Returns:
        The provider of H = ∇²_yy f(x, ·) at y.

    Raises:
        InvalidArgumentError: ``lower`` is not callable, ``x`` is not a tensor, or f
            fails at (x, y) (for example on a length mismatch); ``AutodiffHessian``
            rejects a bad ``y`` or a bad value of f.
    """
    from hessframe.curvature import AutodiffHessian

    if not callable(lower):
        raise InvalidArgumentError(
            f"lower must be a callable (x, y) -> 0-d tensor, got {type(lower).__name__}"
        )
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(f"x must be a torch.Tensor, got {type(x).__name__}")
    fixed_x = x.detach().clone()
    if isinstance(y, torch.Tensor):
        try:
            with torch.no_grad():
                lower(fixed_x, y.detach())
        except (RuntimeError, IndexError, ValueError, TypeError) as error:
            raise InvalidArgumentError(
                f"lower failed at x of shape {tuple(x.shape)} and y of shape "
                f"{tuple(y.shape)}: {type(error).__name__}: {error}. Check that it takes "
                "(x, y) and that x and y have the lengths it expects"
            ) from error
    return AutodiffHessian(lambda v: lower(fixed_x, v), y, **kwargs)


@hookimpl
def hessframe_curvature_providers() -> list[ProviderRecord]:
    """Return the lower-level Hessian of a bilevel problem, built by automatic differentiation."""
    return [
        ProviderRecord(
            name="bilevel-lower-hessian",
            kind="autodiff",
            factory=lower_level_hessian,
            summary="Lower-level Hessian ∇²_yy f(x, y) of a bilevel problem by automatic "
            "differentiation (lower_level_hessian(lower, x, y)).",
        )
    ]


@hookimpl
def hessframe_datasets() -> list[DatasetRecord]:
    """Return the bundled sets of the SVM and hyper-cleaning experiments.

    They load from scikit-learn's package data, imported only when this hook runs.
    """
    from hessframe_bilevel.data import dataset_records

    return dataset_records()


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    """Add the ``hessframe bilevel`` group."""
    from hessframe_bilevel.cli import bilevel_group

    cli.add_command(bilevel_group)
