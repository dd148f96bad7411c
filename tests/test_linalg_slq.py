"""Stochastic Lanczos quadrature: normalisation, moments and mass against the known spectrum."""

from __future__ import annotations

import math

import pytest
import torch
from linalg_cases import DenseProvider, dense_case, matrix_with_spectrum

from hessframe.errors import InvalidArgumentError
from hessframe.linalg import spectral_density


def density_moment(result, power: int) -> float:
    return float(torch.trapezoid(result.grid**power * result.density, result.grid))


def mean_moment_errors(op: DenseProvider, num_probes: int, seeds: range) -> tuple[float, float]:
    eigenvalues = torch.linalg.eigvalsh(op.matrix)
    exact_first = float(eigenvalues.mean())
    exact_second = float((eigenvalues**2).mean())
    first_errors, second_errors = [], []
    for seed in seeds:
        result = spectral_density(
            op, num_probes=num_probes, num_steps=20, generator=torch.Generator().manual_seed(seed)
        )
        first_errors.append(abs(density_moment(result, 1) - exact_first))
        # Gaussian broadening adds σ² to the second moment of the quadrature.
        second_errors.append(abs(density_moment(result, 2) - result.sigma**2 - exact_second))
    return sum(first_errors) / len(first_errors), sum(second_errors) / len(second_errors)


def predicted_mean_abs_error(matrix: torch.Tensor, num_probes: int) -> float:
    """Return E|error| of the mean of zᵀMz/n over Rademacher z, taken as Gaussian.

    Var(zᵀMz) = 2(‖M‖_F² − Σᵢ Mᵢᵢ²) for Rademacher z (Hutchinson 1989), and a
    Gaussian error of standard deviation s has mean absolute value s·sqrt(2/π).
    """
    n = matrix.shape[0]
    variance = 2 * (float((matrix**2).sum()) - float((torch.diagonal(matrix) ** 2).sum()))
    standard_deviation = math.sqrt(variance / num_probes) / n
    return standard_deviation * math.sqrt(2 / math.pi)


def test_slq_density_integrates_to_one() -> None:
    op = dense_case("indefinite")
    result = spectral_density(op, num_probes=4, num_steps=16, generator=torch.Generator())

    assert abs(float(torch.trapezoid(result.density, result.grid)) - 1.0) < 1e-12
    assert bool((result.density >= 0).all())
    assert result.grid.shape == (512,)


def test_slq_quadrature_weights_sum_to_one_per_probe() -> None:
    op = dense_case("indefinite")
    result = spectral_density(op, num_probes=5, num_steps=12, generator=torch.Generator())

    assert result.nodes.shape == (5, 12)
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(5, dtype=torch.float64))
    eigenvalues = torch.linalg.eigvalsh(op.matrix)
    assert float(result.nodes.min()) >= float(eigenvalues.min()) - 1e-10
    assert float(result.nodes.max()) <= float(eigenvalues.max()) + 1e-10


def test_slq_moments_converge_with_more_probes() -> None:
    op = dense_case("indefinite")
    few_first, few_second = mean_moment_errors(op, num_probes=2, seeds=range(12))
    many_first, many_second = mean_moment_errors(op, num_probes=32, seeds=range(12))

    # Each moment is a Hutchinson estimate of tr(H^p)/n, so 16 times more
    # probes should cut the error about 4 times, to what its variance predicts.
    assert many_first < few_first / 2.5
    assert many_second < few_second / 2.5
    assert many_first < 1.5 * predicted_mean_abs_error(op.matrix, 32)
    assert many_second < 1.5 * predicted_mean_abs_error(op.matrix @ op.matrix, 32)


def test_slq_quadrature_moments_are_exact_per_probe() -> None:
    # With unit probes z, Σ w θ^p equals zᵀ H^p z for p < 2·num_steps, so
    # with num_steps = n every probe's quadrature reproduces tr(H^p)/n on average.
    op = dense_case("decaying", n=20)
    result = spectral_density(op, num_probes=400, num_steps=20, generator=torch.Generator())
    eigenvalues = torch.linalg.eigvalsh(op.matrix)
    for power in (1, 2):
        quadrature = float((result.weights * result.nodes**power).sum(dim=1).mean())
        exact = float((eigenvalues**power).mean())
        assert abs(quadrature - exact) < 0.1 * abs(exact)


def test_slq_mass_of_two_clusters() -> None:
    # 30% of the eigenvalues near -1 and 70% near 2.
    eigenvalues = torch.cat(
        [
            -1.0 + 0.01 * torch.randn(30, generator=torch.Generator().manual_seed(0)),
            2.0 + 0.01 * torch.randn(70, generator=torch.Generator().manual_seed(1)),
        ]
    ).double()
    op = DenseProvider(matrix_with_spectrum(eigenvalues, seed=9))
    result = spectral_density(op, num_probes=32, num_steps=16, generator=torch.Generator())

    below = result.grid < 0.5
    mass_below = float(torch.trapezoid(result.density[below], result.grid[below]))
    assert abs(mass_below - 0.3) < 0.05
    assert result.num_matvecs == 32 * 16 == op.products


def test_slq_three_distinct_eigenvalues() -> None:
    # A matrix with three distinct eigenvalues makes every Krylov space
    # invariant after three steps.
    eigenvalues = torch.tensor([1.0] * 4 + [2.0] * 3 + [5.0] * 3, dtype=torch.float64)
    op = DenseProvider(matrix_with_spectrum(eigenvalues, seed=10))
    result = spectral_density(op, num_probes=3, num_steps=50, generator=torch.Generator())

    assert result.nodes.shape == (3, 10)
    assert result.num_matvecs == 30
    torch.testing.assert_close(result.weights.sum(dim=1), torch.ones(3, dtype=torch.float64))
    weighted_nodes = result.nodes[result.weights > 1e-8]
    distance = (weighted_nodes[:, None] - torch.tensor([1.0, 2.0, 5.0])).abs().min(dim=1).values
    assert float(distance.max()) < 1e-8


def test_slq_reports_progress() -> None:
    op = dense_case("indefinite", n=30)
    calls = []
    spectral_density(
        op,
        num_probes=4,
        num_steps=5,
        batch_size=2,
        progress=lambda done, total: calls.append((done, total)),
        generator=torch.Generator(),
    )

    assert calls == [(step, 10) for step in range(1, 11)]


def test_slq_explicit_sigma_sets_width() -> None:
    op = DenseProvider(torch.eye(8, dtype=torch.float64) * 3.0)
    result = spectral_density(op, num_probes=2, num_steps=4, sigma=0.5, generator=torch.Generator())

    mean = density_moment(result, 1)
    variance = density_moment(result, 2) - mean**2
    assert result.sigma == 0.5
    assert abs(mean - 3.0) < 1e-6
    assert abs(variance - 0.25) < 1e-3


def test_provider_spectral_density_calls_slq() -> None:
    op = dense_case("indefinite", n=20)
    result = op.spectral_density(num_probes=2, num_steps=5, generator=torch.Generator())

    assert result.num_matvecs == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_probes": 0}, "num_probes must be an integer >= 1"),
        ({"num_steps": 0}, "num_steps must be an integer >= 1"),
        ({"grid_size": 1}, "grid_size must be at least 2"),
        ({"sigma": -1.0}, "sigma must be finite and > 0"),
        ({"progress": 3}, "progress must be callable"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_slq_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    op = dense_case("indefinite", n=10)
    with pytest.raises(InvalidArgumentError, match=message):
        spectral_density(op, **kwargs)
