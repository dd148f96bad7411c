"""Build the transport data sets from data that scikit-learn ships with its wheel.

Nothing is downloaded: ``load_digits`` and ``load_sample_image`` read files that
are installed with scikit-learn. The output is the same on every run because the
digits are picked by index and the colour samples use a fixed seed.

Run from the repository root::

    python datasets/transport/make_transport_data.py

Writes, next to this script:

- ``source.png``, ``target.png``: two handwritten digits (a 0 and a 3), upsampled
  from 8×8 to 28×28 by bilinear interpolation, 8-bit grayscale, ink bright.
- ``source_points.csv``, ``target_points.csv``: the bright pixels of two other
  upsampled digits (a 4 and a 9) as 2-D points with a ``weight`` column.
- ``source_colors.csv``, ``target_colors.csv``: 300 pixels sampled from each of
  scikit-learn's two sample photographs, as points in RGB space, without weights.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image

IMAGE_SIDE = 28
IMAGE_DIGIT_INDICES = (0, 3)  # a 0 and a 3 in load_digits()
POINT_DIGIT_INDICES = (4, 9)  # a 4 and a 9 in load_digits()
POINT_MIN_INTENSITY = 64  # of 255; dimmer pixels are left out of the point clouds
COLOR_SAMPLES = 300
COLOR_SEED = 0


def upsample_digit(image_8x8: np.ndarray) -> np.ndarray:
    """Upsample an 8×8 digit with values 0..16 to a 28×28 uint8 image, ink bright."""
    small = Image.fromarray(np.asarray(image_8x8, dtype=np.float32) / 16.0, mode="F")
    large = np.asarray(small.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BILINEAR))
    return np.round(np.clip(large, 0.0, 1.0) * 255.0).astype(np.uint8)


def digit_points(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixels of ``image`` at or above the intensity cut as (x, y) points.

    x is the column and y the row counted upwards from the bottom, both in pixel
    widths, so the cloud plots upright. The weight is the intensity over 255.
    """
    rows, cols = np.nonzero(image >= POINT_MIN_INTENSITY)
    points = np.column_stack([cols, image.shape[0] - 1 - rows]).astype(np.float64)
    weights = image[rows, cols].astype(np.float64) / 255.0
    return points, weights


def color_samples(name: str, rng: np.random.Generator) -> np.ndarray:
    """Return ``COLOR_SAMPLES`` pixels of a scikit-learn sample image as RGB in [0, 1]."""
    pixels = load_sample_image(name).reshape(-1, 3)
    chosen = rng.choice(pixels.shape[0], size=COLOR_SAMPLES, replace=False)
    return pixels[chosen].astype(np.float64) / 255.0


def write_atomically(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and rename the result to ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_png(path: Path, image: np.ndarray) -> None:
    write_atomically(path, lambda name: Image.fromarray(image, mode="L").save(name, format="PNG"))


def write_csv(path: Path, header: list[str], rows: np.ndarray) -> None:
    def write(name: str) -> None:
        with open(name, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            for row in rows:
                writer.writerow([f"{value:.6g}" for value in row])

    write_atomically(path, write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write into (default: the folder of this script)",
    )
    out_dir = parser.parse_args().out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = load_digits().images

    for name, index in zip(("source", "target"), IMAGE_DIGIT_INDICES, strict=True):
        write_png(out_dir / f"{name}.png", upsample_digit(digits[index]))

    for name, index in zip(("source", "target"), POINT_DIGIT_INDICES, strict=True):
        points, weights = digit_points(upsample_digit(digits[index]))
        rows = np.column_stack([points, weights])
        write_csv(out_dir / f"{name}_points.csv", ["x", "y", "weight"], rows)

    rng = np.random.default_rng(COLOR_SEED)
    for name, image in zip(("source", "target"), ("china.jpg", "flower.jpg"), strict=True):
        write_csv(out_dir / f"{name}_colors.csv", ["r", "g", "b"], color_samples(image, rng))


if __name__ == "__main__":
    main()
