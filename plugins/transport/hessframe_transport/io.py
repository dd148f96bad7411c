"""Read discrete measures from files and write transport plans and match plots.

A measure is a set of support points with non-negative weights that sum to one.
Two kinds of file hold one:

- **Image**: PNG, JPEG, BMP, GIF, TIFF or PGM (read with Pillow and converted to
  grayscale), or a 2-D ``.npy`` array. Brightness is mass: pixel ``(row, col)``
  with value ``v`` becomes the support point ``(row, col)``, in pixel widths, with
  weight proportional to ``v``. Pillow images are scaled to [0, 1] by their bit
  depth before normalisation, which does not change the normalised weights.
- **Point cloud**: CSV (or ``.txt``) with one point per row, or an ``.npy`` array
  of shape (n, d), or an ``.npz`` archive with a ``points`` array of shape (n, d)
  and an optional ``weights`` array of shape (n,). A CSV may start with a header
  row; if one of its columns is named ``weight`` (any case), that column contains the
  weights and every other column is a coordinate. Without a ``weight`` column (or
  without a header) every column is a coordinate and the weights are uniform.
  Columns are separated by commas, or by whitespace when the first data line has
  no comma. Lines that start with ``#`` are skipped.

``kind="auto"`` decides by extension: image extensions are images; ``.csv``,
``.txt`` and ``.npz`` are point clouds; a 2-D ``.npy`` array with at most three
columns and more rows than columns is a point cloud, any other 2-D ``.npy`` array
an image. Pass ``kind="image"`` or ``kind="points"`` to override the guess.

Support points of zero weight are dropped, since they carry no mass and would put
``log 0`` into the log-domain Sinkhorn updates. The transport problem is
unchanged, because an optimal plan has zero rows and columns there anyway.

Every write goes to a temporary file in the destination folder that is renamed
over the destination once complete, so a destination never contains half a file.
"""

from __future__ import annotations

import csv
import io as _io
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from hessframe.errors import InvalidArgumentError
from hessframe_transport.cost import image_to_measure

logger = logging.getLogger(__name__)

MEASURE_KINDS = ("auto", "image", "points")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".pgm")
ARRAY_EXTENSIONS = (".npy",)

#: Plans with more entries than this are stored in CSR form (exact zeros dropped).
DENSE_PLAN_MAX_ENTRIES = 1_000_000

_ACCEPTED = (
    f"accepted are images ({', '.join(IMAGE_EXTENSIONS)}, or a 2-D .npy array) and point "
    "clouds (.csv/.txt with columns x, y[, z ...][, weight], an (n, d) .npy array, or an "
    ".npz with 'points' and optional 'weights')"
)


@dataclass(frozen=True)
class Measure:
    """A discrete probability measure read from a file.

    Attributes:
        points: (n, d) float64 support points. For images, ``(row, col)`` pixel indices.
        weights: (n,) float64 masses, all positive, summing to one.
        kind: ``"image"`` or ``"points"``.
        path: The file it was read from.
        image: For images, the (rows, cols) grayscale array as read (before
            normalisation); None for point clouds.
    """

    points: np.ndarray
    weights: np.ndarray
    kind: str
    path: Path
    image: np.ndarray | None = None

    @property
    def size(self) -> int:
        """Number of support points."""
        return int(self.weights.shape[0])


@dataclass(frozen=True)
class SavedPlan:
    """A transport plan read back by :func:`load_plan`.

    Attributes:
        plan: (n, m) plan, a dense array or a ``scipy.sparse.csr_array``.
        a: (n,) source weights.
        b: (m,) target weights.
        source_points: (n, d) source support points.
        target_points: (m, d) target support points.
        cost: ⟨plan, M⟩ with the cost matrix M the plan was solved with.
        cost_scale: The factor M was divided by (1.0 when it was not scaled).
        marginal_error: ‖plan 1 − a‖₁ + ‖planᵀ 1 − b‖₁.
        reg: Entropic regularisation weight.
        metric: Ground cost, ``"sqeuclidean"`` or ``"euclidean"``.
    """

    plan: np.ndarray | sp.csr_array
    a: np.ndarray
    b: np.ndarray
    source_points: np.ndarray
    target_points: np.ndarray
    cost: float
    cost_scale: float
    marginal_error: float
    reg: float
    metric: str


def read_measure(
    path: str | os.PathLike, *, argument: str = "SOURCE", kind: str = "auto"
) -> Measure:
    """Read an image or a point cloud from ``path`` as a probability measure.

    The file formats and the rule that distinguishes images from point clouds are in
    this module's docstring.

    Args:
        path: The file to read.
        argument: Name of the argument the path came from (``"SOURCE"``,
            ``"TARGET"``), used in error messages.
        kind: ``"auto"``, ``"image"`` or ``"points"``.

    Returns:
        The measure, with zero-weight support points dropped and weights
        normalised to sum to one.

    Raises:
        InvalidArgumentError: The file is missing or unreadable, has an
            unsupported extension, contains non-finite values, negative weights or
            no mass, or its columns or shape do not fit the requested kind.
    """
    if kind not in MEASURE_KINDS:
        raise InvalidArgumentError(f"kind must be one of {MEASURE_KINDS}, got {kind!r}")
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"{argument} {str(path)!r}: file not found; {_ACCEPTED}")

    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        if kind == "points":
            raise _invalid(argument, path, f"a {suffix} file can only be read as an image")
        return _measure_from_image(_read_pillow_image(path, argument), path, argument)
    if suffix in ARRAY_EXTENSIONS:
        array = _read_npy(path, argument)
        if kind == "auto":
            kind = "points" if array.shape[1] <= 3 and array.shape[0] > array.shape[1] else "image"
        if kind == "image":
            return _measure_from_image(array, path, argument)
        return _measure_from_points(array, None, path, argument)
    if suffix == ".npz":
        if kind == "image":
            raise _invalid(argument, path, "an .npz file can only be read as a point cloud")
        points, weights = _read_npz_points(path, argument)
        return _measure_from_points(points, weights, path, argument)
    if suffix in (".csv", ".txt"):
        points, weights = _read_delimited(path, argument)
        if kind == "image":
            if weights is not None:
                raise _invalid(argument, path, "a table with a 'weight' column is not an image")
            return _measure_from_image(points, path, argument)
        return _measure_from_points(points, weights, path, argument)
    raise _invalid(argument, path, f"unsupported extension {path.suffix!r}")


def _invalid(argument: str, path: Path, problem: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{argument} {str(path)!r}: {problem}; {_ACCEPTED}")


def _read_pillow_image(path: Path, argument: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return _grayscale(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise _invalid(argument, path, f"Pillow cannot read it as an image ({error})") from error


def _grayscale(image: Any) -> np.ndarray:
    """Convert a Pillow image to a float64 grayscale array in [0, 1]."""
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.float64) / 65535.0
    if image.mode in ("I", "F"):
        # 32-bit integer and float images have no fixed range; normalisation removes the scale.
        return np.asarray(image, dtype=np.float64)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _read_npy(path: Path, argument: str) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise _invalid(
            argument, path, f"numpy cannot read it as an .npy array ({error})"
        ) from error
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise _invalid(argument, path, f"the array has dtype {array.dtype}, not a real number type")
    if array.ndim != 2:
        raise _invalid(argument, path, f"the array has shape {array.shape}, not a 2-D shape")
    return array.astype(np.float64)


def _read_npz_points(path: Path, argument: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            points = np.asarray(archive["points"]) if "points" in names else None
            weights = np.asarray(archive["weights"]) if "weights" in names else None
    except (ValueError, OSError, EOFError) as error:
        raise _invalid(
            argument, path, f"numpy cannot read it as an .npz archive ({error})"
        ) from error
    if points is None:
        raise _invalid(argument, path, f"the archive has arrays {names} but no 'points' array")

    for name, array, ndim in (("points", points, 2), ("weights", weights, 1)):
        if array is None:
            continue
        if not np.issubdtype(array.dtype, np.number) or np.issubdtype(
            array.dtype, np.complexfloating
        ):
            raise _invalid(
                argument, path, f"'{name}' has dtype {array.dtype}, not a real number type"
            )
        if array.ndim != ndim:
            raise _invalid(
                argument, path, f"'{name}' has shape {array.shape}, not a {ndim}-D shape"
            )
    if weights is not None and weights.shape[0] != points.shape[0]:
        raise _invalid(
            argument,
            path,
            f"'weights' has {weights.shape[0]} entries but 'points' has {points.shape[0]} rows",
        )
    weights = None if weights is None else weights.astype(np.float64)
    return points.astype(np.float64), weights


def _read_delimited(path: Path, argument: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a CSV or whitespace table; return (coordinates, weights or None)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _invalid(argument, path, f"it cannot be read as UTF-8 text ({error})") from error

    lines = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise _invalid(argument, path, "the file has no data rows")
    rows = [(number, _split_row(line)) for number, line in lines]

    header = None
    first_number, first_row = rows[0]
    if not all(_is_number(cell) for cell in first_row):
        header = [cell.strip().lower() for cell in first_row]
        rows = rows[1:]
    if not rows:
        raise _invalid(argument, path, f"line {first_number} is a header but no data rows follow")

    width = len(header) if header is not None else len(rows[0][1])
    values = np.empty((len(rows), width), dtype=np.float64)
    for index, (number, row) in enumerate(rows):
        if len(row) != width:
            raise _invalid(
                argument, path, f"line {number} has {len(row)} columns, expected {width}"
            )
        for column, cell in enumerate(row):
            try:
                values[index, column] = float(cell)
            except ValueError:
                raise _invalid(
                    argument, path, f"line {number}, column {column + 1}: {cell!r} is not a number"
                ) from None

    if header is None or "weight" not in header:
        return values, None
    if header.count("weight") > 1:
        raise _invalid(argument, path, "the header names more than one 'weight' column")
    weight_column = header.index("weight")
    if width == 1:
        raise _invalid(argument, path, "the only column is 'weight'; add coordinate columns")
    coordinates = np.delete(values, weight_column, axis=1)
    return coordinates, values[:, weight_column]


def _split_row(line: str) -> list[str]:
    if "," in line:
        return next(csv.reader([line]))
    return line.split()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _measure_from_image(image: np.ndarray, path: Path, argument: str) -> Measure:
    if image.ndim != 2 or image.size == 0:
        raise _invalid(argument, path, f"the image has shape {image.shape}, not (rows, cols)")
    _check_finite(image, "pixel values", path, argument)
    if (image < 0).any():
        raise _invalid(argument, path, f"it has negative pixel values (minimum {image.min():g})")

    if not (image > 0).any():
        raise _invalid(argument, path, "every pixel is zero, so the image carries no mass")

    weights, points = image_to_measure(image)
    logger.info("%s %s: image %s, %d pixels with mass", argument, path, image.shape, weights.size)
    return Measure(points, weights, "image", path, image=image)


def _measure_from_points(
    points: np.ndarray, weights: np.ndarray | None, path: Path, argument: str
) -> Measure:
    if points.ndim != 2 or points.shape[0] == 0 or points.shape[1] == 0:
        raise _invalid(argument, path, f"the points have shape {points.shape}, not (n, d)")
    _check_finite(points, "coordinates", path, argument)
    if weights is None:
        weights = np.ones(points.shape[0])
    _check_finite(weights, "weights", path, argument)
    if (weights < 0).any():
        first = int(np.flatnonzero(weights < 0)[0])
        raise _invalid(
            argument,
            path,
            f"point {first} has a negative weight ({weights[first]:g}); "
            "weights must be non-negative",
        )

    keep = weights > 0
    if not keep.any():
        raise _invalid(argument, path, "every weight is zero, so the measure carries no mass")
    if not keep.all():
        logger.info("%s %s: dropped %d points of zero weight", argument, path, int((~keep).sum()))
    points, weights = points[keep], weights[keep]
    logger.info("%s %s: %d points in %d dimensions", argument, path, *points.shape)
    return Measure(points, weights / weights.sum(), "points", path)


def _check_finite(values: np.ndarray, what: str, path: Path, argument: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise _invalid(
            argument,
            path,
            f"{int(bad.sum())} of its {what} are NaN or infinite; all must be finite",
        )


def write_atomically(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through ``write(stream)`` to a temporary name, then rename it to ``path``.

    The temporary file sits in the destination folder, so the rename is atomic
    on POSIX file systems, and it is removed if ``write`` raises.

    Args:
        path: Destination file; its folder must exist.
        write: Callable that writes the whole content to the binary stream it gets.

    Returns:
        The destination path.

    Raises:
        InvalidArgumentError: The destination folder does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InvalidArgumentError(
            f"output {str(path)!r}: folder {str(path.parent)!r} does not exist; create it first"
        )
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_plan(
    path: str | os.PathLike,
    plan: np.ndarray | sp.sparray | sp.spmatrix,
    a: np.ndarray,
    b: np.ndarray,
    *,
    source_points: np.ndarray,
    target_points: np.ndarray,
    cost: float,
    cost_scale: float,
    marginal_error: float,
    reg: float,
    metric: str,
) -> Path:
    """Write a transport plan and what it was solved from to an ``.npz`` archive.

    A sparse plan, or a dense plan with more than :data:`DENSE_PLAN_MAX_ENTRIES`
    entries, is stored in CSR form as ``plan_data``, ``plan_indices``,
    ``plan_indptr`` and ``plan_shape``; only exact zeros are left out, so the
    stored plan equals the given one. Otherwise it is stored dense as ``plan``.
    :func:`load_plan` reads either form.

    Args:
        path: Destination file (``.npz`` is not appended).
        plan: (n, m) transport plan.
        a: (n,) source weights.
        b: (m,) target weights.
        source_points: (n, d) source support points.
        target_points: (m, d) target support points.
        cost: ⟨plan, M⟩.
        cost_scale: Factor the cost matrix was divided by (1.0 when not scaled).
        marginal_error: ‖plan 1 − a‖₁ + ‖planᵀ 1 − b‖₁.
        reg: Entropic regularisation weight.
        metric: Ground cost name.

    Returns:
        The destination path.

    Raises:
        InvalidArgumentError: The shapes of ``plan``, ``a`` and ``b`` disagree,
            or the destination folder does not exist.
    """
    n, m = plan.shape
    if a.shape != (n,) or b.shape != (m,):
        raise InvalidArgumentError(
            f"plan has shape {plan.shape} but a has shape {a.shape} and b has shape {b.shape}; "
            "a must have one entry per plan row and b one per plan column"
        )
    arrays: dict[str, np.ndarray] = {
        "a": a,
        "b": b,
        "source_points": source_points,
        "target_points": target_points,
        "cost": np.float64(cost),
        "cost_scale": np.float64(cost_scale),
        "marginal_error": np.float64(marginal_error),
        "reg": np.float64(reg),
        "metric": np.str_(metric),
    }
    if sp.issparse(plan) or n * m > DENSE_PLAN_MAX_ENTRIES:
        csr = sp.csr_array(plan)
        csr.eliminate_zeros()
        arrays |= {
            "plan_data": csr.data,
            "plan_indices": csr.indices,
            "plan_indptr": csr.indptr,
            "plan_shape": np.asarray(csr.shape),
        }
    else:
        arrays["plan"] = np.asarray(plan)
    return write_atomically(path, lambda stream: np.savez_compressed(stream, **arrays))


def load_plan(path: str | os.PathLike) -> SavedPlan:
    """Read a plan archive written by :func:`write_plan`.

    Raises:
        InvalidArgumentError: The file is missing, not an ``.npz`` archive, or
            lacks the arrays that :func:`write_plan` writes.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as error:
        raise InvalidArgumentError(
            f"plan file {str(path)!r}: cannot be read as an .npz archive ({error}); "
            "pass a file written by `hessframe transport solve --out`"
        ) from error

    required = ("a", "b", "source_points", "target_points", "cost", "cost_scale")
    missing = [name for name in required if name not in arrays]
    if "plan" not in arrays and "plan_data" not in arrays:
        missing.append("plan")
    if missing:
        raise InvalidArgumentError(
            f"plan file {str(path)!r}: missing arrays {missing}; "
            "pass a file written by `hessframe transport solve --out`"
        )
    if "plan" in arrays:
        plan = arrays["plan"]
    else:
        shape = tuple(int(size) for size in arrays["plan_shape"])
        plan = sp.csr_array(
            (arrays["plan_data"], arrays["plan_indices"], arrays["plan_indptr"]), shape=shape
        )
    return SavedPlan(
        plan=plan,
        a=arrays["a"],
        b=arrays["b"],
        source_points=arrays["source_points"],
        target_points=arrays["target_points"],
        cost=float(arrays["cost"]),
        cost_scale=float(arrays["cost_scale"]),
        marginal_error=float(arrays["marginal_error"]),
        reg=float(arrays["reg"]),
        metric=str(arrays["metric"]),
    )


def strongest_matches(
    plan: np.ndarray | sp.sparray | sp.spmatrix, count: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the ``count`` largest plan entries as (rows, cols, masses), largest first."""
    coo = sp.coo_array(plan)
    count = min(count, coo.nnz)
    if count == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    top = np.argpartition(coo.data, -count)[-count:]
    top = top[np.argsort(coo.data[top])[::-1]]
    return coo.row[top].astype(np.int64), coo.col[top].astype(np.int64), coo.data[top]


def write_match_plot(
    path: str | os.PathLike,
    source: Measure,
    target: Measure,
    plan: np.ndarray | sp.sparray | sp.spmatrix,
    *,
    max_matches: int = 300,
    title: str | None = None,
) -> Path:
    """Draw the strongest matches of a transport plan and write the figure as a PNG.

    Two images are drawn side by side with a line from each matched source pixel
    to its target pixel. Point clouds (or an image against a point cloud) are
    drawn as scatter plots of their first two coordinates, with marker area
    proportional to weight; one-dimensional clouds are drawn on two horizontal
    lines. Line opacity is proportional to the plan entry.

    An image against a point cloud is drawn in the coordinates of the cost
    matrix: pixel (row, col) at horizontal position row and vertical position
    col, against the cloud's (column 1, column 2). The image therefore appears
    turned 90° counterclockwise relative to its picture, and the axis labels say
    so; drawing it upright would misplace the match lines.

    Args:
        path: Destination PNG.
        source: The source measure (plan rows).
        target: The target measure (plan columns).
        plan: (n, m) transport plan.
        max_matches: Number of the largest plan entries to draw.
        title: Figure title; a default names the two files.

    Returns:
        The destination path.

    Raises:
        InvalidArgumentError: ``max_matches`` is below 1, the plan shape does not
            fit the measures, or the destination folder does not exist.
    """
    figure = _match_figure(source, target, plan, max_matches=max_matches, title=title)
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return write_atomically(path, lambda stream: stream.write(buffer.getvalue()))


def _match_figure(
    source: Measure,
    target: Measure,
    plan: np.ndarray | sp.sparray | sp.spmatrix,
    *,
    max_matches: int,
    title: str | None,
) -> Any:
    """Return the matplotlib Figure that :func:`write_match_plot` writes."""
    if max_matches < 1:
        raise InvalidArgumentError(f"max_matches must be at least 1, got {max_matches}")
    if plan.shape != (source.size, target.size):
        raise InvalidArgumentError(
            f"plan has shape {plan.shape} but the measures have {source.size} and "
            f"{target.size} points; pass the plan solved for these two measures"
        )

    # Figure without pyplot renders through Agg and leaves the caller's backend alone.
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.add_subplot()
    rows, cols, masses = strongest_matches(plan, max_matches)
    alphas = 0.15 + 0.85 * masses / masses.max() if masses.size else masses

    if source.kind == "image" and target.kind == "image":
        start, end = _draw_images(axes, source, target)
    else:
        start, end = _draw_clouds(axes, source, target)
    segments = np.stack([start[rows], end[cols]], axis=1)
    colors = np.zeros((segments.shape[0], 4))
    colors[:, 1] = 0.5
    colors[:, 3] = alphas
    axes.add_collection(LineCollection(segments, colors=colors, linewidths=0.8, zorder=3))
    axes.set_title(
        title or f"{source.path.name} → {target.path.name}: {rows.size} strongest matches"
    )

    return figure


def _draw_images(axes: Any, source: Measure, target: Measure) -> tuple[np.ndarray, np.ndarray]:
    """Show both images side by side; return the plot positions of their support points."""
    source_rows, source_cols = source.image.shape
    target_rows, target_cols = target.image.shape
    gap = max(2, source_cols // 4)
    offset = source_cols + gap
    axes.imshow(
        source.image, cmap="gray", extent=(-0.5, source_cols - 0.5, source_rows - 0.5, -0.5)
    )
    axes.imshow(
        target.image,
        cmap="gray",
        extent=(offset - 0.5, offset + target_cols - 0.5, target_rows - 0.5, -0.5),
    )
    axes.set_xlim(-1, offset + target_cols)
    axes.set_ylim(max(source_rows, target_rows), -1)
    axes.set_axis_off()
    start = source.points[:, ::-1]
    end = target.points[:, ::-1] + np.array([offset, 0.0])
    return start, end


def _draw_clouds(axes: Any, source: Measure, target: Measure) -> tuple[np.ndarray, np.ndarray]:
    """Scatter both measures; return the plot positions of their support points."""
    positions = []
    for index, measure in enumerate((source, target)):
        points = measure.points
        if points.shape[1] == 1:
            points = np.column_stack([points[:, 0], np.full(measure.size, float(index))])
        positions.append(points[:, :2])
    sizes = [4.0 + 36.0 * m.weights / m.weights.max() for m in (source, target)]
    for points, size, color, label, measure in (
        (positions[0], sizes[0], "tab:blue", "source", source),
        (positions[1], sizes[1], "tab:red", "target", target),
    ):
        axes.scatter(*points.T, s=size, c=color, alpha=0.45, label=f"{label} ({measure.size})")
    axes.legend(loc="best", fontsize="small")
    # Both measures are drawn in the coordinates the cost matrix was built from, so an
    # image's pixel (row, col) sits at x = row, y = col: its picture turned 90° counterclockwise.
    if source.kind == "image" or target.kind == "image":
        axes.set_xlabel("coordinate 1 (image row; point cloud column 1)")
        axes.set_ylabel("coordinate 2 (image column; point cloud column 2)")
    elif max(source.points.shape[1], target.points.shape[1]) > 2:
        axes.set_xlabel("coordinate 1 (of the first two shown)")
        axes.set_ylabel("coordinate 2")
    axes.set_aspect("equal", adjustable="datalim")
    return positions[0], positions[1]
