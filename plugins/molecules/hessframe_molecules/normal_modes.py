"""Mass weighting, Eckart projection and harmonic frequencies of a molecular Hessian.

The rigid-body directions of N atoms with masses m_i at positions r_i
(centre of mass r_c) are, in mass-weighted coordinates q = √m x,

    translations  √m_i e_k,        rotations  √m_i e_k × (r_i − r_c),   k = x, y, z,

(Eckart conditions). After orthonormalising them (five for a linear molecule,
three for a single atom), the vibrational subspace is their orthogonal
complement, and the vibrational spectrum is that of M^{-1/2} H M^{-1/2}
restricted to it. Eigenvalues are in eV/(Å² amu); a harmonic wavenumber is
ν̃ = √λ / (2πc), returned negative for a negative λ (an imaginary frequency).
"""

from __future__ import annotations

import numpy as np
from ase import units

#: cm⁻¹ per √(eV/(Å² amu)): √(e / (10⁻²⁰ m² · amu)) / (2π · c · 100 cm/m).
WAVENUMBER_PER_SQRT_EIGENVALUE = float(
    np.sqrt(units._e / (1e-20 * units._amu)) / (2 * np.pi * units._c * 100)
)


def rigid_body_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Return an orthonormal (3N, k) basis of the mass-weighted rigid-body directions."""
    positions = np.asarray(positions, dtype=np.float64)
    masses = np.asarray(masses, dtype=np.float64)
    root = np.sqrt(masses)
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    vectors = []
    for k in range(3):
        unit = np.zeros(3)
        unit[k] = 1.0
        vectors.append((root[:, None] * unit).reshape(-1))
        vectors.append((root[:, None] * np.cross(unit, centred)).reshape(-1))
    matrix = np.stack(vectors, axis=1)
    left, singular, _ = np.linalg.svd(matrix, full_matrices=False)
    return left[:, singular > 1e-6 * singular.max()]


def vibrational_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Return an orthonormal (3N, 3N − k) basis orthogonal to the rigid-body directions."""
    rigid = rigid_body_basis(positions, masses)
    n = rigid.shape[0]
    full, _, _ = np.linalg.svd(rigid, full_matrices=True)
    return full[:, rigid.shape[1] : n]


def vibrational_spectrum(
    hessian: np.ndarray, positions: np.ndarray, masses: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the Eckart-projected mass-weighted eigenvalues (ascending) and eigenvectors.

    Args:
        hessian: (3N, 3N) Cartesian Hessian (eV/Å²).
        positions: (N, 3) positions (Å).
        masses: (N,) masses (amu).

    Returns:
        Eigenvalues (3N − k,) in eV/(Å² amu) and eigenvectors (3N, 3N − k) in
        mass-weighted Cartesian coordinates, orthonormal columns.
    """
    masses = np.asarray(masses, dtype=np.float64)
    inverse_root = np.repeat(1 / np.sqrt(masses), 3)
    weighted = hessian * inverse_root[:, None] * inverse_root[None, :]
    basis = vibrational_basis(positions, masses)
    projected = basis.T @ weighted @ basis
    values, vectors = np.linalg.eigh(0.5 * (projected + projected.T))
    return values, basis @ vectors


def wavenumbers_cm(eigenvalues: np.ndarray) -> np.ndarray:
    """Return harmonic wavenumbers (cm⁻¹) of mass-weighted eigenvalues, negative when imaginary."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    return np.sign(eigenvalues) * np.sqrt(np.abs(eigenvalues)) * WAVENUMBER_PER_SQRT_EIGENVALUE
