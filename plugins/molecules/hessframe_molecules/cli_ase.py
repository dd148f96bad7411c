"""The ``hessframe molecules optimize|ts|vib`` commands: a Hessian provider put to work in ASE.

Each command reads STRUCTURE, a name of ASE's G2 collection or any file ASE
reads. It attaches the calculator chosen by ``--calculator`` (GFN2-xTB through
tblite, or the trained network), paired with the Hessian chosen by
``--hessian``. After the run it writes its trajectory and a JSON summary into
``--out``, where all files appear together or none changes. ``--json`` prints
the summary to stdout; otherwise a short text report is printed. A progress
bar on stderr follows the optimizer steps. A run that does not converge still
writes its results, prints a warning and exits with status 1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from hessframe.clickutils import prepare_output_folder, reject_non_finite
from hessframe.errors import HessframeError

logger = logging.getLogger(__name__)

DEFAULT_FMAX = 0.01
#: vib relaxes further by default. Ethanol relaxed with GFN2-xTB to fmax 0.008 eV/Å has its
#: lowest mode 2.7 cm⁻¹ (ZPE 0.2 meV) away from its value at 5e-5 eV/Å; at 7e-4 eV/Å, 0.2 cm⁻¹.
DEFAULT_VIB_FMAX = 0.001
DEFAULT_STEPS = 500
DEFAULT_OUT = Path("hessframe-out")
#: --hessian choices that run the network, which knows H, C, N and O only.
NETWORK_HESSIANS = ("predicted", "autodiff")

_CALCULATOR_HELP = (
    "Energy and forces: 'xtb' is GFN2-xTB through tblite, 'model' the trained network."
)
_HESSIAN_HELP = (
    "Hessian source: 'predicted' (the network's Hessian head), 'autodiff' (Hessian of the "
    "network's energy), 'xtb-fd' (central differences of GFN2-xTB gradients, 6N calls), or "
    "'none'."
)


def _common_options(default_fmax: float = DEFAULT_FMAX) -> Any:
    """Return a decorator that adds STRUCTURE and the options every command shares."""

    def decorate(function: Any) -> Any:
        for option in reversed(_shared_options(default_fmax)):
            function = option(function)
        return function

    return decorate


def _shared_options(default_fmax: float) -> list[Any]:
    return [
        click.argument("structure"),
        click.option(
            "--calculator",
            type=click.Choice(["xtb", "model"]),
            default="xtb",
            show_default=True,
            help=_CALCULATOR_HELP,
        ),
        click.option(
            "--hessian",
            type=click.Choice(["predicted", "autodiff", "xtb-fd", "none"]),
            default="predicted",
            show_default=True,
            help=_HESSIAN_HELP,
        ),
        click.option(
            "--fmax",
            type=click.FloatRange(min=0, min_open=True),
            default=default_fmax,
            show_default=True,
            callback=reject_non_finite,
            help="Convergence threshold on the largest atomic force, in eV/Å.",
        ),
        click.option(
            "--steps",
            type=click.IntRange(min=1),
            default=DEFAULT_STEPS,
            show_default=True,
            help="Largest number of optimizer steps.",
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help="Folder for the trajectory and the JSON summary "
            "[default: hessframe-out/molecules-COMMAND-NAME].",
        ),
        click.option(
            "--json", "as_json", is_flag=True, help="Print the summary as one JSON object."
        ),
    ]


def _prepare(
    structure: str, calculator_name: str, hessian_name: str, out: Path | None, command: str
):
    """Read the structure, build the calculator and check the output folder."""
    from hessframe_molecules.ase_tools.jobs import make_calculator, resolve_cli_hessian
    from hessframe_molecules.ase_tools.structures import load_structure

    try:
        atoms = load_structure(structure)
    except HessframeError as error:
        raise click.BadParameter(
            str(error).removeprefix("STRUCTURE "), param_hint="STRUCTURE"
        ) from error
    if calculator_name == "model" or hessian_name in NETWORK_HESSIANS:
        from hessframe_molecules.model import check_molecule

        try:
            check_molecule(atoms, name=f"STRUCTURE {structure!r}")
        except HessframeError as error:
            uses = [] if calculator_name != "model" else ["--calculator model"]
            if hessian_name in NETWORK_HESSIANS:
                uses.append(f"--hessian {hessian_name}")
            raise click.BadParameter(
                f"{str(error).removeprefix('STRUCTURE ')} (needed by {' and '.join(uses)}; "
                "GFN2-xTB takes other elements with --calculator xtb and --hessian xtb-fd "
                "or none)",
                param_hint="STRUCTURE",
            ) from error

    try:
        source = resolve_cli_hessian(hessian_name)
    except HessframeError as error:
        raise click.BadParameter(str(error), param_hint="--hessian") from error
    try:
        calculator = make_calculator(calculator_name, source)
    except HessframeError as error:
        raise click.BadParameter(str(error), param_hint="--calculator") from error

    if calculator_name == "model" or hessian_name in NETWORK_HESSIANS:
        from hessframe_molecules.ase_tools.calculators import domain_problems

        for problem in domain_problems(atoms):
            click.echo(
                f"warning: STRUCTURE is outside the network's training data: {problem}", err=True
            )

    if out is None:
        out = DEFAULT_OUT / f"molecules-{command}-{Path(structure).stem}"
    prepare_output_folder(out, "--out")
    return atoms, calculator, out


class _ProgressBar:
    """A tqdm bar on stderr over optimizer steps, showing energy and fmax."""

    def __init__(self, total: int, description: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=description, unit="step", leave=False)

    def __call__(self, step: int, energy: float, fmax: float) -> None:
        self.bar.n = step
        self.bar.set_postfix(energy=f"{energy:.5f} eV", fmax=f"{fmax:.3g} eV/Å")

    def close(self) -> None:
        self.bar.close()


def _run(job: Any, out: Path, summary_name: str, as_json: bool, summary_extra: dict) -> None:
    """Run a job with a progress bar, write its files and report; exit 1 when not converged."""
    from ase.calculators.calculator import CalculationFailed

    from hessframe_molecules.ase_tools.jobs import write_outputs

    try:
        result = job()
    except HessframeError as error:
        raise click.ClickException(f"{error}. No file was written.") from error
    except CalculationFailed as error:
        raise click.ClickException(
            f"the calculator failed: {error}; check that STRUCTURE is a sensible closed-shell "
            "molecule. No file was written."
        ) from error
    result.summary.update(summary_extra)
    written = write_outputs(out, result, summary_name)
    if as_json:
        click.echo(json.dumps(result.summary, sort_keys=True))
    else:
        _print_report(result.summary, written)
    if not result.converged:
        click.echo(_failure_warning(result.summary), err=True)
        raise SystemExit(1)


def _failure_warning(summary: dict) -> str:
    """Say why a job failed: fmax not reached, or (ts) the saddle check failed."""
    if not summary["converged"]:
        return (
            f"warning: not converged: final fmax {summary['fmax']:.4g} eV/Å "
            f"(target {summary['fmax_target']:g}); the results above are those of the last step"
        )
    # Only ts fails when converged: its saddle check (frequencies, IRC) did not pass.
    reasons = []
    if summary.get("num_imaginary") != 1:
        reasons.append(
            f"{summary.get('num_imaginary')} imaginary frequencies where a first-order saddle "
            "has exactly 1"
        )
    irc = summary.get("irc")
    if irc is not None and not (irc["forward_converged"] and irc["reverse_converged"]):
        reasons.append("an IRC branch did not reach a minimum")
    return (
        f"warning: saddle check failed: Sella converged (fmax {summary['fmax']:.4g} eV/Å, "
        f"target {summary['fmax_target']:g}), but the structure has "
        + " and ".join(reasons or ["not passed the checks"])
        + "; it is not the transition state sought"
    )


def _print_report(summary: dict, written: list[Path]) -> None:
    lines = [
        f"structure:    {summary['structure']} "
        f"({summary['formula']}, {summary['num_atoms']} atoms)",
        f"calculator:   {summary['calculator']}, Hessian: {summary['hessian'] or 'none'}",
        f"converged:    {summary['converged']} (fmax {summary['fmax']:.4g} eV/Å, "
        f"target {summary['fmax_target']:g})",
        f"energy:       {summary['energy_ev']:.6f} eV",
        f"force calls:  {summary['force_calls']}",
    ]
    if "steps" in summary:
        lines.append(f"steps:        {summary['steps']}")
    if "frequencies_cm1" in summary:
        frequencies = ", ".join(f"{value:.1f}" for value in summary["frequencies_cm1"])
        lines.append(f"frequencies:  {frequencies} cm⁻¹ ({summary['num_imaginary']} imaginary)")
    if "zpe_ev" in summary:
        lines.append(f"ZPE:          {summary['zpe_ev']:.4f} eV")
    if "thermochemistry" in summary:
        thermo = summary["thermochemistry"]
        lines.append(
            f"at {thermo['temperature_k']:g} K: H {thermo['enthalpy_ev']:.5f} eV, "
            f"S {thermo['entropy_ev_per_k']:.6g} eV/K, G {thermo['gibbs_energy_ev']:.5f} eV"
        )
    if "irc" in summary:
        irc = summary["irc"]
        lines.append(
            f"IRC:          forward {'reached' if irc['forward_converged'] else 'did not reach'} a "
            f"minimum ({irc['forward_bonds']}), reverse "
            f"{'reached' if irc['reverse_converged'] else 'did not reach'} a minimum "
            f"({irc['reverse_bonds']})"
        )
    if "success" in summary:
        lines.append(f"saddle check: {'passed' if summary['success'] else 'failed'}")
    lines.append("written:      " + ", ".join(str(path) for path in written))
    click.echo("\n".join(lines))


@click.command("optimize")
@_common_options()
@click.option(
    "--refresh-every",
    type=click.IntRange(min=1),
    default=None,
    help="Recompute the Hessian every this many steps [default: only at the start].",
)
def optimize(structure, calculator, hessian, fmax, steps, out, as_json, refresh_every) -> None:
    """Relax STRUCTURE (a G2 name or a structure file) to a minimum from a provider's Hessian."""
    from hessframe_molecules.ase_tools.jobs import run_optimize

    atoms, calc, out = _prepare(structure, calculator, hessian, out, "optimize")
    bar = _ProgressBar(steps, "optimize")
    try:
        _run(
            lambda: run_optimize(
                atoms, calc, fmax=fmax, steps=steps, refresh_every=refresh_every, progress=bar
            ),
            out,
            "optimize.json",
            as_json,
            {"structure": structure, "calculator": calculator},
        )
    finally:
        bar.close()


@click.command("ts")
@_common_options()
@click.option(
    "--irc/--no-irc",
    default=True,
    show_default=True,
    help="Follow the IRC from the saddle to both minima it connects.",
)
@click.option(
    "--internal/--cartesian",
    default=True,
    show_default=True,
    help="Let Sella step in internal coordinates or in Cartesians.",
)
@click.option(
    "--refresh-hessian/--no-refresh-hessian",
    default=False,
    show_default=True,
    help="Ask the Hessian source again whenever Sella rediagonalizes (every 3 steps while its "
    "model has no negative mode), instead of only at the start.",
)
def ts(
    structure, calculator, hessian, fmax, steps, out, as_json, irc, internal, refresh_hessian
) -> None:
    """Find a transition state from the guess STRUCTURE with Sella, and check it.

    The saddle is checked by its frequencies (exactly one imaginary) and, with
    --irc, by following the IRC to both minima. Both checks take the Hessian
    from finite differences of the calculator's forces (6N calls), whatever
    --hessian is.
    """
    from hessframe_molecules.ase_tools.jobs import run_ts

    atoms, calc, out = _prepare(structure, calculator, hessian, out, "ts")
    bar = _ProgressBar(steps, "ts")
    try:
        _run(
            lambda: run_ts(
                atoms,
                calc,
                fmax=fmax,
                steps=steps,
                irc=irc,
                internal=internal,
                refresh_hessian=refresh_hessian,
                progress=bar,
            ),
            out,
            "ts.json",
            as_json,
            {"structure": structure, "calculator": calculator},
        )
    finally:
        bar.close()


@click.command("vib")
@_common_options(DEFAULT_VIB_FMAX)
@click.option(
    "--optimize/--no-optimize",
    default=True,
    show_default=True,
    help="Relax STRUCTURE to a minimum before the analysis.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    default=298.15,
    show_default=True,
    callback=reject_non_finite,
    help="Temperature of the ideal-gas thermochemistry, in K.",
)
@click.option(
    "--pressure",
    type=click.FloatRange(min=0, min_open=True),
    default=101325.0,
    show_default=True,
    callback=reject_non_finite,
    help="Pressure of the ideal-gas thermochemistry, in Pa.",
)
@click.option(
    "--symmetry-number",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Rotational symmetry number (2 for H2O, 3 for NH3, 12 for CH4); changes the entropy only.",
)
def vib(
    structure,
    calculator,
    hessian,
    fmax,
    steps,
    out,
    as_json,
    optimize,
    temperature,
    pressure,
    symmetry_number,
) -> None:
    """Harmonic frequencies, ZPE and ideal-gas thermochemistry of STRUCTURE from a Hessian.

    With --hessian none the Hessian comes from finite differences of the
    calculator's forces (6N force calls).
    """
    from hessframe_molecules.ase_tools.jobs import run_vib

    atoms, calc, out = _prepare(structure, calculator, hessian, out, "vib")
    bar = _ProgressBar(steps, "relax")
    try:
        _run(
            lambda: run_vib(
                atoms,
                calc,
                fmax=fmax,
                steps=steps,
                optimize=optimize,
                temperature_k=temperature,
                pressure_pa=pressure,
                symmetry_number=symmetry_number,
                progress=bar,
            ),
            out,
            "vib.json",
            as_json,
            {"structure": structure, "calculator": calculator},
        )
    finally:
        bar.close()


COMMANDS = (optimize, ts, vib)
