"""Input checks, random vectors and small dense eigensolves shared by the linear-algebra routines.

The routines accept any object with ``size``, ``dtype``, ``device``,
``matvec(v)`` and ``matmat(V)``, not only a
:class:`~hessframe.curvature.CurvatureProvider`, so the checks here look at
those attributes instead of the class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import torch

from hessframe.errors import InvalidArgumentError


def check_operator(op: Any, caller: str) -> None:
    """Raise InvalidArgumentError unless ``op`` has the attributes of a provider."""
    missing = [name for name in ("size", "dtype", "device", "matvec") if not hasattr(op, name)]
    if missing:
        raise InvalidArgumentError(
            f"{caller}: op must be a CurvatureProvider or an object with size, dtype, device, "
            f"matvec and matmat; {type(op).__name__} has no {', '.join(missing)}"
        )
    size = op.size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidArgumentError(f"{caller}: op.size must be a positive integer, got {size!r}")
    if not isinstance(op.dtype, torch.dtype) or not op.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"{caller}: op.dtype must be a floating-point torch dtype, got {op.dtype!r}"
        )


def check_positive_int(value: Any, name: str, caller: str) -> int:
    """Return ``value`` as an int, or raise InvalidArgumentError unless it is an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{caller}: {name} must be an integer >= 1, got {value!r}")
    return value


def check_positive_float(value: Any, name: str, caller: str) -> float:
    """Return ``value`` as a float, or raise InvalidArgumentError unless it is finite and > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            f"{caller}: {name} must be a positive number, got {type(value).__name__} {value!r}"
        )
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"{caller}: {name} must be finite and > 0, got {value!r}")
    return float(value)


def check_generator(generator: Any, caller: str) -> None:
    """Raise InvalidArgumentError unless ``generator`` is None or a torch.Generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidArgumentError(
            f"{caller}: generator must be a torch.Generator or None, got {type(generator).__name__}"
        )


def check_vector(op: Any, vector: Any, name: str, caller: str) -> None:
    """Raise InvalidArgumentError unless ``vector`` is a flat vector that ``op`` accepts."""
    if not isinstance(vector, torch.Tensor):
        raise InvalidArgumentError(
            f"{caller}: {name} must be a torch.Tensor of shape ({op.size},), "
            f"got {type(vector).__name__}"
        )
    if vector.ndim != 1 or vector.shape[0] != op.size:
        raise InvalidArgumentError(
            f"{caller}: {name} must have shape ({op.size},) to match the operator, "
            f"got {tuple(vector.shape)}"
        )
    check_dtype_device(op, vector, name, caller)


def check_dtype_device(op: Any, tensor: torch.Tensor, name: str, caller: str) -> None:
    """Raise InvalidArgumentError unless ``tensor`` has the dtype and device type of ``op``."""
    if tensor.dtype != op.dtype:
        raise InvalidArgumentError(
            f"{caller}: {name} has dtype {tensor.dtype} but the operator works in {op.dtype}; "
            f"convert it with .to({op.dtype})"
        )
    if tensor.device.type != torch.device(op.device).type:
        raise InvalidArgumentError(
            f"{caller}: {name} is on {tensor.device} but the operator is on {op.device}; "
            f"move it with .to('{op.device}')"
        )


def apply(op: Any, block: torch.Tensor) -> torch.Tensor:
    """Return H times an (n, k) block, through ``matvec`` when k is 1."""
    if block.shape[1] == 1:
        return op.matvec(block[:, 0].contiguous()).unsqueeze(1)
    return op.matmat(block)


def random_block(
    op: Any,
    num_columns: int,
    distribution: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Draw an (n, num_columns) block of Rademacher (±1) or standard Gaussian entries.

    The draw happens on the generator's device when a generator is given, so
    a CPU generator gives the same numbers for an operator on any device.
    """
    device = generator.device if generator is not None else torch.device(op.device)
    shape = (op.size, num_columns)
    if distribution == "rademacher":
        signs = torch.randint(0, 2, shape, generator=generator, device=device)
        block = signs.to(op.dtype) * 2 - 1
    elif distribution == "gaussian":
        block = torch.randn(shape, generator=generator, device=device, dtype=op.dtype)
    else:
        raise InvalidArgumentError(
            f"distribution must be 'rademacher' or 'gaussian', got {distribution!r}"
        )
    return block.to(op.device)


def symmetric_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ascending eigenvalues and the eigenvectors of a small symmetric CPU matrix.

    SciPy's LAPACK call is used because it stays fast when other processes
    keep the CPU busy. On a 2-core CPU under such load, ``torch.linalg.eigh``
    (torch 2.14.1, two OpenMP threads) took 70 ms for a 60×60 matrix instead of
    0.4 ms, while ``scipy.linalg.eigh`` (SciPy 1.17.1) took under 1 ms.
    """
    values, vectors = scipy.linalg.eigh(np.asarray(matrix.detach().cpu(), dtype=np.float64))
    return torch.from_numpy(values), torch.from_numpy(vectors)


def tridiagonal_eigh(
    diagonal: torch.Tensor, off_diagonal: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the ascending eigenvalues and the eigenvectors of a symmetric tridiagonal matrix."""
    diagonal_array = np.asarray(diagonal.detach().cpu(), dtype=np.float64)
    if diagonal_array.shape[0] == 1:
        return torch.from_numpy(diagonal_array.copy()), torch.ones(1, 1, dtype=torch.float64)
    values, vectors = scipy.linalg.eigh_tridiagonal(
        diagonal_array, np.asarray(off_diagonal.detach().cpu(), dtype=np.float64)
    )
    return torch.from_numpy(values), torch.from_numpy(vectors)
