"""The dominant eigenpair of a symmetric operator by power iteration.

Power iteration (von Mises & Pollaczek-Geiringer 1929, "Praktische Verfahren
der Gleichungsauflösung", ZAMM 9) repeats v ← Hv/‖Hv‖ and converges to the
eigenvector of the eigenvalue of largest magnitude at the rate
|λ₂/λ₁| per step. It is the method that PyHessian (Yao et al. 2020) uses for
the top Hessian eigenvalue, with the same stopping rule as here: the relative
change of the Rayleigh quotient between two steps. :func:`hessframe.linalg.lanczos`
reaches the same eigenvalue with far fewer products and should be preferred;
this function exists as a baseline and for comparisons.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError
from hessframe.linalg._common import (
    check_generator,
    check_operator,
    check_positive_float,
    check_positive_int,
    check_vector,
    random_block,
)
from hessframe.linalg.results import EigenResult

logger = logging.getLogger(__name__)


def power_iteration(
    op: Any,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    v0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> EigenResult:
    """Compute the eigenpair of H whose eigenvalue has the largest magnitude.

    Each step computes w = H v, the Rayleigh quotient θ = vᵀw and the
    residual ‖w − θ v‖ from the same product, then sets v ← w/‖w‖. The
    iteration stops when |θ − θ_prev| ≤ tol · |θ|.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device`` and ``matvec(v)``.
        tol: Relative change of the Rayleigh quotient that stops the iteration.
        max_iter: Steps at most (one product each).
        v0: Start vector of shape (n,) with the operator's dtype and device.
            Default: Gaussian random.
        generator: Random generator for the start vector.

    Returns:
        EigenResult with one eigenvalue (the last Rayleigh quotient), its unit
        eigenvector, the residual ‖H v − θ v‖ of that vector, ``converged``
        true when the relative-change test passed (the residual is then
        typically of order sqrt(tol)·|θ|, larger than ``tol``·|θ|), the steps
        and the products spent.

    Raises:
        InvalidArgumentError: ``tol`` or ``max_iter`` is out of range, or
            ``v0`` does not match the operator or is zero.
    """
    check_operator(op, "power_iteration")
    tol = check_positive_float(tol, "tol", "power_iteration")
    max_iter = check_positive_int(max_iter, "max_iter", "power_iteration")
    check_generator(generator, "power_iteration")
    if v0 is None:
        vector = random_block(op, 1, "gaussian", generator)[:, 0]
    else:
        check_vector(op, v0, "v0", "power_iteration")
        vector = v0.clone()
    norm = torch.linalg.vector_norm(vector)
    if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
        raise InvalidArgumentError("power_iteration: v0 must be finite and nonzero")
    vector = vector / norm

    previous = None
    converged = False
    steps = 0
    for steps in range(1, max_iter + 1):
        product = op.matvec(vector)
        rayleigh = float(vector @ product)
        residual = torch.linalg.vector_norm(product - rayleigh * vector)
        if previous is not None and abs(rayleigh - previous) <= tol * abs(rayleigh):
            converged = True
            break
        if steps == max_iter:
            break
        previous = rayleigh
        product_norm = torch.linalg.vector_norm(product)
        if float(product_norm) == 0.0:
            # v lies in the null space, so θ = 0 is an exact eigenvalue and
            # no other direction can be reached from here.
            converged = True
            break
        vector = product / product_norm

    logger.info(
        "power_iteration: %d steps, eigenvalue %.6g, residual %.3g, converged=%s",
        steps,
        rayleigh,
        float(residual),
        converged,
    )
    return EigenResult(
        eigenvalues=torch.tensor([rayleigh], dtype=op.dtype, device=op.device),
        eigenvectors=vector.unsqueeze(1),
        residuals=residual.reshape(1),
        converged=converged,
        iterations=steps,
        num_matvecs=steps,
    )
