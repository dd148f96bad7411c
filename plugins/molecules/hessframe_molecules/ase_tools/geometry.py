"""Rigid-body motions, molecular shape and bonding of an isolated molecule.

The translations and rotations of an isolated molecule leave its energy
unchanged, so its Hessian has 6 zero eigenvalues (5 for a linear molecule,
3 for an atom) that finite differences and models reproduce only
approximately. The optimizer removes them from its steps and the vibrational
analysis projects them out of the mass-weighted Hessian (the Eckart
conditions), using the basis built here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

#: A molecule whose smallest principal moment of inertia is below this share
#: of the largest is treated as linear.
LINEAR_INERTIA_RATIO = 1e-3

#: Two atoms are bonded when their distance is below this multiple of the sum
#: of their covalent radii (the usual cut-off of connectivity perception).
BOND_TOLERANCE = 1.25


def rigid_motion_basis(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Return an orthonormal basis (3N, k) of the translations and infinitesimal rotations.

    With ``masses`` the vectors live in mass-weighted coordinates q = √m x,
    which is where the Eckart projection of a Hessian is done; without, in
    plain Cartesian coordinates. k is 6, or 5 for a linear molecule, 3 for
    one atom: rotation vectors that are linearly dependent are dropped.

    Args:
        positions: Atom positions (N, 3) in Å.
        masses: Atomic masses (N,) in amu, or None.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    num_atoms = len(positions)
    weights = np.ones(num_atoms) if masses is None else np.asarray(masses, dtype=np.float64)
    sqrt_weights = np.sqrt(weights)
    center = (weights[:, None] * positions).sum(axis=0) / weights.sum()
    relative = positions - center

    vectors = []
    for axis in range(3):
        translation = np.zeros((num_atoms, 3))
        translation[:, axis] = sqrt_weights
        vectors.append(translation.reshape(-1))
    for axis in range(3):
        unit = np.zeros(3)
        unit[axis] = 1.0
        rotation = np.cross(unit, relative) * sqrt_weights[:, None]
        vectors.append(rotation.reshape(-1))

    matrix = np.stack(vectors, axis=1)
    left, singular_values, _ = np.linalg.svd(matrix, full_matrices=False)
    rank = int(np.sum(singular_values > 1e-6 * max(singular_values[0], 1.0)))
    return left[:, :rank]


def internal_basis(positions: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Return an orthonormal basis (3N, 3N − k) of the complement of :func:`rigid_motion_basis`."""
    rigid = rigid_motion_basis(positions, masses)
    size = rigid.shape[0]
    projector = np.eye(size) - rigid @ rigid.T
    eigenvalues, eigenvectors = np.linalg.eigh(projector)
    return eigenvectors[:, eigenvalues > 0.5]


def molecule_geometry(atoms: Any) -> str:
    """Return ``'monatomic'``, ``'linear'`` or ``'nonlinear'`` (ase.thermochemistry's names)."""
    if len(atoms) == 1:
        return "monatomic"
    moments = np.sort(np.abs(atoms.get_moments_of_inertia()))
    if moments[0] < LINEAR_INERTIA_RATIO * moments[-1]:
        return "linear"
    return "nonlinear"


def bond_pairs(atoms: Any, tolerance: float = BOND_TOLERANCE) -> list[tuple[int, int]]:
    """Return the bonded atom pairs (i < j), from covalent radii (ase.data.covalent_radii)."""
    from ase.data import covalent_radii

    positions = atoms.get_positions()
    radii = covalent_radii[atoms.numbers]
    pairs = []
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            distance = float(np.linalg.norm(positions[i] - positions[j]))
            if distance < tolerance * (radii[i] + radii[j]):
                pairs.append((i, j))
    return pairs


def bond_signature(atoms: Any, tolerance: float = BOND_TOLERANCE) -> tuple[tuple[str, int], ...]:
    """Return the bonds counted by element pair, for example ``(('C-H', 1), ('C-N', 1))``.

    Two structures with different signatures are different isomers or
    fragments. Equal signatures do not prove equal connectivity, but they tell
    apart the reactant and product of every reaction this package tests.
    """
    symbols = atoms.get_chemical_symbols()
    counts = Counter(
        "-".join(sorted((symbols[i], symbols[j]))) for i, j in bond_pairs(atoms, tolerance)
    )
    return tuple(sorted(counts.items()))
