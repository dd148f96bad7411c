"""Sparse Newton steps on the entropic optimal transport dual.

In log-potentials x = (log_u, log_v) the dual objective, divided by reg, is

    F(x) = ⟨log_u, a⟩ + ⟨log_v, b⟩ − Σ_ij P_ij,   P_ij = exp(log_u_i + log_v_j − M_ij/reg),

a concave function with gradient (a − P1, b − Pᵀ1) and Hessian −B, where

    B = [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]].

A Newton step solves B̃ d = ∇F with B̃ the matrix B whose off-diagonal blocks
keep only the largest entries of P (the diagonal stays exact). B̃ is
symmetric and diagonally dominant, so it is positive semidefinite. Its only
possible null direction is (1, −1), and the gradient is orthogonal to it when
the marginals have equal totals. The system is solved by conjugate gradient
with a Jacobi preconditioner and a small shift (or by LU factorisation when
conjugate gradient stalls), and the step length by
backtracking (Armijo) line search on F (Tang et al., "Accelerating Sinkhorn
Algorithm with Sparse Newton Iterations", ICLR 2024, Algorithm 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

#: Armijo constant: a step t is accepted when F rises by at least this share
#: of the first-order prediction t ⟨∇F, d⟩.
ARMIJO_FRACTION = 1e-4

#: Shift added to the diagonal of B̃, relative to its largest diagonal entry,
#: which makes the null direction (1, −1) harmless to conjugate gradient.
RELATIVE_SHIFT = 1e-12

#: Above this share of kept entries, products with P̃ use a dense array
#: (BLAS), which is then faster than a sparse matrix.
DENSE_PRODUCT_DENSITY = 0.1

#: Up to this many entries per row are found by repeated argmax, more by argpartition.
REPEATED_ARGMAX_LIMIT = 8


def sparsify_plan(plan: np.ndarray, per_row: int, per_column: int) -> scipy.sparse.csr_matrix:
    """Keep the ``per_row`` largest entries of each row and ``per_column`` of each column.

    Keeping entries per row and per column (rather than the largest entries
    overall) keeps every row and column of the bipartite graph of B̃ connected
    to at least one partner, however uneven the plan.

    Returns:
        A CSR matrix with the kept entries of ``plan`` (their union, without duplicates).
    """
    n_rows, n_columns = plan.shape
    if per_row >= n_columns or per_column >= n_rows:
        flat = np.arange(plan.size)
    else:
        flat = np.unique(
            np.concatenate(
                [
                    _largest_flat_indices(plan, per_row, 1),
                    _largest_flat_indices(plan, per_column, 0),
                ]
            )
        )
    rows, columns = np.divmod(flat, n_columns)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return scipy.sparse.csr_matrix((plan.ravel()[flat], columns, indptr), shape=(n_rows, n_columns))


def _largest_flat_indices(values: np.ndarray, count: int, axis: int) -> np.ndarray:
    """Return the row-major flat indices of the ``count`` largest entries along ``axis``."""
    n_rows, n_columns = values.shape
    if axis == 1:
        lines = np.arange(n_rows)
        to_flat = lambda line, position: line * n_columns + position  # noqa: E731
    else:
        lines = np.arange(n_columns)
        to_flat = lambda line, position: position * n_columns + line  # noqa: E731
    if count <= REPEATED_ARGMAX_LIMIT:
        # A few argmax passes over a copy are faster than one argpartition.
        remaining = values.copy()
        found = []
        for _ in range(count):
            position = remaining.argmax(axis=axis)
            found.append(to_flat(lines, position))
            if axis == 1:
                remaining[lines, position] = -np.inf
            else:
                remaining[position, lines] = -np.inf
        return np.concatenate(found)
    size = values.shape[axis]
    positions = np.argpartition(values, size - count, axis=axis)
    if axis == 1:
        top = positions[:, size - count :]
        return to_flat(lines[:, None], top).ravel()
    top = positions[size - count :, :]
    return to_flat(lines[None, :], top).ravel()


@dataclass(frozen=True)
class NewtonSystemSolution:
    """Solution of the Newton system B̃ d = ∇F.

    Attributes:
        direction: d.
        cg_iterations: Conjugate-gradient iterations spent.
        relative_residual: ‖r‖/‖rhs‖ of d in the Jacobi-scaled system.
        direct: Whether d came from an LU factorisation after conjugate
            gradient missed its tolerance.
    """

    direction: np.ndarray
    cg_iterations: int
    relative_residual: float
    direct: bool


class _ScaledSystem:
    """The Jacobi-scaled Newton matrix A = D^(-1/2) (B̃ + εI) D^(-1/2) = I + [[0, S], [Sᵀ, 0]]."""

    def __init__(
        self, row_sums: np.ndarray, column_sums: np.ndarray, sparse_plan: scipy.sparse.csr_matrix
    ) -> None:
        diagonal = np.concatenate([row_sums, column_sums])
        diagonal += RELATIVE_SHIFT * diagonal.max()
        self.scale = 1.0 / np.sqrt(diagonal)
        self.n_rows = row_sums.shape[0]
        self.dense_coupling: np.ndarray | None = None
        self.off_diagonal: scipy.sparse.csr_matrix | None = None
        n_rows, n_columns = sparse_plan.shape
        if sparse_plan.nnz > DENSE_PRODUCT_DENSITY * n_rows * n_columns:
            coupling = sparse_plan.toarray()
            coupling *= self.scale[:n_rows, None]
            coupling *= self.scale[None, n_rows:]
            self.dense_coupling = coupling
        else:
            self.off_diagonal = _symmetric_off_diagonal(sparse_plan, self.scale)

    def apply(self, vector: np.ndarray) -> np.ndarray:
        """Return A vector."""
        if self.off_diagonal is not None:
            product = self.off_diagonal @ vector
            product += vector
            return product
        n_rows = self.n_rows
        product = vector.copy()
        product[:n_rows] += self.dense_coupling @ vector[n_rows:]
        product[n_rows:] += self.dense_coupling.T @ vector[:n_rows]
        return product

    def solve_directly(self, rhs: np.ndarray) -> np.ndarray | None:
        """Return A⁻¹ rhs by LU factorisation, or None when the factorisation fails."""
        size = rhs.shape[0]
        try:
            if self.off_diagonal is not None:
                matrix = (self.off_diagonal + scipy.sparse.identity(size, format="csr")).tocsc()
                return scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A").solve(rhs)
            n_rows = self.n_rows
            matrix = np.eye(size)
            matrix[:n_rows, n_rows:] = self.dense_coupling
            matrix[n_rows:, :n_rows] = self.dense_coupling.T
            return scipy.linalg.solve(matrix, rhs, assume_a="sym")
        except (RuntimeError, np.linalg.LinAlgError, ValueError):
            return None


def solve_newton_system(
    row_sums: np.ndarray,
    column_sums: np.ndarray,
    sparse_plan: scipy.sparse.csr_matrix,
    gradient: np.ndarray,
    tolerance: float,
    max_iterations: int,
) -> NewtonSystemSolution:
    """Solve (B̃ + εI) d = gradient by Jacobi-preconditioned conjugate gradient.

    The Jacobi preconditioner is applied symmetrically: conjugate gradient runs
    on A = D^(-1/2) (B̃ + εI) D^(-1/2), whose diagonal is one, with D the
    diagonal of B̃ + εI. This is the same iteration as preconditioned conjugate
    gradient with D. When the plan is close to a permutation, A is nearly
    singular in many directions and conjugate gradient can stall. If it has not
    reached ``tolerance`` after ``max_iterations`` iterations, A is factorised
    (sparse LU with minimum-degree ordering, or dense LU above 10% density) and
    the direct solution is used when its residual is smaller.

    Args:
        row_sums, column_sums: P1 and Pᵀ1, the diagonal of B̃.
        sparse_plan: The kept entries of P, the off-diagonal block of B̃.
        gradient: (a − P1, b − Pᵀ1), of length n + m.
        tolerance: Stop when the scaled residual is at most ``tolerance``
            times the scaled right-hand side.
        max_iterations: Maximum number of conjugate-gradient iterations.

    Returns:
        The direction d (the iterate of smallest residual when neither solver
        reached the tolerance) with how it was found.
    """
    system = _ScaledSystem(row_sums, column_sums, sparse_plan)
    rhs = system.scale * gradient
    rhs_norm = float(np.linalg.norm(rhs))
    if rhs_norm == 0.0:
        return NewtonSystemSolution(np.zeros_like(rhs), 0, 0.0, False)

    solution, iterations, residual_norm = _conjugate_gradient(
        system.apply, rhs, tolerance * rhs_norm, max_iterations
    )
    relative_residual = residual_norm / rhs_norm
    direct = False
    if relative_residual > tolerance:
        direct_solution = system.solve_directly(rhs)
        if direct_solution is not None:
            direct_residual = float(np.linalg.norm(rhs - system.apply(direct_solution))) / rhs_norm
            if direct_residual < relative_residual:
                solution, relative_residual, direct = direct_solution, direct_residual, True
    return NewtonSystemSolution(system.scale * solution, iterations, relative_residual, direct)


def _conjugate_gradient(
    apply: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
    threshold: float,
    max_iterations: int,
) -> tuple[np.ndarray, int, float]:
    """Run conjugate gradient from zero until the residual norm is at most ``threshold``.

    Returns:
        The iterate of smallest residual, the iterations spent and that residual's norm.
    """
    solution = np.zeros_like(rhs)
    residual = rhs.copy()
    search = residual.copy()
    residual_dot = float(residual @ residual)
    best_solution = solution.copy()
    best_residual_dot = residual_dot
    iterations = 0
    while iterations < max_iterations and residual_dot > threshold * threshold:
        product = apply(search)
        curvature = float(search @ product)
        if curvature <= 0.0:
            break
        step = residual_dot / curvature
        solution += step * search
        residual -= step * product
        iterations += 1
        new_residual_dot = float(residual @ residual)
        if new_residual_dot < best_residual_dot:
            best_solution[:] = solution
            best_residual_dot = new_residual_dot
        search *= new_residual_dot / residual_dot
        search += residual
        residual_dot = new_residual_dot
    return best_solution, iterations, float(np.sqrt(best_residual_dot))


def _symmetric_off_diagonal(
    sparse_plan: scipy.sparse.csr_matrix, scale: np.ndarray
) -> scipy.sparse.csr_matrix:
    """Return [[0, S], [Sᵀ, 0]] with S = diag(scale_rows) P̃ diag(scale_columns), as one CSR matrix.

    The blocks are stacked by hand from the CSR arrays of S and Sᵀ, which is
    cheaper than ``scipy.sparse.bmat`` and lets conjugate gradient make one
    sparse product per iteration instead of two.
    """
    n_rows, n_columns = sparse_plan.shape
    coupling = sparse_plan.copy()
    coupling.data *= np.repeat(scale[:n_rows], np.diff(coupling.indptr))
    coupling.data *= scale[n_rows:][coupling.indices]
    transposed = coupling.T.tocsr()
    indptr = np.concatenate([coupling.indptr, coupling.nnz + transposed.indptr[1:]])
    indices = np.concatenate([coupling.indices + n_rows, transposed.indices])
    data = np.concatenate([coupling.data, transposed.data])
    size = n_rows + n_columns
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=(size, size))


def _exp_minus_one_minus_identity(x: np.ndarray) -> np.ndarray:
    """Return e^x − 1 − x without cancellation for small |x|."""
    small = np.abs(x) < 1e-3
    series = x * x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0)))
    return np.where(small, series, np.expm1(x) - x)


def dual_increase(
    step_u: np.ndarray,
    step_v: np.ndarray,
    plan: np.ndarray,
    row_gradient: np.ndarray,
    column_gradient: np.ndarray,
    row_sums: np.ndarray,
    column_sums: np.ndarray,
) -> float:
    """Return F(x + s) − F(x) for a step s = (step_u, step_v) in the log-potentials.

    The difference is accumulated from small terms so that it stays accurate
    near the optimum, where F(x + s) and F(x) agree in all but their last digits:

        F(x+s) − F(x) = ⟨s_u, a − P1⟩ + ⟨s_v, b − Pᵀ1⟩
                        − (e^{s_u} − 1)ᵀ P (e^{s_v} − 1) − ⟨P1, φ(s_u)⟩ − ⟨Pᵀ1, φ(s_v)⟩,

    with φ(x) = e^x − 1 − x, which follows from
    e^{x+y} − 1 − x − y = (e^x − 1)(e^y − 1) + φ(x) + φ(y).

    Returns:
        The increase, or −inf when the step overflows.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        grow_u = np.expm1(step_u)
        grow_v = np.expm1(step_v)
        cross = float(grow_u @ (plan @ grow_v))
        increase = (
            float(step_u @ row_gradient)
            + float(step_v @ column_gradient)
            - cross
            - float(row_sums @ _exp_minus_one_minus_identity(step_u))
            - float(column_sums @ _exp_minus_one_minus_identity(step_v))
        )
    return increase if np.isfinite(increase) else -np.inf
