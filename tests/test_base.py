"""Input checks and defaults of the CurvatureProvider base class."""

from __future__ import annotations

import pytest
import torch

from hessframe import Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError, NonFiniteError


class DenseProvider(CurvatureProvider):
    kind = "predicted"

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device)
        self.matrix = matrix

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(True, False, False, True, False)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v


@pytest.fixture
def provider() -> DenseProvider:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, dtype=torch.float64, generator=generator)
    return DenseProvider(a + a.T)


def test_defaults_match_dense_matrix(provider):
    dense = provider.matrix
    block = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(provider.to_dense(chunk_size=2), dense)
    assert torch.allclose(provider.matmat(block), dense @ block)
    assert torch.equal(provider.diagonal(), dense.diagonal())
    assert torch.allclose(provider.trace(), dense.trace())
    assert torch.allclose(provider @ block[:, 0], dense @ block[:, 0])


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([1.0] * 5, "v must be a torch.Tensor of shape \\(5,\\), got list"),
        (torch.ones(4, dtype=torch.float64), "v must have shape \\(5,\\).*got \\(4,\\)"),
        (torch.ones(5, dtype=torch.float32), "v has dtype torch.float32.*float64"),
        (torch.tensor([1.0, float("nan"), 0, 0, 0], dtype=torch.float64), "v contains NaN"),
        (torch.tensor([float("inf"), 0, 0, 0, 0], dtype=torch.float64), "v contains NaN or inf"),
    ],
)
def test_matvec_rejects_bad_vectors(provider, vector, message):
    with pytest.raises(InvalidArgumentError, match=message):
        provider.matvec(vector)


def test_matmat_rejects_bad_blocks(provider):
    with pytest.raises(InvalidArgumentError, match="V must have shape \\(5, k\\)"):
        provider.matmat(torch.ones(5, dtype=torch.float64))
    nan_block = torch.zeros(5, 2, dtype=torch.float64)
    nan_block[3, 1] = float("nan")
    with pytest.raises(InvalidArgumentError, match="V contains NaN"):
        provider.matmat(nan_block)


def test_non_finite_product_names_step():
    provider = DenseProvider(torch.full((2, 2), float("inf"), dtype=torch.float64))
    with pytest.raises(NonFiniteError, match="Hessian-vector product produced 2 NaN"):
        provider.matvec(torch.ones(2, dtype=torch.float64))


def test_to_dense_rejects_large_matrix(provider):
    with pytest.raises(InvalidArgumentError, match="larger than max_size=4"):
        provider.to_dense(max_size=4)
    with pytest.raises(InvalidArgumentError, match="chunk_size must be at least 1"):
        provider.to_dense(chunk_size=0)


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_constructor_rejects_bad_size(size):
    with pytest.raises(InvalidArgumentError, match="size must be a positive integer"):
        CurvatureProvider.__init__(DenseProvider.__new__(DenseProvider), size, torch.float64, "cpu")


def test_constructor_rejects_integer_dtype():
    with pytest.raises(InvalidArgumentError, match="dtype must be a floating-point"):
        DenseProvider(torch.eye(2, dtype=torch.int64))
