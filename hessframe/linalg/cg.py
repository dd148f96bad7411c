"""Preconditioned conjugate gradient for (H + λI) x = b.

Hestenes & Stiefel (1952, "Methods of conjugate gradients for solving linear
systems", J. Res. Nat. Bur. Standards 49) minimise ½xᵀAx − bᵀx over growing
Krylov spaces with one product per step; the method needs A = H + λI to be
symmetric positive definite. Every step computes the curvature pᵀAp of its
search direction, and a direction with pᵀAp ≤ 0 proves that A is not positive
definite. The solver then raises :class:`NegativeCurvatureError` instead of
returning a meaningless iterate. The recursively updated residual drifts from
b − Ax in floating point, so when it meets the tolerance the true residual is
computed and, if it does not, the iteration restarts from it. A restart that
does not halve the true residual ends the solve, because the dtype's rounding
then limits the residual more than further steps would reduce it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError
from hessframe.linalg._common import (
    check_operator,
    check_positive_float,
    check_positive_int,
    check_vector,
)
from hessframe.linalg.results import SolveResult

logger = logging.getLogger(__name__)

Preconditioner = Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


class NegativeCurvatureError(InvalidArgumentError):
    """H + λI is not positive definite: CG found a direction p with pᵀ(H + λI)p ≤ 0.

    Attributes:
        curvature: The value of pᵀ(H + λI)p / pᵀp, at most zero, so
            λ must grow by more than −curvature to remove this direction.
        direction: The direction p, a flat tensor like the right-hand side.
        iteration: The CG step at which it was found (1-based).
    """

    def __init__(
        self, message: str, curvature: float, direction: torch.Tensor, iteration: int
    ) -> None:
        super().__init__(message)
        self.curvature = curvature
        self.direction = direction
        self.iteration = iteration


def conjugate_gradient(
    op: Any,
    b: torch.Tensor,
    *,
    damping: float = 0.0,
    preconditioner: Preconditioner | None = None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    x0: torch.Tensor | None = None,
) -> SolveResult:
    """Solve (H + damping·I) x = b by preconditioned conjugate gradient.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device`` and ``matvec(v)``.
        b: Right-hand side, a flat tensor of length n with the operator's
            dtype and device.
        damping: λ ≥ 0 added to the diagonal of H.
        preconditioner: None, a callable, or a flat tensor. A callable maps
            r to M⁻¹r for a symmetric positive definite M ≈ H + λI. A tensor d
            is an estimate of diag(H), for example from ``op.diagonal()`` or
            :func:`~hessframe.linalg.hutchinson_diagonal`, and gives the
            Jacobi preconditioner M = diag(d) + λI.
        tol: Relative tolerance: stop when ‖b − (H + λI)x‖ ≤ tol·‖b‖.
        max_iter: CG steps at most. Default: 10·n, as in
            ``scipy.sparse.linalg.cg``, because rounding makes CG need more
            than the n steps that suffice in exact arithmetic.
        x0: Initial guess, like ``b``. Default: zero.

    Returns:
        SolveResult with x, the true residual norm ‖b − (H + λI)x‖, whether it
        met the tolerance, the CG steps and every product spent (one per step,
        one for x0 when given, and one per true-residual check).

    Raises:
        InvalidArgumentError: An argument is out of range (``damping`` < 0,
            ``tol`` ≤ 0), ``b`` or ``x0`` does not match the operator, or the
            Jacobi diagonal plus damping has an entry ≤ 0.
        NegativeCurvatureError: H + damping·I is not positive definite.
    """
    check_operator(op, "conjugate_gradient")
    check_vector(op, b, "b", "conjugate_gradient")
    damping = _check_damping(damping)
    tol = check_positive_float(tol, "tol", "conjugate_gradient")
    max_iter = 10 * op.size if max_iter is None else max_iter
    max_iter = check_positive_int(max_iter, "max_iter", "conjugate_gradient")
    apply_preconditioner = _preconditioner(op, preconditioner, damping)

    def apply_damped(v: torch.Tensor) -> torch.Tensor:
        product = op.matvec(v)
        return product + damping * v if damping else product

    b_norm = float(torch.linalg.vector_norm(b))
    target = tol * b_norm
    num_matvecs = 0
    if x0 is None:
        x = torch.zeros_like(b)
        residual = b.clone()
    else:
        check_vector(op, x0, "x0", "conjugate_gradient")
        x = x0.clone()
        residual = b - apply_damped(x)
        num_matvecs += 1
    if b_norm == 0.0:
        logger.info("conjugate_gradient: b is zero, so x = 0")
        return SolveResult(
            x=torch.zeros_like(b),
            residual_norm=0.0,
            converged=True,
            iterations=0,
            num_matvecs=num_matvecs,
        )

    iterations = 0
    residual_norm = float(torch.linalg.vector_norm(residual))
    converged = residual_norm <= target
    while not converged and iterations < max_iter:
        x, residual, steps, products = _cg_cycle(
            apply_damped,
            apply_preconditioner,
            x,
            residual,
            target,
            max_iter - iterations,
            iterations,
            damping,
        )
        iterations += steps
        num_matvecs += products

        # Replace the recursive residual by the true one before trusting it.
        residual = b - apply_damped(x)
        num_matvecs += 1
        previous_norm = residual_norm
        residual_norm = float(torch.linalg.vector_norm(residual))
        converged = residual_norm <= target
        if not converged and residual_norm > 0.5 * previous_norm:
            # A restart that does not halve the true residual has reached the
            # rounding floor of the dtype, so further steps would be wasted.
            logger.warning(
                "conjugate_gradient: stagnated at relative residual %.3g above tol=%g after "
                "%d steps; %s cannot reach this tol for this system",
                residual_norm / b_norm,
                tol,
                iterations,
                b.dtype,
            )
            break

    logger.info(
        "conjugate_gradient: %d steps, %d products, relative residual %.3g, converged=%s",
        iterations,
        num_matvecs,
        residual_norm / b_norm,
        converged,
    )
    return SolveResult(
        x=x,
        residual_norm=residual_norm,
        converged=converged,
        iterations=iterations,
        num_matvecs=num_matvecs,
    )


def _cg_cycle(
    apply_damped: Callable[[torch.Tensor], torch.Tensor],
    apply_preconditioner: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    residual: torch.Tensor,
    target: float,
    max_steps: int,
    steps_before: int,
    damping: float,
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Run CG steps from (x, residual) until the recursive residual meets ``target``.

    Returns:
        (x, residual, steps, products), with the recursive residual.
    """
    preconditioned = apply_preconditioner(residual)
    direction = preconditioned.clone()
    rz = _preconditioned_norm_sq(residual, preconditioned)
    steps = 0
    while steps < max_steps:
        product = apply_damped(direction)
        steps += 1
        curvature = float(direction @ product)
        if not curvature > 0:
            _raise_negative_curvature(direction, curvature, steps_before + steps, damping)
        step_length = rz / curvature
        x = x + step_length * direction
        residual = residual - step_length * product
        if float(torch.linalg.vector_norm(residual)) <= target:
            break
        preconditioned = apply_preconditioner(residual)
        rz_next = _preconditioned_norm_sq(residual, preconditioned)
        direction = preconditioned + (rz_next / rz) * direction
        rz = rz_next
    return x, residual, steps, steps


def _preconditioned_norm_sq(residual: torch.Tensor, preconditioned: torch.Tensor) -> float:
    """Return rᵀM⁻¹r, or raise InvalidArgumentError when M⁻¹ is not positive definite."""
    value = float(residual @ preconditioned)
    if not value > 0:
        raise InvalidArgumentError(
            f"conjugate_gradient: the preconditioner is not positive definite: r^T M^-1 r = "
            f"{value:.4g} <= 0 for a nonzero residual r; pass a symmetric positive definite M^-1"
        )
    return value


def _raise_negative_curvature(
    direction: torch.Tensor, curvature: float, iteration: int, damping: float
) -> None:
    direction_norm_sq = float(direction @ direction)
    relative = curvature / direction_norm_sq if direction_norm_sq > 0 else curvature
    raise NegativeCurvatureError(
        f"conjugate_gradient: H + damping*I is not positive definite (damping={damping:g}): "
        f"step {iteration} found a direction p with p^T (H + damping*I) p / p^T p = "
        f"{relative:.4g} <= 0. Raise damping above {damping - relative:.4g}, or above the "
        "magnitude of the most negative eigenvalue from lanczos(op, which='smallest')",
        curvature=relative,
        direction=direction,
        iteration=iteration,
    )


def _check_damping(damping: Any) -> float:
    if isinstance(damping, bool) or not isinstance(damping, int | float):
        raise InvalidArgumentError(
            f"conjugate_gradient: damping must be a number >= 0, got {type(damping).__name__}"
        )
    if not math.isfinite(damping) or damping < 0:
        raise InvalidArgumentError(
            f"conjugate_gradient: damping must be finite and >= 0, got {damping!r}; a negative "
            "damping would make the system less positive definite, not more"
        )
    return float(damping)


def _preconditioner(
    op: Any, preconditioner: Preconditioner | None, damping: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return r ↦ M⁻¹r for the accepted forms of ``preconditioner``."""
    if preconditioner is None:
        return lambda residual: residual
    if isinstance(preconditioner, torch.Tensor):
        check_vector(op, preconditioner, "preconditioner", "conjugate_gradient")
        diagonal = preconditioner + damping
        if not bool(torch.isfinite(diagonal).all()) or not bool((diagonal > 0).all()):
            worst = float(diagonal.min())
            raise InvalidArgumentError(
                "conjugate_gradient: the Jacobi preconditioner diagonal + damping must be finite "
                f"and > 0 everywhere, but its minimum is {worst:.4g}; raise damping or pass a "
                "callable preconditioner"
            )
        return lambda residual: residual / diagonal
    if callable(preconditioner):
        return _checked_callable(op, preconditioner)
    raise InvalidArgumentError(
        "conjugate_gradient: preconditioner must be None, a callable r -> M^-1 r or a flat "
        f"tensor with the diagonal of H, got {type(preconditioner).__name__}"
    )


def _checked_callable(
    op: Any, preconditioner: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a callable preconditioner so that a wrong output raises a clear error."""

    def apply_checked(residual: torch.Tensor) -> torch.Tensor:
        output = preconditioner(residual)
        if not isinstance(output, torch.Tensor) or output.shape != residual.shape:
            shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise InvalidArgumentError(
                f"conjugate_gradient: the preconditioner must return a tensor of shape "
                f"{tuple(residual.shape)} like its input, got {shape}"
            )
        return output

    return apply_checked
