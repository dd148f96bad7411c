"""HessianRFO: same minima as ASE's BFGS, fewer force calls from a good Hessian, its step rules."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.optimize import BFGS
from conftest_ase import TorchPotential, harmonic_bonds
from hessframe_molecules.ase_tools.calculators import HessianCalculator
from hessframe_molecules.ase_tools.optimizer import HessianRFO, bfgs_update, rfo_step
from hessframe_molecules.paths import WEIGHTS_PATH
from tblite.ase import TBLite

from hessframe.errors import InvalidArgumentError


def _perturbed(name: str, seed: int) -> Atoms:
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=atoms.positions.shape)
    return atoms


def _relax(atoms: Atoms, make_optimizer) -> tuple[float, int, bool]:
    atoms = atoms.copy()
    calculator = HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0))
    atoms.calc = calculator
    converged = make_optimizer(atoms).run(fmax=0.01, steps=200)
    return float(atoms.get_potential_energy()), calculator.num_force_calls, bool(converged)


@pytest.mark.parametrize("name", ["H2O", "NH3", "CH3OH"])
def test_rfo_matches_bfgs_with_fewer_calls(name):
    start = _perturbed(name, seed=1)
    bfgs_energy, bfgs_calls, bfgs_converged = _relax(start, lambda a: BFGS(a, logfile=None))
    rfo_energy, rfo_calls, rfo_converged = _relax(
        start, lambda a: HessianRFO(a, "xtb-finite-difference", logfile=None)
    )
    assert bfgs_converged
    assert rfo_converged
    assert abs(rfo_energy - bfgs_energy) < 1e-4
    assert rfo_calls < bfgs_calls


@pytest.mark.skipif(
    not WEIGHTS_PATH.is_file(), reason=f"the network's shipped weights {WEIGHTS_PATH} are missing"
)
@pytest.mark.parametrize("name", ["H2O", "CH3OH"])
def test_rfo_predicted_hessian_matches_bfgs(name):
    start = _perturbed(name, seed=5)
    bfgs_energy, _, _ = _relax(start, lambda a: BFGS(a, logfile=None))
    rfo_energy, _, converged = _relax(start, lambda a: HessianRFO(a, "predicted", logfile=None))
    assert converged
    assert abs(rfo_energy - bfgs_energy) < 1e-4


def test_rfo_without_hessian_reaches_bfgs_minimum():
    start = _perturbed("H2CO", seed=2)
    bfgs_energy, _, _ = _relax(start, lambda a: BFGS(a, logfile=None))
    rfo_energy, _, converged = _relax(start, lambda a: HessianRFO(a, None, logfile=None))
    assert converged
    assert abs(rfo_energy - bfgs_energy) < 1e-4


def test_rfo_exact_hessian_harmonic_one_step():
    # A bent triatomic with harmonic bonds; near the minimum the quadratic model is almost exact.
    calculator = TorchPotential(harmonic_bonds([(0, 1), (1, 2), (0, 2)], 30.0, 1.0))
    positions = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, np.sqrt(3) / 2, 0.0]])
    displacement = np.array([[0.01, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, -0.01, 0.0]])
    atoms = Atoms("HHH", positions=positions + displacement)
    atoms.calc = calculator
    optimizer = HessianRFO(atoms, calculator.hessian_factory(), logfile=None)
    assert optimizer.run(fmax=1e-4, steps=5)
    assert optimizer.nsteps <= 2
    distances = atoms.get_all_distances()[np.triu_indices(3, 1)]
    assert np.allclose(distances, 1.0, atol=1e-5)


def test_refresh_every_counts_hessian_calls():
    atoms = _perturbed("CH3OH", seed=3)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    optimizer = HessianRFO(atoms, "xtb-fd", refresh_every=2, logfile=None)
    optimizer.run(fmax=1e-4, steps=5)
    assert optimizer.nsteps == 5
    # Hessians at steps 0, 2 and 4.
    assert optimizer.num_hessian_calls == 3


def test_rfo_restart_resumes_hessian_and_trust(tmp_path):
    restart = tmp_path / "rfo.json"
    atoms = _perturbed("CH3OH", seed=6)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    first = HessianRFO(atoms, "xtb-fd", restart=str(restart), logfile=None)
    first.run(fmax=1e-4, steps=2)

    resumed = HessianRFO(atoms, "xtb-fd", restart=str(restart), logfile=None)
    assert np.allclose(resumed.hessian, first.hessian)
    assert resumed.trust == first.trust
    assert resumed.run(fmax=0.01, steps=100)
    assert resumed.num_hessian_calls == 0  # the saved Hessian is used, not a new one


def test_rfo_reports_no_convergence_within_steps():
    atoms = _perturbed("CH3OH", seed=4)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    optimizer = HessianRFO(atoms, None, logfile=None)
    assert not optimizer.run(fmax=1e-4, steps=1)
    assert optimizer.nsteps == 1


def test_rfo_step_indefinite_hessian_shifted():
    hessian = np.diag([-1.0, 2.0, 5.0])
    gradient = np.array([0.3, -0.2, 0.1])
    step = rfo_step(hessian, gradient)
    # The RFO shift λ solves λ = gᵀ s(λ) with s(λ) = −(H − λI)⁻¹ g, and lies below every eigenvalue.
    shift = float(gradient @ step)
    assert shift < -1.0
    assert np.allclose(step, -np.linalg.solve(hessian - shift * np.eye(3), gradient))
    assert gradient @ step < 0


def test_bfgs_update_satisfies_secant_condition():
    rng = np.random.default_rng(0)
    hessian = np.eye(4) * 2.0
    step = rng.normal(size=4)
    gradient_change = np.diag([1.0, 3.0, 4.0, 6.0]) @ step
    updated = bfgs_update(hessian, step, gradient_change)
    assert np.allclose(updated @ step, gradient_change)
    assert np.allclose(updated, updated.T)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"refresh_every": 0}, "refresh_every must be a positive number of steps"),
        ({"maxstep": -0.1}, "maxstep must be a finite positive number"),
        ({"alpha": float("nan")}, "alpha must be a finite positive number"),
        ({"hessian": "no-such-provider"}, "not a registered curvature provider"),
    ],
)
def test_rfo_rejects_invalid_arguments(kwargs, message):
    atoms = molecule("H2O")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    with pytest.raises(InvalidArgumentError, match=message):
        HessianRFO(atoms, logfile=None, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmax": float("nan")}, "fmax must be a finite positive number"),
        ({"fmax": 0.0}, "fmax must be a finite positive number"),
        ({"fmax": 0.05, "steps": 0}, "steps must be a positive integer"),
        ({"fmax": 0.05, "steps": 2.5}, "steps must be a positive integer"),
    ],
)
def test_rfo_run_rejects_invalid_limits(kwargs, message):
    atoms = molecule("H2O")
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    optimizer = HessianRFO(atoms, logfile=None)
    with pytest.raises(InvalidArgumentError, match=message):
        optimizer.run(**kwargs)
    assert optimizer.nsteps == 0
