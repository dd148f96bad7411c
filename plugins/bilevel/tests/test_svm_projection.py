"""The Euclidean projection onto the SVM problem's set C, checked through its KKT conditions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hessframe_bilevel.data import load_binary_dataset
from hessframe_bilevel.svm import svm_hyperparameter_problem
from hessframe_bilevel.svm_projection import project_pairs
from scipy.optimize import nnls


def svm_dataset():
    return load_binary_dataset("breast-cancer").head(20, 5)


@pytest.fixture(scope="module")
def svm():
    return svm_hyperparameter_problem(svm_dataset())


def random_point(svm, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    bounds = torch.randn(svm.x0.shape, generator=generator, dtype=torch.float64)
    lower = torch.randn(svm.y0.shape, generator=generator, dtype=torch.float64)
    return bounds, lower


def constraint_matrix(svm, n: int) -> np.ndarray:
    """Return G with C = {p : G p ≤ h}: the rows of g (linear here) and −c ≤ 0."""
    point = torch.zeros(n + svm.y0.shape[0], dtype=torch.float64)
    rows = torch.autograd.functional.jacobian(
        lambda p: torch.cat([svm.problem.constraints(p[:n], p[n:]), -p[:n]]), point
    )
    return rows.numpy()


def kkt_residual(svm, start: np.ndarray, projected: np.ndarray) -> float:
    """Return min over μ ≥ 0 on the active rows of ‖(start − projected) − G_Aᵀ μ‖.

    For the convex problem min ½‖p − p⁰‖² over {G p ≤ h}, a feasible p with residual
    zero satisfies the KKT conditions, so it is the projection.
    """
    n = svm.x0.shape[0]
    matrix = constraint_matrix(svm, n)
    projected_bounds = torch.from_numpy(projected[:n])
    projected_lower = torch.from_numpy(projected[n:])
    values = np.concatenate(
        [svm.problem.constraints(projected_bounds, projected_lower).numpy(), -projected[:n]]
    )
    active = values >= -1e-9
    _, residual = nnls(matrix[active].T, start - projected)
    return residual


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_euclidean_projection_satisfies_kkt(svm, seed):
    bounds, lower = random_point(svm, seed)
    projected_bounds, projected_lower = svm.problem.project_feasible(bounds, lower)
    start = np.concatenate([bounds.numpy(), lower.numpy()])
    ours = np.concatenate([projected_bounds.numpy(), projected_lower.numpy()])
    assert float(svm.problem.constraints(projected_bounds, projected_lower).max()) <= 1e-10
    assert kkt_residual(svm, start, ours) < 1e-8
    # The retraction that holds (w, b) fixed is feasible too, but farther from the start.
    slack = svm_hyperparameter_problem(svm_dataset(), projection="slack")
    other_bounds, other_lower = slack.problem.project_feasible(bounds, lower)
    other = np.concatenate([other_bounds.numpy(), other_lower.numpy()])
    assert np.sum((ours - start) ** 2) < np.sum((other - start) ** 2)


@pytest.mark.parametrize("seed", [0, 1])
def test_euclidean_projection_is_feasible_and_idempotent(svm, seed):
    bounds, lower = random_point(svm, seed)
    projected_bounds, projected_lower = svm.problem.project_feasible(bounds, lower)
    assert float(svm.problem.constraints(projected_bounds, projected_lower).max()) <= 1e-10
    assert float(projected_bounds.min()) >= 0.0
    again_bounds, again_lower = svm.problem.project_feasible(projected_bounds, projected_lower)
    torch.testing.assert_close(again_bounds, projected_bounds, atol=1e-9, rtol=0)
    torch.testing.assert_close(again_lower, projected_lower, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("point", "level", "expected"),
    [
        ((2.0, 1.0), 0.5, (2.0, 1.0)),  # inside: unchanged
        ((2.0, 0.0), 0.5, (2.0, 0.5)),  # below the hinge level: ξ rises to t
        ((0.2, 0.8), 0.3, (0.5, 0.5)),  # ξ above c: both meet at the midpoint
        ((-1.0, -2.0), -1.0, (0.0, -1.0)),  # c below zero with t < 0: c = 0, ξ = t
        ((-1.0, 3.0), 0.5, (1.0, 1.0)),  # midpoint 1 above t: the edge ξ = c
        ((-1.0, -1.0), 0.5, (0.5, 0.5)),  # the vertex (t, t)
    ],
)
def test_pair_projection_by_hand(point, level, expected):
    c, xi, _, _ = project_pairs(
        torch.tensor([point[0]], dtype=torch.float64),
        torch.tensor([point[1]], dtype=torch.float64),
        torch.tensor([level], dtype=torch.float64),
    )
    assert (float(c), float(xi)) == pytest.approx(expected, abs=1e-15)
