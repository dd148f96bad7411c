"""The ``hessframe audio`` commands.

``hessframe audio match INPUT TARGET`` fits the compressor to turn INPUT into
TARGET and prints the parameters in their units, the error-to-signal ratio,
the iterations and the time. Without INPUT and TARGET it matches the shipped
speech against its pedalboard-compressed target from ``datasets/audio/``.
``hessframe audio export PARAMS`` converts settings between JSON, VST3 and VST2
presets.

The core's ``hessframe`` command adds :data:`audio_group` through this plugin's
``hessframe_commands`` hook; the group also runs on its own.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import click

from hessframe.clickutils import reject_non_finite
from hessframe.errors import HessframeError, InvalidArgumentError

logger = logging.getLogger(__name__)

#: Folder of the shipped audio, when running from a source checkout.
DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "audio"
DEFAULT_INPUT = DATASET_DIR / "speech.wav"
DEFAULT_TARGET = DATASET_DIR / "targets" / "speech_pedalboard.wav"
PRESET_SUFFIXES = (".json", ".vstpreset", ".fxp")

audio_group = click.Group(
    "audio",
    help=(
        "Sound matching of a dynamic range compressor by Newton-Raphson, and export of the "
        "fitted settings as JSON, VST3 or VST2 presets."
    ),
)


def _check_preset_path(
    context: click.Context, parameter: click.Parameter, value: Path | None
) -> Path | None:
    if value is None:
        return value
    if value.suffix.lower() not in PRESET_SUFFIXES:
        raise click.BadParameter(
            f"{str(value)!r} must end in one of {', '.join(PRESET_SUFFIXES)}, which sets the format"
        )
    if not value.parent.is_dir():
        raise click.BadParameter(f"folder {str(value.parent)!r} does not exist")
    if value.is_dir():
        raise click.BadParameter(f"{str(value)!r} is a folder; pass a file name")
    return value


def _check_plot_path(
    context: click.Context, parameter: click.Parameter, value: Path | None
) -> Path | None:
    if value is None:
        return value
    if value.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise click.BadParameter(f"{str(value)!r} must end in .png, .pdf or .svg")
    if not value.parent.is_dir():
        raise click.BadParameter(f"folder {str(value.parent)!r} does not exist")
    return value


def _reject_negative(context: click.Context, parameter: click.Parameter, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"must be a finite number ≥ 0, got {value}")
    return value


def _reject_non_positive(context: click.Context, parameter: click.Parameter, value: float) -> float:
    reject_non_finite(context, parameter, value)
    if value <= 0:
        raise click.BadParameter(f"must be a finite positive number, got {value}")
    return value


@audio_group.command("match")
@click.argument("input_path", metavar="INPUT", required=False, type=click.Path(path_type=Path))
@click.argument("target_path", metavar="TARGET", required=False, type=click.Path(path_type=Path))
@click.option(
    "--hessian",
    type=click.Choice(
        [
            "autodiff",
            "reverse-over-reverse",
            "forward-over-reverse",
            "gauss-newton",
            "finite-difference",
        ]
    ),
    default="autodiff",
    show_default=True,
    help="Hessian of each Newton-Raphson step: exact by automatic differentiation (autodiff "
    "picks the mode), the Gauss-Newton matrix JᵀJ, or central finite differences of the gradient.",
)
@click.option(
    "--optimizer",
    type=click.Choice(["newton", "adam"]),
    default="newton",
    show_default=True,
    help="Newton-Raphson with Levenberg-Marquardt damping, or the Adam baseline.",
)
@click.option(
    "--detector",
    type=click.Choice(["peak", "rms"]),
    default="peak",
    show_default=True,
    help="Level detector of the fitted compressor.",
)
@click.option(
    "--knee-db",
    type=float,
    default=0.0,
    show_default=True,
    callback=_reject_negative,
    help="Soft-knee width of the fitted compressor in dB (0: hard knee).",
)
@click.option(
    "--loss",
    type=click.Choice(["waveform", "spectral"]),
    default="waveform",
    show_default=True,
    help="Error of DC-blocked waveforms, or that plus a multi-resolution spectral term.",
)
@click.option(
    "--max-iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Iteration limit [default: 30 for newton, 300 for adam].",
)
@click.option(
    "--learning-rate",
    type=float,
    default=0.05,
    show_default=True,
    callback=_reject_non_positive,
    help="Adam's step size in raw parameter units.",
)
@click.option(
    "--no-resample",
    is_flag=True,
    help="Reject a TARGET whose sample rate differs from INPUT's instead of resampling it.",
)
@click.option(
    "--export",
    "export_path",
    type=click.Path(path_type=Path),
    default=None,
    callback=_check_preset_path,
    help="Write the fitted settings here; the suffix (.json, .vstpreset, .fxp) sets the "
    "format. Nothing is written when the fit fails.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    default=None,
    callback=_check_plot_path,
    help="Draw the static gain curve and the gain over time against the target's "
    "(.png, .pdf or .svg).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def match_command(
    input_path: Path | None,
    target_path: Path | None,
    hessian: str,
    optimizer: str,
    detector: str,
    knee_db: float,
    loss: str,
    max_iterations: int | None,
    learning_rate: float,
    no_resample: bool,
    export_path: Path | None,
    plot_path: Path | None,
    as_json: bool,
) -> None:
    """Fit the compressor that turns INPUT into TARGET (audio files of the same length).

    Without INPUT and TARGET, the shipped speech and its pedalboard-compressed
    target are matched.
    """
    from tqdm import tqdm

    from hessframe_audio.io import Audio, align_pair
    from hessframe_audio.match import match

    input_path, target_path = _default_pair(input_path, target_path)
    input_audio = _read(input_path, "INPUT")
    target = _read(target_path, "TARGET")
    try:
        input_audio, target = align_pair(input_audio, target, resample=not no_resample)
    except InvalidArgumentError as error:
        raise click.BadParameter(
            str(error).removeprefix("target: "), param_hint="TARGET"
        ) from error

    limit = max_iterations or (30 if optimizer == "newton" else 300)
    with tqdm(total=limit, desc=f"{optimizer} match", unit="it", leave=False, disable=None) as bar:

        def progress(record) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{record.loss:.4g}", esr=f"{record.esr:.4g}")

        try:
            result = match(
                input_audio,
                target,
                optimizer=optimizer,
                hessian=hessian,
                detector=detector,
                knee_db=knee_db,
                loss=loss,
                max_iterations=max_iterations,
                learning_rate=learning_rate,
                callback=progress,
            )
        except HessframeError as error:
            raise click.ClickException(f"the fit failed: {error}. No file was written.") from error

    if not math.isfinite(result.esr) or result.esr > result.initial_esr:
        raise click.ClickException(
            f"the fit failed: the error-to-signal ratio went from {result.initial_esr:.4g} to "
            f"{result.esr:.4g}. No file was written."
        )

    report = _report(result, input_path, target_path)
    if export_path is not None:
        from hessframe_audio.export import write_settings

        try:
            write_settings(export_path, result.settings, metadata=_metadata(report))
        except InvalidArgumentError as error:
            raise click.ClickException(
                f"cannot export to {str(export_path)!r}: {error}. No file was written."
            ) from error
        report["export"] = str(export_path)
    if plot_path is not None:
        from hessframe_audio.match import build_objective
        from hessframe_audio.plot import write_match_plot

        objective = build_objective(input_audio, target, detector=detector, knee_db=knee_db)
        predicted = objective.prediction(result.raw)[0].to(input_audio.samples.dtype)
        write_match_plot(
            plot_path,
            input_audio,
            target,
            Audio(predicted.detach(), input_audio.sample_rate, "fitted"),
            result.settings,
            objective.compressor,
        )
        report["plot"] = str(plot_path)

    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    _print_report(report)


@audio_group.command("export")
@click.argument("params_path", metavar="PARAMS", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "format_name",
    type=click.Choice(["json", "vstpreset", "fxp"]),
    required=True,
    help="Format to write.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Output file [default: PARAMS with the format's suffix].",
)
def export_command(params_path: Path, format_name: str, out_path: Path | None) -> None:
    """Convert compressor settings PARAMS (.json from `match --json` or --export, .vstpreset,
    .fxp) to another format, and print the settings written."""
    from hessframe_audio.export import read_settings, write_settings

    try:
        settings = read_settings(params_path, argument="PARAMS")
    except InvalidArgumentError as error:
        raise click.BadParameter(
            str(error).removeprefix("PARAMS: "), param_hint="PARAMS"
        ) from error
    if out_path is None:
        out_path = params_path.with_suffix(f".{format_name}")
        if out_path.resolve() == params_path.resolve():
            raise click.UsageError(
                f"PARAMS is already a {format_name} file; pass --out to write a copy elsewhere"
            )
    if not out_path.parent.is_dir():
        raise click.BadParameter(
            f"folder {str(out_path.parent)!r} does not exist", param_hint="--out"
        )
    try:
        write_settings(out_path, settings, format=format_name)
    except InvalidArgumentError as error:
        raise click.ClickException(f"cannot export: {error}. No file was written.") from error
    for name, value in settings.as_dict().items():
        click.echo(f"{name:<13} {value:10.4f}")
    click.echo(f"wrote {out_path}")


def _default_pair(input_path: Path | None, target_path: Path | None) -> tuple[Path, Path]:
    if input_path is None and target_path is None:
        if not (DEFAULT_INPUT.is_file() and DEFAULT_TARGET.is_file()):
            raise click.UsageError(
                f"no INPUT and TARGET given, and the shipped pair {DEFAULT_INPUT} and "
                f"{DEFAULT_TARGET} is missing (it ships with the source checkout only); "
                "pass INPUT and TARGET files"
            )
        return DEFAULT_INPUT, DEFAULT_TARGET
    if input_path is None or target_path is None:
        raise click.UsageError("give both INPUT and TARGET, or neither to use the shipped pair")
    return input_path, target_path


def _read(path: Path, argument: str):
    from hessframe_audio.io import read_audio

    try:
        return read_audio(path, argument=argument)
    except InvalidArgumentError as error:
        raise click.BadParameter(
            str(error).removeprefix(f"{argument}: "), param_hint=argument
        ) from error


def _report(result, input_path: Path, target_path: Path) -> dict:
    from hessframe_audio.compressor import PARAMETER_UNITS

    return {
        "input": str(input_path),
        "target": str(target_path),
        "settings": result.settings.as_dict(),
        "units": dict(PARAMETER_UNITS),
        "esr": result.esr,
        "initial_esr": result.initial_esr,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "converged": result.converged,
        "optimizer": result.optimizer,
        "hessian": result.hessian,
    }


def _metadata(report: dict) -> dict:
    keys = ("input", "target", "esr", "iterations", "optimizer", "hessian")
    return {key: report[key] for key in keys}


def _print_report(report: dict) -> None:
    for name, value in report["settings"].items():
        click.echo(f"{name:<13} {value:10.4f} {report['units'][name]}")
    method = report["optimizer"] + (f" ({report['hessian']})" if report["hessian"] else "")
    click.echo(
        f"ESR {report['esr']:.4g} (start {report['initial_esr']:.4g}), "
        f"{report['iterations']} iterations of {method}, {report['seconds']:.1f} s, "
        f"converged: {'yes' if report['converged'] else 'no'}"
    )
    for key in ("export", "plot"):
        if key in report:
            click.echo(f"wrote {report[key]}")
