"""The bilevel problem that every solver of this package takes, and the records they return.

The problem is

    min_{x ∈ X, y ∈ Y} F(x, y)  subject to  y ∈ argmin_{θ ∈ Y} { f(x, θ) : g(x, θ) ≤ 0 },

with an upper objective F, a lower objective f and optional lower-level
constraints g that may couple x and y. X and Y are simple sets, given by their
Euclidean projections (:mod:`hessframe_bilevel.projections`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hessframe.errors import InvalidArgumentError, NonFiniteError
from hessframe_bilevel.projections import (
    Box,
    NonNegative,
    Projection,
    Reals,
    Simplex,
    as_projection,
)

__all__ = [
    "BilevelHistory",
    "BilevelProblem",
    "BilevelResult",
    "Box",
    "NonNegative",
    "Reals",
    "Simplex",
]

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PairProjection = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class BilevelProblem:
    """A bilevel problem on flat torch tensors x and y, on the CPU or CUDA.

    NOTE: only CPU runs are tested so far, and the CUDA comparison test has not run on a GPU.

    Args:
        upper: F(x, y), returning a 0-d tensor.
        lower: f(x, y), returning a 0-d tensor, differentiable twice in y for
            the implicit solver.
        constraints: g(x, y), returning a 1-D tensor of the m lower-level
            constraints g(x, y) ≤ 0, or None when the lower level has none.
        x_set: X, as ``Box(lower, upper)``, ``Simplex()``, ``NonNegative()``, a
            callable projecting a flat tensor, or None for the whole space.
        y_set: Y, in the same forms.
        project_feasible: Projection onto C = {(x, y) ∈ X × Y : g(x, y) ≤ 0},
            a callable (x, y) -> (x, y). LV-HBA projects its (x, y) step onto C
            and requires it whenever ``constraints`` is given.

    Raises:
        InvalidArgumentError: A function is not callable or a set is invalid.
    """

    upper: Objective
    lower: Objective
    constraints: Objective | None = None
    x_set: Projection | Callable | None = None
    y_set: Projection | Callable | None = None
    project_feasible: PairProjection | None = None
    _x_projection: Projection = field(init=False, repr=False)
    _y_projection: Projection = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("upper", "lower"):
            if not callable(getattr(self, name)):
                raise InvalidArgumentError(
                    f"{name} must be a callable (x, y) -> 0-d tensor, "
                    f"got {type(getattr(self, name)).__name__}"
                )
        if self.constraints is not None and not callable(self.constraints):
            raise InvalidArgumentError(
                "constraints must be None or a callable (x, y) -> 1-D tensor of g(x, y) <= 0, "
                f"got {type(self.constraints).__name__}"
            )
        if self.project_feasible is not None and not callable(self.project_feasible):
            raise InvalidArgumentError(
                "project_feasible must be None or a callable (x, y) -> (x, y), "
                f"got {type(self.project_feasible).__name__}"
            )
        object.__setattr__(self, "_x_projection", as_projection(self.x_set, "x_set"))
        object.__setattr__(self, "_y_projection", as_projection(self.y_set, "y_set"))

    @property
    def has_constraints(self) -> bool:
        """Whether the lower level has constraints g."""
        return self.constraints is not None

    # ------------------------------------------------------------------
    # Checked evaluations

    def check_point(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Raise InvalidArgumentError unless x and y are finite flat floating tensors.

        They must share dtype and device, and fit the sets X and Y.
        """
        for name, value in (("x0", x), ("y0", y)):
            if not isinstance(value, torch.Tensor):
                raise InvalidArgumentError(
                    f"{name} must be a flat floating torch.Tensor, got {type(value).__name__}"
                )
            if value.ndim != 1 or value.numel() == 0 or not value.dtype.is_floating_point:
                raise InvalidArgumentError(
                    f"{name} must be a non-empty flat floating tensor, got shape "
                    f"{tuple(value.shape)} and dtype {value.dtype}"
                )
            if not bool(torch.isfinite(value).all()):
                raise InvalidArgumentError(f"{name} contains NaN or infinite values")
        if x.dtype != y.dtype or x.device != y.device:
            raise InvalidArgumentError(
                f"x0 and y0 must share dtype and device, got {x.dtype} on {x.device} and "
                f"{y.dtype} on {y.device}"
            )
        self._x_projection.check(x, "x_set")
        self._y_projection.check(y, "y_set")

    def upper_value(self, x: torch.Tensor, y: torch.Tensor, iteration: int) -> torch.Tensor:
        """Return F(x, y), checked to be a finite 0-d tensor."""
        return _checked_scalar(self.upper(x, y), "upper objective F", iteration)

    def lower_value(self, x: torch.Tensor, y: torch.Tensor, iteration: int) -> torch.Tensor:
        """Return f(x, y), checked to be a finite 0-d tensor."""
        return _checked_scalar(self.lower(x, y), "lower objective f", iteration)

    def constraint_values(
        self, x: torch.Tensor, y: torch.Tensor, iteration: int, expected: int | None = None
    ) -> torch.Tensor:
        """Return g(x, y), checked to be a finite 1-D tensor (of length ``expected`` if given).

        Raises:
            InvalidArgumentError: g is missing, or returns a value that is not a 1-D tensor
                of the expected length.
            NonFiniteError: g(x, y) contains NaN or infinity.
        """
        if self.constraints is None:
            raise InvalidArgumentError("constraint_values: the problem has no constraints g")
        value = self.constraints(x, y)
        if not isinstance(value, torch.Tensor) or value.ndim != 1:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InvalidArgumentError(
                f"constraints g must return a 1-D tensor of m constraint values g(x, y) <= 0, "
                f"got {shape} for x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)}"
            )
        if expected is not None and value.shape[0] != expected:
            raise InvalidArgumentError(
                f"constraints g returned shape {tuple(value.shape)} at iteration {iteration} "
                f"but shape ({expected},) before; g must return the same m constraints at "
                "every point"
            )
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteError(
                f"constraints g returned NaN or infinite values at iteration {iteration}"
            )
        return value

    def project_x(self, x: torch.Tensor) -> torch.Tensor:
        """Return the projection of x onto X."""
        return self._x_projection(x)

    def project_y(self, y: torch.Tensor) -> torch.Tensor:
        """Return the projection of y onto Y."""
        return self._y_projection(y)

    def project_pair(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project (x, y) onto C, or onto X × Y when ``project_feasible`` is None."""
        if self.project_feasible is None:
            return self.project_x(x), self.project_y(y)
        output = self.project_feasible(x, y)
        if (
            not isinstance(output, tuple)
            or len(output) != 2
            or output[0].shape != x.shape
            or output[1].shape != y.shape
        ):
            raise InvalidArgumentError(
                "project_feasible must return a pair (x, y) with the shapes "
                f"{tuple(x.shape)} and {tuple(y.shape)} of its inputs"
            )
        return output

    # ------------------------------------------------------------------
    # Measures recorded in every solver's history

    def lower_stationarity(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        iteration: int,
        multipliers: torch.Tensor | None = None,
    ) -> float:
        """Return the lower-level optimality gap at (x, y).

        Without constraints it is the projected-gradient residual
        ‖y − Proj_Y(y − ∇_y f(x, y))‖, which is zero exactly at the solutions of
        a convex lower level. With constraints and multipliers λ ≥ 0 it is
        ‖y − Proj_Y(y − ∇_y f − ∇_y g λ)‖ + |λᵀ g(x, y)|, the KKT residual at
        that multiplier estimate.
        """
        with torch.enable_grad():
            y_leaf = y.detach().requires_grad_(True)
            lagrangian = self.lower_value(x.detach(), y_leaf, iteration)
            complementarity = 0.0
            if self.constraints is not None and multipliers is not None:
                g = self.constraint_values(x.detach(), y_leaf, iteration)
                lagrangian = lagrangian + multipliers.detach() @ g
                complementarity = abs(float(multipliers.detach() @ g.detach()))
            (gradient,) = torch.autograd.grad(lagrangian, y_leaf)
        residual = y.detach() - self.project_y(y.detach() - gradient)
        return float(torch.linalg.vector_norm(residual)) + complementarity

    def constraint_violation(self, x: torch.Tensor, y: torch.Tensor, iteration: int) -> float:
        """Return max_i max(g_i(x, y), 0), zero when the problem has no constraints."""
        if self.constraints is None:
            return 0.0
        with torch.no_grad():
            g = self.constraint_values(x, y, iteration)
        return float(torch.clamp(g, min=0).max()) if g.numel() else 0.0


@dataclass(frozen=True)
class BilevelHistory:
    """Per-iteration record of a solver run, one entry per iteration (the start included).

    Attributes:
        upper_objective: F(x_k, y_k).
        lower_gap: The lower-level optimality gap of
            :meth:`BilevelProblem.lower_stationarity` at (x_k, y_k).
        constraint_violation: max_i max(g_i(x_k, y_k), 0), zero without constraints.
    """

    upper_objective: tuple[float, ...]
    lower_gap: tuple[float, ...]
    constraint_violation: tuple[float, ...]


@dataclass(frozen=True)
class BilevelResult:
    """The outcome of a bilevel solver.

    Attributes:
        x: The upper-level variable at the last iterate.
        y: The lower-level variable at the last iterate.
        iterations: Outer iterations run.
        converged: The solver's stopping test passed (see each solver).
        history: Per-iteration upper objective, lower-level gap and constraint violation.
        multipliers: LV-HBA only: λ, the multiplier estimate of g (None elsewhere).
        theta: LV-HBA only: θ, the proximal lower-level iterate (None elsewhere).
        z: LV-HBA only: z, the proximal centre of the multipliers (None elsewhere).
    """

    x: torch.Tensor
    y: torch.Tensor
    iterations: int
    converged: bool
    history: BilevelHistory
    multipliers: torch.Tensor | None = None
    theta: torch.Tensor | None = None
    z: torch.Tensor | None = None


class HistoryRecorder:
    """Collects the per-iteration measures of one run into a :class:`BilevelHistory`."""

    def __init__(self, problem: BilevelProblem) -> None:
        self._problem = problem
        self._upper: list[float] = []
        self._gap: list[float] = []
        self._violation: list[float] = []

    def record(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        iteration: int,
        multipliers: torch.Tensor | None = None,
    ) -> None:
        """Append F, the lower-level gap and the constraint violation at (x, y)."""
        with torch.no_grad():
            upper = float(self._problem.upper_value(x.detach(), y.detach(), iteration))
        self._upper.append(upper)
        self._gap.append(self._problem.lower_stationarity(x, y, iteration, multipliers))
        self._violation.append(
            self._problem.constraint_violation(x.detach(), y.detach(), iteration)
        )

    @property
    def last_violation(self) -> float:
        """The constraint violation recorded last."""
        return self._violation[-1]

    def history(self) -> BilevelHistory:
        """Return the frozen history recorded so far."""
        return BilevelHistory(tuple(self._upper), tuple(self._gap), tuple(self._violation))


def _checked_scalar(value: object, name: str, iteration: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidArgumentError(f"{name} must return a 0-d tensor, got {shape}")
    if not bool(torch.isfinite(value)):
        raise NonFiniteError(
            f"{name} is {float(value.detach())} at iteration {iteration}; check the objective "
            "and the step sizes, because a step that is too large makes the iterates diverge"
        )
    return value


def check_positive(value: object, name: str, solver: str) -> float:
    """Return ``value`` as a float, or raise InvalidArgumentError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{solver}: {name} must be a number > 0, got {value!r}")
    if not (value > 0 and value != float("inf")):
        raise InvalidArgumentError(f"{solver}: {name} must be finite and > 0, got {value!r}")
    return float(value)


def check_count(value: object, name: str, solver: str) -> int:
    """Return ``value``, or raise InvalidArgumentError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{solver}: {name} must be an integer >= 1, got {value!r}")
    return value


def reject_lower_constraints(problem: object, method: str) -> None:
    """Raise InvalidArgumentError unless ``problem`` is a BilevelProblem without constraints g.

    Args:
        problem: The problem given to the solver.
        method: The differentiation it is given to, named in the message
            (``"implicit"`` or ``"unrolled"``).
    """
    if not isinstance(problem, BilevelProblem):
        raise InvalidArgumentError(
            f"problem must be a BilevelProblem, got {type(problem).__name__}"
        )
    if problem.has_constraints:
        raise InvalidArgumentError(
            f"{method} differentiation here handles lower levels without constraints g; "
            "use lvhba for a problem with lower-level constraints"
        )
