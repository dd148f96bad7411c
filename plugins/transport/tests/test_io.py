"""Tests of reading measures from files and writing plans and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hessframe_transport import io as transport_io
from hessframe_transport.io import (
    Measure,
    load_plan,
    read_measure,
    strongest_matches,
    write_atomically,
    write_match_plot,
    write_plan,
)
from PIL import Image

from hessframe.errors import InvalidArgumentError

DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "transport"


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_png_pixels_become_weighted_support_points(tmp_path):
    pixels = np.array([[0, 10, 0], [30, 0, 60]], dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(pixels, mode="L").save(path)

    measure = read_measure(path)

    assert measure.kind == "image"
    np.testing.assert_array_equal(measure.points, [[0, 1], [1, 0], [1, 2]])
    np.testing.assert_allclose(measure.weights, [0.1, 0.3, 0.6], rtol=1e-12)
    np.testing.assert_allclose(measure.image, pixels / 255.0)


def test_rgb_png_is_read_as_grayscale(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (0, 0, 255)
    path = tmp_path / "color.png"
    Image.fromarray(rgb, mode="RGB").save(path)

    measure = read_measure(path)

    # Pillow's "L" conversion weights red by 299/1000 and blue by 114/1000 (ITU-R 601-2).
    expected = np.array([round(255 * 0.299), round(255 * 0.114)], dtype=float)
    np.testing.assert_allclose(measure.weights, expected / expected.sum(), rtol=1e-12)


def test_sixteen_bit_png_keeps_its_precision(tmp_path):
    pixels = np.array([[1000, 3000], [0, 60000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)

    measure = read_measure(path)

    np.testing.assert_allclose(measure.weights, [1000, 3000, 60000] / np.float64(64000))


def test_npy_square_array_is_an_image(tmp_path):
    array = np.arange(20, dtype=float).reshape(4, 5)
    np.save(tmp_path / "grid.npy", array)

    measure = read_measure(tmp_path / "grid.npy")

    assert measure.kind == "image"
    assert measure.size == 19  # the zero at (0, 0) carries no mass
    np.testing.assert_allclose(measure.weights, array.ravel()[1:] / array.sum())


def test_npy_tall_narrow_array_is_a_point_cloud(tmp_path):
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.save(tmp_path / "cloud.npy", points)

    measure = read_measure(tmp_path / "cloud.npy")

    assert measure.kind == "points"
    np.testing.assert_array_equal(measure.points, points)
    np.testing.assert_allclose(measure.weights, np.full(10, 0.1))


def test_kind_override_reads_npy_cloud_as_image(tmp_path):
    array = np.ones((10, 2))
    np.save(tmp_path / "narrow.npy", array)

    measure = read_measure(tmp_path / "narrow.npy", kind="image")

    assert measure.kind == "image"
    assert measure.size == 20


def test_csv_weight_column_is_found_by_name(tmp_path):
    path = write_text(tmp_path / "cloud.csv", "weight,x,y\n1,0.5,2\n3,1.5,-1\n")

    measure = read_measure(path)

    np.testing.assert_array_equal(measure.points, [[0.5, 2.0], [1.5, -1.0]])
    np.testing.assert_allclose(measure.weights, [0.25, 0.75])


def test_csv_without_header_has_uniform_weights(tmp_path):
    path = write_text(tmp_path / "cloud.csv", "# a comment\n0,0,1\n1,1,1\n2,0,0\n3,1,0\n")

    measure = read_measure(path)

    assert measure.points.shape == (4, 3)
    np.testing.assert_allclose(measure.weights, np.full(4, 0.25))


def test_whitespace_table_is_read(tmp_path):
    path = write_text(tmp_path / "cloud.txt", "x y weight\n0 0 1\n2 2 1\n")

    measure = read_measure(path)

    np.testing.assert_array_equal(measure.points, [[0, 0], [2, 2]])
    np.testing.assert_allclose(measure.weights, [0.5, 0.5])


def test_npz_points_and_weights_are_read(tmp_path):
    path = tmp_path / "cloud.npz"
    np.savez(path, points=np.array([[0.0], [1.0], [4.0]]), weights=np.array([1.0, 0.0, 1.0]))

    measure = read_measure(path)

    np.testing.assert_array_equal(measure.points, [[0.0], [4.0]])  # the zero weight is dropped
    np.testing.assert_allclose(measure.weights, [0.5, 0.5])


def test_shipped_data_sets_have_documented_sizes():
    expected = {
        "source.png": ("image", 604, 2),
        "target.png": ("image", 560, 2),
        "source_points.csv": ("points", 300, 2),
        "target_points.csv": ("points", 371, 2),
        "source_colors.csv": ("points", 300, 3),
        "target_colors.csv": ("points", 300, 3),
    }
    for name, (kind, size, dimension) in expected.items():
        measure = read_measure(DATASET_DIR / name)
        assert measure.kind == kind, name
        assert measure.size == size, name
        assert measure.points.shape[1] == dimension, name
        assert abs(measure.weights.sum() - 1.0) < 1e-12, name


@pytest.mark.parametrize(
    ("name", "content", "argument", "message"),
    [
        ("fake.png", b"this is text, not a PNG", "SOURCE", "Pillow cannot read it"),
        ("ragged.csv", b"x,y,weight\n0,0,1\n1,1\n", "TARGET", "line 3 has 2 columns, expected 3"),
        ("word.csv", b"x,y\n0,0\n1,abc\n", "SOURCE", "column 2: 'abc' is not a number"),
        ("negative.csv", b"x,y,weight\n0,0,1\n1,1,-0.5\n", "TARGET", "negative weight (-0.5)"),
        ("nan.csv", b"x,y\n0,nan\n1,1\n", "SOURCE", "NaN or infinite"),
        ("zero.csv", b"x,weight\n0,0\n1,0\n", "SOURCE", "every weight is zero"),
        ("only_weight.csv", b"weight\n1\n2\n", "SOURCE", "the only column is 'weight'"),
        ("empty.csv", b"# nothing\n", "TARGET", "no data rows"),
        ("points.xyz", b"0 0\n", "SOURCE", "unsupported extension '.xyz'"),
    ],
)
def test_bad_file_error_names_argument_and_problem(tmp_path, name, content, argument, message):
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(InvalidArgumentError) as raised:
        read_measure(path, argument=argument)

    text = str(raised.value)
    assert text.startswith(f"{argument} {str(path)!r}:")
    assert message in text
    assert "accepted are images" in text


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, -2.0], [0.0, 1.0]]), "negative pixel values"),
        (np.zeros((3, 3)), "every pixel is zero"),
        (np.ones((2, 2, 2)), "not a 2-D shape"),
        (np.array([["a", "b"], ["c", "d"]]), "not a real number type"),
    ],
)
def test_bad_npy_image_is_rejected(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)

    with pytest.raises(InvalidArgumentError, match=message):
        read_measure(path, argument="SOURCE", kind="image")


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"TARGET '.*absent.png': file not found"):
        read_measure(tmp_path / "absent.png", argument="TARGET")


def test_png_cannot_be_read_as_points(tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(np.ones((2, 2), dtype=np.uint8)).save(path)

    with pytest.raises(InvalidArgumentError, match=r"can only be read as an image"):
        read_measure(path, kind="points")


def test_npz_without_points_is_rejected(tmp_path):
    path = tmp_path / "cloud.npz"
    np.savez(path, coordinates=np.zeros((2, 2)))

    with pytest.raises(InvalidArgumentError) as caught:
        read_measure(path)

    message = str(caught.value)
    expected = (
        f"SOURCE {str(path)!r}: the archive has arrays ['coordinates'] but no 'points' array;"
    )
    assert message.startswith(expected)
    assert message.count("accepted are") == 1
    assert "numpy cannot read" not in message


def test_dense_plan_round_trips(tmp_path):
    plan = np.array([[0.25, 0.0], [0.25, 0.5]])
    path = write_plan(
        tmp_path / "plan.npz",
        plan,
        plan.sum(axis=1),
        plan.sum(axis=0),
        source_points=np.zeros((2, 2)),
        target_points=np.ones((2, 2)),
        cost=0.5,
        cost_scale=2.0,
        marginal_error=0.0,
        reg=0.01,
        metric="sqeuclidean",
    )

    saved = load_plan(path)

    assert isinstance(saved.plan, np.ndarray)
    np.testing.assert_array_equal(saved.plan, plan)
    np.testing.assert_array_equal(saved.a, [0.25, 0.75])
    assert saved.cost == 0.5
    assert saved.cost_scale == 2.0
    assert saved.metric == "sqeuclidean"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_large_plan_is_stored_sparse_and_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(transport_io, "DENSE_PLAN_MAX_ENTRIES", 3)
    plan = np.array([[0.25, 0.0], [0.0, 0.75]])

    write_plan(
        tmp_path / "plan.npz",
        plan,
        plan.sum(axis=1),
        plan.sum(axis=0),
        source_points=np.zeros((2, 1)),
        target_points=np.ones((2, 1)),
        cost=0.0,
        cost_scale=1.0,
        marginal_error=0.0,
        reg=0.1,
        metric="euclidean",
    )
    saved = load_plan(tmp_path / "plan.npz")

    assert sp.issparse(saved.plan)
    assert saved.plan.nnz == 2
    np.testing.assert_array_equal(saved.plan.toarray(), plan)


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "plan.npz"
    path.write_bytes(b"old content")

    def fail_halfway(stream):
        stream.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(path, fail_halfway)

    assert path.read_bytes() == b"old content"
    assert list(tmp_path.iterdir()) == [path]


def test_write_into_missing_folder_is_rejected(tmp_path):
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        write_atomically(tmp_path / "absent" / "plan.npz", lambda stream: None)


def test_strongest_matches_are_sorted_by_mass():
    plan = sp.csr_array(np.array([[0.1, 0.0, 0.4], [0.0, 0.3, 0.2]]))

    rows, cols, masses = strongest_matches(plan, 3)

    np.testing.assert_array_equal(rows, [0, 1, 1])
    np.testing.assert_array_equal(cols, [2, 1, 2])
    np.testing.assert_array_equal(masses, [0.4, 0.3, 0.2])


@pytest.mark.parametrize("kind", ["image", "points"])
def test_match_plot_is_a_png(tmp_path, kind):
    image = np.array([[0.0, 1.0], [1.0, 1.0]])
    if kind == "image":
        source = Measure(
            np.array([[0.0, 1], [1, 0], [1, 1]]), np.full(3, 1 / 3), kind, tmp_path, image
        )
    else:
        source = Measure(np.array([[0.0, 1], [1, 0], [1, 1]]), np.full(3, 1 / 3), kind, tmp_path)
    plan = np.eye(3) / 3

    path = write_match_plot(tmp_path / "matches.png", source, source, plan)

    with Image.open(path) as written:
        assert written.format == "PNG"
        assert written.size[0] > 100


def test_image_against_points_plot_uses_cost_coordinates(tmp_path):
    from hessframe_transport.io import _match_figure

    image_path = tmp_path / "image.npy"
    np.save(image_path, np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]))
    cloud_path = tmp_path / "cloud.csv"
    cloud_path.write_text("x,y\n0,1\n2,0\n")
    image = read_measure(image_path, kind="image")
    cloud = read_measure(cloud_path, argument="TARGET")
    plan = np.diag([1.0 / 3.0, 2.0 / 3.0])

    figure = _match_figure(image, cloud, plan, max_matches=10, title=None)

    axes = figure.axes[0]
    assert axes.get_xlabel() == "coordinate 1 (image row; point cloud column 1)"
    assert axes.get_ylabel() == "coordinate 2 (image column; point cloud column 2)"
    image_offsets = axes.collections[0].get_offsets()
    np.testing.assert_array_equal(image_offsets, [[0.0, 1.0], [2.0, 0.0]])
    segments = axes.collections[2].get_segments()
    for segment in segments:
        np.testing.assert_array_equal(segment[0], segment[1])
