"""Bad input to the three solvers: the error names the argument, what was wrong and the fix."""

from __future__ import annotations

import math

import pytest
import torch
from hessframe_bilevel.implicit import implicit_descent
from hessframe_bilevel.lvhba import lvhba
from hessframe_bilevel.problem import BilevelProblem
from hessframe_bilevel.toys import coupled_toy
from hessframe_bilevel.unrolled import unrolled_descent

from hessframe.errors import InvalidArgumentError, NonFiniteError

SOLVERS = {
    "lvhba": lvhba,
    "implicit": implicit_descent,
    "unrolled": unrolled_descent,
}

MATRIX = torch.arange(6, dtype=torch.float64).reshape(3, 2)


def matrix_problem() -> BilevelProblem:
    """A lower level that couples x ∈ ℝ² to y ∈ ℝ³ through a 3×2 matrix."""
    return BilevelProblem(
        upper=lambda x, y: 0.5 * y.square().sum() + 0.5 * x.square().sum(),
        lower=lambda x, y: 0.5 * (y - MATRIX @ x).square().sum(),
    )


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_start_of_wrong_length_names_shapes(method):
    x0 = torch.zeros(4, dtype=torch.float64)
    y0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"failed at x0 of shape \(4,\)"):
        SOLVERS[method](matrix_problem(), x0, y0, max_iter=2)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_nan_lower_objective_names_function_and_iteration(method):
    # f turns NaN once x leaves the interval (−0.1, 0.1); F pulls x towards 1.
    def lower(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (y - x).square().sum()
        return torch.where(x.abs().max() < 0.1, value, torch.full_like(value, math.nan))

    problem = BilevelProblem(upper=lambda x, y: 0.5 * (x - 1).square().sum(), lower=lower)
    start = torch.zeros(1, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match=r"lower objective f is nan at iteration [1-9]"):
        SOLVERS[method](problem, start, start, max_iter=50)


def test_upper_objective_that_is_not_scalar_is_rejected():
    problem = BilevelProblem(upper=lambda x, y: x * y, lower=lambda x, y: y.square().sum())
    start = torch.ones(2, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"upper objective F must return a 0-d tensor"):
        lvhba(problem, start, start, max_iter=2)


def test_constraints_of_changing_length_are_rejected():
    toy = coupled_toy()

    def constraints(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        g = toy.problem.constraints(x, y)
        return g if bool((x == toy.x0).all()) else g[:2]

    problem = BilevelProblem(
        upper=toy.problem.upper,
        lower=toy.problem.lower,
        constraints=constraints,
        project_feasible=toy.problem.project_feasible,
    )
    with pytest.raises(InvalidArgumentError, match=r"shape \(2,\) .* but shape \(3,\) before"):
        lvhba(problem, toy.x0, toy.y0, max_iter=5)


def test_infeasible_projection_is_rejected_with_iteration():
    # The identity is no projection onto {y ≤ x}: the first step leaves y above x.
    toy = coupled_toy()
    problem = BilevelProblem(
        upper=toy.problem.upper,
        lower=toy.problem.lower,
        constraints=toy.problem.constraints,
        project_feasible=lambda x, y: (x, y),
    )
    with pytest.raises(
        InvalidArgumentError, match=r"project_feasible returned a point outside C at iteration 0"
    ):
        lvhba(problem, toy.x0, toy.y0 + 5.0, max_iter=5)


def test_projection_returning_wrong_shape_is_rejected():
    toy = coupled_toy()
    problem = BilevelProblem(
        upper=toy.problem.upper,
        lower=toy.problem.lower,
        constraints=toy.problem.constraints,
        project_feasible=lambda x, y: (x, y[:1]),
    )
    with pytest.raises(InvalidArgumentError, match="project_feasible must return a pair"):
        lvhba(problem, toy.x0, toy.y0, max_iter=5)


@pytest.mark.parametrize("method", sorted(SOLVERS))
@pytest.mark.parametrize("problem", [None, "coupled"])
def test_non_bilevel_problem_is_rejected(method, problem):
    toy = coupled_toy()
    with pytest.raises(InvalidArgumentError, match="problem must be a BilevelProblem, got"):
        SOLVERS[method](problem, toy.x0, toy.y0, max_iter=2)


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_one_argument_objective_is_rejected(method):
    problem = BilevelProblem(upper=lambda x: x.square().sum(), lower=matrix_problem().lower)
    x0 = torch.zeros(2, dtype=torch.float64)
    y0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"upper objective F failed at x0.*TypeError"):
        SOLVERS[method](problem, x0, y0, max_iter=2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_constraints_of_another_dtype_are_rejected(dtype):
    toy = coupled_toy()
    problem = BilevelProblem(
        upper=toy.problem.upper,
        lower=toy.problem.lower,
        constraints=lambda x, y: (y - x).to(dtype),
        project_feasible=toy.problem.project_feasible,
    )
    with pytest.raises(InvalidArgumentError, match=rf"dtype torch.float64 of x and y, got {dtype}"):
        lvhba(problem, toy.x0, toy.y0, max_iter=2)
