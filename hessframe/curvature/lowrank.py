"""Low-rank plus damping curvature: H = U diag(s) Uᵀ + λI.

This kind covers Gauss-Newton and Levenberg-Marquardt matrices JᵀJ + λI, and
rank-k approximations of any other provider plus a damping term.

Products use the factors directly: H v = U (s ⊙ (Uᵀ v)) + λ v costs O(n·r).
Everything that needs a function of H (solves, inverse square roots, the
spectrum) goes through one cached eigendecomposition of the low-rank part,
built from a thin QR factorisation U = Q R:

    U diag(s) Uᵀ = Q (R diag(s) Rᵀ) Qᵀ = (Q W) diag(θ) (Q W)ᵀ,

where R diag(s) Rᵀ = W diag(θ) Wᵀ is the small core. With V = Q W, whose
p = min(n, r) columns are orthonormal, and P = I − V Vᵀ the projector onto the
complement of range(U), any function f of H + δI is applied as

    f(H + δI) x = V diag(f(θ + λ + δ)) Vᵀ x + f(λ + δ) P x.

For f(μ) = 1/μ this is the Woodbury identity written in the orthonormal basis.
The textbook form (λI + S UᵀU)⁻¹ forms the Gram matrix UᵀU, which squares the
condition number of U, so it loses all accuracy in float32 once κ(U) is near
10⁴. The QR form above only meets κ(U) once. When every s ≥ 0 the core
eigenvalues come from the singular values of R diag(√s), θ = σ², which keeps
the relative accuracy of the small eigenvalues as well.

``from_provider`` builds the factors from another provider, either by Lanczos or
by the randomized Nyström approximation with a stabilising shift, following

- A. Gittens and M. W. Mahoney, "Revisiting the Nyström method for improved
  large-scale machine learning", JMLR 17 (2016).
- J. A. Tropp, A. Yurtsever, M. Udell and V. Cevher, "Fixed-rank approximation of
  a positive-semidefinite matrix from streaming data", NeurIPS 2017
  (arXiv:1706.05736).
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch

from hessframe.curvature.base import DEFAULT_MAX_DENSE_SIZE, Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError
from hessframe.linalg.results import EigenResult, SolveResult

logger = logging.getLogger(__name__)

_EIGSH_ORDERS = ("largest", "smallest", "magnitude")
_FROM_PROVIDER_METHODS = ("lanczos", "nystrom")


@dataclass(frozen=True)
class _Eigendecomposition:
    """Eigendecomposition of the low-rank part U diag(s) Uᵀ = V diag(θ) Vᵀ.

    Attributes:
        vectors: V, (n, p) with orthonormal columns spanning range(U), p = min(n, r).
        values: θ, (p,) eigenvalues of U diag(s) Uᵀ on range(V), with values
            below ``tolerance`` in magnitude set to exactly zero.
        tolerance: Magnitude below which an eigenvalue of U diag(s) Uᵀ is
            indistinguishable from zero; entries of ``values`` are either
            zero or larger than it.
        numerical_rank: Number of nonzero entries of ``values``.
    """

    vectors: torch.Tensor
    values: torch.Tensor
    tolerance: float
    numerical_rank: int


class LowRankDampedHessian(CurvatureProvider):
    """The matrix H = U diag(s) Uᵀ + λI with U of shape (n, r), usually r ≪ n.

    U need not have orthonormal columns, full column rank, or fewer columns
    than rows. Entries of s may be negative, which makes H indefinite unless λ
    outweighs them. Products, ``to_dense``, ``diagonal``, ``trace`` and
    ``eigsh`` accept any such H. ``solve`` needs H + damping·I nonsingular,
    ``inverse_sqrt_matvec`` needs it positive definite and ``sqrt_matvec``
    needs it positive semidefinite. With λ + damping = 0, solve and inverse
    square root therefore need U diag(s) Uᵀ to have rank n, which requires r ≥ n.

    The first call of ``solve``, ``eigsh`` or the square-root methods computes a
    thin QR of U and an eigendecomposition of the min(n, r)-square core in
    O(n·r²), and caches it. Every later application costs O(n·r) per vector.
    NOTE: the cache is not invalidated when U or s are modified in place after
    construction; build a new provider instead.

    Args:
        U: Factor of shape (n, r), r ≥ 1, float32 or float64, finite.
        s: Core diagonal of shape (r,), same dtype and device as ``U``, finite.
        damping: λ ≥ 0 added to the diagonal.

    Raises:
        InvalidArgumentError: ``U`` is not a 2-D floating-point tensor with at
            least one column, ``s`` does not have shape (r,) or differs from
            ``U`` in dtype or device, either contains NaN or infinity, or
            ``damping`` is negative or not finite.
    """

    kind = "low-rank-damped"

    def __init__(self, U: torch.Tensor, s: torch.Tensor, damping: float = 0.0) -> None:
        _check_factor(U, "U")
        if not isinstance(s, torch.Tensor):
            raise InvalidArgumentError(
                f"s must be a torch.Tensor of shape ({U.shape[1]},), got {type(s).__name__}"
            )
        if s.ndim != 1 or s.shape[0] != U.shape[1]:
            raise InvalidArgumentError(
                f"s must have shape ({U.shape[1]},), one entry per column of U, "
                f"got {tuple(s.shape)}"
            )
        if s.dtype != U.dtype or s.device != U.device:
            raise InvalidArgumentError(
                f"s must have the dtype and device of U ({U.dtype} on {U.device}), "
                f"got {s.dtype} on {s.device}"
            )
        if not bool(torch.isfinite(s).all()):
            raise InvalidArgumentError("s contains NaN or infinite values; pass finite values")

        super().__init__(U.shape[0], U.dtype, U.device)
        self._factor = U
        self._scales = s
        self._damping = _check_damping(damping, "damping")
        self._exact = True
        self._approximation_method: str | None = None
        self._eigendecomposition: _Eigendecomposition | None = None

    # ------------------------------------------------------------------
    # Other constructors

    @classmethod
    def from_jacobian(cls, J: torch.Tensor, damping: float = 0.0) -> LowRankDampedHessian:
        """Build the Gauss-Newton matrix H = JᵀJ + λI from a Jacobian.

        The Jacobian is kept as the factor (U = Jᵀ, s = 1), so a product
        Jᵀ(J v) costs O(m·n) and JᵀJ is never formed.

        Args:
            J: Jacobian of shape (m, n) of the residuals with respect to the n
                parameters, finite, float32 or float64.
            damping: λ ≥ 0, the Levenberg-Marquardt damping.

        Returns:
            The provider, with ``exact`` and ``positive_semidefinite`` set.

        Raises:
            InvalidArgumentError: ``J`` is not a finite 2-D floating-point tensor
                with at least one row, or ``damping`` is negative or not finite.
        """
        _check_factor(J, "J", rows_name="m", columns_name="n")
        ones = torch.ones(J.shape[0], dtype=J.dtype, device=J.device)
        return cls(J.T, ones, damping)

    @classmethod
    def from_provider(
        cls,
        provider: CurvatureProvider,
        rank: int,
        *,
        damping: float = 0.0,
        method: str = "lanczos",
        generator: torch.Generator | None = None,
        sketch_size: int | None = None,
    ) -> LowRankDampedHessian:
        """Approximate another provider by a rank-k matrix plus damping.

        ``method="lanczos"`` keeps the k eigenpairs of ``provider`` that
        :func:`hessframe.linalg.lanczos` returns: the largest eigenvalues when
        the provider states it is positive semidefinite, else the largest in
        magnitude. This is the best rank-k approximation in the spectral and
        Frobenius norms when Lanczos converges. ``method="nystrom"`` uses the
        randomized Nyström approximation H ≈ Y (Ωᵀ Y)⁺ Yᵀ with Y = H Ω, in the
        shifted form of Tropp et al. (2017), truncated to rank k. It needs H
        positive semidefinite and spends ``sketch_size`` products in one block.

        The result has ``capabilities.exact == False``, because it stands for
        the approximation plus damping, not for ``provider``.

        Args:
            provider: The matrix to approximate.
            rank: k, the rank kept, 1 ≤ k ≤ n.
            damping: λ ≥ 0 added to the diagonal of the approximation.
            method: ``"lanczos"`` or ``"nystrom"``.
            generator: Random generator for the Nyström test matrix or the
                Lanczos start vector. None uses torch's global generator.
            sketch_size: Number of random test vectors for Nyström,
                k ≤ sketch_size ≤ n. Oversampling beyond k brings the result
                closer to the best rank-k approximation. None takes
                min(n, 2k + 1).

        Returns:
            A provider with U of shape (n, k).

        Raises:
            InvalidArgumentError: ``provider`` is not a CurvatureProvider, ``rank``
                or ``sketch_size`` is out of range, ``method`` is unknown,
                ``damping`` is negative or not finite, or the Nyström sketch shows
                that ``provider`` is not positive semidefinite.
        """
        if not isinstance(provider, CurvatureProvider):
            raise InvalidArgumentError(
                f"provider must be a CurvatureProvider, got {type(provider).__name__}"
            )
        n = provider.size
        rank = _check_count(rank, "rank", upper=n, upper_text=f"the provider size n = {n}")
        damping = _check_damping(damping, "damping")
        if method not in _FROM_PROVIDER_METHODS:
            raise InvalidArgumentError(
                f"method must be one of {_FROM_PROVIDER_METHODS}, got {method!r}"
            )

        if method == "lanczos":
            factor, scales = _lanczos_factors(provider, rank, generator)
        else:
            if sketch_size is None:
                sketch_size = min(n, 2 * rank + 1)
            sketch_size = _check_count(
                sketch_size, "sketch_size", upper=n, upper_text=f"the provider size n = {n}"
            )
            if sketch_size < rank:
                raise InvalidArgumentError(
                    f"sketch_size must be at least rank = {rank}, got {sketch_size}"
                )
            factor, scales = _nystrom_factors(provider, rank, sketch_size, generator)

        approximation = cls(factor, scales, damping)
        approximation._exact = False
        approximation._approximation_method = method
        return approximation

    # ------------------------------------------------------------------
    # What the provider states about itself

    @property
    def factor(self) -> torch.Tensor:
        """U, the (n, r) factor."""
        return self._factor

    @property
    def scales(self) -> torch.Tensor:
        """s, the (r,) diagonal of the core."""
        return self._scales

    @property
    def damping(self) -> float:
        """λ, the damping added to the diagonal."""
        return self._damping

    @property
    def rank(self) -> int:
        """r, the number of columns of U (an upper bound on the rank of U diag(s) Uᵀ)."""
        return self._factor.shape[1]

    @property
    def numerical_rank(self) -> int:
        """Rank of U diag(s) Uᵀ to working precision (computes the cached eigendecomposition)."""
        return self._decomposition().numerical_rank

    @property
    def approximation_method(self) -> str | None:
        """``"lanczos"`` or ``"nystrom"`` for providers built by ``from_provider``, else None."""
        return self._approximation_method

    @property
    def capabilities(self) -> Capabilities:
        """Flags of this provider: exact unless built by ``from_provider``, PSD when all s ≥ 0."""
        return Capabilities(
            exact=self._exact,
            positive_semidefinite=bool((self._scales >= 0).all()),
            needs_double_backward=False,
            dense_available=True,
            gpu=self.device.type == "cuda",
        )

    # ------------------------------------------------------------------
    # Products

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._factor @ (self._scales * (self._factor.T @ v)) + self._damping * v

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        coefficients = self._scales[:, None] * (self._factor.T @ V)
        return self._factor @ coefficients + self._damping * V

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int = 256
    ) -> torch.Tensor:
        """Build H = U diag(s) Uᵀ + λI from the factors, symmetrised as (A + Aᵀ)/2.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Accepted for compatibility with the base class and
                unused, because the matrix is built in one product.

        Returns:
            The dense (n, n) matrix.

        Raises:
            InvalidArgumentError: n is larger than ``max_size`` or ``chunk_size`` < 1.
        """
        self.check_dense_arguments(max_size, chunk_size)
        low_rank = (self._factor * self._scales) @ self._factor.T
        dense = (low_rank + low_rank.T) / 2
        dense.diagonal().add_(self._damping)
        return dense

    def diagonal(self) -> torch.Tensor:
        """Return the exact diagonal, Σⱼ U_ij² sⱼ + λ, in O(n·r)."""
        return (self._factor * self._factor) @ self._scales + self._damping

    def trace(self) -> torch.Tensor:
        """Return the exact trace, Σⱼ sⱼ ‖uⱼ‖² + n λ, as a 0-d tensor in O(n·r)."""
        column_norms = (self._factor * self._factor).sum(dim=0)
        return column_norms @ self._scales + self.size * self._damping

    # ------------------------------------------------------------------
    # Spectrum

    def eigsh(self, k: int = 1, which: str = "largest", **kwargs: Any) -> EigenResult:
        """Return k eigenpairs of H exactly, from the eigendecomposition of the core.

        The eigenvalues of H are θᵢ + λ on range(U) and λ, with multiplicity
        n − p, on its complement. When the requested pairs include that
        complement, its eigenvectors are an orthonormal basis drawn at random
        (with a fixed seed) from the complement, since any such basis is valid.

        Args:
            k: Number of eigenpairs, 1 ≤ k ≤ n.
            which: ``"largest"`` or ``"smallest"`` algebraic eigenvalues, or
                ``"magnitude"`` for the largest in absolute value.
            **kwargs: Options of the iterative default (``tol``, ``max_iter``, …);
                accepted so that callers can treat every provider alike, and
                ignored because this decomposition is exact.

        Returns:
            An EigenResult with ``iterations == 0``; ``residuals`` are measured
            with k products and ``num_matvecs == k``. ``converged`` states that
            every residual is at most √eps · ‖H‖₂.

        Raises:
            InvalidArgumentError: ``k`` is out of range or ``which`` is unknown.
        """
        k = _check_count(k, "k", upper=self.size, upper_text=f"the provider size n = {self.size}")
        if which not in _EIGSH_ORDERS:
            raise InvalidArgumentError(f"which must be one of {_EIGSH_ORDERS}, got {which!r}")
        if kwargs:
            logger.debug("eigsh of a low-rank provider ignores options %s", sorted(kwargs))

        decomposition = self._decomposition()
        core_count = decomposition.vectors.shape[1]
        complement_count = min(self.size - core_count, k)
        candidates = torch.cat(
            [
                decomposition.values + self._damping,
                torch.full(
                    (complement_count,), self._damping, dtype=self.dtype, device=self.device
                ),
            ]
        )
        chosen = _order_eigenvalues(candidates, which)[:k]
        eigenvalues = candidates[chosen]

        from_core = chosen < core_count
        eigenvectors = torch.empty(self.size, k, dtype=self.dtype, device=self.device)
        eigenvectors[:, from_core] = decomposition.vectors[:, chosen[from_core]]
        needed = int((~from_core).sum())
        if needed:
            eigenvectors[:, ~from_core] = self._complement_basis(needed)

        residuals = torch.linalg.vector_norm(
            self._matmat(eigenvectors) - eigenvectors * eigenvalues, dim=0
        )
        scale = float(candidates.abs().max())
        tolerance = math.sqrt(torch.finfo(self.dtype).eps) * max(scale, 1e-30)
        return EigenResult(
            eigenvalues=eigenvalues,
            eigenvectors=eigenvectors,
            residuals=residuals,
            converged=bool((residuals <= tolerance).all()),
            iterations=0,
            num_matvecs=k,
        )

    # ------------------------------------------------------------------
    # Functions of H + damping·I

    def solve(self, b: torch.Tensor, damping: float = 0.0, **kwargs: Any) -> SolveResult:
        """Solve (H + damping·I) x = b exactly by the Woodbury identity.

        With μ = λ + damping, x = V diag(1/(θ + μ)) Vᵀ b + (b − V Vᵀ b)/μ,
        where V diag(θ) Vᵀ is the eigendecomposition of U diag(s) Uᵀ. The
        second term is absent when range(U) is the whole space.

        Args:
            b: Right-hand side, a flat tensor of length n with the provider's
                dtype and device.
            damping: δ ≥ 0 added to the diagonal on top of the provider's λ.
            **kwargs: Options of the conjugate-gradient default (``tol``,
                ``max_iter``, …); accepted so that callers can treat every
                provider alike, and ignored because the solve is direct.

        Returns:
            A SolveResult with the measured residual norm ‖b − (H + δI) x‖
            (one product), ``converged=True``, ``iterations=0`` and
            ``num_matvecs=1``.

        Raises:
            InvalidArgumentError: ``b`` has the wrong shape, dtype or device,
                ``damping`` is negative or not finite, or H + damping·I is
                singular to working precision (for example λ + damping = 0
                while U has fewer than n independent columns).
            NonFiniteError: ``b`` contains NaN or infinity.
        """
        self.check_vector(b, "b")
        self.check_finite(b, "right-hand side b")
        damping = _check_damping(damping, "damping")
        if kwargs:
            logger.debug("solve of a low-rank provider ignores options %s", sorted(kwargs))
        self._check_spectrum(damping, "solve", positive_definite=False)

        x = self._apply_spectral_function(b[:, None], damping, torch.reciprocal)[:, 0]
        residual = b - (self._matvec(x) + damping * x)
        return SolveResult(
            x=x,
            residual_norm=float(torch.linalg.vector_norm(residual)),
            converged=True,
            iterations=0,
            num_matvecs=1,
        )

    def inverse_sqrt_matvec(self, v: torch.Tensor, damping: float = 0.0) -> torch.Tensor:
        """Multiply (H + damping·I)^(-1/2), the symmetric inverse square root, with a vector.

        If z is standard normal, ``inverse_sqrt_matvec(z)`` is a normal draw
        with covariance (H + damping·I)⁻¹, which is what Langevin samplers need.

        Args:
            v: Flat tensor of length n with the provider's dtype and device.
            damping: δ ≥ 0 added to the diagonal on top of the provider's λ.

        Returns:
            V diag((θ + μ)^(-1/2)) Vᵀ v + μ^(-1/2) (v − V Vᵀ v), μ = λ + δ.

        Raises:
            InvalidArgumentError: ``v`` or ``damping`` is invalid, or H + damping·I
                is not positive definite to working precision.
            NonFiniteError: ``v`` contains NaN or infinity.
        """
        self.check_vector(v, "v")
        return self.inverse_sqrt_matmat(v[:, None], damping)[:, 0]

    def inverse_sqrt_matmat(self, V: torch.Tensor, damping: float = 0.0) -> torch.Tensor:
        """Multiply (H + damping·I)^(-1/2) with a block of vectors of shape (n, k).

        See :meth:`inverse_sqrt_matvec` for the formula and the errors.
        """
        self.check_block(V, "V")
        self.check_finite(V, "input block V")
        damping = _check_damping(damping, "damping")
        self._check_spectrum(damping, "inverse_sqrt_matmat", positive_definite=True)
        return self._apply_spectral_function(V, damping, torch.rsqrt)

    def sqrt_matvec(self, v: torch.Tensor, damping: float = 0.0) -> torch.Tensor:
        """Multiply (H + damping·I)^(1/2), the symmetric square root, with a vector.

        If z is standard normal, ``sqrt_matvec(z)`` is a normal draw with
        covariance H + damping·I.

        Args:
            v: Flat tensor of length n with the provider's dtype and device.
            damping: δ ≥ 0 added to the diagonal on top of the provider's λ.

        Returns:
            V diag((θ + μ)^(1/2)) Vᵀ v + μ^(1/2) (v − V Vᵀ v), μ = λ + δ.

        Raises:
            InvalidArgumentError: ``v`` or ``damping`` is invalid, or H + damping·I
                has an eigenvalue below zero by more than the rounding error.
            NonFiniteError: ``v`` contains NaN or infinity.
        """
        self.check_vector(v, "v")
        return self.sqrt_matmat(v[:, None], damping)[:, 0]

    def sqrt_matmat(self, V: torch.Tensor, damping: float = 0.0) -> torch.Tensor:
        """Multiply (H + damping·I)^(1/2) with a block of vectors of shape (n, k).

        See :meth:`sqrt_matvec` for the formula and the errors.
        """
        self.check_block(V, "V")
        self.check_finite(V, "input block V")
        damping = _check_damping(damping, "damping")
        decomposition = self._decomposition()
        shifted = decomposition.values + (self._damping + damping)
        if bool((shifted < -decomposition.tolerance).any()):
            raise InvalidArgumentError(
                f"sqrt_matmat: H + damping*I has the eigenvalue {float(shifted.min()):.6g} < 0, "
                "so it has no real square root. Pass a larger damping"
            )
        return self._apply_spectral_function(V, damping, lambda x: torch.sqrt(x.clamp(min=0)))

    # ------------------------------------------------------------------
    # The cached eigendecomposition and what is built on it

    def _decomposition(self) -> _Eigendecomposition:
        if self._eigendecomposition is None:
            self._eigendecomposition = _eigendecompose(self._factor, self._scales)
        return self._eigendecomposition

    def _apply_spectral_function(
        self, X: torch.Tensor, damping: float, function: Any
    ) -> torch.Tensor:
        """Return f(H + damping·I) X for an elementwise function f of eigenvalues."""
        decomposition = self._decomposition()
        basis = decomposition.vectors
        shift = self._damping + damping

        coefficients = basis.T @ X
        core_factors = function(decomposition.values + shift)
        result = basis @ (core_factors[:, None] * coefficients)

        if basis.shape[1] < self.size:
            complement_factor = function(torch.tensor(shift, dtype=self.dtype, device=self.device))
            result = result + complement_factor * (X - basis @ coefficients)
        return result

    def _check_spectrum(self, damping: float, operation: str, *, positive_definite: bool) -> None:
        """Raise unless H + damping·I is nonsingular (or positive definite) to working precision.

        Zero core eigenvalues and the complement of range(U) give the eigenvalue
        λ + damping, which is exact. The other core eigenvalues are known only to
        within the decomposition's tolerance, so θ + λ + damping inside it counts
        as zero.
        """
        decomposition = self._decomposition()
        shift = self._damping + damping
        has_flat_directions = decomposition.numerical_rank < self.size
        if shift == 0 and has_flat_directions:
            raise InvalidArgumentError(
                f"{operation}: H + damping*I is singular because U diag(s) U^T has numerical "
                f"rank {decomposition.numerical_rank} < n = {self.size} and the total damping "
                "is 0; damping must be positive (pass damping > 0 here or build the provider "
                "with damping > 0)"
            )

        nonzero = decomposition.values != 0
        shifted = decomposition.values[nonzero] + shift
        if shifted.numel() == 0:
            return
        if positive_definite and bool((shifted <= decomposition.tolerance).any()):
            raise InvalidArgumentError(
                f"{operation}: H + damping*I is not positive definite because its smallest "
                f"eigenvalue is {float(shifted.min()):.6g}. Pass a larger damping so that every "
                "eigenvalue is positive"
            )
        if bool((shifted.abs() <= decomposition.tolerance).any()):
            closest = float(shifted[shifted.abs().argmin()])
            raise InvalidArgumentError(
                f"{operation}: H + damping*I is singular to working precision because it has "
                f"the eigenvalue {closest:.6g}. Change damping so that no eigenvalue is zero"
            )

    def _complement_basis(self, count: int) -> torch.Tensor:
        """Return ``count`` orthonormal vectors orthogonal to range(U)."""
        basis = self._decomposition().vectors
        generator = torch.Generator(device=self.device).manual_seed(0)
        draws = torch.randn(
            self.size, count, generator=generator, dtype=self.dtype, device=self.device
        )
        # Two rounds of projection keep the result orthogonal to working precision.
        for _ in range(2):
            draws = draws - basis @ (basis.T @ draws)
        complement, _ = torch.linalg.qr(draws)
        return complement


# ----------------------------------------------------------------------
# Factorisations


def _eigendecompose(factor: torch.Tensor, scales: torch.Tensor) -> _Eigendecomposition:
    """Return V, θ with U diag(s) Uᵀ = V diag(θ) Vᵀ through a thin QR of U.

    Eigenvalues below the numerical-rank tolerance are set to zero. The
    tolerance follows numpy.linalg.matrix_rank: max(n, r)·eps times the largest
    singular value, applied to the singular values of R diag(√s) when s ≥ 0 and
    to the eigenvalues of R diag(s) Rᵀ otherwise.
    """
    n, r = factor.shape
    eps = torch.finfo(factor.dtype).eps
    orthonormal, triangular = torch.linalg.qr(factor, mode="reduced")

    if bool((scales >= 0).all()):
        core_factor = triangular * torch.sqrt(scales)
        core_vectors, singular_values, _ = torch.linalg.svd(core_factor, full_matrices=False)
        cutoff = max(n, r) * eps * float(singular_values.max())
        singular_values = torch.where(
            singular_values > cutoff, singular_values, torch.zeros_like(singular_values)
        )
        values = singular_values**2
        tolerance = cutoff**2
    else:
        core = (triangular * scales) @ triangular.T
        values, core_vectors = torch.linalg.eigh((core + core.T) / 2)
        tolerance = max(n, r) * eps * float(values.abs().max())
        values = torch.where(values.abs() > tolerance, values, torch.zeros_like(values))

    return _Eigendecomposition(
        vectors=orthonormal @ core_vectors,
        values=values,
        tolerance=tolerance,
        numerical_rank=int((values != 0).sum()),
    )


def _lanczos_factors(
    provider: CurvatureProvider, rank: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the top ``rank`` eigenpairs of ``provider`` as (U, s) by Lanczos."""
    from hessframe.linalg import lanczos

    which = "largest" if provider.capabilities.positive_semidefinite else "magnitude"
    result = lanczos(provider, k=rank, which=which, generator=generator)
    if not result.converged:
        logger.warning(
            "Lanczos did not converge for %d eigenpairs (largest residual %.3g); the low-rank "
            "approximation may be poor",
            rank,
            float(result.residuals.max()),
        )
    return result.eigenvectors, result.eigenvalues


def _nystrom_factors(
    provider: CurvatureProvider,
    rank: int,
    sketch_size: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (U, s) of the rank-``rank`` randomized Nyström approximation of ``provider``.

    Steps, after Tropp, Yurtsever, Udell and Cevher (2017): draw an orthonormal
    test matrix Ω (n × l), sketch Y = H Ω, shift it to Y_ν = Y + ν Ω with
    ν = √n·eps·‖Y‖_F so that Ωᵀ Y_ν is safely positive definite, factor
    Ωᵀ Y_ν = L Lᵀ, and take the SVD of E = Y_ν L⁻ᵀ = W Σ Zᵀ. Then
    E Eᵀ = Y_ν (Ωᵀ Y_ν)⁻¹ Y_νᵀ is the Nyström approximation of H + νI, and
    removing the shift gives eigenvalues max(σ² − ν, 0) with eigenvectors W.
    """
    n = provider.size
    sample_device = generator.device if generator is not None else provider.device
    test_matrix = torch.randn(
        n, sketch_size, generator=generator, dtype=provider.dtype, device=sample_device
    ).to(provider.device)
    test_matrix, _ = torch.linalg.qr(test_matrix)

    sketch = provider.matmat(test_matrix)
    shift = math.sqrt(n) * torch.finfo(provider.dtype).eps * float(torch.linalg.norm(sketch))
    shifted_sketch = sketch + shift * test_matrix

    core = test_matrix.T @ shifted_sketch
    lower, info = torch.linalg.cholesky_ex((core + core.T) / 2)
    if int(info) != 0:
        raise InvalidArgumentError(
            "provider: the Nyström sketch Omega^T H Omega is not positive definite, so H is "
            "not positive semidefinite; use method='lanczos', which handles indefinite matrices"
        )
    scaled = torch.linalg.solve_triangular(lower, shifted_sketch.T, upper=False).T
    vectors, singular_values, _ = torch.linalg.svd(scaled, full_matrices=False)
    eigenvalues = (singular_values**2 - shift).clamp(min=0)
    return vectors[:, :rank].contiguous(), eigenvalues[:rank].contiguous()


# ----------------------------------------------------------------------
# Argument checks


def _check_factor(factor: Any, name: str, *, rows_name: str = "n", columns_name: str = "r") -> None:
    if not isinstance(factor, torch.Tensor):
        raise InvalidArgumentError(
            f"{name} must be a torch.Tensor of shape ({rows_name}, {columns_name}), "
            f"got {type(factor).__name__}"
        )
    if factor.ndim != 2 or factor.shape[0] < 1 or factor.shape[1] < 1:
        raise InvalidArgumentError(
            f"{name} must be a 2-D tensor of shape ({rows_name}, {columns_name}) with both "
            f"sizes at least 1, got shape {tuple(factor.shape)}"
        )
    if factor.dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError(f"{name} must be float32 or float64, got {factor.dtype}")
    if not bool(torch.isfinite(factor).all()):
        raise InvalidArgumentError(f"{name} contains NaN or infinite values; pass a finite {name}")


def _check_damping(damping: Any, name: str) -> float:
    if isinstance(damping, torch.Tensor) and damping.numel() == 1:
        damping = damping.item()
    if isinstance(damping, bool) or not isinstance(damping, numbers.Real):
        raise InvalidArgumentError(
            f"{name} must be a non-negative real number, got {type(damping).__name__}"
        )
    damping = float(damping)
    if not math.isfinite(damping) or damping < 0:
        raise InvalidArgumentError(f"{name} must be finite and >= 0, got {damping}")
    return damping


def _check_count(value: Any, name: str, *, upper: int, upper_text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not 1 <= value <= upper:
        raise InvalidArgumentError(f"{name} must be between 1 and {upper_text}, got {value}")
    return value


def _order_eigenvalues(values: torch.Tensor, which: str) -> torch.Tensor:
    """Return the indices that sort ``values`` in the order ``which`` names."""
    if which == "largest":
        return torch.argsort(values, descending=True, stable=True)
    if which == "smallest":
        return torch.argsort(values, stable=True)
    return torch.argsort(values.abs(), descending=True, stable=True)
