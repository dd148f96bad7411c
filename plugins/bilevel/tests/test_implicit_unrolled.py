"""Implicit and unrolled hypergradients against finite differences and closed-form optima."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel.implicit import implicit_descent, implicit_hypergradient, solve_lower
from hessframe_bilevel.problem import BilevelProblem
from hessframe_bilevel.toys import coupled_toy, quadratic_toy
from hessframe_bilevel.unrolled import unrolled_descent, unrolled_hypergradient

from hessframe.errors import InvalidArgumentError


def relative_error(result, toy) -> float:
    error = torch.cat([result.x - toy.x_star, result.y - toy.y_star])
    reference = torch.cat([toy.x_star, toy.y_star])
    return float(torch.linalg.vector_norm(error) / torch.linalg.vector_norm(reference))


def nonquadratic_problem() -> BilevelProblem:
    """A strongly convex, non-quadratic lower level and a non-quadratic upper level."""
    generator = torch.Generator().manual_seed(3)
    coupling = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(4, generator=generator, dtype=torch.float64)

    def lower(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * y.square().sum() + torch.log(torch.cosh(y - coupling @ x)).sum()

    def upper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sin(x).sum() + 0.5 * (y - target).square().sum() + (x * y[:3]).sum()

    return BilevelProblem(upper=upper, lower=lower)


def reduced_objective(problem: BilevelProblem, x: torch.Tensor) -> float:
    y = solve_lower(problem, x, torch.zeros(4, dtype=torch.float64), tol=1e-14).y
    return float(problem.upper(x, y))


def test_implicit_hypergradient_matches_central_differences():
    problem = nonquadratic_problem()
    x = torch.tensor([0.3, -0.7, 0.5], dtype=torch.float64)
    y = solve_lower(problem, x, torch.zeros(4, dtype=torch.float64), tol=1e-14).y
    gradient = implicit_hypergradient(problem, x, y, cg_tol=1e-14).gradient

    step = 1e-5
    finite_differences = torch.empty(3, dtype=torch.float64)
    for i in range(3):
        offset = torch.zeros(3, dtype=torch.float64)
        offset[i] = step
        finite_differences[i] = (
            reduced_objective(problem, x + offset) - reduced_objective(problem, x - offset)
        ) / (2 * step)
    torch.testing.assert_close(gradient, finite_differences, atol=1e-8, rtol=1e-7)


def test_unrolled_hypergradient_approaches_implicit_as_steps_grow():
    problem = nonquadratic_problem()
    x = torch.tensor([0.3, -0.7, 0.5], dtype=torch.float64)
    y_star = solve_lower(problem, x, torch.zeros(4, dtype=torch.float64), tol=1e-14).y
    implicit = implicit_hypergradient(problem, x, y_star, cg_tol=1e-14).gradient
    start = torch.zeros(4, dtype=torch.float64)
    errors = []
    for steps in (5, 20, 80):
        unrolled, _ = unrolled_hypergradient(problem, x, start, inner_steps=steps)
        errors.append(float(torch.linalg.vector_norm(unrolled - implicit)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-8


def test_damped_hypergradient_uses_damped_solve():
    toy = quadratic_toy()
    x = torch.tensor([0.2, 0.1, -0.3], dtype=torch.float64)
    y = solve_lower(toy.problem, x, toy.y0).y
    damping = 0.5
    result = implicit_hypergradient(toy.problem, x, y, damping=damping, cg_tol=1e-14)

    hessian = torch.func.hessian(lambda v: toy.problem.lower(x, v))(y)
    mixed = torch.func.jacrev(torch.func.grad(toy.problem.lower, argnums=1), argnums=0)(x, y)
    grad_x, grad_y = torch.func.grad(toy.problem.upper, argnums=(0, 1))(x, y)
    dense = grad_x - mixed.T @ torch.linalg.solve(hessian + damping * torch.eye(3), grad_y)
    torch.testing.assert_close(result.gradient, dense, atol=1e-10, rtol=0)
    assert result.solve.converged


def test_implicit_descent_reaches_closed_form():
    toy = quadratic_toy()
    result = implicit_descent(toy.problem, toy.x0, toy.y0)
    assert result.converged
    assert relative_error(result, toy) < 1e-3
    assert result.history.upper_objective[-1] == pytest.approx(toy.upper_star, rel=1e-3)
    assert result.history.lower_gap[-1] < 1e-8
    assert set(result.history.constraint_violation) == {0.0}


def test_unrolled_descent_reaches_closed_form():
    toy = quadratic_toy()
    result = unrolled_descent(toy.problem, toy.x0, toy.y0)
    assert result.converged
    assert relative_error(result, toy) < 1e-3
    assert result.history.upper_objective[-1] == pytest.approx(toy.upper_star, rel=1e-3)


@pytest.mark.parametrize("solver", [implicit_descent, unrolled_descent])
def test_problem_with_constraints_is_rejected(solver):
    toy = coupled_toy()
    with pytest.raises(InvalidArgumentError, match="use lvhba"):
        solver(toy.problem, toy.x0, toy.y0)


@pytest.mark.parametrize("solver", [implicit_descent, unrolled_descent])
def test_invalid_step_is_rejected(solver):
    toy = quadratic_toy()
    with pytest.raises(InvalidArgumentError, match="step must be finite and > 0"):
        solver(toy.problem, toy.x0, toy.y0, step=-1.0)


HYPERGRADIENTS = {
    "solve_lower": lambda problem, x, y: solve_lower(problem, x, y, max_iter=5),
    "implicit_hypergradient": implicit_hypergradient,
    "unrolled_hypergradient": lambda problem, x, y: unrolled_hypergradient(problem, x, y),
}


@pytest.mark.parametrize("function", sorted(HYPERGRADIENTS))
def test_hypergradient_at_y_of_wrong_length_names_shapes(function):
    toy = quadratic_toy()
    with pytest.raises(
        InvalidArgumentError, match=r"failed at x of shape \(3,\) and y0? of shape \(1,\)"
    ):
        HYPERGRADIENTS[function](toy.problem, toy.x0, toy.y0[:1])


@pytest.mark.parametrize("function", sorted(HYPERGRADIENTS))
def test_hypergradient_rejects_non_tensor_x(function):
    toy = quadratic_toy()
    with pytest.raises(
        InvalidArgumentError, match=r"x must be a flat floating torch\.Tensor, got list"
    ):
        HYPERGRADIENTS[function](toy.problem, [0.0, 0.0, 0.0], toy.y0)


@pytest.mark.parametrize(("option", "value"), [("max_iter", -1), ("tol", float("nan"))])
def test_solve_lower_rejects_negative_steps_and_nan_tolerance(option, value):
    toy = quadratic_toy()
    with pytest.raises(InvalidArgumentError, match=rf"lower_{option} must be"):
        solve_lower(toy.problem, toy.x0, toy.y0, **{option: value})


@pytest.mark.parametrize("lower_tol", [-1.0, 0.0, float("nan")])
def test_implicit_rejects_nonpositive_lower_tol(lower_tol):
    toy = quadratic_toy()
    with pytest.raises(InvalidArgumentError, match="lower_tol must be"):
        implicit_descent(toy.problem, toy.x0, toy.y0, max_iter=2, lower_tol=lower_tol)
