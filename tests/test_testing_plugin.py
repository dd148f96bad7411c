"""Tests of the hessframe.testing plugin: it passes correct providers and fails wrong ones."""

from __future__ import annotations

import importlib.metadata
import os
import textwrap
import warnings

import pytest
import torch

from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.testing import ALL_CHECKS, assert_provider_matches_dense

pytest_plugins = ("pytester",)

DTYPE = torch.float64


class MatrixProvider(CurvatureProvider):
    """A provider that multiplies with a stored matrix, optionally wrong in one operation.

    ``wrong_diagonal`` makes :meth:`diagonal` return the diagonal plus one, while
    every product stays correct, to check that the checker tests each operation.
    """

    kind = "predicted"

    def __init__(self, matrix: torch.Tensor, *, wrong_diagonal: bool = False) -> None:
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix
        self.wrong_diagonal = wrong_diagonal

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            exact=True,
            positive_semidefinite=False,
            needs_double_backward=False,
            dense_available=True,
            gpu=False,
        )

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def diagonal(self) -> torch.Tensor:
        diagonal = self.matrix.diagonal().clone()
        return diagonal + 1 if self.wrong_diagonal else diagonal


def _symmetric(n: int = 8, seed: int = 0) -> torch.Tensor:
    gaussian = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)
    return (gaussian + gaussian.T) / 2


EXACT_CHECKS = ("matvec", "matmat", "to_dense", "diagonal", "trace")


def test_checker_passes_correct_provider() -> None:
    matrix = _symmetric()

    errors = assert_provider_matches_dense(MatrixProvider(matrix), matrix, checks=EXACT_CHECKS)

    assert set(errors) == set(EXACT_CHECKS)
    assert max(errors.values()) < 1e-12


def test_checker_passes_autodiff_on_shared_case(hessian_case, provider_checker) -> None:
    errors = provider_checker(hessian_case.provider(), hessian_case.dense, checks=EXACT_CHECKS)

    assert max(errors.values()) < 1e-10


def test_checker_fails_perturbed_matrix() -> None:
    matrix = _symmetric()
    perturbed = matrix.clone()
    perturbed[0, 1] += 1e-3
    perturbed[1, 0] += 1e-3

    with pytest.raises(AssertionError, match=r"^matvec: max error .* exceeds the tolerance"):
        assert_provider_matches_dense(MatrixProvider(perturbed), matrix)


@pytest.mark.parametrize("operation", ["matmat", "to_dense"])
def test_checker_names_failing_product_operation(operation: str) -> None:
    matrix = _symmetric()
    perturbed = matrix.clone()
    perturbed[2, 2] += 1e-3

    with pytest.raises(AssertionError, match=f"^{operation}: max error"):
        assert_provider_matches_dense(MatrixProvider(perturbed), matrix, checks=(operation,))


def test_checker_fails_wrong_diagonal_with_correct_products() -> None:
    matrix = _symmetric()
    provider = MatrixProvider(matrix, wrong_diagonal=True)

    assert_provider_matches_dense(provider, matrix, checks=("matvec", "matmat", "to_dense"))
    with pytest.raises(AssertionError, match=r"^diagonal: max error 1\.000e\+00"):
        assert_provider_matches_dense(provider, matrix, checks=("diagonal",))
    with pytest.raises(AssertionError, match=r"^trace: max error 8\.000e\+00"):
        assert_provider_matches_dense(provider, matrix, checks=("trace",))


def test_checker_fails_wrong_shape() -> None:
    matrix = _symmetric(8)

    with pytest.raises(AssertionError, match=r"shape: the provider is \(8, 8\) but dense is"):
        assert_provider_matches_dense(MatrixProvider(matrix), _symmetric(6))


def test_checker_rtol_sets_pass_or_fail() -> None:
    matrix = _symmetric()
    perturbed = matrix + 1e-6 * _symmetric(seed=1)
    provider = MatrixProvider(perturbed)

    assert_provider_matches_dense(provider, matrix, rtol=1e-4, checks=EXACT_CHECKS)
    with pytest.raises(AssertionError):
        assert_provider_matches_dense(provider, matrix, rtol=1e-9, checks=EXACT_CHECKS)


def test_checker_rejects_unknown_check() -> None:
    matrix = _symmetric()

    with pytest.raises(ValueError, match="checks contains unknown operation"):
        assert_provider_matches_dense(MatrixProvider(matrix), matrix, checks=("eigenvalues",))


def test_checker_rejects_non_square_dense() -> None:
    matrix = _symmetric()

    with pytest.raises(ValueError, match=r"dense must be a square 2-D torch\.Tensor"):
        assert_provider_matches_dense(MatrixProvider(matrix), matrix[:, :3])


def test_iterative_checks_run_or_warn() -> None:
    # eigsh and solve need hessframe.linalg; where it lacks them they are skipped with a warning.
    matrix = _symmetric()

    with warnings.catch_warnings(record=True) as warnings_seen:
        warnings.simplefilter("always")
        errors = assert_provider_matches_dense(MatrixProvider(matrix), matrix)

    messages = [str(warning.message) for warning in warnings_seen]
    skipped = {
        name
        for name in ("eigsh", "solve")
        if any(message.startswith(f"{name} was not checked") for message in messages)
    }
    assert set(errors) | skipped == set(ALL_CHECKS)
    assert not set(errors) & skipped


def test_plugin_registered_as_pytest11_entry_point() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")

    values = {entry_point.name: entry_point.value for entry_point in entry_points}

    assert values.get("hessframe") == "hessframe.testing"


def test_provider_checker_fixture_in_plugin_user_suite(pytester: pytest.Pytester) -> None:
    # A plugin author's test file that uses only the fixture, run by pytest itself.
    pytester.makepyfile(
        textwrap.dedent(
            """
            import torch
            from hessframe.curvature.autodiff import AutodiffHessian

            A = torch.tensor([[2.0, 1.0], [1.0, -3.0]], dtype=torch.float64)

            def quadratic(x):
                return 0.5 * x @ A @ x

            def test_right_matrix(provider_checker):
                provider = AutodiffHessian(quadratic, torch.ones(2, dtype=torch.float64))
                provider_checker(provider, A, checks=("matvec", "to_dense"))

            def test_wrong_matrix(provider_checker):
                provider = AutodiffHessian(quadratic, torch.ones(2, dtype=torch.float64))
                provider_checker(provider, A + 0.1, checks=("matvec", "to_dense"))
            """
        )
    )

    arguments = ["-p", "no:cacheprovider", "-W", "ignore"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        arguments += ["-p", "hessframe.testing"]
    result = pytester.runpytest_inprocess(*arguments)

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: matvec: max error*"])
