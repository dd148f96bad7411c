"""A Hessian that a model predicts directly, as a matrix or as 3×3 atom-pair blocks.

Some models output second derivatives themselves, for example an equivariant
network that predicts the molecular Hessian block by block. This provider runs
such a model once and offers the result through the curvature interface.
Products with the predicted matrix are exact. How close that matrix is to the
true Hessian depends only on the model, which this provider cannot check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from hessframe.curvature.base import DEFAULT_MAX_DENSE_SIZE, Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError, NonFiniteError

logger = logging.getLogger(__name__)

LAYOUTS = ("dense", "blocks")


@dataclass(frozen=True)
class _Dense:
    matrix: torch.Tensor  # (n, n)


@dataclass(frozen=True)
class _BlockArray:
    blocks: torch.Tensor  # (N, N, 3, 3); blocks[i, j] couples atom i with atom j


@dataclass(frozen=True)
class _BlockList:
    index_i: torch.Tensor  # (E,) int64, row atom of each block
    index_j: torch.Tensor  # (E,) int64, column atom of each block
    blocks: torch.Tensor  # (E, 3, 3), with both (i, j) and (j, i) present for i != j
    num_atoms: int


class PredictedHessian(CurvatureProvider):
    """Hessian returned by a model, as a dense matrix or as per-atom-pair 3×3 blocks.

    ``predict_fn(inputs)`` must return, for ``layout="dense"``, an (n, n)
    tensor H. For ``layout="blocks"`` it returns the Hessian of N atoms
    (n = 3N) in one of two forms:

    - an (N, N, 3, 3) tensor B with ``B[i, j]`` the block
      ∂²E/∂r_i∂r_j, so ``H[3i + a, 3j + b] = B[i, j, a, b]``;
    - a sparse block list ``(index_i, index_j, blocks)`` of two (E,) integer
      tensors and an (E, 3, 3) tensor, meaning ``H`` block (index_i[e],
      index_j[e]) is ``blocks[e]``. Atom pairs that are not listed are zero
      blocks. When only one of (i, j) and (j, i) is listed, with i ≠ j, the
      other block is the transpose of the listed one. A pair listed twice is
      rejected. The number of atoms is ``size // 3`` when ``size`` is given,
      otherwise one more than the largest index.

    With ``symmetrize=True`` the matrix is replaced by (H + Hᵀ)/2, which for
    blocks means block (i, j) becomes (B_ij + B_jiᵀ)/2, so a model that is only
    nearly symmetric still yields a symmetric provider. With
    ``symmetrize=False`` the prediction is used as returned, and products are
    H v even when H is not symmetric.

    The model runs once, and its output is detached and cached. It runs at
    construction when any of ``size``, ``dtype`` and ``device`` is missing,
    because they are read from its output. Otherwise it runs at the first
    product. Products with block predictions never form the dense matrix: the
    block list is multiplied by gathering and ``index_add_``, which costs
    O(E) instead of O(n²).

    Args:
        predict_fn: Callable ``predict_fn(inputs)`` returning the prediction
            described above.
        inputs: Passed to ``predict_fn`` unchanged, for example positions and
            atomic numbers.
        layout: ``"dense"`` or ``"blocks"``.
        size: n, the number of rows of H, a multiple of 3 for blocks. When
            given, the prediction must match it.
        dtype: Floating-point dtype of the provider; the prediction is
            converted to it. Defaults to the prediction's dtype.
        device: Device of the provider; the prediction is moved to it.
            Defaults to the prediction's device.
        symmetrize: Replace H by (H + Hᵀ)/2.

    Raises:
        InvalidArgumentError: ``predict_fn`` is not callable, ``layout`` is not
            one of ``LAYOUTS``, ``size`` is not a positive integer (a multiple
            of 3 for blocks), ``dtype`` is not a floating-point dtype, or, when
            the model runs at construction, its output has the wrong type,
            shape or dtype.
        NonFiniteError: The model, when it runs at construction, returns NaN
            or infinity.
    """

    kind = "predicted"

    def __init__(
        self,
        predict_fn: Callable[[Any], Any],
        inputs: Any,
        *,
        layout: str = "dense",
        size: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        symmetrize: bool = True,
    ) -> None:
        if not callable(predict_fn):
            raise InvalidArgumentError(
                f"predict_fn must be a callable predict_fn(inputs), got {type(predict_fn).__name__}"
            )
        if layout not in LAYOUTS:
            raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise InvalidArgumentError(f"size must be a positive integer or None, got {size!r}")
            if layout == "blocks" and size % 3 != 0:
                raise InvalidArgumentError(
                    f"size must be a multiple of 3 (three coordinates per atom) with "
                    f'layout="blocks", got {size}'
                )
        if dtype is not None and (
            not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
        ):
            raise InvalidArgumentError(
                f"dtype must be a floating-point torch dtype or None, got {dtype!r}"
            )
        if not isinstance(symmetrize, bool):
            raise InvalidArgumentError(f"symmetrize must be True or False, got {symmetrize!r}")

        self._predict_fn = predict_fn
        self._inputs = inputs
        self._layout = layout
        self._symmetrize = symmetrize
        self._cache: _Dense | _BlockArray | _BlockList | None = None

        if size is not None and dtype is not None and device is not None:
            super().__init__(size, dtype, device)
        else:
            prediction = self._run_model(size, dtype, device)
            super().__init__(_size_of(prediction), _dtype_of(prediction), _device_of(prediction))
            self._cache = prediction

    # ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Exact products with the predicted matrix, possibly indefinite, matrix stored."""
        return Capabilities(
            exact=True,
            positive_semidefinite=False,
            needs_double_backward=False,
            dense_available=True,
            gpu=self.device.type == "cuda",
        )

    @property
    def layout(self) -> str:
        """``"dense"`` or ``"blocks"``, as passed to the constructor."""
        return self._layout

    def _prediction(self) -> _Dense | _BlockArray | _BlockList:
        """Return the cached prediction, running the model on first use."""
        if self._cache is None:
            self._cache = self._run_model(self.size, self.dtype, self.device)
        return self._cache

    def _run_model(
        self, size: int | None, dtype: torch.dtype | None, device: torch.device | str | None
    ) -> _Dense | _BlockArray | _BlockList:
        logger.debug("running predict_fn for a %s Hessian", self._layout)
        raw = self._predict_fn(self._inputs)
        if self._layout == "dense":
            return _parse_dense(raw, size, dtype, device, self._symmetrize)
        if isinstance(raw, torch.Tensor):
            return _parse_block_array(raw, size, dtype, device, self._symmetrize)
        if isinstance(raw, tuple | list) and len(raw) == 3:
            return _parse_block_list(raw, size, dtype, device, self._symmetrize)
        raise InvalidArgumentError(
            'predict_fn must return, with layout="blocks", an (N, N, 3, 3) tensor or a tuple '
            f"(index_i, index_j, blocks), got {_describe(raw)}"
        )

    # ------------------------------------------------------------------
    # Products

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matmat(v.unsqueeze(1)).squeeze(1)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        prediction = self._prediction()
        if isinstance(prediction, _Dense):
            return prediction.matrix @ V

        k = V.shape[1]
        if isinstance(prediction, _BlockArray):
            atoms = prediction.blocks.shape[0]
            product = torch.einsum("ijab,jbk->iak", prediction.blocks, V.reshape(atoms, 3, k))
            return product.reshape(self.size, k)

        gathered = V.reshape(prediction.num_atoms, 3, k)[prediction.index_j]
        contributions = torch.einsum("eab,ebk->eak", prediction.blocks, gathered)
        product = torch.zeros(prediction.num_atoms, 3, k, dtype=V.dtype, device=V.device)
        product.index_add_(0, prediction.index_i, contributions)
        return product.reshape(self.size, k)

    # ------------------------------------------------------------------
    # Quantities read from the stored prediction

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int = 256
    ) -> torch.Tensor:
        """Assemble the predicted matrix (after symmetrisation) as a dense (n, n) tensor.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Accepted for the signature of
                :meth:`CurvatureProvider.to_dense`; unused, because the matrix
                is assembled from the stored prediction without products.

        Returns:
            A new (n, n) tensor.

        Raises:
            InvalidArgumentError: n is larger than ``max_size`` or ``chunk_size`` < 1.
        """
        self.check_dense_arguments(max_size, chunk_size)

        prediction = self._prediction()
        if isinstance(prediction, _Dense):
            return prediction.matrix.clone()
        if isinstance(prediction, _BlockArray):
            return _blocks_to_matrix(prediction.blocks)

        atoms = prediction.num_atoms
        blocks = prediction.blocks.new_zeros(atoms, atoms, 3, 3)
        blocks[prediction.index_i, prediction.index_j] = prediction.blocks
        return _blocks_to_matrix(blocks)

    def diagonal(self) -> torch.Tensor:
        """Return the diagonal of the predicted matrix, read from the prediction."""
        prediction = self._prediction()
        if isinstance(prediction, _Dense):
            return prediction.matrix.diagonal().clone()
        if isinstance(prediction, _BlockArray):
            atoms = torch.arange(prediction.blocks.shape[0], device=self.device)
            own_blocks = prediction.blocks[atoms, atoms]
            return own_blocks.diagonal(dim1=-2, dim2=-1).reshape(self.size).clone()

        diagonal = torch.zeros(prediction.num_atoms, 3, dtype=self.dtype, device=self.device)
        on_diagonal = prediction.index_i == prediction.index_j
        own_blocks = prediction.blocks[on_diagonal]
        diagonal[prediction.index_i[on_diagonal]] = own_blocks.diagonal(dim1=-2, dim2=-1)
        return diagonal.reshape(self.size)


# ----------------------------------------------------------------------
# Checking and normalising what predict_fn returns


def _parse_dense(
    raw: Any,
    size: int | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    symmetrize: bool,
) -> _Dense:
    matrix = _check_floating_tensor(raw, 'with layout="dense", an (n, n) tensor', dtype, device)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InvalidArgumentError(
            f'predict_fn must return, with layout="dense", a square (n, n) tensor, '
            f"got shape {tuple(matrix.shape)}"
        )
    if size is not None and matrix.shape[0] != size:
        raise InvalidArgumentError(
            f"predict_fn returned a {matrix.shape[0]}x{matrix.shape[1]} matrix, "
            f"but size={size} was given"
        )
    _check_finite(matrix, "matrix")
    if symmetrize:
        matrix = (matrix + matrix.T) / 2
    return _Dense(matrix)


def _parse_block_array(
    raw: torch.Tensor,
    size: int | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    symmetrize: bool,
) -> _BlockArray:
    blocks = _check_floating_tensor(raw, "an (N, N, 3, 3) tensor", dtype, device)
    if blocks.ndim != 4 or blocks.shape[0] != blocks.shape[1] or blocks.shape[2:] != (3, 3):
        raise InvalidArgumentError(
            f'predict_fn must return, with layout="blocks", a tensor of shape (N, N, 3, 3), '
            f"got shape {tuple(blocks.shape)}"
        )
    if blocks.shape[0] == 0:
        raise InvalidArgumentError("predict_fn returned blocks for zero atoms")
    if size is not None and 3 * blocks.shape[0] != size:
        raise InvalidArgumentError(
            f"predict_fn returned blocks for {blocks.shape[0]} atoms "
            f"(n = {3 * blocks.shape[0]}), but size={size} was given"
        )
    _check_finite(blocks, "blocks")
    if symmetrize:
        blocks = (blocks + blocks.permute(1, 0, 3, 2)) / 2
    return _BlockArray(blocks)


def _parse_block_list(
    raw: tuple[Any, Any, Any] | list[Any],
    size: int | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
    symmetrize: bool,
) -> _BlockList:
    index_i, index_j = (_check_index(raw[k], name) for k, name in ((0, "index_i"), (1, "index_j")))
    blocks = _check_floating_tensor(raw[2], "blocks of shape (E, 3, 3)", dtype, device)
    count = index_i.shape[0]
    if index_j.shape[0] != count or blocks.shape != (count, 3, 3):
        raise InvalidArgumentError(
            f"predict_fn must return index_i (E,), index_j (E,) and blocks (E, 3, 3) with one E, "
            f"got shapes {tuple(index_i.shape)}, {tuple(index_j.shape)}, {tuple(blocks.shape)}"
        )
    _check_finite(blocks, "blocks")
    index_i = index_i.to(device=blocks.device, dtype=torch.int64)
    index_j = index_j.to(device=blocks.device, dtype=torch.int64)

    atoms = _count_atoms(index_i, index_j, size)
    index_i, index_j, blocks = _add_missing_transposes(index_i, index_j, blocks, atoms)
    if symmetrize:
        blocks = _symmetrize_block_list(index_i, index_j, blocks, atoms)
    return _BlockList(index_i, index_j, blocks, atoms)


def _count_atoms(index_i: torch.Tensor, index_j: torch.Tensor, size: int | None) -> int:
    """Return N from ``size`` or from the largest index, after checking the indices."""
    if index_i.numel() == 0:
        if size is None:
            raise InvalidArgumentError(
                "predict_fn returned an empty block list; pass size= to the provider "
                "so the number of atoms is known"
            )
        return size // 3
    largest = int(torch.maximum(index_i.max(), index_j.max()))
    smallest = int(torch.minimum(index_i.min(), index_j.min()))
    atoms = size // 3 if size is not None else largest + 1
    if smallest < 0 or largest >= atoms:
        raise InvalidArgumentError(
            f"predict_fn returned atom indices from {smallest} to {largest}, "
            f"but they must lie in [0, {atoms}) for {atoms} atoms"
        )
    sorted_keys = torch.sort(index_i * atoms + index_j).values
    if bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        raise InvalidArgumentError(
            "predict_fn returned the same atom pair (index_i, index_j) more than once; "
            "each block may be listed once"
        )
    return atoms


def _add_missing_transposes(
    index_i: torch.Tensor, index_j: torch.Tensor, blocks: torch.Tensor, atoms: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Append block (j, i) = B_ijᵀ for every off-diagonal (i, j) whose mirror is not listed."""
    missing = (_mirror_positions(index_i, index_j, atoms) < 0) & (index_i != index_j)
    return (
        torch.cat([index_i, index_j[missing]]),
        torch.cat([index_j, index_i[missing]]),
        torch.cat([blocks, blocks[missing].transpose(-1, -2)]),
    )


def _symmetrize_block_list(
    index_i: torch.Tensor, index_j: torch.Tensor, blocks: torch.Tensor, atoms: int
) -> torch.Tensor:
    """Return (B_ij + B_jiᵀ)/2 for every listed block; every mirror must be listed."""
    mirror = _mirror_positions(index_i, index_j, atoms)
    return (blocks + blocks[mirror].transpose(-1, -2)) / 2


def _mirror_positions(index_i: torch.Tensor, index_j: torch.Tensor, atoms: int) -> torch.Tensor:
    """Return, for each block (i, j), the position of block (j, i) in the list, or -1.

    Sorting the pair keys i·N + j and searching them costs O(E log E).
    """
    keys = index_i * atoms + index_j
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    mirror_keys = index_j * atoms + index_i
    position = torch.searchsorted(sorted_keys, mirror_keys).clamp(max=max(keys.numel() - 1, 0))
    if keys.numel() == 0:
        return position
    found = sorted_keys[position] == mirror_keys
    return torch.where(found, order[position], torch.full_like(position, -1))


def _blocks_to_matrix(blocks: torch.Tensor) -> torch.Tensor:
    """Turn (N, N, 3, 3) blocks into the (3N, 3N) matrix with H[3i+a, 3j+b] = B[i, j, a, b]."""
    atoms = blocks.shape[0]
    return blocks.permute(0, 2, 1, 3).reshape(3 * atoms, 3 * atoms)


def _check_floating_tensor(
    value: Any, expected: str, dtype: torch.dtype | None, device: torch.device | str | None
) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise InvalidArgumentError(f"predict_fn must return {expected}, got {_describe(value)}")
    if not value.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"predict_fn must return floating-point values ({expected}), got dtype {value.dtype}"
        )
    return value.detach().to(dtype=dtype or value.dtype, device=device or value.device)


def _check_index(value: Any, name: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 1:
        raise InvalidArgumentError(
            f"predict_fn must return {name} as a 1-D integer tensor of atom indices, "
            f"got {_describe(value)}"
        )
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise InvalidArgumentError(
            f"predict_fn must return {name} as an integer tensor, got dtype {value.dtype}"
        )
    return value.detach()


def _check_finite(tensor: torch.Tensor, part: str) -> None:
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        raise NonFiniteError(
            f"predict_fn returned {int((~finite).sum())} NaN or infinite value(s) in its "
            f"{part} out of {tensor.numel()}; check the model and its inputs"
        )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def _size_of(prediction: _Dense | _BlockArray | _BlockList) -> int:
    if isinstance(prediction, _Dense):
        return prediction.matrix.shape[0]
    if isinstance(prediction, _BlockArray):
        return 3 * prediction.blocks.shape[0]
    return 3 * prediction.num_atoms


def _dtype_of(prediction: _Dense | _BlockArray | _BlockList) -> torch.dtype:
    return prediction.matrix.dtype if isinstance(prediction, _Dense) else prediction.blocks.dtype


def _device_of(prediction: _Dense | _BlockArray | _BlockList) -> torch.device:
    return prediction.matrix.device if isinstance(prediction, _Dense) else prediction.blocks.device
