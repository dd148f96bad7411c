"""The ``hessframe train-digits`` command: retrain the digits MLP whose weights hessframe ships."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from hessframe.clickutils import prepare_output_folder
from hessframe.digits import save_digits_mlp, train_digits_mlp

DEFAULT_OUT = Path("hessframe-out") / "digits_mlp.pt"


@click.command("train-digits")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Path of the weights file; the JSON record of the run goes next to it "
    "with the suffix .json.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Passes of Adam over the training split.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the initialisation and the batch order.",
)
def train_digits_command(out: Path, epochs: int, seed: int) -> None:
    """Train the 64-32-10 tanh MLP on scikit-learn's digits and write its weights.

    The run is deterministic on CPU: the same --epochs and --seed give the
    same weights. Both files are written to temporary names and renamed, so an
    interrupted run leaves no partial file. Pass -v to the hessframe command
    to log progress.
    """
    if out.suffix != ".pt":
        raise click.BadParameter(f"must end in .pt, got {str(out)!r}", param_hint="--out")
    prepare_output_folder(out.parent, "--out")
    command = shlex.join(
        [
            "hessframe",
            "train-digits",
            "--out",
            str(out),
            "--epochs",
            str(epochs),
            "--seed",
            str(seed),
        ]
    )
    model, metrics = train_digits_mlp(epochs=epochs, seed=seed)
    weights_path, metadata_path = save_digits_mlp(model, metrics, out, command=command)
    click.echo(
        f"trained {metrics.num_parameters} parameters for {metrics.epochs} epochs in "
        f"{metrics.seconds:.1f} s: test accuracy {metrics.test_accuracy:.4f} "
        f"({metrics.test_correct}/{metrics.test_size})"
    )
    click.echo(f"wrote {weights_path} and {metadata_path}")
