"""Checks on an ``ase.Atoms`` before a Hessian is computed for it.

Every provider and the network call :func:`check_atoms` first, so bad input
fails with an error that names the problem instead of deep inside tblite or
torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from hessframe.errors import InvalidArgumentError

#: Atoms closer than this (Å) are rejected: no molecule has such a bond, and
#: both GFN2-xTB and the network give meaningless numbers there.
MIN_DISTANCE_A = 0.1


def check_atoms(atoms: Any, supported_elements: Iterable[str] | None = None, name: str = "atoms"):
    """Check that ``atoms`` is a finite, non-periodic molecule and return it.

    Args:
        atoms: The structure, an ``ase.Atoms``.
        supported_elements: Chemical symbols accepted; None accepts every element.
        name: Argument name used in error messages.

    Returns:
        ``atoms`` unchanged.

    Raises:
        InvalidArgumentError: ``atoms`` is not an ``ase.Atoms``, is empty, has a
            periodic cell, NaN or infinite positions, an element outside
            ``supported_elements``, or two atoms closer than
            :data:`MIN_DISTANCE_A`.
    """
    from ase import Atoms

    if not isinstance(atoms, Atoms):
        raise InvalidArgumentError(f"{name} must be an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise InvalidArgumentError(f"{name} is empty; a molecule needs at least one atom")
    if any(atoms.pbc):
        raise InvalidArgumentError(
            f"{name} has a periodic cell (pbc={atoms.pbc.tolist()}); only isolated molecules are "
            "accepted, so set atoms.pbc = False"
        )

    positions = atoms.get_positions()
    if not np.all(np.isfinite(positions)):
        bad = sorted({int(i) for i in np.nonzero(~np.isfinite(positions))[0]})
        raise InvalidArgumentError(
            f"{name} has NaN or infinite positions at atom indices {bad}; positions must be finite"
        )

    if supported_elements is not None:
        supported = tuple(supported_elements)
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(supported))
        if unknown:
            raise InvalidArgumentError(
                f"{name} contains element(s) {unknown} that the model was not trained on; "
                f"supported elements are {list(supported)}"
            )

    if len(atoms) > 1:
        differences = positions[:, None, :] - positions[None, :, :]
        distances = np.linalg.norm(differences, axis=-1)
        np.fill_diagonal(distances, np.inf)
        i, j = np.unravel_index(np.argmin(distances), distances.shape)
        if distances[i, j] < MIN_DISTANCE_A:
            raise InvalidArgumentError(
                f"{name} has atoms {min(i, j)} and {max(i, j)} only {distances[i, j]:.3g} Å apart; "
                f"atoms must be at least {MIN_DISTANCE_A} Å apart"
            )
    return atoms
