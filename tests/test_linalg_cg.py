"""Conjugate gradient against ``torch.linalg.solve`` on matrices with known spectra."""

from __future__ import annotations

import pytest
import torch
from linalg_cases import DenseProvider, dense_case, matrix_with_spectrum

from hessframe.errors import InvalidArgumentError
from hessframe.linalg import NegativeCurvatureError, conjugate_gradient


def right_hand_side(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def spd_case(n: int = 80) -> DenseProvider:
    eigenvalues = torch.logspace(-2, 1, n, dtype=torch.float64)
    return DenseProvider(matrix_with_spectrum(eigenvalues, seed=7))


def test_cg_matches_dense_solve() -> None:
    op = spd_case()
    b = right_hand_side(op.size)
    result = conjugate_gradient(op, b, tol=1e-10)

    expected = torch.linalg.solve(op.matrix, b)
    assert result.converged
    torch.testing.assert_close(result.x, expected, atol=1e-8, rtol=0)
    true_residual = torch.linalg.vector_norm(b - op.matrix @ result.x)
    assert abs(result.residual_norm - float(true_residual)) < 1e-12
    assert result.residual_norm <= 1e-10 * float(torch.linalg.vector_norm(b))
    assert result.num_matvecs == op.products


def test_cg_with_damping_solves_indefinite_matrix() -> None:
    op = dense_case("indefinite")
    b = right_hand_side(op.size, seed=1)
    damping = 3.5  # the smallest eigenvalue is -3
    result = conjugate_gradient(op, b, damping=damping, tol=1e-10)

    identity = torch.eye(op.size, dtype=torch.float64)
    expected = torch.linalg.solve(op.matrix + damping * identity, b)
    assert result.converged
    torch.testing.assert_close(result.x, expected, atol=1e-8, rtol=0)


def test_cg_raises_on_negative_curvature() -> None:
    op = dense_case("indefinite")
    b = right_hand_side(op.size, seed=2)
    with pytest.raises(NegativeCurvatureError, match="not positive definite") as caught:
        conjugate_gradient(op, b, damping=0.5)

    error = caught.value
    assert "raise damping" in str(error).lower()
    assert error.curvature <= 0
    direction = error.direction
    rayleigh = float(direction @ op.matrix @ direction / (direction @ direction)) + 0.5
    assert abs(rayleigh - error.curvature) < 1e-10


def test_cg_jacobi_preconditioner_needs_fewer_steps() -> None:
    # A badly scaled diagonal makes the matrix ill conditioned; the Jacobi
    # preconditioner removes the scaling.
    base = spd_case(60).matrix + torch.eye(60, dtype=torch.float64)
    scaling = torch.logspace(0, 3, 60, dtype=torch.float64).sqrt()
    op = DenseProvider(scaling[:, None] * base * scaling[None, :])
    b = right_hand_side(60, seed=3)

    plain = conjugate_gradient(op, b, tol=1e-8, max_iter=500)
    jacobi = conjugate_gradient(op, b, tol=1e-8, preconditioner=torch.diagonal(op.matrix))

    expected = torch.linalg.solve(op.matrix, b)
    assert jacobi.converged
    torch.testing.assert_close(jacobi.x, expected, atol=1e-6, rtol=1e-6)
    assert jacobi.iterations < plain.iterations


def test_cg_callable_preconditioner_with_exact_inverse() -> None:
    op = spd_case(40)
    inverse = torch.linalg.inv(op.matrix)
    b = right_hand_side(40, seed=4)
    result = conjugate_gradient(op, b, preconditioner=lambda r: inverse @ r)

    assert result.converged
    assert result.iterations <= 2
    torch.testing.assert_close(result.x, inverse @ b, atol=1e-8, rtol=0)


def test_cg_warm_start_from_solution_needs_no_steps() -> None:
    op = spd_case(40)
    b = right_hand_side(40, seed=5)
    solution = torch.linalg.solve(op.matrix, b)
    result = conjugate_gradient(op, b, x0=solution)

    assert result.converged
    assert result.iterations == 0
    assert result.num_matvecs == 1


def test_cg_stops_at_max_iter() -> None:
    op = spd_case()
    result = conjugate_gradient(op, right_hand_side(op.size), max_iter=3)

    assert not result.converged
    assert result.iterations == 3
    true_residual = torch.linalg.vector_norm(right_hand_side(op.size) - op.matrix @ result.x)
    assert abs(result.residual_norm - float(true_residual)) < 1e-12


def test_cg_zero_right_hand_side_gives_zero() -> None:
    op = spd_case(10)
    result = conjugate_gradient(op, torch.zeros(10, dtype=torch.float64))

    assert result.converged
    assert float(result.x.abs().max()) == 0.0


def test_provider_solve_calls_cg() -> None:
    op = spd_case(30)
    b = right_hand_side(30, seed=6)
    result = op.solve(b, damping=0.1, tol=1e-10)

    identity = torch.eye(30, dtype=torch.float64)
    torch.testing.assert_close(result.x, torch.linalg.solve(op.matrix + 0.1 * identity, b))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"damping": -1.0}, "damping must be finite and >= 0"),
        ({"damping": "big"}, "damping must be a number"),
        ({"tol": 0.0}, "tol must be finite and > 0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"x0": torch.zeros(9, dtype=torch.float64)}, "x0 must have shape"),
        ({"preconditioner": -torch.ones(10, dtype=torch.float64)}, "diagonal \\+ damping"),
        ({"preconditioner": 3}, "preconditioner must be None, a callable"),
        ({"preconditioner": lambda r: r[:5]}, "preconditioner must return a tensor"),
        ({"preconditioner": lambda r: -r}, "preconditioner is not positive definite"),
    ],
)
def test_cg_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    op = spd_case(10)
    with pytest.raises(InvalidArgumentError, match=message):
        conjugate_gradient(op, right_hand_side(10), **kwargs)


def test_cg_rejects_bad_right_hand_side() -> None:
    op = spd_case(10)
    with pytest.raises(InvalidArgumentError, match="b must have shape \\(10,\\)"):
        conjugate_gradient(op, torch.ones(11, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match=r"b has dtype torch\.float32"):
        conjugate_gradient(op, torch.ones(10, dtype=torch.float32))
    with pytest.raises(InvalidArgumentError, match=r"b must be a torch\.Tensor"):
        conjugate_gradient(op, [1.0] * 10)


def test_cg_stops_when_float32_stagnates() -> None:
    eigenvalues = torch.logspace(-3, 1, 200, dtype=torch.float64)
    op = DenseProvider(matrix_with_spectrum(eigenvalues, seed=12).float())
    b = torch.randn(200, generator=torch.Generator().manual_seed(0))
    result = conjugate_gradient(op, b, tol=1e-10)

    true_residual = torch.linalg.vector_norm(b.double() - op.matrix.double() @ result.x.double())
    assert not result.converged
    assert result.iterations < 10 * 200
    assert abs(result.residual_norm - float(true_residual)) < 0.05 * float(true_residual)
    assert result.residual_norm < 1e-2 * float(torch.linalg.vector_norm(b))
