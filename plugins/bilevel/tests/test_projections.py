"""Projections onto X and Y against independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hessframe_bilevel.problem import BilevelProblem
from hessframe_bilevel.projections import Box, NonNegative, Simplex

from hessframe.errors import InvalidArgumentError


def sorted_simplex_projection(v: np.ndarray, radius: float) -> np.ndarray:
    """Project onto {u ≥ 0, Σu = radius} by the sorting algorithm of Held, Wolfe and Crowder."""
    descending = np.sort(v)[::-1]
    cumulative = np.cumsum(descending) - radius
    ranks = np.arange(1, v.size + 1)
    support = ranks[descending - cumulative / ranks > 0][-1]
    threshold = cumulative[support - 1] / support
    return np.maximum(v - threshold, 0.0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("radius", [1.0, 2.5])
def test_simplex_matches_sorting_reference(seed, radius):
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=3.0, size=17)
    projected = Simplex(radius)(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(projected, sorted_simplex_projection(v, radius), atol=1e-12)
    assert projected.min() >= 0
    assert projected.sum() == pytest.approx(radius, abs=1e-12)


def test_simplex_keeps_point_already_on_simplex():
    point = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    torch.testing.assert_close(Simplex()(point), point, atol=1e-14, rtol=0)


def test_box_clips_each_entry():
    v = torch.tensor([-3.0, 0.5, 4.0, 1.5], dtype=torch.float64)
    lower = torch.tensor([-1.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    projected = Box(lower, 3.0)(v)
    expected = np.minimum(np.maximum(v.numpy(), lower.numpy()), 3.0)
    np.testing.assert_array_equal(projected.numpy(), expected)


def test_nonnegative_zeroes_negative_entries():
    v = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    np.testing.assert_array_equal(NonNegative()(v).numpy(), np.maximum(v.numpy(), 0.0))


def test_box_with_lower_above_upper_is_rejected():
    with pytest.raises(InvalidArgumentError, match=r"lower > upper at entry 1"):
        Box(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("radius", [0.0, -1.0, float("inf"), True])
def test_simplex_with_invalid_radius_is_rejected(radius):
    with pytest.raises(InvalidArgumentError, match="radius"):
        Simplex(radius)


def test_user_projection_with_wrong_shape_is_rejected():
    problem = BilevelProblem(
        upper=lambda x, y: x.sum(), lower=lambda x, y: y.square().sum(), y_set=lambda v: v[:1]
    )
    with pytest.raises(InvalidArgumentError, match=r"y_set.*shape \(3,\)"):
        problem.project_y(torch.zeros(3))


def test_unknown_set_type_is_rejected():
    with pytest.raises(InvalidArgumentError, match="x_set must be Box"):
        BilevelProblem(upper=lambda x, y: x.sum(), lower=lambda x, y: y.sum(), x_set="box")


@pytest.mark.parametrize(("lower", "upper"), [("0", 1.0), (None, 1.0), (0.0, [1.0, "a"])])
def test_box_with_non_numeric_bound_is_rejected(lower, upper):
    with pytest.raises(InvalidArgumentError, match="Box: lower and upper must be floats or real"):
        Box(lower, upper)


@pytest.mark.parametrize("set_class", [NonNegative, Simplex])
def test_set_class_instead_of_instance_is_rejected(set_class):
    with pytest.raises(
        InvalidArgumentError,
        match=rf"x_set must be a set instance such as {set_class.__name__}\(\)",
    ):
        BilevelProblem(
            upper=lambda x, y: x.sum(), lower=lambda x, y: y.square().sum(), x_set=set_class
        )


@pytest.mark.parametrize(
    ("point", "message"),
    [
        (torch.zeros(0), r"non-empty flat tensor, got shape \(0,\)"),
        (torch.zeros(2, 2), r"non-empty flat tensor, got shape \(2, 2\)"),
        (torch.tensor([float("nan"), 1.0]), "finite values, got NaN or infinity"),
        ([0.5, 0.5], "floating torch.Tensor, got list"),
        (torch.tensor([3, 1]), "floating torch.Tensor, got tensor of dtype torch.int64"),
    ],
)
def test_simplex_rejects_points_it_cannot_project(point, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Simplex(1.0)(point)


@pytest.mark.parametrize("projection", [Box(0.0, 1.0), NonNegative()])
def test_box_and_orthant_reject_points_that_are_not_tensors(projection):
    with pytest.raises(InvalidArgumentError, match=r"projects a floating torch\.Tensor, got list"):
        projection([0.5, -1.0])
