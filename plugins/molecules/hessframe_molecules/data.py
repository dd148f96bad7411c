"""Load the GFN2-xTB Hessian data set as torch-geometric graphs.

Each geometry becomes one :class:`torch_geometric.data.Data` with the atomic
numbers, positions (Å), the ordered atom pairs within the network's cutoff, and
the labels: energy (eV), forces (eV/Å) and the Hessian split into the 3×3
blocks the network predicts, ``hessian_diagonal`` (N, 3, 3) and
``hessian_pairs`` (E, 3, 3) aligned with ``edge_index``. Blocks of pairs beyond
the cutoff are not in the graph; the evaluation compares full matrices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.build import MANIFEST, SPLITS, read_shard


@dataclass(frozen=True)
class Geometry:
    """One labelled geometry, as stored in a shard (numpy, float64 Hessian)."""

    molecule_id: str
    index: int
    numbers: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    hessian: np.ndarray
    is_minimum: bool


def read_manifest(data_dir: Path) -> dict:
    """Return the manifest of a data-set folder.

    Raises:
        InvalidArgumentError: the folder has no ``manifest.json``.
    """
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise InvalidArgumentError(
            f"data set folder {str(data_dir)!r} has no {MANIFEST}; build one with "
            "'hessframe molecules build-dataset --out DIR'"
        )
    return json.loads(path.read_text())


def load_geometries(
    data_dir: Path, split: str, max_geometries_per_molecule: int | None = None
) -> list[Geometry]:
    """Return every geometry of ``split``, molecule by molecule in manifest order.

    Args:
        data_dir: Folder with ``manifest.json`` and ``shards/``.
        split: One of ``train``, ``validation``, ``test``, ``extrapolation``.
        max_geometries_per_molecule: Keep only the first geometries of each
            molecule (the first is the GFN2-xTB minimum); None keeps all.
    """
    if split not in SPLITS:
        raise InvalidArgumentError(f"split must be one of {SPLITS}, got {split!r}")
    manifest = read_manifest(data_dir)
    geometries = []
    for entry in manifest["molecules"]:
        if entry["split"] != split:
            continue
        shard = read_shard(Path(data_dir) / entry["shard"])
        first_is_minimum = bool(shard["meta"]["first_geometry_is_minimum"])
        count = len(shard["energy"])
        if max_geometries_per_molecule is not None:
            count = min(count, max_geometries_per_molecule)
        for index in range(count):
            geometries.append(
                Geometry(
                    molecule_id=entry["molecule_id"],
                    index=index,
                    numbers=shard["numbers"].astype(np.int64),
                    positions=shard["positions"][index],
                    energy=float(shard["energy"][index]),
                    forces=shard["forces"][index].astype(np.float64),
                    hessian=shard["hessian"][index].astype(np.float64),
                    is_minimum=first_is_minimum and index == 0,
                )
            )
    return geometries


def edges_within(positions: torch.Tensor, cutoff_a: float) -> torch.Tensor:
    """Return the (2, E) ordered pairs (i, j), i ≠ j, closer than ``cutoff_a``."""
    distances = torch.cdist(positions, positions)
    close = distances < cutoff_a
    close.fill_diagonal_(False)
    return close.nonzero().T.contiguous()


def lowest_modes(
    hessian: np.ndarray, positions: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``count`` lowest eigenpairs of H with translations and rotations projected out.

    The projector removes the six (five for a linear molecule) rigid-body
    directions of the Cartesian coordinates, so eigenvectors live in the
    vibrational subspace. Returns eigenvalues (count,) and vectors (N, count, 3).
    """
    from hessframe_molecules.normal_modes import vibrational_basis

    basis = vibrational_basis(positions, np.ones(len(positions)))
    values, vectors = np.linalg.eigh(basis.T @ hessian @ basis)
    count = min(count, len(values))
    modes = (basis @ vectors[:, :count]).reshape(len(positions), 3, count).transpose(0, 2, 1)
    return values[:count], modes


def to_graph(geometry: Geometry, cutoff_a: float, eigen_modes: int = 0) -> Data:
    """Return the torch-geometric graph of one labelled geometry (float32 tensors)."""
    positions = torch.as_tensor(geometry.positions, dtype=torch.float32)
    edge_index = edges_within(positions, cutoff_a)
    n = len(geometry.numbers)
    blocks = torch.as_tensor(geometry.hessian, dtype=torch.float32).view(n, 3, n, 3).transpose(1, 2)
    atoms = torch.arange(n)
    graph = Data(
        numbers=torch.as_tensor(geometry.numbers, dtype=torch.long),
        pos=positions,
        edge_index=edge_index,
        energy=torch.tensor([geometry.energy], dtype=torch.float64),
        forces=torch.as_tensor(geometry.forces, dtype=torch.float32),
        hessian_diagonal=blocks[atoms, atoms],
        hessian_pairs=blocks[edge_index[0], edge_index[1]],
        num_nodes=n,
    )
    if eigen_modes:
        values, modes = lowest_modes(geometry.hessian, geometry.positions, eigen_modes)
        if len(values) < eigen_modes:
            values = np.pad(values, (0, eigen_modes - len(values)))
            modes = np.pad(modes, ((0, 0), (0, eigen_modes - modes.shape[1]), (0, 0)))
        graph.eigen_values = torch.as_tensor(values, dtype=torch.float32)[None]
        graph.eigen_modes = torch.as_tensor(modes, dtype=torch.float32)
    return graph


def load_graphs(
    data_dir: Path,
    split: str,
    cutoff_a: float,
    *,
    eigen_modes: int = 0,
    max_geometries_per_molecule: int | None = None,
) -> list[Data]:
    """Return the graphs of every geometry of ``split`` (see :func:`load_geometries`)."""
    return [
        to_graph(geometry, cutoff_a, eigen_modes)
        for geometry in load_geometries(data_dir, split, max_geometries_per_molecule)
    ]
