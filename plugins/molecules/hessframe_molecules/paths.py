"""Locations of the shipped data set and weights in a source checkout."""

from __future__ import annotations

from pathlib import Path

#: datasets/molecules of the checkout this package was installed from in editable mode.
DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "molecules"

#: The shipped network weights, inside the package.
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "hessian_net.pt"
