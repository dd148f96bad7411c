"""Analytic potentials with exact Hessians, shared by the ASE tests (imported explicitly).

Each potential is a torch function of the flat positions (Å) returning the
energy (eV). :class:`TorchPotential` turns it into an ASE calculator (forces by
autograd) and :meth:`TorchPotential.hessian_factory` into a Hessian source
whose matrix is the exact autodiff Hessian of the core's ``AutodiffHessian``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

EnergyFunction = Callable[[torch.Tensor], torch.Tensor]

# Müller-Brown parameters (K. Müller and L. D. Brown, Theor. Chim. Acta 53, 75 (1979)).
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_x0 = (1.0, 0.0, -0.5, -1.0)
_MB_y0 = (0.0, 0.5, 1.5, 1.0)

#: Energy scale applied to the Müller-Brown surface, so that its barriers are a few eV.
MB_SCALE = 0.05
#: Harmonic confinement (eV/Å²) of the Müller-Brown atom along z.
MB_Z_FORCE_CONSTANT = 1000.0

#: Stationary points of the Müller-Brown surface (x, y) from the literature, to about 1e-3.
MB_SADDLE_LOWER = (0.212487, 0.292988)
MB_SADDLE_UPPER = (-0.822002, 0.624313)
MB_MINIMUM_A = (-0.558224, 1.441726)
MB_MINIMUM_B = (0.623499, 0.028038)
MB_MINIMUM_C = (-0.050011, 0.466694)


def muller_brown(flat: torch.Tensor) -> torch.Tensor:
    """Return the scaled Müller-Brown energy of one atom at (x, y), plus a harmonic term in z."""
    x, y, z = flat[0], flat[1], flat[2]
    energy = 0.5 * MB_Z_FORCE_CONSTANT * z**2
    for A, a, b, c, x0, y0 in zip(_MB_A, _MB_a, _MB_b, _MB_c, _MB_x0, _MB_y0, strict=True):
        dx, dy = x - x0, y - y0
        energy = energy + MB_SCALE * A * torch.exp(a * dx**2 + b * dx * dy + c * dy**2)
    return energy


def harmonic_bonds(
    bonds: Sequence[tuple[int, int]], force_constant: float, rest_length: float
) -> EnergyFunction:
    """Return E = Σ ½ k (|r_i − r_j| − r0)² over ``bonds`` (k in eV/Å², r0 in Å)."""

    def energy(flat: torch.Tensor) -> torch.Tensor:
        positions = flat.reshape(-1, 3)
        total = flat.new_zeros(())
        for i, j in bonds:
            length = torch.linalg.vector_norm(positions[i] - positions[j])
            total = total + 0.5 * force_constant * (length - rest_length) ** 2
        return total

    return energy


class TorchPotential(Calculator):
    """ASE calculator of a torch energy function of the flat positions (float64)."""

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(self, energy_function: EnergyFunction, **kwargs) -> None:
        super().__init__(**kwargs)
        self.energy_function = energy_function
        self.num_force_calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        flat = torch.tensor(self.atoms.get_positions().reshape(-1), dtype=torch.float64)
        flat.requires_grad_(True)
        energy = self.energy_function(flat)
        (gradient,) = torch.autograd.grad(energy, flat)
        self.num_force_calls += 1
        value = float(energy.detach())
        self.results = {
            "energy": value,
            "free_energy": value,
            "forces": -gradient.detach().numpy().reshape(-1, 3),
        }

    def hessian_factory(self):
        """Return ``factory(atoms)`` building the exact autodiff Hessian provider at ``atoms``."""
        from hessframe.curvature import AutodiffHessian

        def factory(atoms):
            flat = torch.tensor(atoms.get_positions().reshape(-1), dtype=torch.float64)
            return AutodiffHessian(self.energy_function, flat)

        return factory


def exact_hessian(energy_function: EnergyFunction, positions: np.ndarray) -> np.ndarray:
    """Return the dense Hessian of ``energy_function`` at ``positions`` by torch.func."""
    flat = torch.tensor(np.asarray(positions).reshape(-1), dtype=torch.float64)
    return torch.func.hessian(energy_function)(flat).numpy()
