"""Harmonic vibrational analysis and ideal-gas thermochemistry from any provider's Hessian.

ASE's :class:`ase.vibrations.Vibrations` builds the Hessian itself by
displacing atoms, which costs 6N force calls. Here the Hessian comes from any
:class:`~hessframe_molecules.ase_tools.hessians.HessianSource`: the network's
predicted Hessian, its autodiff Hessian, or GFN2-xTB finite differences. It is
handed to :class:`ase.vibrations.VibrationsData`, which turns it into
frequencies, normal modes and the zero-point energy, and the vibrational
energies go to :class:`ase.thermochemistry.IdealGasThermo`.

Before that, translations and rotations are projected out of the
mass-weighted Hessian (the Eckart conditions): P M^(-1/2) H M^(-1/2) P with
P = I − Σ r rᵀ over the orthonormal rigid-motion vectors r. Without the
projection, the six near-zero modes of a finite-difference or predicted
Hessian come out as spurious frequencies of tens of cm⁻¹, real or imaginary.
The projected modes get frequency zero exactly and are left out of
:attr:`VibrationalAnalysis.frequencies_cm1`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.ase_tools.geometry import molecule_geometry, rigid_motion_basis
from hessframe_molecules.ase_tools.hessians import HessianSource, resolve_hessian

logger = logging.getLogger(__name__)

#: Imaginary frequencies with a magnitude below this (cm⁻¹) are counted as numerical noise of
#: the Hessian, not as a negative-curvature mode.
IMAGINARY_THRESHOLD_CM1 = 20.0

DEFAULT_TEMPERATURE_K = 298.15
DEFAULT_PRESSURE_PA = 101325.0


@dataclass(frozen=True)
class Thermochemistry:
    """Ideal-gas, rigid-rotor, harmonic-oscillator thermochemistry at one temperature and pressure.

    Attributes:
        temperature_k: Temperature (K).
        pressure_pa: Pressure (Pa).
        enthalpy_ev: Enthalpy H, including the potential energy and the ZPE (eV).
        entropy_ev_per_k: Entropy S (eV/K).
        gibbs_energy_ev: Gibbs energy G = H − TS (eV).
        symmetry_number: Rotational symmetry number used for the entropy.
    """

    temperature_k: float
    pressure_pa: float
    enthalpy_ev: float
    entropy_ev_per_k: float
    gibbs_energy_ev: float
    symmetry_number: int


@dataclass(frozen=True)
class VibrationalAnalysis:
    """Harmonic frequencies, normal modes and zero-point energy of one structure.

    Attributes:
        vibrations: The :class:`ase.vibrations.VibrationsData` of the projected
            Hessian; all 3N modes, the rigid motions at frequency zero.
        frequencies_cm1: The 3N − 6 (3N − 5 if linear) vibrational frequencies
            in cm⁻¹, ascending; imaginary ones are negative numbers.
        modes: Normal-mode displacements (3N − 6, N, 3) matching
            ``frequencies_cm1``, as ASE returns them (mass-weighted and normalised).
        zpe_ev: Zero-point energy ½ Σ ħω over the real frequencies (eV).
        num_imaginary: Frequencies imaginary by more than ``IMAGINARY_THRESHOLD_CM1``.
        geometry: ``'monatomic'``, ``'linear'`` or ``'nonlinear'``.
        hessian_source: Name of the source of the Hessian.
        hessian_seconds: Wall time of the Hessian (s).
        thermochemistry: Thermochemistry, or None when it was not requested or
            the structure has imaginary frequencies.
    """

    vibrations: Any
    frequencies_cm1: np.ndarray
    modes: np.ndarray
    zpe_ev: float
    num_imaginary: int
    geometry: str
    hessian_source: str
    hessian_seconds: float
    thermochemistry: Thermochemistry | None = field(default=None)

    def summary(self) -> dict[str, Any]:
        """Return the numbers as a JSON-ready dict (frequencies in cm⁻¹, energies in eV)."""
        summary: dict[str, Any] = {
            "frequencies_cm1": [float(value) for value in self.frequencies_cm1],
            "zpe_ev": self.zpe_ev,
            "num_imaginary": self.num_imaginary,
            "geometry": self.geometry,
            "hessian_source": self.hessian_source,
            "hessian_seconds": self.hessian_seconds,
        }
        if self.thermochemistry is not None:
            summary["thermochemistry"] = self.thermochemistry.__dict__.copy()
        return summary


def project_rigid_motions(atoms: Any, hessian: np.ndarray) -> np.ndarray:
    """Return the Cartesian Hessian with translations and rotations projected out (Eckart).

    The projection P is applied to the mass-weighted Hessian, P M^(-1/2) H
    M^(-1/2) P, and the result is weighted back, so ``VibrationsData`` gives
    the rigid motions frequency zero and leaves the vibrations unchanged
    (exactly so at a stationary point).
    """
    masses = atoms.get_masses()
    sqrt_masses = np.repeat(np.sqrt(masses), 3)
    weighted = hessian / np.outer(sqrt_masses, sqrt_masses)
    rigid = rigid_motion_basis(atoms.get_positions(), masses)
    projector = np.eye(len(sqrt_masses)) - rigid @ rigid.T
    projected = projector @ weighted @ projector
    projected = 0.5 * (projected + projected.T)
    return projected * np.outer(sqrt_masses, sqrt_masses)


def vibrations_from_hessian(atoms: Any, hessian: np.ndarray, *, project: bool = True) -> Any:
    """Wrap a (3N, 3N) Hessian (eV/Å²) in :class:`ase.vibrations.VibrationsData`.

    Args:
        atoms: The structure, an ``ase.Atoms`` (its masses are used).
        hessian: The Cartesian Hessian, atom-major.
        project: Project translations and rotations out first.

    Raises:
        InvalidArgumentError: ``hessian`` is not a finite (3N, 3N) matrix.
    """
    from ase.vibrations import VibrationsData

    hessian = np.asarray(hessian, dtype=np.float64)
    size = 3 * len(atoms)
    if hessian.shape != (size, size) or not np.all(np.isfinite(hessian)):
        raise InvalidArgumentError(
            f"hessian must be a finite ({size}, {size}) matrix for {len(atoms)} atoms, "
            f"got shape {hessian.shape}"
        )
    if project:
        hessian = project_rigid_motions(atoms, hessian)
    atoms = atoms.copy()
    atoms.calc = None
    return VibrationsData.from_2d(atoms, hessian)


def analyze_vibrations(
    atoms: Any,
    hessian: str | HessianSource | Any,
    *,
    potential_energy_ev: float | None = None,
    temperature_k: float | None = DEFAULT_TEMPERATURE_K,
    pressure_pa: float = DEFAULT_PRESSURE_PA,
    symmetry_number: int = 1,
    spin: float = 0.0,
) -> VibrationalAnalysis:
    """Compute frequencies, modes, ZPE and (optionally) thermochemistry from a Hessian source.

    Args:
        atoms: The structure, normally a minimum of the energy surface.
        hessian: Provider name or alias, factory, :class:`HessianSource`, or a
            (3N, 3N) array already computed.
        potential_energy_ev: Electronic energy added to the enthalpy and
            Gibbs energy; 0 when None, so they are then corrections only.
        temperature_k: Temperature of the thermochemistry (K); None skips it.
        pressure_pa: Pressure of the thermochemistry (Pa).
        symmetry_number: Rotational symmetry number (1 for no symmetry, 2 for
            water, 3 for ammonia, 12 for methane); it changes only the entropy.
        spin: Total electronic spin (0 for a closed-shell molecule).

    Returns:
        The analysis; ``thermochemistry`` is None when ``temperature_k`` is
        None or some frequency is imaginary, because the harmonic partition
        function does not exist then.

    Raises:
        InvalidArgumentError: ``temperature_k`` or ``pressure_pa`` is not
            positive, ``potential_energy_ev`` is not finite, ``spin`` is
            negative or not finite, or ``symmetry_number`` is not a positive
            integer.
    """
    if temperature_k is not None and not (np.isfinite(temperature_k) and temperature_k > 0):
        raise InvalidArgumentError(f"temperature_k must be positive (K), got {temperature_k!r}")
    if not (np.isfinite(pressure_pa) and pressure_pa > 0):
        raise InvalidArgumentError(f"pressure_pa must be positive (Pa), got {pressure_pa!r}")
    if potential_energy_ev is not None and not np.isfinite(potential_energy_ev):
        raise InvalidArgumentError(
            f"potential_energy_ev must be a finite energy (eV) or None, got {potential_energy_ev!r}"
        )
    if not (np.isfinite(spin) and spin >= 0):
        raise InvalidArgumentError(
            f"spin must be a total electronic spin of 0 or more (0, 0.5, 1, ...), got {spin!r}"
        )
    if (
        isinstance(symmetry_number, bool)
        or not isinstance(symmetry_number, int)
        or symmetry_number < 1
    ):
        raise InvalidArgumentError(
            f"symmetry_number must be a positive integer, got {symmetry_number!r}"
        )

    start = time.perf_counter()
    if isinstance(hessian, np.ndarray):
        matrix, source_name = hessian, "array"
    else:
        source = resolve_hessian(hessian)
        matrix, source_name = source(atoms), source.name
    seconds = time.perf_counter() - start

    vibrations = vibrations_from_hessian(atoms, matrix)
    geometry = molecule_geometry(atoms)
    num_rigid = {"monatomic": 3, "linear": 5, "nonlinear": 6}[geometry]
    energies = vibrations.get_energies()
    order = np.argsort(np.abs(energies))
    kept = np.sort(order[num_rigid:])
    frequencies = _signed_cm1(vibrations.get_frequencies()[kept])
    ascending = np.argsort(frequencies)
    kept, frequencies = kept[ascending], frequencies[ascending]
    modes = vibrations.get_modes(all_atoms=True)[kept]

    real = frequencies > 0
    zpe_ev = float(0.5 * np.sum(np.real(energies[kept][real])))
    num_imaginary = int(np.sum(frequencies < -IMAGINARY_THRESHOLD_CM1))

    thermochemistry = None
    if temperature_k is not None and not np.any(frequencies < 0):
        thermochemistry = _ideal_gas(
            atoms,
            np.real(energies[kept]),
            geometry,
            potential_energy_ev or 0.0,
            float(temperature_k),
            float(pressure_pa),
            symmetry_number,
            spin,
        )
    elif temperature_k is not None:
        logger.warning(
            "no thermochemistry: %d imaginary frequencies (lowest %.1f cm⁻¹); relax the "
            "structure to a minimum first",
            int(np.sum(frequencies < 0)),
            float(frequencies[0]),
        )

    return VibrationalAnalysis(
        vibrations=vibrations,
        frequencies_cm1=frequencies,
        modes=modes,
        zpe_ev=zpe_ev,
        num_imaginary=num_imaginary,
        geometry=geometry,
        hessian_source=source_name,
        hessian_seconds=seconds,
        thermochemistry=thermochemistry,
    )


def _signed_cm1(frequencies: np.ndarray) -> np.ndarray:
    """Map ASE's complex frequencies to reals, imaginary ones as negative numbers."""
    frequencies = np.asarray(frequencies)
    return np.where(
        np.abs(frequencies.imag) > np.abs(frequencies.real), -frequencies.imag, frequencies.real
    )


def _ideal_gas(
    atoms: Any,
    vib_energies_ev: np.ndarray,
    geometry: str,
    potential_energy_ev: float,
    temperature_k: float,
    pressure_pa: float,
    symmetry_number: int,
    spin: float,
) -> Thermochemistry:
    from ase.thermochemistry import IdealGasThermo

    thermo = IdealGasThermo(
        vib_energies=list(vib_energies_ev),
        geometry=geometry,
        potentialenergy=potential_energy_ev,
        atoms=atoms,
        symmetrynumber=symmetry_number,
        spin=spin,
        vib_selection="exact",
    )
    enthalpy = float(thermo.get_enthalpy(temperature_k, verbose=False))
    entropy = float(thermo.get_entropy(temperature_k, pressure_pa, verbose=False))
    gibbs = float(thermo.get_gibbs_energy(temperature_k, pressure_pa, verbose=False))
    return Thermochemistry(
        temperature_k=temperature_k,
        pressure_pa=pressure_pa,
        enthalpy_ev=enthalpy,
        entropy_ev_per_k=entropy,
        gibbs_energy_ev=gibbs,
        symmetry_number=symmetry_number,
    )
