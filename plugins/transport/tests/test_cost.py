"""Costs, objectives and Wasserstein distances against POT, scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import scipy.sparse
import torch
from hessframe_transport.cost import (
    cost_matrix,
    dual_objective,
    entropic_objective,
    image_to_measure,
    transport_cost,
    wasserstein_distance,
)
from scipy.spatial.distance import cdist

from hessframe.errors import InvalidArgumentError


def test_transport_cost_for_dense_sparse_and_torch_plans(problem):
    plan = ot.emd(problem.a, problem.b, problem.M)
    expected = ot.emd2(problem.a, problem.b, problem.M)
    assert transport_cost(plan, problem.M) == pytest.approx(expected, rel=1e-12)
    assert transport_cost(scipy.sparse.csr_matrix(plan), problem.M) == pytest.approx(
        expected, rel=1e-12
    )
    torch_value = transport_cost(torch.tensor(plan), torch.tensor(problem.M))
    assert torch_value.item() == pytest.approx(expected, rel=1e-12)


def test_entropic_objective_treats_zero_entries_as_zero():
    plan = np.array([[0.5, 0.0], [0.0, 0.5]])
    M = np.array([[0.0, 1.0], [1.0, 2.0]])
    expected = 1.0 + 0.1 * math.log(0.5)
    assert entropic_objective(plan, M, 0.1) == pytest.approx(expected, rel=1e-14)
    torch_value = entropic_objective(torch.tensor(plan), torch.tensor(M), 0.1)
    assert torch_value.item() == pytest.approx(expected, rel=1e-14)


def test_entropic_objective_matches_pot_sinkhorn_loss(problem):
    reg = 0.05
    plan = ot.bregman.sinkhorn_log(problem.a, problem.b, problem.M, reg, stopThr=1e-14)
    pot_value = ot.solve(problem.M, problem.a, problem.b, reg=reg, reg_type="entropy").value
    assert entropic_objective(plan, problem.M, reg) == pytest.approx(pot_value, rel=1e-8)


def test_dual_objective_of_pot_potentials_equals_primal(problem):
    reg = 0.05
    plan, log = ot.bregman.sinkhorn_log(
        problem.a, problem.b, problem.M, reg, stopThr=1e-14, numItermax=100_000, log=True
    )
    f = reg * log["log_u"]
    g = reg * log["log_v"]
    dual = dual_objective(f, g, problem.a, problem.b, problem.M, reg)
    assert dual == pytest.approx(entropic_objective(plan, problem.M, reg), rel=1e-10)


def test_dual_objective_numpy_and_torch_agree(problem):
    rng = np.random.default_rng(1)
    f = 0.1 * rng.normal(size=problem.a.shape)
    g = 0.1 * rng.normal(size=problem.b.shape)
    numpy_value = dual_objective(f, g, problem.a, problem.b, problem.M, 0.05)
    torch_value = dual_objective(
        *(torch.tensor(x) for x in (f, g, problem.a, problem.b, problem.M)), 0.05
    )
    assert torch_value.item() == pytest.approx(numpy_value, rel=1e-13)


def test_dual_objective_gradient_is_marginal_residual(problem):
    reg = 0.05
    f = torch.zeros(problem.a.shape, dtype=torch.float64, requires_grad=True)
    g = torch.zeros(problem.b.shape, dtype=torch.float64, requires_grad=True)
    a, b, M = (torch.tensor(x) for x in (problem.a, problem.b, problem.M))
    dual_objective(f, g, a, b, M, reg).backward()
    plan = torch.exp(-M / reg)
    assert (f.grad - (a - plan.sum(dim=1))).abs().max().item() < 1e-13
    assert (g.grad - (b - plan.sum(dim=0))).abs().max().item() < 1e-13


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_cost_matrix_matches_scipy_cdist(metric):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, 3))
    y = rng.normal(size=(5, 3))
    expected = cdist(x, y, metric=metric)
    assert np.abs(cost_matrix(x, y, metric, scale=False) - expected).max() < 1e-12
    scaled = cost_matrix(x, y, metric)
    assert np.abs(scaled - expected / expected.max()).max() < 1e-12
    assert scaled.max() == pytest.approx(1.0)


def test_image_to_measure_keeps_pixels_with_mass():
    image = np.array([[0.0, 2.0], [1.0, 1.0]])
    weights, coordinates = image_to_measure(image)
    assert np.allclose(weights, [0.5, 0.25, 0.25])
    assert np.array_equal(coordinates, [[0, 1], [1, 0], [1, 1]])
    all_weights, all_coordinates = image_to_measure(image, keep_zeros=True)
    assert all_weights.shape == (4,)
    assert all_coordinates.shape == (4, 2)


@pytest.mark.parametrize("p", [1, 2])
def test_point_cloud_distance_approaches_exact_wasserstein(p):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    y = rng.normal(size=(30, 2)) + 1.0
    weights = rng.uniform(0.5, 1.0, size=30)
    exact = ot.emd2(
        np.full(40, 1 / 40),
        weights / weights.sum(),
        cdist(x, y, "sqeuclidean" if p == 2 else "euclidean"),
    ) ** (1 / p)
    gaps = []
    for reg in (1e-2, 1e-3, 1e-4):
        value = wasserstein_distance(x, y, p=p, reg=reg, kind="points", target_weights=weights)
        assert value >= exact * (1 - 1e-9)
        gaps.append(value - exact)
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3 * exact


@pytest.mark.parametrize("p", [1, 2])
def test_shifted_image_distance_is_shift_length(p):
    image = np.zeros((12, 12))
    image[2:5, 3:6] = np.arange(1.0, 10.0).reshape(3, 3)
    shifted = np.roll(image, shift=(3, 4), axis=(0, 1))
    value = wasserstein_distance(image, shifted, p=p, reg=1e-4)
    assert value == pytest.approx(5.0, rel=1e-3)


def test_images_of_different_shapes_match_emd():
    rng = np.random.default_rng(4)
    source = rng.uniform(size=(6, 7))
    target = rng.uniform(size=(5, 9))
    a, x = image_to_measure(source)
    b, y = image_to_measure(target)
    exact = math.sqrt(ot.emd2(a, b, cdist(x, y, "sqeuclidean")))
    value, plan = wasserstein_distance(source, target, p=2, reg=1e-4, return_plan=True)
    assert plan.shape == (42, 45)
    assert value == pytest.approx(exact, rel=1e-3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cost_matrix(np.zeros((3, 2)), np.zeros((3, 3))), "same dimension"),
        (lambda: cost_matrix(np.zeros((3, 2)), np.zeros((3, 2)), "cosine"), "metric must be"),
        (lambda: cost_matrix(np.full((3, 2), np.nan), np.zeros((3, 2))), "x contains NaN"),
        (lambda: image_to_measure(np.zeros((3, 3))), "image sums to zero"),
        (lambda: image_to_measure(-np.ones((3, 3))), "image contains negative"),
        (lambda: image_to_measure(np.ones((2, 2, 3))), "image must be a non-empty 2-D"),
        (lambda: wasserstein_distance(np.ones((2, 2)), np.ones((2, 2)), p=3), "p must be 1 or 2"),
        (lambda: wasserstein_distance(np.ones((2, 2)), np.ones((2, 2)), kind="x"), "kind must be"),
        (
            lambda: wasserstein_distance(np.ones((2, 2)), np.ones((2, 2)), source_weights=[1, 1]),
            "apply to kind='points'",
        ),
        (
            lambda: wasserstein_distance(
                np.ones((2, 2)), np.ones((3, 2)), kind="points", target_weights=[1, -1, 1]
            ),
            "target_weights must be finite, non-negative",
        ),
        (lambda: entropic_objective(np.ones((2, 2)), np.ones((2, 3)), 0.1), "plan has shape"),
        (lambda: entropic_objective(np.ones((2, 2)), np.ones((2, 2)), -1.0), "reg must be"),
        (
            lambda: dual_objective(
                np.zeros(3), np.zeros(2), np.ones(2), np.ones(2), np.ones((2, 2)), 1.0
            ),
            "f must have shape",
        ),
    ],
)
def test_invalid_cost_input_is_rejected(call, match):
    with pytest.raises(InvalidArgumentError, match=match):
        call()


@pytest.mark.parametrize("argument", ["source", "target"])
def test_point_cloud_as_image_names_argument_and_kind(argument):
    cloud = np.random.default_rng(0).normal(size=(20, 2))
    image = np.ones((4, 4))
    arguments = {"source": image, "target": image, argument: cloud}

    with pytest.raises(InvalidArgumentError) as caught:
        wasserstein_distance(arguments["source"], arguments["target"])

    message = str(caught.value)
    assert message.startswith(f"{argument} was read as an image because kind='images'")
    assert "negative values" in message
    assert "pass kind='points'" in message
