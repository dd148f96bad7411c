"""hessframe: second-order information behind one plugin interface.

The core defines :class:`~hessframe.curvature.CurvatureProvider` and its four
built-in kinds, the linear algebra that works on any provider
(:mod:`hessframe.linalg`), and the plugin hooks (:mod:`hessframe.hookspecs`)
through which domain plugins add providers, commands and data sets.
"""

from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.errors import (
    HessframeError,
    InvalidArgumentError,
    NondeterministicModelError,
    NonFiniteError,
    PluginError,
)
from hessframe.hookspecs import hookimpl
from hessframe.records import PROVIDER_KINDS, DatasetRecord, ProviderRecord

__version__ = "0.1.0"

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
