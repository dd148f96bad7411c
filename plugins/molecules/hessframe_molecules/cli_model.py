"""The data, training and evaluation commands of ``hessframe molecules``.

``build-dataset`` labels molecules with GFN2-xTB (:mod:`hessframe_molecules.build`),
``train`` fits the Hessian network (:mod:`hessframe_molecules.train`), and
``evaluate`` compares its predicted and autodiff Hessians with GFN2-xTB on a
split (:mod:`hessframe_molecules.evaluate`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import click

from hessframe.clickutils import prepare_output_folder, reject_non_finite
from hessframe_molecules.build import SPLITS
from hessframe_molecules.paths import DATASET_DIR

logger = logging.getLogger(__name__)


def _positive(context: click.Context, parameter: click.Parameter, value):
    if value is not None and value < 1:
        raise click.BadParameter(f"must be a positive integer, got {value}")
    return value


@click.command("build-dataset")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DATASET_DIR,
    show_default=True,
    help="Folder for the shards and manifest.json; existing shards are kept and skipped.",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    callback=_positive,
    help="Worker processes that label molecules in parallel.",
)
@click.option(
    "--geometries",
    type=int,
    default=20,
    show_default=True,
    callback=_positive,
    help="Geometries per G2 or SMILES molecule: the GFN2-xTB minimum and displaced ones.",
)
@click.option(
    "--max-molecules",
    type=int,
    default=None,
    callback=_positive,
    help="Label only the first N G2 and SMILES molecules (in a fixed hash order); default all.",
)
@click.option(
    "--max-s22-atoms",
    type=int,
    default=30,
    show_default=True,
    help="Largest S22 complex (atoms) in the extrapolation split; 0 leaves S22 out.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the RDKit embedding and the displacements.",
)
def build_dataset_command(
    out: Path,
    workers: int,
    geometries: int,
    max_molecules: int | None,
    max_s22_atoms: int,
    seed: int,
) -> None:
    """Label molecules with GFN2-xTB energies, forces and Hessians into resumable shards."""
    from tqdm import tqdm

    from hessframe_molecules.build import build_dataset, select_specs

    if max_s22_atoms < 0:
        raise click.BadParameter(
            f"must be 0 or more, got {max_s22_atoms}", param_hint="--max-s22-atoms"
        )
    prepare_output_folder(out, "--out")
    specs = select_specs(max_molecules, max_s22_atoms)
    started = time.perf_counter()
    manifest = build_dataset(
        out,
        specs,
        num_geometries=geometries,
        workers=workers,
        seed=seed,
        progress=lambda results: tqdm(results, desc="molecules", unit="mol"),
    )
    elapsed = time.perf_counter() - started
    for split, counts in manifest["counts"].items():
        click.echo(
            f"{split:>13}: {counts['molecules']:4d} molecules, {counts['geometries']:5d} geometries"
        )
    click.echo(f"wrote {out / 'manifest.json'} in {elapsed:.0f} s")
    if manifest["failures"]:
        click.echo(json.dumps(manifest["failures"], indent=1))
        raise click.ClickException(
            f"{len(manifest['failures'])} molecules failed; rerun to retry them"
        )


@click.command("train")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DATASET_DIR,
    show_default=True,
    help="Data-set folder with manifest.json and shards/.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for checkpoint.pt (every epoch; a rerun resumes from it) and weights.pt "
    "(the model with the lowest validation loss).",
)
@click.option(
    "--epochs",
    type=int,
    default=18,
    show_default=True,
    callback=_positive,
    help="Total epochs, counted across resumed runs.",
)
@click.option(
    "--batch-size",
    type=int,
    default=8,
    show_default=True,
    callback=_positive,
    help="Geometries per optimiser step (per process under torchrun).",
)
@click.option(
    "--lr",
    "learning_rate",
    type=float,
    default=3e-3,
    show_default=True,
    callback=reject_non_finite,
    help="Initial Adam learning rate (cosine decay to 5 %).",
)
@click.option(
    "--weight-energy",
    type=float,
    default=1.0,
    show_default=True,
    callback=reject_non_finite,
    help="Weight of the energy MAE term.",
)
@click.option(
    "--weight-forces",
    type=float,
    default=1.0,
    show_default=True,
    callback=reject_non_finite,
    help="Weight of the force MAE term.",
)
@click.option(
    "--weight-hessian",
    type=float,
    default=1.0,
    show_default=True,
    callback=reject_non_finite,
    help="Weight of the Hessian MAE term.",
)
@click.option(
    "--weight-eigen",
    type=float,
    default=0.0,
    show_default=True,
    callback=reject_non_finite,
    help="Weight of the loss on the lowest reference eigenmodes (0: off).",
)
@click.option(
    "--sum-rule/--no-sum-rule",
    default=False,
    show_default=True,
    help="Enforce the translational sum rule Σ_j H_ij = 0 exactly.",
)
@click.option(
    "--max-geometries",
    type=int,
    default=None,
    callback=_positive,
    help="Use only the first N geometries of each molecule (default all).",
)
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    callback=reject_non_finite,
    help="Stop after the epoch during which this many minutes have passed.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the initial weights and the epoch order.",
)
def train_command(
    data_dir: Path,
    out: Path,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_energy: float,
    weight_forces: float,
    weight_hessian: float,
    weight_eigen: float,
    sum_rule: bool,
    max_geometries: int | None,
    max_minutes: float | None,
    seed: int,
) -> None:
    """Train the Hessian network on the GFN2-xTB data set (also under torchrun, gloo)."""
    from tqdm import tqdm

    from hessframe.errors import HessframeError
    from hessframe_molecules.model import HessianNetConfig
    from hessframe_molecules.train import TrainConfig, train

    prepare_output_folder(out, "--out")
    config = TrainConfig(
        data_dir=str(data_dir),
        out_dir=str(out),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_energy=weight_energy,
        weight_forces=weight_forces,
        weight_hessian=weight_hessian,
        weight_eigen=weight_eigen,
        max_geometries_per_molecule=max_geometries,
        max_minutes=max_minutes,
        seed=seed,
        model=HessianNetConfig(sum_rule=sum_rule),
    )
    try:
        # Under torchrun only rank 0 shows progress and the summary.
        is_main = os.environ.get("RANK", "0") == "0"
        with tqdm(total=epochs, desc="epochs", unit="epoch", disable=not is_main) as bar:

            def show(record: dict) -> None:
                bar.update(record["epoch"] - bar.n)
                if "validation" in record:
                    bar.set_postfix(
                        loss=f"{record['train']['total']:.4f}",
                        val_hessian_mae=f"{record['validation']['hessian']:.3f}",
                    )

            result = train(config, progress=show)
    except HessframeError as error:
        raise click.ClickException(str(error)) from error
    if not is_main:
        return
    best = result["best"]
    if "validation" in best:
        metrics = best["validation"]
        click.echo(
            f"best epoch {best['epoch']}: validation MAE energy {metrics['energy']:.4f} eV/atom, "
            f"forces {metrics['forces']:.4f} eV/Å, Hessian blocks {metrics['hessian']:.4f} eV/Å²"
        )
    click.echo(f"trained for {result['seconds']:.0f} s; weights in {out / 'weights.pt'}")


@click.command("evaluate")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=DATASET_DIR,
    show_default=True,
    help="Data-set folder with manifest.json and shards/.",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="Split to evaluate on.",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Weights file written by 'train' (default: the shipped weights).",
)
@click.option(
    "--max-geometries",
    type=int,
    default=None,
    callback=_positive,
    help="Evaluate only the first N geometries of each molecule (the first is the "
    "GFN2-xTB minimum); default all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_command(
    data_dir: Path, split: str, weights: Path | None, max_geometries: int | None, as_json: bool
) -> None:
    """Compare the predicted and autodiff Hessians of the network with GFN2-xTB on a split."""
    from tqdm import tqdm

    from hessframe.errors import HessframeError
    from hessframe_molecules.evaluate import evaluate, format_table
    from hessframe_molecules.model import load_pretrained

    try:
        model = load_pretrained(weights)
        result = evaluate(
            model,
            data_dir,
            split,
            max_geometries_per_molecule=max_geometries,
            progress=lambda items: tqdm(items, desc="geometries", unit="geometry", disable=as_json),
        )
    except HessframeError as error:
        raise click.ClickException(str(error)) from error
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo(format_table(result))


COMMANDS = (build_dataset_command, train_command, evaluate_command)
