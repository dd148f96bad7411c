"""ASE calculators: the trained network, and any calculator paired with a Hessian source.

:class:`ModelCalculator` gives the equivariant network's energy and forces to
ASE (``implemented_properties`` energy and forces) and its directly predicted
Hessian through :meth:`ModelCalculator.get_hessian`.

:class:`HessianCalculator` wraps any ASE calculator (GFN2-xTB through
``tblite.ase.TBLite``, for example) and adds ``get_hessian(atoms)`` from any
:class:`~hessframe_molecules.ase_tools.hessians.HessianSource`, the pairing
this package's optimizer and transition-state search are built for: forces
from the expensive method, curvature from a cheap one. It also counts the
force calls of the wrapped calculator, which is how the benchmarks count them.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.ase_tools.geometry import bond_pairs
from hessframe_molecules.ase_tools.hessians import HessianSource, resolve_hessian

logger = logging.getLogger(__name__)

#: Two atoms closer than this share of the sum of their covalent radii are far
#: inside any bond the network was trained on.
COMPRESSED_BOND_RATIO = 0.6


class DomainWarning(UserWarning):
    """A structure lies far outside the network's training data, so its outputs are unreliable."""


class HessianCalculator(Calculator):
    """Any ASE calculator, with ``get_hessian(atoms)`` from a Hessian source.

    Energies and forces come from ``calculator``; the Hessian from ``hessian``.

    Args:
        calculator: The ASE calculator that gives energy and forces.
        hessian: Provider name or alias, factory or :class:`HessianSource`;
            None makes ``get_hessian`` raise.
        **kwargs: Passed to :class:`ase.calculators.calculator.Calculator`.

    Attributes:
        num_force_calls: Energy-and-force evaluations of ``calculator`` so far.

    Raises:
        InvalidArgumentError: ``calculator`` is not an ASE calculator, or
            ``hessian`` names no registered provider.
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(
        self, calculator: Any, hessian: str | HessianSource | Any | None = None, **kwargs: Any
    ) -> None:
        if not hasattr(calculator, "get_potential_energy") or not hasattr(calculator, "get_forces"):
            raise InvalidArgumentError(
                f"invalid calculator {type(calculator).__name__}: pass an ASE calculator "
                "with get_potential_energy and get_forces"
            )
        super().__init__(**kwargs)
        self.calculator = calculator
        self.hessian_source = resolve_hessian(hessian)
        self.num_force_calls = 0
        self._hessian_cache: tuple[np.ndarray, np.ndarray] | None = None

    def calculate(
        self,
        atoms: Any = None,
        properties: tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        probe = self.atoms.copy()
        probe.calc = self.calculator
        energy = float(probe.get_potential_energy())
        forces = np.array(probe.get_forces(), dtype=np.float64)
        self.num_force_calls += 1
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}

    def get_hessian(self, atoms: Any = None) -> np.ndarray:
        """Return the (3N, 3N) Hessian (eV/Å²) of ``atoms`` (default: the last structure).

        The matrix is cached for the last positions, so requesting it twice costs one call.

        Raises:
            InvalidArgumentError: No Hessian source was given, or no structure.
        """
        if self.hessian_source is None:
            raise InvalidArgumentError(
                "this HessianCalculator has no Hessian source; pass hessian=... (a provider "
                "name such as 'xtb-finite-difference' or a factory) when creating it"
            )
        atoms = atoms if atoms is not None else self.atoms
        if atoms is None:
            raise InvalidArgumentError("atoms is missing: pass the structure to get_hessian")
        positions = atoms.get_positions()
        if self._hessian_cache is not None and np.array_equal(self._hessian_cache[0], positions):
            return self._hessian_cache[1].copy()
        hessian = self.hessian_source(atoms)
        self._hessian_cache = (positions.copy(), hessian)
        return hessian.copy()


class ModelCalculator(Calculator):
    """ASE calculator for the equivariant Hessian network.

    One forward pass gives the energy, the forces (−∂E/∂x) and the directly
    predicted Hessian; :meth:`get_hessian` returns the latter without another pass
    when the positions have not changed.

    Args:
        model: A loaded network with ``predict(atoms)``; default: the shipped
            weights (:func:`hessframe_molecules.model.load_pretrained`).
        weights: Path of a weights file to load instead of the shipped one.
        check_domain: Warn (:class:`DomainWarning`) when a structure lies far
            outside the training data (see :func:`domain_problems`).
        **kwargs: Passed to :class:`ase.calculators.calculator.Calculator`.

    Raises:
        InvalidArgumentError: The weights file does not exist. A structure
            with an unsupported element, a periodic cell, NaN positions or
            atoms closer than 0.1 Å is rejected when it is calculated.
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(
        self,
        model: Any = None,
        *,
        weights: str | None = None,
        check_domain: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if model is None:
            from hessframe_molecules.model import load_pretrained

            model = load_pretrained(weights)
        self.model = model
        self.check_domain = check_domain
        self.num_force_calls = 0
        self._hessian: np.ndarray | None = None

    def calculate(
        self,
        atoms: Any = None,
        properties: tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        from hessframe_molecules.model import check_molecule

        super().calculate(atoms, properties, system_changes)
        check_molecule(self.atoms)
        if self.check_domain:
            for problem in domain_problems(self.atoms):
                warnings.warn(problem, DomainWarning, stacklevel=2)
        prediction = self.model.predict(self.atoms)
        energy = float(prediction["energy"])
        self.num_force_calls += 1
        self._hessian = np.asarray(prediction["hessian"], dtype=np.float64)
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(prediction["forces"], dtype=np.float64),
        }

    def get_hessian(self, atoms: Any = None) -> np.ndarray:
        """Return the predicted Hessian (3N, 3N), eV/Å², of ``atoms`` (default: the last one)."""
        atoms = atoms if atoms is not None else self.atoms
        if atoms is None:
            raise InvalidArgumentError("atoms is missing: pass the structure to get_hessian")
        if self.atoms is None or self.check_state(atoms) or self._hessian is None:
            self.calculate(atoms, ("energy", "forces"), all_changes)
        return self._hessian.copy()


def domain_problems(atoms: Any) -> list[str]:
    """Return why ``atoms`` lies far outside the network's training data (empty when it does not).

    The network was trained on small molecules near their GFN2-xTB minima,
    displaced by 0.05 to 0.15 Å, all neutral closed-shell species. Three signs
    show that a structure is far from that. The first is an odd number of
    electrons in the neutral structure (a radical, open shell). The second is
    atoms pressed much closer than a bond (below :data:`COMPRESSED_BOND_RATIO`
    times the sum of covalent radii). The third is atoms with no bonded
    neighbour at all (a fragment or a dissociated atom).
    """
    from ase.data import covalent_radii

    problems = []
    if int(np.sum(atoms.numbers)) % 2 == 1:
        problems.append(
            f"{atoms.get_chemical_formula()} has an odd number of electrons when neutral, so it is "
            "a radical; the network was trained on closed-shell molecules only"
        )
    if len(atoms) < 2:
        return problems
    positions = atoms.get_positions()
    radii = covalent_radii[atoms.numbers]
    symbols = atoms.get_chemical_symbols()
    for i in range(len(atoms)):
        for j in range(i + 1, len(atoms)):
            distance = float(np.linalg.norm(positions[i] - positions[j]))
            if distance < COMPRESSED_BOND_RATIO * (radii[i] + radii[j]):
                problems.append(
                    f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {distance:.2f} Å apart, "
                    f"far shorter than a {symbols[i]}-{symbols[j]} bond "
                    f"({radii[i] + radii[j]:.2f} Å); the network never saw such compressed bonds"
                )
    bonded = {index for pair in bond_pairs(atoms) for index in pair}
    isolated = [i for i in range(len(atoms)) if i not in bonded]
    if isolated:
        problems.append(
            f"atoms {isolated} have no bonded neighbour; the network was trained on whole "
            "molecules near equilibrium, not on separated fragments or atoms"
        )
    return problems
