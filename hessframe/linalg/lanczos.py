"""Extreme eigenpairs of a symmetric operator by (block) Lanczos with full reorthogonalisation.

The method builds an orthonormal basis V of the Krylov space
span{q, Hq, H²q, …} (Lanczos 1950, "An iteration method for the solution of
the eigenvalue problem of linear differential and integral operators",
J. Res. Nat. Bur. Standards 45) and takes Ritz pairs (θ, V s) from the
eigendecomposition of the projected matrix T = Vᵀ H V. Every new vector is
orthogonalised twice against the whole basis (classical Gram-Schmidt with one
reorthogonalisation) at O(n·m) work per step. This removes the loss of
orthogonality that Paige (1971) traced to converged Ritz vectors (Golub & Van
Loan, "Matrix Computations", 4th ed., §10.1 and §10.3).

After each step H V = V T + R Eₘᵀ holds with a residual block R = Q B whose
columns are orthogonal to V, so the residual of a Ritz pair (θ, V s) is
r = ‖B sₘ‖, where sₘ holds the last block of s. Two stopping rules use it:

- ``criterion="eigenvalue"`` bounds the error of the Ritz value. Some
  eigenvalue λ lies within r of θ, and if the rest of the spectrum is at
  distance δ > 0 from θ, then |λ − θ| ≤ r²/δ, the Kato-Temple
  bound (Parlett, "The Symmetric Eigenvalue Problem", SIAM 1998, chapter
  11). The distance δ is estimated from the other Ritz values θⱼ and their
  residuals rⱼ as min over j of |θ − θⱼ| − rⱼ, so a pair stops when
  min(r, r²/δ) ≤ tol·|θ| + 10·ε·max|θ|, where ε is the machine epsilon of
  the operator's dtype and the last term is the rounding level of a Ritz
  value. Because the bound is quadratic in r, it is met after fewer
  steps than a residual test of the same tol.
- ``criterion="residual"`` (the default) requires r ≤ tol·max|θ|, which
  also bounds the angle between the Ritz vector and the eigenspace by r/δ;
  it suits callers that use the eigenvectors. ARPACK, and so
  ``scipy.sparse.linalg.eigsh``, applies a residual rule of this kind
  (r ≤ tol·|θ|) to its ``tol``.

The products H V are kept beside V, so the result carries the true residuals
‖H y − θ y‖ = ‖(H V) s − θ V s‖ without spending another product.

Every new block is orthogonalised against the basis by two passes of
classical Gram-Schmidt, each one matrix product on the operator's device,
and then orthonormalised within itself by a QR factorisation.

When the basis reaches ``max_basis_size`` vectors it is restarted thick
(Wu & Simon 2000, "Thick-restart Lanczos method for large symmetric
eigenvalue problems", SIAM J. Matrix Anal. Appl. 22): the best Ritz vectors
are kept, T becomes diagonal, and the next Lanczos vector continues the
recurrence, so no product is repeated.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError
from hessframe.linalg._common import (
    apply,
    check_dtype_device,
    check_generator,
    check_operator,
    check_positive_float,
    check_positive_int,
    random_block,
    symmetric_eigh,
)
from hessframe.linalg.results import EigenResult

logger = logging.getLogger(__name__)

WHICH = ("largest", "smallest", "magnitude")
CRITERIA = ("eigenvalue", "residual")

#: Steps at most when ``max_iter`` is not given and the matrix is large.
DEFAULT_MAX_STEPS = 300

#: Smallest basis that the default ``max_basis_size`` allows before a restart.
DEFAULT_MIN_BASIS_SIZE = 64

# A new Krylov direction whose norm after orthogonalisation is below
# max(100·eps, min(sqrt(eps), tol/100)) times ‖H‖ is taken as a breakdown (the
# space is invariant up to that norm). Replacing it by a random direction drops
# a coupling that small, which stays below what ``tol`` can detect.
_BREAKDOWN_EPS_FACTOR = 100.0

# A Ritz value is known at best to about this many machine epsilons times
# ‖H‖, so the eigenvalue criterion never requires more.
_ROUNDING_EPS_FACTOR = 10.0


def lanczos(
    op: Any,
    k: int = 1,
    which: str = "largest",
    *,
    tol: float = 1e-6,
    criterion: str = "residual",
    max_iter: int | None = None,
    v0: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    block_size: int = 1,
    max_basis_size: int | None = None,
) -> EigenResult:
    """Compute k extreme eigenpairs of a symmetric operator H.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device``, ``matvec(v)`` and ``matmat(V)``.
        k: Number of eigenpairs, 1 ≤ k ≤ n.
        which: ``"largest"`` or ``"smallest"`` algebraic eigenvalues, or
            ``"magnitude"`` for the largest absolute values.
        tol: Relative tolerance of the stopping rule that ``criterion`` names.
        criterion: ``"eigenvalue"`` stops when the a-posteriori error bound
            min(r, r²/δ) of every requested Ritz value θ is at most
            tol·|θ| + 10·ε·max|θ| (r the residual norm, δ the estimated gap
            to the rest of the spectrum, ε the dtype's machine epsilon; see
            the module docstring); use it when only eigenvalues are needed.
            ``"residual"``, the default, stops when every residual
            ‖H y − θ y‖ is at most tol·max|θ| over the current Ritz values,
            which is stricter and also makes the eigenvectors accurate.
        max_iter: Lanczos steps at most (one step multiplies H with one
            block). Default: ceil(n / block_size), capped at 300.
        v0: Start vector, shape (n,) or (n, block_size), with the operator's
            dtype and device. Default: Gaussian random.
        generator: Random generator for the start block and for directions
            drawn after a breakdown.
        block_size: Vectors per step. A block of size b finds an eigenvalue
            of multiplicity up to b. With b = 1 each distinct eigenvalue is
            found once, and further copies show up only through rounding or
            after an exact breakdown of the Krylov space.
        max_basis_size: Basis vectors kept before a thick restart. Default:
            max(64, 4k + 2·block_size), capped at n. The basis and its
            products take up to 2·n times this many entries; they grow as
            the iteration needs them.

    Returns:
        EigenResult. Eigenvalues are sorted descending for ``"largest"``,
        ascending for ``"smallest"`` and by descending absolute value for
        ``"magnitude"``, with unit eigenvectors as columns and their true
        residuals. ``converged`` is true when the rule of ``criterion`` holds
        for every returned pair, evaluated with the true residuals (and, for
        ``"eigenvalue"``, the residual estimates of the other Ritz values for
        the gap). ``residuals`` are the true residual norms under either
        criterion. ``iterations`` counts Lanczos steps, and ``num_matvecs``
        counts every product.

    Raises:
        InvalidArgumentError: An argument is out of range or ``v0`` does not
            match the operator.

    NOTE: An eigenvalue whose multiplicity exceeds ``block_size`` (a large
    null space, for example) can be returned fewer times than it occurs while
    ``converged`` is true. Every Krylov method with that block size, ARPACK
    included, shares this limit, so raise ``block_size`` when eigenvalues may
    repeat.
    """
    check_operator(op, "lanczos")
    n = op.size
    k = check_positive_int(k, "k", "lanczos")
    if k > n:
        raise InvalidArgumentError(
            f"lanczos: k={k} is larger than the matrix size n={n}; request at most {n} eigenpairs"
        )
    if which not in WHICH:
        raise InvalidArgumentError(
            f"lanczos: which must be one of {', '.join(map(repr, WHICH))}, got {which!r}"
        )
    tol = check_positive_float(tol, "tol", "lanczos")
    if criterion not in CRITERIA:
        raise InvalidArgumentError(
            f"lanczos: criterion must be one of {', '.join(map(repr, CRITERIA))}, got {criterion!r}"
        )
    block_size = check_positive_int(block_size, "block_size", "lanczos")
    if block_size > n:
        raise InvalidArgumentError(
            f"lanczos: block_size={block_size} is larger than the matrix size n={n}"
        )
    check_generator(generator, "lanczos")
    capacity = _basis_capacity(max_basis_size, n, k, block_size)
    if max_iter is None:
        max_iter = min(math.ceil(n / block_size), DEFAULT_MAX_STEPS)
    max_iter = check_positive_int(max_iter, "max_iter", "lanczos")
    if max_iter * block_size < k:
        raise InvalidArgumentError(
            f"lanczos: max_iter={max_iter} steps of block_size={block_size} cannot build k={k} "
            f"Ritz pairs; allow at least {math.ceil(k / block_size)} steps"
        )
    if tol < 2 * torch.finfo(op.dtype).eps:
        logger.warning(
            "lanczos: tol=%g is below 2 machine epsilons of %s, so residuals may never reach it",
            tol,
            op.dtype,
        )

    start = _start_block(op, v0, block_size, generator)
    return _LanczosRun(op, k, which, tol, criterion, max_iter, capacity, generator).run(start)


def _basis_capacity(max_basis_size: int | None, n: int, k: int, block_size: int) -> int:
    if max_basis_size is None:
        return min(n, max(DEFAULT_MIN_BASIS_SIZE, 4 * k + 2 * block_size))
    max_basis_size = check_positive_int(max_basis_size, "max_basis_size", "lanczos")
    needed = k + 2 * block_size
    if max_basis_size < min(n, needed):
        raise InvalidArgumentError(
            f"lanczos: max_basis_size={max_basis_size} leaves no room to restart; it must be "
            f"at least k + 2*block_size = {needed} (or n = {n})"
        )
    return min(n, max_basis_size)


def _start_block(
    op: Any, v0: torch.Tensor | None, block_size: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Return an orthonormal (n, block_size) start block built from ``v0``."""
    if v0 is None:
        block = random_block(op, block_size, "gaussian", generator)
    else:
        if not isinstance(v0, torch.Tensor):
            raise InvalidArgumentError(
                f"lanczos: v0 must be a torch.Tensor of shape ({op.size},), got {type(v0).__name__}"
            )
        check_dtype_device(op, v0, "v0", "lanczos")
        if v0.ndim == 1:
            v0 = v0.unsqueeze(1)
        if v0.ndim != 2 or v0.shape[0] != op.size or v0.shape[1] > block_size:
            raise InvalidArgumentError(
                f"lanczos: v0 must have shape ({op.size},) or ({op.size}, {block_size}), "
                f"got {tuple(v0.shape)}"
            )
        if not bool(torch.isfinite(v0).all()) or not bool((v0 != 0).any(dim=0).all()):
            raise InvalidArgumentError("lanczos: every column of v0 must be finite and nonzero")
        missing = block_size - v0.shape[1]
        block = v0.to(op.device)
        if missing:
            block = torch.cat([block, random_block(op, missing, "gaussian", generator)], dim=1)
    empty = block.new_zeros(op.size, 0)
    start, _, broken = _orthonormalise(block, empty, threshold=0.0)
    if broken:
        raise InvalidArgumentError(
            "lanczos: the columns of v0 are linearly dependent; pass independent start vectors"
        )
    return start


def _orthonormalise(
    block: torch.Tensor, basis: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Orthonormalise the columns of ``block`` against ``basis`` and each other.

    ``block`` must already be orthogonal to ``basis``; ``basis`` is used again
    here only to remove the rounding left by that earlier projection.

    Returns:
        (Q, B, broken): Q has the block's shape with orthonormal columns, and
        block ≈ Q B with B an upper triangular float64 CPU matrix. A column
        whose norm after orthogonalisation is at most ``threshold`` is listed
        in ``broken``. Its row of B and its column of Q are zero, for the
        caller to fill.
    """
    if block.shape[1] == 1:
        norm = float(torch.linalg.vector_norm(block))
        if norm <= threshold or norm == 0.0:
            return torch.zeros_like(block), torch.zeros(1, 1, dtype=torch.float64), [0]
        # Scaling keeps the orthogonality to the basis that the caller's two
        # Gram-Schmidt passes left, so no further pass is needed.
        return block / norm, torch.full((1, 1), norm, dtype=torch.float64), []

    q, triangle = torch.linalg.qr(block)
    diagonal = torch.diagonal(triangle).abs().double().cpu()
    if bool((diagonal <= threshold).any()) or bool((diagonal == 0).any()):
        return _orthonormalise_columns(block, basis, threshold)
    # QR keeps Q orthogonal to the basis only up to cond(B) times the rounding.
    # One more projection and QR restore it, and the second factor is ≈ I.
    if basis.shape[1]:
        q = q - basis @ (basis.T @ q)
        q, correction = torch.linalg.qr(q)
        triangle = correction @ triangle
    signs = torch.sign(torch.diagonal(triangle))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return q * signs, (triangle * signs.unsqueeze(1)).double().cpu(), []


def _orthonormalise_columns(
    block: torch.Tensor, basis: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Do what :func:`_orthonormalise` does column by column, to drop dependent columns.

    Only a block with a (near) dependent column, a breakdown, takes this path.
    """
    num_columns = block.shape[1]
    q = torch.zeros_like(block)
    coefficients = torch.zeros(num_columns, num_columns, dtype=block.dtype, device=block.device)
    broken = []
    accepted: list[int] = []
    for j in range(num_columns):
        column = block[:, j].clone()
        if accepted:
            earlier = q[:, accepted]
            for _ in range(2):
                projection = earlier.T @ column
                column -= earlier @ projection
                coefficients[accepted, j] += projection
        norm = float(torch.linalg.vector_norm(column))
        if norm <= threshold or norm == 0.0:
            broken.append(j)
            continue
        column /= norm
        if basis.shape[1]:
            column -= basis @ (basis.T @ column)
            column /= torch.linalg.vector_norm(column)
        q[:, j] = column
        coefficients[j, j] = norm
        accepted.append(j)
    return q, coefficients.double().cpu(), broken


class _LanczosRun:
    """The state of one Lanczos iteration: basis, projected matrix and counters."""

    def __init__(
        self,
        op: Any,
        k: int,
        which: str,
        tol: float,
        criterion: str,
        max_iter: int,
        capacity: int,
        generator: torch.Generator | None,
    ) -> None:
        self.op = op
        self.k = k
        self.which = which
        self.tol = tol
        self.criterion = criterion
        self.max_iter = max_iter
        self.capacity = capacity
        self.generator = generator
        self.basis = torch.empty(op.size, 0, dtype=op.dtype, device=op.device)
        self.images = torch.empty(op.size, 0, dtype=op.dtype, device=op.device)
        self.projected = torch.zeros(capacity, capacity, dtype=torch.float64)
        self.dim = 0
        self.steps = 0
        self.num_matvecs = 0
        self.restarts = 0
        # First basis column of the Krylov sequence begun after the latest breakdown.
        self.sequence_start: int | None = None
        self.norm_estimate = 0.0
        eps = torch.finfo(op.dtype).eps
        self.eps = eps
        self.breakdown_threshold = max(_BREAKDOWN_EPS_FACTOR * eps, min(eps**0.5, tol / 100))

    def run(self, block: torch.Tensor) -> EigenResult:
        n = self.op.size
        while True:
            residual = self._extend(block)
            ritz_values, ritz_coords = symmetric_eigh(self.projected[: self.dim, : self.dim])
            scale = float(ritz_values.abs().max())
            block, coupling, broken = _orthonormalise(
                residual, self.basis[:, : self.dim], self.breakdown_threshold * self.norm_estimate
            )
            last = ritz_coords[self.dim - block.shape[1] : self.dim, :]
            estimates = torch.linalg.vector_norm(coupling @ last, dim=0)
            wanted = _select(ritz_values, self.which, self.k)
            passed = self._passes(ritz_values, estimates, scale)
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "lanczos step %d: basis %d, Ritz values %s, residual estimates %s",
                    self.steps,
                    self.dim,
                    ritz_values[wanted].tolist(),
                    estimates[wanted].tolist(),
                )

            if self.dim == n:
                break
            # A breakdown makes every Ritz pair exact, but eigenvalues outside
            # the invariant space are unseen, so the iteration goes on.
            if (
                not broken
                and len(wanted) == self.k
                and bool(passed[wanted].all())
                and self._new_sequence_converged(ritz_values, ritz_coords, passed)
            ):
                break
            if self.steps >= self.max_iter:
                break

            if broken:
                self.sequence_start = self.dim + block.shape[1] - len(broken)
            block = self._fill_broken(block, broken)
            block = block[:, : min(block.shape[1], n - self.dim)]
            if self.dim + block.shape[1] > self.capacity:
                self._restart(ritz_values, ritz_coords, block.shape[1])

        return self._result(ritz_values, ritz_coords, estimates, scale)

    def _passes(
        self, ritz_values: torch.Tensor, residuals: torch.Tensor, scale: float
    ) -> torch.Tensor:
        """Return, per Ritz pair, whether the stopping rule of ``criterion`` holds.

        Args:
            ritz_values: All current Ritz values θ, float64 on the CPU.
            residuals: Their residual norms r (estimates or true values).
            scale: max|θ|.
        """
        if self.criterion == "residual":
            return residuals <= self.tol * scale
        return eigenvalue_error_bounds(ritz_values, residuals) <= (
            self.tol * ritz_values.abs() + _ROUNDING_EPS_FACTOR * self.eps * scale
        )

    def _new_sequence_converged(
        self, ritz_values: torch.Tensor, ritz_coords: torch.Tensor, passed: torch.Tensor
    ) -> bool:
        """Return whether the Krylov sequence started after the last breakdown has converged.

        After a breakdown, the exact Ritz values of the invariant space can
        fill the requested set too early. The new sequence starts from a
        random vector in the complement and may not yet have reached the
        extreme eigenvalues there, such as a second copy of a repeated one.
        So the most extreme Ritz pair that lives mainly in the new part of
        the basis must converge too.
        Once it has, the record of the breakdown is cleared.
        """
        if self.sequence_start is None:
            return True
        weights = (ritz_coords[self.sequence_start :, :] ** 2).sum(dim=0)
        in_new_part = torch.nonzero(weights > 0.5).flatten()
        if in_new_part.numel() == 0:
            return True
        best = in_new_part[_select(ritz_values[in_new_part], self.which, 1)[0]]
        if not bool(passed[best]):
            return False
        self.sequence_start = None
        return True

    def _extend(self, block: torch.Tensor) -> torch.Tensor:
        """Append ``block`` to the basis, multiply it by H and return the orthogonalised product."""
        start, stop = self.dim, self.dim + block.shape[1]
        self._reserve(stop)
        self.basis[:, start:stop] = block
        product = apply(self.op, block)
        self.images[:, start:stop] = product
        self.num_matvecs += block.shape[1]
        self.steps += 1
        self.norm_estimate = max(
            self.norm_estimate, float(torch.linalg.vector_norm(product, dim=0).max())
        )

        basis = self.basis[:, :stop]
        coefficients = basis.T @ product
        product = product - basis @ coefficients
        correction = basis.T @ product
        product -= basis @ correction
        coefficients = (coefficients + correction).double().cpu()

        self.projected[:stop, start:stop] = coefficients
        self.projected[start:stop, :stop] = coefficients.T
        diagonal_block = coefficients[start:stop]
        self.projected[start:stop, start:stop] = (diagonal_block + diagonal_block.T) / 2
        self.dim = stop
        return product

    def _reserve(self, columns: int) -> None:
        """Grow the storage of V and H V to ``columns`` columns, doubling up to the capacity."""
        allocated = self.basis.shape[1]
        if columns <= allocated:
            return
        new_size = min(self.capacity, max(columns, 2 * allocated, 16))
        for name in ("basis", "images"):
            old = getattr(self, name)
            grown = torch.empty(self.op.size, new_size, dtype=old.dtype, device=old.device)
            grown[:, : self.dim] = old[:, : self.dim]
            setattr(self, name, grown)

    def _fill_broken(self, block: torch.Tensor, broken: list[int]) -> torch.Tensor:
        """Replace the zero columns of ``block`` by random unit vectors orthogonal to everything."""
        if not broken:
            return block
        logger.debug(
            "lanczos: invariant subspace after %d steps, drawing new directions", self.steps
        )
        kept = [j for j in range(block.shape[1]) if j not in broken]
        room = self.op.size - self.dim - len(kept)
        fresh_count = min(len(broken), room)
        if fresh_count <= 0:
            return block[:, kept]
        fresh = random_block(self.op, fresh_count, "gaussian", self.generator)
        known = torch.cat([self.basis[:, : self.dim], block[:, kept]], dim=1)
        for _ in range(2):
            fresh -= known @ (known.T @ fresh)
        fresh, _, _ = _orthonormalise(fresh, known, threshold=0.0)
        return torch.cat([block[:, kept], fresh], dim=1)

    def _restart(
        self, ritz_values: torch.Tensor, ritz_coords: torch.Tensor, next_block_size: int
    ) -> None:
        """Keep the best Ritz vectors as the new basis (thick restart)."""
        keep_count = min(self.capacity - next_block_size, self.k + (self.capacity - self.k) // 2)
        keep = _select(ritz_values, self.which, keep_count)
        coords = ritz_coords[:, keep].to(self.op.dtype).to(self.op.device)
        kept_vectors = self.basis[:, : self.dim] @ coords
        kept_images = self.images[:, : self.dim] @ coords
        self.basis[:, :keep_count] = kept_vectors
        self.images[:, :keep_count] = kept_images
        self.projected.zero_()
        diagonal = torch.arange(keep_count)
        self.projected[diagonal, diagonal] = ritz_values[keep]
        self.dim = keep_count
        self.sequence_start = None
        self.restarts += 1
        logger.debug("lanczos: thick restart %d keeps %d Ritz vectors", self.restarts, keep_count)

    def _result(
        self,
        ritz_values: torch.Tensor,
        ritz_coords: torch.Tensor,
        estimates: torch.Tensor,
        scale: float,
    ) -> EigenResult:
        wanted = _select(ritz_values, self.which, self.k)
        coords = ritz_coords[:, wanted].to(self.op.dtype).to(self.op.device)
        vectors = self.basis[:, : self.dim] @ coords
        products = self.images[:, : self.dim] @ coords
        norms = torch.linalg.vector_norm(vectors, dim=0)
        vectors = vectors / norms
        products = products / norms
        eigenvalues = ritz_values[wanted].to(self.op.dtype).to(self.op.device)

        residuals = torch.linalg.vector_norm(products - vectors * eigenvalues, dim=0)
        # The true residuals of the returned pairs replace their estimates;
        # the other Ritz pairs keep theirs for the gaps of the eigenvalue bound.
        all_residuals = estimates.clone()
        all_residuals[wanted] = residuals.detach().double().cpu()
        converged = bool(self._passes(ritz_values, all_residuals, scale)[wanted].all())
        logger.info(
            "lanczos: %d steps, %d products, %d restarts, converged=%s, max residual %.3g",
            self.steps,
            self.num_matvecs,
            self.restarts,
            converged,
            float(residuals.max()),
        )
        return EigenResult(
            eigenvalues=eigenvalues,
            eigenvectors=vectors,
            residuals=residuals,
            converged=converged,
            iterations=self.steps,
            num_matvecs=self.num_matvecs,
        )


def eigenvalue_error_bounds(ritz_values: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
    """Return a posteriori bounds min(r, r²/δ) on the errors of Ritz values.

    Some eigenvalue lies within r of a Ritz value θ with residual norm r. If
    no other eigenvalue lies within δ of θ, that eigenvalue is within r²/δ
    (the Kato-Temple bound; Parlett, "The Symmetric Eigenvalue Problem",
    chapter 11). The gap δ of θᵢ is estimated as minⱼ≠ᵢ |θᵢ − θⱼ| − rⱼ,
    taking the other eigenvalues to lie within rⱼ of the other Ritz values
    θⱼ. With one Ritz value the bound is r.

    NOTE: the gap is an estimate. An eigenvalue that no Ritz value
    approximates yet is not seen, so a small Krylov space can overstate δ.

    Args:
        ritz_values: (m,) Ritz values θ.
        residuals: (m,) residual norms r, same dtype and device.

    Returns:
        (m,) bounds on |λ − θ|.
    """
    if ritz_values.numel() < 2:
        return residuals.clone()
    distances = (ritz_values.unsqueeze(0) - ritz_values.unsqueeze(1)).abs() - residuals.unsqueeze(0)
    distances.fill_diagonal_(math.inf)
    gaps = distances.min(dim=1).values
    quadratic = torch.where(gaps > 0, residuals**2 / gaps.clamp_min(1e-300), math.inf)
    return torch.minimum(residuals, quadratic)


def _select(values: torch.Tensor, which: str, count: int) -> list[int]:
    """Return the indices of the ``count`` values wanted by ``which``, best first."""
    if which == "largest":
        order = torch.argsort(values, descending=True, stable=True)
    elif which == "smallest":
        order = torch.argsort(values, stable=True)
    else:
        order = torch.argsort(values.abs(), descending=True, stable=True)
    return order[:count].tolist()
