"""Transition-state search with Sella, fed by a provider's Hessian, and its checks.

Sella (Hermes, Sargsyan, Najm and Zádor, J. Chem. Theory Comput. 18, 6974
(2022)) finds first-order saddle points with a partitioned rational-function
step. Without a Hessian it estimates the lowest modes by iterative
diagonalization, which costs gradient calls at the start and whenever it
rediagonalizes. Its ``hessian_function`` replaces that estimate with a Hessian
supplied from outside; here that is any
:class:`~hessframe_molecules.ase_tools.hessians.HessianSource`.

A saddle is checked twice: by its harmonic frequencies (exactly one imaginary
frequency, from :func:`analyze_vibrations`) and by Sella's intrinsic reaction
coordinate (IRC), followed forward and backward from the saddle to the two
minima it connects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from hessframe.errors import HessframeError, InvalidArgumentError
from hessframe_molecules.ase_tools.hessians import HessianSource, resolve_hessian

logger = logging.getLogger(__name__)

DEFAULT_TS_FMAX = 0.01
DEFAULT_IRC_FMAX = 0.05

#: Energy (eV) by which an IRC end must lie below the saddle to count as a minimum.
MIN_DROP_EV = 1e-3


class SaddleSearchError(HessframeError, RuntimeError):
    """Sella stopped with an error of its own before the search converged or ran out of steps."""


@dataclass(frozen=True)
class SaddleSearch:
    """Outcome of :func:`find_transition_state`.

    Attributes:
        atoms: The final structure (a copy, without calculator).
        converged: The largest force fell below ``fmax`` within ``steps``.
        steps: Sella steps taken.
        fmax: Largest force at the end (eV/Å).
        energy_ev: Energy at the end (eV).
        hessian_calls: Hessians taken from the source.
    """

    atoms: Any
    converged: bool
    steps: int
    fmax: float
    energy_ev: float
    hessian_calls: int


@dataclass(frozen=True)
class ReactionPath:
    """Outcome of :func:`follow_irc`: the two ends of the IRC from a saddle.

    Attributes:
        forward: Structure where the forward branch stopped (a copy).
        reverse: Structure where the reverse branch stopped (a copy).
        forward_converged: The forward branch reached a minimum (force below ``fmax``).
        reverse_converged: Likewise for the reverse branch.
        forward_energy_ev: Energy at the forward end (eV).
        reverse_energy_ev: Energy at the reverse end (eV).
    """

    forward: Any
    reverse: Any
    forward_converged: bool
    reverse_converged: bool
    forward_energy_ev: float
    reverse_energy_ev: float

    @property
    def converged(self) -> bool:
        """Both branches reached a minimum."""
        return self.forward_converged and self.reverse_converged


def find_transition_state(
    atoms: Any,
    hessian: str | HessianSource | Any | None = None,
    *,
    fmax: float = DEFAULT_TS_FMAX,
    steps: int = 500,
    internal: bool = True,
    diag_every_n: int | None = None,
    trajectory: str | Path | None = None,
    logfile: IO | str | Path | None = None,
    observers: tuple[Any, ...] = (),
    **sella_kwargs: Any,
) -> SaddleSearch:
    """Search a first-order saddle point with Sella, starting from ``atoms``.

    ``atoms`` keeps the calculator that gives energies and forces and is
    moved to the saddle in place.

    Args:
        atoms: The starting guess, with a calculator attached.
        hessian: Source of the Hessian handed to Sella's ``hessian_function``
            (provider name or alias, factory or :class:`HessianSource`); None
            lets Sella estimate the curvature by iterative diagonalization.
        fmax: Convergence threshold on the largest force (eV/Å).
        steps: Largest number of Sella steps.
        internal: Let Sella step in redundant internal coordinates (its
            recommended setting for molecules) instead of Cartesians.
        diag_every_n: Ask the source (or Sella's diagonalization) for a new
            Hessian every this many steps; None leaves it to Sella, which
            rediagonalizes when its model loses the negative mode.
        trajectory: Trajectory file for every step.
        logfile: Log file; ``'-'`` is stdout, None none.
        observers: Callables attached to the optimizer, called after every step.
        **sella_kwargs: Passed to :class:`sella.Sella` (for example ``eta``,
            ``gamma``, ``proj_trans``, ``proj_rot``).

    Raises:
        InvalidArgumentError: ``atoms`` has no calculator, ``fmax`` is not
            positive, ``steps`` is not a positive integer, or ``hessian``
            names no registered provider.
        SaddleSearchError: Sella stopped with an error of its own, such as a
            failed step in internal coordinates.
    """
    from sella import Sella

    _check_run_arguments(atoms, fmax, steps)
    source = resolve_hessian(hessian)
    calls_before = 0 if source is None else source.num_calls

    optimizer = Sella(
        atoms,
        order=1,
        internal=internal,
        trajectory=None if trajectory is None else str(trajectory),
        logfile=logfile,
        hessian_function=source,
        diag_every_n=diag_every_n,
        **sella_kwargs,
    )
    for observer in observers:
        optimizer.attach(observer, interval=1)
    try:
        converged = bool(optimizer.run(fmax=fmax, steps=steps))
    except RuntimeError as error:
        from ase.calculators.calculator import CalculatorError

        if isinstance(error, HessframeError | CalculatorError):
            raise
        # Sella raises plain RuntimeErrors, for example "Geometry update ODE is
        # taking too long to converge!" when its internal-coordinate step fails,
        # which happens from a guess far from any saddle (such as a minimum).
        advice = ", or step in Cartesian coordinates (internal=False, --cartesian)"
        raise SaddleSearchError(
            f"Sella stopped with an error: {error} "
            f"({'internal' if internal else 'Cartesian'} coordinates); start from a guess "
            f"closer to the saddle{advice if internal else ''}"
        ) from error
    finally:
        optimizer.close()

    final = atoms.copy()
    final.calc = None
    forces = atoms.get_forces()
    return SaddleSearch(
        atoms=final,
        converged=converged,
        steps=int(optimizer.nsteps),
        fmax=float(np.linalg.norm(forces, axis=1).max()),
        energy_ev=float(atoms.get_potential_energy()),
        hessian_calls=0 if source is None else source.num_calls - calls_before,
    )


def follow_irc(
    atoms: Any,
    hessian: str | HessianSource | Any | None = None,
    *,
    fmax: float = DEFAULT_IRC_FMAX,
    steps: int = 300,
    dx: float = 0.1,
    forward_trajectory: str | Path | None = None,
    reverse_trajectory: str | Path | None = None,
    logfile: IO | str | Path | None = None,
    **irc_kwargs: Any,
) -> ReactionPath:
    """Follow Sella's IRC from a saddle forward and backward to the minima it connects.

    ``atoms`` is not moved: each branch runs on a copy with the same calculator.

    Args:
        atoms: The saddle, with a calculator attached.
        hessian: Source of the Hessian at the saddle, which sets the initial
            direction (the imaginary mode); None lets Sella diagonalize.
        fmax: A branch ends when the largest force falls below this (eV/Å).
        steps: Largest number of IRC steps per branch.
        dx: IRC step length in mass-weighted coordinates (Å·√amu).
        forward_trajectory: Trajectory file of the forward branch.
        reverse_trajectory: Trajectory file of the reverse branch.
        logfile: Log file; ``'-'`` is stdout, None none.
        **irc_kwargs: Passed to :class:`sella.IRC` (for example ``eta``, ``gamma``).

    Raises:
        InvalidArgumentError: As in :func:`find_transition_state`.
    """
    from sella import IRC

    _check_run_arguments(atoms, fmax, steps)
    source = resolve_hessian(hessian)
    if source is not None:
        irc_kwargs = {**irc_kwargs, "hessian_function": _RigidMotionShift(source)}
    saddle_energy = float(atoms.get_potential_energy())
    ends = {}
    for direction, branch_trajectory in (
        ("forward", forward_trajectory),
        ("reverse", reverse_trajectory),
    ):
        branch = atoms.copy()
        branch.calc = atoms.calc
        irc = IRC(
            branch,
            trajectory=None if branch_trajectory is None else str(branch_trajectory),
            logfile=logfile,
            dx=dx,
            **irc_kwargs,
        )
        try:
            converged = bool(irc.run(fmax=fmax, steps=steps, direction=direction))
        except (RuntimeError, np.linalg.LinAlgError) as error:
            # Sella raises IRCInnerLoopConvergenceFailure (a RuntimeError) when
            # its inner loop stalls, which also happens right at a minimum.
            logger.info("IRC %s branch stopped: %s", direction, type(error).__name__)
            converged = False
        finally:
            irc.close()
        energy = float(branch.get_potential_energy())
        largest_force = float(np.linalg.norm(branch.get_forces(), axis=1).max())
        if not converged and largest_force < fmax and energy < saddle_energy - MIN_DROP_EV:
            # Sella also requires its updated Hessian to be positive definite;
            # a branch that went downhill to a point without force is at a minimum.
            converged = True
        end = branch.copy()
        end.calc = None
        ends[direction] = (end, converged, energy)

    return ReactionPath(
        forward=ends["forward"][0],
        reverse=ends["reverse"][0],
        forward_converged=ends["forward"][1],
        reverse_converged=ends["reverse"][1],
        forward_energy_ev=ends["forward"][2],
        reverse_energy_ev=ends["reverse"][2],
    )


class _RigidMotionShift:
    """Hessian function for Sella's IRC: the source's Hessian plus curvature along rigid motions.

    The IRC keeps translations and rotations in its coordinates and ends a
    branch only when every eigenvalue of its Hessian model is positive. The
    near-zero (often slightly negative) eigenvalues of rigid motions in a
    finite-difference or predicted Hessian would block that, so they are
    raised by ``shift`` eV/Å². Forces have no rigid-motion component, so the
    path itself does not change.
    """

    def __init__(self, source: HessianSource, shift: float = 1.0) -> None:
        self.source = source
        self.shift = shift

    def __call__(self, atoms: Any) -> np.ndarray:
        from hessframe_molecules.ase_tools.geometry import rigid_motion_basis

        rigid = rigid_motion_basis(atoms.get_positions())
        return self.source(atoms) + self.shift * rigid @ rigid.T


def _check_run_arguments(atoms: Any, fmax: float, steps: int) -> None:
    if getattr(atoms, "calc", None) is None:
        raise InvalidArgumentError(
            "atoms has no calculator; attach one (atoms.calc = ...) before the search"
        )
    if (
        isinstance(fmax, bool)
        or not isinstance(fmax, int | float)
        or not np.isfinite(fmax)
        or fmax <= 0
    ):
        raise InvalidArgumentError(f"fmax must be a finite positive force in eV/Å, got {fmax!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidArgumentError(f"steps must be a positive integer, got {steps!r}")
