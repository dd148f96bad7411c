"""Euclidean projections onto the simple sets X and Y of a bilevel problem.

Each set is a callable object that maps a flat tensor v to
argmin_{u in set} ‖u − v‖. A user may pass any callable with the same
contract instead; :func:`as_projection` wraps it with a shape check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hessframe.errors import InvalidArgumentError

#: Bisection steps of the simplex threshold before the exact solve on the support.
_SIMPLEX_BISECTION_STEPS = 60


class Projection:
    """Base class of the shipped sets: ``__call__`` projects, ``check`` validates for a point."""

    name = "set"

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, like: torch.Tensor, argument: str) -> None:
        """Raise InvalidArgumentError when the set is empty or does not fit ``like``."""


def _check_tensor(v: object, name: str) -> None:
    """Raise InvalidArgumentError unless ``v`` is a floating torch tensor (the point to project)."""
    if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
        kind = f"tensor of dtype {v.dtype}" if isinstance(v, torch.Tensor) else type(v).__name__
        raise InvalidArgumentError(f"{name} projects a floating torch.Tensor, got {kind}")


class Reals(Projection):
    """The whole space: the projection is the identity."""

    name = "Reals"

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        return v


class NonNegative(Projection):
    """The non-negative orthant {u : u ≥ 0}: the projection is max(v, 0) entrywise."""

    name = "NonNegative"

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        _check_tensor(v, "NonNegative")
        return torch.clamp(v, min=0)


@dataclass(frozen=True)
class Box(Projection):
    """The box {u : lower ≤ u ≤ upper}: the projection clips v entrywise.

    Args:
        lower: Lower bound, a float or a flat tensor like the point (−inf allowed).
        upper: Upper bound, a float or a flat tensor like the point (+inf allowed).

    Raises:
        InvalidArgumentError: A bound is not a number or is NaN, or lower > upper somewhere,
            so the box is empty.
    """

    lower: float | torch.Tensor
    upper: float | torch.Tensor
    name = "Box"

    def __post_init__(self) -> None:
        try:
            lower = torch.as_tensor(self.lower, dtype=torch.float64)
            upper = torch.as_tensor(self.upper, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise InvalidArgumentError(
                f"Box: lower and upper must be floats or real tensors, got "
                f"{type(self.lower).__name__} and {type(self.upper).__name__}"
            ) from error
        if bool(torch.isnan(lower).any()) or bool(torch.isnan(upper).any()):
            raise InvalidArgumentError("Box: lower and upper must not contain NaN")
        try:
            empty = lower > upper
        except RuntimeError as error:
            raise InvalidArgumentError(
                f"Box: lower of shape {tuple(lower.shape)} and upper of shape "
                f"{tuple(upper.shape)} do not broadcast: {error}"
            ) from error
        if bool(empty.any()):
            index = int(torch.nonzero(empty.reshape(-1))[0]) if empty.ndim else 0
            low = float(lower.reshape(-1)[index]) if lower.ndim else float(lower)
            high = float(upper.reshape(-1)[index]) if upper.ndim else float(upper)
            raise InvalidArgumentError(
                f"Box: lower > upper at entry {index} ({low} > {high}), so the box is empty "
                "and nothing can be projected onto it; pass lower <= upper"
            )

    def check(self, like: torch.Tensor, argument: str) -> None:
        for label, bound in (("lower", self.lower), ("upper", self.upper)):
            if isinstance(bound, torch.Tensor) and bound.ndim > 0 and bound.shape != like.shape:
                raise InvalidArgumentError(
                    f"{argument}: Box.{label} has shape {tuple(bound.shape)} but the point has "
                    f"shape {tuple(like.shape)}; pass a float or a tensor of the point's shape"
                )

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        _check_tensor(v, "Box")
        lower = torch.as_tensor(self.lower, dtype=v.dtype, device=v.device)
        upper = torch.as_tensor(self.upper, dtype=v.dtype, device=v.device)
        return torch.minimum(torch.maximum(v, lower), upper)


@dataclass(frozen=True)
class Simplex(Projection):
    """The scaled probability simplex {u : u ≥ 0, Σ u = radius}.

    The projection is u = max(v − τ, 0) with the threshold τ that makes the
    entries sum to ``radius``. τ is found without sorting: bisection on the
    decreasing function τ ↦ Σ max(v − τ, 0) brackets it, and τ is then solved
    exactly on the support {v > τ} that the bracket identifies.

    Args:
        radius: The sum of the entries, > 0.

    Raises:
        InvalidArgumentError: ``radius`` is not a finite number > 0.
    """

    radius: float = 1.0
    name = "Simplex"

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, int | float):
            raise InvalidArgumentError(
                f"Simplex: radius must be a number > 0, got {type(self.radius).__name__}"
            )
        if not self.radius > 0 or self.radius == float("inf"):
            raise InvalidArgumentError(
                f"Simplex: radius must be finite and > 0, got {self.radius!r}; "
                "the simplex with radius <= 0 is empty or a single point"
            )

    def check(self, like: torch.Tensor, argument: str) -> None:
        if like.ndim != 1:
            raise InvalidArgumentError(
                f"{argument}: Simplex needs a flat point, got shape {tuple(like.shape)}"
            )

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        _check_tensor(v, "Simplex")
        if v.ndim != 1 or v.numel() == 0:
            raise InvalidArgumentError(
                f"Simplex projects a non-empty flat tensor, got shape {tuple(v.shape)}"
            )
        if not bool(torch.isfinite(v).all()):
            raise InvalidArgumentError("Simplex projects finite values, got NaN or infinity")
        radius = self.radius
        # Σ max(v − τ, 0) is at least radius at τ = min v − radius/n and zero at τ = max v.
        low = v.min() - radius / v.numel()
        high = v.max()
        for _ in range(_SIMPLEX_BISECTION_STEPS):
            middle = 0.5 * (low + high)
            above = torch.clamp(v - middle, min=0).sum() > radius
            low = torch.where(above, middle, low)
            high = torch.where(above, high, middle)
        support = v > low
        threshold = (v[support].sum() - radius) / support.sum()
        return torch.clamp(v - threshold, min=0)


def as_projection(value: Projection | Callable[[torch.Tensor], torch.Tensor] | None, argument: str):
    """Return a projection for ``value``: a shipped set, a checked user callable, or Reals for None.

    Raises:
        InvalidArgumentError: ``value`` is neither a set nor callable, or is a set class
            instead of an instance.
    """
    if value is None:
        return Reals()
    if isinstance(value, Projection):
        return value
    if isinstance(value, type) and issubclass(value, Projection):
        raise InvalidArgumentError(
            f"{argument} must be a set instance such as {value.__name__}(), got the class "
            f"{value.__name__} itself"
        )
    if callable(value):
        return _UserProjection(value, argument)
    raise InvalidArgumentError(
        f"{argument} must be Box(lower, upper), Simplex(), NonNegative(), a callable that "
        f"projects a flat tensor, or None for the whole space, got {type(value).__name__}"
    )


class _UserProjection(Projection):
    """A user's projection callable, with its output checked against its input."""

    name = "callable"

    def __init__(self, function: Callable[[torch.Tensor], torch.Tensor], argument: str) -> None:
        self._function = function
        self._argument = argument

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        output = self._function(v)
        if not isinstance(output, torch.Tensor) or output.shape != v.shape:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise InvalidArgumentError(
                f"{self._argument}: the projection callable must return a tensor of shape "
                f"{tuple(v.shape)} like its input, got {shape}"
            )
        if not bool(torch.isfinite(output).all()):
            raise InvalidArgumentError(
                f"{self._argument}: the projection callable returned NaN or infinite values"
            )
        return output
