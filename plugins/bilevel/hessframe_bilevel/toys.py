"""Two small bilevel problems with closed-form solutions, for tests and first runs.

- :func:`coupled_toy`: separable quadratics with the coupled lower constraint y ≤ x.
- :func:`quadratic_toy`: a quadratic upper level and a strongly convex quadratic
  lower level without constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hessframe.errors import InvalidArgumentError
from hessframe_bilevel.problem import BilevelProblem


@dataclass(frozen=True)
class ToyProblem:
    """A bilevel problem with its known solution.

    Attributes:
        problem: The bilevel problem.
        x_star: The optimal upper-level variable.
        y_star: The lower-level solution at ``x_star``.
        upper_star: F(x_star, y_star), the optimal value.
        x0: A suggested start of x.
        y0: A suggested start of y.
    """

    problem: BilevelProblem
    x_star: torch.Tensor
    y_star: torch.Tensor
    upper_star: float
    x0: torch.Tensor
    y0: torch.Tensor


def coupled_toy(
    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ToyProblem:
    """Build a three-dimensional problem whose lower constraint y ≤ x couples both levels.

    With a = (1, 2, 3), b = (0, 0.5, 4), d = (1, 2.5, 3):

        F(x, y) = ½‖x − b‖² + ½‖y − d‖²,
        f(x, y) = ½‖y − a‖²,  g(x, y) = y − x ≤ 0,  X = Y = ℝ³.

    The lower level decouples by coordinate, with solution y*(x)ᵢ = min(aᵢ, xᵢ)
    and multiplier λᵢ = aᵢ − y*ᵢ. The upper objective on the graph is
    φᵢ(x) = ½(x − bᵢ)² + ½(min(aᵢ, x) − dᵢ)². On x ≤ aᵢ its minimiser is
    min((bᵢ + dᵢ)/2, aᵢ), and on x ≥ aᵢ it is max(bᵢ, aᵢ). The one of the two
    with the smaller φᵢ is optimal. That gives x* = (0.5, 1.5, 4), y* = (0.5, 1.5, 3), F* = 1.25 and
    λ* = (0.5, 0.5, 0). The constraint is active with a positive multiplier in
    the first two coordinates and inactive in the third.

    C = {(x, y) : y ≤ x} is projected per coordinate: a pair with y > x moves to
    its midpoint ((x + y)/2, (x + y)/2).
    """
    device = _check_dtype_and_device(dtype, device, "coupled_toy")
    a = torch.tensor([1.0, 2.0, 3.0], dtype=dtype, device=device)
    b = torch.tensor([0.0, 0.5, 4.0], dtype=dtype, device=device)
    d = torch.tensor([1.0, 2.5, 3.0], dtype=dtype, device=device)

    def upper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - b).square().sum() + 0.5 * (y - d).square().sum()

    def lower(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (y - a).square().sum()

    def constraints(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y - x

    def project_feasible(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        midpoint = 0.5 * (x + y)
        violated = y > x
        return torch.where(violated, midpoint, x), torch.where(violated, midpoint, y)

    x_star, y_star = _coupled_solution(a, b, d)
    problem = BilevelProblem(
        upper=upper, lower=lower, constraints=constraints, project_feasible=project_feasible
    )
    return ToyProblem(
        problem=problem,
        x_star=x_star,
        y_star=y_star,
        upper_star=float(upper(x_star, y_star)),
        x0=torch.zeros(3, dtype=dtype, device=device),
        y0=torch.zeros(3, dtype=dtype, device=device),
    )


def quadratic_toy(
    dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> ToyProblem:
    """Build a problem with a quadratic upper level and a strongly convex quadratic lower level.

    With a fixed symmetric positive definite A (eigenvalues 1, 1.5, 2), a fixed B
    (half a standard normal 3×3 draw with seed 7)
    and targets x_t, y_t:

        F(x, y) = ½‖x − x_t‖² + ½‖y − y_t‖²,
        f(x, y) = ½ yᵀ A y − yᵀ B x,  X = Y = ℝ³.

    The lower solution is y*(x) = M x with M = A⁻¹ B, so x* solves the linear
    system (I + MᵀM) x* = x_t + Mᵀ y_t, and y* = M x*.
    """
    device = _check_dtype_and_device(dtype, device, "quadratic_toy")
    generator = torch.Generator().manual_seed(7)
    basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    hessian = basis @ torch.diag(torch.tensor([1.0, 1.5, 2.0], dtype=torch.float64)) @ basis.T
    coupling = 0.5 * torch.randn(3, 3, generator=generator, dtype=torch.float64)
    x_target = torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    y_target = torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)

    response = torch.linalg.solve(hessian, coupling)
    system = torch.eye(3, dtype=torch.float64) + response.T @ response
    x_star = torch.linalg.solve(system, x_target + response.T @ y_target)
    y_star = response @ x_star

    hessian, coupling, x_target, y_target = (
        t.to(dtype=dtype, device=device) for t in (hessian, coupling, x_target, y_target)
    )

    def upper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - x_target).square().sum() + 0.5 * (y - y_target).square().sum()

    def lower(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * y @ (hessian @ y) - y @ (coupling @ x)

    x_star = x_star.to(dtype=dtype, device=device)
    y_star = y_star.to(dtype=dtype, device=device)
    return ToyProblem(
        problem=BilevelProblem(upper=upper, lower=lower),
        x_star=x_star,
        y_star=y_star,
        upper_star=float(upper(x_star, y_star)),
        x0=torch.zeros(3, dtype=dtype, device=device),
        y0=torch.zeros(3, dtype=dtype, device=device),
    )


def _check_dtype_and_device(dtype: object, device: object, function: str) -> torch.device:
    """Return ``device`` as a torch.device, or raise InvalidArgumentError.

    ``dtype`` must be a floating torch.dtype, and ``device`` a device that torch
    knows and that is available in this process.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgumentError(
            f"{function}: dtype must be a floating torch.dtype such as torch.float64, got {dtype!r}"
        )
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, TypeError) as error:
        raise InvalidArgumentError(
            f"{function}: device {device!r} cannot be used: {error}. Pass 'cpu', or 'cuda' "
            "where a GPU is available"
        ) from error
    return device


def _coupled_solution(
    a: torch.Tensor, b: torch.Tensor, d: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (x*, y*) of :func:`coupled_toy` from the two candidates per coordinate."""

    def phi(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - b).square() + 0.5 * (torch.minimum(a, x) - d).square()

    below = torch.minimum(0.5 * (b + d), a)
    above = torch.maximum(b, a)
    x_star = torch.where(phi(below) <= phi(above), below, above)
    return x_star, torch.minimum(a, x_star)
