"""The Sinkhorn-Newton-Sparse iteration on float64 numpy arrays.

This module assumes checked input: positive marginals with equal totals, a
finite non-negative cost matrix and reg > 0. The public entry point
:func:`hessframe_transport.solver.sinkhorn_newton_sparse` does the checking,
the restriction to the supports of the marginals and the conversions.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from hessframe_transport._newton import (
    ARMIJO_FRACTION,
    dual_increase,
    solve_newton_system,
    sparsify_plan,
)
from hessframe_transport._sinkhorn import (
    log_domain_iteration,
    marginal_error,
    plan_from_potentials,
    sinkhorn_iterations,
)

logger = logging.getLogger("hessframe_transport.solver")

#: Sinkhorn iterations run after a Newton step fails, before Newton is tried again.
FALLBACK_SINKHORN_ITERATIONS = 10

#: Step lengths tried by the line search before a Newton step counts as failed.
MAX_BACKTRACKS = 30

#: A Newton step that leaves more than this share of the marginal error doubles
#: the density, because the dropped entries of the plan then slow convergence.
SLOW_PROGRESS_RATIO = 0.25

#: The automatic warm-up hands over to Newton steps once a Sinkhorn iteration
#: leaves more than this share of the marginal error. A Newton step costs
#: about as much as 10 to 20 Sinkhorn iterations (an estimate from the 500×500
#: cases of benchmarks/transport_sns.py). At this ratio those iterations reduce
#: the error by about 0.7^15 ≈ 0.005, less than a Newton step does.
SINKHORN_HANDOVER_RATIO = 0.7

#: Costs spanning more than this many times reg start with ε-scaling stages.
ANNEALING_COST_RANGE = 2000.0

#: Marginal error at which an ε-scaling stage hands over to the next.
ANNEALING_STOP_ERROR = 1e-3

#: A step whose largest growth max s_u + max s_v of the log-plan is at most
#: this is evaluated and applied by scaling the rows and columns of the
#: current plan. That avoids the exponentials over the whole matrix and adds a
#: relative rounding error of a few machine epsilons per step. Larger steps
#: rebuild the plan from the potentials, so that entries that underflowed to
#: zero are accounted for.
MAX_MULTIPLICATIVE_LOG_STEP = 5.0


@dataclass(frozen=True)
class SolverOptions:
    """Options of the Sinkhorn-Newton-Sparse iteration, checked by the caller."""

    max_iterations: int
    stop_error: float
    warmup_iterations: int | None
    warmup_error: float
    density: float
    max_density: float
    cg_tol: float
    cg_max_iter: int
    line_search_shrink: float
    log_level: int = logging.DEBUG


@dataclass
class SolverState:
    """Potentials, plan and history of one run."""

    log_u: np.ndarray
    log_v: np.ndarray
    plan: np.ndarray = field(repr=False)
    error: float
    errors: list[float] = field(default_factory=list)
    densities: list[float] = field(default_factory=list)
    cg_iterations: list[int] = field(default_factory=list)
    n_sinkhorn_iterations: int = 0
    n_newton_iterations: int = 0
    n_failed_newton_steps: int = 0
    elapsed_seconds: float = 0.0

    @property
    def n_iterations(self) -> int:
        return self.n_sinkhorn_iterations + self.n_newton_iterations + self.n_failed_newton_steps


def solve(
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    options: SolverOptions,
    initial: tuple[np.ndarray, np.ndarray] | None = None,
) -> SolverState:
    """Run the warm-up Sinkhorn iterations, then sparse Newton steps, until converged.

    When the costs span more than ``ANNEALING_COST_RANGE`` times reg, the
    problem is first solved to a marginal error of ``ANNEALING_STOP_ERROR`` at
    entropic weights 10^k·reg, k = K, …, 1, each solution starting the next
    (ε-scaling, as in B. Schmitzer, arXiv:1610.06519). Far from the
    optimum of a problem with small reg, Newton steps are cut short by the line
    search, and this keeps every stage close to its optimum.

    Args:
        a, b: Positive marginals with equal totals.
        scaled_cost: M / reg, finite.
        options: Stopping rule, densities and inner solver settings.
        initial: Starting log-potentials (log_u, log_v); they replace the
            ε-scaling stages and the hard c-transform start.

    Returns:
        The final state; ``state.error`` is the L1 marginal error of ``state.plan``.
    """
    start = time.perf_counter()
    if initial is None:
        factors = annealing_factors(float(scaled_cost.max() - scaled_cost.min()))
        stage_cost = scaled_cost / factors[0]
        log_u, log_v = _initial_potentials(a, b, stage_cost)
    else:
        factors = [1.0]
        stage_cost = scaled_cost
        log_u, log_v = initial
    plan = plan_from_potentials(log_u, log_v, stage_cost)
    if not np.all(np.isfinite(plan)):
        # A warm start far from the optimum can overflow the plan; one
        # log-domain iteration brings every row and column back to its marginal.
        log_u, log_v = log_domain_iteration(log_u, log_v, np.log(a), np.log(b), stage_cost)
        plan = plan_from_potentials(log_u, log_v, stage_cost)
    state = SolverState(log_u, log_v, plan, marginal_error(plan, a, b))

    density = options.density
    for index, factor in enumerate(factors):
        final = index == len(factors) - 1
        if index > 0:
            state.log_u = state.log_u * (factors[index - 1] / factor)
            state.log_v = state.log_v * (factors[index - 1] / factor)
            stage_cost = scaled_cost / factor
            state.plan = plan_from_potentials(state.log_u, state.log_v, stage_cost)
            state.error = marginal_error(state.plan, a, b)
        stop_error = options.stop_error if final else max(options.stop_error, ANNEALING_STOP_ERROR)
        logger.log(
            options.log_level,
            "stage with entropic weight %g·reg, stopping at marginal error %.1e",
            factor,
            stop_error,
        )
        _warm_up(state, a, b, stage_cost, options, stop_error)
        density = _newton_phase(state, a, b, stage_cost, density, options, stop_error)

    state.elapsed_seconds = time.perf_counter() - start
    return state


def _initial_potentials(
    a: np.ndarray, b: np.ndarray, scaled_cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return log-potentials whose plan satisfies P_ij ≤ a_i b_j, with equality in every column.

    They are hard c-transforms of C = M/reg: log_u_i = log a_i + r_i with
    r_i = min_j C_ij, and log_v_j = log b_j + min_i (C_ij − r_i). This takes two
    passes of min instead of the two log-sum-exp passes of a log-domain iteration.
    """
    row_minimum = scaled_cost.min(axis=1)
    log_u = np.log(a) + row_minimum
    log_v = np.log(b) + (scaled_cost - row_minimum[:, None]).min(axis=0)
    return log_u, log_v


def annealing_factors(cost_range: float) -> list[float]:
    """Return the factors 10^K, …, 10, 1 of reg for the ε-scaling stages.

    K is the smallest integer with cost_range / 10^K ≤ ANNEALING_COST_RANGE,
    where cost_range = (max M − min M)/reg.
    """
    stages = 0
    while cost_range / 10.0**stages > ANNEALING_COST_RANGE:
        stages += 1
    return [10.0**k for k in range(stages, -1, -1)]


def _newton_phase(
    state: SolverState,
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    density: float,
    options: SolverOptions,
    stop_error: float,
) -> float:
    """Take Newton steps until the error is below ``stop_error``; return the density reached."""
    while state.error >= stop_error and state.n_iterations < options.max_iterations:
        previous_error = state.error
        length = _newton_step(state, a, b, scaled_cost, density, options)
        if length > 0.0:
            # A full step that still leaves much of the error points at the
            # dropped entries; a shortened one at the distance from the optimum.
            slow = length == 1.0 and state.error > SLOW_PROGRESS_RATIO * previous_error
            if slow and density < options.max_density:
                density = min(2.0 * density, options.max_density)
                logger.log(
                    options.log_level, "slow Newton progress; density raised to %.3g", density
                )
            continue
        state.n_failed_newton_steps += 1
        if density < options.max_density:
            density = min(2.0 * density, options.max_density)
        logger.log(
            options.log_level,
            "Newton step failed at marginal error %.3e; density raised to %.3g, "
            "running %d Sinkhorn iterations",
            state.error,
            density,
            FALLBACK_SINKHORN_ITERATIONS,
        )
        _sinkhorn_steps(state, a, b, scaled_cost, FALLBACK_SINKHORN_ITERATIONS, options, stop_error)
    return density


def _warm_up(
    state: SolverState,
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    options: SolverOptions,
    stop_error: float,
) -> None:
    """Run the Sinkhorn warm-up.

    With ``warmup_iterations`` set, run that many iterations. Otherwise run
    until the error is below ``warmup_error`` and an iteration reduces it by
    less than the factor ``SINKHORN_HANDOVER_RATIO``. At large reg Sinkhorn
    contracts fast and then finishes the problem alone.
    """
    if options.warmup_iterations is not None:
        _sinkhorn_steps(state, a, b, scaled_cost, options.warmup_iterations, options, stop_error)
        return
    _sinkhorn_steps(
        state,
        a,
        b,
        scaled_cost,
        options.max_iterations,
        options,
        stop_error,
        handover_error=options.warmup_error,
    )


def _sinkhorn_steps(
    state: SolverState,
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    count: int,
    options: SolverOptions,
    stop_error: float | None = None,
    handover_error: float | None = None,
) -> None:
    count = min(count, options.max_iterations - state.n_iterations)
    if count <= 0:
        return
    first = len(state.errors)
    state.log_u, state.log_v, done = sinkhorn_iterations(
        state.log_u,
        state.log_v,
        a,
        b,
        scaled_cost,
        count,
        options.stop_error if stop_error is None else stop_error,
        state.errors,
        handover_error=handover_error,
        handover_ratio=SINKHORN_HANDOVER_RATIO,
    )
    state.n_sinkhorn_iterations += done
    state.plan = plan_from_potentials(state.log_u, state.log_v, scaled_cost)
    state.error = marginal_error(state.plan, a, b)
    # The last recorded error came from the scalings; replace it by the error of the rebuilt plan.
    if len(state.errors) > first:
        state.errors[-1] = state.error
    logger.log(options.log_level, "%d Sinkhorn iterations: marginal error %.3e", done, state.error)


def _newton_step(
    state: SolverState,
    a: np.ndarray,
    b: np.ndarray,
    scaled_cost: np.ndarray,
    density: float,
    options: SolverOptions,
) -> float:
    """Take one sparse Newton step with line search; return its length, or 0 when it fails."""
    n_rows, n_columns = scaled_cost.shape
    plan = state.plan
    row_sums = plan.sum(axis=1)
    column_sums = plan.sum(axis=0)
    row_gradient = a - row_sums
    column_gradient = b - column_sums

    per_row = max(1, math.ceil(density * n_columns - 1e-9))
    per_column = max(1, math.ceil(density * n_rows - 1e-9))
    sparse_plan = sparsify_plan(plan, per_row, per_column)
    solution = solve_newton_system(
        row_sums,
        column_sums,
        sparse_plan,
        np.concatenate([row_gradient, column_gradient]),
        options.cg_tol,
        options.cg_max_iter,
    )
    step_u = solution.direction[:n_rows]
    step_v = solution.direction[n_rows:]
    slope = float(step_u @ row_gradient + step_v @ column_gradient)
    state.densities.append(sparse_plan.nnz / (n_rows * n_columns))
    state.cg_iterations.append(solution.cg_iterations)
    if not slope > 0.0:
        return 0.0

    length = 1.0
    for _ in range(MAX_BACKTRACKS):
        trial_u = length * step_u
        trial_v = length * step_v
        if trial_u.max() + trial_v.max() > MAX_MULTIPLICATIVE_LOG_STEP:
            # Entries of P that underflowed to zero may grow by e^{s_u + s_v};
            # only a plan rebuilt from the potentials accounts for them.
            new_plan = plan_from_potentials(
                state.log_u + trial_u, state.log_v + trial_v, scaled_cost
            )
            with np.errstate(over="ignore", invalid="ignore"):
                increase = float(trial_u @ a + trial_v @ b - (new_plan.sum() - plan.sum()))
            if not np.isfinite(increase):
                increase = -np.inf
        else:
            new_plan = None
            increase = dual_increase(
                trial_u, trial_v, plan, row_gradient, column_gradient, row_sums, column_sums
            )
        if increase >= ARMIJO_FRACTION * length * slope:
            break
        length *= options.line_search_shrink
    else:
        return 0.0

    log_u = state.log_u + trial_u
    log_v = state.log_v + trial_v
    if new_plan is None:
        new_plan = plan * np.exp(trial_u)[:, None]
        new_plan *= np.exp(trial_v)[None, :]
    new_error = marginal_error(new_plan, a, b)
    if not np.isfinite(new_error):
        return 0.0
    state.log_u, state.log_v, state.plan, state.error = log_u, log_v, new_plan, new_error
    state.errors.append(new_error)
    state.n_newton_iterations += 1
    logger.log(
        options.log_level,
        "Newton iteration %d: marginal error %.3e, step %.3g, density %.3g, "
        "%d conjugate-gradient iterations (relative residual %.1e)",
        state.n_newton_iterations,
        new_error,
        length,
        state.densities[-1],
        solution.cg_iterations,
        solution.relative_residual,
    )
    return length
