"""Exceptions raised by hessframe.

Every error names the argument or step that failed, what was wrong with it and
what is accepted, so a caller can fix the input without reading the source.
"""

from __future__ import annotations


class HessframeError(Exception):
    """Base class of every error that hessframe raises on purpose."""


class InvalidArgumentError(HessframeError, ValueError):
    """An argument has the wrong value, shape, dtype or device."""


class NonFiniteError(HessframeError, FloatingPointError):
    """A gradient, Hessian-vector product or objective came out NaN or infinite.

    The message names the step that produced the value (for example "gradient
    at x" or "Hessian-vector product") so the failure can be traced.
    """


class NondeterministicModelError(HessframeError, ValueError):
    """A model gives different outputs for the same input, so its Hessian is undefined."""


class PluginError(HessframeError, RuntimeError):
    """A plugin could not be registered, or two plugins define the same name."""
