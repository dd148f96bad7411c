"""The SciPy LinearOperator view against the dense matrix and SciPy's own solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from linalg_cases import dense_case

from hessframe.errors import InvalidArgumentError
from hessframe.linalg import lanczos, to_linear_operator


def test_linear_operator_products_match_dense() -> None:
    op = dense_case("indefinite", n=20)
    operator = to_linear_operator(op)
    matrix = op.matrix.numpy()
    rng = np.random.default_rng(0)
    vector = rng.standard_normal(20)
    block = rng.standard_normal((20, 4))

    assert operator.shape == (20, 20)
    assert operator.dtype == np.float64
    np.testing.assert_allclose(operator.matvec(vector), matrix @ vector, atol=1e-12)
    np.testing.assert_allclose(operator.matmat(block), matrix @ block, atol=1e-12)
    np.testing.assert_allclose(operator.rmatvec(vector), matrix @ vector, atol=1e-12)
    np.testing.assert_allclose(operator.H.matvec(vector), matrix @ vector, atol=1e-12)
    np.testing.assert_allclose(operator @ vector, matrix @ vector, atol=1e-12)
    assert operator.num_matvecs == 1 + 4 + 1 + 1 + 1
    assert op.products == operator.num_matvecs


def test_linear_operator_accepts_column_and_complex_vectors() -> None:
    op = dense_case("indefinite", n=12)
    operator = to_linear_operator(op)
    matrix = op.matrix.numpy()
    column = np.arange(12.0)[:, None]
    complex_vector = np.arange(12.0) + 1j * np.ones(12)

    np.testing.assert_allclose(operator.matvec(column), matrix @ column, atol=1e-12)
    np.testing.assert_allclose(operator.matvec(complex_vector), matrix @ complex_vector, atol=1e-12)


def test_eigsh_on_linear_operator_matches_lanczos_and_dense() -> None:
    op = dense_case("indefinite", n=50)
    operator = to_linear_operator(op)
    start = np.random.default_rng(0).standard_normal(50)
    arpack = np.sort(scipy.sparse.linalg.eigsh(operator, k=3, which="LA", v0=start)[0])[::-1]
    ours = lanczos(op, k=3, tol=1e-10, generator=torch.Generator().manual_seed(0))
    dense = np.linalg.eigvalsh(op.matrix.numpy())[::-1][:3]

    np.testing.assert_allclose(arpack, dense, atol=1e-8)
    np.testing.assert_allclose(ours.eigenvalues.numpy(), dense, atol=1e-8)


def test_cg_on_linear_operator_matches_dense_solve() -> None:
    op = dense_case("decaying", n=30)
    operator = to_linear_operator(op)
    b = np.ones(30)
    shifted = scipy.sparse.linalg.LinearOperator(
        (30, 30), matvec=lambda x: operator.matvec(x) + 1.0 * x, dtype=np.float64
    )
    solution, info = scipy.sparse.linalg.cg(shifted, b, rtol=1e-12)

    expected = np.linalg.solve(op.matrix.numpy() + np.eye(30), b)
    assert info == 0
    np.testing.assert_allclose(solution, expected, atol=1e-9)


def test_linear_operator_float32_provider() -> None:
    op = dense_case("indefinite", n=16, dtype=torch.float32)
    operator = to_linear_operator(op)
    vector = np.linspace(-1.0, 1.0, 16)  # float64, converted on the way in
    product = operator.matvec(vector)

    assert operator.dtype == np.float32
    assert product.dtype == np.float32
    np.testing.assert_allclose(product, op.matrix.double().numpy() @ vector, atol=1e-5)


def test_provider_to_scipy_calls_view() -> None:
    op = dense_case("indefinite", n=8)
    operator = op.to_scipy()

    np.testing.assert_allclose(operator.matvec(np.ones(8)), op.matrix.numpy() @ np.ones(8))


def test_to_linear_operator_rejects_non_operator() -> None:
    with pytest.raises(InvalidArgumentError, match="op must be a CurvatureProvider"):
        to_linear_operator(np.eye(3))
