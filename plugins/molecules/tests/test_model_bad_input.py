"""Bad molecules are rejected by the network and the providers with an error naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from conftest import tiny_network
from hessframe_molecules.model import SUPPORTED_ELEMENTS, check_molecule
from hessframe_molecules.xtb import xtb_finite_difference

from hessframe.errors import InvalidArgumentError


def _water_with(positions) -> Atoms:
    return Atoms("H2O", positions=positions)


BAD_MOLECULES = {
    "unsupported element": (
        Atoms("CS", positions=[[0, 0, 0], [1.6, 0, 0]]),
        r"element\(s\) \['S'\].*supported elements are \['H', 'C', 'N', 'O'\]",
    ),
    "atoms too close": (
        _water_with([[0, 0, 0], [0.05, 0, 0], [1, 0, 0]]),
        r"atoms 0 and 1 only 0.05 Å apart.*at least 0.1 Å",
    ),
    "nan position": (
        _water_with([[0, 0, 0], [np.nan, 0, 0], [1, 0, 0]]),
        r"NaN or infinite positions at atom indices \[1\]",
    ),
    "infinite position": (
        _water_with([[0, 0, 0], [0.9, 0, 0], [np.inf, 0, 0]]),
        r"NaN or infinite positions at atom indices \[2\]",
    ),
    "periodic cell": (
        Atoms("H2O", positions=[[0, 0, 0], [0.9, 0, 0], [0, 0.9, 0]], cell=[5, 5, 5], pbc=True),
        r"periodic cell",
    ),
    "empty": (Atoms(), r"is empty"),
}


@pytest.mark.parametrize("case", list(BAD_MOLECULES))
def test_network_rejects_bad_molecule(case: str) -> None:
    atoms, message = BAD_MOLECULES[case]
    network = tiny_network()
    with pytest.raises(InvalidArgumentError, match=message):
        network.predict(atoms)
    with pytest.raises(InvalidArgumentError, match=message):
        network.predicted_provider(atoms)
    with pytest.raises(InvalidArgumentError, match=message):
        network.autodiff_provider(atoms)


@pytest.mark.parametrize("case", [case for case in BAD_MOLECULES if case != "unsupported element"])
def test_xtb_provider_rejects_bad_molecule(case: str) -> None:
    atoms, message = BAD_MOLECULES[case]
    with pytest.raises(InvalidArgumentError, match=message):
        xtb_finite_difference(atoms)


def test_check_molecule_accepts_supported_molecule() -> None:
    atoms = molecule("CH3CH2OH")
    assert check_molecule(atoms) is atoms
    assert set(atoms.get_chemical_symbols()) <= set(SUPPORTED_ELEMENTS)


def test_non_atoms_argument_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"atoms must be an ase\.Atoms, got ndarray"):
        check_molecule(np.zeros((3, 3)))


@pytest.mark.parametrize("step", [0.0, -0.01, float("nan"), "0.01"])
def test_xtb_provider_rejects_invalid_step(step) -> None:
    with pytest.raises(InvalidArgumentError, match="step must be a finite positive number"):
        xtb_finite_difference(molecule("H2O"), step=step)
