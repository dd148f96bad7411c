"""Benchmark molecular Hessians on the GFN2-xTB surface: optimization, saddles, vibrations.

Three benchmarks in one run, every method on the same inputs in this process,
with GFN2-xTB (tblite's ASE calculator) giving every energy and force:

1. Geometry optimization from perturbed starts (the xTB minimum of each test
   molecule plus Gaussian displacements of ``--displacement`` Å per
   coordinate) to fmax 0.01 eV/Å. Force calls of ASE's BFGS, LBFGS and FIRE,
   of ASE's BFGS started from the exact finite-difference Hessian, and of
   hessframe's ``HessianRFO`` started from the xTB finite-difference Hessian
   and from the ``--hessian`` source. Finite-difference Hessians cost 6N
   gradient calls each, reported in their own column. Target: the
   ``--hessian`` row needs at least 30% fewer force calls than BFGS (median
   over starts) and reaches BFGS's minimum (both ends, relaxed further to
   fmax 0.001 eV/Å, within 1e-4 eV).
2. Transition states of small H/C/N/O reactions. Reactant and product come
   from atom-mapped SMILES (RDKit, ETKDG), are relaxed with xTB and aligned;
   the highest image of a loosely relaxed nudged elastic band (IDPP start) is
   the common starting guess. Sella runs from it alone, with the xTB
   finite-difference Hessian, and with the ``--hessian`` source. Each Hessian
   is requested either as often as Sella rediagonalizes (every 3 steps while
   its model lacks a negative mode) or at the start only, with that schedule
   pushed beyond the run. A search succeeds when Sella converges to fmax 0.01 eV/Å, the xTB
   finite-difference Hessian there has exactly one imaginary frequency, and
   the two ends of Sella's IRC, relaxed, have the bonds of the reactant and of
   the product. Target: the ``--hessian`` source needs fewer xTB gradient
   calls (median) than Sella alone at an equal or better success rate.
3. Vibrations at the xTB minima of the test molecules: frequency MAE (cm⁻¹)
   and zero-point-energy error of each Hessian source against xTB finite
   differences, and the time of each Hessian.

The test molecules are the ``test`` split of the molecules data set (G2 and
the shipped SMILES list). ``--hessian predicted`` and ``autodiff`` need the
network's shipped weights; until they exist, run with ``--hessian xtb-fd``.

Run: ``python benchmarks/molecules_ase.py [--hessian predicted|autodiff|xtb-fd]``
(a few minutes on 2 cores) or ``--quick`` (three molecules, two reactions).
Writes ``benchmarks/results/molecules_ase.md`` unless ``--quick``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

DEFAULT_OUTPUT = "molecules_ase.md"
FMAX = 0.01
TARGET_CALL_REDUCTION = 0.30
SAME_MINIMUM_EV = 1e-4
MAX_STEPS = 1000
#: Sella's nsteps_per_diag for the "at the start" rows: never due within a run.
START_ONLY_STEPS = 10**6

#: Reactions as atom-mapped SMILES (reactant, product). The map numbers pair the atoms.
REACTIONS = (
    ("HCN -> HNC", "[H:1][C:2]#[N:3]", "[H:1][N+:3]#[C-:2]"),
    ("HNCO -> HOCN", "[H:1][N:2]=[C:3]=[O:4]", "[H:1][O:4][C:3]#[N:2]"),
    ("H2CO -> HCOH", "[H:1][C:2](=[O:3])[H:4]", "[H:1][C:2][O:3][H:4]"),
    (
        "CH3NC -> CH3CN",
        "[C:1]([H:4])([H:5])([H:6])[N+:2]#[C-:3]",
        "[C:1]([H:4])([H:5])([H:6])[C:3]#[N:2]",
    ),
    (
        "formamide -> formimidic acid",
        "[H:1][C:2](=[O:3])[N:4]([H:5])[H:6]",
        "[H:1][C:2]([O:3][H:6])=[N:4][H:5]",
    ),
    (
        "vinyl alcohol -> acetaldehyde",
        "[C:1](=[C:2]([O:3][H:4])[H:5])([H:6])[H:7]",
        "[C:1]([C:2](=[O:3])[H:5])([H:4])([H:6])[H:7]",
    ),
    ("CH2NH -> HCNH2", "[C:1](=[N:2][H:3])([H:4])[H:5]", "[C:1]([H:4])[N:2]([H:3])[H:5]"),
    ("ketene -> ethynol", "[C:1](=[C:2]=[O:3])([H:4])[H:5]", "[C:1](#[C:2][O:3][H:5])[H:4]"),
)


def xtb():
    """Return a GFN2-xTB calculator wrapped so that it counts its force calls."""
    from hessframe_molecules.ase_tools.calculators import HessianCalculator
    from tblite.ase import TBLite

    return HessianCalculator(TBLite(method="GFN2-xTB", verbosity=0))


def relaxed(atoms, fmax: float = 1e-3):
    """Return a copy of ``atoms`` relaxed with xTB (BFGS) to ``fmax``."""
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = xtb()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=MAX_STEPS)
    atoms.calc = None
    return atoms


def load_test_molecules(limit: int | None):
    """Return (name, atoms) of the data set's test molecules, sorted by name."""
    from hessframe_molecules.build import g2_specs, initial_atoms, smiles_specs

    specs = [spec for spec in (*g2_specs(), *smiles_specs()) if spec.split == "test"]
    specs.sort(key=lambda spec: spec.molecule_id)
    if limit is not None:
        specs = specs[:limit]
    molecules = []
    for spec in specs:
        atoms = initial_atoms(spec)
        atoms.calc = None
        molecules.append((spec.molecule_id, atoms))
    return molecules


# ----------------------------------------------------------------------
# 1. Geometry optimization


@dataclass(frozen=True)
class OptimizationRun:
    molecule: str
    method: str
    force_calls: int
    hessian_gradient_calls: int
    energy_ev: float
    converged: bool
    basin_energy_ev: float


def optimization_methods(hessian: str):
    """Return (label, make_optimizer(atoms) -> (optimizer, hessian gradient calls))."""
    from ase.optimize import BFGS, FIRE, LBFGS
    from hessframe_molecules.ase_tools.geometry import rigid_motion_basis
    from hessframe_molecules.ase_tools.hessians import resolve_hessian
    from hessframe_molecules.ase_tools.optimizer import HessianRFO

    def bfgs_exact(atoms):
        # ASE's BFGS steps by |eigenvalue|⁻¹, so the near-zero rigid-motion
        # eigenvalues of the exact Hessian would give huge useless steps. They
        # get ASE's default curvature (alpha, 70 eV/Å²) instead.
        optimizer = BFGS(atoms, logfile=None)
        rigid = rigid_motion_basis(atoms.get_positions())
        optimizer.H0 = resolve_hessian("xtb-fd")(atoms) + optimizer.alpha * rigid @ rigid.T
        return optimizer, 6 * len(atoms)

    def rfo(source_name, refresh_every=None):
        def make(atoms):
            optimizer = HessianRFO(atoms, source_name, refresh_every=refresh_every, logfile=None)
            return optimizer, 6 * len(atoms) if source_name == "xtb-fd" else 0

        return make

    methods = [
        ("ASE BFGS", lambda atoms: (BFGS(atoms, logfile=None), 0)),
        ("ASE LBFGS", lambda atoms: (LBFGS(atoms, logfile=None), 0)),
        ("ASE FIRE", lambda atoms: (FIRE(atoms, logfile=None), 0)),
        ("ASE BFGS from xTB-FD Hessian", bfgs_exact),
        ("hessframe HessianRFO from xTB-FD Hessian", rfo("xtb-fd")),
    ]
    if hessian != "xtb-fd":
        methods.append((f"hessframe HessianRFO from {hessian} Hessian", rfo(hessian)))
        methods.append(
            (
                f"hessframe HessianRFO from {hessian} Hessian, refreshed every 5 steps",
                rfo(hessian, 5),
            )
        )
    return methods


def run_optimizations(
    molecules, hessian: str, displacement: float, starts: int
) -> list[OptimizationRun]:
    runs = []
    methods = optimization_methods(hessian)
    for index, (name, atoms) in enumerate(molecules):
        minimum = relaxed(atoms)
        for start_index in range(starts):
            rng = np.random.default_rng(1000 * index + start_index)
            start = minimum.copy()
            start.positions += rng.normal(scale=displacement, size=start.positions.shape)
            label_start = f"{name} #{start_index}"
            for label, make in methods:
                probe = start.copy()
                calculator = xtb()
                probe.calc = calculator
                optimizer, hessian_calls = make(probe)
                converged = bool(optimizer.run(fmax=FMAX, steps=MAX_STEPS))
                calls = calculator.num_force_calls
                energy = float(probe.get_potential_energy())
                # Relax each run's end further to 1e-3 eV/Å to find its minimum. At fmax 0.01
                # this separates basins that differ by less than the loose end energies do.
                basin = relaxed(probe)
                basin.calc = xtb()
                runs.append(
                    OptimizationRun(
                        label_start,
                        label,
                        calls,
                        hessian_calls,
                        energy,
                        converged,
                        float(basin.get_potential_energy()),
                    )
                )
        _common.progress(f"optimized {name} ({index + 1}/{len(molecules)})")
    return runs


def optimization_report(runs: list[OptimizationRun], hessian: str) -> tuple[list[str], bool]:
    methods = list(dict.fromkeys(run.method for run in runs))
    bfgs = {run.molecule: run for run in runs if run.method == "ASE BFGS"}

    def same_basin(run: OptimizationRun) -> bool:
        return abs(run.basin_energy_ev - bfgs[run.molecule].basin_energy_ev) < SAME_MINIMUM_EV

    def same_energy(run: OptimizationRun) -> bool:
        return abs(run.energy_ev - bfgs[run.molecule].energy_ev) < SAME_MINIMUM_EV

    rows = []
    for method in methods:
        mine = [run for run in runs if run.method == method]
        calls = [run.force_calls for run in mine]
        ratios = [run.force_calls / bfgs[run.molecule].force_calls for run in mine]
        rows.append(
            [
                method,
                statistics.median(calls),
                round(statistics.mean(calls), 1),
                statistics.median(run.hessian_gradient_calls for run in mine),
                round(1 - statistics.median(ratios), 3),
                f"{sum(run.converged for run in mine)}/{len(mine)}",
                f"{sum(same_basin(run) for run in mine)}/{len(mine)}",
                f"{sum(same_energy(run) for run in mine)}/{len(mine)}",
            ]
        )
    target_method = (
        "hessframe HessianRFO from xTB-FD Hessian"
        if hessian == "xtb-fd"
        else f"hessframe HessianRFO from {hessian} Hessian"
    )
    target = next(row for row in rows if row[0] == target_method)
    reduction = target[4]
    mine = [run for run in runs if run.method == target_method]
    passed = reduction >= TARGET_CALL_REDUCTION and all(same_basin(run) for run in mine)
    header = [
        "method",
        "median force calls",
        "mean force calls",
        "median FD-Hessian gradient calls",
        "median saving vs BFGS",
        "converged",
        "same minimum as BFGS",
        "end energy within 1e-4 eV of BFGS's",
    ]
    misses = [
        f"{run.molecule} ({run.basin_energy_ev - bfgs[run.molecule].basin_energy_ev:+.2g} eV)"
        for run in mine
        if not same_basin(run)
    ]
    lines = [
        "## 1. Geometry optimization (force calls to fmax 0.01 eV/Å)",
        "",
        _common.markdown_table(header, rows),
        "",
        "Same minimum: the end of the run and the end of BFGS's run from the same start, each "
        "relaxed further to fmax 0.001 eV/Å, lie within 1e-4 eV. The last column compares the "
        "end energies at fmax 0.01 eV/Å directly; along soft torsions a force of 0.01 eV/Å "
        "leaves energy differences above 1e-4 eV between two ends in the same minimum. The "
        "median saving is over the per-start ratios of force calls to BFGS's. FD-Hessian "
        "gradient calls (6N per Hessian) are not in the force-call columns.",
        "",
        f"Target: `{target_method}` saves at least {TARGET_CALL_REDUCTION:.0%} of BFGS's force "
        f"calls (median) and reaches BFGS's minimum from every start: "
        f"**{_common.verdict(passed)}** (saving {reduction:.1%}; "
        f"different minimum: {', '.join(misses) if misses else 'none'}).",
    ]
    totals = [run.force_calls + run.hessian_gradient_calls for run in mine]
    if any(run.hessian_gradient_calls for run in mine):
        lines.append("")
        lines.append(
            f"Counting the gradient calls of its finite-difference Hessian, `{target_method}` "
            f"needs a median of {statistics.median(totals)} calls against BFGS's "
            f"{statistics.median(run.force_calls for run in bfgs.values())}; the saving pays "
            "off only with a Hessian that costs no force calls, such as the predicted one."
        )
    return lines, passed


# ----------------------------------------------------------------------
# 2. Transition states


def mapped_atoms(smiles: str, seed: int = 0):
    """Return the ``ase.Atoms`` of an atom-mapped SMILES, atoms ordered by map number."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    parameters = Chem.SmilesParserParams()
    parameters.removeHs = False
    molecule = Chem.MolFromSmiles(smiles, parameters)
    molecule.UpdatePropertyCache(strict=False)
    options = AllChem.ETKDGv3()
    options.randomSeed = seed
    if AllChem.EmbedMolecule(molecule, options) != 0:
        raise RuntimeError(f"RDKit embedding failed for {smiles}: check the SMILES or the seed")
    positions = molecule.GetConformer().GetPositions()
    map_numbers = [atom.GetAtomMapNum() for atom in molecule.GetAtoms()]
    order = sorted(range(molecule.GetNumAtoms()), key=map_numbers.__getitem__)
    symbols = [molecule.GetAtomWithIdx(i).GetSymbol() for i in order]
    return Atoms(symbols, positions=positions[order])


def ts_guess(reactant, product, images: int = 9, fmax: float = 0.5):
    """Return the highest image of a loosely relaxed xTB NEB from reactant to product.

    The path starts from an IDPP interpolation. A few FIRE steps of the
    nudged elastic band (to ``fmax`` eV/Å, at most 200 steps) move its images
    off the high-energy straight lines that IDPP can leave, so the guess sits
    near the saddle region. These force calls are not counted for any method.
    """
    from ase.build import minimize_rotation_and_translation
    from ase.mep import NEB
    from ase.optimize import FIRE

    product = product.copy()
    minimize_rotation_and_translation(reactant, product)
    path = [reactant.copy() for _ in range(images - 1)] + [product]
    for image in path:
        image.calc = xtb()
    neb = NEB(path, method="improvedtangent")
    neb.interpolate("idpp")
    FIRE(neb, logfile=None).run(fmax=fmax, steps=200)
    energies = [float(image.get_potential_energy()) for image in path[1:-1]]
    guess = path[1 + int(np.argmax(energies))].copy()
    guess.calc = None
    return guess


@dataclass(frozen=True)
class SaddleRun:
    reaction: str
    method: str
    gradient_calls: int
    hessian_gradient_calls: int
    converged: bool
    one_imaginary: bool
    irc_ends: bool
    imaginary_cm1: float

    @property
    def success(self) -> bool:
        return self.converged and self.one_imaginary and self.irc_ends


def check_saddle(atoms, reactant_bonds, product_bonds) -> tuple[bool, bool, float]:
    """Return (one imaginary frequency, IRC ends match reactant and product, lowest frequency)."""
    from hessframe_molecules.ase_tools.geometry import bond_signature
    from hessframe_molecules.ase_tools.transition_state import follow_irc
    from hessframe_molecules.ase_tools.vibrations import analyze_vibrations

    atoms = atoms.copy()
    atoms.calc = xtb()
    analysis = analyze_vibrations(atoms, "xtb-fd", temperature_k=None)
    one_imaginary = analysis.num_imaginary == 1
    path = follow_irc(atoms, "xtb-fd", steps=500)
    ends = {
        bond_signature(relaxed(path.forward, FMAX)),
        bond_signature(relaxed(path.reverse, FMAX)),
    }
    irc_ends = path.converged and ends == {reactant_bonds, product_bonds}
    return one_imaginary, irc_ends, float(analysis.frequencies_cm1[0])


def run_saddles(reactions, hessian: str) -> list[SaddleRun]:
    from hessframe_molecules.ase_tools.geometry import bond_signature
    from hessframe_molecules.ase_tools.transition_state import find_transition_state

    # Sella calls its hessian_function again every 3 steps while its model has no
    # negative mode (its default nsteps_per_diag). The "at the start" rows push that
    # schedule beyond the run, so the Hessian of the starting guess is updated by
    # Sella's quasi-Newton steps instead of being replaced along the path.
    start_only = {"nsteps_per_diag": START_ONLY_STEPS}
    sources = [
        ("Sella alone", None, {}),
        ("Sella + xTB-FD Hessian", "xtb-fd", {}),
        ("Sella + xTB-FD Hessian at the start", "xtb-fd", start_only),
    ]
    if hessian != "xtb-fd":
        sources.append((f"Sella + {hessian} Hessian", hessian, {}))
        sources.append((f"Sella + {hessian} Hessian at the start", hessian, start_only))
    runs = []
    for name, reactant_smiles, product_smiles in reactions:
        reactant = relaxed(mapped_atoms(reactant_smiles), FMAX)
        product = relaxed(mapped_atoms(product_smiles), FMAX)
        reactant_bonds, product_bonds = bond_signature(reactant), bond_signature(product)
        guess = ts_guess(reactant, product)
        for label, source, sella_kwargs in sources:
            atoms = guess.copy()
            calculator = xtb()
            atoms.calc = calculator
            try:
                search = find_transition_state(atoms, source, fmax=FMAX, steps=300, **sella_kwargs)
                converged, hessian_calls = search.converged, search.hessian_calls
            except (RuntimeError, np.linalg.LinAlgError) as error:
                logging.getLogger(__name__).warning("%s, %s: Sella failed: %s", name, label, error)
                converged, hessian_calls = False, 0
            calls = calculator.num_force_calls
            one_imaginary, irc_ends, lowest = False, False, float("nan")
            if converged:
                try:
                    one_imaginary, irc_ends, lowest = check_saddle(
                        atoms, reactant_bonds, product_bonds
                    )
                except RuntimeError as error:  # tblite's SCF failures are RuntimeErrors
                    logging.getLogger(__name__).warning(
                        "%s, %s: saddle check failed: %s", name, label, error
                    )
            fd_calls = 6 * len(atoms) * hessian_calls if source == "xtb-fd" else 0
            runs.append(
                SaddleRun(name, label, calls, fd_calls, converged, one_imaginary, irc_ends, lowest)
            )
        _common.progress(f"transition state of {name}")
    return runs


def saddle_report(runs: list[SaddleRun], hessian: str) -> tuple[list[str], bool]:
    header = [
        "reaction",
        "method",
        "xTB gradient calls",
        "FD-Hessian gradient calls",
        "converged",
        "one imaginary",
        "IRC reaches both ends",
        "lowest frequency (cm⁻¹)",
    ]
    rows = [
        [
            run.reaction,
            run.method,
            run.gradient_calls,
            run.hessian_gradient_calls,
            run.converged,
            run.one_imaginary,
            run.irc_ends,
            round(run.imaginary_cm1, 1),
        ]
        for run in runs
    ]
    methods = list(dict.fromkeys(run.method for run in runs))
    summary_rows = []
    for method in methods:
        mine = [run for run in runs if run.method == method]
        summary_rows.append(
            [
                method,
                statistics.median(run.gradient_calls for run in mine),
                statistics.median(run.gradient_calls + run.hessian_gradient_calls for run in mine),
                f"{sum(run.success for run in mine)}/{len(mine)}",
            ]
        )
    target_method = (
        "Sella + xTB-FD Hessian" if hessian == "xtb-fd" else f"Sella + {hessian} Hessian"
    )
    alone = next(row for row in summary_rows if row[0] == "Sella alone")
    successes = {row[0]: int(row[3].split("/")[0]) for row in summary_rows}

    def meets_target(method: str) -> bool:
        row = next(row for row in summary_rows if row[0] == method)
        return row[1] < alone[1] and successes[method] >= successes["Sella alone"]

    target = next(row for row in summary_rows if row[0] == target_method)
    passed = meets_target(target_method)
    start_method = f"{target_method} at the start"
    start_row = next(row for row in summary_rows if row[0] == start_method)
    lines = [
        "## 2. Transition states (Sella, fmax 0.01 eV/Å)",
        "",
        _common.markdown_table(header, rows),
        "",
        _common.markdown_table(
            ["method", "median xTB gradient calls", "median calls incl. FD Hessians", "success"],
            summary_rows,
        ),
        "",
        f"Target: `{target_method}` needs fewer xTB gradient calls (median) than Sella alone at "
        f"an equal or better success rate: **{_common.verdict(passed)}** "
        f"({target[1]} against {alone[1]} calls, success {target[3]} against {alone[3]}). "
        f"With the Hessian asked for at the start only (`{start_method}`): "
        f"**{_common.verdict(meets_target(start_method))}** ({start_row[1]} calls, success "
        f"{start_row[3]}).",
    ]
    if target[2] != target[1]:
        lines.append("")
        lines.append(
            f"Counting the gradient calls of its finite-difference Hessians, `{target_method}` "
            f"needs a median of {target[2]} calls against {alone[2]} for Sella alone."
        )
    return lines, passed


# ----------------------------------------------------------------------
# 3. Vibrations


def run_vibrations(molecules, hessian: str) -> list[str]:
    from hessframe_molecules.ase_tools.vibrations import analyze_vibrations

    sources = {"xtb-fd": ["xtb-fd"], "predicted": ["xtb-fd", "predicted", "autodiff"]}.get(
        hessian, ["xtb-fd", hessian]
    )
    results: dict[str, list] = {source: [] for source in sources}
    for name, atoms in molecules:
        minimum = relaxed(atoms)
        for source in sources:
            results[source].append((name, analyze_vibrations(minimum, source, temperature_k=None)))
    reference = {name: analysis for name, analysis in results["xtb-fd"]}
    rows = []
    for source in sources:
        errors, zpe_errors, seconds = [], [], []
        for name, analysis in results[source]:
            expected = reference[name]
            errors.extend(np.abs(analysis.frequencies_cm1 - expected.frequencies_cm1))
            zpe_errors.append(abs(analysis.zpe_ev - expected.zpe_ev) * 1000)
            seconds.append(analysis.hessian_seconds)
        rows.append(
            [
                source,
                float(np.mean(errors)),
                float(np.mean(zpe_errors)),
                float(np.max(zpe_errors)),
                statistics.median(seconds) * 1000,
            ]
        )
    return [
        "## 3. Vibrations at GFN2-xTB minima, against xTB finite differences",
        "",
        _common.markdown_table(
            [
                "Hessian",
                "frequency MAE (cm⁻¹)",
                "ZPE MAE (meV)",
                "largest ZPE error (meV)",
                "median time per Hessian (ms)",
            ],
            rows,
        ),
        "",
        f"{len(molecules)} molecules; the xTB-FD row is the reference, so its errors are zero by "
        "construction and only its time is informative.",
    ]


# ----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hessian",
        choices=("predicted", "autodiff", "xtb-fd"),
        default="predicted",
        help="Hessian source whose rows carry the targets (default: predicted)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="run three molecules and two reactions only"
    )
    parser.add_argument("--max-molecules", type=_common.positive_int, default=None)
    parser.add_argument(
        "--displacement", type=float, default=0.05, help="Gaussian displacement per coordinate (Å)"
    )
    parser.add_argument(
        "--starts",
        type=_common.positive_int,
        default=3,
        help="number of perturbed starts per molecule",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    output = _common.resolve_output(args, DEFAULT_OUTPUT)
    _common.set_threads(1)
    logging.basicConfig(level=logging.WARNING)

    limit = 3 if args.quick else args.max_molecules
    if args.quick:
        args.starts = 1
    molecules = load_test_molecules(limit)
    reactions = REACTIONS[:2] if args.quick else REACTIONS
    start = time.perf_counter()

    _common.progress(f"optimizing {len(molecules)} test molecules")
    optimization_lines, _ = optimization_report(
        run_optimizations(molecules, args.hessian, args.displacement, args.starts), args.hessian
    )
    _common.progress(f"searching {len(reactions)} transition states")
    saddle_lines, _ = saddle_report(run_saddles(reactions, args.hessian), args.hessian)
    _common.progress("vibrations")
    vibration_lines = run_vibrations(molecules, args.hessian)

    from importlib.metadata import version

    report = "\n".join(
        [
            "# Molecules: Hessian-accelerated optimization, transition states and vibrations",
            "",
            *_common.environment_lines(1, args.quick),
            f"- ASE {version('ase')}, Sella {version('sella')}, tblite {version('tblite')} "
            "(GFN2-xTB for every energy and force)",
            f"- Hessian source of the target rows: `{args.hessian}`; test molecules: "
            f"{len(molecules)} ({', '.join(name for name, _ in molecules)}); {args.starts} starts "
            f"per molecule, displaced by {args.displacement} Å (Gaussian, per coordinate) from "
            "the xTB minimum",
            f"- command: `python benchmarks/molecules_ase.py --hessian {args.hessian}`; "
            f"run time {time.perf_counter() - start:.0f} s",
            "",
            *optimization_lines,
            "",
            *saddle_lines,
            "",
            *vibration_lines,
            "",
        ]
    )
    print(report)
    _common.write_report(report, output)


if __name__ == "__main__":
    main()
