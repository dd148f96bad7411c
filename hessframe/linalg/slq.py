"""The eigenvalue density of H by stochastic Lanczos quadrature (SLQ).

The density ρ(t) = (1/n) Σᵢ δ(t − λᵢ) satisfies ∫ f ρ = tr(f(H))/n, and for a
random probe z with E[zzᵀ] = I/n that trace is E[zᵀ f(H) z]. m steps of
Lanczos started at z give a tridiagonal T. Its eigenvalues θⱼ and the squared
first components wⱼ of its eigenvectors form an m-point Gauss quadrature rule,
zᵀ f(H) z ≈ Σⱼ wⱼ f(θⱼ), which is exact for polynomials of degree below 2m
(Golub & Meurant, "Matrices, Moments and Quadrature", 1994). Averaging the rules over
probes and replacing each node by a Gaussian of width σ gives a smooth
density estimate: Lin, Saad & Yang (2016, "Approximating spectral densities
of large matrices", SIAM Review 58), Ubaru, Chen & Saad (2017, "Fast
estimation of tr(f(A)) via stochastic Lanczos quadrature", SIAM J. Matrix
Anal. Appl. 38), and, for neural-network Hessians, Ghorbani, Krishnan & Xiao
(2019, "An investigation into neural net optimization via Hessian eigenvalue
density", ICML).

Probes here are Rademacher vectors scaled to unit norm, so every probe's
weights sum to one. The Lanczos runs of a batch of probes are independent but
share one ``matmat`` per step, and each new vector is reorthogonalised twice
against its own run's basis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError
from hessframe.linalg._common import (
    apply,
    check_generator,
    check_operator,
    check_positive_float,
    check_positive_int,
    random_block,
    tridiagonal_eigh,
)
from hessframe.linalg.results import SpectralDensity

logger = logging.getLogger(__name__)

#: The grid extends this many σ beyond the outermost Ritz values.
GRID_MARGIN_SIGMAS = 5.0

#: Default broadening σ as a fraction of the width of the Ritz value range.
DEFAULT_SIGMA_FRACTION = 0.01

#: Basis entries (n × num_steps × batch) that the default ``batch_size`` may
#: allocate: 1 GiB in float32, 2 GiB in float64.
DEFAULT_MAX_BASIS_ELEMENTS = 2**28


def spectral_density(
    op: Any,
    *,
    num_probes: int = 8,
    num_steps: int = 64,
    grid_size: int = 512,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
) -> SpectralDensity:
    """Estimate the eigenvalue density of H by stochastic Lanczos quadrature.

    The density on the grid is
    ρ(t) ∝ (1/p) Σ_probes Σⱼ wⱼ exp(−(t − θⱼ)²/(2σ²)) / (σ sqrt(2π)),
    rescaled so that its trapezoidal integral over the grid is 1. Its moments
    estimate tr(Hᵏ)/n: the first moment matches the quadrature exactly and
    the second exceeds it by σ².

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device``, ``matvec(v)`` and ``matmat(V)``.
        num_probes: Number of random probes p ≥ 1.
        num_steps: Lanczos steps per probe, capped at n; the products spent
            are p times this.
        grid_size: Number of grid points, at least 2.
        sigma: Standard deviation of the Gaussian that replaces each node, in
            the units of the eigenvalues. Default: 1% of the range of the
            Ritz values (or of their largest magnitude when all are equal).
        generator: Random generator for the probes.
        progress: Called as ``progress(done, total)`` after every Lanczos
            step of every batch, with total = batches × steps.
        batch_size: Probes whose Lanczos runs share one ``matmat`` per step.
            The bases take n × num_steps × batch_size entries. Default: all
            probes, or as many as keep that product below 2²⁸ (at least one).

    Returns:
        SpectralDensity with the grid, the density, the nodes and weights of
        every probe, shape (p, min(num_steps, n)), and the products spent.
        A probe whose Krylov space becomes invariant early continues from a
        random vector orthogonal to it; the nodes found after that get
        weight zero.

    Raises:
        InvalidArgumentError: An argument is out of range.
    """
    check_operator(op, "spectral_density")
    num_probes = check_positive_int(num_probes, "num_probes", "spectral_density")
    num_steps = check_positive_int(num_steps, "num_steps", "spectral_density")
    grid_size = check_positive_int(grid_size, "grid_size", "spectral_density")
    if grid_size < 2:
        raise InvalidArgumentError(
            f"spectral_density: grid_size must be at least 2, got {grid_size}"
        )
    if sigma is not None:
        sigma = check_positive_float(sigma, "sigma", "spectral_density")
    check_generator(generator, "spectral_density")
    if progress is not None and not callable(progress):
        raise InvalidArgumentError(
            f"spectral_density: progress must be callable as progress(done, total), "
            f"got {type(progress).__name__}"
        )
    if num_steps > op.size:
        logger.info("spectral_density: num_steps=%d capped at n=%d", num_steps, op.size)
        num_steps = op.size
    if batch_size is None:
        fitting = DEFAULT_MAX_BASIS_ELEMENTS // (num_steps * op.size)
        batch_size = max(1, min(num_probes, fitting))
    batch_size = check_positive_int(batch_size, "batch_size", "spectral_density")

    counts = [min(batch_size, num_probes - start) for start in range(0, num_probes, batch_size)]
    total_steps = len(counts) * num_steps
    nodes, weights = [], []
    for index, count in enumerate(counts):
        offset = index * num_steps

        def report(step: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + step, total_steps)

        diagonals, off_diagonals = _lanczos_tridiagonals(op, count, num_steps, generator, report)
        batch_nodes, batch_weights = _gauss_quadrature(diagonals, off_diagonals)
        nodes.append(batch_nodes)
        weights.append(batch_weights)
    nodes_all = torch.cat(nodes)
    weights_all = torch.cat(weights)

    grid, density, sigma = _broaden(nodes_all, weights_all, grid_size, sigma)
    num_matvecs = num_probes * num_steps
    logger.info(
        "spectral_density: %d probes x %d steps = %d products, Ritz values in [%.4g, %.4g], "
        "sigma %.3g",
        num_probes,
        num_steps,
        num_matvecs,
        float(nodes_all.min()),
        float(nodes_all.max()),
        sigma,
    )
    return SpectralDensity(
        grid=grid,
        density=density,
        nodes=nodes_all,
        weights=weights_all,
        num_matvecs=num_matvecs,
        sigma=sigma,
    )


def _lanczos_tridiagonals(
    op: Any,
    count: int,
    num_steps: int,
    generator: torch.Generator | None,
    report: Callable[[int], None],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``count`` independent Lanczos recurrences from unit Rademacher probes.

    Returns:
        (alpha, beta) in float64 on the CPU: alpha of shape (count, num_steps)
        contains the diagonals of the tridiagonal matrices, beta of shape
        (count, num_steps − 1) their off-diagonals. A zero in beta marks a
        breakdown, after which the run continued from a fresh direction.
    """
    n = op.size
    eps = torch.finfo(op.dtype).eps
    basis = torch.empty(num_steps, n, count, dtype=op.dtype, device=op.device)
    alpha = torch.zeros(count, num_steps, dtype=torch.float64)
    beta = torch.zeros(count, max(num_steps - 1, 0), dtype=torch.float64)

    current = random_block(op, count, "rademacher", generator) / math.sqrt(n)
    norm_estimate = 0.0
    for step in range(num_steps):
        basis[step] = current
        product = apply(op, current)
        norm_estimate = max(norm_estimate, float(torch.linalg.vector_norm(product, dim=0).max()))
        alpha[:, step] = (current * product).sum(dim=0).double().cpu()

        # Two passes of classical Gram-Schmidt against the run's own basis;
        # the first pass also removes the α q_j and β q_{j-1} terms.
        used = basis[: step + 1]
        for _ in range(2):
            coefficients = torch.einsum("snc,nc->sc", used, product)
            product = product - torch.einsum("snc,sc->nc", used, coefficients)
        report(step + 1)
        if step == num_steps - 1:
            break

        norms = torch.linalg.vector_norm(product, dim=0)
        beta[:, step] = norms.double().cpu()
        broken = norms <= 100 * eps * max(norm_estimate, 1e-300)
        safe_norms = torch.where(broken, torch.ones_like(norms), norms)
        current = product / safe_norms
        if bool(broken.any()):
            beta[broken.cpu(), step] = 0.0
            current[:, broken] = _fresh_directions(op, used[:, :, broken], generator)
    return alpha, beta


def _fresh_directions(
    op: Any, used: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """Return one random unit vector per run, orthogonal to that run's basis."""
    count = used.shape[2]
    fresh = random_block(op, count, "gaussian", generator)
    for _ in range(2):
        coefficients = torch.einsum("snc,nc->sc", used, fresh)
        fresh = fresh - torch.einsum("snc,sc->nc", used, coefficients)
    return fresh / torch.linalg.vector_norm(fresh, dim=0)


def _gauss_quadrature(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the nodes (Ritz values) and weights (squared first components) of each run."""
    nodes, weights = [], []
    for diagonal, off_diagonal in zip(alpha, beta, strict=True):
        values, vectors = tridiagonal_eigh(diagonal, off_diagonal)
        nodes.append(values)
        weights.append(vectors[0] ** 2)
    return torch.stack(nodes), torch.stack(weights)


def _broaden(
    nodes: torch.Tensor, weights: torch.Tensor, grid_size: int, sigma: float | None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Replace each node by a Gaussian and evaluate the normalised mixture on a grid."""
    low = float(nodes.min())
    high = float(nodes.max())
    if sigma is None:
        width = high - low
        if width <= 0:
            width = max(abs(high), 1.0)
        sigma = DEFAULT_SIGMA_FRACTION * width
    margin = GRID_MARGIN_SIGMAS * sigma
    grid = torch.linspace(low - margin, high + margin, grid_size, dtype=torch.float64)

    flat_nodes = nodes.reshape(-1)
    flat_weights = weights.reshape(-1) / nodes.shape[0]
    density = torch.zeros(grid_size, dtype=torch.float64)
    for start in range(0, flat_nodes.numel(), 1024):
        chunk = slice(start, start + 1024)
        offsets = (grid[:, None] - flat_nodes[None, chunk]) / sigma
        gaussians = torch.exp(-0.5 * offsets**2) / (sigma * math.sqrt(2 * math.pi))
        density += gaussians @ flat_weights[chunk]
    density = density / torch.trapezoid(density, grid)
    return grid, density, sigma
