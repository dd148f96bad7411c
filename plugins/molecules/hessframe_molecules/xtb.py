"""GFN2-xTB energies, forces and finite-difference Hessians through tblite.

tblite (Grimme group, LGPL-3.0) works in atomic units; this module converts at
the boundary, so every function here takes positions in Å and returns energies
in eV, forces in eV/Å and Hessians in eV/Å². The Hessian is built by central
differences of GFN2-xTB's analytic gradients,

    H[:, k] = (g(x + h e_k) − g(x − h e_k)) / (2h),

through the core's finite-difference provider, and symmetrised as (H + Hᵀ)/2.
The default step of 0.005 Å is the usual choice for tight-binding Hessians: it
keeps the truncation error (O(h²)) below the noise of the self-consistent
charges at tblite's default convergence.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.validation import check_atoms

logger = logging.getLogger(__name__)

#: The tight-binding method of every label.
XTB_METHOD = "GFN2-xTB"

#: Default central-difference step (Å).
DEFAULT_STEP_A = 0.005

# CODATA 2018 values, the ones ase.units uses.
_HARTREE_EV = 27.211386245988
_BOHR_A = 0.529177210903


class GFN2Gradient:
    """Reusable GFN2-xTB single points for one molecule.

    The tblite calculator is built once and every call restarts the
    self-consistent charges from the previous call's wavefunction, which cuts
    the number of SCF iterations when consecutive geometries are close, as in
    finite differences and relaxations.

    Args:
        numbers: Atomic numbers, length N.
        positions_a: Initial positions (N, 3) in Å.
        charge: Total charge in elementary charges.
        uhf: Number of unpaired electrons.
    """

    def __init__(
        self, numbers: Sequence[int], positions_a: np.ndarray, *, charge: float = 0.0, uhf: int = 0
    ) -> None:
        from tblite.interface import Calculator

        self.numbers = np.asarray(numbers, dtype=np.int64)
        positions = np.asarray(positions_a, dtype=np.float64).reshape(len(self.numbers), 3)
        self._calculator = Calculator(
            XTB_METHOD, self.numbers, positions / _BOHR_A, charge=float(charge), uhf=int(uhf)
        )
        self._calculator.set("verbosity", 0)
        self._result = None
        self.num_calls = 0

    def __call__(self, positions_a: np.ndarray) -> tuple[float, np.ndarray]:
        """Return the energy (eV) and forces (N, 3) (eV/Å) at ``positions_a`` (Å)."""
        positions = np.asarray(positions_a, dtype=np.float64).reshape(len(self.numbers), 3)
        self._calculator.update(positions / _BOHR_A)
        try:
            self._result = self._calculator.singlepoint(self._result)
        except RuntimeError:
            # A restart from a far-away wavefunction can fail to converge, so
            # the SCF is retried once from the default guess.
            logger.debug(
                "GFN2-xTB SCF failed from the previous wavefunction; retrying from scratch"
            )
            self._result = self._calculator.singlepoint()
        self.num_calls += 1
        energy = float(self._result.get("energy")) * _HARTREE_EV
        forces = -np.asarray(self._result.get("gradient")) * (_HARTREE_EV / _BOHR_A)
        return energy, forces

    def gradient(self, flat_positions_a: np.ndarray) -> np.ndarray:
        """Return the energy gradient (3N,) (eV/Å) at flat positions (3N,) (Å)."""
        _, forces = self(flat_positions_a)
        return -forces.reshape(-1)


def xtb_energy_forces(atoms, *, charge: float = 0.0, uhf: int = 0) -> tuple[float, np.ndarray]:
    """Return the GFN2-xTB energy (eV) and forces (N, 3) (eV/Å) of ``atoms``."""
    check_atoms(atoms)
    return GFN2Gradient(atoms.numbers, atoms.positions, charge=charge, uhf=uhf)(atoms.positions)


def xtb_finite_difference(
    atoms, *, step: float = DEFAULT_STEP_A, charge: float = 0.0, uhf: int = 0
):
    """Build the GFN2-xTB Hessian provider of ``atoms`` by central differences.

    Args:
        atoms: The molecule, an ``ase.Atoms`` without a periodic cell.
        step: Central-difference step h (Å).
        charge: Total charge in elementary charges.
        uhf: Number of unpaired electrons (0 for a closed-shell molecule).

    Returns:
        A :class:`hessframe.curvature.finite_difference.FiniteDifferenceHessian`
        over the 3N Cartesian coordinates (Å, atom-major: x0, y0, z0, x1, ...),
        whose ``to_dense()`` is the symmetrised (3N, 3N) Hessian in eV/Å²
        (6N gradient calls).

    Raises:
        InvalidArgumentError: ``atoms`` fails :func:`check_atoms`, or ``step``
            is not a finite positive number.
    """
    from hessframe.curvature.finite_difference import FiniteDifferenceHessian

    check_atoms(atoms)
    if (
        isinstance(step, bool)
        or not isinstance(step, int | float)
        or not np.isfinite(step)
        or step <= 0
    ):
        raise InvalidArgumentError(f"step must be a finite positive number of Å, got {step!r}")
    gradient = GFN2Gradient(atoms.numbers, atoms.positions, charge=charge, uhf=uhf)
    return FiniteDifferenceHessian(
        gradient.gradient,
        np.asarray(atoms.positions, dtype=np.float64).reshape(-1),
        step=float(step),
    )


def xtb_hessian(
    atoms, *, step: float = DEFAULT_STEP_A, charge: float = 0.0, uhf: int = 0
) -> np.ndarray:
    """Return the symmetrised GFN2-xTB Hessian (3N, 3N) of ``atoms`` in eV/Å²."""
    provider = xtb_finite_difference(atoms, step=step, charge=charge, uhf=uhf)
    return provider.to_dense(max_size=max(provider.size, 1)).numpy()


def relax(
    atoms, *, fmax_ev_per_a: float = 0.005, steps: int = 500, charge: float = 0.0, uhf: int = 0
):
    """Relax ``atoms`` with GFN2-xTB and ASE's BFGS; return the relaxed copy.

    Args:
        atoms: Starting geometry, an ``ase.Atoms``.
        fmax_ev_per_a: Convergence threshold on the largest atomic force (eV/Å).
        steps: Maximum number of BFGS steps.
        charge: Total charge in elementary charges.
        uhf: Number of unpaired electrons.

    Returns:
        A copy of ``atoms`` at the relaxed positions, with ``info["fmax"]``
        the largest remaining force (eV/Å) and ``info["converged"]`` set.
    """
    from ase.optimize import BFGS

    check_atoms(atoms)
    relaxed = atoms.copy()
    relaxed.calc = XTBCalculator(charge=charge, uhf=uhf)
    optimizer = BFGS(relaxed, logfile=None)
    converged = bool(optimizer.run(fmax=fmax_ev_per_a, steps=steps))
    forces = relaxed.get_forces()
    relaxed.calc = None
    relaxed.info["fmax"] = float(np.linalg.norm(forces, axis=1).max())
    relaxed.info["converged"] = converged
    return relaxed


class XTBCalculator(Calculator):
    """ASE calculator for GFN2-xTB energies (eV) and forces (eV/Å) through tblite.

    Args:
        charge: Total charge in elementary charges.
        uhf: Number of unpaired electrons.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "forces"]

    def __init__(self, *, charge: float = 0.0, uhf: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self._charge = charge
        self._uhf = uhf
        self._gradient: GFN2Gradient | None = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self._gradient is None or "numbers" in system_changes:
            self._gradient = GFN2Gradient(
                self.atoms.numbers, self.atoms.positions, charge=self._charge, uhf=self._uhf
            )
        energy, forces = self._gradient(self.atoms.positions)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


def limit_threads() -> None:
    """Make tblite's OpenMP and the BLAS it calls use one thread (for worker processes)."""
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
