"""Vibrational analysis from a provider's Hessian, against closed forms and ASE's own Vibrations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.vibrations import Vibrations
from conftest_ase import TorchPotential, harmonic_bonds
from hessframe_molecules.ase_tools.calculators import HessianCalculator
from hessframe_molecules.ase_tools.optimizer import HessianRFO
from hessframe_molecules.ase_tools.vibrations import analyze_vibrations, vibrations_from_hessian
from scipy import constants
from tblite.ase import TBLite

from hessframe.errors import InvalidArgumentError

FORCE_CONSTANT = 40.0  # eV/Å²


def _wavenumber_cm1(force_constant_ev_per_a2: float, reduced_mass_amu: float) -> float:
    """Return ω/(2πc) in cm⁻¹ for ω = √(k/μ), from CODATA constants (independent of ASE)."""
    k = force_constant_ev_per_a2 * constants.electron_volt / constants.angstrom**2
    mu = reduced_mass_amu * constants.atomic_mass
    return math.sqrt(k / mu) / (2 * math.pi * constants.c * 100)


def _spring_molecule(symbols: str, positions, bonds) -> tuple[Atoms, TorchPotential]:
    atoms = Atoms(symbols, positions=positions)
    calculator = TorchPotential(harmonic_bonds(bonds, FORCE_CONSTANT, 1.2))
    atoms.calc = calculator
    return atoms, calculator


def test_diatomic_frequency_matches_closed_form():
    atoms, calculator = _spring_molecule("CO", [[0, 0, 0], [0, 0, 1.2]], [(0, 1)])
    analysis = analyze_vibrations(atoms, calculator.hessian_factory(), temperature_k=None)
    masses = atoms.get_masses()
    reduced_mass = masses[0] * masses[1] / masses.sum()
    expected = _wavenumber_cm1(FORCE_CONSTANT, reduced_mass)
    assert analysis.geometry == "linear"
    assert analysis.frequencies_cm1.shape == (1,)
    assert analysis.frequencies_cm1[0] == pytest.approx(expected, rel=1e-6)
    hbar_omega_ev = constants.h * constants.c * 100 * expected / constants.electron_volt
    assert analysis.zpe_ev == pytest.approx(0.5 * hbar_omega_ev, rel=1e-6)


def test_linear_triatomic_stretches_match_closed_form():
    positions = [[0, 0, -1.2], [0, 0, 0], [0, 0, 1.2]]
    atoms, calculator = _spring_molecule("OCO", positions, [(0, 1), (1, 2)])
    analysis = analyze_vibrations(atoms, calculator.hessian_factory(), temperature_k=None)
    m_oxygen, m_carbon = atoms.get_masses()[:2]
    symmetric = _wavenumber_cm1(FORCE_CONSTANT, m_oxygen)
    # ω² = k (1/m_O + 2/m_C) for the antisymmetric stretch.
    antisymmetric = _wavenumber_cm1(FORCE_CONSTANT, 1 / (1 / m_oxygen + 2 / m_carbon))
    # 3N − 5 = 4 modes: two bends without restoring force (zero), then the two stretches.
    assert analysis.frequencies_cm1.shape == (4,)
    assert np.allclose(analysis.frequencies_cm1[:2], 0.0, atol=1e-3)
    assert analysis.frequencies_cm1[2] == pytest.approx(symmetric, rel=1e-6)
    assert analysis.frequencies_cm1[3] == pytest.approx(antisymmetric, rel=1e-6)


def test_projection_zeroes_rigid_motions_of_nonlinear_molecule():
    atoms = molecule("H2O")
    rng = np.random.default_rng(0)
    random = rng.normal(size=(9, 9))
    vibrations = vibrations_from_hessian(atoms, random @ random.T)
    frequencies = np.abs(vibrations.get_frequencies())
    assert np.sum(frequencies < 1e-3) == 6


def test_xtb_frequencies_match_ase_vibrations(tmp_path):
    atoms = molecule("H2O")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    HessianRFO(atoms, "xtb-fd", logfile=None).run(fmax=1e-3, steps=50)
    analysis = analyze_vibrations(atoms, "xtb-fd", temperature_k=None)

    reference = Vibrations(atoms, delta=0.005, name=str(tmp_path / "vib"))
    reference.run()
    expected = np.sort(np.real(reference.get_frequencies()))[-3:]
    reference.clean()
    assert np.allclose(analysis.frequencies_cm1, expected, atol=3.0)
    assert analysis.num_imaginary == 0


def test_thermochemistry_obeys_gibbs_relation():
    atoms = molecule("H2O")
    calculator = HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0), "xtb-fd")
    atoms.calc = calculator
    HessianRFO(atoms, calculator.hessian_source, logfile=None).run(fmax=1e-3, steps=50)
    energy = atoms.get_potential_energy()
    analysis = analyze_vibrations(
        atoms, calculator.hessian_source, potential_energy_ev=energy, symmetry_number=2
    )
    thermo = analysis.thermochemistry
    assert thermo is not None
    assert thermo.gibbs_energy_ev == pytest.approx(
        thermo.enthalpy_ev - 298.15 * thermo.entropy_ev_per_k, abs=1e-9
    )
    # H − E − ZPE at 298.15 K: 3kT/2 translation, 3kT/2 rotation, kT for pV, plus a small
    # vibrational excitation (water's lowest mode, ~1500 cm⁻¹, is barely populated).
    kt = constants.k * 298.15 / constants.electron_volt
    thermal = thermo.enthalpy_ev - energy - analysis.zpe_ev
    assert 4 * kt < thermal < 4 * kt + 1e-3


def test_thermochemistry_skipped_with_imaginary_frequency():
    atoms = Atoms("HCN", positions=[[0.6, 1.1, 0.0], [0, 0, 0], [1.18, 0, 0]])
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    analysis = analyze_vibrations(atoms, "xtb-fd")
    assert analysis.thermochemistry is None
    assert analysis.frequencies_cm1[0] < 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature_k": -1.0}, "temperature_k must be positive"),
        ({"pressure_pa": 0.0}, "pressure_pa must be positive"),
        ({"symmetry_number": 0}, "symmetry_number must be a positive integer"),
    ],
)
def test_analyze_vibrations_rejects_bad_arguments(kwargs, message):
    atoms = molecule("H2O")
    with pytest.raises(InvalidArgumentError, match=message):
        analyze_vibrations(atoms, np.eye(9), **kwargs)


def test_vibrations_from_hessian_rejects_wrong_shape():
    with pytest.raises(InvalidArgumentError, match=r"finite \(9, 9\) matrix for 3 atoms"):
        vibrations_from_hessian(molecule("H2O"), np.eye(6))


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("potential_energy_ev", math.nan, "potential_energy_ev must be a finite energy"),
        ("spin", -1.0, "spin must be a total electronic spin of 0 or more"),
        ("spin", math.nan, "spin must be a total electronic spin of 0 or more"),
    ],
)
def test_non_finite_energy_or_bad_spin_is_rejected(keyword, value, message):
    # Before the check these gave NaN enthalpy, entropy and Gibbs energy without a word.
    with pytest.raises(InvalidArgumentError, match=message):
        analyze_vibrations(molecule("H2O"), 10.0 * np.eye(9), **{keyword: value})
