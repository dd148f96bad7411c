"""Compare the network's predicted and autodiff Hessians with GFN2-xTB on a data-set split.

Metrics, for each of the two Hessians (``predicted``: the direct head,
``autodiff``: the Hessian of the network's energy):

- ``hessian_mae``: mean |H − H_xTB| over all (3N)² entries of all geometries (eV/Å²);
- ``eigenvalue_mae``: mean |λ − λ_xTB| over the Eckart-projected, mass-weighted
  spectra (eV/(Å² amu)), eigenvalues paired in ascending order;
- ``lowest_eigenvalue_mae``: the same for the lowest eigenvalue only;
- ``lowest_eigenvector_abs_cos``: mean |cos| between the lowest mass-weighted
  eigenvectors;
- ``negative_count_agreement``: share of geometries whose number of negative
  eigenvalues matches GFN2-xTB's;
- ``frequency_mae_cm``: mean |ν̃ − ν̃_xTB| (cm⁻¹) of the harmonic wavenumbers at
  the GFN2-xTB minima (the first geometry of each molecule);
- ``symmetry_error``: max |H − Hᵀ| (eV/Å²);
- ``rotation_equivariance_error``: max |H(Rx) − (I ⊗ R) H(x) (I ⊗ R)ᵀ| (eV/Å²) over
  one random rotation R per molecule, applied to its first geometry;
- ``seconds_per_hessian``: mean wall time of one Hessian.

Energy (eV/atom) and force (eV/Å) MAEs of the network are reported beside them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from hessframe_molecules.data import Geometry, load_geometries
from hessframe_molecules.model import HessianNet
from hessframe_molecules.normal_modes import vibrational_spectrum, wavenumbers_cm

HESSIAN_KINDS = ("predicted", "autodiff")


def hessian_of(model: HessianNet, atoms: Atoms, kind: str) -> np.ndarray:
    """Return the (3N, 3N) Hessian (eV/Å², float64) of ``kind`` for ``atoms``."""
    if kind == "predicted":
        provider = model.predicted_provider(atoms)
    else:
        provider = model.autodiff_provider(atoms)
    return provider.to_dense().double().numpy()


class _Accumulator:
    def __init__(self) -> None:
        self.hessian_errors: list[np.ndarray] = []
        self.eigenvalue_errors: list[np.ndarray] = []
        self.lowest_errors: list[float] = []
        self.lowest_cosines: list[float] = []
        self.negative_matches: list[bool] = []
        self.frequency_errors: list[np.ndarray] = []
        self.symmetry = 0.0
        self.rotation = 0.0
        self.seconds: list[float] = []

    def add(self, geometry: Geometry, hessian: np.ndarray, masses: np.ndarray) -> None:
        reference = geometry.hessian
        self.hessian_errors.append(np.abs(hessian - reference).reshape(-1))
        self.symmetry = max(self.symmetry, float(np.abs(hessian - hessian.T).max()))
        if len(geometry.numbers) < 2:
            return
        values, vectors = vibrational_spectrum(hessian, geometry.positions, masses)
        reference_values, reference_vectors = vibrational_spectrum(
            reference, geometry.positions, masses
        )
        self.eigenvalue_errors.append(np.abs(values - reference_values))
        self.lowest_errors.append(abs(float(values[0] - reference_values[0])))
        self.lowest_cosines.append(abs(float(vectors[:, 0] @ reference_vectors[:, 0])))
        self.negative_matches.append(int((values < 0).sum()) == int((reference_values < 0).sum()))
        if geometry.is_minimum:
            self.frequency_errors.append(
                np.abs(wavenumbers_cm(values) - wavenumbers_cm(reference_values))
            )

    def summary(self) -> dict[str, float]:
        def pooled_mean(arrays: list[np.ndarray]) -> float:
            return float(np.concatenate(arrays).mean()) if arrays else float("nan")

        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        return {
            "hessian_mae": pooled_mean(self.hessian_errors),
            "eigenvalue_mae": pooled_mean(self.eigenvalue_errors),
            "lowest_eigenvalue_mae": mean(self.lowest_errors),
            "lowest_eigenvector_abs_cos": mean(self.lowest_cosines),
            "negative_count_agreement": mean(self.negative_matches),
            "frequency_mae_cm": pooled_mean(self.frequency_errors),
            "symmetry_error": self.symmetry,
            "rotation_equivariance_error": self.rotation,
            "seconds_per_hessian": mean(self.seconds),
        }


def _atoms_of(geometry: Geometry) -> Atoms:
    return Atoms(numbers=geometry.numbers, positions=geometry.positions)


def rotation_error(model: HessianNet, atoms: Atoms, kind: str, seed: int) -> float:
    """Return max |H(Rx) − (I ⊗ R) H(x) (I ⊗ R)ᵀ| for one random rotation R (eV/Å²)."""
    rotation = Rotation.random(random_state=seed).as_matrix()
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ rotation.T
    block = np.kron(np.eye(len(atoms)), rotation)
    expected = block @ hessian_of(model, atoms, kind) @ block.T
    return float(np.abs(hessian_of(model, rotated, kind) - expected).max())


def evaluate(
    model: HessianNet,
    data_dir: Path,
    split: str = "test",
    *,
    max_geometries_per_molecule: int | None = None,
    kinds: tuple[str, ...] = HESSIAN_KINDS,
    progress: Callable[[Iterator], Iterator] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``split`` of the data set in ``data_dir``.

    The metrics are described in the module docstring.

    Returns:
        ``{"split", "num_molecules", "num_geometries", "energy_mae_ev_per_atom",
        "force_mae_ev_per_a", "predicted": {...}, "autodiff": {...}}``.
    """
    geometries = load_geometries(Path(data_dir), split, max_geometries_per_molecule)
    accumulators = {kind: _Accumulator() for kind in kinds}
    energy_errors, force_errors = [], []
    seen_molecules: list[str] = []
    iterator = progress(iter(geometries)) if progress else geometries
    for geometry in iterator:
        atoms = _atoms_of(geometry)
        masses = atoms.get_masses()
        prediction = model.predict(atoms)
        energy_errors.append(abs(prediction["energy"] - geometry.energy) / len(atoms))
        force_errors.append(np.abs(prediction["forces"] - geometry.forces).reshape(-1))
        first_of_molecule = geometry.molecule_id not in seen_molecules
        if first_of_molecule:
            seen_molecules.append(geometry.molecule_id)
        for kind, accumulator in accumulators.items():
            started = time.perf_counter()
            hessian = hessian_of(model, atoms, kind)
            accumulator.seconds.append(time.perf_counter() - started)
            accumulator.add(geometry, hessian, masses)
            if first_of_molecule:
                error = rotation_error(model, atoms, kind, seed=len(seen_molecules))
                accumulator.rotation = max(accumulator.rotation, error)
    result: dict[str, Any] = {
        "split": split,
        "num_molecules": len(seen_molecules),
        "num_geometries": len(geometries),
        "energy_mae_ev_per_atom": float(np.mean(energy_errors)) if energy_errors else float("nan"),
        "force_mae_ev_per_a": float(np.concatenate(force_errors).mean())
        if force_errors
        else float("nan"),
    }
    for kind, accumulator in accumulators.items():
        result[kind] = accumulator.summary()
    return result


def format_table(result: dict[str, Any]) -> str:
    """Return the metrics of :func:`evaluate` as a markdown table."""
    rows = [
        ("Hessian MAE (eV/Å²)", "hessian_mae", "{:.3f}"),
        ("eigenvalue MAE (eV/(Å² amu))", "eigenvalue_mae", "{:.4f}"),
        ("lowest eigenvalue MAE (eV/(Å² amu))", "lowest_eigenvalue_mae", "{:.4f}"),
        (r"lowest eigenvector \|cos\|", "lowest_eigenvector_abs_cos", "{:.3f}"),
        ("negative-eigenvalue count agreement", "negative_count_agreement", "{:.3f}"),
        ("frequency MAE at minima (cm⁻¹)", "frequency_mae_cm", "{:.1f}"),
        (r"symmetry error max \|H − Hᵀ\| (eV/Å²)", "symmetry_error", "{:.1e}"),
        ("rotation-equivariance error (eV/Å²)", "rotation_equivariance_error", "{:.1e}"),
        ("seconds per Hessian", "seconds_per_hessian", "{:.4f}"),
    ]
    kinds = [kind for kind in HESSIAN_KINDS if kind in result]
    lines = [
        f"| metric ({result['split']}: {result['num_molecules']} molecules, "
        f"{result['num_geometries']} geometries) | " + " | ".join(kinds) + " |",
        "| --- |" + " ---: |" * len(kinds),
    ]
    for label, key, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt.format(result[kind][key]) for kind in kinds) + " |"
        )
    lines.append(
        f"| energy MAE (eV/atom), force MAE (eV/Å) | "
        f"{result['energy_mae_ev_per_atom']:.4f}, {result['force_mae_ev_per_a']:.3f} (same network)"
        + " |" * (len(kinds) - 1)
        + " |"
    )
    return "\n".join(lines)
