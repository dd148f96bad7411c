"""A quasi-Newton geometry optimizer that starts from a provider's Hessian.

ASE's BFGS starts from the Hessian 70·I eV/Å² and learns the curvature from
the forces along its path, which costs a few force calls per stiff or soft mode. When
a good Hessian is cheap, as the equivariant network's predicted Hessian is
next to a quantum-chemistry force call, starting from it saves those calls.

:class:`HessianRFO` takes its initial Hessian from a :class:`HessianSource`,
makes it positive definite, updates it by BFGS between optional refreshes
every ``refresh_every`` steps, and steps by rational-function optimization
(RFO; Banerjee, Adams, Simons and Shepard, J. Phys. Chem. 89, 52 (1985)).
RFO takes the lowest eigenvector of the augmented Hessian [[H, g], [gᵀ, 0]],
so its step stays bounded along soft modes and always points downhill.
Translations and rotations are removed from the gradient and the Hessian
before each step, because their near-zero curvature would turn force noise
into large steps. The step is scaled so that no atom moves more than the trust
radius, which grows and shrinks with the ratio of the actual to the predicted
energy change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
from ase.optimize.optimize import Optimizer

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.ase_tools.geometry import internal_basis
from hessframe_molecules.ase_tools.hessians import HessianSource, resolve_hessian

logger = logging.getLogger(__name__)

#: Initial Hessian (eV/Å² times the identity) when no source is given; ASE's BFGS uses the same.
DEFAULT_ALPHA = 70.0

#: Smallest curvature (eV/Å²) kept in the initial Hessian by :func:`positive_definite`.
MIN_CURVATURE = 1e-2

#: Smallest trust radius (Å); below it a step could no longer change the geometry meaningfully.
MIN_TRUST_A = 1e-3


class HessianRFO(Optimizer):
    """Rational-function optimization from a provider's Hessian, with BFGS updates.

    Use it like any ASE optimizer::

        optimizer = HessianRFO(atoms, hessian="xtb-fd", trajectory="opt.traj")
        converged = optimizer.run(fmax=0.01, steps=200)

    Args:
        atoms: The ``ase.Atoms`` to relax, with a calculator attached.
        hessian: Where the Hessian comes from: a registered provider name or
            alias (``"predicted"``, ``"autodiff"``, ``"xtb-fd"``), a callable
            ``factory(atoms)``, a :class:`HessianSource`, or None to start
            from ``alpha`` times the identity, as ASE's BFGS does.
        refresh_every: Recompute the Hessian from the source every this many
            steps; None computes it once, at the start.
        maxstep: Largest displacement of any atom in one step (Å), the upper
            bound of the trust radius.
        alpha: Initial Hessian scale (eV/Å²) when ``hessian`` is None.
        restart: JSON file where the Hessian and the last step are saved and
            from which a run resumes.
        logfile: File or path for the step log; ``'-'`` is stdout, None none.
        trajectory: Trajectory file or path for every step's structure.
        append_trajectory: Append to ``trajectory`` instead of overwriting it.
        **kwargs: Passed to :class:`ase.optimize.optimize.Optimizer`.

    Attributes:
        hessian_source: The resolved source, or None.
        num_hessian_calls: Hessians taken from the source in this run.

    Raises:
        InvalidArgumentError: ``refresh_every`` is not a positive integer or
            None, ``maxstep`` or ``alpha`` is not a finite positive number, or
            ``hessian`` names no registered provider.
    """

    defaults: ClassVar[dict[str, float]] = {**Optimizer.defaults, "alpha": DEFAULT_ALPHA}

    def __init__(
        self,
        atoms: Any,
        hessian: str | HessianSource | Any | None = None,
        *,
        refresh_every: int | None = None,
        maxstep: float | None = None,
        alpha: float | None = None,
        restart: str | Path | None = None,
        logfile: IO | str | Path | None = "-",
        trajectory: str | Path | None = None,
        append_trajectory: bool = False,
        **kwargs: Any,
    ) -> None:
        if refresh_every is not None and (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 1
        ):
            raise InvalidArgumentError(
                f"refresh_every must be a positive number of steps or None, got {refresh_every!r}"
            )
        self.maxstep = _positive(
            "maxstep", self.defaults["maxstep"] if maxstep is None else maxstep
        )
        self.alpha = _positive("alpha", self.defaults["alpha"] if alpha is None else alpha)
        self.hessian_source = resolve_hessian(hessian)
        self.refresh_every = refresh_every
        self.num_hessian_calls = 0
        super().__init__(
            atoms=atoms,
            restart=restart,
            logfile=logfile,
            trajectory=trajectory,
            append_trajectory=append_trajectory,
            **kwargs,
        )

    def initialize(self) -> None:
        self.hessian: np.ndarray | None = None
        self.trust = self.maxstep
        self.steps_since_refresh = 0
        self.previous_positions: np.ndarray | None = None
        self.previous_gradient: np.ndarray | None = None
        self.previous_energy: float | None = None
        self.predicted_change: float | None = None

    def read(self) -> None:
        data = self.load()
        self.initialize()
        self.hessian = np.asarray(data["hessian"], dtype=np.float64)
        self.previous_positions = np.asarray(data["positions"], dtype=np.float64)
        self.previous_gradient = np.asarray(data["gradient"], dtype=np.float64)
        self.trust = float(data["trust"])
        self.steps_since_refresh = int(data["steps_since_refresh"])

    def todict(self) -> dict[str, Any]:
        description = super().todict()
        description["refresh_every"] = self.refresh_every
        description["hessian"] = None if self.hessian_source is None else self.hessian_source.name
        return description

    def run(self, fmax: float = 0.05, steps: int = 100_000_000) -> bool:
        """Optimise until the largest force is below ``fmax`` (eV/Å) or ``steps`` steps are taken.

        Returns:
            True when the forces converged, False when the steps ran out.

        Raises:
            InvalidArgumentError: ``fmax`` is not a finite positive force, or
                ``steps`` is not a positive integer. A NaN ``fmax`` would
                otherwise never be reached and the run would go on for ASE's
                default of 10⁸ steps.
        """
        _positive("fmax", fmax)
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
            raise InvalidArgumentError(f"steps must be a positive integer, got {steps!r}")
        return super().run(fmax=fmax, steps=int(steps))

    # ------------------------------------------------------------------
    # One step

    def step(self, gradient: np.ndarray | None = None) -> None:
        gradient = self._get_gradient(gradient).astype(np.float64)
        positions = self.optimizable.get_x().astype(np.float64)
        energy = float(self.optimizable.get_value())

        self._update_trust(energy)
        self._update_hessian(positions, gradient)

        step, predicted_change = self._rfo_step(positions, gradient)
        self.previous_positions = positions
        self.previous_gradient = gradient
        self.previous_energy = energy
        self.predicted_change = predicted_change
        self.steps_since_refresh += 1
        self.optimizable.set_x(positions + step)
        self.dump(
            {
                "hessian": self.hessian,
                "positions": positions,
                "gradient": gradient,
                "trust": self.trust,
                "steps_since_refresh": self.steps_since_refresh,
            }
        )

    def _update_trust(self, energy: float) -> None:
        """Shrink or grow the trust radius by how well the last energy change was predicted."""
        if self.previous_energy is None or not self.predicted_change:
            return
        ratio = (energy - self.previous_energy) / self.predicted_change
        if ratio < 0.25:
            self.trust = max(0.5 * self.trust, MIN_TRUST_A)
        elif ratio > 0.75:
            self.trust = min(2.0 * self.trust, self.maxstep)
        logger.debug("energy change ratio %.3g, trust radius %.3g Å", ratio, self.trust)

    def _update_hessian(self, positions: np.ndarray, gradient: np.ndarray) -> None:
        due = self.refresh_every is not None and self.steps_since_refresh >= self.refresh_every
        if self.hessian is None or due:
            self.hessian = self._initial_hessian(positions.size)
            self.steps_since_refresh = 0
            return
        self.hessian = bfgs_update(
            self.hessian, positions - self.previous_positions, gradient - self.previous_gradient
        )

    def _initial_hessian(self, size: int) -> np.ndarray:
        if self.hessian_source is None:
            return self.alpha * np.eye(size)
        self.num_hessian_calls += 1
        return positive_definite(self.hessian_source(self.atoms))

    def _rfo_step(self, positions: np.ndarray, gradient: np.ndarray) -> tuple[np.ndarray, float]:
        """Return the RFO step in the internal subspace, scaled to the trust radius, and its ΔE."""
        basis = internal_basis(positions)
        hessian = basis.T @ self.hessian @ basis
        reduced_gradient = basis.T @ gradient
        reduced_step = rfo_step(hessian, reduced_gradient)

        step = basis @ reduced_step
        largest = float(np.linalg.norm(step.reshape(-1, 3), axis=1).max()) if step.size else 0.0
        if largest > self.trust:
            step *= self.trust / largest
            reduced_step *= self.trust / largest
        predicted_change = float(
            reduced_gradient @ reduced_step + 0.5 * reduced_step @ hessian @ reduced_step
        )
        return step, predicted_change


def rfo_step(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Return the rational-function step toward a minimum of the quadratic model.

    The step is s = v[:n] / v[n] for the eigenvector v of the lowest
    eigenvalue of the augmented Hessian [[H, g], [gᵀ, 0]]. It equals
    −(H − λI)⁻¹ g with λ below every eigenvalue of H and below 0, so it is a
    descent direction for any symmetric H.
    """
    size = gradient.size
    if size == 0:
        return np.zeros(0)
    augmented = np.zeros((size + 1, size + 1))
    augmented[:size, :size] = hessian
    augmented[:size, size] = gradient
    augmented[size, :size] = gradient
    _, eigenvectors = np.linalg.eigh(augmented)
    lowest = eigenvectors[:, 0]
    if abs(lowest[size]) < 1e-12:
        # The gradient is orthogonal to the lowest mode; a step along it alone
        # would be unbounded, so step along the negative gradient instead.
        return -gradient
    return lowest[:size] / lowest[size]


def positive_definite(hessian: np.ndarray, floor: float = MIN_CURVATURE) -> np.ndarray:
    """Return ``hessian`` with each eigenvalue λ replaced by max(|λ|, ``floor``).

    Away from a minimum the true Hessian may have negative eigenvalues. BFGS
    updates cannot remove them (the update is skipped whenever sᵀ H s ≤ 0),
    and a quadratic model with negative curvature predicts energy drops the
    surface does not have, so the trust radius collapses. Flipping their sign
    keeps the magnitude of each mode's curvature, which is what sets a good
    step length along it.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    eigenvalues = np.maximum(np.abs(eigenvalues), floor)
    return (eigenvectors * eigenvalues) @ eigenvectors.T


def bfgs_update(hessian: np.ndarray, step: np.ndarray, gradient_change: np.ndarray) -> np.ndarray:
    """Return the BFGS update of ``hessian`` for a step and the gradient change it caused.

    H⁺ = H + y yᵀ / (yᵀ s) − (H s)(H s)ᵀ / (sᵀ H s). The update is skipped
    (H returned unchanged) when yᵀ s or sᵀ H s is not clearly positive, because
    it would then lose positive curvature information or divide by nearly zero.
    """
    curvature = float(gradient_change @ step)
    hessian_step = hessian @ step
    step_curvature = float(step @ hessian_step)
    scale = float(np.linalg.norm(step) * np.linalg.norm(gradient_change))
    if curvature <= 1e-8 * scale or step_curvature <= 1e-12:
        return hessian
    return (
        hessian
        + np.outer(gradient_change, gradient_change) / curvature
        - np.outer(hessian_step, hessian_step) / step_curvature
    )


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite positive number, got {value!r}")
    if value <= 0:
        raise InvalidArgumentError(f"{name} must be a finite positive number, got {value!r}")
    return float(value)
