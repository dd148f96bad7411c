"""The data-set build: shard round trip, splits by molecule, and resuming an interrupted build."""

from __future__ import annotations

import numpy as np
import pytest
from hessframe_molecules import build
from hessframe_molecules.build import (
    MoleculeSpec,
    build_dataset,
    pack_upper,
    read_shard,
    shard_name,
    split_of,
    unpack_upper,
    write_shard,
)
from hessframe_molecules.data import load_geometries, to_graph
from hessframe_molecules.xtb import xtb_energy_forces, xtb_hessian

from hessframe.errors import InvalidArgumentError

SPECS = [
    MoleculeSpec("g2:CH4", "g2", "train", num_atoms=5),
    MoleculeSpec("g2:H2O", "g2", "test", num_atoms=3),
]


def test_shard_round_trip_keeps_arrays(tmp_path) -> None:
    rng = np.random.default_rng(0)
    matrices = rng.normal(size=(2, 6, 6)).astype(np.float32)
    hessians = matrices + matrices.transpose(0, 2, 1)
    arrays = {
        "numbers": np.array([1, 8], dtype=np.int8),
        "positions": rng.normal(size=(2, 2, 3)),
        "energy": rng.normal(size=2),
        "forces": rng.normal(size=(2, 2, 3)).astype(np.float32),
        "hessian_upper": pack_upper(hessians),
        "meta": np.asarray('{"molecule_id": "test:OH"}'),
    }
    path = tmp_path / "0000-test-OH.npz"
    write_shard(path, arrays)

    shard = read_shard(path)
    assert shard["meta"] == {"molecule_id": "test:OH"}
    np.testing.assert_array_equal(shard["hessian"], hessians)
    for key in ("numbers", "positions", "energy", "forces"):
        np.testing.assert_array_equal(shard[key], arrays[key])
    assert list(tmp_path.iterdir()) == [path]


def test_unpack_upper_inverts_pack_upper() -> None:
    matrix = np.arange(16.0).reshape(1, 4, 4)
    symmetric = matrix + matrix.transpose(0, 2, 1)
    np.testing.assert_array_equal(unpack_upper(pack_upper(symmetric), 4), symmetric)


def test_failed_shard_write_leaves_no_file(tmp_path, monkeypatch) -> None:
    def fail(handle, **arrays):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", fail)
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "0000-x.npz", {"energy": np.zeros(1)})
    assert list(tmp_path.iterdir()) == []


def test_split_depends_only_on_molecule_id() -> None:
    assert split_of("smiles:benzene") == split_of("smiles:benzene")
    counts = {split: 0 for split in ("train", "validation", "test")}
    for index in range(1000):
        counts[split_of(f"x:{index}")] += 1
    assert counts["test"] == pytest.approx(100, abs=30)
    assert counts["validation"] == pytest.approx(100, abs=30)


def test_interrupted_build_resumes_without_relabelling(tmp_path, monkeypatch) -> None:
    original = build.label_molecule
    labelled = []

    def interrupt_second(spec, num_geometries, seed):
        if labelled:
            raise KeyboardInterrupt
        labelled.append(spec.molecule_id)
        return original(spec, num_geometries, seed)

    monkeypatch.setattr(build, "label_molecule", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(tmp_path, SPECS, num_geometries=2, workers=1)
    first = tmp_path / "shards" / shard_name(0, SPECS[0])
    assert sorted(path.name for path in (tmp_path / "shards").iterdir()) == [first.name]
    first_written = first.stat().st_mtime_ns
    (tmp_path / "shards" / ".0001-g2-H2O.npz.999.tmp").write_bytes(b"left by a killed worker")

    calls = []

    def count_calls(spec, num_geometries, seed):
        calls.append(spec.molecule_id)
        return original(spec, num_geometries, seed)

    monkeypatch.setattr(build, "label_molecule", count_calls)
    manifest = build_dataset(tmp_path, SPECS, num_geometries=2, workers=1)

    assert calls == ["g2:H2O"]
    assert first.stat().st_mtime_ns == first_written
    assert sorted(path.name for path in (tmp_path / "shards").iterdir()) == [
        shard_name(0, SPECS[0]),
        shard_name(1, SPECS[1]),
    ]
    assert manifest["counts"]["train"] == {"molecules": 1, "geometries": 2}
    assert manifest["counts"]["test"] == {"molecules": 1, "geometries": 2}


def test_resume_with_other_settings_is_refused(tmp_path) -> None:
    build_dataset(tmp_path, SPECS[1:], num_geometries=2, seed=0, workers=1)
    shard = tmp_path / "shards" / shard_name(0, SPECS[1])
    written = shard.stat().st_mtime_ns
    with pytest.raises(
        InvalidArgumentError, match=r"2 geometries per molecule, not 3 \(--geometries"
    ):
        build_dataset(tmp_path, SPECS[1:], num_geometries=3, seed=0, workers=1)
    with pytest.raises(InvalidArgumentError, match=r"seed 0, not 5 \(--seed\)"):
        build_dataset(tmp_path, SPECS[1:], num_geometries=2, seed=5, workers=1)
    assert shard.stat().st_mtime_ns == written
    assert build_dataset(tmp_path, SPECS[1:], num_geometries=2, seed=0, workers=1)["failures"] == {}


def test_built_shard_labels_match_gfn2_xtb(tmp_path) -> None:
    build_dataset(tmp_path, SPECS[1:], num_geometries=2, workers=1)
    geometries = load_geometries(tmp_path, "test")
    assert [geometry.is_minimum for geometry in geometries] == [True, False]
    from ase import Atoms

    for geometry in geometries:
        atoms = Atoms(numbers=geometry.numbers, positions=geometry.positions)
        energy, forces = xtb_energy_forces(atoms)
        assert geometry.energy == pytest.approx(energy, abs=1e-6)
        # Forces agree to the self-consistent convergence of the two runs.
        np.testing.assert_allclose(geometry.forces, forces, atol=1e-4)
        np.testing.assert_allclose(geometry.hessian, xtb_hessian(atoms), atol=1e-3)
    assert np.abs(geometries[0].forces).max() < 0.005
    displacement = geometries[1].positions - geometries[0].positions
    assert 0.02 < displacement.std() < 0.3


def test_graph_blocks_reassemble_the_hessian(tiny_dataset) -> None:
    geometry = load_geometries(tiny_dataset, "train")[0]
    graph = to_graph(geometry, cutoff_a=100.0)
    n = len(geometry.numbers)
    blocks = np.zeros((n, n, 3, 3))
    blocks[np.arange(n), np.arange(n)] = graph.hessian_diagonal.numpy()
    blocks[graph.edge_index[0].numpy(), graph.edge_index[1].numpy()] = graph.hessian_pairs.numpy()
    dense = blocks.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    np.testing.assert_allclose(dense, geometry.hessian, rtol=1e-6, atol=1e-6)
