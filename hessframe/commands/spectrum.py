"""The ``hessframe spectrum`` command: the loss-Hessian spectrum of the shipped digits MLP."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from hessframe.clickutils import prepare_output_folder, reject_non_finite
from hessframe.digits import (
    count_parameters,
    digits_loader,
    evaluate,
    load_digits_split,
    load_pretrained_digits_mlp,
)
from hessframe.errors import HessframeError
from hessframe.spectrum import (
    SPECTRUM_PROVIDERS,
    SpectrumResult,
    compute_spectrum,
    write_spectrum,
)

DEFAULT_OUT = Path("hessframe-out") / "spectrum"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@click.command("spectrum")
@click.option(
    "--provider",
    type=click.Choice(SPECTRUM_PROVIDERS),
    default="autodiff",
    show_default=True,
    help="How Hessian-vector products are computed: exactly by automatic "
    "differentiation, or by central differences of the gradient.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Number of largest eigenvalues to compute, at most the number of parameters (2410).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    help="Folder for spectrum.json and spectrum.png, created if missing "
    "[default: ./hessframe-out/spectrum].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a summary.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the random Lanczos start vector and probe vectors.",
)
@click.option(
    "--trace-matvecs",
    type=click.IntRange(min=3),
    default=99,
    show_default=True,
    help="Hessian-vector products spent on the Hutch++ trace estimate.",
)
@click.option(
    "--num-probes",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Random probe vectors of the spectral density (stochastic Lanczos quadrature).",
)
@click.option(
    "--num-steps",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Lanczos steps per probe vector of the spectral density.",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    callback=reject_non_finite,
    default=1e-6,
    show_default=True,
    help="Lanczos tolerance on the eigenpair residuals, relative to the largest "
    "eigenvalue magnitude.",
)
@click.option(
    "--exact-trace/--no-exact-trace",
    default=False,
    show_default=True,
    help="Also compute the exact trace as the sum of the diagonal (one product per parameter).",
)
@click.option(
    "--dtype",
    type=click.Choice(tuple(DTYPES)),
    default="float64",
    show_default=True,
    help="Floating-point precision of the model and the products.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress bars on stderr.",
)
def spectrum_command(
    provider: str,
    top_k: int,
    out: Path,
    as_json: bool,
    seed: int,
    trace_matvecs: int,
    num_probes: int,
    num_steps: int,
    tol: float,
    exact_trace: bool,
    dtype: str,
    progress: bool,
) -> None:
    """Compute the loss-Hessian spectrum of the shipped digits MLP over the training set.

    The Hessian is that of the mean cross-entropy over all 1257 training images
    of scikit-learn's digits, with respect to the 2410 parameters of the
    64-32-10 tanh MLP whose weights ship with hessframe. The command prints the
    top eigenvalues, the trace, the number of Hessian-vector products and the
    time, and writes spectrum.json and spectrum.png into --out.
    """
    prepare_output_folder(out, "--out")
    model = load_pretrained_digits_mlp(DTYPES[dtype])
    num_parameters = count_parameters(model)
    if top_k > num_parameters:
        raise click.BadParameter(
            f"must be at most the number of parameters ({num_parameters}), got {top_k}",
            param_hint="--top-k",
        )

    train_size = len(load_digits_split("train").labels)
    loader = digits_loader("train", batch_size=train_size, dtype=DTYPES[dtype])
    train_loss, _, _ = evaluate(model, loader)
    try:
        result = compute_spectrum(
            model,
            torch.nn.functional.cross_entropy,
            loader,
            provider=provider,
            top_k=top_k,
            tol=tol,
            trace_matvecs=trace_matvecs,
            exact_trace_max_size=num_parameters if exact_trace else 0,
            num_probes=num_probes,
            num_steps=num_steps,
            generator=torch.Generator().manual_seed(seed),
            progress=progress,
        )
        json_path, png_path = write_spectrum(result, out)
    except HessframeError as error:
        raise click.ClickException(str(error)) from error

    if as_json:
        payload = {
            **result.to_dict(),
            "train_size": train_size,
            "train_loss": train_loss,
            "seed": seed,
            "files": {"json": str(json_path), "png": str(png_path)},
        }
        click.echo(json.dumps(payload))
        return
    _print_summary(result, train_size, train_loss, json_path, png_path)


def _print_summary(
    result: SpectrumResult, train_size: int, train_loss: float, json_path: Path, png_path: Path
) -> None:
    click.echo(
        f"Hessian of the mean cross-entropy over {train_size} training images, "
        f"{result.num_parameters} parameters ({result.dtype}, {result.provider} provider)"
    )
    click.echo(f"training loss: {train_loss:.6g}")
    click.echo(
        f"top {_plural(len(result.top_eigenvalues), 'eigenvalue')}: "
        + ", ".join(f"{value:.6g}" for value in result.top_eigenvalues)
    )
    click.echo(
        f"  largest residual {max(result.eigenvalue_residuals):.2e}, "
        f"converged: {'yes' if result.eigenvalues_converged else 'no'} "
        f"({result.lanczos_matvecs} products)"
    )
    click.echo(
        f"trace (Hutch++, {result.trace_matvecs} products): {result.trace_estimate:.6g} "
        f"± {result.trace_standard_error:.2g}"
    )
    if result.exact_trace is not None:
        click.echo(f"exact trace ({result.exact_trace_matvecs} products): {result.exact_trace:.6g}")
    click.echo(
        f"spectral density: {_plural(result.density_num_probes, 'probe')} × "
        f"{_plural(result.density_num_steps, 'step')} ({result.density_matvecs} products)"
    )
    click.echo(f"Hessian-vector products: {result.num_matvecs}; time: {result.seconds:.2f} s")
    click.echo(f"wrote {json_path} and {png_path}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
