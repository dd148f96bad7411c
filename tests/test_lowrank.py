"""Tests of LowRankDampedHessian against dense float64 matrices built with torch."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import hessframe.linalg
from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.curvature.lowrank import LowRankDampedHessian
from hessframe.errors import InvalidArgumentError
from hessframe.linalg.results import EigenResult, SolveResult
from hessframe.testing import assert_provider_matches_dense

EXACT_CHECKS = ("matvec", "matmat", "to_dense", "diagonal", "trace")


def _dense_truth(U: torch.Tensor, s: torch.Tensor, damping: float) -> torch.Tensor:
    """Return U diag(s) Uᵀ + λI in float64, built without the provider."""
    U64 = U.to(torch.float64)
    identity = torch.eye(U.shape[0], dtype=torch.float64)
    return U64 @ torch.diag(s.to(torch.float64)) @ U64.T + damping * identity


def _orthonormal_columns(n: int, r: int, generator: torch.Generator) -> torch.Tensor:
    draws = torch.randn(n, r, generator=generator, dtype=torch.float64)
    return torch.linalg.qr(draws).Q


def _make_case(name: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return (U, s, λ) of a named float64 case."""
    generator = torch.Generator().manual_seed(1234)
    if name == "orthonormal":
        U = _orthonormal_columns(30, 4, generator)
        return U, torch.tensor([5.0, 3.0, 1.0, 0.25], dtype=torch.float64), 0.5
    if name == "general":
        U = torch.randn(30, 5, generator=generator, dtype=torch.float64)
        s = torch.rand(5, generator=generator, dtype=torch.float64) + 0.1
        return U, s, 0.1
    if name == "indefinite":
        U = torch.randn(25, 4, generator=generator, dtype=torch.float64)
        return U, torch.tensor([2.0, -1.5, 0.5, -0.25], dtype=torch.float64), 0.3
    if name == "rank_deficient":
        U = torch.randn(20, 3, generator=generator, dtype=torch.float64)
        U = torch.cat([U, U[:, :1] * 2.0], dim=1)
        return U, torch.tensor([1.0, 2.0, 0.5, 0.75], dtype=torch.float64), 0.2
    if name == "wide":
        U = torch.randn(6, 10, generator=generator, dtype=torch.float64)
        return U, torch.rand(10, generator=generator, dtype=torch.float64) + 0.5, 0.0
    raise ValueError(f"unknown case {name}")


CASES = ("orthonormal", "general", "indefinite", "rank_deficient", "wide")


@pytest.fixture(params=CASES)
def case(request) -> tuple[LowRankDampedHessian, torch.Tensor]:
    U, s, damping = _make_case(request.param)
    return LowRankDampedHessian(U, s, damping), _dense_truth(U, s, damping)


def _random_vector(n: int, seed: int = 7, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _dense_matrix_function(dense: torch.Tensor, power: float) -> torch.Tensor:
    eigenvalues, eigenvectors = torch.linalg.eigh(dense)
    return eigenvectors @ torch.diag(eigenvalues**power) @ eigenvectors.T


class _DenseProvider(CurvatureProvider):
    """A provider that stores a dense matrix, used as the input of ``from_provider``."""

    kind = "predicted"

    def __init__(self, matrix: torch.Tensor, positive_semidefinite: bool) -> None:
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self._matrix = matrix
        self._positive_semidefinite = positive_semidefinite

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            exact=True,
            positive_semidefinite=self._positive_semidefinite,
            needs_double_backward=False,
            dense_available=True,
            gpu=False,
        )

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matrix @ v

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._matrix @ V


def _matrix_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    basis = _orthonormal_columns(eigenvalues.shape[0], eigenvalues.shape[0], generator)
    return basis @ torch.diag(eigenvalues) @ basis.T


# ----------------------------------------------------------------------
# Products and exact derived quantities


def test_provider_checker_passes_every_operation(case):
    provider, dense = case
    assert_provider_matches_dense(provider, dense, rtol=1e-12, iterative_rtol=1e-10)


def test_matvec_matches_dense_elementwise(case):
    provider, dense = case
    v = _random_vector(provider.size)
    torch.testing.assert_close(provider.matvec(v), dense @ v, rtol=1e-12, atol=1e-12)


def test_matmat_matches_dense_block(case):
    provider, dense = case
    block = torch.randn(
        provider.size, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    torch.testing.assert_close(provider.matmat(block), dense @ block, rtol=1e-12, atol=1e-12)


def test_to_dense_is_symmetric_and_matches(case):
    provider, dense = case
    built = provider.to_dense()
    assert torch.equal(built, built.T)
    torch.testing.assert_close(built, dense, rtol=1e-12, atol=1e-12)


def test_diagonal_and_trace_match_dense(case):
    provider, dense = case
    torch.testing.assert_close(provider.diagonal(), dense.diagonal(), rtol=1e-12, atol=1e-12)
    assert float(provider.trace()) == pytest.approx(float(dense.trace()), rel=1e-12)


# ----------------------------------------------------------------------
# Spectrum


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_eigsh_matches_dense_spectrum(case, which):
    provider, dense = case
    k = min(provider.size, provider.rank + 2)
    result = provider.eigsh(k=k, which=which)

    eigenvalues = torch.linalg.eigvalsh(dense)
    if which == "largest":
        expected = eigenvalues.flip(0)[:k]
    elif which == "smallest":
        expected = eigenvalues[:k]
    else:
        expected = eigenvalues[eigenvalues.abs().argsort(descending=True)][:k]
        expected = expected.abs()
    got = result.eigenvalues.abs() if which == "magnitude" else result.eigenvalues

    assert isinstance(result, EigenResult)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    vectors = result.eigenvectors
    torch.testing.assert_close(dense @ vectors, vectors * result.eigenvalues, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(
        vectors.T @ vectors, torch.eye(k, dtype=torch.float64), rtol=0, atol=1e-10
    )
    assert result.converged
    assert float(result.residuals.max()) < 1e-9


# ----------------------------------------------------------------------
# Solves and square roots


@pytest.mark.parametrize("extra_damping", [0.0, 0.7])
def test_solve_matches_torch_linalg_solve(case, extra_damping):
    provider, dense = case
    b = _random_vector(provider.size)
    shifted = dense + extra_damping * torch.eye(provider.size, dtype=torch.float64)
    result = provider.solve(b, damping=extra_damping)

    assert isinstance(result, SolveResult)
    torch.testing.assert_close(result.x, torch.linalg.solve(shifted, b), rtol=1e-9, atol=1e-10)
    assert result.converged
    assert result.num_matvecs <= 1
    residual = float(torch.linalg.vector_norm(b - shifted @ result.x))
    assert result.residual_norm == pytest.approx(residual, rel=1e-3, abs=1e-12)
    assert result.residual_norm < 1e-10 * float(torch.linalg.vector_norm(b))


POSITIVE_DEFINITE_CASES = ("orthonormal", "general", "rank_deficient", "wide")


@pytest.mark.parametrize("name", POSITIVE_DEFINITE_CASES)
@pytest.mark.parametrize("extra_damping", [0.0, 0.4])
def test_inverse_sqrt_matches_dense_eigendecomposition(name, extra_damping):
    U, s, damping = _make_case(name)
    provider = LowRankDampedHessian(U, s, damping)
    shifted = _dense_truth(U, s, damping + extra_damping)
    identity = torch.eye(provider.size, dtype=torch.float64)

    inverse_sqrt = provider.inverse_sqrt_matmat(identity, damping=extra_damping)

    torch.testing.assert_close(
        inverse_sqrt, _dense_matrix_function(shifted, -0.5), rtol=1e-9, atol=1e-10
    )
    torch.testing.assert_close(inverse_sqrt, inverse_sqrt.T, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", POSITIVE_DEFINITE_CASES)
def test_inverse_sqrt_squared_inverts_hessian(name):
    U, s, damping = _make_case(name)
    provider = LowRankDampedHessian(U, s, damping)
    dense = _dense_truth(U, s, damping)
    v = _random_vector(provider.size)

    twice = provider.inverse_sqrt_matvec(provider.inverse_sqrt_matvec(dense @ v))

    torch.testing.assert_close(twice, v, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", [*POSITIVE_DEFINITE_CASES, "indefinite"])
def test_sqrt_matches_dense_square_root(name):
    U, s, damping = _make_case(name)
    provider = LowRankDampedHessian(U, s, damping)
    dense = _dense_truth(U, s, damping)
    extra_damping = max(0.0, -float(torch.linalg.eigvalsh(dense).min())) + 0.5 * (
        name == "indefinite"
    )
    shifted = _dense_truth(U, s, damping + extra_damping)
    identity = torch.eye(provider.size, dtype=torch.float64)

    root = provider.sqrt_matmat(identity, damping=extra_damping)

    torch.testing.assert_close(root, _dense_matrix_function(shifted, 0.5), rtol=1e-9, atol=1e-10)
    v = _random_vector(provider.size)
    torch.testing.assert_close(
        provider.sqrt_matvec(provider.sqrt_matvec(v, extra_damping), extra_damping),
        shifted @ v,
        rtol=1e-9,
        atol=1e-10,
    )


def test_inverse_sqrt_rejects_indefinite_matrix():
    U, s, damping = _make_case("indefinite")
    provider = LowRankDampedHessian(U, s, damping)
    assert float(torch.linalg.eigvalsh(_dense_truth(U, s, damping)).min()) < 0

    with pytest.raises(InvalidArgumentError, match="not positive definite"):
        provider.inverse_sqrt_matvec(_random_vector(provider.size))


# ----------------------------------------------------------------------
# Gauss-Newton from a Jacobian


@pytest.mark.parametrize("rows", [4, 15])
def test_from_jacobian_matches_gauss_newton(rows):
    J = torch.randn(rows, 9, generator=torch.Generator().manual_seed(rows), dtype=torch.float64)
    damping = 0.05
    provider = LowRankDampedHessian.from_jacobian(J, damping)
    dense = J.T @ J + damping * torch.eye(9, dtype=torch.float64)

    assert_provider_matches_dense(provider, dense, rtol=1e-12, checks=EXACT_CHECKS)
    b = _random_vector(9)
    torch.testing.assert_close(
        provider.solve(b).x, torch.linalg.solve(dense, b), rtol=1e-9, atol=1e-10
    )
    assert provider.capabilities.exact
    assert provider.capabilities.positive_semidefinite


def test_undamped_gauss_newton_matches_lstsq():
    generator = torch.Generator().manual_seed(11)
    J = torch.randn(20, 5, generator=generator, dtype=torch.float64)
    residuals = torch.randn(20, generator=generator, dtype=torch.float64)
    provider = LowRankDampedHessian.from_jacobian(J)

    step = provider.solve(J.T @ residuals).x

    expected = torch.linalg.lstsq(J, residuals).solution
    torch.testing.assert_close(step, expected, rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------
# Approximations of other providers


def _frobenius_error(approximation: LowRankDampedHessian, matrix: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(approximation.to_dense() - matrix))


def _best_rank_error(eigenvalues: torch.Tensor, rank: int) -> float:
    ordered = eigenvalues.abs().sort(descending=True).values
    return float(torch.linalg.vector_norm(ordered[rank:]))


def test_nystrom_error_decreases_with_rank_toward_best():
    eigenvalues = 0.6 ** torch.arange(60, dtype=torch.float64)
    matrix = _matrix_with_spectrum(eigenvalues, seed=5)
    provider = _DenseProvider(matrix, positive_semidefinite=True)
    seeds = range(5)

    mean_errors = []
    for rank in (2, 4, 8, 16):
        errors = []
        for seed in seeds:
            approximation = LowRankDampedHessian.from_provider(
                provider, rank, method="nystrom", generator=torch.Generator().manual_seed(seed)
            )
            errors.append(_frobenius_error(approximation, matrix))
        mean_error = sum(errors) / len(errors)
        assert mean_error <= 1.5 * _best_rank_error(eigenvalues, rank), rank
        mean_errors.append(mean_error)

    assert all(later < earlier for earlier, later in itertools.pairwise(mean_errors))
    assert mean_errors[-1] < 1e-3 * mean_errors[0]


def test_nystrom_with_full_sketch_recovers_low_rank_matrix():
    eigenvalues = torch.zeros(40, dtype=torch.float64)
    eigenvalues[:3] = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    matrix = _matrix_with_spectrum(eigenvalues, seed=9)
    provider = _DenseProvider(matrix, positive_semidefinite=True)

    approximation = LowRankDampedHessian.from_provider(
        provider,
        3,
        damping=0.1,
        method="nystrom",
        generator=torch.Generator().manual_seed(0),
    )

    expected = matrix + 0.1 * torch.eye(40, dtype=torch.float64)
    torch.testing.assert_close(approximation.to_dense(), expected, rtol=1e-8, atol=1e-8)
    assert not approximation.capabilities.exact
    assert approximation.approximation_method == "nystrom"


def test_nystrom_rejects_indefinite_provider():
    eigenvalues = torch.tensor([3.0, -2.0, 1.0, 0.5, -0.5, 0.1], dtype=torch.float64)
    provider = _DenseProvider(
        _matrix_with_spectrum(eigenvalues, seed=2), positive_semidefinite=False
    )

    with pytest.raises(InvalidArgumentError, match="method='lanczos'"):
        LowRankDampedHessian.from_provider(
            provider, 2, method="nystrom", sketch_size=6, generator=torch.Generator().manual_seed(0)
        )


needs_lanczos = pytest.mark.skipif(
    not hasattr(hessframe.linalg, "lanczos"), reason="hessframe.linalg.lanczos is not available"
)


@needs_lanczos
@pytest.mark.parametrize("positive_semidefinite", [True, False])
def test_lanczos_recovers_low_rank_matrix(positive_semidefinite):
    eigenvalues = torch.zeros(50, dtype=torch.float64)
    if positive_semidefinite:
        eigenvalues[:4] = torch.tensor([9.0, 4.0, 2.0, 1.0], dtype=torch.float64)
    else:
        eigenvalues[:4] = torch.tensor([9.0, -4.0, 2.0, -1.0], dtype=torch.float64)
    matrix = _matrix_with_spectrum(eigenvalues, seed=4)
    provider = _DenseProvider(matrix, positive_semidefinite=positive_semidefinite)

    approximation = LowRankDampedHessian.from_provider(provider, 4, damping=0.2)

    expected = matrix + 0.2 * torch.eye(50, dtype=torch.float64)
    torch.testing.assert_close(approximation.to_dense(), expected, rtol=1e-8, atol=1e-8)
    assert not approximation.capabilities.exact
    assert approximation.approximation_method == "lanczos"


# ----------------------------------------------------------------------
# float32 stability


def _ill_conditioned_float64_case() -> tuple[torch.Tensor, torch.Tensor, float]:
    """Return U with κ(U) = 10⁴, s from 10⁴ to 10², and damping 10⁻³ (κ(H) ≈ 3·10⁶)."""
    generator = torch.Generator().manual_seed(21)
    n, r = 200, 6
    left = _orthonormal_columns(n, r, generator)
    right = _orthonormal_columns(r, r, generator)
    singular_values = torch.logspace(0, -4, r, dtype=torch.float64)
    U = left @ torch.diag(singular_values) @ right.T
    s = torch.logspace(4, 2, r, dtype=torch.float64)
    return U, s, 1e-3


def test_float32_solve_and_inverse_sqrt_track_float64_truth():
    U, s, damping = _ill_conditioned_float64_case()
    dense = _dense_truth(U, s, damping)
    provider = LowRankDampedHessian(U.float(), s.float(), damping)
    b = _random_vector(U.shape[0])

    x = provider.solve(b.float()).x.double()
    expected = torch.linalg.solve(dense, b)
    solve_error = float(torch.linalg.vector_norm(x - expected) / torch.linalg.vector_norm(expected))

    inverse_sqrt = provider.inverse_sqrt_matvec(b.float()).double()
    expected_inverse_sqrt = _dense_matrix_function(dense, -0.5) @ b
    inverse_sqrt_error = float(
        torch.linalg.vector_norm(inverse_sqrt - expected_inverse_sqrt)
        / torch.linalg.vector_norm(expected_inverse_sqrt)
    )

    assert solve_error < 1e-5
    assert inverse_sqrt_error < 1e-5


def test_float32_gram_matrix_woodbury_is_less_accurate():
    """The textbook Woodbury formula through UᵀU loses far more accuracy on the same case."""
    U, s, damping = _ill_conditioned_float64_case()
    dense = _dense_truth(U, s, damping)
    b = _random_vector(U.shape[0])
    expected = torch.linalg.solve(dense, b)

    U32, s32, b32 = U.float(), s.float(), b.float()
    inner = torch.diag(1 / s32) * damping + U32.T @ U32
    plain = (b32 - U32 @ torch.linalg.solve(inner, U32.T @ b32)) / damping
    plain_error = float(
        torch.linalg.vector_norm(plain.double() - expected) / torch.linalg.vector_norm(expected)
    )

    provider_error = float(
        torch.linalg.vector_norm(
            LowRankDampedHessian(U32, s32, damping).solve(b32).x.double() - expected
        )
        / torch.linalg.vector_norm(expected)
    )
    assert plain_error > 100 * provider_error


# ----------------------------------------------------------------------
# Capabilities and bad input


@pytest.mark.parametrize("name", CASES)
def test_numerical_rank_matches_matrix_rank(name):
    U, s, damping = _make_case(name)
    provider = LowRankDampedHessian(U, s, damping)
    low_rank_part = U @ torch.diag(s) @ U.T
    assert provider.numerical_rank == int(torch.linalg.matrix_rank(low_rank_part, hermitian=True))


def test_capabilities_follow_signs_of_s():
    U, s, damping = _make_case("general")
    assert LowRankDampedHessian(U, s, damping).capabilities == Capabilities(
        exact=True,
        positive_semidefinite=True,
        needs_double_backward=False,
        dense_available=True,
        gpu=False,
    )
    U, s, damping = _make_case("indefinite")
    assert not LowRankDampedHessian(U, s, damping).capabilities.positive_semidefinite


def test_solve_without_damping_on_tall_factor_raises():
    U, s, _ = _make_case("general")
    provider = LowRankDampedHessian(U, s, 0.0)

    with pytest.raises(InvalidArgumentError, match=r"singular.*damping must be positive"):
        provider.solve(_random_vector(provider.size))
    with pytest.raises(InvalidArgumentError, match=r"singular.*damping must be positive"):
        provider.inverse_sqrt_matvec(_random_vector(provider.size))

    result = provider.solve(_random_vector(provider.size), damping=0.5)
    assert result.residual_norm < 1e-10


def test_solve_raises_when_damping_cancels_negative_eigenvalue():
    U = torch.eye(5, 1, dtype=torch.float64)
    provider = LowRankDampedHessian(U, torch.tensor([-2.0], dtype=torch.float64), 1.5)

    with pytest.raises(InvalidArgumentError, match="singular to working precision"):
        provider.solve(_random_vector(5), damping=0.5)


BAD_CONSTRUCTOR_ARGUMENTS = [
    ("U", lambda U, s: ([[1.0]], s, 0.1)),
    ("U", lambda U, s: (U[:, 0], s, 0.1)),
    ("U", lambda U, s: (U.to(torch.int64), s, 0.1)),
    ("U", lambda U, s: (torch.where(U > 1.5, math.nan, U), s, 0.1)),
    ("s", lambda U, s: (U, s[:-1], 0.1)),
    ("s", lambda U, s: (U, s.float(), 0.1)),
    ("s", lambda U, s: (U, torch.full_like(s, math.inf), 0.1)),
    ("damping", lambda U, s: (U, s, -0.1)),
    ("damping", lambda U, s: (U, s, math.nan)),
    ("damping", lambda U, s: (U, s, "0.1")),
]


@pytest.mark.parametrize(("argument", "build"), BAD_CONSTRUCTOR_ARGUMENTS)
def test_constructor_rejects_bad_input(argument, build):
    U, s, _ = _make_case("general")
    with pytest.raises(InvalidArgumentError, match=rf"^{argument} "):
        LowRankDampedHessian(*build(U, s))


def test_from_jacobian_rejects_bad_input():
    with pytest.raises(InvalidArgumentError, match=r"^J "):
        LowRankDampedHessian.from_jacobian(torch.ones(3, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match=r"^damping "):
        LowRankDampedHessian.from_jacobian(torch.ones(3, 2, dtype=torch.float64), -1.0)


@pytest.mark.parametrize(
    ("keywords", "argument"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": 31}, "rank"),
        ({"rank": 2.0}, "rank"),
        ({"rank": 2, "method": "svd"}, "method"),
        ({"rank": 2, "damping": -1.0}, "damping"),
        ({"rank": 4, "method": "nystrom", "sketch_size": 3}, "sketch_size"),
        ({"rank": 4, "method": "nystrom", "sketch_size": 31}, "sketch_size"),
    ],
)
def test_from_provider_rejects_bad_input(keywords, argument):
    provider = _DenseProvider(torch.eye(30, dtype=torch.float64), positive_semidefinite=True)
    rank = keywords.pop("rank")
    with pytest.raises(InvalidArgumentError, match=rf"^{argument} "):
        LowRankDampedHessian.from_provider(provider, rank, **keywords)


def test_from_provider_rejects_non_provider():
    with pytest.raises(InvalidArgumentError, match=r"^provider "):
        LowRankDampedHessian.from_provider(torch.eye(3), 1)


def test_solve_and_eigsh_reject_bad_arguments():
    provider, _ = (LowRankDampedHessian(*_make_case("general")), None)
    with pytest.raises(InvalidArgumentError, match=r"^damping "):
        provider.solve(_random_vector(provider.size), damping=-1.0)
    with pytest.raises(InvalidArgumentError, match=r"^b "):
        provider.solve(_random_vector(provider.size + 1))
    with pytest.raises(InvalidArgumentError, match=r"^k "):
        provider.eigsh(k=0)
    with pytest.raises(InvalidArgumentError, match=r"^which "):
        provider.eigsh(k=1, which="middle")
