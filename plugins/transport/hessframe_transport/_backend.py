"""Conversion between the caller's arrays (numpy or torch) and the float64 numpy core.

The solver computes in float64 numpy on the CPU whatever it is given, and
returns its results in the framework, dtype and device of the cost matrix M.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse
import torch

from hessframe.errors import InvalidArgumentError


@dataclass(frozen=True)
class ArrayKind:
    """Framework, dtype and device that results are returned in.

    Attributes:
        framework: ``"numpy"`` or ``"torch"``.
        dtype: A floating numpy dtype, or a floating torch dtype.
        device: The torch device, or None for numpy.
    """

    framework: str
    dtype: Any
    device: torch.device | None


def array_kind(a: Any, b: Any, M: Any) -> ArrayKind:
    """Return the kind of M (floating, float64 for integer M) and check a and b agree with it.

    Raises:
        InvalidArgumentError: a or b is a torch tensor while M is not, or the
            reverse, or they lie on another device than M.
    """
    if isinstance(M, torch.Tensor):
        for name, value in (("a", a), ("b", b)):
            if isinstance(value, np.ndarray) and value.size > 0:
                raise InvalidArgumentError(
                    f"{name} is a numpy array but M is a torch tensor; pass all of a, b and M "
                    "as torch tensors or all as numpy arrays"
                )
            if isinstance(value, torch.Tensor) and value.device != M.device:
                raise InvalidArgumentError(
                    f"{name} is on {value.device} but M is on {M.device}; "
                    f"move it with .to('{M.device}')"
                )
        dtype = M.dtype if M.dtype.is_floating_point else torch.float64
        return ArrayKind("torch", dtype, M.device)
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, torch.Tensor):
            raise InvalidArgumentError(
                f"{name} is a torch tensor but M is not; pass all of a, b and M as torch "
                "tensors or all as numpy arrays"
            )
    M_dtype = np.asarray(M).dtype
    dtype = M_dtype if np.issubdtype(M_dtype, np.floating) else np.dtype(np.float64)
    return ArrayKind("numpy", dtype, None)


def to_float64(value: Any, name: str) -> np.ndarray:
    """Return ``value`` (a numpy array, torch tensor or nested list) as a float64 numpy array.

    Raises:
        InvalidArgumentError: ``value`` is not numeric.
    """
    if isinstance(value, torch.Tensor):
        if value.is_sparse or value.layout != torch.strided:
            value = value.to_dense()
        if value.is_complex():
            raise InvalidArgumentError(f"{name} must be real, got a {value.dtype} tensor")
        return value.detach().to(device="cpu", dtype=torch.float64).numpy()
    if scipy.sparse.issparse(value):
        value = value.toarray()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(f"{name} must be an array of numbers: {error}") from error
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise InvalidArgumentError(f"{name} must be an array of numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise InvalidArgumentError(f"{name} must be real, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.float64)


def dense_result(array: np.ndarray, kind: ArrayKind) -> Any:
    """Return a float64 numpy array converted to ``kind``."""
    if kind.framework == "torch":
        return torch.from_numpy(np.ascontiguousarray(array)).to(
            dtype=kind.dtype, device=kind.device
        )
    return array.astype(kind.dtype, copy=False)


def sparse_result(
    rows: np.ndarray,
    columns: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int],
    kind: ArrayKind,
) -> Any:
    """Return the entries as a scipy CSR matrix (numpy) or a coalesced torch COO tensor."""
    if kind.framework == "torch":
        indices = torch.from_numpy(np.stack([rows, columns]).astype(np.int64))
        tensor = torch.sparse_coo_tensor(
            indices, torch.from_numpy(values), size=shape, dtype=kind.dtype, check_invariants=True
        )
        return tensor.coalesce().to(kind.device)
    return scipy.sparse.csr_matrix(
        (values.astype(kind.dtype), (rows, columns)), shape=shape, dtype=kind.dtype
    )
