"""GFN2-xTB labels: units against tblite's ASE calculator, the Hessian against ASE's vibrations."""

from __future__ import annotations

import numpy as np
from ase.build import molecule
from ase.vibrations import Vibrations
from hessframe_molecules.xtb import XTBCalculator, relax, xtb_energy_forces, xtb_hessian
from tblite.ase import TBLite

from hessframe.plugins import get_plugin_manager


def test_energy_and_forces_match_tblite_ase_calculator() -> None:
    atoms = molecule("CH3OH")
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    energy, forces = xtb_energy_forces(atoms)

    peer = atoms.copy()
    peer.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert energy == np.float64(energy)
    np.testing.assert_allclose(energy, peer.get_potential_energy(), atol=1e-6)
    np.testing.assert_allclose(forces, peer.get_forces(), atol=1e-6)


def test_hessian_matches_ase_vibrations_finite_differences(tmp_path) -> None:
    atoms = relax(molecule("H2O"))
    hessian = xtb_hessian(atoms)

    peer = atoms.copy()
    peer.calc = XTBCalculator()
    vibrations = Vibrations(peer, delta=0.005, nfree=2, name=str(tmp_path / "vib"))
    vibrations.run()
    reference = vibrations.get_vibrations().get_hessian_2d()

    np.testing.assert_array_equal(hessian, hessian.T)
    # Both differentiate self-consistent gradients, whose convergence noise
    # (restarted from different wavefunctions) limits the agreement.
    scale = np.abs(reference).max()
    np.testing.assert_allclose(hessian, 0.5 * (reference + reference.T), atol=5e-4 * scale)
    # Translation invariance: every block row sums to zero up to the difference error.
    assert np.abs(hessian.reshape(3, 3, 3, 3).sum(axis=2)).max() < 5e-4 * scale


def test_registered_xtb_provider_returns_symmetric_hessian() -> None:
    atoms = molecule("NH3")
    provider = get_plugin_manager().create_provider("xtb-finite-difference", atoms)
    dense = provider.to_dense().numpy()
    assert dense.shape == (12, 12)
    np.testing.assert_array_equal(dense, dense.T)
    np.testing.assert_allclose(dense, xtb_hessian(atoms), atol=1e-8)


def test_relax_reaches_force_threshold() -> None:
    relaxed = relax(molecule("CH4"), fmax_ev_per_a=0.005)
    _, forces = xtb_energy_forces(relaxed)
    assert relaxed.info["converged"]
    assert np.linalg.norm(forces, axis=1).max() < 0.005
