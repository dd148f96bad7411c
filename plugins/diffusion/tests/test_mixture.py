"""The mixture test bed against autodiff of its closed-form log density."""

from __future__ import annotations

import math

import pytest
import torch
from hessframe_diffusion.mixture import GaussianMixture, default_mixture, solve_probability_flow

from hessframe.errors import InvalidArgumentError

LEVELS = [(0.99, 0.1411), (0.8, 0.6), (0.3, 0.9539)]


@pytest.mark.parametrize(("alpha", "sigma"), LEVELS)
def test_score_matches_autodiff(mixture, alpha, sigma):
    x = torch.randn(5, mixture.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    gradient = torch.func.vmap(
        torch.func.grad(lambda v: mixture.log_density(v[None], alpha, sigma)[0])
    )(x)
    assert torch.allclose(mixture.score(x, alpha, sigma), gradient, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize(("alpha", "sigma"), LEVELS)
def test_hessian_matches_autodiff(mixture, alpha, sigma):
    x = torch.randn(4, mixture.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    dense = torch.stack(
        [
            torch.func.hessian(lambda v: mixture.log_density(v[None], alpha, sigma)[0])(row)
            for row in x
        ]
    )
    assert torch.allclose(mixture.hessian(x, alpha, sigma), dense, atol=1e-9, rtol=1e-8)


def test_denoiser_is_tweedie_of_one_gaussian():
    mean = torch.tensor([0.5, -1.0], dtype=torch.float64)
    covariance = torch.tensor([[0.4, 0.1], [0.1, 0.2]], dtype=torch.float64)
    single = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], covariance[None])
    alpha, sigma = 0.6, 0.8
    x = torch.tensor([[0.3, 0.2]], dtype=torch.float64)
    # Posterior mean of a Gaussian prior under x = α x0 + σ ε.
    gain = alpha * covariance @ torch.linalg.inv(alpha**2 * covariance + sigma**2 * torch.eye(2))
    expected = mean + gain @ (x[0] - alpha * mean)
    assert torch.allclose(single.denoised(x, alpha, sigma)[0], expected, atol=1e-12)


def test_probability_flow_of_one_gaussian_is_linear_map():
    """For N(m, Σ) the ODE maps x_T to m + Σ^{1/2}(Σ + s_T² I)^{-1/2}(x_T/α_T - m)."""
    mean = torch.tensor([0.2, -0.4], dtype=torch.float64)
    covariance = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=torch.float64)
    single = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], covariance[None])
    alpha_bar = 0.01
    x_start = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    s2 = (1 - alpha_bar) / alpha_bar
    values, vectors = torch.linalg.eigh(covariance)
    gain = vectors @ torch.diag(torch.sqrt(values / (values + s2))) @ vectors.T
    expected = mean + (x_start / math.sqrt(alpha_bar) - mean) @ gain.T
    solved = solve_probability_flow(single, x_start, alpha_bar, steps=300)
    assert torch.allclose(solved, expected, atol=1e-6)


def test_exact_samples_match_mixture_mean(mixture):
    draws = mixture.sample(40000, torch.Generator().manual_seed(0))
    expected = (mixture.weights[:, None] * mixture.means).sum(0)
    assert torch.allclose(draws.mean(0), expected, atol=0.03)


def test_mixture_rejects_bad_weights():
    with pytest.raises(InvalidArgumentError, match="sum to one"):
        GaussianMixture(
            torch.tensor([0.5, 0.6], dtype=torch.float64),
            torch.zeros(2, 2, dtype=torch.float64),
            torch.eye(2, dtype=torch.float64).repeat(2, 1, 1),
        )


def test_default_mixture_rejects_small_dim():
    with pytest.raises(InvalidArgumentError, match="dim"):
        default_mixture(dim=1)


@pytest.mark.parametrize(
    ("x", "alpha", "sigma", "message"),
    [
        (torch.zeros(2, 5, dtype=torch.float64), 0.8, 0.6, r"x must be a tensor of shape \(B, 6\)"),
        (torch.zeros(6, dtype=torch.float64), 0.8, 0.6, r"x must be a tensor of shape \(B, 6\)"),
        (torch.zeros(2, 6, dtype=torch.float64), 0.8, float("nan"), "sigma finite and >= 0"),
        (torch.zeros(2, 6, dtype=torch.float64), -0.8, 0.6, "alpha must be finite and > 0"),
    ],
)
def test_mixture_rejects_bad_points_and_levels(mixture, x, alpha, sigma, message):
    for method in (mixture.score, mixture.hessian, mixture.log_density):
        with pytest.raises(InvalidArgumentError, match=message):
            method(x, alpha=alpha, sigma=sigma)


def test_mixture_rejects_non_finite_means():
    with pytest.raises(InvalidArgumentError, match="means and covariances must be finite"):
        GaussianMixture(
            torch.ones(1, dtype=torch.float64),
            torch.full((1, 2), float("nan"), dtype=torch.float64),
            torch.eye(2, dtype=torch.float64)[None],
        )
