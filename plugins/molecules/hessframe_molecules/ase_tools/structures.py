"""Read the structure a command works on: a G2 molecule name or any file ASE reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hessframe.errors import InvalidArgumentError


def g2_names() -> tuple[str, ...]:
    """Return the names of ASE's G2 collection (``ase.collections.g2``), sorted."""
    from ase.collections import g2

    return tuple(sorted(g2.names))


def load_structure(spec: str, argument: str = "STRUCTURE") -> Any:
    """Return the ``ase.Atoms`` named by ``spec``: an existing file, else a G2 molecule name.

    A file holding several images (a trajectory, a multi-frame XYZ) gives its
    last image. The structure is checked as every provider checks it: not
    empty, finite positions, no periodic cell, no two atoms closer than 0.1 Å.

    Raises:
        InvalidArgumentError: ``spec`` is neither a readable structure file nor
            a G2 name, the file contains no atoms, or the structure fails the
            checks. The message names ``argument``.
    """
    from hessframe_molecules.validation import check_atoms

    path = Path(spec)
    if path.exists():
        atoms = _read_file(path, argument)
    elif spec in g2_names():
        from ase.build import molecule

        atoms = molecule(spec)
    else:
        raise InvalidArgumentError(
            f"{argument} {spec!r} is neither an existing file nor a molecule of ASE's G2 "
            f"collection; pass a structure file (xyz, traj, ...) or a G2 name such as "
            f"H2O, NH3, CH4, HCN, C6H6"
        )
    atoms.calc = None
    return check_atoms(atoms, name=f"{argument} {spec!r}")


def _read_file(path: Path, argument: str) -> Any:
    import ase.io

    if path.is_dir():
        raise InvalidArgumentError(f"{argument} {str(path)!r} is a folder; pass a structure file")
    if path.stat().st_size == 0:
        raise InvalidArgumentError(
            f"{argument} {str(path)!r} is an empty file; it contains no atoms"
        )
    try:
        atoms = ase.io.read(path, index=-1)
    except (OSError, ValueError, KeyError, IndexError, StopIteration, AssertionError) as error:
        # ase.io raises many exception types for unknown formats and broken files.
        raise InvalidArgumentError(
            f"{argument} {str(path)!r} could not be read by ase.io.read: "
            f"{type(error).__name__}: {error}; pass a file in a format ASE reads "
            "(xyz, traj, pdb, ...)"
        ) from error
    if isinstance(atoms, list):
        atoms = atoms[-1]
    if len(atoms) == 0:
        raise InvalidArgumentError(f"{argument} {str(path)!r} contains a structure with no atoms")
    return atoms
