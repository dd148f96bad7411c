"""The bilevel problem that every solver of this package takes, and the records they return.

The problem is

    min_{x ∈ X, y ∈ Y} F(x, y)  subject to  y ∈ argmin_{θ ∈ Y} { f(x, θ) : g(x, θ) ≤ 0 },

with an upper objective F, a lower objective f and optional lower-level
constraints g that may couple x and y. X and Y are simple sets, given by their
Euclidean projections (:mod:`hessframe_bilevel.projections`).
"""

from __future__ import annotations

import logging
import time
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
    "BestIterate",
    "BilevelHistory",
    "BilevelProblem",
    "BilevelResult",
    "Box",
    "IterationReport",
    "NonNegative",
    "Reals",
    "Simplex",
]

logger = logging.getLogger(__name__)

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

    def check_point(
        self, x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x0", "y0")
    ) -> None:
        """Raise InvalidArgumentError unless x and y are finite flat floating tensors.

        They must share dtype and device, fit the sets X and Y, and be accepted by F, f
        and g: a function that raises on them (for example on a length mismatch) is
        reported with the shapes of x and y. ``names`` are the argument names that the
        messages give to x and y.
        """
        for name, value in zip(names, (x, y), strict=True):
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
                f"{names[0]} and {names[1]} must share dtype and device, got {x.dtype} on "
                f"{x.device} and "
                f"{y.dtype} on {y.device}"
            )
        self._x_projection.check(x, "x_set")
        self._y_projection.check(y, "y_set")
        self._check_shapes(x, y, names)

    def _check_shapes(self, x: torch.Tensor, y: torch.Tensor, names: tuple[str, str]) -> None:
        """Evaluate F, f and g once at the start, so a shape mismatch is reported as such."""
        functions = [("upper objective F", self.upper), ("lower objective f", self.lower)]
        if self.constraints is not None:
            functions.append(("constraints g", self.constraints))
        for name, function in functions:
            try:
                with torch.no_grad():
                    function(x.detach(), y.detach())
            except (RuntimeError, IndexError, ValueError, TypeError) as error:
                raise InvalidArgumentError(
                    f"{name} failed at {names[0]} of shape {tuple(x.shape)} and {names[1]} of "
                    f"shape {tuple(y.shape)}: {type(error).__name__}: {error}. Check that it "
                    f"takes (x, y) and that {names[0]} and {names[1]} have the lengths the "
                    "problem's functions expect"
                ) from error

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
                of the dtype of x and of the expected length.
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
        if value.dtype != x.dtype:
            raise InvalidArgumentError(
                f"constraints g must return a tensor of the dtype {x.dtype} of x and y, got "
                f"{value.dtype}"
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
        """Project (x, y) onto C, or onto X × Y when ``project_feasible`` is None.

        Raises:
            InvalidArgumentError: ``project_feasible`` returns something other than a pair
                of tensors of the input shapes.
        """
        if self.project_feasible is None:
            return self.project_x(x), self.project_y(y)
        output = self.project_feasible(x, y)
        if (
            not isinstance(output, tuple)
            or len(output) != 2
            or not all(isinstance(part, torch.Tensor) for part in output)
            or output[0].shape != x.shape
            or output[1].shape != y.shape
        ):
            raise InvalidArgumentError(
                "project_feasible must return a pair (x, y) of tensors with the shapes "
                f"{tuple(x.shape)} and {tuple(y.shape)} of its inputs"
            )
        return output

    def check_projected(
        self, x: torch.Tensor, y: torch.Tensor, violation: float, iteration: int
    ) -> None:
        """Raise InvalidArgumentError when ``project_feasible`` left (x, y) outside C.

        Args:
            x: The projected x.
            y: The projected y.
            violation: max_i max(g_i(x, y), 0) there, as :meth:`constraint_violation` returns.
            iteration: The iteration, named in the message.

        The violation is accepted up to √ε·(1 + max(‖x‖∞, ‖y‖∞)), with ε the machine
        epsilon of the dtype, to allow for rounding in g.
        """
        if self.project_feasible is None or violation == 0.0:
            return
        scale = 1.0 + max(float(x.detach().abs().max()), float(y.detach().abs().max()))
        tolerance = torch.finfo(x.dtype).eps ** 0.5 * scale
        if violation > tolerance:
            raise InvalidArgumentError(
                f"project_feasible returned a point outside C at iteration {iteration}: "
                f"max_i g_i(x, y) = {violation:.3e} > {tolerance:.1e}. It must map (x, y) into "
                "C = {(x, y) in X x Y : g(x, y) <= 0}"
            )

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
                g = self.constraint_values(
                    x.detach(), y_leaf, iteration, expected=multipliers.shape[0]
                )
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
        stopped_by_callback: The run ended because the ``callback`` returned True.
    """

    x: torch.Tensor
    y: torch.Tensor
    iterations: int
    converged: bool
    history: BilevelHistory
    multipliers: torch.Tensor | None = None
    theta: torch.Tensor | None = None
    z: torch.Tensor | None = None
    stopped_by_callback: bool = False


@dataclass(frozen=True)
class IterationReport:
    """The measures of one iterate, passed to a solver's ``callback`` as the run goes.

    Attributes:
        iteration: k, 0 for the start.
        upper_objective: F(x_k, y_k).
        lower_gap: The lower-level optimality gap at (x_k, y_k), as in :class:`BilevelHistory`.
        constraint_violation: max_i max(g_i(x_k, y_k), 0), zero without constraints.
        x: x_k, detached. The solver does not change it later, but a callback that keeps
            it past the call should still not modify it in place.
        y: y_k, detached.
        elapsed_s: Seconds since the solver started, measured with ``time.perf_counter``.
    """

    iteration: int
    upper_objective: float
    lower_gap: float
    constraint_violation: float
    x: torch.Tensor
    y: torch.Tensor
    elapsed_s: float


#: A per-iteration callback: it receives each iterate's report, the start included, and
#: returns True to stop the solver after that iterate (None or False to go on).
IterationCallback = Callable[[IterationReport], bool | None]


class BestIterate:
    """A callback that keeps the iterate with the lowest upper objective F seen so far.

    When F is a validation loss, as in the SVM and hyper-cleaning problems, this is
    early stopping by validation loss: the run goes on, and the best iterate is kept.

    Attributes:
        iteration: The iteration of the best iterate, or None before the first call.
        upper_objective: F at the best iterate (infinity before the first call).
        x: x at the best iterate (a copy), or None before the first call.
        y: y at the best iterate (a copy), or None before the first call.
    """

    def __init__(self) -> None:
        self.iteration: int | None = None
        self.upper_objective = float("inf")
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None

    def __call__(self, report: IterationReport) -> None:
        if report.upper_objective < self.upper_objective:
            self.iteration = report.iteration
            self.upper_objective = report.upper_objective
            self.x = report.x.clone()
            self.y = report.y.clone()


class HistoryRecorder:
    """Collects the per-iteration measures of one run into a :class:`BilevelHistory`.

    Each recorded iterate is also logged at DEBUG level and passed to the run's
    ``callback`` as an :class:`IterationReport`.
    """

    def __init__(
        self, problem: BilevelProblem, solver: str, callback: IterationCallback | None = None
    ) -> None:
        if callback is not None and not callable(callback):
            raise InvalidArgumentError(
                f"{solver}: callback must be None or a callable taking an IterationReport, "
                f"got {type(callback).__name__}"
            )
        self._problem = problem
        self._solver = solver
        self._callback = callback
        self._start = time.perf_counter()
        self._upper: list[float] = []
        self._gap: list[float] = []
        self._violation: list[float] = []

    def record(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        iteration: int,
        multipliers: torch.Tensor | None = None,
    ) -> bool:
        """Append F, the lower-level gap and the constraint violation at (x, y).

        Returns:
            True when the callback asks the solver to stop after this iterate.
        """
        x, y = x.detach(), y.detach()
        with torch.no_grad():
            upper = float(self._problem.upper_value(x, y, iteration))
        gap = self._problem.lower_stationarity(x, y, iteration, multipliers)
        violation = self._problem.constraint_violation(x, y, iteration)
        self._upper.append(upper)
        self._gap.append(gap)
        self._violation.append(violation)
        logger.debug(
            "%s: iteration %d, F = %.8g, lower gap %.3e, violation %.3e",
            self._solver,
            iteration,
            upper,
            gap,
            violation,
        )
        if self._callback is None:
            return False
        report = IterationReport(
            iteration, upper, gap, violation, x, y, time.perf_counter() - self._start
        )
        try:
            return bool(self._callback(report))
        except Exception as error:
            error.add_note(f"{self._solver}: raised by the callback at iteration {iteration}")
            raise

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


def x_step_converged(x: torch.Tensor, x_next: torch.Tensor, tol: float) -> bool:
    """Return whether the outer step from ``x`` to ``x_next`` is within ``tol * (1 + |x|)``."""
    change = float(torch.linalg.vector_norm(x_next - x))
    scale = 1.0 + float(torch.linalg.vector_norm(x))
    return change <= tol * scale


def check_positive(value: object, name: str, solver: str) -> float:
    """Return ``value`` as a float, or raise InvalidArgumentError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{solver}: {name} must be a number > 0, got {value!r}")
    if not (value > 0 and value != float("inf")):
        raise InvalidArgumentError(f"{solver}: {name} must be finite and > 0, got {value!r}")
    return float(value)


def check_problem(problem: object, solver: str) -> BilevelProblem:
    """Return ``problem``, or raise InvalidArgumentError unless it is a BilevelProblem."""
    if not isinstance(problem, BilevelProblem):
        raise InvalidArgumentError(
            f"{solver}: problem must be a BilevelProblem, got {type(problem).__name__}"
        )
    return problem


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
