"""The data, training and evaluation commands of ``hessframe molecules``.

``build-dataset`` labels molecules with GFN2-xTB (:mod:`hessframe_molecules.build`),
``train`` fits the Hessian network (:mod:`hessframe_molecules.train`), and
``evaluate`` compares its predicted and autodiff Hessians with GFN2-xTB on a
split (:mod:`hessframe_molecules.evaluate`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from hessframe.clickutils import prepare_output_folder
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


COMMANDS = (build_dataset_command,)
