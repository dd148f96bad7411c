"""hessframe: second-order information behind one plugin interface.

The core defines :class:`~hessframe.curvature.CurvatureProvider` and its four
built-in kinds, the linear algebra that works on any provider
(:mod:`hessframe.linalg`), and the plugin hooks (:mod:`hessframe.hookspecs`)
through which domain plugins add providers, commands and data sets.

Names that need torch are imported on first access (PEP 562), so that
``import hessframe`` and the ``pytest11`` plugin stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hessframe.errors import (
    HessframeError,
    InvalidArgumentError,
    NondeterministicModelError,
    NonFiniteError,
    PluginError,
)
from hessframe.hookspecs import hookimpl
from hessframe.records import PROVIDER_KINDS, DatasetRecord, ProviderRecord

if TYPE_CHECKING:
    from hessframe.curvature.base import Capabilities, CurvatureProvider

__version__ = "0.1.0"

_LAZY_NAMES = {
    "Capabilities": "hessframe.curvature.base",
    "CurvatureProvider": "hessframe.curvature.base",
}

__all__ = [
    "PROVIDER_KINDS",
    "Capabilities",
    "CurvatureProvider",
    "DatasetRecord",
    "HessframeError",
    "InvalidArgumentError",
    "NonFiniteError",
    "NondeterministicModelError",
    "PluginError",
    "ProviderRecord",
    "__version__",
    "hookimpl",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'hessframe' has no attribute {name!r}")
