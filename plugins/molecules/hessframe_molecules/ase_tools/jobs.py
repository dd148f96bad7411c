"""The jobs behind ``hessframe molecules optimize|ts|vib``: run, summarise, write atomically.

Each job takes an ``ase.Atoms``, a calculator choice and a Hessian source,
runs, and returns a :class:`JobResult`: a JSON-ready summary and the
trajectories to write. :func:`write_outputs` writes every file to a temporary
name first and renames them all only when all were written, so an interrupted
or failed run never leaves a half-written file or replaces an old result
with a partial one.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hessframe.errors import InvalidArgumentError
from hessframe_molecules.ase_tools.calculators import HessianCalculator
from hessframe_molecules.ase_tools.hessians import (
    HESSIAN_ALIASES,
    HessianSource,
    calculator_finite_difference,
    resolve_hessian,
)

logger = logging.getLogger(__name__)

CALCULATORS = ("xtb", "model")
HESSIAN_CHOICES = (*HESSIAN_ALIASES, "none")

#: Sella settings that take the Hessian source's matrix at the start only. nsteps_per_diag is
#: the number of steps before Sella requests a new Hessian, and this value is never reached.
START_ONLY = {"nsteps_per_diag": 10**6}

#: Progress callback: called after every optimizer step with (step, energy in eV, fmax in eV/Å).
Progress = Callable[[int, float, float], None]


@dataclass
class JobResult:
    """Output of a job.

    Attributes:
        summary: JSON-ready numbers (energies in eV, forces in eV/Å, frequencies in cm⁻¹).
        trajectories: Structures to write, by file name.
        converged: The job reached its convergence criterion.
    """

    summary: dict[str, Any]
    trajectories: dict[str, list[Any]] = field(default_factory=dict)
    converged: bool = True


def make_calculator(name: str, hessian: str | HessianSource | None) -> HessianCalculator:
    """Return the calculator ``name`` (``'xtb'`` or ``'model'``) paired with a Hessian source.

    ``'xtb'`` is GFN2-xTB through ``tblite.ase.TBLite``, and ``'model'`` is the
    trained network (:class:`~hessframe_molecules.ase_tools.calculators.ModelCalculator`).

    Raises:
        InvalidArgumentError: ``name`` is not one of :data:`CALCULATORS`.
    """
    if name == "xtb":
        from tblite.ase import TBLite

        base = TBLite(method="GFN2-xTB", verbosity=0)
    elif name == "model":
        from hessframe_molecules.ase_tools.calculators import ModelCalculator

        base = ModelCalculator()
    else:
        raise InvalidArgumentError(
            f"invalid calculator {name!r}: choose one of {', '.join(CALCULATORS)}"
        )
    return HessianCalculator(base, hessian)


def hessian_for_checks(calculator: HessianCalculator) -> HessianSource:
    """Return the calculator's Hessian source, or finite differences of its own forces."""
    if calculator.hessian_source is not None:
        return calculator.hessian_source
    return calculator_hessian(calculator)


def calculator_hessian(calculator: HessianCalculator) -> HessianSource:
    """Return central differences of the wrapped calculator's own forces as a source (6N calls)."""
    base = calculator.calculator
    return HessianSource(
        lambda atoms: calculator_finite_difference(atoms, base), "calculator-finite-difference"
    )


class _Recorder:
    """Observer that keeps a copy of every step's structure, energy and forces."""

    def __init__(self, atoms: Any, progress: Progress | None) -> None:
        self.atoms = atoms
        self.progress = progress
        self.images: list[Any] = []

    def __call__(self) -> None:
        from ase.calculators.singlepoint import SinglePointCalculator

        energy = float(self.atoms.get_potential_energy())
        forces = np.array(self.atoms.get_forces())
        image = self.atoms.copy()
        image.calc = SinglePointCalculator(image, energy=energy, forces=forces)
        self.images.append(image)
        if self.progress is not None:
            fmax = float(np.linalg.norm(forces, axis=1).max())
            self.progress(len(self.images) - 1, energy, fmax)


def run_optimize(
    atoms: Any,
    calculator: HessianCalculator,
    *,
    fmax: float,
    steps: int,
    refresh_every: int | None = None,
    progress: Progress | None = None,
) -> JobResult:
    """Relax ``atoms`` with :class:`HessianRFO` from the calculator's Hessian source.

    Without a source the optimizer starts from 70·I eV/Å², as ASE's BFGS does.
    When a source exists, the frequencies at the end come from one more
    Hessian of that source.
    """
    from hessframe_molecules.ase_tools.optimizer import HessianRFO
    from hessframe_molecules.ase_tools.vibrations import analyze_vibrations

    atoms = atoms.copy()
    atoms.calc = calculator
    start = time.perf_counter()
    optimizer = HessianRFO(
        atoms, calculator.hessian_source, refresh_every=refresh_every, logfile=None
    )
    recorder = _Recorder(atoms, progress)
    optimizer.attach(recorder, interval=1)
    converged = bool(optimizer.run(fmax=fmax, steps=steps))
    seconds = time.perf_counter() - start

    summary = _final_state(atoms, calculator, fmax, converged)
    summary.update(
        steps=int(optimizer.nsteps),
        refresh_every=refresh_every,
        hessian_calls=optimizer.num_hessian_calls,
        hessian_gradient_calls=_gradient_calls(calculator, atoms, optimizer.num_hessian_calls),
        seconds=seconds,
    )
    if calculator.hessian_source is not None:
        analysis = analyze_vibrations(atoms, calculator.hessian_source, temperature_k=None)
        summary["frequencies_cm1"] = [float(value) for value in analysis.frequencies_cm1]
        summary["num_imaginary"] = analysis.num_imaginary
    return JobResult(summary, {"optimize.traj": recorder.images}, converged)


def run_ts(
    atoms: Any,
    calculator: HessianCalculator,
    *,
    fmax: float,
    steps: int,
    irc: bool = True,
    internal: bool = True,
    refresh_hessian: bool = False,
    progress: Progress | None = None,
) -> JobResult:
    """Search a saddle with Sella from ``atoms``, then check its frequencies and its IRC.

    Success means: Sella converged, exactly one imaginary frequency, and (with
    ``irc``) both IRC branches reached a minimum. The frequencies and the IRC's
    first direction come from finite differences of the calculator's forces,
    whatever the source. Unless ``refresh_hessian`` is set, the source's
    Hessian is taken at the start only. Sella then refines it by quasi-Newton
    updates instead of requesting the source again every 3 steps. On the
    reactions of ``benchmarks/molecules_ase.py`` this kept the predicted
    Hessian, which is poor far from minima, from stalling the search.
    """
    from hessframe_molecules.ase_tools.geometry import bond_signature
    from hessframe_molecules.ase_tools.transition_state import find_transition_state, follow_irc
    from hessframe_molecules.ase_tools.vibrations import analyze_vibrations

    atoms = atoms.copy()
    atoms.calc = calculator
    start = time.perf_counter()
    recorder = _Recorder(atoms, progress)
    search = find_transition_state(
        atoms,
        calculator.hessian_source,
        fmax=fmax,
        steps=steps,
        internal=internal,
        observers=(recorder,),
        **({} if refresh_hessian or calculator.hessian_source is None else START_ONLY),
    )
    search_calls = calculator.num_force_calls

    # Check the saddle on the calculator's own surface, because a predicted Hessian
    # can miss the negative mode there even when Sella found the right saddle.
    check_source = calculator_hessian(calculator)
    analysis = analyze_vibrations(atoms, check_source, temperature_k=None)
    summary = _final_state(atoms, calculator, fmax, search.converged)
    summary.update(
        steps=search.steps,
        force_calls=search_calls,
        hessian_calls=search.hessian_calls,
        hessian_gradient_calls=_gradient_calls(calculator, atoms, search.hessian_calls),
        frequencies_cm1=[float(value) for value in analysis.frequencies_cm1],
        frequencies_from=analysis.hessian_source,
        num_imaginary=analysis.num_imaginary,
    )
    trajectories = {"ts.traj": recorder.images}
    success = search.converged and analysis.num_imaginary == 1

    if irc:
        path = follow_irc(atoms, check_source)
        summary["irc"] = {
            "forward_converged": path.forward_converged,
            "reverse_converged": path.reverse_converged,
            "forward_energy_ev": path.forward_energy_ev,
            "reverse_energy_ev": path.reverse_energy_ev,
            "forward_bonds": dict(bond_signature(path.forward)),
            "reverse_bonds": dict(bond_signature(path.reverse)),
            "force_calls": calculator.num_force_calls - search_calls,
        }
        trajectories["irc-ends.traj"] = [path.reverse, atoms.copy(), path.forward]
        success = success and path.converged
    summary["success"] = bool(success)
    summary["seconds"] = time.perf_counter() - start
    return JobResult(summary, trajectories, bool(success))


def run_vib(
    atoms: Any,
    calculator: HessianCalculator,
    *,
    fmax: float,
    steps: int,
    optimize: bool = True,
    temperature_k: float | None = 298.15,
    pressure_pa: float = 101325.0,
    symmetry_number: int = 1,
    progress: Progress | None = None,
) -> JobResult:
    """Relax ``atoms`` (unless ``optimize`` is False) and analyse its vibrations.

    The Hessian comes from the calculator's source, or, without one, from
    central differences of the calculator's forces (6N force calls).
    """
    from hessframe_molecules.ase_tools.vibrations import analyze_vibrations

    converged = True
    trajectories: dict[str, list[Any]] = {}
    summary: dict[str, Any] = {}
    if optimize:
        relaxation = run_optimize(atoms, calculator, fmax=fmax, steps=steps, progress=progress)
        atoms = relaxation.trajectories["optimize.traj"][-1].copy()
        converged = relaxation.converged
        trajectories["vib-relax.traj"] = relaxation.trajectories["optimize.traj"]
        summary["relaxation"] = {
            key: relaxation.summary[key] for key in ("converged", "fmax", "steps", "force_calls")
        }
    atoms = atoms.copy()
    atoms.calc = calculator
    energy = float(atoms.get_potential_energy())
    source = hessian_for_checks(calculator)
    analysis = analyze_vibrations(
        atoms,
        source,
        potential_energy_ev=energy,
        temperature_k=temperature_k,
        pressure_pa=pressure_pa,
        symmetry_number=symmetry_number,
    )
    summary.update(_final_state(atoms, calculator, fmax, converged))
    summary.update(analysis.summary())
    return JobResult(summary, trajectories, converged)


def _gradient_calls(calculator: HessianCalculator, atoms: Any, hessian_calls: int) -> int:
    """Return the gradient calls that ``hessian_calls`` Hessians of a finite-difference source cost.

    Central differences take two gradients per coordinate, so 6N per Hessian.
    A source that is not a finite-difference one costs none.
    """
    source = calculator.hessian_source
    if source is None or not source.name.endswith("finite-difference"):
        return 0
    return 6 * len(atoms) * hessian_calls


def _final_state(
    atoms: Any, calculator: HessianCalculator, fmax: float, converged: bool
) -> dict[str, Any]:
    forces = atoms.get_forces()
    return {
        "formula": atoms.get_chemical_formula(),
        "num_atoms": len(atoms),
        "converged": bool(converged),
        "fmax_target": float(fmax),
        "fmax": float(np.linalg.norm(forces, axis=1).max()),
        "energy_ev": float(atoms.get_potential_energy()),
        "force_calls": calculator.num_force_calls,
        "hessian": None if calculator.hessian_source is None else calculator.hessian_source.name,
    }


def write_outputs(folder: Path, result: JobResult, summary_name: str) -> list[Path]:
    """Write the trajectories and the JSON summary into ``folder``, all or nothing.

    Every file goes to a temporary name in ``folder`` first. The temporary
    files are renamed over the targets only after all were written, and they
    are removed if any write fails.

    Returns:
        The paths written.
    """
    import json

    writers: dict[Path, Callable[[Path], None]] = {}
    for name, images in result.trajectories.items():
        if images:
            writers[folder / name] = _trajectory_writer(images)
    text = json.dumps(result.summary, indent=2, sort_keys=True) + "\n"
    writers[folder / summary_name] = lambda path: path.write_text(text, encoding="utf-8")

    temporary: dict[Path, Path] = {}
    try:
        for target, write in writers.items():
            handle, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
            os.close(handle)
            temporary[target] = Path(name)
            write(Path(name))
            # mkstemp creates files readable by their owner only, so apply open()'s permissions.
            os.chmod(name, 0o666 & ~_current_umask())
        for target, temp_path in temporary.items():
            os.replace(temp_path, target)
    finally:
        for temp_path in temporary.values():
            temp_path.unlink(missing_ok=True)
    return list(writers)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _trajectory_writer(images: Sequence[Any]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from ase.io.trajectory import Trajectory

        with Trajectory(str(path), "w") as trajectory:
            for image in images:
                trajectory.write(image)

    return write


def resolve_cli_hessian(name: str) -> HessianSource | None:
    """Return the source for a ``--hessian`` choice, or None for ``'none'``."""
    if name == "none":
        return None
    return resolve_hessian(name, argument="--hessian")
