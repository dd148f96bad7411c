"""PredictedHessian against matrices assembled independently, block by block."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from hessframe.curvature.predicted import PredictedHessian
from hessframe.errors import InvalidArgumentError, NonFiniteError

ATOMS = 5
SIZE = 3 * ATOMS


def random_symmetric(size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(size, size, generator=generator, dtype=torch.float64)
    return matrix + matrix.T


def block(matrix: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return matrix[3 * i : 3 * i + 3, 3 * j : 3 * j + 3]


def block_array(matrix: torch.Tensor) -> torch.Tensor:
    """(N, N, 3, 3) blocks of a (3N, 3N) matrix, cut out one by one."""
    atoms = matrix.shape[0] // 3
    blocks = torch.empty(atoms, atoms, 3, 3, dtype=matrix.dtype)
    for i in range(atoms):
        for j in range(atoms):
            blocks[i, j] = block(matrix, i, j)
    return blocks


def block_list(matrix: torch.Tensor, pairs: list[tuple[int, int]]):
    """Sparse block list (index_i, index_j, blocks) of the given atom pairs of a matrix."""
    index_i = torch.tensor([i for i, _ in pairs])
    index_j = torch.tensor([j for _, j in pairs])
    blocks = torch.stack([block(matrix, i, j) for i, j in pairs])
    return index_i, index_j, blocks


def all_pairs(atoms: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(atoms) for j in range(atoms)]


def upper_pairs(atoms: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(atoms) for j in range(i, atoms)]


def lower_pairs(atoms: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(atoms) for j in range(i + 1)]


def constant(value):
    return lambda _inputs: value


def random_vectors(size: int, columns: int = 0, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (size, columns) if columns else (size,)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


# ----------------------------------------------------------------------
# The layouts agree with the matrix they were cut from


def layouts_of(matrix: torch.Tensor) -> dict[str, PredictedHessian]:
    atoms = matrix.shape[0] // 3
    return {
        "dense": PredictedHessian(constant(matrix), None),
        "block array": PredictedHessian(constant(block_array(matrix)), None, layout="blocks"),
        "all pairs": PredictedHessian(
            constant(block_list(matrix, all_pairs(atoms))), None, layout="blocks"
        ),
        "upper pairs": PredictedHessian(
            constant(block_list(matrix, upper_pairs(atoms))), None, layout="blocks"
        ),
        "lower pairs": PredictedHessian(
            constant(block_list(matrix, lower_pairs(atoms))), None, layout="blocks"
        ),
    }


@pytest.mark.parametrize(
    "layout", ["dense", "block array", "all pairs", "upper pairs", "lower pairs"]
)
def test_layout_matches_source_matrix(layout):
    matrix = random_symmetric(SIZE)
    provider = layouts_of(matrix)[layout]
    v = random_vectors(SIZE)
    V = random_vectors(SIZE, columns=4)

    assert provider.shape == (SIZE, SIZE)
    assert provider.dtype == torch.float64
    torch.testing.assert_close(provider.matvec(v), matrix @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(provider.matmat(V), matrix @ V, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(provider.to_dense(), matrix, rtol=0, atol=0)
    torch.testing.assert_close(provider.diagonal(), matrix.diagonal(), rtol=0, atol=0)
    torch.testing.assert_close(provider.trace(), matrix.trace(), rtol=1e-12, atol=1e-12)


def test_missing_pairs_are_zero_and_mirrors_transposed():
    generator = torch.Generator().manual_seed(2)
    pairs = [(0, 1), (1, 1), (3, 2), (4, 0)]
    blocks = torch.randn(len(pairs), 3, 3, generator=generator, dtype=torch.float64)
    index_i = torch.tensor([i for i, _ in pairs])
    index_j = torch.tensor([j for _, j in pairs])
    provider = PredictedHessian(
        constant((index_i, index_j, blocks)), None, layout="blocks", size=SIZE, symmetrize=False
    )

    expected = torch.zeros(SIZE, SIZE, dtype=torch.float64)
    for (i, j), value in zip(pairs, blocks, strict=True):
        expected[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] = value
        expected[3 * j : 3 * j + 3, 3 * i : 3 * i + 3] = value.T
    expected[3:6, 3:6] = blocks[1]  # a diagonal block is used as given without symmetrize

    v = random_vectors(SIZE)
    torch.testing.assert_close(provider.to_dense(), expected, rtol=0, atol=0)
    torch.testing.assert_close(provider.matvec(v), expected @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(provider.diagonal(), expected.diagonal(), rtol=0, atol=0)


def test_atom_count_taken_from_largest_index_without_size():
    matrix = random_symmetric(SIZE)
    provider = PredictedHessian(
        constant(block_list(matrix, [(0, 0), (1, 4)])), None, layout="blocks"
    )

    assert provider.size == SIZE


def test_sparse_chain_matches_scipy_block_sparse_product():
    # 20,000 atoms: a dense float64 matrix would take 29 GB, so this also shows
    # that products never assemble it.
    atoms = 20_000
    generator = torch.Generator().manual_seed(4)
    index_i = torch.arange(atoms - 1)
    index_j = index_i + 1
    bonds = torch.randn(atoms - 1, 3, 3, generator=generator, dtype=torch.float64)
    on_site = torch.randn(atoms, 3, 3, generator=generator, dtype=torch.float64)
    on_site = on_site + on_site.transpose(1, 2)
    prediction = (
        torch.cat([index_i, torch.arange(atoms)]),
        torch.cat([index_j, torch.arange(atoms)]),
        torch.cat([bonds, on_site]),
    )
    provider = PredictedHessian(constant(prediction), None, layout="blocks", size=3 * atoms)

    rows = np.concatenate([index_i.numpy(), index_j.numpy(), np.arange(atoms)])
    cols = np.concatenate([index_j.numpy(), index_i.numpy(), np.arange(atoms)])
    data = np.concatenate([bonds.numpy(), bonds.transpose(1, 2).numpy(), on_site.numpy()])
    order = np.lexsort((cols, rows))
    indptr = np.searchsorted(rows[order], np.arange(atoms + 1))
    reference = scipy.sparse.bsr_matrix(
        (data[order], cols[order], indptr), shape=(3 * atoms, 3 * atoms)
    )
    v = random_vectors(3 * atoms)

    product = provider.matvec(v)

    np.testing.assert_allclose(product.numpy(), reference @ v.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------
# Symmetrisation


def test_symmetrize_averages_dense_and_block_array():
    generator = torch.Generator().manual_seed(5)
    asymmetric = torch.randn(SIZE, SIZE, generator=generator, dtype=torch.float64)
    symmetric = (asymmetric + asymmetric.T) / 2
    v = random_vectors(SIZE)

    for prediction, layout in ((asymmetric, "dense"), (block_array(asymmetric), "blocks")):
        averaged = PredictedHessian(constant(prediction), None, layout=layout)
        as_given = PredictedHessian(constant(prediction), None, layout=layout, symmetrize=False)

        torch.testing.assert_close(averaged.to_dense(), symmetric, rtol=0, atol=1e-15)
        torch.testing.assert_close(averaged.matvec(v), symmetric @ v, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(as_given.to_dense(), asymmetric, rtol=0, atol=0)
        torch.testing.assert_close(as_given.matvec(v), asymmetric @ v, rtol=1e-12, atol=1e-12)


def test_symmetrize_averages_block_list_with_both_mirrors():
    generator = torch.Generator().manual_seed(6)
    asymmetric = torch.randn(SIZE, SIZE, generator=generator, dtype=torch.float64)
    symmetric = (asymmetric + asymmetric.T) / 2
    prediction = block_list(asymmetric, all_pairs(ATOMS))
    v = random_vectors(SIZE)

    averaged = PredictedHessian(constant(prediction), None, layout="blocks")
    as_given = PredictedHessian(constant(prediction), None, layout="blocks", symmetrize=False)

    torch.testing.assert_close(averaged.to_dense(), symmetric, rtol=0, atol=1e-15)
    torch.testing.assert_close(averaged.matvec(v), symmetric @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(as_given.to_dense(), asymmetric, rtol=0, atol=0)


def test_symmetric_provider_dense_is_exactly_symmetric():
    generator = torch.Generator().manual_seed(7)
    asymmetric = torch.randn(SIZE, SIZE, generator=generator, dtype=torch.float32)

    for prediction, layout in (
        (asymmetric, "dense"),
        (block_array(asymmetric), "blocks"),
        (block_list(asymmetric, upper_pairs(ATOMS)), "blocks"),
    ):
        dense = PredictedHessian(constant(prediction), None, layout=layout).to_dense()
        assert torch.equal(dense, dense.T), layout


# ----------------------------------------------------------------------
# Running the model


def test_prediction_is_lazy_and_cached_when_shape_declared():
    matrix = random_symmetric(SIZE)
    calls = []

    def predict(inputs):
        calls.append(inputs)
        return block_array(matrix)

    provider = PredictedHessian(
        predict, "molecule", layout="blocks", size=SIZE, dtype=torch.float64, device="cpu"
    )
    assert calls == []

    provider.matvec(random_vectors(SIZE))
    provider.matmat(random_vectors(SIZE, columns=2))
    provider.to_dense()
    assert calls == ["molecule"]


def test_prediction_runs_once_at_construction_without_shape():
    matrix = random_symmetric(SIZE)
    calls = []

    def predict(inputs):
        calls.append(inputs)
        return matrix

    provider = PredictedHessian(predict, "molecule")
    assert len(calls) == 1

    provider.matvec(random_vectors(SIZE))
    provider.diagonal()
    assert len(calls) == 1


def test_prediction_converted_to_declared_dtype():
    matrix = random_symmetric(SIZE).float()

    provider = PredictedHessian(constant(matrix), None, dtype=torch.float64)

    assert provider.dtype == torch.float64
    assert provider.to_dense().dtype == torch.float64
    torch.testing.assert_close(provider.to_dense(), matrix.double(), rtol=0, atol=0)


def test_prediction_is_detached_from_the_model():
    weight = torch.randn(SIZE, SIZE, dtype=torch.float64, requires_grad=True)

    provider = PredictedHessian(lambda _inputs: weight @ weight.T, None)

    assert not provider.to_dense().requires_grad
    assert not provider.matvec(random_vectors(SIZE)).requires_grad


def test_capabilities_state_exact_stored_indefinite():
    provider = PredictedHessian(constant(random_symmetric(SIZE)), None)

    capabilities = provider.capabilities

    assert provider.kind == "predicted"
    assert capabilities.exact is True
    assert capabilities.positive_semidefinite is False
    assert capabilities.needs_double_backward is False
    assert capabilities.dense_available is True
    assert capabilities.gpu is False


# ----------------------------------------------------------------------
# Bad input


def test_rejects_bad_constructor_arguments():
    matrix = random_symmetric(SIZE)

    with pytest.raises(InvalidArgumentError, match="predict_fn must be a callable"):
        PredictedHessian(matrix, None)
    with pytest.raises(InvalidArgumentError, match="layout"):
        PredictedHessian(constant(matrix), None, layout="coo")
    with pytest.raises(InvalidArgumentError, match="size must be a multiple of 3"):
        PredictedHessian(constant(block_array(matrix)), None, layout="blocks", size=16)
    with pytest.raises(InvalidArgumentError, match="size must be a positive integer"):
        PredictedHessian(constant(matrix), None, size=0)
    with pytest.raises(InvalidArgumentError, match="dtype"):
        PredictedHessian(constant(matrix), None, dtype=torch.int32)
    with pytest.raises(InvalidArgumentError, match="symmetrize"):
        PredictedHessian(constant(matrix), None, symmetrize="yes")


BAD_PREDICTIONS = [
    ("dense", torch.ones(SIZE, SIZE - 1), r"square \(n, n\)"),
    ("dense", np.eye(SIZE), "predict_fn must return"),
    ("dense", torch.ones(SIZE, SIZE, dtype=torch.int64), "floating-point"),
    ("blocks", torch.ones(ATOMS, ATOMS, 3, 2), r"\(N, N, 3, 3\)"),
    ("blocks", torch.ones(SIZE, SIZE), r"\(N, N, 3, 3\)"),
    ("blocks", [torch.ones(3, 3)], r"\(index_i, index_j, blocks\)"),
    ("blocks", (torch.tensor([0, 1]), torch.tensor([1]), torch.ones(2, 3, 3)), "one E"),
    ("blocks", (torch.tensor([0.0]), torch.tensor([1]), torch.ones(1, 3, 3)), "index_i"),
    ("blocks", (torch.tensor([0]), torch.tensor([[1]]), torch.ones(1, 3, 3)), "index_j"),
    ("blocks", (torch.tensor([0, 0]), torch.tensor([1, 1]), torch.ones(2, 3, 3)), "more than once"),
    ("blocks", (torch.tensor([-1]), torch.tensor([1]), torch.ones(1, 3, 3)), r"\[0, 2\)"),
]


@pytest.mark.parametrize(("layout", "prediction", "message"), BAD_PREDICTIONS)
def test_rejects_malformed_prediction(layout, prediction, message):
    with pytest.raises(InvalidArgumentError, match=message) as raised:
        PredictedHessian(constant(prediction), None, layout=layout)

    assert "predict_fn" in str(raised.value)


def test_rejects_prediction_of_wrong_size():
    matrix = random_symmetric(SIZE)

    with pytest.raises(InvalidArgumentError, match="size=18"):
        PredictedHessian(constant(matrix), None, size=18)
    with pytest.raises(InvalidArgumentError, match="size=18"):
        PredictedHessian(constant(block_array(matrix)), None, layout="blocks", size=18)
    index_out_of_range = block_list(matrix, [(0, 4)])
    with pytest.raises(InvalidArgumentError, match=r"\[0, 4\)"):
        PredictedHessian(constant(index_out_of_range), None, layout="blocks", size=12)
    lazy = PredictedHessian(constant(matrix), None, size=18, dtype=torch.float64, device="cpu")
    with pytest.raises(InvalidArgumentError, match="predict_fn returned a 15x15 matrix"):
        lazy.matvec(random_vectors(18))


def test_rejects_empty_block_list_without_size():
    empty = (
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0, 3, 3),
    )

    with pytest.raises(InvalidArgumentError, match="size="):
        PredictedHessian(constant(empty), None, layout="blocks")
    provider = PredictedHessian(constant(empty), None, layout="blocks", size=6)
    assert torch.equal(provider.to_dense(), torch.zeros(6, 6))


@pytest.mark.parametrize("layout", ["dense", "block array", "block list"])
def test_rejects_non_finite_prediction(layout):
    matrix = random_symmetric(SIZE)
    matrix[4, 7] = float("nan")
    prediction = {
        "dense": matrix,
        "block array": block_array(matrix),
        "block list": block_list(matrix, all_pairs(ATOMS)),
    }[layout]

    with pytest.raises(NonFiniteError, match="predict_fn returned 1 NaN"):
        PredictedHessian(
            constant(prediction), None, layout="dense" if layout == "dense" else "blocks"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_block_list_matches_source_matrix():
    matrix = random_symmetric(SIZE)
    prediction = block_list(matrix, upper_pairs(ATOMS))
    v = random_vectors(SIZE)

    provider = PredictedHessian(constant(prediction), None, layout="blocks", device="cuda")

    assert provider.capabilities.gpu is True
    torch.testing.assert_close(provider.matvec(v.cuda()).cpu(), matrix @ v, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(provider.to_dense().cpu(), matrix, rtol=0, atol=0)


def test_shared_case_dense_and_blocks_match(hessian_case, provider_checker):
    dense = hessian_case.dense
    size = dense.shape[0] - dense.shape[0] % 3  # the leading 3N×3N part for blocks
    leading = dense[:size, :size]

    as_dense = PredictedHessian(constant(dense), None)
    as_blocks = PredictedHessian(constant(block_array(leading)), None, layout="blocks")

    provider_checker(as_dense, dense)
    provider_checker(as_blocks, leading)
