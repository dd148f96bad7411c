"""Hutchinson, Hutch++ and the diagonal estimator: convergence to the exact trace and diagonal.

Each estimator runs over many seeds at several numbers of products m. The
mean absolute error must fall at the rate that the method's variance
predicts, which is 1/sqrt(m) for Hutchinson and faster for Hutch++ on a
matrix whose spectrum decays.
"""

from __future__ import annotations

import math

import pytest
import torch
from linalg_cases import DenseProvider, dense_case, matrix_with_spectrum

from hessframe.errors import InvalidArgumentError
from hessframe.linalg import hutchinson_diagonal, hutchinson_trace, hutchpp_trace

SEEDS = range(40)


def mean_trace_error(estimator, op: DenseProvider, budget: int) -> float:
    exact = float(torch.trace(op.matrix))
    errors = [
        abs(estimator(op, budget, generator=torch.Generator().manual_seed(seed)).value - exact)
        for seed in SEEDS
    ]
    return sum(errors) / len(errors)


def log_log_slope(budgets: list[int], errors: list[float]) -> float:
    x = torch.log(torch.tensor(budgets, dtype=torch.float64))
    y = torch.log(torch.tensor(errors, dtype=torch.float64))
    x_centered = x - x.mean()
    return float((x_centered * (y - y.mean())).sum() / (x_centered**2).sum())


def decaying_psd_case() -> DenseProvider:
    eigenvalues = 1.0 / (1.0 + torch.arange(100, dtype=torch.float64)) ** 2
    return DenseProvider(matrix_with_spectrum(eigenvalues, seed=8))


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_error_falls_as_inverse_sqrt(distribution: str) -> None:
    op = dense_case("indefinite", n=80)
    budgets = [4, 16, 64, 256]

    def estimator(op, budget, generator):
        return hutchinson_trace(op, budget, distribution=distribution, generator=generator)

    errors = [mean_trace_error(estimator, op, budget) for budget in budgets]

    slope = log_log_slope(budgets, errors)
    assert -0.65 < slope < -0.35
    assert errors[-1] < errors[0] / 4


def test_hutchinson_standard_error_matches_spread() -> None:
    op = dense_case("indefinite", n=80)
    estimates = [
        hutchinson_trace(op, 64, generator=torch.Generator().manual_seed(seed)) for seed in SEEDS
    ]
    values = torch.tensor([estimate.value for estimate in estimates])
    reported = torch.tensor([estimate.standard_error for estimate in estimates])

    # The spread of the estimates over seeds is what the standard error predicts.
    ratio = float(values.std()) / float(reported.mean())
    assert 0.7 < ratio < 1.4
    assert all(estimate.num_matvecs == 64 for estimate in estimates)


def test_hutchinson_exact_for_diagonal_matrix() -> None:
    diagonal = torch.linspace(-2.0, 5.0, 30, dtype=torch.float64)
    op = DenseProvider(torch.diag(diagonal))
    estimate = hutchinson_trace(op, 3, generator=torch.Generator().manual_seed(0))

    assert abs(estimate.value - float(diagonal.sum())) < 1e-12


def test_hutchinson_batches_give_same_estimate() -> None:
    op = dense_case("indefinite", n=40)
    one_batch = hutchinson_trace(op, 10, batch_size=10, generator=torch.Generator().manual_seed(3))
    small_batches = hutchinson_trace(
        op, 10, batch_size=3, generator=torch.Generator().manual_seed(3)
    )

    assert op.products == 20
    assert one_batch.num_matvecs == small_batches.num_matvecs == 10
    assert math.isfinite(small_batches.value)


def test_hutchpp_error_falls_faster_than_hutchinson() -> None:
    op = decaying_psd_case()
    budgets = [12, 24, 48, 96]
    hutchpp_errors = [mean_trace_error(hutchpp_trace, op, budget) for budget in budgets]
    hutchinson_errors = [mean_trace_error(hutchinson_trace, op, budget) for budget in budgets]

    assert log_log_slope(budgets, hutchpp_errors) < -0.9
    assert log_log_slope(budgets, hutchinson_errors) > -0.7
    for hutchpp_error, hutchinson_error in zip(hutchpp_errors, hutchinson_errors, strict=True):
        assert hutchpp_error < hutchinson_error


def test_hutchpp_spends_the_budget() -> None:
    op = decaying_psd_case()
    estimate = hutchpp_trace(op, 31, generator=torch.Generator().manual_seed(0))

    assert estimate.num_matvecs == 31
    assert op.products == 31


def test_hutchpp_exact_when_sketch_spans_space() -> None:
    op = dense_case("indefinite", n=10)
    estimate = hutchpp_trace(op, 30, generator=torch.Generator().manual_seed(0))

    assert abs(estimate.value - float(torch.trace(op.matrix))) < 1e-10
    assert estimate.num_matvecs == 20
    assert estimate.standard_error == 0.0


def test_hutchinson_diagonal_error_falls_as_inverse_sqrt() -> None:
    op = dense_case("indefinite", n=50)
    exact = torch.diagonal(op.matrix)
    budgets = [4, 16, 64, 256]
    errors = []
    for budget in budgets:
        per_seed = [
            float(
                (
                    hutchinson_diagonal(op, budget, generator=torch.Generator().manual_seed(seed))
                    - exact
                )
                .abs()
                .mean()
            )
            for seed in range(10)
        ]
        errors.append(sum(per_seed) / len(per_seed))

    slope = log_log_slope(budgets, errors)
    assert -0.65 < slope < -0.35


def test_hutchinson_diagonal_exact_for_diagonal_matrix() -> None:
    diagonal = torch.linspace(-2.0, 5.0, 30, dtype=torch.float64)
    op = DenseProvider(torch.diag(diagonal))
    estimate = hutchinson_diagonal(op, 1, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(estimate, diagonal, atol=1e-14, rtol=0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda op: hutchinson_trace(op, 0), "num_samples must be an integer >= 1"),
        (lambda op: hutchinson_trace(op, 2.5), "num_samples must be an integer >= 1"),
        (lambda op: hutchinson_trace(op, 4, distribution="uniform"), "distribution must be one"),
        (lambda op: hutchinson_trace(op, 4, batch_size=0), "batch_size must be an integer"),
        (lambda op: hutchinson_diagonal(op, 0), "num_samples must be an integer >= 1"),
        (lambda op: hutchpp_trace(op, 2), "num_matvecs must be at least 3"),
        (lambda op: hutchpp_trace(op, 9, generator=0), "generator must be a torch.Generator"),
    ],
)
def test_trace_estimators_reject_bad_arguments(call, message: str) -> None:
    op = dense_case("indefinite", n=10)
    with pytest.raises(InvalidArgumentError, match=message):
        call(op)
