"""Sinkhorn-Newton-Sparse: entropic optimal transport by sparse Newton steps on the dual.

Implements the method of X. Tang, M. Shavlovsky, H. Rahmanian, E. Tardini,
K. K. Thekumparampil, T. Xiao and L. Ying, "Accelerating Sinkhorn Algorithm with
Sparse Newton Iterations", ICLR 2024: a few Sinkhorn iterations, then Newton
steps on the concave dual whose Hessian keeps only the largest entries of the
current plan, solved by conjugate gradient, with a line search.

The problem is the one of POT's ``ot.sinkhorn`` (POT 0.9):

    min_P ⟨M, P⟩ + reg · Σ_ij P_ij log P_ij   subject to P1 = a, Pᵀ1 = b, P ≥ 0,

whose solution is P = exp((f_i + g_j − M_ij) / reg) for dual potentials f, g
that maximise the concave dual

    D(f, g) = ⟨f, a⟩ + ⟨g, b⟩ − reg · Σ_ij exp((f_i + g_j − M_ij) / reg) + reg · Σ_i a_i

(:func:`hessframe_transport.cost.dual_objective`). Its negative Hessian in
(f, g) is [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]] / reg
(:class:`hessframe_transport.provider.SparseDualHessian`).
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import torch

from hessframe.errors import InvalidArgumentError
from hessframe_transport._backend import (
    ArrayKind,
    array_kind,
    dense_result,
    sparse_result,
    to_float64,
)
from hessframe_transport._checks import (
    check_fraction,
    check_positive_float,
    check_positive_int,
    check_problem,
)
from hessframe_transport._core import SolverOptions, solve

logger = logging.getLogger(__name__)

__all__ = ["ConvergenceWarning", "sinkhorn_newton_sparse"]

#: Marginal error at which the automatic warm-up hands over to Newton steps.
DEFAULT_WARMUP_ERROR = 3e-2

#: The potential of a row or column with zero mass makes its (discarded) plan
#: entries sum to this, the smallest normal float64, so that it stays finite.
EMPTY_MASS = np.finfo(np.float64).tiny


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``numItermax`` before the marginal error reached ``stopThr``."""


def sinkhorn_newton_sparse(
    a: Any,
    b: Any,
    M: Any,
    reg: float,
    numItermax: int = 1000,
    stopThr: float = 1e-9,
    log: bool = False,
    *,
    warmup_iterations: int | None = None,
    density: float | None = None,
    max_density: float = 1.0,
    cg_tol: float = 1e-3,
    cg_max_iter: int = 1000,
    line_search_shrink: float = 0.5,
    normalize: bool = False,
    return_sparse: bool = False,
    verbose: bool = False,
    warn: bool = True,
    warmstart: tuple[Any, Any] | None = None,
) -> Any:
    r"""Solve entropic optimal transport by Sinkhorn warm-up and sparse Newton steps.

    A drop-in replacement for ``ot.sinkhorn(a, b, M, reg)`` and
    ``ot.bregman.sinkhorn_log`` (POT 0.9): the same problem
    min ⟨M, P⟩ + reg·Σ P log P with P1 = a and Pᵀ1 = b, the same argument order,
    and the plan in the type of ``M``.

    The run has two phases, counted together against ``numItermax``:

    1. Log-stabilised Sinkhorn iterations, for ``warmup_iterations`` or, when
       that is None, until the L1 marginal error is below 3e-2 and an
       iteration leaves more than 70% of the error before it. Where Sinkhorn
       contracts faster (large reg), it runs until ``stopThr`` alone.
    2. Newton steps on the dual potentials. Each keeps the ``density``·m
       largest entries of every row and ``density``·n of every column of the
       current plan P in the dual Hessian [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]]/reg
       (the diagonal stays exact), solves the Newton system by Jacobi-
       preconditioned conjugate gradient (with an LU factorisation of the
       same sparse system when conjugate gradient misses ``cg_tol`` within
       ``cg_max_iter`` iterations), and picks the step length by
       backtracking (Armijo) line search on the dual objective. A step that
       the line search rejects is replaced by 10 Sinkhorn iterations, and the
       density doubles (up to ``max_density``). The density also doubles after
       a full-length step that leaves more than a quarter of the marginal error.

    When the costs span more than 2000·reg (max M − min M > 2000 reg), both
    phases first run at the entropic weights 10^K·reg, …, 10·reg, each to a
    marginal error of 1e-3 and each starting from the potentials of the last
    (ε-scaling). The iterations of every stage count against ``numItermax``,
    and ``warmup_iterations`` applies to each stage.

    Rows of ``M`` where ``a`` is zero, and columns where ``b`` is zero, are
    left out of the iteration and get zero plan entries.

    Args:
        a: (n,) source histogram, non-negative; an empty list or None means uniform.
        b: (m,) target histogram, non-negative, with the total of ``a``; an
            empty list or None means uniform.
        M: (n, m) cost matrix, finite and non-negative; numpy array or torch
            tensor (CPU or CUDA, any floating dtype).
        reg: Entropic weight, > 0 (the reg of POT, the inverse of η in the
            paper). Values down to 1e-5 times the cost scale work.
        numItermax: Maximum number of iterations, Sinkhorn and Newton together (a Newton
            step the line search rejects counts as one).
        stopThr: Stop when ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ < stopThr.
        log: Return a dictionary of diagnostics with the plan.
        warmup_iterations: Sinkhorn iterations before the first Newton step of
            each stage; None chooses the count as described above.
        density: Share of each row (and of each column) of the plan that the
            sparsified Hessian keeps, in (0, 1]; None means 2/max(n, m), about
            two entries per row and column, O(n + m) entries in all.
        max_density: Largest density the automatic increases reach, in (0, 1].
        cg_tol: Relative residual at which conjugate gradient stops, in (0, 1).
        cg_max_iter: Maximum number of conjugate-gradient iterations per Newton step
            before the LU fallback.
        line_search_shrink: Factor that shortens the step in the line search, in (0, 1).
        normalize: Divide a and b by their totals instead of raising when the
            totals differ; the plan then has total mass one.
        return_sparse: Return the plan as a ``scipy.sparse.csr_matrix`` (numpy
            input) or a coalesced torch sparse COO tensor (torch input),
            without the entries below the output dtype's machine epsilon times
            the largest entry. Their total is ``log["sparse_dropped_mass"]``.
        verbose: Log every phase at INFO instead of DEBUG level (logger
            ``hessframe_transport.solver``).
        warn: Emit a :class:`ConvergenceWarning` when not converged (a log
            record at WARNING level, with the attribute ``convergence=True``
            for filters, is written either way).
        warmstart: Starting log-potentials (log_u, log_v) of lengths n and m,
            as in ``ot.bregman.sinkhorn_log`` (for example ``log["log_u"]``
            and ``log["log_v"]`` of an earlier run). Only their entries on the
            supports of a and b are used, and no ε-scaling stages are run.

    Returns:
        The (n, m) plan, as a numpy array or torch tensor with the dtype and
        device of ``M`` (float64 when ``M`` holds integers), or sparse as
        described above. With ``log=True``, the pair (plan, log), where log has:

        - ``"f"``, ``"g"``: dual potentials, (n,) and (m,), with
          P = exp((f ⊕ g − M)/reg), in the type of the plan.
        - ``"log_u"``, ``"log_v"``: f/reg and g/reg, the names of
          ``ot.bregman.sinkhorn_log``, so that P = exp(log_u ⊕ log_v − M/reg).
        - ``"n_sinkhorn_iterations"``, ``"n_newton_iterations"``: iterations of
          each phase; ``"n_failed_newton_steps"``: steps rejected by the line search;
          ``"niter"``: their sum.
        - ``"err"``: list of the L1 marginal error after each iteration.
        - ``"density"``: list of the share of plan entries kept in the
          Hessian of each Newton step; ``"n_cg_iterations"``: list of the
          conjugate-gradient iterations of each Newton step.
        - ``"time"``: seconds spent in the iteration; ``"converged"``: whether
          the error went below ``stopThr``; ``"sparse_dropped_mass"`` with
          ``return_sparse``.

        The iteration runs in float64, and ``"err"`` and ``"converged"`` refer to
        its float64 plan. Rounding the plan to float32 adds a marginal error of
        about 1e-7 times the total mass.

        Potentials of rows (columns) with zero mass are finite: they are set so
        that those rows (columns) would carry mass 2.2e-308.

    Raises:
        InvalidArgumentError: An argument is invalid: a negative, NaN or
            infinite mass or cost, marginals whose totals differ (without
            ``normalize``), shapes of a, b and M that disagree, reg ≤ 0, or an
            option outside its range.

    Warns:
        ConvergenceWarning: ``numItermax`` iterations did not bring the
            marginal error below ``stopThr``; the message gives the error reached.
            A run that stops inside the ε-scaling stages returns the plan at
            ``reg`` from potentials of a larger reg, which can underflow to
            (almost) zero mass, so an L1 error near twice the total mass. The
            plan stays finite, and the message says when it kept less than half
            of the mass; more iterations or a larger reg fix it.

    NOTE: Torch inputs are copied to float64 numpy arrays on the CPU and the
    results copied back, so CUDA tensors are accepted but not solved on the GPU.
    """
    kind = array_kind(a, b, M)
    problem = check_problem(a, b, M, reg, normalize)
    options = _check_options(
        problem.M.shape,
        numItermax=numItermax,
        stopThr=stopThr,
        warmup_iterations=warmup_iterations,
        density=density,
        max_density=max_density,
        cg_tol=cg_tol,
        cg_max_iter=cg_max_iter,
        line_search_shrink=line_search_shrink,
        verbose=verbose,
    )

    rows = np.flatnonzero(problem.a > 0)
    columns = np.flatnonzero(problem.b > 0)
    scaled_cost = problem.M / problem.reg
    full_support = rows.size == problem.a.size and columns.size == problem.b.size
    support_cost = scaled_cost if full_support else scaled_cost[np.ix_(rows, columns)]
    initial = None
    if warmstart is not None:
        initial = _check_warmstart(warmstart, rows, columns, problem.M.shape)
    state = solve(problem.a[rows], problem.b[columns], support_cost, options, initial)

    log_u, log_v = _full_potentials(state.log_u, state.log_v, rows, columns, scaled_cost)
    converged = state.error < options.stop_error
    if not converged:
        message = (
            f"sinkhorn_newton_sparse stopped after {state.n_iterations} iterations "
            f"(numItermax={numItermax}) with L1 marginal error {state.error:.3e}, above "
            f"stopThr={stopThr:.3e}; raise numItermax or reg, or loosen stopThr"
        )
        plan_mass = float(state.plan.sum())
        if plan_mass < 0.5 * float(problem.a.sum()):
            message += (
                f". The plan has underflowed to total mass {plan_mass:.3g}, because the run "
                "stopped inside the ε-scaling stages at larger reg"
            )
        # The extra attribute lets callers that report the result themselves drop this record.
        logger.warning(message, extra={"convergence": True})
        if warn:
            warnings.warn(message, ConvergenceWarning, stacklevel=2)
    logger.log(
        options.log_level,
        "sinkhorn_newton_sparse: %d Sinkhorn and %d Newton iterations, marginal error %.3e, %.3f s",
        state.n_sinkhorn_iterations,
        state.n_newton_iterations,
        state.error,
        state.elapsed_seconds,
    )

    shape = problem.M.shape
    log_dict: dict[str, Any] = {}
    if return_sparse:
        plan, dropped_mass = _sparse_plan(state.plan, rows, columns, shape, kind)
        log_dict["sparse_dropped_mass"] = dropped_mass
    else:
        if full_support:
            full_plan = state.plan
        else:
            full_plan = np.zeros(shape)
            full_plan[np.ix_(rows, columns)] = state.plan
        plan = dense_result(full_plan, kind)
    if not log:
        return plan

    log_dict.update(
        {
            "f": dense_result(problem.reg * log_u, kind),
            "g": dense_result(problem.reg * log_v, kind),
            "log_u": dense_result(log_u, kind),
            "log_v": dense_result(log_v, kind),
            "n_sinkhorn_iterations": state.n_sinkhorn_iterations,
            "n_newton_iterations": state.n_newton_iterations,
            "n_failed_newton_steps": state.n_failed_newton_steps,
            "niter": state.n_iterations,
            "err": list(state.errors),
            "density": list(state.densities),
            "n_cg_iterations": list(state.cg_iterations),
            "time": state.elapsed_seconds,
            "converged": converged,
        }
    )
    return plan, log_dict


def _check_options(
    shape: tuple[int, int],
    *,
    numItermax: Any,
    stopThr: Any,
    warmup_iterations: Any,
    density: Any,
    max_density: Any,
    cg_tol: Any,
    cg_max_iter: Any,
    line_search_shrink: Any,
    verbose: bool,
) -> SolverOptions:
    """Check the solver options and return them as :class:`SolverOptions`."""
    max_iterations = check_positive_int(numItermax, "numItermax")
    stop_error = check_positive_float(stopThr, "stopThr")
    if warmup_iterations is not None:
        warmup_iterations = check_positive_int(warmup_iterations, "warmup_iterations", minimum=0)
    max_density = check_fraction(max_density, "max_density")
    if density is None:
        density = min(2.0 / max(shape), max_density)
    density = check_fraction(density, "density")
    if density > max_density:
        raise InvalidArgumentError(
            f"density ({density:.6g}) must not exceed max_density ({max_density:.6g})"
        )
    return SolverOptions(
        max_iterations=max_iterations,
        stop_error=stop_error,
        warmup_iterations=warmup_iterations,
        warmup_error=DEFAULT_WARMUP_ERROR,
        density=density,
        max_density=max_density,
        cg_tol=check_fraction(cg_tol, "cg_tol", include_one=False),
        cg_max_iter=check_positive_int(cg_max_iter, "cg_max_iter"),
        line_search_shrink=check_fraction(
            line_search_shrink, "line_search_shrink", include_one=False
        ),
        log_level=logging.INFO if verbose else logging.DEBUG,
    )


def _check_warmstart(
    warmstart: Any, rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the warm-start log-potentials restricted to the supports, after checking them."""
    if not isinstance(warmstart, tuple | list) or len(warmstart) != 2:
        raise InvalidArgumentError(
            f"warmstart must be a pair (log_u, log_v) of 1-D arrays, got {type(warmstart).__name__}"
        )
    potentials = []
    for name, value, size, support in (
        ("warmstart[0] (log_u)", warmstart[0], shape[0], rows),
        ("warmstart[1] (log_v)", warmstart[1], shape[1], columns),
    ):
        array = to_float64(value, name)
        if array.shape != (size,):
            raise InvalidArgumentError(f"{name} must have shape ({size},), got {array.shape}")
        restricted = array[support]
        if not np.all(np.isfinite(restricted)):
            raise InvalidArgumentError(f"{name} must be finite where the marginal is positive")
        potentials.append(restricted)
    return potentials[0], potentials[1]


def _full_potentials(
    log_u: np.ndarray,
    log_v: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    scaled_cost: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the support's log-potentials back, with finite values off the support.

    A row i outside the support gets log_u_i = log(EMPTY_MASS) − log Σ_j exp(log_v_j − M_ij/reg)
    over the support columns, so its plan entries would sum to EMPTY_MASS; columns likewise.
    """
    n, m = scaled_cost.shape
    full_u = np.empty(n)
    full_v = np.empty(m)
    full_u[rows] = log_u
    full_v[columns] = log_v
    empty_rows = np.setdiff1d(np.arange(n), rows)
    empty_columns = np.setdiff1d(np.arange(m), columns)
    if empty_rows.size:
        exponents = log_v[None, :] - scaled_cost[np.ix_(empty_rows, columns)]
        full_u[empty_rows] = math.log(EMPTY_MASS) - _logsumexp(exponents)
    if empty_columns.size:
        exponents = (log_u[:, None] - scaled_cost[np.ix_(rows, empty_columns)]).T
        full_v[empty_columns] = math.log(EMPTY_MASS) - _logsumexp(exponents)
    return full_u, full_v


def _logsumexp(values: np.ndarray) -> np.ndarray:
    top = values.max(axis=1)
    return top + np.log(np.exp(values - top[:, None]).sum(axis=1))


def _sparse_plan(
    plan: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    shape: tuple[int, int],
    kind: ArrayKind,
) -> tuple[Any, float]:
    """Return the plan without entries below eps·max(P) as a sparse matrix, and their total."""
    if kind.framework == "torch":
        eps = torch.finfo(kind.dtype).eps
    else:
        eps = float(np.finfo(kind.dtype).eps)
    keep = plan >= eps * plan.max()
    kept_rows, kept_columns = np.nonzero(keep)
    dropped_mass = float(plan.sum() - plan[keep].sum())
    sparse = sparse_result(rows[kept_rows], columns[kept_columns], plan[keep], shape, kind)
    return sparse, dropped_mass
