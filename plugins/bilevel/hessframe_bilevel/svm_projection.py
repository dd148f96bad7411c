"""Euclidean projection onto the feasible set C of the SVM hyperparameter problem.

With n train samples, signed rows s_i = y_i (a_i, 1) and the variables
(c, w, b, ξ), the set is

    C = {(c, w, b, ξ) : c ≥ 0,  ξ ≤ c,  1 − s_iᵀ(w, b) − ξ_i ≤ 0 for every i},

and its projection of a point (c⁰, w⁰, b⁰, ξ⁰) is a quadratic program in 2n + d + 1
variables. For fixed v = (w, b) the pairs (c_i, ξ_i) separate: each goes to its
projection onto the polygon S(t_i) = {(c, ξ) : ξ ≥ t_i, ξ ≤ c, c ≥ 0}, with
t_i = 1 − s_iᵀv. So the projection minimises over v alone the convex, piecewise
quadratic function

    φ(v) = ½‖v − v⁰‖² + ½ Σ_i dist²((c⁰_i, ξ⁰_i), S(t_i)).

Each pair is projected in closed form by taking the nearest feasible point among the
projections onto the polygon's edges and its vertices. φ is minimised by a generalised
Newton method with Armijo backtracking. Where φ has a kink (a pair's polygon degenerates
at t_i = 0) Newton can stall, and SciPy's L-BFGS-B finishes from its last point.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy.optimize import minimize

logger = logging.getLogger(__name__)

#: Candidates per pair: the point itself, its projections onto the three edges
#: (ξ = t, ξ = c, c = 0), and the three vertices of S(t).
_CURVATURES = (0.0, 1.0, 0.0, 0.0, 2.0, 1.0, 0.0)


def project_pairs(
    bounds: torch.Tensor, slack: torch.Tensor, hinge_level: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project each pair (c_i, ξ_i) onto S(t_i) = {(c, ξ) : ξ ≥ t_i, ξ ≤ c, c ≥ 0}.

    Args:
        bounds: c⁰, shape (n,).
        slack: ξ⁰, shape (n,).
        hinge_level: t, shape (n,).

    Returns:
        The projected c and ξ, and the first and second derivatives in t_i of
        ½ dist²((c⁰_i, ξ⁰_i), S(t_i)) at the selected candidate.
    """
    zero = torch.zeros_like(hinge_level)
    middle = 0.5 * (bounds + slack)
    t = hinge_level
    candidates_c = torch.stack([bounds, bounds, middle, zero, t, zero, zero])
    candidates_xi = torch.stack([slack, t, middle, slack, t, t, zero])
    # The edge projections are exact, so only rounding needs this allowance.
    allowance = 1e-12 * (1 + t.abs() + bounds.abs() + slack.abs())
    feasible = (
        (candidates_xi >= t - allowance)
        & (candidates_xi <= candidates_c + allowance)
        & (candidates_c >= -allowance)
    )
    distance = (candidates_c - bounds).square() + (candidates_xi - slack).square()
    distance = torch.where(feasible, distance, torch.full_like(distance, float("inf")))
    index = distance.argmin(dim=0, keepdim=True)

    slopes = torch.stack([zero, t - slack, zero, zero, (t - bounds) + (t - slack), t - slack, zero])
    curvatures = torch.tensor(_CURVATURES, dtype=t.dtype, device=t.device)
    return (
        candidates_c.gather(0, index)[0],
        candidates_xi.gather(0, index)[0],
        slopes.gather(0, index)[0],
        curvatures[index[0]],
    )


def project_onto_svm_set(
    bounds: torch.Tensor,
    weights: torch.Tensor,
    signed: torch.Tensor,
    slack: torch.Tensor,
    *,
    tol: float = 1e-10,
    max_newton: int = 30,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the Euclidean projection of (c, v, ξ) onto C, with v = (w, b).

    Args:
        bounds: c⁰, shape (n,).
        weights: v⁰ = (w⁰, b⁰), shape (d + 1,).
        signed: The rows s_i = y_i (a_i, 1), shape (n, d + 1).
        slack: ξ⁰, shape (n,).
        tol: Stop when ‖∇φ(v)‖ ≤ tol·(1 + ‖v⁰‖).
        max_newton: Newton iterations before L-BFGS-B takes over.

    Returns:
        (c, v, ξ). The point lies in C up to rounding whether or not the
        minimisation of φ converged, because each pair is projected onto S(t_i)
        at the final v.
    """
    reference = weights
    threshold = tol * (1 + float(torch.linalg.vector_norm(reference)))

    def evaluate(v: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        level = 1 - signed @ v
        c, xi, slope, curvature = project_pairs(bounds, slack, level)
        value = 0.5 * (v - reference).square().sum()
        value = value + 0.5 * ((c - bounds).square().sum() + (xi - slack).square().sum())
        gradient = (v - reference) - signed.T @ slope
        return float(value), gradient, curvature

    v = reference.clone()
    value, gradient, curvature = evaluate(v)
    identity = torch.eye(v.shape[0], dtype=v.dtype, device=v.device)
    converged = float(torch.linalg.vector_norm(gradient)) <= threshold
    for _ in range(max_newton):
        if converged:
            break
        hessian = identity + signed.T @ (curvature[:, None] * signed)
        direction = -torch.linalg.solve(hessian, gradient)
        decrease = float(gradient @ direction)
        step = 1.0
        while True:
            trial = v + step * direction
            trial_value, trial_gradient, trial_curvature = evaluate(trial)
            if trial_value <= value + 1e-4 * step * decrease or step < 1e-10:
                break
            step *= 0.5
        v, value, gradient, curvature = trial, trial_value, trial_gradient, trial_curvature
        converged = float(torch.linalg.vector_norm(gradient)) <= threshold

    if not converged:
        logger.debug("project_onto_svm_set: Newton stalled, finishing with L-BFGS-B")
        v = _minimise_by_lbfgs(evaluate, v, threshold)

    c, xi, _, _ = project_pairs(bounds, slack, 1 - signed @ v)
    return c, v, xi


def _minimise_by_lbfgs(evaluate, start: torch.Tensor, threshold: float) -> torch.Tensor:
    def objective(point: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient, _ = evaluate(torch.from_numpy(point).to(start))
        return value, gradient.detach().cpu().double().numpy()

    solution = minimize(
        objective,
        start.detach().cpu().double().numpy(),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": threshold, "ftol": 0.0, "maxiter": 2000},
    )
    return torch.from_numpy(solution.x).to(start)
