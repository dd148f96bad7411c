"""Sella transition-state search fed by a Hessian source, checked by frequencies and IRC."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from conftest_ase import (
    MB_MINIMUM_A,
    MB_MINIMUM_B,
    MB_MINIMUM_C,
    MB_SADDLE_LOWER,
    MB_SADDLE_UPPER,
    TorchPotential,
    exact_hessian,
    muller_brown,
)
from hessframe_molecules.ase_tools.calculators import HessianCalculator
from hessframe_molecules.ase_tools.geometry import bond_signature
from hessframe_molecules.ase_tools.transition_state import (
    SaddleSearchError,
    find_transition_state,
    follow_irc,
)
from hessframe_molecules.ase_tools.vibrations import analyze_vibrations
from tblite.ase import TBLite

from hessframe.errors import InvalidArgumentError

# One atom moves on the Müller-Brown surface; there are no rigid motions to project out.
_ONE_ATOM = {"internal": False, "proj_trans": False, "proj_rot": False}


@pytest.mark.parametrize(
    ("start", "saddle", "minima"),
    [
        ((0.3, 0.2, 0.05), MB_SADDLE_LOWER, (MB_MINIMUM_B, MB_MINIMUM_C)),
        ((-0.7, 0.7, 0.0), MB_SADDLE_UPPER, (MB_MINIMUM_A, MB_MINIMUM_C)),
    ],
)
def test_sella_with_exact_hessian_finds_muller_brown_saddle(start, saddle, minima):
    calculator = TorchPotential(muller_brown)
    atoms = Atoms("H", positions=[start])
    atoms.calc = calculator
    search = find_transition_state(atoms, calculator.hessian_factory(), fmax=1e-4, **_ONE_ATOM)
    assert search.converged
    assert np.allclose(atoms.positions[0, :2], saddle, atol=2e-5)
    assert abs(atoms.positions[0, 2]) < 1e-6

    eigenvalues = np.linalg.eigvalsh(exact_hessian(muller_brown, atoms.positions))
    assert eigenvalues[0] < 0 < eigenvalues[1]

    path = follow_irc(atoms, calculator.hessian_factory(), fmax=1e-3)
    assert path.converged
    ends = sorted([tuple(path.forward.positions[0, :2]), tuple(path.reverse.positions[0, :2])])
    assert np.allclose(ends, sorted(minima), atol=1e-3)


def test_sella_with_xtb_hessian_finds_hcn_isomerization_saddle():
    guess = Atoms("CNH", positions=[[0.0, 0.0, 0.0], [1.18, 0.0, 0.0], [0.5, 1.1, 0.0]])
    calculator = HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0), "xtb-fd")
    guess.calc = calculator
    search = find_transition_state(guess, calculator.hessian_source, fmax=0.01)
    assert search.converged
    assert search.hessian_calls >= 1

    analysis = analyze_vibrations(guess, calculator.hessian_source, temperature_k=None)
    assert analysis.num_imaginary == 1
    assert analysis.frequencies_cm1[0] < -1000

    path = follow_irc(guess, calculator.hessian_source)
    assert path.converged
    ends = {bond_signature(path.forward), bond_signature(path.reverse)}
    assert ends == {(("C-H", 1), ("C-N", 1)), (("C-N", 1), ("H-N", 1))}
    assert max(path.forward_energy_ev, path.reverse_energy_ev) < search.energy_ev


def test_find_transition_state_needs_a_calculator():
    with pytest.raises(InvalidArgumentError, match="atoms has no calculator"):
        find_transition_state(Atoms("H", positions=[[0, 0, 0]]))


def test_find_transition_state_rejects_bad_fmax():
    atoms = Atoms("H", positions=[[0, 0, 0]])
    atoms.calc = TorchPotential(muller_brown)
    with pytest.raises(InvalidArgumentError, match="fmax must be a finite positive force"):
        find_transition_state(atoms, fmax=0.0)


def test_sella_runtime_error_becomes_a_saddle_search_error(monkeypatch):
    # Sella raises this from a guess far from a saddle (CH4 at its minimum, internal
    # coordinates, takes 20 s to get there); the run is cut short here.
    import sella

    def failing_run(self, fmax, steps):
        raise RuntimeError("Geometry update ODE is taking too long to converge!")

    monkeypatch.setattr(sella.Sella, "run", failing_run)
    atoms = Atoms("CNH", positions=[[0.0, 0.0, 0.0], [1.18, 0.0, 0.0], [0.5, 1.1, 0.0]])
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    with pytest.raises(SaddleSearchError, match=r"Geometry update ODE.*--cartesian"):
        find_transition_state(atoms, None)
