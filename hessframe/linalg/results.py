"""Result records of the linear-algebra routines.

Each is frozen and carries what a caller needs to decide whether to trust it:
residuals, a ``converged`` flag and the number of Hessian-vector products spent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EigenResult:
    """Eigenpairs of a symmetric provider.

    Attributes:
        eigenvalues: (k,) tensor, sorted in the order that was requested
            (descending for ``"largest"`` and ``"magnitude"``, ascending for ``"smallest"``).
        eigenvectors: (n, k) tensor of unit columns, one per eigenvalue.
        residuals: (k,) tensor of ‖H v − λ v‖ for each pair.
        converged: The method's stopping test passed. For Lanczos, every
            residual is at most ``tol`` times the largest Ritz value magnitude.
            For power iteration, the relative change of the Rayleigh quotient
            fell to ``tol``.
        iterations: Iterations of the method (Lanczos steps, power steps).
        num_matvecs: Hessian-vector products spent.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    converged: bool
    iterations: int
    num_matvecs: int


@dataclass(frozen=True)
class SolveResult:
    """Solution of (H + λI) x = b.

    Attributes:
        x: The solution.
        residual_norm: ‖b − (H + λI) x‖.
        converged: ``residual_norm`` is at most ``tol`` times ‖b‖.
        iterations: Conjugate-gradient iterations.
        num_matvecs: Hessian-vector products spent.
    """

    x: torch.Tensor
    residual_norm: float
    converged: bool
    iterations: int
    num_matvecs: int


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic estimate of tr(H).

    Attributes:
        value: The estimate.
        standard_error: Standard error of the estimate over its probes, or NaN
            where the method gives none.
        num_matvecs: Hessian-vector products spent.
    """

    value: float
    standard_error: float
    num_matvecs: int


@dataclass(frozen=True)
class SpectralDensity:
    """An estimate of the eigenvalue density of H.

    Attributes:
        grid: (m,) eigenvalue grid.
        density: (m,) density on the grid, integrating to one.
        nodes: (num_probes, num_steps) Ritz values of each probe's Lanczos run.
        weights: (num_probes, num_steps) Gauss quadrature weights that go with ``nodes``.
        num_matvecs: Hessian-vector products spent.
        sigma: Standard deviation of the Gaussian that replaced each node, in
            the units of the eigenvalues (NaN where unknown).
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    num_matvecs: int
    sigma: float = math.nan
