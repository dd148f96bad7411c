"""The LM machinery against dense algebra and the exact Gaussian flow."""

from __future__ import annotations

import math

import pytest
import torch
from hessframe_diffusion import lm
from hessframe_diffusion.lm import (
    Evaluation,
    damped_secant_hessian,
    increment_system,
    langevin_corrector,
    lm_increment_correction,
    overshoot_factor,
    secant_curvature,
)

from hessframe.errors import InvalidArgumentError


def _unit_directions(batch: int, dim: int, seed: int = 0) -> torch.Tensor:
    draws = torch.randn(
        batch, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    return draws / torch.linalg.vector_norm(draws, dim=1, keepdim=True)


def _dense_blocks(directions, curvature, damping):
    eye = torch.eye(directions.shape[1], dtype=directions.dtype)
    return torch.stack(
        [
            (1 + damping) * eye - c * torch.outer(u, u)
            for u, c in zip(directions, curvature, strict=True)
        ]
    )


@pytest.mark.parametrize("batch", [1, 5, lm.CHUNK_SIZE + 3])
def test_damped_hessian_blocks_match_dense(batch):
    directions = _unit_directions(batch, 7)
    curvature = torch.linspace(0, 1, batch, dtype=torch.float64)
    hessian = damped_secant_hessian(directions, curvature, 0.5)
    assert torch.allclose(hessian.to_dense(), _dense_blocks(directions, curvature, 0.5), atol=1e-12)


def test_woodbury_solve_matches_dense():
    directions = _unit_directions(20, 7)
    curvature = torch.rand(20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    right = torch.randn(20, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dense = _dense_blocks(directions, curvature, 0.3)
    solved = damped_secant_hessian(directions, curvature, 0.3).solve(right)
    assert torch.allclose(solved, torch.linalg.solve(dense, right[..., None])[..., 0], atol=1e-12)


def test_inverse_square_root_matches_dense():
    directions = _unit_directions(20, 7)
    curvature = torch.rand(20, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    right = torch.randn(20, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    values, vectors = torch.linalg.eigh(_dense_blocks(directions, curvature, 0.3))
    inverse_root = vectors @ torch.diag_embed(values.rsqrt()) @ vectors.mT
    result = damped_secant_hessian(directions, curvature, 0.3).inverse_sqrt(right)
    assert torch.allclose(result, (inverse_root @ right[..., None])[..., 0], atol=1e-12)


def test_increment_system_solve_matches_dense():
    directions = _unit_directions(4, 5)
    coefficients = torch.tensor([0.0, 0.5, 2.0, 10.0], dtype=torch.float64)
    right = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    eye = torch.eye(5, dtype=torch.float64)
    dense = torch.stack(
        [eye + a * torch.outer(u, u) for u, a in zip(directions, coefficients, strict=True)]
    )
    solved = increment_system(directions, coefficients).solve(right)
    assert torch.allclose(solved, torch.linalg.solve(dense, right[..., None])[..., 0], atol=1e-12)


@pytest.mark.parametrize("damping", [0.0, -1.0, math.inf, math.nan])
def test_damped_hessian_rejects_bad_damping(damping):
    with pytest.raises(InvalidArgumentError, match="damping"):
        damped_secant_hessian(_unit_directions(2, 3), torch.zeros(2, dtype=torch.float64), damping)


def _gaussian_evaluation(y, variance, mean, s):
    """ε̂ of data N(mean, variance·I) at level s, in y-coordinates: s (y - m) / (v + s²)."""
    return Evaluation(y=y, noise=s * (y - mean) / (variance + s**2), s=s)


def test_secant_curvature_is_exact_for_gaussian_data():
    variance, mean = 0.3, torch.tensor([[0.5, -0.2, 0.1]])
    y1 = torch.tensor([[2.0, 1.0, -1.0]])
    s1, s2 = 3.0, 1.2
    first = _gaussian_evaluation(y1, variance, mean, s1)
    # The exact ODE step keeps the direction of y - m and scales it.
    y2 = mean + (y1 - mean) * math.sqrt((variance + s2**2) / (variance + s1**2))
    second = _gaussian_evaluation(y2, variance, mean, s2)
    _, curvature = secant_curvature(first, second)
    assert curvature.item() == pytest.approx(variance / (variance + s2**2), rel=1e-5)


def test_secant_curvature_at_one_level_is_plain_secant():
    variance, mean, s = 0.5, torch.zeros(1, 2), 0.7
    first = _gaussian_evaluation(torch.tensor([[1.0, 0.0]]), variance, mean, s)
    second = _gaussian_evaluation(torch.tensor([[0.4, 0.3]]), variance, mean, s)
    _, curvature = secant_curvature(first, second)
    assert curvature.item() == pytest.approx(variance / (variance + s**2), rel=1e-5)


@pytest.mark.parametrize(("c", "ratio"), [(0.2, 0.25), (0.9, 0.5), (0.5, 0.0)])
def test_overshoot_factor_gives_exact_gaussian_step(c, ratio):
    s = 2.0
    variance = c * s**2 / (1 - c)
    exact = math.sqrt((variance + (ratio * s) ** 2) / (variance + s**2)) - 1
    ddim = (ratio * s - s) * s / (variance + s**2)  # (s' - s) ε̂ per unit of y - m
    g = overshoot_factor(torch.tensor([c], dtype=torch.float64), ratio).item()
    assert g * ddim == pytest.approx(exact, rel=1e-12)


def test_increment_correction_is_exact_for_gaussian_data():
    """Along u, with λ → 0, the corrected DDIM step is the exact flow step."""
    variance, mean = 0.4, torch.tensor([[0.3, -0.1]], dtype=torch.float64)
    y = torch.tensor([[1.5, 0.7]], dtype=torch.float64)
    s, s_next = 1.5, 0.5
    noise = s * (y - mean) / (variance + s**2)
    increment = (s_next - s) * noise
    direction = (y - mean) / torch.linalg.vector_norm(y - mean)
    curvature = torch.tensor([variance / (variance + s**2)], dtype=torch.float64)
    corrected = lm_increment_correction(
        increment, direction, curvature, ratio=s_next / s, damping=1e-12, mixing=1.0
    )
    exact = (y - mean) * (math.sqrt((variance + s_next**2) / (variance + s**2)) - 1)
    assert torch.allclose(corrected, exact, atol=1e-9)


def test_increment_correction_with_zero_mixing_returns_input():
    increment = torch.randn(3, 4)
    result = lm_increment_correction(
        increment,
        _unit_directions(3, 4).float(),
        torch.full((3,), 0.5),
        ratio=0.5,
        damping=1.0,
        mixing=0.0,
    )
    assert result is increment


def test_preconditioned_corrector_with_zero_curvature_is_langevin():
    generator = torch.Generator().manual_seed(0)
    x, noise, z = (torch.randn(3, 4, generator=generator) for _ in range(3))
    hessian = damped_secant_hessian(_unit_directions(3, 4).float(), torch.zeros(3), 2.0)
    plain = langevin_corrector(x, noise, 0.5, z, snr=0.1, hessian=None, damping=2.0)
    preconditioned = langevin_corrector(x, noise, 0.5, z, snr=0.1, hessian=hessian, damping=2.0)
    assert torch.allclose(plain, preconditioned, atol=1e-6)
