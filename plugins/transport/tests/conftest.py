"""Small transport problems shared by the solver, cost and provider tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ot
import pytest


@dataclass(frozen=True)
class TransportProblem:
    """Marginals a, b and a cost matrix M scaled to [0, 1]."""

    a: np.ndarray
    b: np.ndarray
    M: np.ndarray


def make_problem(n: int, m: int, seed: int) -> TransportProblem:
    """Return random positive marginals and the squared distances between Gaussian clouds."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(m, 2)) + 0.5
    M = ot.dist(x, y)
    a = rng.uniform(0.2, 1.0, size=n)
    b = rng.uniform(0.2, 1.0, size=m)
    return TransportProblem(a / a.sum(), b / b.sum(), M / M.max())


@pytest.fixture
def problem() -> TransportProblem:
    """A 12×9 problem."""
    return make_problem(12, 9, seed=0)


@pytest.fixture
def square_problem() -> TransportProblem:
    """A 40×40 problem."""
    return make_problem(40, 40, seed=1)
