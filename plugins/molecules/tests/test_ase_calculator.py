"""The ASE calculators: the network's, and any calculator paired with a Hessian source."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.calculators.fd import calculate_numerical_forces
from hessframe_molecules.ase_tools.calculators import (
    DomainWarning,
    HessianCalculator,
    ModelCalculator,
    domain_problems,
)
from hessframe_molecules.ase_tools.hessians import calculator_finite_difference, resolve_hessian
from hessframe_molecules.paths import WEIGHTS_PATH
from tblite.ase import TBLite

from hessframe.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def untrained_network():
    """A network with seeded random weights: its forces must still be −∂E/∂x exactly."""
    from hessframe_molecules.model import HessianNet, HessianNetConfig

    torch.manual_seed(0)
    return HessianNet(HessianNetConfig()).double().eval()


needs_weights = pytest.mark.skipif(
    not WEIGHTS_PATH.is_file(), reason=f"the network's shipped weights {WEIGHTS_PATH} are missing"
)


def _displaced(name: str, seed: int = 0):
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def test_model_calculator_forces_match_ase_numerical_forces(untrained_network):
    atoms = _displaced("CH3OH")
    atoms.calc = ModelCalculator(untrained_network)
    forces = atoms.get_forces()
    numerical = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces - numerical).max() < 1e-5 * max(1.0, np.abs(forces).max())


@needs_weights
def test_shipped_model_forces_match_ase_numerical_forces():
    from hessframe_molecules.model import build_model, load_pretrained

    # In float32 the energy (about 300 eV) is resolved to ~3e-5 eV, too coarse for a
    # difference quotient, so the check runs on a float64 copy of the shipped network.
    network = build_model(load_pretrained().checkpoint()).double()
    atoms = _displaced("CH3OH")
    atoms.calc = ModelCalculator(network)
    forces = atoms.get_forces()
    numerical = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces - numerical).max() < 1e-5 * max(1.0, np.abs(forces).max())


def test_model_calculator_hessian_is_the_network_prediction(untrained_network):
    atoms = _displaced("H2O")
    calculator = ModelCalculator(untrained_network)
    atoms.calc = calculator
    hessian = calculator.get_hessian(atoms)
    expected = untrained_network.predict(atoms)["hessian"]
    assert hessian.shape == (9, 9)
    assert np.allclose(hessian, expected, atol=1e-10)
    assert np.allclose(hessian, hessian.T, atol=1e-10)
    assert calculator.num_force_calls == 1


def test_model_calculator_rejects_unsupported_element(untrained_network):
    atoms = molecule("SiH4")
    atoms.calc = ModelCalculator(untrained_network)
    with pytest.raises(InvalidArgumentError, match=r"\['Si'\].*supported elements"):
        atoms.get_potential_energy()


def test_model_calculator_warns_on_compressed_bond(untrained_network):
    atoms = molecule("H2O")
    atoms.positions[1] = atoms.positions[0] + [0.0, 0.0, 0.3]
    atoms.calc = ModelCalculator(untrained_network)
    with pytest.warns(DomainWarning, match=r"atoms 0 \(O\) and 1 \(H\) are 0.30 Å apart"):
        atoms.get_potential_energy()


def test_domain_problems_name_isolated_atom():
    atoms = molecule("H2O")
    atoms.positions[2] += [0.0, 0.0, 5.0]
    problems = domain_problems(atoms)
    assert len(problems) == 1
    assert "atoms [2] have no bonded neighbour" in problems[0]
    assert domain_problems(molecule("H2O")) == []


def test_xtb_wrapper_forces_match_ase_numerical_forces():
    atoms = _displaced("HCN")
    atoms.calc = HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0))
    forces = atoms.get_forces()
    numerical = calculate_numerical_forces(atoms, eps=1e-3)
    # The self-consistent charges converge to about 1e-6 eV, which limits the difference quotient.
    assert np.abs(forces - numerical).max() < 1e-3


def test_xtb_wrapper_hessian_matches_force_differences():
    atoms = _displaced("H2O")
    xtb = TBLite(method="GFN2-xTB", verbosity=0)
    wrapper = HessianCalculator(xtb, "xtb-finite-difference")
    atoms.calc = wrapper
    hessian = wrapper.get_hessian(atoms)
    reference = calculator_finite_difference(atoms, xtb).to_dense().numpy()
    assert np.abs(hessian - reference).max() < 1e-3
    assert np.array_equal(hessian, hessian.T)
    wrapper.get_hessian(atoms)
    assert wrapper.hessian_source.num_calls == 1  # cached for the same positions


def test_wrapper_without_source_names_the_fix():
    atoms = molecule("H2O")
    wrapper = HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0))
    with pytest.raises(InvalidArgumentError, match="no Hessian source; pass hessian="):
        wrapper.get_hessian(atoms)


def test_resolve_hessian_lists_registered_names():
    with pytest.raises(InvalidArgumentError, match=r"'nope' is not a registered.*xtb-fd"):
        resolve_hessian("nope")
    assert resolve_hessian("xtb-fd").name == "xtb-finite-difference"


def test_hessian_source_rejects_wrong_shape():
    source = resolve_hessian(lambda atoms: np.zeros((4, 4)))
    with pytest.raises(
        InvalidArgumentError, match=r"shape \(4, 4\) for 3 atoms; expected \(9, 9\)"
    ):
        source(molecule("H2O"))


def test_domain_problems_name_radical():
    problems = domain_problems(molecule("CH3"))
    assert len(problems) == 1
    assert "CH3 has an odd number of electrons" in problems[0]
    assert domain_problems(molecule("CH4")) == []
