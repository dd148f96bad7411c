"""The sparsified Hessian of the entropic optimal transport dual as a curvature provider.

For a plan P (n×m) and entropic weight reg, the dual objective
:func:`hessframe_transport.cost.dual_objective` has the negative Hessian, in the
potentials (f, g),

    H = (1/reg) · [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]],

a positive semidefinite (n+m)×(n+m) matrix whose null space contains (1, −1).
Sinkhorn-Newton-Sparse (Tang et al., "Accelerating Sinkhorn Algorithm with
Sparse Newton Iterations", ICLR 2024) replaces P in the off-diagonal blocks
by P̃, its largest entries, and keeps the diagonal exact:

    H̃ = (1/reg) · [[diag(P1), P̃], [P̃ᵀ, diag(Pᵀ1)]].

H̃ is diagonally dominant, hence positive semidefinite, and equals H when
nothing is dropped (density 1).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError
from hessframe_transport._backend import to_float64
from hessframe_transport._checks import check_fraction, check_reg
from hessframe_transport._newton import sparsify_plan

__all__ = ["SparseDualHessian"]


class SparseDualHessian(CurvatureProvider):
    """Sparsified negative Hessian H̃ of the entropic dual at a plan, as in Sinkhorn-Newton-Sparse.

    Vectors are ordered (f-part of length n, g-part of length m). The kind is
    ``"predicted"``: the matrix is assembled directly from the plan, with no
    differentiation of the objective.

    Args:
        plan: (n, m) non-negative plan, numpy array or dense torch tensor. Its
            dtype and device become the provider's (numpy plans give float64 on the CPU).
        reg: Entropic weight, > 0.
        density: Share of each row (and each column) of the plan kept in the
            off-diagonal blocks, in (0, 1]: the ⌈density·m⌉ largest entries of
            every row and the ⌈density·n⌉ largest of every column, as in
            :func:`~hessframe_transport.solver.sinkhorn_newton_sparse`. 1 keeps
            every entry and gives the exact Hessian.
        dtype: Override the dtype (a floating torch dtype).
        device: Override the device.

    Raises:
        InvalidArgumentError: The plan is not a 2-D non-negative finite array,
            reg ≤ 0, or density is outside (0, 1].
    """

    kind = "predicted"

    def __init__(
        self,
        plan: Any,
        reg: float,
        *,
        density: float = 1.0,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        plan64 = to_float64(plan, "plan")
        if plan64.ndim != 2 or plan64.size == 0:
            raise InvalidArgumentError(
                f"plan must be a non-empty 2-D array (n, m), got shape {plan64.shape}"
            )
        if not np.all(np.isfinite(plan64)) or plan64.min() < 0:
            raise InvalidArgumentError("plan must be finite and non-negative")
        self._reg = check_reg(reg)
        self._density = check_fraction(density, "density")
        if dtype is None:
            dtype = plan.dtype if isinstance(plan, torch.Tensor) else torch.float64
        if device is None:
            device = plan.device if isinstance(plan, torch.Tensor) else "cpu"
        n, m = plan64.shape
        super().__init__(n + m, dtype, device)
        self._n_rows = n

        per_row = max(1, math.ceil(self._density * m - 1e-9))
        per_column = max(1, math.ceil(self._density * n - 1e-9))
        kept = sparsify_plan(plan64, per_row, per_column).tocoo()
        self._dropped_mass = float(plan64.sum() - kept.data.sum())
        self._exact = kept.nnz == n * m

        indices = torch.from_numpy(np.stack([kept.row, kept.col]).astype(np.int64))
        self._block = (
            torch.sparse_coo_tensor(
                indices,
                torch.from_numpy(kept.data / self._reg),
                size=(n, m),
                check_invariants=True,
            )
            .coalesce()
            .to(dtype=self.dtype, device=self.device)
        )
        self._block_t = self._block.t().coalesce()
        self._diagonal = torch.from_numpy(
            np.concatenate([plan64.sum(axis=1), plan64.sum(axis=0)]) / self._reg
        ).to(dtype=self.dtype, device=self.device)

    @classmethod
    def from_potentials(
        cls, f: Any, g: Any, M: Any, reg: float, *, density: float = 1.0
    ) -> SparseDualHessian:
        """Build the provider at the plan P = exp((f ⊕ g − M)/reg) of dual potentials f, g.

        Args:
            f, g: (n,) and (m,) potentials, as in the ``log`` of the solver.
            M: (n, m) cost matrix.
            reg: Entropic weight, > 0.
            density: As in the constructor.
        """
        reg = check_reg(reg)
        if isinstance(M, torch.Tensor):
            plan = torch.exp((f[:, None] + g[None, :] - M) / reg)
        else:
            f64, g64, M64 = (
                to_float64(value, name) for value, name in ((f, "f"), (g, "g"), (M, "M"))
            )
            plan = np.exp((f64[:, None] + g64[None, :] - M64) / reg)
        return cls(plan, reg, density=density)

    @classmethod
    def full(cls, plan: Any, reg: float) -> SparseDualHessian:
        """Build the exact, unsparsified Hessian H (density 1)."""
        return cls(plan, reg, density=1.0)

    @property
    def capabilities(self) -> Capabilities:
        """Exact only when no plan entry was dropped; always positive semidefinite."""
        return Capabilities(
            exact=self._exact,
            positive_semidefinite=True,
            needs_double_backward=False,
            dense_available=True,
            gpu=self.device.type == "cuda",
        )

    @property
    def reg(self) -> float:
        """Entropic weight."""
        return self._reg

    @property
    def density(self) -> float:
        """Requested share of each row and column kept."""
        return self._density

    @property
    def nnz(self) -> int:
        """Number of plan entries kept in the off-diagonal block P̃."""
        return int(self._block._nnz())

    @property
    def dropped_mass(self) -> float:
        """Σ (P − P̃), the plan mass left out of the off-diagonal blocks."""
        return self._dropped_mass

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        n = self._n_rows
        product = self._diagonal[:, None] * V
        top = product[:n] + torch.sparse.mm(self._block, V[n:])
        bottom = product[n:] + torch.sparse.mm(self._block_t, V[:n])
        return torch.cat([top, bottom], dim=0)

    def to_dense(self, max_size: int = 10_000, chunk_size: int = 256) -> torch.Tensor:
        """Return H̃ as a dense (n+m)×(n+m) tensor, assembled from its blocks.

        Args:
            max_size: Largest n+m accepted.
            chunk_size: Unused; kept for the signature of the base class.

        Raises:
            InvalidArgumentError: n+m is larger than ``max_size``.
        """
        if self.size > max_size:
            raise InvalidArgumentError(
                f"to_dense: the matrix is {self.size}x{self.size}, larger than "
                f"max_size={max_size}; pass a larger max_size to build it anyway"
            )
        n = self._n_rows
        dense = torch.diag(self._diagonal)
        block = self._block.to_dense()
        dense[:n, n:] = block
        dense[n:, :n] = block.T
        return dense

    def diagonal(self) -> torch.Tensor:
        """Return the exact diagonal (P1, Pᵀ1)/reg."""
        return self._diagonal.clone()

    def solve(self, b: torch.Tensor, damping: float = 0.0, **kwargs: Any) -> Any:
        """Solve (H̃ + damping·I) x = b by conjugate gradient.

        H̃ is singular: (1, −1) is in its null space, because adding a constant
        to f and subtracting it from g leaves the plan unchanged. A solve
        therefore needs ``damping`` > 0, the shift that Sinkhorn-Newton-Sparse
        adds for the same reason.

        Raises:
            InvalidArgumentError: ``damping`` is not positive.
        """
        if not damping > 0:
            raise InvalidArgumentError(
                f"damping must be positive for the dual Hessian, got {damping}: (1, -1) is in "
                "its null space, so H is singular; pass a small shift such as "
                "damping=1e-6 * provider.diagonal().max()"
            )
        return super().solve(b, damping=damping, **kwargs)
