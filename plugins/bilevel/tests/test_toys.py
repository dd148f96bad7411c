"""The toys' stated optima agree with a grid search and with the optimality condition."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel.lvhba import lvhba
from hessframe_bilevel.toys import coupled_toy, quadratic_toy

from hessframe.errors import InvalidArgumentError


def test_coupled_toy_optimum_matches_grid_search():
    toy = coupled_toy()
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    b = torch.tensor([0.0, 0.5, 4.0], dtype=torch.float64)
    d = torch.tensor([1.0, 2.5, 3.0], dtype=torch.float64)
    grid = torch.linspace(-2.0, 6.0, 80_001, dtype=torch.float64)
    for i in range(3):
        reduced = 0.5 * (grid - b[i]) ** 2 + 0.5 * (torch.minimum(a[i], grid) - d[i]) ** 2
        assert float(grid[reduced.argmin()]) == pytest.approx(float(toy.x_star[i]), abs=1e-4)
    torch.testing.assert_close(toy.y_star, torch.minimum(a, toy.x_star))


def test_quadratic_toy_optimum_zeroes_reduced_gradient():
    toy = quadratic_toy()

    def lower_solution(x):
        hessian = torch.func.hessian(lambda y: toy.problem.lower(x, y))(torch.zeros_like(x))
        gradient_at_zero = torch.func.grad(lambda y: toy.problem.lower(x, y))(torch.zeros_like(x))
        return torch.linalg.solve(hessian, -gradient_at_zero)

    gradient = torch.func.grad(lambda x: toy.problem.upper(x, lower_solution(x)))(toy.x_star)
    assert float(torch.linalg.vector_norm(gradient)) < 1e-12
    torch.testing.assert_close(lower_solution(toy.x_star), toy.y_star)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_lvhba_on_cuda_matches_cpu():
    cpu = coupled_toy()
    cuda = coupled_toy(device="cuda")
    on_cpu = lvhba(cpu.problem, cpu.x0, cpu.y0, max_iter=200)
    on_cuda = lvhba(cuda.problem, cuda.x0, cuda.y0, max_iter=200)
    assert on_cuda.x.device.type == "cuda"
    torch.testing.assert_close(on_cuda.x.cpu(), on_cpu.x, atol=1e-10, rtol=0)
    torch.testing.assert_close(on_cuda.multipliers.cpu(), on_cpu.multipliers, atol=1e-10, rtol=0)


@pytest.mark.parametrize("make", [coupled_toy, quadratic_toy])
@pytest.mark.parametrize("dtype", [torch.int64, "float64", 3])
def test_toy_rejects_dtype_that_is_not_floating(make, dtype):
    with pytest.raises(InvalidArgumentError, match=r"dtype must be a floating torch\.dtype"):
        make(dtype=dtype)


@pytest.mark.parametrize("make", [coupled_toy, quadratic_toy])
def test_toy_rejects_unknown_device(make):
    with pytest.raises(InvalidArgumentError, match="device 'gpu0' cannot be used"):
        make(device="gpu0")
