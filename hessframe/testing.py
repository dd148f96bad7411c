"""Dense-ground-truth checks for curvature providers, and the pytest plugin that offers them.

A plugin author who writes a :class:`~hessframe.curvature.CurvatureProvider`
tests it on a problem small enough to form its matrix densely, for example with
``torch.func.hessian`` in float64, and then calls::

    from hessframe.testing import assert_provider_matches_dense

    assert_provider_matches_dense(provider, dense, rtol=1e-6)

Inside pytest the same function is the ``provider_checker`` fixture, which
hessframe registers through the ``pytest11`` entry point::

    def test_my_provider_matches_dense(provider_checker):
        provider_checker(MyProvider(...), dense)

Every operation is compared with what the dense matrix gives for it, and the
first mismatch raises AssertionError naming the operation, the maximum error and
the tolerance. The tolerance of an operation is ``atol + rtol * scale``, where
``scale`` is the natural size of that result:

================  ======================================  ===================
operation         reference                               scale
================  ======================================  ===================
``matvec``        ``dense @ v`` for a random v            max of ``|dense| @ |v|``
``matmat``        ``dense @ V`` for a random (n, 3) V     max of ``|dense| @ |V|``
``to_dense``      ``dense``                               max of ``|dense|``
``diagonal``      ``dense.diagonal()``                    max of ``|diag|``
``trace``         ``dense.trace()``                       sum of ``|diag|``
``eigsh``         largest eigenvalue by ``eigvalsh``      max ``|eigenvalue|``
``solve``         ``‖b − (dense + λI) x‖`` for a random b  ``‖b‖``
================  ======================================  ===================

``eigsh`` and ``solve`` are iterative, so they are held to ``iterative_rtol``
instead of ``rtol``. ``solve`` uses the damping λ = max(0, −λ_min) + 0.1·max(‖H‖₂, 1),
which makes H + λI positive definite with a condition number of at most 21.

The module imports neither torch nor hessframe.linalg at import time, so that
loading the pytest plugin costs nothing beyond importing the ``hessframe``
package itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from hessframe.curvature.base import CurvatureProvider

ALL_CHECKS = ("matvec", "matmat", "to_dense", "diagonal", "trace", "eigsh", "solve")

#: Default ``rtol`` of exact operations, by dtype name.
_DEFAULT_RTOL = {"float64": 1e-8, "float32": 1e-4}

#: Default ``iterative_rtol`` of ``eigsh`` and ``solve``, by dtype name.
_DEFAULT_ITERATIVE_RTOL = {"float64": 1e-6, "float32": 1e-3}

_MATMAT_COLUMNS = 3


def assert_provider_matches_dense(
    provider: CurvatureProvider,
    dense: torch.Tensor,
    *,
    rtol: float | None = None,
    atol: float = 0.0,
    iterative_rtol: float | None = None,
    checks: Iterable[str] = ALL_CHECKS,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Check every requested operation of ``provider`` against a dense matrix.

    Args:
        provider: The provider under test.
        dense: The (n, n) matrix it stands for, ideally in float64. It is cast
            to the provider's dtype and device before comparing.
        rtol: Relative tolerance of exact operations, against the scale listed
            in the module docstring. Defaults to 1e-8 for float64 providers,
            1e-4 for float32 and 1e-2 otherwise.
        atol: Absolute tolerance added to every comparison.
        iterative_rtol: Relative tolerance of ``eigsh`` and ``solve``. Defaults
            to 1e-6 for float64 providers, 1e-3 for float32 and 1e-2 otherwise.
        checks: Names of the operations to check, a subset of :data:`ALL_CHECKS`.
        generator: Source of the random vectors; defaults to a generator on
            the provider's device seeded with 0, so runs are reproducible.

    Returns:
        The maximum error of each operation that was checked, by name.
        ``eigsh`` and ``solve`` are left out, with a warning, when
        ``hessframe.linalg`` cannot import the routine they need.

    Raises:
        AssertionError: An operation disagrees with ``dense``, or the provider's
            shape differs from ``dense``. The message names the operation.
        ValueError: ``checks`` names an unknown operation, or ``dense`` is not
            a square tensor.
    """
    import torch

    requested = tuple(checks)
    unknown = [name for name in requested if name not in ALL_CHECKS]
    if unknown:
        raise ValueError(f"checks contains unknown operation(s) {unknown}; accepted: {ALL_CHECKS}")
    if not isinstance(dense, torch.Tensor) or dense.ndim != 2 or dense.shape[0] != dense.shape[1]:
        shape = tuple(dense.shape) if isinstance(dense, torch.Tensor) else type(dense).__name__
        raise ValueError(f"dense must be a square 2-D torch.Tensor, got {shape}")
    assert tuple(provider.shape) == tuple(dense.shape), (
        f"shape: the provider is {tuple(provider.shape)} but dense is {tuple(dense.shape)}"
    )

    dtype_name = str(provider.dtype).removeprefix("torch.")
    if rtol is None:
        rtol = _DEFAULT_RTOL.get(dtype_name, 1e-2)
    if iterative_rtol is None:
        iterative_rtol = _DEFAULT_ITERATIVE_RTOL.get(dtype_name, 1e-2)
    if generator is None:
        generator = torch.Generator(device=provider.device).manual_seed(0)

    reference = dense.detach().to(dtype=provider.dtype, device=provider.device)
    errors: dict[str, float] = {}
    for name in requested:
        check = _CHECKS[name]
        tolerance_rtol = iterative_rtol if name in ("eigsh", "solve") else rtol
        try:
            errors[name] = check(provider, reference, tolerance_rtol, atol, generator)
        except ImportError as error:
            warnings.warn(
                f"{name} was not checked because hessframe.linalg could not import the "
                f"routine it needs: {error}",
                stacklevel=2,
            )
    return errors


def _assert_close(name: str, error: float, scale: float, rtol: float, atol: float) -> float:
    tolerance = atol + rtol * scale
    assert error <= tolerance, (
        f"{name}: max error {error:.3e} exceeds the tolerance {tolerance:.3e} "
        f"(atol={atol:g} + rtol={rtol:g} * scale {scale:.3e})"
    )
    return error


def _random(provider: CurvatureProvider, shape: tuple[int, ...], generator: torch.Generator):
    import torch

    return torch.randn(*shape, generator=generator, dtype=provider.dtype, device=provider.device)


def _check_matvec(provider, dense, rtol, atol, generator) -> float:
    v = _random(provider, (provider.size,), generator)
    got = provider.matvec(v)
    want = dense @ v
    scale = float((dense.abs() @ v.abs()).max())
    return _assert_close("matvec", float((got - want).abs().max()), scale, rtol, atol)


def _check_matmat(provider, dense, rtol, atol, generator) -> float:
    V = _random(provider, (provider.size, _MATMAT_COLUMNS), generator)
    got = provider.matmat(V)
    assert tuple(got.shape) == tuple(V.shape), (
        f"matmat: returned shape {tuple(got.shape)} for a block of shape {tuple(V.shape)}"
    )
    want = dense @ V
    scale = float((dense.abs() @ V.abs()).max())
    return _assert_close("matmat", float((got - want).abs().max()), scale, rtol, atol)


def _check_to_dense(provider, dense, rtol, atol, generator) -> float:
    got = provider.to_dense()
    assert tuple(got.shape) == tuple(dense.shape), (
        f"to_dense: returned shape {tuple(got.shape)}, expected {tuple(dense.shape)}"
    )
    scale = float(dense.abs().max())
    return _assert_close("to_dense", float((got - dense).abs().max()), scale, rtol, atol)


def _check_diagonal(provider, dense, rtol, atol, generator) -> float:
    got = provider.diagonal()
    want = dense.diagonal()
    scale = float(want.abs().max())
    return _assert_close("diagonal", float((got - want).abs().max()), scale, rtol, atol)


def _check_trace(provider, dense, rtol, atol, generator) -> float:
    got = float(provider.trace())
    want = float(dense.trace())
    scale = float(dense.diagonal().abs().sum())
    return _assert_close("trace", abs(got - want), scale, rtol, atol)


def _check_eigsh(provider, dense, rtol, atol, generator) -> float:
    import torch

    import hessframe.linalg

    if not hasattr(hessframe.linalg, "lanczos"):
        raise ImportError("cannot import name 'lanczos' from 'hessframe.linalg'")
    result = provider.eigsh(k=1, which="largest")
    eigenvalues = torch.linalg.eigvalsh(dense)
    want = float(eigenvalues.max())
    got = float(result.eigenvalues[0])
    scale = float(eigenvalues.abs().max())
    return _assert_close("eigsh", abs(got - want), scale, rtol, atol)


def _check_solve(provider, dense, rtol, atol, generator) -> float:
    import torch

    import hessframe.linalg

    if not hasattr(hessframe.linalg, "conjugate_gradient"):
        raise ImportError("cannot import name 'conjugate_gradient' from 'hessframe.linalg'")
    eigenvalues = torch.linalg.eigvalsh(dense)
    spectral_norm = float(eigenvalues.abs().max())
    damping = max(0.0, -float(eigenvalues.min())) + 0.1 * max(spectral_norm, 1.0)

    b = _random(provider, (provider.size,), generator)
    result = provider.solve(b, damping=damping)
    identity = torch.eye(provider.size, dtype=dense.dtype, device=dense.device)
    residual = b - (dense + damping * identity) @ result.x
    return _assert_close(
        f"solve (damping {damping:.3g})",
        float(torch.linalg.vector_norm(residual)),
        float(torch.linalg.vector_norm(b)),
        rtol,
        atol,
    )


_CHECKS = {
    "matvec": _check_matvec,
    "matmat": _check_matmat,
    "to_dense": _check_to_dense,
    "diagonal": _check_diagonal,
    "trace": _check_trace,
    "eigsh": _check_eigsh,
    "solve": _check_solve,
}


try:
    import pytest
except ImportError:  # hessframe.testing is usable without pytest, minus the fixture.
    pytest = None

if pytest is not None:

    @pytest.fixture
    def provider_checker():
        """Return :func:`assert_provider_matches_dense`, to call with a provider and its matrix."""
        return assert_provider_matches_dense
