"""Hypergradient descent by differentiating through K unrolled lower-level gradient steps.

The lower solution is replaced by K projected gradient steps from a start y₀,

    y_{j+1} = Proj_Y(y_j − s ∇_y f(x, y_j)),  j = 0, …, K − 1,

and the hypergradient by the exact gradient of F(x, y_K(x)) with respect to x,
computed by reverse-mode automatic differentiation through all K steps
(Maclaurin, Duvenaud and Adams, "Gradient-based hyperparameter optimization
through reversible learning", ICML 2015; Franceschi et al., "Forward and
reverse gradient-based hyperparameter optimization", ICML 2017). The graph of
all K steps is kept for the backward pass, so memory grows linearly with K:
this is the memory-hungry baseline against which the implicit and Hessian-free
methods are compared. The start y₀ is the previous outer iterate's y_K, held
constant (warm start without differentiation through it).
"""

from __future__ import annotations

import logging

import torch

from hessframe_bilevel.problem import (
    BilevelProblem,
    BilevelResult,
    HistoryRecorder,
    IterationCallback,
    check_count,
    check_positive,
    reject_lower_constraints,
    x_step_converged,
)

logger = logging.getLogger(__name__)

SOLVER = "unrolled_descent"


def unrolled_hypergradient(
    problem: BilevelProblem,
    x: torch.Tensor,
    y0: torch.Tensor,
    *,
    inner_steps: int = 50,
    inner_step: float = 0.5,
    iteration: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (d F(x, y_K(x))/dx, y_K) through K unrolled projected gradient steps from y0.

    Args:
        problem: A bilevel problem without lower constraints g.
        x: The upper-level variable.
        y0: Start of the inner steps, treated as a constant.
        inner_steps: K ≥ 1.
        inner_step: s, below 2/L for an L-smooth f(x, ·).
        iteration: The outer iteration, named in errors.

    Raises:
        InvalidArgumentError: The problem has lower constraints, x or y0 is not a finite
            flat tensor that F and f accept, or an option is invalid.
    """
    reject_lower_constraints(problem, "unrolled")
    problem.check_point(x, y0, ("x", "y0"))
    inner_steps = check_count(inner_steps, "inner_steps", SOLVER)
    inner_step = check_positive(inner_step, "inner_step", SOLVER)
    return _unrolled_hypergradient(problem, x, y0, inner_steps, inner_step, iteration)


def _unrolled_hypergradient(
    problem: BilevelProblem,
    x: torch.Tensor,
    y0: torch.Tensor,
    inner_steps: int,
    inner_step: float,
    iteration: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`unrolled_hypergradient` on arguments that the caller has checked."""
    with torch.enable_grad():
        x_leaf = x.detach().clone().requires_grad_(True)
        y = problem.project_y(y0.detach()).requires_grad_(True)
        for _ in range(inner_steps):
            lower = problem.lower_value(x_leaf, y, iteration)
            (gradient,) = torch.autograd.grad(lower, y, create_graph=True)
            y = problem.project_y(y - inner_step * gradient)
        upper = problem.upper_value(x_leaf, y, iteration)
        (hypergradient,) = torch.autograd.grad(upper, x_leaf, allow_unused=True)
    if hypergradient is None:
        hypergradient = torch.zeros_like(x)
    return hypergradient, y.detach()


def unrolled_descent(
    problem: BilevelProblem,
    x0: torch.Tensor,
    y0: torch.Tensor,
    *,
    step: float = 0.5,
    max_iter: int = 500,
    tol: float = 1e-10,
    inner_steps: int = 50,
    inner_step: float = 0.5,
    callback: IterationCallback | None = None,
) -> BilevelResult:
    """Minimise F(x, y_K(x)) over X by projected gradient descent through K unrolled steps.

    Args:
        problem: A bilevel problem without lower constraints g.
        x0: Start of x, a flat floating tensor.
        y0: Start of the first inner run; later runs start from the previous y_K.
        step: Step size of x.
        max_iter: Outer iterations at most.
        tol: Stop when ‖x_{k+1} − x_k‖ ≤ tol·(1 + ‖x_k‖); ``converged`` reports it.
        inner_steps: K, the unrolled lower-level steps per outer iteration.
        inner_step: s, the lower-level step size.
        callback: Called with an :class:`~hessframe_bilevel.problem.IterationReport` of
            the start and of every iterate as the run goes; returning True stops the run
            after that iterate.

    Returns:
        A :class:`~hessframe_bilevel.problem.BilevelResult`; its y is the last y_K and
        its history records F, the lower-level residual of y_K and the (zero)
        constraint violation.

    Raises:
        InvalidArgumentError: The problem has lower constraints, or an argument is invalid.
        NonFiniteError: F or f is NaN or infinite at some iteration.
    """
    reject_lower_constraints(problem, "unrolled")
    problem.check_point(x0, y0)
    step = check_positive(step, "step", SOLVER)
    tol = check_positive(tol, "tol", SOLVER)
    max_iter = check_count(max_iter, "max_iter", SOLVER)
    inner_steps = check_count(inner_steps, "inner_steps", SOLVER)
    inner_step = check_positive(inner_step, "inner_step", SOLVER)

    recorder = HistoryRecorder(problem, SOLVER, callback)
    x = problem.project_x(x0.detach())
    y = problem.project_y(y0.detach())
    stop = recorder.record(x, y, 0)
    converged = False
    iterations = 0
    for k in range(0 if stop else max_iter):
        hypergradient, y = _unrolled_hypergradient(problem, x, y, inner_steps, inner_step, k)
        x_next = problem.project_x(x - step * hypergradient)
        iterations = k + 1
        stop = recorder.record(x_next, y, iterations)
        converged = x_step_converged(x, x_next, tol)
        x = x_next
        if converged or stop:
            break

    history = recorder.history()
    logger.info(
        "unrolled_descent: %d iterations, F = %.6g, lower residual %.3g, converged=%s",
        iterations,
        history.upper_objective[-1],
        history.lower_gap[-1],
        converged,
    )
    return BilevelResult(
        x, y, iterations, converged, history, stopped_by_callback=stop and not converged
    )
