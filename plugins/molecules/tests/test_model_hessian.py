"""The network's Hessians: symmetry, equivariance, sum rule, autodiff against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from conftest import tiny_network
from scipy.spatial.transform import Rotation

import hessframe
from hessframe.plugins import get_plugin_manager


def _rotated(atoms: Atoms, rotation: np.ndarray, shift: np.ndarray) -> Atoms:
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T + shift
    return moved


@pytest.mark.parametrize("sum_rule", [False, True])
def test_predicted_hessian_is_exactly_symmetric(sum_rule: bool) -> None:
    hessian = tiny_network(sum_rule).predict(molecule("CH3CH2OH"))["hessian"]
    assert np.array_equal(hessian, hessian.T)


@pytest.mark.parametrize("sum_rule", [False, True])
def test_predicted_hessian_rotates_as_rank_two_tensor(sum_rule: bool) -> None:
    network = tiny_network(sum_rule)
    atoms = molecule("CH3CH2OH")
    rotation = Rotation.random(random_state=3).as_matrix()
    blocks = np.kron(np.eye(len(atoms)), rotation)

    original = network.predict(atoms)
    moved = network.predict(_rotated(atoms, rotation, np.array([0.7, -1.2, 2.5])))

    scale = np.abs(original["hessian"]).max()
    assert scale > 1e-3
    np.testing.assert_allclose(
        moved["hessian"], blocks @ original["hessian"] @ blocks.T, atol=1e-6 * scale
    )
    np.testing.assert_allclose(moved["forces"], original["forces"] @ rotation.T, atol=1e-8)
    assert moved["energy"] == pytest.approx(original["energy"], abs=1e-9)


def test_predicted_hessian_is_unchanged_by_translation() -> None:
    network = tiny_network()
    atoms = molecule("C6H6")
    moved = _rotated(atoms, np.eye(3), np.array([3.0, -2.0, 11.0]))
    np.testing.assert_allclose(
        network.predict(moved)["hessian"], network.predict(atoms)["hessian"], atol=1e-9
    )


def test_sum_rule_makes_block_rows_sum_to_zero() -> None:
    hessian = tiny_network(sum_rule=True).predict(molecule("CH3CH2OH"))["hessian"]
    n = hessian.shape[0] // 3
    row_sums = hessian.reshape(n, 3, n, 3).sum(axis=2)
    assert np.abs(hessian).max() > 1e-3
    assert np.abs(row_sums).max() < 1e-12


def test_without_sum_rule_block_rows_do_not_sum_to_zero() -> None:
    hessian = tiny_network(sum_rule=False).predict(molecule("CH3CH2OH"))["hessian"]
    n = hessian.shape[0] // 3
    assert np.abs(hessian.reshape(n, 3, n, 3).sum(axis=2)).max() > 1e-3


def test_autodiff_hessian_matches_finite_differences_of_forces() -> None:
    network = tiny_network()
    atoms = molecule("CH3OH")
    hessian = network.autodiff_provider(atoms).to_dense().numpy()

    step = 1e-5
    columns = []
    for k in range(3 * len(atoms)):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions.flat[k] += step
        minus.positions.flat[k] -= step
        difference = network.predict(plus)["forces"] - network.predict(minus)["forces"]
        columns.append(-difference.reshape(-1) / (2 * step))
    finite_difference = np.stack(columns, axis=1)

    assert np.abs(hessian).max() > 1e-2
    np.testing.assert_allclose(hessian, finite_difference, atol=1e-6 * np.abs(hessian).max())


def test_predicted_provider_products_match_dense_hessian() -> None:
    network = tiny_network()
    atoms = molecule("CH3CH2OH")
    provider = network.predicted_provider(atoms)
    dense = network.predict(atoms)["hessian"]
    vector = np.random.default_rng(0).normal(size=dense.shape[0])
    product = provider.matvec(torch.as_tensor(vector)).numpy()
    np.testing.assert_allclose(product, dense @ vector, atol=1e-10)
    np.testing.assert_allclose(provider.to_dense().numpy(), dense, atol=1e-12)


@pytest.mark.parametrize("name", ["molecules-predicted", "molecules-autodiff"])
def test_registered_model_providers_return_dense_hessian(name: str) -> None:
    network = tiny_network()
    atoms = molecule("H2O")
    provider = get_plugin_manager().create_provider(name, atoms, model=network)
    assert isinstance(provider, hessframe.CurvatureProvider)
    dense = provider.to_dense().numpy()
    assert dense.shape == (9, 9)
    np.testing.assert_allclose(dense, dense.T, atol=1e-10)


@pytest.mark.parametrize("kind", ["predicted", "autodiff"])
def test_single_atom_has_zero_hessian(kind: str) -> None:
    network = tiny_network()
    atoms = Atoms("C", positions=[[0.3, 0.1, -0.2]])
    if kind == "predicted":
        provider = network.predicted_provider(atoms)
    else:
        provider = network.autodiff_provider(atoms)
    assert np.array_equal(provider.to_dense().numpy(), np.zeros((3, 3)))
    prediction = network.predict(atoms)
    assert np.array_equal(prediction["hessian"], np.zeros((3, 3)))
    assert np.array_equal(prediction["forces"], np.zeros((1, 3)))
