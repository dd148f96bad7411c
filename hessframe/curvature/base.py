"""The :class:`CurvatureProvider` interface that every kind of Hessian implements.

A provider stands for a symmetric n×n matrix H that may never be formed. It
has a size, a dtype and a device, and it multiplies H with vectors. Every
other operation has a default built on those products, which a subclass may
replace with something better (an exact diagonal, a Woodbury solve).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from hessframe.errors import InvalidArgumentError, NonFiniteError

if TYPE_CHECKING:
    from scipy.sparse.linalg import LinearOperator

    from hessframe.linalg.results import EigenResult, SolveResult, SpectralDensity

#: Largest n for which :meth:`CurvatureProvider.to_dense` builds the matrix
#: without being asked explicitly (a float64 matrix of this size takes 800 MB).
DEFAULT_MAX_DENSE_SIZE = 10_000


@dataclass(frozen=True)
class Capabilities:
    """Facts about a provider's matrix and its products that a caller may rely on.

    Attributes:
        exact: Products are exact up to floating point (False for finite
            differences and low-rank approximations).
        positive_semidefinite: H is known to be positive semidefinite (a
            Gauss-Newton matrix, a damped low-rank matrix); False means it may
            be indefinite.
        needs_double_backward: Products differentiate the objective twice,
            so every operator in it needs a second derivative.
        dense_available: ``to_dense`` is cheaper than n products, because the
            provider stores the matrix or its factors.
        gpu: The provider runs on CUDA tensors.
    """

    exact: bool
    positive_semidefinite: bool
    needs_double_backward: bool
    dense_available: bool
    gpu: bool


class CurvatureProvider(abc.ABC):
    """A symmetric matrix H of size n×n, available through products with vectors.

    Subclasses set ``kind`` and implement ``capabilities`` and ``_matvec``.
    They should also implement ``_matmat`` when products with several vectors
    at once are cheaper than a loop. The public :meth:`matvec` and
    :meth:`matmat` check the input and the finiteness of the result around them.
    Vectors are flat tensors of length ``size`` with the provider's dtype on its
    device, and blocks of vectors are (n, k) tensors.

    Args:
        size: n, the number of rows and columns of H.
        dtype: Floating-point dtype of H and of the vectors it accepts.
        device: Device of H and of the vectors it accepts.
    """

    #: One of ``hessframe.records.PROVIDER_KINDS``.
    kind: ClassVar[str]

    def __init__(self, size: int, dtype: torch.dtype, device: torch.device | str) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgumentError(f"size must be a positive integer, got {size!r}")
        if not dtype.is_floating_point:
            raise InvalidArgumentError(
                f"dtype must be a floating-point torch dtype (float32 or float64), got {dtype}"
            )
        self._size = size
        self._dtype = dtype
        self._device = torch.device(device)

    # ------------------------------------------------------------------
    # What every provider states about itself

    @property
    def size(self) -> int:
        """n, the number of rows and columns of H."""
        return self._size

    @property
    def shape(self) -> tuple[int, int]:
        """(n, n)."""
        return (self._size, self._size)

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point dtype of H."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device of H."""
        return self._device

    @property
    @abc.abstractmethod
    def capabilities(self) -> Capabilities:
        """Capabilities of this provider: exactness, definiteness, cost of a dense matrix, GPU."""

    # ------------------------------------------------------------------
    # Products

    @abc.abstractmethod
    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Return H v for a checked flat vector ``v``."""

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Return H V for a checked (n, k) block; the default loops over columns."""
        return torch.stack([self._matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Multiply H with a vector.

        Args:
            v: Flat tensor of length ``size`` with the provider's dtype and device.

        Returns:
            H v, a flat tensor like ``v``.

        Raises:
            InvalidArgumentError: ``v`` has the wrong shape, dtype or device.
            NonFiniteError: The product contains NaN or infinity.
        """
        self.check_vector(v, "v")
        return self.check_finite(self._matvec(v), "Hessian-vector product")

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Multiply H with a block of vectors.

        Args:
            V: Tensor of shape (size, k) with the provider's dtype and device.

        Returns:
            H V, of shape (size, k).

        Raises:
            InvalidArgumentError: ``V`` has the wrong shape, dtype or device.
            NonFiniteError: The product contains NaN or infinity.
        """
        self.check_block(V, "V")
        if V.shape[1] == 0:
            return V.clone()
        return self.check_finite(self._matmat(V), "Hessian-matrix product")

    def __matmul__(self, other: torch.Tensor) -> torch.Tensor:
        if isinstance(other, torch.Tensor) and other.ndim == 1:
            return self.matvec(other)
        return self.matmat(other)

    # ------------------------------------------------------------------
    # Derived quantities with defaults built on the products

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int = 256
    ) -> torch.Tensor:
        """Build H as a dense (n, n) tensor from products with identity columns.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Number of identity columns multiplied at once, which
                bounds the memory of one product block.

        Returns:
            The dense matrix, symmetrised as (H + Hᵀ)/2 only by subclasses that
            state so; the default returns the products as computed.

        Raises:
            InvalidArgumentError: n is larger than ``max_size`` or ``chunk_size`` < 1.
        """
        self.check_dense_arguments(max_size, chunk_size)
        columns = []
        for start in range(0, self.size, chunk_size):
            stop = min(start + chunk_size, self.size)
            basis = torch.zeros(self.size, stop - start, dtype=self.dtype, device=self.device)
            basis[torch.arange(start, stop), torch.arange(stop - start)] = 1
            columns.append(self.matmat(basis))
        return torch.cat(columns, dim=1)

    def diagonal(self) -> torch.Tensor:
        """Return the exact diagonal of H, at the cost of n products by default.

        For a stochastic estimate with fewer products use
        :func:`hessframe.linalg.hutchinson_diagonal`.
        """
        diag = torch.empty(self.size, dtype=self.dtype, device=self.device)
        chunk_size = 256
        for start in range(0, self.size, chunk_size):
            stop = min(start + chunk_size, self.size)
            basis = torch.zeros(self.size, stop - start, dtype=self.dtype, device=self.device)
            rows = torch.arange(start, stop, device=self.device)
            basis[rows, torch.arange(stop - start, device=self.device)] = 1
            diag[start:stop] = self.matmat(basis)[
                rows, torch.arange(stop - start, device=self.device)
            ]
        return diag

    def trace(self) -> torch.Tensor:
        """Return the exact trace of H as a 0-d tensor (the sum of :meth:`diagonal`).

        For a stochastic estimate use :func:`hessframe.linalg.hutchpp_trace`.
        """
        return self.diagonal().sum()

    def eigsh(self, k: int = 1, which: str = "largest", **kwargs: Any) -> EigenResult:
        """Compute k extreme eigenpairs by Lanczos with full reorthogonalisation.

        Args:
            k: Number of eigenpairs, 1 ≤ k ≤ n.
            which: ``"largest"`` or ``"smallest"`` algebraic eigenvalues, or
                ``"magnitude"`` for the largest in absolute value.
            **kwargs: Passed to :func:`hessframe.linalg.lanczos`.

        Returns:
            An :class:`~hessframe.linalg.results.EigenResult` with residuals and
            a ``converged`` flag.
        """
        from hessframe.linalg import lanczos

        return lanczos(self, k=k, which=which, **kwargs)

    def solve(self, b: torch.Tensor, damping: float = 0.0, **kwargs: Any) -> SolveResult:
        """Solve (H + damping·I) x = b by preconditioned conjugate gradient.

        Args:
            b: Right-hand side, a flat tensor like the provider's vectors.
            damping: λ ≥ 0 added to the diagonal.
            **kwargs: Passed to :func:`hessframe.linalg.conjugate_gradient`.

        Returns:
            A :class:`~hessframe.linalg.results.SolveResult` with the solution,
            its residual norm and a ``converged`` flag.
        """
        from hessframe.linalg import conjugate_gradient

        return conjugate_gradient(self, b, damping=damping, **kwargs)

    def spectral_density(self, **kwargs: Any) -> SpectralDensity:
        """Estimate the spectral density of H by stochastic Lanczos quadrature.

        Args:
            **kwargs: Passed to :func:`hessframe.linalg.spectral_density`.
        """
        from hessframe.linalg import spectral_density

        return spectral_density(self, **kwargs)

    def to_scipy(self) -> LinearOperator:
        """Return a ``scipy.sparse.linalg.LinearOperator`` view of H on numpy arrays."""
        from hessframe.linalg import to_linear_operator

        return to_linear_operator(self)

    # ------------------------------------------------------------------
    # Checks shared by every provider

    def check_vector(self, v: Any, name: str) -> None:
        """Raise InvalidArgumentError unless ``v`` is a finite flat vector for this provider."""
        if not isinstance(v, torch.Tensor):
            raise InvalidArgumentError(
                f"{name} must be a torch.Tensor of shape ({self.size},), got {type(v).__name__}"
            )
        if v.ndim != 1 or v.shape[0] != self.size:
            raise InvalidArgumentError(
                f"{name} must have shape ({self.size},) to match the provider, got {tuple(v.shape)}"
            )
        self._check_contents(v, name)

    def check_block(self, V: Any, name: str) -> None:
        """Raise InvalidArgumentError unless ``V`` is a finite (n, k) block for this provider."""
        if not isinstance(V, torch.Tensor):
            raise InvalidArgumentError(
                f"{name} must be a torch.Tensor of shape ({self.size}, k), got {type(V).__name__}"
            )
        if V.ndim != 2 or V.shape[0] != self.size:
            raise InvalidArgumentError(
                f"{name} must have shape ({self.size}, k) to match the provider, "
                f"got {tuple(V.shape)}"
            )
        self._check_contents(V, name)

    def _check_contents(self, tensor: torch.Tensor, name: str) -> None:
        if tensor.dtype != self.dtype:
            raise InvalidArgumentError(
                f"{name} has dtype {tensor.dtype} but the provider works in {self.dtype}; "
                f"convert it with .to({self.dtype})"
            )
        if tensor.device.type != self.device.type:
            raise InvalidArgumentError(
                f"{name} is on {tensor.device} but the provider is on {self.device}; "
                f"move it with .to('{self.device}')"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise InvalidArgumentError(
                f"{name} contains NaN or infinite values; pass finite values"
            )

    def check_dense_arguments(self, max_size: int, chunk_size: int) -> None:
        """Raise InvalidArgumentError unless ``to_dense(max_size, chunk_size)`` may run."""
        if self.size > max_size:
            raise InvalidArgumentError(
                f"to_dense: the matrix is {self.size}x{self.size}, larger than "
                f"max_size={max_size}; pass a larger max_size to build it anyway"
            )
        if chunk_size < 1:
            raise InvalidArgumentError(f"chunk_size must be at least 1, got {chunk_size}")

    @staticmethod
    def check_finite(tensor: torch.Tensor, step: str) -> torch.Tensor:
        """Return ``tensor`` unchanged, or raise NonFiniteError naming ``step``."""
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise NonFiniteError(
                f"{step} produced {bad} NaN or infinite value(s) out of {tensor.numel()}; "
                "check the objective and its inputs at this point"
            )
        return tensor

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kind={self.kind!r}, size={self.size}, "
            f"dtype={self.dtype}, device={self.device})"
        )
