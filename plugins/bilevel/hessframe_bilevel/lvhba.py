"""LV-HBA: a single-loop, Hessian-free method for bilevel problems with coupled lower constraints.

Reference: W. Yao, C. Yu, S. Zeng and J. Zhang, "Constrained Bi-Level
Optimization: Proximal Lagrangian Value function Approach and Hessian-free
Algorithm", ICLR 2024 (arXiv:2401.16164).

The lower level min_{θ ∈ Y} { f(x, θ) : g(x, θ) ≤ 0 } is replaced by its
proximal Lagrangian value function

    v_γ(x, y, z) = min_{θ ∈ Y} max_{λ ≥ 0} L(θ, λ),
    L(θ, λ) = f(x, θ) + λᵀ g(x, θ) + 1/(2γ₁) ‖θ − y‖² − 1/(2γ₂) ‖λ − z‖²,

and the bilevel problem by the single-level problem

    min_{(x, y) ∈ C, z ≥ 0} F(x, y)  s.t.  f(x, y) − v_γ(x, y, z) ≤ 0,
    C = {(x, y) ∈ X × Y : g(x, y) ≤ 0},

which is equivalent when the lower level is convex. Iteration k runs, with
c_k = c̲ (k + 1)^p:

1. One projected gradient step on the saddle point (θ, λ) of L:

       θ_{k+1} = Proj_Y(θ_k − η (∇_θ f(x_k, θ_k) + ∇_θ g(x_k, θ_k) λ_k + (θ_k − y_k)/γ₁)),
       λ_{k+1} = Proj_Z(λ_k + η (g(x_k, θ_k) − (λ_k − z_k)/γ₂)),

   with Z = {λ : 0 ≤ λ ≤ r} (r = ∞ unless ``multiplier_bound`` is set).
2. One projected step on the penalised objective F/c_k + f − v_γ, whose
   gradient is Hessian-free by Danskin's theorem at (θ_{k+1}, λ_{k+1}):

       d_x = ∇_x F(x_k, y_k)/c_k + ∇_x f(x_k, y_k)
             − ∇_x f(x_k, θ_{k+1}) − ∇_x g(x_k, θ_{k+1}) λ_{k+1},
       d_y = ∇_y F(x_k, y_k)/c_k + ∇_y f(x_k, y_k) − (y_k − θ_{k+1})/γ₁,
       (x_{k+1}, y_{k+1}) = Proj_C((x_k, y_k) − α (d_x, d_y)).

3. The proximal centre of the multipliers follows λ:

       d_z = (z_k − λ_{k+1})/γ₂,   z_{k+1} = Proj_Z(z_k − β d_z).

Every update is applied to the state (none is computed and dropped), λ and z
are projected onto Z at every step, and both proximal terms enter divided by
γ, as 1/(2γ) ‖·‖². The tests pin each of these points.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from hessframe.errors import InvalidArgumentError
from hessframe_bilevel.problem import (
    BilevelProblem,
    BilevelResult,
    HistoryRecorder,
    IterationCallback,
    check_count,
    check_positive,
    check_problem,
)

logger = logging.getLogger(__name__)

SOLVER = "lvhba"


@dataclass(frozen=True)
class LVHBAConfig:
    """Step sizes and proximal parameters of LV-HBA.

    The defaults solve both toys of :mod:`hessframe_bilevel.toys` to a relative
    error below 1e-3, in 6000 iterations (coupled) and 10000 (quadratic). The
    lower-level Hessians there have eigenvalues of at most 2, and α = 0.8
    diverged on the quadratic toy, so scale ``alpha`` and ``eta`` down as 1/L
    for stiffer objectives.

    Attributes:
        alpha: Step size α of the (x, y) update.
        beta: Step size β of the z update.
        eta: Step size η of the (θ, λ) update.
        gamma1: γ₁ > 0, the proximal parameter of θ around y.
        gamma2: γ₂ > 0, the proximal parameter of λ around z.
        c_lower: c̲ > 0 in c_k = c̲ (k + 1)^p, the weight 1/c_k of F.
        p: Exponent p of c_k, in [0, 1/2) as the convergence theory of the
            reference requires.
        multiplier_bound: r, the upper bound of λ and z, or None for none.
    """

    alpha: float = 0.5
    beta: float = 0.5
    eta: float = 0.5
    gamma1: float = 4.0
    gamma2: float = 4.0
    c_lower: float = 10.0
    p: float = 0.49
    multiplier_bound: float | None = None

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "eta", "gamma1", "gamma2", "c_lower"):
            check_positive(getattr(self, name), name, SOLVER)
        if isinstance(self.p, bool) or not isinstance(self.p, int | float) or not 0 <= self.p < 0.5:
            raise InvalidArgumentError(f"{SOLVER}: p must be a number in [0, 0.5), got {self.p!r}")
        if self.multiplier_bound is not None:
            check_positive(self.multiplier_bound, "multiplier_bound", SOLVER)

    def penalty(self, iteration: int) -> float:
        """Return c_k = c̲ (k + 1)^p for the 0-based iteration k."""
        return self.c_lower * (iteration + 1) ** self.p


@dataclass(frozen=True)
class LVHBAState:
    """The iterate (x, y, θ, λ, z) of LV-HBA, all flat tensors (λ and z of length m)."""

    x: torch.Tensor
    y: torch.Tensor
    theta: torch.Tensor
    multipliers: torch.Tensor
    z: torch.Tensor


def initial_state(
    problem: BilevelProblem, x0: torch.Tensor, y0: torch.Tensor
) -> tuple[LVHBAState, int]:
    """Return the start (x, y) = Proj_C(x0, y0), θ = y, λ = z = 0, and the number m of g."""
    problem.check_point(x0, y0)
    x, y = problem.project_pair(problem.project_x(x0.detach()), problem.project_y(y0.detach()))
    num_constraints = 0
    if problem.has_constraints:
        with torch.no_grad():
            num_constraints = problem.constraint_values(x, y, 0).shape[0]
    zeros = x.new_zeros(num_constraints)
    return LVHBAState(x, y, y.clone(), zeros, zeros.clone()), num_constraints


def lvhba_step(
    problem: BilevelProblem, state: LVHBAState, iteration: int, config: LVHBAConfig
) -> LVHBAState:
    """Run iteration ``iteration`` (0-based k) of LV-HBA from ``state`` and return the next state.

    The equations are those of the module docstring.
    """
    x, y = state.x.detach(), state.y.detach()
    m = state.multipliers.shape[0]
    theta, multipliers = _saddle_step(problem, state, iteration, config, m)

    c_k = config.penalty(iteration)
    direction_x, grad_merit_y = _penalised_gradients(
        problem, x, y, theta, multipliers, c_k, iteration, m
    )
    direction_y = grad_merit_y - (y - theta) / config.gamma1
    x_next, y_next = problem.project_pair(
        x - config.alpha * direction_x, y - config.alpha * direction_y
    )

    direction_z = (state.z - multipliers) / config.gamma2
    z_next = _project_multipliers(state.z - config.beta * direction_z, config)
    return LVHBAState(x_next, y_next, theta, multipliers, z_next)


def lvhba(
    problem: BilevelProblem,
    x0: torch.Tensor,
    y0: torch.Tensor,
    *,
    config: LVHBAConfig | None = None,
    max_iter: int = 10_000,
    tol: float = 1e-10,
    callback: IterationCallback | None = None,
) -> BilevelResult:
    """Solve a bilevel problem, with or without coupled lower constraints, by LV-HBA.

    Args:
        problem: The bilevel problem. Its lower level should be convex in y
            for the single-level reformulation to be exact.
        x0: Start of x, a flat floating tensor; it is projected onto X first.
        y0: Start of y, like ``x0``; θ starts at y, λ and z at zero.
        config: Step sizes and proximal parameters; :class:`LVHBAConfig` defaults if None.
        max_iter: Iterations at most.
        tol: Stop when ‖(x_{k+1}, y_{k+1}) − (x_k, y_k)‖ ≤ tol·(1 + ‖(x_k, y_k)‖) and the
            constraint violation is at most ``tol``; ``converged`` reports whether that happened.
        callback: Called with an :class:`~hessframe_bilevel.problem.IterationReport` of
            the start and of every iterate as the run goes; returning True stops the run
            after that iterate.

    Returns:
        A :class:`~hessframe_bilevel.problem.BilevelResult` with x, y, θ, λ, z and the
        history of F, the lower-level KKT residual at λ and the constraint violation.

    Raises:
        InvalidArgumentError: A start, an option or a function's output is invalid, or
            ``project_feasible`` returns a point outside C.
        NonFiniteError: F, f or g is NaN or infinite at some iteration.
    """
    check_problem(problem, SOLVER)
    config = LVHBAConfig() if config is None else config
    if not isinstance(config, LVHBAConfig):
        raise InvalidArgumentError(
            f"{SOLVER}: config must be an LVHBAConfig or None, got {type(config).__name__}"
        )
    max_iter = check_count(max_iter, "max_iter", SOLVER)
    tol = check_positive(tol, "tol", SOLVER)
    if problem.has_constraints and problem.project_feasible is None:
        raise InvalidArgumentError(
            f"{SOLVER}: the problem has lower constraints g but no project_feasible; LV-HBA "
            "keeps (x, y) in C = {(x, y) in X x Y : g(x, y) <= 0}, because outside C the "
            "penalty f - v_gamma is unbounded below, so pass the projection onto C"
        )
    recorder = HistoryRecorder(problem, SOLVER, callback)
    state, _ = initial_state(problem, x0, y0)
    stop = recorder.record(state.x, state.y, 0, state.multipliers)
    problem.check_projected(state.x, state.y, recorder.last_violation, 0)

    converged = False
    iterations = 0
    for k in range(0 if stop else max_iter):
        next_state = lvhba_step(problem, state, k, config)
        iterations = k + 1
        stop = recorder.record(next_state.x, next_state.y, iterations, next_state.multipliers)
        problem.check_projected(next_state.x, next_state.y, recorder.last_violation, iterations)
        step = math.hypot(
            float(torch.linalg.vector_norm(next_state.x - state.x)),
            float(torch.linalg.vector_norm(next_state.y - state.y)),
        )
        scale = 1.0 + math.hypot(
            float(torch.linalg.vector_norm(state.x)), float(torch.linalg.vector_norm(state.y))
        )
        state = next_state
        if step <= tol * scale and recorder.last_violation <= tol:
            converged = True
            break
        if stop:
            break

    history = recorder.history()
    logger.info(
        "lvhba: %d iterations, F = %.6g, lower gap %.3g, violation %.3g, converged=%s",
        iterations,
        history.upper_objective[-1],
        history.lower_gap[-1],
        history.constraint_violation[-1],
        converged,
    )
    return BilevelResult(
        x=state.x,
        y=state.y,
        iterations=iterations,
        converged=converged,
        history=history,
        multipliers=state.multipliers,
        theta=state.theta,
        z=state.z,
        stopped_by_callback=stop and not converged,
    )


def _saddle_step(
    problem: BilevelProblem, state: LVHBAState, iteration: int, config: LVHBAConfig, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (θ_{k+1}, λ_{k+1}), one projected descent-ascent step on L(θ, λ)."""
    x, y = state.x.detach(), state.y.detach()
    with torch.enable_grad():
        theta = state.theta.detach().requires_grad_(True)
        lagrangian = problem.lower_value(x, theta, iteration)
        constraint = None
        if m:
            constraint = problem.constraint_values(x, theta, iteration, expected=m)
            lagrangian = lagrangian + state.multipliers.detach() @ constraint
        (gradient,) = torch.autograd.grad(lagrangian, theta)
    theta_gradient = gradient + (state.theta - y) / config.gamma1
    theta_next = problem.project_y(state.theta - config.eta * theta_gradient)

    if not m:
        return theta_next, state.multipliers
    multiplier_ascent = constraint.detach() - (state.multipliers - state.z) / config.gamma2
    multipliers_next = _project_multipliers(
        state.multipliers + config.eta * multiplier_ascent, config
    )
    return theta_next, multipliers_next


def _penalised_gradients(
    problem: BilevelProblem,
    x: torch.Tensor,
    y: torch.Tensor,
    theta: torch.Tensor,
    multipliers: torch.Tensor,
    c_k: float,
    iteration: int,
    m: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (d_x, ∇_y (F/c_k + f)(x, y)) by one backward pass.

    The pass differentiates F(x, y)/c_k + f(x, y) − f(x, θ) − λᵀ g(x, θ) with θ and λ
    held fixed: its x-gradient is d_x of the module docstring, and its y-gradient is
    d_y without the proximal term. A gradient of a variable that the value does not
    depend on is zero.
    """
    with torch.enable_grad():
        x_leaf = x.detach().requires_grad_(True)
        y_leaf = y.detach().requires_grad_(True)
        merit = problem.upper_value(x_leaf, y_leaf, iteration) / c_k + problem.lower_value(
            x_leaf, y_leaf, iteration
        )
        value = problem.lower_value(x_leaf, theta.detach(), iteration)
        if m:
            constraint = problem.constraint_values(x_leaf, theta.detach(), iteration, expected=m)
            value = value + multipliers.detach() @ constraint
        grad_x, grad_y = torch.autograd.grad(merit - value, (x_leaf, y_leaf), allow_unused=True)
    grad_x = torch.zeros_like(x) if grad_x is None else grad_x
    grad_y = torch.zeros_like(y) if grad_y is None else grad_y
    return grad_x, grad_y


def _project_multipliers(values: torch.Tensor, config: LVHBAConfig) -> torch.Tensor:
    """Return the projection onto Z = {0 ≤ λ ≤ r}."""
    if config.multiplier_bound is None:
        return torch.clamp(values, min=0)
    return torch.clamp(values, min=0, max=config.multiplier_bound)
