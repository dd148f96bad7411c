"""Data-set records of the molecules plugin: the shipped GFN2-xTB Hessian data set."""

from __future__ import annotations

import logging
from functools import partial

from hessframe import DatasetRecord
from hessframe_molecules.build import MANIFEST, SPLITS
from hessframe_molecules.paths import DATASET_DIR

logger = logging.getLogger(__name__)

LICENCE = (
    "labels MIT; geometries from ASE's G2 and S22 collections (ASE, LGPL-2.1-or-later) and "
    "RDKit embeddings of the plugin's SMILES list; GFN2-xTB through tblite (LGPL-3.0-or-later); "
    "see datasets/molecules/README.md"
)


def _load_split(split: str):
    from hessframe_molecules.data import load_geometries

    return load_geometries(DATASET_DIR, split)


def dataset_records() -> list[DatasetRecord]:
    """Return one record per split of the shipped data set, when running from a checkout.

    An installed wheel carries no data set, so the list is then empty. Each
    loader returns the split's geometries as
    :class:`hessframe_molecules.data.Geometry` objects (eV, Å, eV/Å²).
    """
    if not (DATASET_DIR / MANIFEST).is_file():
        logger.debug("no molecules data set: %s does not exist", DATASET_DIR / MANIFEST)
        return []
    return [
        DatasetRecord(
            name=f"molecules-gfn2-hessians-{split}",
            description=f"GFN2-xTB energies, forces and Hessians, {split} split "
            "(eV, Å, eV/Å²; datasets/molecules)",
            licence=LICENCE,
            path=DATASET_DIR,
            loader=partial(_load_split, split),
        )
        for split in SPLITS
    ]
