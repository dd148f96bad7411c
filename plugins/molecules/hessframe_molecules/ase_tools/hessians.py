"""Hessian sources for the ASE tools: a registered provider, a factory, or finite differences.

Every optimizer, transition-state search and vibrational analysis in this
package takes from a :class:`HessianSource` for the (3N, 3N) Cartesian Hessian of an
``ase.Atoms`` in eV/Å² (atom-major order x0, y0, z0, x1, ...). A source wraps
one of:

- the name of a provider registered with hessframe's plugin manager, whose
  factory takes ``(atoms, **kwargs)`` and returns a
  :class:`~hessframe.curvature.CurvatureProvider` (``molecules-predicted``,
  ``molecules-autodiff``, ``xtb-finite-difference``, or any other plugin's);
  the short names of :data:`HESSIAN_ALIASES` are accepted too;
- a callable ``factory(atoms)`` that returns such a provider or a (3N, 3N)
  array;
- :func:`calculator_finite_difference`, the central-difference Hessian of the
  forces of any ASE calculator.

The source checks the shape and finiteness of every Hessian, symmetrises it as
(H + Hᵀ)/2, and counts its calls and the time they took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from hessframe.errors import InvalidArgumentError, NonFiniteError

logger = logging.getLogger(__name__)

#: Short names of the molecules plugin's providers, as the command line takes them.
HESSIAN_ALIASES: Mapping[str, str] = {
    "predicted": "molecules-predicted",
    "autodiff": "molecules-autodiff",
    "xtb-fd": "xtb-finite-difference",
}

#: Default central-difference step (Å) of :func:`calculator_finite_difference`.
DEFAULT_FD_STEP_A = 0.005


class HessianSource:
    """A callable ``source(atoms) -> (3N, 3N) numpy array`` in eV/Å², with call statistics.

    Args:
        factory: ``factory(atoms, **kwargs)`` returning a
            :class:`~hessframe.curvature.CurvatureProvider` over the 3N
            Cartesian coordinates, or a (3N, 3N) array-like.
        name: Label used in logs, errors and summaries.
        kwargs: Keyword arguments passed to ``factory`` on every call.

    Attributes:
        num_calls: Number of Hessians computed so far.
        seconds: Wall time spent in those calls, in seconds.
    """

    def __init__(
        self,
        factory: Callable[..., Any],
        name: str,
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if not callable(factory):
            raise InvalidArgumentError(
                f"hessian factory must be callable as factory(atoms), got {type(factory).__name__}"
            )
        self.factory = factory
        self.name = name
        self.kwargs = dict(kwargs or {})
        self.num_calls = 0
        self.seconds = 0.0

    def __call__(self, atoms: Any) -> np.ndarray:
        """Return the symmetrised Hessian (3N, 3N) of ``atoms`` in eV/Å².

        Raises:
            InvalidArgumentError: The factory returned something other than a
                provider or array of shape (3N, 3N).
            NonFiniteError: The Hessian contains NaN or infinity.
        """
        start = time.perf_counter()
        returned = self.factory(atoms.copy(), **self.kwargs)
        hessian = _as_dense_array(returned, self.name)
        self.seconds += time.perf_counter() - start
        self.num_calls += 1

        size = 3 * len(atoms)
        if hessian.shape != (size, size):
            raise InvalidArgumentError(
                f"hessian source {self.name!r} returned a matrix of shape {hessian.shape} for "
                f"{len(atoms)} atoms; expected ({size}, {size})"
            )
        if not np.all(np.isfinite(hessian)):
            raise NonFiniteError(f"hessian source {self.name!r} returned NaN or infinite entries")
        return 0.5 * (hessian + hessian.T)

    def __repr__(self) -> str:
        return f"HessianSource({self.name!r}, calls={self.num_calls})"


def _as_dense_array(returned: Any, name: str) -> np.ndarray:
    if hasattr(returned, "to_dense") and hasattr(returned, "size"):
        dense = returned.to_dense(max_size=max(int(returned.size), 1))
        return dense.detach().cpu().double().numpy()
    try:
        import torch

        if isinstance(returned, torch.Tensor):
            return returned.detach().cpu().double().numpy()
    except ImportError:  # torch is a dependency, but a factory may return arrays only
        pass
    try:
        return np.asarray(returned, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InvalidArgumentError(
            f"hessian source {name!r} returned {type(returned).__name__}; expected a "
            "CurvatureProvider or a (3N, 3N) array"
        ) from error


def resolve_hessian(
    hessian: str | HessianSource | Callable[..., Any] | None,
    *,
    argument: str = "hessian",
    **kwargs: Any,
) -> HessianSource | None:
    """Turn a provider name, an alias, a factory or a source into a :class:`HessianSource`.

    Args:
        hessian: A provider name registered with hessframe's plugin manager,
            a key of :data:`HESSIAN_ALIASES`, a ``HessianSource`` (returned
            unchanged), a callable ``factory(atoms, **kwargs)``, or None.
        argument: Argument name used in error messages.
        **kwargs: Passed to the provider factory on every call.

    Returns:
        The source, or None when ``hessian`` is None.

    Raises:
        InvalidArgumentError: ``hessian`` names no registered provider, or is
            of another type; the message lists the registered names.
    """
    if hessian is None or isinstance(hessian, HessianSource):
        return hessian
    if isinstance(hessian, str):
        from hessframe.plugins import get_plugin_manager

        name = HESSIAN_ALIASES.get(hessian, hessian)
        records = get_plugin_manager().provider_records()
        if name not in records:
            known = sorted({*records, *HESSIAN_ALIASES})
            raise InvalidArgumentError(
                f"{argument}={hessian!r} is not a registered curvature provider; "
                f"accepted names: {', '.join(known)}"
            )
        return HessianSource(records[name][0].factory, name, kwargs)
    if callable(hessian):
        label = getattr(hessian, "__name__", type(hessian).__name__)
        return HessianSource(hessian, label, kwargs)
    raise InvalidArgumentError(
        f"{argument} must be a provider name, a callable factory(atoms) or a HessianSource, "
        f"got {type(hessian).__name__}"
    )


def calculator_finite_difference(
    atoms: Any, calculator: Any | None = None, *, step: float = DEFAULT_FD_STEP_A
) -> Any:
    """Build the Hessian of any ASE calculator's energy by central differences of its forces.

    Each column costs two force calls, so the dense matrix costs 6N. The
    calculator runs on a copy of ``atoms``, so ``atoms`` keeps its positions
    and results.

    Args:
        atoms: The structure, an ``ase.Atoms``.
        calculator: The ASE calculator; defaults to ``atoms.calc``.
        step: Displacement h of each coordinate (Å).

    Returns:
        A :class:`~hessframe.curvature.finite_difference.FiniteDifferenceHessian`
        over the 3N Cartesian coordinates (eV/Å²).

    Raises:
        InvalidArgumentError: No calculator is given or attached, or ``step``
            is not a finite positive number.
    """
    from hessframe.curvature.finite_difference import FiniteDifferenceHessian

    calculator = calculator if calculator is not None else atoms.calc
    if calculator is None:
        raise InvalidArgumentError(
            "calculator is missing: pass an ASE calculator or attach one to atoms.calc"
        )
    if isinstance(step, bool) or not np.isfinite(step) or step <= 0:
        raise InvalidArgumentError(f"step must be a finite positive number of Å, got {step!r}")

    probe = atoms.copy()
    probe.calc = calculator

    def gradient(flat_positions: np.ndarray) -> np.ndarray:
        probe.set_positions(flat_positions.reshape(-1, 3), apply_constraint=False)
        return -probe.get_forces(apply_constraint=False).reshape(-1)

    return FiniteDifferenceHessian(
        gradient, atoms.get_positions().reshape(-1).astype(np.float64), step=float(step)
    )
