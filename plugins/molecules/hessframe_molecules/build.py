"""Build the GFN2-xTB Hessian data set: geometries, relaxation, sampling, labels, shards.

Molecules come from three sources:

- ASE's G2 collection (Curtiss et al. 1997), restricted to neutral closed-shell
  molecules of H, C, N and O with 2 to 20 atoms;
- the small organic SMILES of :mod:`hessframe_molecules.smiles`, embedded in 3-D
  by RDKit's ETKDG with a fixed seed;
- ASE's S22 complexes (Jurečka et al. 2006) of H, C, N and O, the
  size-extrapolation set, labelled at their published geometries only.

Each G2 and SMILES molecule is relaxed with GFN2-xTB. Its first geometry is
that minimum; the others displace every Cartesian coordinate of the minimum by
independent Gaussian noise with a standard deviation drawn uniformly from
[0.05, 0.15] Å. Every geometry is labelled with the GFN2-xTB energy (eV),
forces (eV/Å) and the symmetrised central-difference Hessian (eV/Å²), stored
as its upper triangle in float32.

The split is by molecule, never by geometry: a molecule's id is hashed
(SHA-256) and the hash decides test (10 %), validation (10 %) or train (80 %).
S22 complexes form the split ``extrapolation``.

One compressed ``.npz`` shard is written per molecule, to a temporary name
that is renamed when complete, so an interrupted build leaves only whole shards
and a rerun skips them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hessframe.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

ELEMENTS = ("H", "C", "N", "O")
MAX_ATOMS = 20
DISPLACEMENT_RANGE_A = (0.05, 0.15)
SPLITS = ("train", "validation", "test", "extrapolation")
SHARD_DIR = "shards"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class MoleculeSpec:
    """One molecule of the data set, before labelling.

    Attributes:
        molecule_id: Unique id, ``<source>:<name>``.
        source: ``"g2"``, ``"smiles"`` or ``"s22"``.
        split: One of :data:`SPLITS`.
        smiles: The SMILES string for RDKit molecules, else "".
        num_atoms: Number of atoms.
    """

    molecule_id: str
    source: str
    split: str
    smiles: str = ""
    num_atoms: int = 0
    extra: dict = field(default_factory=dict, compare=False)


def split_of(molecule_id: str) -> str:
    """Return the split of a molecule from the SHA-256 hash of its id."""
    bucket = int(hashlib.sha256(molecule_id.encode()).hexdigest(), 16) % 10
    if bucket == 0:
        return "test"
    if bucket == 1:
        return "validation"
    return "train"


def _hcno_only(atoms) -> bool:
    return set(atoms.get_chemical_symbols()) <= set(ELEMENTS)


def _closed_shell(atoms) -> bool:
    electrons = int(atoms.numbers.sum())
    moments = atoms.get_initial_magnetic_moments()
    return electrons % 2 == 0 and not np.any(np.abs(moments) > 1e-8)


def g2_specs() -> list[MoleculeSpec]:
    """Return ASE's G2 molecules of H, C, N, O that are closed-shell and have 2 to 20 atoms."""
    from ase.collections import g2

    specs = []
    for name in g2.names:
        atoms = g2[name]
        if not (2 <= len(atoms) <= MAX_ATOMS and _hcno_only(atoms) and _closed_shell(atoms)):
            continue
        molecule_id = f"g2:{name}"
        specs.append(MoleculeSpec(molecule_id, "g2", split_of(molecule_id), num_atoms=len(atoms)))
    return specs


def smiles_specs() -> list[MoleculeSpec]:
    """Return the shipped SMILES molecules (their atom counts with hydrogens added)."""
    from rdkit import Chem

    from hessframe_molecules.smiles import SMILES

    specs = []
    for name, smiles in SMILES:
        molecule = Chem.AddHs(Chem.MolFromSmiles(smiles))
        molecule_id = f"smiles:{name}"
        specs.append(
            MoleculeSpec(
                molecule_id, "smiles", split_of(molecule_id), smiles, molecule.GetNumAtoms()
            )
        )
    return specs


def s22_specs(max_atoms: int) -> list[MoleculeSpec]:
    """Return ASE's S22 complexes of H, C, N, O with at most ``max_atoms`` atoms."""
    from ase.collections import s22

    specs = []
    for name in s22.names:
        atoms = s22[name]
        if len(atoms) > max_atoms or not _hcno_only(atoms):
            continue
        specs.append(MoleculeSpec(f"s22:{name}", "s22", "extrapolation", num_atoms=len(atoms)))
    return specs


def initial_atoms(spec: MoleculeSpec, seed: int = 0):
    """Return the starting geometry of a molecule as an ``ase.Atoms``."""
    from ase import Atoms

    source, name = spec.molecule_id.split(":", 1)
    if source == "g2":
        from ase.collections import g2

        atoms = g2[name]
        atoms.set_initial_magnetic_moments(None)
        return atoms
    if source == "s22":
        from ase.collections import s22

        return s22[name]
    if source == "smiles":
        from rdkit import Chem
        from rdkit.Chem import AllChem

        molecule = Chem.AddHs(Chem.MolFromSmiles(spec.smiles))
        parameters = AllChem.ETKDGv3()
        parameters.randomSeed = seed
        if AllChem.EmbedMolecule(molecule, parameters) != 0:
            raise RuntimeError(f"RDKit could not embed {spec.molecule_id} ({spec.smiles})")
        AllChem.MMFFOptimizeMolecule(molecule)
        positions = molecule.GetConformer().GetPositions()
        numbers = [atom.GetAtomicNum() for atom in molecule.GetAtoms()]
        return Atoms(numbers=numbers, positions=positions)
    raise ValueError(f"unknown molecule source {source!r} in {spec.molecule_id!r}")


def sample_geometries(minimum: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``count`` geometries (count, N, 3): the minimum, then Gaussian displacements of it."""
    geometries = [minimum]
    low, high = DISPLACEMENT_RANGE_A
    for _ in range(count - 1):
        sigma = rng.uniform(low, high)
        geometries.append(minimum + rng.normal(0.0, sigma, size=minimum.shape))
    return np.stack(geometries)


def label_molecule(spec: MoleculeSpec, num_geometries: int, seed: int) -> dict[str, np.ndarray]:
    """Relax, sample and label one molecule; return the arrays of its shard."""
    from hessframe_molecules.xtb import GFN2Gradient, relax, xtb_hessian

    started = time.perf_counter()
    atoms = initial_atoms(spec, seed)
    rng = np.random.default_rng(
        int(hashlib.sha256(f"{seed}:{spec.molecule_id}".encode()).hexdigest(), 16) % 2**32
    )
    if spec.source == "s22":
        geometries = atoms.positions[None].copy()
        fmax = float("nan")
    else:
        relaxed = relax(atoms)
        fmax = relaxed.info["fmax"]
        geometries = sample_geometries(relaxed.positions, num_geometries, rng)

    gradient = GFN2Gradient(atoms.numbers, geometries[0])
    energies, forces, hessians = [], [], []
    for positions in geometries:
        energy, force = gradient(positions)
        frame = atoms.copy()
        frame.positions = positions
        energies.append(energy)
        forces.append(force)
        hessians.append(xtb_hessian(frame))

    meta = {
        "molecule_id": spec.molecule_id,
        "source": spec.source,
        "split": spec.split,
        "smiles": spec.smiles,
        "formula": atoms.get_chemical_formula(),
        "relaxed_fmax_ev_per_a": fmax,
        "first_geometry_is_minimum": spec.source != "s22",
        "seconds": time.perf_counter() - started,
        "seed": seed,
        "num_geometries": num_geometries,
    }
    return {
        "numbers": atoms.numbers.astype(np.int8),
        "positions": geometries.astype(np.float64),
        "energy": np.asarray(energies, dtype=np.float64),
        "forces": np.asarray(forces, dtype=np.float32),
        "hessian_upper": pack_upper(np.asarray(hessians, dtype=np.float32)),
        "meta": np.asarray(json.dumps(meta)),
    }


def pack_upper(hessians: np.ndarray) -> np.ndarray:
    """Return the upper triangles (diagonal included) of symmetric (K, n, n) matrices.

    The result has shape (K, n(n+1)/2).
    """
    rows, columns = np.triu_indices(hessians.shape[-1])
    return hessians[:, rows, columns]


def unpack_upper(packed: np.ndarray, n: int) -> np.ndarray:
    """Return the symmetric (K, n, n) matrices whose upper triangles :func:`pack_upper` packed."""
    rows, columns = np.triu_indices(n)
    hessians = np.zeros((packed.shape[0], n, n), dtype=packed.dtype)
    hessians[:, rows, columns] = packed
    hessians[:, columns, rows] = packed
    return hessians


def shard_name(index: int, spec: MoleculeSpec) -> str:
    """Return the shard file name of a molecule: its index and a file-safe slug of its id."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", spec.molecule_id).strip("-")
    return f"{index:04d}-{slug}.npz"


def write_shard(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed shard atomically: to a temporary name, then rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_shard(path: Path) -> dict:
    """Read a shard; ``meta`` comes back as a dict and ``hessian`` as (K, 3N, 3N) float32."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["meta"] = json.loads(str(arrays["meta"]))
    arrays["hessian"] = unpack_upper(arrays.pop("hessian_upper"), 3 * len(arrays["numbers"]))
    return arrays


def _work(job: tuple[int, MoleculeSpec, int, int, str]) -> tuple[str, float, str | None]:
    index, spec, num_geometries, seed, out = job
    from hessframe_molecules.xtb import limit_threads

    limit_threads()
    path = Path(out) / SHARD_DIR / shard_name(index, spec)
    started = time.perf_counter()
    try:
        write_shard(path, label_molecule(spec, num_geometries, seed))
    except Exception as error:
        logger.warning("labelling %s failed: %s", spec.molecule_id, error)
        return spec.molecule_id, time.perf_counter() - started, f"{type(error).__name__}: {error}"
    return spec.molecule_id, time.perf_counter() - started, None


def select_specs(max_molecules: int | None, max_s22_atoms: int) -> list[MoleculeSpec]:
    """Return the molecules to build: G2 and SMILES in a fixed order, then S22.

    ``max_molecules`` keeps the first that many G2 and SMILES molecules in the
    order given by the SHA-256 hash of their ids (a fixed pseudo-random order,
    so a smaller build is a prefix of a larger one).
    """
    specs = g2_specs() + smiles_specs()
    specs.sort(key=lambda spec: hashlib.sha256(spec.molecule_id.encode()).hexdigest())
    if max_molecules is not None:
        specs = specs[:max_molecules]
    return specs + s22_specs(max_s22_atoms)


def build_dataset(
    out: Path,
    specs: Sequence[MoleculeSpec],
    *,
    num_geometries: int,
    workers: int = 1,
    seed: int = 0,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> dict:
    """Label every molecule of ``specs`` that has no shard yet under ``out``; return the manifest.

    Args:
        out: Output folder; shards go to ``out/shards`` and the manifest to
            ``out/manifest.json``.
        specs: Molecules, in the order that numbers their shards.
        num_geometries: Geometries per G2 or SMILES molecule (the minimum and
            ``num_geometries - 1`` displaced ones); S22 complexes get one.
        workers: Worker processes.
        seed: Seed of embedding and sampling.
        progress: Wraps the iterator of finished molecules (a tqdm bar in the CLI).

    Returns:
        The manifest written to ``out/manifest.json``.
    """
    out = Path(out)
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    # A worker killed by SIGKILL skips the cleanup in write_shard and can leave
    # a temporary file behind. Such a file is never a shard, so it is removed.
    for stale in (out / SHARD_DIR).glob(".*.tmp"):
        stale.unlink()
    _check_resumed_settings(out, specs, num_geometries, seed)
    jobs = [
        (index, spec, num_geometries, seed, str(out))
        for index, spec in enumerate(specs)
        if not (out / SHARD_DIR / shard_name(index, spec)).exists()
    ]
    logger.info(
        "%d of %d molecules to label, %d already done",
        len(jobs),
        len(specs),
        len(specs) - len(jobs),
    )

    # The largest molecules go first so that no worker ends with a long tail.
    jobs.sort(key=lambda job: -job[1].num_atoms * (1 if job[1].source == "s22" else num_geometries))
    failures = {}
    results: Iterator
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_work, jobs)
    else:
        pool = None
        results = map(_work, jobs)
    try:
        for molecule_id, seconds, error in progress(results) if progress else results:
            if error is not None:
                failures[molecule_id] = error
            logger.info("%s labelled in %.1f s", molecule_id, seconds)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    manifest = write_manifest(out, specs, num_geometries=num_geometries, seed=seed)
    manifest["failures"] = failures
    return manifest


def _check_resumed_settings(
    out: Path, specs: Sequence[MoleculeSpec], num_geometries: int, seed: int
) -> None:
    """Refuse to resume a build whose existing shards were made with another seed or count.

    Shards written before the seed was stored in their ``meta`` are checked by
    their geometry count only.

    Raises:
        InvalidArgumentError: An existing shard has another ``num_geometries``
            or ``seed`` than asked for now.
    """
    for index, spec in enumerate(specs):
        path = out / SHARD_DIR / shard_name(index, spec)
        if not path.exists():
            continue
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            count = len(data["energy"])
        stored = meta.get("num_geometries", count)
        if spec.source != "s22" and stored != num_geometries:
            problem = f"{stored} geometries per molecule, not {num_geometries} (--geometries)"
        elif meta.get("seed", seed) != seed:
            problem = f"seed {meta['seed']}, not {seed} (--seed)"
        else:
            continue
        raise InvalidArgumentError(
            f"out {str(out)!r} contains shards of an earlier build with other settings: "
            f"{path.name} has {problem}; resume with the earlier settings or pass another "
            "--out folder"
        )


def write_manifest(
    out: Path, specs: Sequence[MoleculeSpec], *, num_geometries: int, seed: int
) -> dict:
    """Summarise the shards under ``out`` into ``manifest.json`` (written atomically)."""
    molecules = []
    for index, spec in enumerate(specs):
        path = out / SHARD_DIR / shard_name(index, spec)
        if not path.exists():
            continue
        shard = read_shard(path)
        molecules.append(
            {
                "shard": f"{SHARD_DIR}/{path.name}",
                "molecule_id": spec.molecule_id,
                "split": spec.split,
                "num_atoms": len(shard["numbers"]),
                "num_geometries": len(shard["energy"]),
                "seconds": round(float(shard["meta"]["seconds"]), 1),
            }
        )
    counts = {
        split: {
            "molecules": sum(1 for m in molecules if m["split"] == split),
            "geometries": sum(m["num_geometries"] for m in molecules if m["split"] == split),
        }
        for split in SPLITS
    }
    manifest = {
        "method": "GFN2-xTB (tblite); Hessians by central differences of analytic "
        "gradients, step 0.005 Å",
        "units": {"energy": "eV", "forces": "eV/Å", "hessian": "eV/Å²", "positions": "Å"},
        "num_geometries": num_geometries,
        "seed": seed,
        "counts": counts,
        "molecules": molecules,
    }
    temporary = out / f".{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(temporary, out / MANIFEST)
    return manifest
