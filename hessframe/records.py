"""Records that plugins return from the ``hessframe_curvature_providers`` and
``hessframe_datasets`` hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROVIDER_KINDS = ("autodiff", "finite-difference", "low-rank-damped", "predicted")


@dataclass(frozen=True)
class ProviderRecord:
    """A named way to build a :class:`~hessframe.curvature.CurvatureProvider`.

    Attributes:
        name: Unique name across all plugins, for example ``"autodiff"`` or
            ``"transport-sparse-dual"``.
        kind: One of :data:`PROVIDER_KINDS`.
        factory: Callable that returns a provider; its arguments are the
            provider's own (documented on the factory).
        summary: One line that ``hessframe providers`` prints.
    """

    name: str
    kind: str
    factory: Callable[..., Any]
    summary: str

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"ProviderRecord name must be a non-empty string, got {self.name!r}")
        if self.kind not in PROVIDER_KINDS:
            raise ValueError(
                f"ProviderRecord {self.name!r}: kind {self.kind!r} is not one of {PROVIDER_KINDS}"
            )
        if not callable(self.factory):
            raise ValueError(f"ProviderRecord {self.name!r}: factory must be callable")


@dataclass(frozen=True)
class DatasetRecord:
    """A data set that a plugin ships or can build.

    Attributes:
        name: Unique name across all plugins.
        description: One line on what the data is.
        licence: The licence of the data, or of the sources it was made from.
        path: Where the files lie, when they are files.
        loader: Callable with no arguments that returns the data, when it is
            loaded rather than read from ``path``.
    """

    name: str
    description: str
    licence: str
    path: Path | None = None
    loader: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if self.path is None and self.loader is None:
            raise ValueError(f"DatasetRecord {self.name!r} needs a path or a loader")
