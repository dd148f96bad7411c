"""A ``scipy.sparse.linalg.LinearOperator`` view of a provider, for SciPy's solvers.

With it, ``scipy.sparse.linalg.eigsh`` (ARPACK), ``cg``, ``minres`` or
``lobpcg`` run on any provider: numpy arrays are converted to tensors on the
provider's device, multiplied, and converted back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator

from hessframe.linalg._common import check_operator

_NUMPY_DTYPES = {torch.float64: np.float64, torch.float32: np.float32}


class ProviderLinearOperator(LinearOperator):
    """A symmetric LinearOperator that multiplies through a provider.

    Its dtype is float64 for a float64 provider and float32 otherwise
    (float16 and bfloat16 products are returned as float32). Complex inputs
    are split into real and imaginary parts, each multiplied separately.

    Attributes:
        op: The wrapped provider.
        num_matvecs: Vectors multiplied so far (a block of k columns counts k),
            so SciPy's solvers can be compared by the products they spend.
    """

    def __init__(self, op: Any) -> None:
        self.op = op
        self.num_matvecs = 0
        self._torch_dtype = op.dtype
        numpy_dtype = _NUMPY_DTYPES.get(op.dtype, np.float32)
        super().__init__(dtype=np.dtype(numpy_dtype), shape=(op.size, op.size))

    def _to_tensor(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=self.dtype))
        return tensor.to(device=self.op.device, dtype=self._torch_dtype)

    def _to_numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().astype(self.dtype)

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        if np.iscomplexobj(x):
            return self._matvec(x.real) + 1j * self._matvec(x.imag)
        flat = np.asarray(x).reshape(-1)
        self.num_matvecs += 1
        return self._to_numpy(self.op.matvec(self._to_tensor(flat))).reshape(np.shape(x))

    def _matmat(self, X: np.ndarray) -> np.ndarray:
        if np.iscomplexobj(X):
            return self._matmat(X.real) + 1j * self._matmat(X.imag)
        X = np.asarray(X)
        if X.shape[1] == 1:
            return self._matvec(X[:, 0])[:, None]
        self.num_matvecs += X.shape[1]
        return self._to_numpy(self.op.matmat(self._to_tensor(X)))

    def _rmatvec(self, x: np.ndarray) -> np.ndarray:
        return self._matvec(x)

    def _rmatmat(self, X: np.ndarray) -> np.ndarray:
        return self._matmat(X)

    def _adjoint(self) -> ProviderLinearOperator:
        return self

    def _transpose(self) -> ProviderLinearOperator:
        return self


def to_linear_operator(op: Any) -> ProviderLinearOperator:
    """Return a symmetric ``scipy.sparse.linalg.LinearOperator`` view of ``op``.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device``, ``matvec(v)`` and ``matmat(V)``.

    Returns:
        A :class:`ProviderLinearOperator` of shape (n, n) whose ``matvec``,
        ``matmat``, ``rmatvec`` and ``rmatmat`` multiply by H on the
        provider's device and return numpy arrays.

    Raises:
        InvalidArgumentError: ``op`` lacks the attributes of a provider.
    """
    check_operator(op, "to_linear_operator")
    return ProviderLinearOperator(op)
