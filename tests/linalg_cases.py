"""Dense symmetric test matrices with known spectra for the linear-algebra tests.

Each matrix is Q diag(λ) Qᵀ with Q a random orthogonal matrix, so the
eigenvalues λ are known exactly and the routines can be checked against them
and against ``torch.linalg.eigh``.
"""

from __future__ import annotations

import torch

from hessframe.curvature.base import Capabilities, CurvatureProvider


class DenseProvider(CurvatureProvider):
    """A provider that stores its symmetric matrix and counts the vectors it multiplies."""

    kind = "predicted"

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix
        self.products = 0

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            exact=True,
            positive_semidefinite=bool(torch.linalg.eigvalsh(self.matrix).min() >= 0),
            needs_double_backward=False,
            dense_available=True,
            gpu=self.device.type == "cuda",
        )

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        self.products += 1
        return self.matrix @ v

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.products += V.shape[1]
        return self.matrix @ V


def matrix_with_spectrum(eigenvalues: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Return Q diag(eigenvalues) Qᵀ in float64 with a random orthogonal Q."""
    generator = torch.Generator().manual_seed(seed)
    n = eigenvalues.shape[0]
    gaussian = torch.randn(n, n, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    q = q * torch.sign(torch.diagonal(r))
    matrix = (q * eigenvalues.to(torch.float64)) @ q.T
    return (matrix + matrix.T) / 2


def spectrum(name: str, n: int = 60) -> torch.Tensor:
    """Return the eigenvalues of a named test case, in float64."""
    steps = torch.arange(n, dtype=torch.float64)
    if name == "decaying":
        return 10.0 * 0.8**steps
    if name == "indefinite":
        return torch.linspace(-3.0, 5.0, n, dtype=torch.float64) + 0.01 * steps**0.5
    if name == "clustered":
        values = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        values[:3] = torch.tensor([4.0, 4.0 - 1e-3, 4.0 - 2e-3], dtype=torch.float64)
        return values
    if name == "repeated":
        values = torch.linspace(-1.0, 2.0, n, dtype=torch.float64)
        values[:3] = 3.0
        return values
    if name == "rank_deficient":
        values = torch.zeros(n, dtype=torch.float64)
        values[:8] = torch.linspace(1.0, 8.0, 8, dtype=torch.float64)
        return values
    raise KeyError(name)


SPECTRA = ("decaying", "indefinite", "clustered", "repeated", "rank_deficient")


def dense_case(name: str, n: int = 60, seed: int = 0, dtype=torch.float64) -> DenseProvider:
    """Return a DenseProvider with the named spectrum."""
    return DenseProvider(matrix_with_spectrum(spectrum(name, n), seed).to(dtype))
