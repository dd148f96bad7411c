"""Log-stabilised Sinkhorn iterations on the dual potentials of entropic optimal transport.

The plan is kept as P = diag(u) K diag(v) with K = exp(log_u ⊕ log_v − M/reg)
built from the current log-potentials, and u, v scaling vectors that start at
one. Each iteration sets u = a / (K v) and then v = b / (Kᵀ u), so the column
marginals hold exactly after it. When a scaling leaves [e^-100, e^100], or a row
or column of K underflows to zero, the scalings are absorbed into the
log-potentials and K is rebuilt (B. Schmitzer, "Stabilized sparse scaling
algorithms for entropy regularized transport problems", arXiv:1610.06519).
The scalings make an iteration cost two matrix-vector products instead of
two log-sum-exp passes over the whole cost matrix.

Everything here works on float64 numpy arrays restricted to the supports of the
marginals (every entry of ``a`` and ``b`` is positive).
"""

from __future__ import annotations

import numpy as np

#: Scalings outside [e^-LOG_SCALING_BOUND, e^LOG_SCALING_BOUND] are absorbed
#: into the log-potentials. Entries of K that underflowed (below about e^-708)
#: then stay below e^-508 after scaling by u_i v_j, so their loss is negligible.
LOG_SCALING_BOUND = 100.0


def plan_from_potentials(
    log_u: np.ndarray, log_v: np.ndarray, scaled_cost: np.ndarray
) -> np.ndarray:
    """Return P = exp(log_u[i] + log_v[j] − scaled_cost[i, j]) as a new array.

    Entries that overflow are infinite, without a warning: callers test the
    plan, or a sum of it, for finiteness.
    """
    plan = np.subtract(log_u[:, None], scaled_cost)
    plan += log_v[None, :]
    with np.errstate(over="ignore"):
        np.exp(plan, out=plan)
    return plan


def _logsumexp_rows(values: np.ndarray) -> np.ndarray:
    """Return log Σ_j exp(values[i, j]) for each row, stable for any magnitude."""
    top = values.max(axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    shifted = np.exp(values - top[:, None])
    return top + np.log(shifted.sum(axis=1))


def log_domain_iteration(
    log_u: np.ndarray,
    log_v: np.ndarray,
    log_a: np.ndarray,
    log_b: np.ndarray,
    scaled_cost: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one Sinkhorn iteration in the log domain: fit the rows, then the columns.

    This costs two log-sum-exp passes over the cost matrix and works from any
    potentials, however far they are from the optimum (for example zero
    potentials with reg = 1e-5, where exp(−M/reg) underflows everywhere).

    Returns:
        The new (log_u, log_v); the column marginals of their plan equal b.
    """
    log_u = log_a - _logsumexp_rows(log_v[None, :] - scaled_cost)
    log_v = log_b - _logsumexp_rows((log_u[:, None] - scaled_cost).T)
    return log_u, log_v


def marginal_error(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Return the L1 marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁."""
    return float(np.abs(plan.sum(axis=1) - a).sum() + np.abs(plan.sum(axis=0) - b).sum())


def sinkhorn_iterations(
    log_u: np.ndarray,
    log_v: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    max_iterations: int,
    stop_error: float,
    errors: list[float],
    handover_error: float | None = None,
    handover_ratio: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Run Sinkhorn iterations until the L1 marginal error is below ``stop_error``.

    With ``handover_error``, also stop once the error is below it and the last
    iteration left more than ``handover_ratio`` of the error before it, that is
    once Sinkhorn has slowed down enough for Newton steps to pay off.

    Args:
        log_u, log_v: Starting log-potentials (the plan is
            exp(log_u ⊕ log_v − scaled_cost)).
        a, b: Positive marginals.
        scaled_cost: M / reg.
        max_iterations: Maximum number of iterations (0 returns at once).
        stop_error: Stop once ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ falls below this.
        errors: The marginal error after each iteration is appended here.

    Returns:
        (log_u, log_v, iterations run). After at least one iteration the
        column marginals hold to rounding.
    """
    if max_iterations <= 0:
        return log_u, log_v, 0
    kernel = plan_from_potentials(log_u, log_v, scaled_cost)
    u = np.ones_like(a)
    v = np.ones_like(b)
    kernel_v = kernel @ v
    iterations = 0
    while iterations < max_iterations:
        if not np.all(kernel_v > 0):
            log_u, log_v = log_domain_iteration(
                log_u + np.log(u), log_v + np.log(v), np.log(a), np.log(b), scaled_cost
            )
            kernel = plan_from_potentials(log_u, log_v, scaled_cost)
            u = np.ones_like(a)
            v = np.ones_like(b)
        else:
            u = a / kernel_v
            kernel_t_u = kernel.T @ u
            if not np.all(kernel_t_u > 0):
                log_u, log_v = log_domain_iteration(
                    log_u + np.log(u), log_v + np.log(v), np.log(a), np.log(b), scaled_cost
                )
                kernel = plan_from_potentials(log_u, log_v, scaled_cost)
                u = np.ones_like(a)
                v = np.ones_like(b)
            else:
                v = b / kernel_t_u
        iterations += 1

        if (
            np.abs(np.log(u)).max() > LOG_SCALING_BOUND
            or np.abs(np.log(v)).max() > LOG_SCALING_BOUND
        ):
            log_u = log_u + np.log(u)
            log_v = log_v + np.log(v)
            kernel = plan_from_potentials(log_u, log_v, scaled_cost)
            u = np.ones_like(a)
            v = np.ones_like(b)

        # The columns fit exactly after the v update, so the error is the row error.
        kernel_v = kernel @ v
        error = float(np.abs(u * kernel_v - a).sum())
        previous_error = errors[-1] if errors else np.inf
        errors.append(error)
        if error < stop_error:
            break
        if (
            handover_error is not None
            and error < handover_error
            and error > handover_ratio * previous_error
        ):
            break

    return log_u + np.log(u), log_v + np.log(v), iterations
