"""Lanczos and power iteration against ``torch.linalg.eigh`` on matrices with known spectra."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from linalg_cases import SPECTRA, DenseProvider, dense_case, matrix_with_spectrum

from hessframe.errors import InvalidArgumentError
from hessframe.linalg import lanczos, power_iteration, to_linear_operator
from hessframe.linalg.lanczos import eigenvalue_error_bounds


def reference_eigenvalues(matrix: torch.Tensor, which: str, k: int) -> torch.Tensor:
    values = torch.linalg.eigvalsh(matrix)
    if which == "largest":
        return values.flip(0)[:k]
    if which == "smallest":
        return values[:k]
    return values[torch.argsort(values.abs(), descending=True)][:k]


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
@pytest.mark.parametrize("name", SPECTRA)
def test_lanczos_eigenvalues_match_dense(name: str, which: str) -> None:
    op = dense_case(name)
    # Lanczos with one vector per step finds a repeated eigenvalue once, so the
    # case with a triple eigenvalue needs blocks of three.
    block_size = 3 if name == "repeated" else 1
    result = lanczos(
        op,
        k=3,
        which=which,
        tol=1e-10,
        block_size=block_size,
        generator=torch.Generator().manual_seed(0),
    )

    expected = reference_eigenvalues(op.matrix, which, 3)
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, expected, atol=1e-8, rtol=0)
    scale = float(torch.linalg.eigvalsh(op.matrix).abs().max())
    assert float(result.residuals.max()) <= 1e-10 * scale


def test_lanczos_residuals_are_true_residuals() -> None:
    op = dense_case("indefinite")
    result = lanczos(op, k=4, which="magnitude", generator=torch.Generator().manual_seed(1))

    vectors = result.eigenvectors
    true_residuals = torch.linalg.vector_norm(
        op.matrix @ vectors - vectors * result.eigenvalues, dim=0
    )
    torch.testing.assert_close(result.residuals, true_residuals, atol=1e-12, rtol=1e-6)
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(4, dtype=torch.float64))


def test_lanczos_eigenvectors_match_dense() -> None:
    op = dense_case("clustered")
    result = lanczos(op, k=3, generator=torch.Generator().manual_seed(2), tol=1e-10)

    _, dense_vectors = torch.linalg.eigh(op.matrix)
    top = dense_vectors[:, -3:].flip(1)
    alignment = (result.eigenvectors.T @ top).abs().diagonal()
    torch.testing.assert_close(alignment, torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)


def test_lanczos_orders_results_as_requested() -> None:
    op = dense_case("indefinite")
    largest = lanczos(op, k=3, which="largest").eigenvalues
    smallest = lanczos(op, k=3, which="smallest").eigenvalues
    magnitude = lanczos(op, k=3, which="magnitude").eigenvalues

    assert bool((largest[:-1] >= largest[1:]).all())
    assert bool((smallest[:-1] <= smallest[1:]).all())
    assert bool((magnitude.abs()[:-1] >= magnitude.abs()[1:]).all())


def test_lanczos_stops_at_max_iter() -> None:
    op = dense_case("indefinite")
    result = lanczos(op, k=1, max_iter=3, generator=torch.Generator().manual_seed(0))

    assert not result.converged
    assert result.iterations == 3
    assert result.num_matvecs == 3


def test_lanczos_counts_every_product() -> None:
    op = dense_case("decaying", n=120)
    result = lanczos(op, k=2, block_size=2, generator=torch.Generator().manual_seed(0))

    assert result.num_matvecs == op.products


def test_lanczos_exact_when_space_reaches_n() -> None:
    op = dense_case("indefinite", n=6)
    result = lanczos(op, k=6, which="smallest", generator=torch.Generator().manual_seed(0))

    assert result.converged
    torch.testing.assert_close(result.eigenvalues, torch.linalg.eigvalsh(op.matrix))
    assert result.num_matvecs == 6


def test_lanczos_on_one_by_one_matrix() -> None:
    op = DenseProvider(torch.tensor([[2.5]], dtype=torch.float64))
    result = lanczos(op, k=1)

    assert result.converged
    assert float(result.eigenvalues[0]) == 2.5


def test_lanczos_continues_past_invariant_subspace() -> None:
    # A start vector in the span of two eigenvectors makes the Krylov space
    # invariant after two steps; the top eigenvalue lies outside it.
    eigenvalues = torch.linspace(1.0, 5.0, 40, dtype=torch.float64)
    matrix = matrix_with_spectrum(eigenvalues, seed=3)
    _, vectors = torch.linalg.eigh(matrix)
    op = DenseProvider(matrix)
    start = vectors[:, 3] + vectors[:, 7]

    result = lanczos(op, k=1, v0=start, generator=torch.Generator().manual_seed(0))

    assert result.converged
    assert abs(float(result.eigenvalues[0]) - 5.0) < 1e-8


def test_lanczos_finds_multiplicity_after_breakdown() -> None:
    # Seven distinct eigenvalues, each three times. Every Krylov space from
    # one vector becomes invariant after seven steps and contains each value once.
    eigenvalues = torch.arange(-3.0, 4.0, dtype=torch.float64).repeat(3)
    op = DenseProvider(matrix_with_spectrum(eigenvalues, seed=11))
    result = lanczos(op, k=4, which="smallest", generator=torch.Generator().manual_seed(0))

    expected = torch.tensor([-3.0, -3.0, -3.0, -2.0], dtype=torch.float64)
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, expected, atol=1e-8, rtol=0)


def test_lanczos_finds_null_space_of_rank_deficient_matrix() -> None:
    op = dense_case("rank_deficient", n=30)
    result = lanczos(op, k=4, which="smallest", generator=torch.Generator().manual_seed(0))

    assert result.converged
    torch.testing.assert_close(
        result.eigenvalues, torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0
    )


def test_lanczos_thick_restart_converges() -> None:
    eigenvalues = torch.linspace(0.0, 1.0, 300, dtype=torch.float64)
    eigenvalues[-2:] = torch.tensor([1.05, 1.1], dtype=torch.float64)
    op = DenseProvider(matrix_with_spectrum(eigenvalues, seed=4))
    result = lanczos(
        op, k=2, max_basis_size=12, max_iter=300, generator=torch.Generator().manual_seed(0)
    )

    assert result.converged
    torch.testing.assert_close(
        result.eigenvalues, torch.tensor([1.1, 1.05], dtype=torch.float64), atol=1e-8, rtol=0
    )
    assert result.num_matvecs == op.products


def test_lanczos_float32() -> None:
    op = dense_case("indefinite", dtype=torch.float32)
    result = lanczos(op, k=2, tol=1e-4, generator=torch.Generator().manual_seed(0))

    expected = reference_eigenvalues(op.matrix.double(), "largest", 2).float()
    assert result.converged
    assert result.eigenvalues.dtype == torch.float32
    torch.testing.assert_close(result.eigenvalues, expected, atol=1e-4, rtol=0)


def small_gap_case() -> DenseProvider:
    # λ₂/λ₁ = 0.95, a gap that makes power iteration slow.
    eigenvalues = torch.cat(
        [
            torch.tensor([1.0, 0.95], dtype=torch.float64),
            torch.linspace(-0.5, 0.9, 198, dtype=torch.float64),
        ]
    )
    return DenseProvider(matrix_with_spectrum(eigenvalues, seed=5))


def test_lanczos_needs_fewer_products_than_power_iteration() -> None:
    op = small_gap_case()
    fast = lanczos(op, k=1, tol=1e-6, generator=torch.Generator().manual_seed(0))
    # Power iteration stops on the change of its Rayleigh quotient, which
    # needs a far smaller tol to reach the same eigenvalue accuracy.
    slow = power_iteration(op, tol=1e-12, generator=torch.Generator().manual_seed(0))

    assert fast.converged
    assert abs(float(fast.eigenvalues[0]) - 1.0) < 1e-10
    assert abs(float(slow.eigenvalues[0]) - 1.0) < 1e-10
    assert fast.num_matvecs * 3 < slow.num_matvecs


def test_lanczos_needs_fewer_products_than_arpack() -> None:
    op = small_gap_case()
    ours = lanczos(op, k=1, tol=1e-6, generator=torch.Generator().manual_seed(0))
    operator = to_linear_operator(op)
    start = np.random.default_rng(0).standard_normal(op.size)
    arpack = scipy.sparse.linalg.eigsh(operator, k=1, which="LA", tol=1e-6, v0=start)[0]

    assert abs(float(arpack[0]) - 1.0) < 1e-8
    assert ours.num_matvecs < operator.num_matvecs


@pytest.mark.parametrize("tol", [1e-3, 1e-6, 1e-10])
@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
@pytest.mark.parametrize("name", ["decaying", "indefinite", "clustered", "repeated"])
def test_eigenvalue_criterion_bounds_error(name: str, which: str, tol: float) -> None:
    op = dense_case(name)
    block_size = 3 if name == "repeated" else 1
    result = lanczos(
        op,
        k=3,
        which=which,
        tol=tol,
        criterion="eigenvalue",
        block_size=block_size,
        generator=torch.Generator().manual_seed(2),
    )

    expected = reference_eigenvalues(op.matrix, which, 3)
    scale = float(torch.linalg.eigvalsh(op.matrix).abs().max())
    rounding = 10 * torch.finfo(torch.float64).eps * scale
    assert result.converged
    errors = (result.eigenvalues - expected).abs()
    assert bool((errors <= tol * expected.abs() + rounding).all()), errors


def test_eigenvalue_criterion_float32() -> None:
    op = dense_case("indefinite", dtype=torch.float32)
    result = lanczos(
        op, k=2, tol=1e-3, criterion="eigenvalue", generator=torch.Generator().manual_seed(0)
    )

    expected = reference_eigenvalues(op.matrix.double(), "largest", 2)
    assert result.converged
    errors = (result.eigenvalues.double() - expected).abs()
    assert bool((errors <= 1e-3 * expected.abs()).all()), errors


def test_eigenvalue_criterion_saves_products() -> None:
    op = small_gap_case()
    by_eigenvalue = lanczos(
        op, k=1, tol=1e-6, criterion="eigenvalue", generator=torch.Generator().manual_seed(0)
    )
    by_residual = lanczos(
        op, k=1, tol=1e-6, criterion="residual", generator=torch.Generator().manual_seed(0)
    )

    assert by_eigenvalue.converged
    assert by_residual.converged
    assert abs(float(by_eigenvalue.eigenvalues[0]) - 1.0) <= 1e-6
    assert by_eigenvalue.num_matvecs < by_residual.num_matvecs


def test_eigenvalue_criterion_true_residuals() -> None:
    op = small_gap_case()
    result = lanczos(
        op, k=2, tol=1e-4, criterion="eigenvalue", generator=torch.Generator().manual_seed(1)
    )

    vectors = result.eigenvectors
    true_residuals = torch.linalg.vector_norm(
        op.matrix @ vectors - vectors * result.eigenvalues, dim=0
    )
    torch.testing.assert_close(result.residuals, true_residuals, atol=1e-12, rtol=1e-6)
    # The bound is quadratic in the residual, so the residuals stay well above
    # tol·|λ| while the eigenvalues already meet it.
    assert float(result.residuals.max()) > 1e-4 * 0.95


@pytest.mark.parametrize("criterion", ["eigenvalue", "residual"])
def test_lanczos_unconverged_at_max_iter(criterion: str) -> None:
    op = small_gap_case()
    result = lanczos(
        op,
        k=1,
        tol=1e-8,
        criterion=criterion,
        max_iter=4,
        generator=torch.Generator().manual_seed(0),
    )

    error = abs(float(result.eigenvalues[0]) - 1.0)
    assert not result.converged
    assert error > 1e-8


def test_error_bound_sharp_for_two_by_two() -> None:
    # H = diag(1, 0) and the unit vector y = (cos t, sin t): the Ritz value is
    # θ = cos²t, the residual ‖H y − θ y‖ = cos t sin t, and the other
    # eigenvalue 0 is exact (residual 0), so the gap is δ = cos²t and the
    # Kato-Temple bound r²/δ = sin²t equals the true error 1 − θ.
    t = torch.tensor(0.3, dtype=torch.float64)
    matrix = torch.diag(torch.tensor([1.0, 0.0], dtype=torch.float64))
    y = torch.stack([torch.cos(t), torch.sin(t)])
    theta = y @ matrix @ y
    residual = torch.linalg.vector_norm(matrix @ y - theta * y)

    bounds = eigenvalue_error_bounds(
        torch.stack([theta, torch.zeros((), dtype=torch.float64)]),
        torch.stack([residual, torch.zeros((), dtype=torch.float64)]),
    )

    torch.testing.assert_close(bounds[0], 1.0 - theta)


def test_error_bound_gaps_subtract_residuals() -> None:
    values = torch.tensor([0.9, 0.2, 0.5], dtype=torch.float64)
    residuals = torch.tensor([0.01, 0.05, 0.1], dtype=torch.float64)
    bounds = eigenvalue_error_bounds(values, residuals)

    # Gaps minⱼ |θᵢ − θⱼ| − rⱼ: 0.9 → min(0.7 − 0.05, 0.4 − 0.1) = 0.3;
    # 0.2 → min(0.7 − 0.01, 0.3 − 0.1) = 0.2; 0.5 → min(0.4 − 0.01, 0.3 − 0.05) = 0.25.
    expected = torch.tensor([0.01**2 / 0.3, 0.05**2 / 0.2, 0.1**2 / 0.25], dtype=torch.float64)
    torch.testing.assert_close(bounds, expected)
    # Without a second Ritz value there is no gap, and the bound is the residual.
    torch.testing.assert_close(eigenvalue_error_bounds(values[:1], residuals[:1]), residuals[:1])
    # A gap closed by a residual also leaves the residual.
    closed = eigenvalue_error_bounds(values[1:], torch.tensor([0.2, 0.4], dtype=torch.float64))
    torch.testing.assert_close(closed, torch.tensor([0.2, 0.4], dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 12}, "k=12 is larger than the matrix size n=10"),
        ({"k": 0}, "k must be an integer >= 1"),
        ({"which": "biggest"}, "which must be one of"),
        ({"tol": 0.0}, "tol must be finite and > 0"),
        ({"max_iter": 0}, "max_iter must be an integer >= 1"),
        ({"block_size": 11}, "block_size=11 is larger than the matrix size n=10"),
        ({"v0": torch.zeros(10, dtype=torch.float64)}, "v0 must be finite and nonzero"),
        ({"v0": torch.ones(9, dtype=torch.float64)}, "v0 must have shape"),
        ({"v0": torch.ones(10, dtype=torch.float32)}, "v0 has dtype torch.float32"),
        ({"generator": 3}, "generator must be a torch.Generator"),
        ({"criterion": "angle"}, "criterion must be one of 'eigenvalue', 'residual'"),
    ],
)
def test_lanczos_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    op = dense_case("indefinite", n=10)
    with pytest.raises(InvalidArgumentError, match=message):
        lanczos(op, **kwargs)


def test_lanczos_rejects_object_without_matvec() -> None:
    with pytest.raises(InvalidArgumentError, match="op must be a CurvatureProvider"):
        lanczos(torch.eye(3))


def test_provider_eigsh_calls_lanczos() -> None:
    op = dense_case("decaying", n=30)
    result = op.eigsh(k=2, generator=torch.Generator().manual_seed(0))

    torch.testing.assert_close(result.eigenvalues, reference_eigenvalues(op.matrix, "largest", 2))


@pytest.mark.parametrize("name", ["decaying", "indefinite"])
def test_power_iteration_matches_dominant_eigenvalue(name: str) -> None:
    spectrum = torch.linspace(-1.0, 1.0, 50, dtype=torch.float64)
    spectrum[0] = 4.0 if name == "decaying" else -4.0
    op = DenseProvider(matrix_with_spectrum(spectrum, seed=6))
    result = power_iteration(op, tol=1e-10, generator=torch.Generator().manual_seed(0))

    assert result.converged
    assert abs(float(result.eigenvalues[0]) - float(spectrum[0])) < 1e-8
    vector = result.eigenvectors[:, 0]
    true_residual = torch.linalg.vector_norm(op.matrix @ vector - result.eigenvalues[0] * vector)
    torch.testing.assert_close(result.residuals[0], true_residual)
    assert float(result.residuals[0]) < 1e-4
    assert result.num_matvecs == op.products


def test_power_iteration_stops_at_max_iter() -> None:
    op = small_gap_case()
    result = power_iteration(op, max_iter=5, generator=torch.Generator().manual_seed(0))

    assert not result.converged
    assert result.num_matvecs == 5
    vector = result.eigenvectors[:, 0]
    true_residual = torch.linalg.vector_norm(op.matrix @ vector - result.eigenvalues[0] * vector)
    torch.testing.assert_close(result.residuals[0], true_residual)


def test_power_iteration_rejects_bad_arguments() -> None:
    op = dense_case("indefinite", n=10)
    with pytest.raises(InvalidArgumentError, match="tol must be finite and > 0"):
        power_iteration(op, tol=-1.0)
    with pytest.raises(InvalidArgumentError, match="max_iter must be an integer >= 1"):
        power_iteration(op, max_iter=0)
    with pytest.raises(InvalidArgumentError, match="v0 must be finite and nonzero"):
        power_iteration(op, v0=torch.zeros(10, dtype=torch.float64))
