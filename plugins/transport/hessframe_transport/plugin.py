"""The hessframe hooks of the transport plugin: its provider, data sets and commands.

Registered through the entry point ``transport = "hessframe_transport.plugin"``
of the group ``hessframe``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hessframe import DatasetRecord, ProviderRecord, hookimpl

if TYPE_CHECKING:
    import click

logger = logging.getLogger(__name__)

#: datasets/transport of the checkout this package was installed from in editable mode.
DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "transport"

DIGITS_LICENCE = (
    "derived from scikit-learn's copy of the UCI optical digits (Alpaydin and Kaynak, 1998); "
    "see datasets/transport/README.md"
)


@hookimpl
def hessframe_curvature_providers() -> list[ProviderRecord]:
    """Return the sparsified dual Hessian of entropic optimal transport.

    Its kind is ``"predicted"`` because the matrix is assembled directly from
    a transport plan, the way a predicted Hessian is assembled from a model's
    output, with no differentiation of an objective.
    """
    from hessframe_transport.provider import SparseDualHessian

    return [
        ProviderRecord(
            name="transport-sparse-dual-hessian",
            kind="predicted",
            factory=SparseDualHessian,
            summary="Sparsified Hessian [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]]/reg of the entropic "
            "OT dual at a plan (SparseDualHessian(plan, reg, density=...)).",
        )
    ]


@hookimpl
def hessframe_datasets() -> list[DatasetRecord]:
    """Return the shipped image pair and point-cloud pairs, when running from a checkout.

    An installed wheel carries no data sets, so the list is then empty.
    """
    if not DATASET_DIR.is_dir():
        logger.debug("no transport data sets: %s does not exist", DATASET_DIR)
        return []
    records = []
    if (DATASET_DIR / "source.png").is_file() and (DATASET_DIR / "target.png").is_file():
        records.append(
            DatasetRecord(
                name="transport-digit-images",
                description="Digits 0 and 3 as 28×28 grayscale images (source.png, target.png); "
                "the loader returns the two float64 arrays",
                licence=DIGITS_LICENCE,
                path=DATASET_DIR,
                loader=_load_digit_images,
            )
        )
    if (DATASET_DIR / "source_points.csv").is_file() and (
        DATASET_DIR / "target_points.csv"
    ).is_file():
        records.append(
            DatasetRecord(
                name="transport-digit-points",
                description="Digits 4 and 9 as weighted 2-D point clouds (source_points.csv, "
                "target_points.csv); the loader returns (points, weights) for each",
                licence=DIGITS_LICENCE,
                path=DATASET_DIR,
                loader=_load_digit_points,
            )
        )
    return records


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    """Add the ``hessframe transport`` group."""
    from hessframe_transport.cli import transport_group

    cli.add_command(transport_group)


def _load_digit_images() -> dict[str, np.ndarray]:
    from PIL import Image

    images = {}
    for name in ("source", "target"):
        with Image.open(DATASET_DIR / f"{name}.png") as image:
            images[name] = np.asarray(image.convert("L"), dtype=np.float64)
    return images


def _load_digit_points() -> dict[str, Any]:
    clouds = {}
    for name in ("source", "target"):
        table = np.loadtxt(DATASET_DIR / f"{name}_points.csv", delimiter=",", skiprows=1, ndmin=2)
        clouds[name] = (table[:, :2], table[:, 2])
    return clouds
