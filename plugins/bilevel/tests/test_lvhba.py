"""LV-HBA against closed-form optima, hand-computed steps and its invariants."""

from __future__ import annotations

import math

import pytest
import torch
from hessframe_bilevel.lvhba import LVHBAConfig, LVHBAState, initial_state, lvhba, lvhba_step
from hessframe_bilevel.problem import BilevelProblem
from hessframe_bilevel.toys import coupled_toy, quadratic_toy

from hessframe.errors import InvalidArgumentError, NonFiniteError


def relative_error(result, toy) -> float:
    error = torch.cat([result.x - toy.x_star, result.y - toy.y_star])
    return float(
        torch.linalg.vector_norm(error)
        / torch.linalg.vector_norm(torch.cat([toy.x_star, toy.y_star]))
    )


def scalar_problem(project_feasible=None) -> BilevelProblem:
    """F = ½(x − 2)² + ½(y − 3)², f = ½(y − 1)², g = y − x, on scalars as 1-vectors."""
    return BilevelProblem(
        upper=lambda x, y: 0.5 * (x - 2).square().sum() + 0.5 * (y - 3).square().sum(),
        lower=lambda x, y: 0.5 * (y - 1).square().sum(),
        constraints=lambda x, y: y - x,
        project_feasible=project_feasible,
    )


def vector(value: float) -> torch.Tensor:
    return torch.tensor([value], dtype=torch.float64)


def stop_within(toy, tolerance: float):
    """Return a callback that stops a run once its relative error is at most ``tolerance``."""

    def callback(report) -> bool:
        error = torch.cat([report.x - toy.x_star, report.y - toy.y_star])
        reference = torch.cat([toy.x_star, toy.y_star])
        return float(torch.linalg.vector_norm(error) / torch.linalg.vector_norm(reference)) <= (
            tolerance
        )

    return callback


def test_coupled_toy_reaches_closed_form():
    toy = coupled_toy()
    # λ lags behind (x, y): at a relative error of 1e-3 λ₂ was still 1.3e-3 from 0.5.
    result = lvhba(toy.problem, toy.x0, toy.y0, max_iter=6000, callback=stop_within(toy, 5e-4))
    assert result.stopped_by_callback
    assert relative_error(result, toy) < 1e-3
    torch.testing.assert_close(
        result.multipliers, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64), atol=1e-3, rtol=0
    )
    assert result.history.upper_objective[-1] == pytest.approx(toy.upper_star, rel=1e-3)


def test_quadratic_toy_reaches_closed_form():
    toy = quadratic_toy()
    # The 1/c_k weight of F leaves a bias that needs c_k near 10·5600^0.49 ≈ 680 here.
    result = lvhba(toy.problem, toy.x0, toy.y0, max_iter=10_000, callback=stop_within(toy, 1e-3))
    assert result.stopped_by_callback
    assert relative_error(result, toy) < 1e-3


def test_one_step_matches_hand_computation():
    config = LVHBAConfig(alpha=0.3, beta=0.7, eta=0.2, gamma1=4.0, gamma2=2.5, c_lower=3.0, p=0.4)
    x, y, theta, lam, z = 1.0, 2.0, 0.5, 0.3, 0.7
    state = LVHBAState(vector(x), vector(y), vector(theta), vector(lam), vector(z))
    step = lvhba_step(scalar_problem(), state, 0, config)

    # ∇_θ L = (θ − 1) + λ + (θ − y)/γ₁ and ∂_λ L = g(x, θ) − (λ − z)/γ₂, both divided by γ.
    theta_next = theta - 0.2 * ((theta - 1) + lam + (theta - y) / 4.0)
    lam_next = max(0.0, lam + 0.2 * ((theta - x) - (lam - z) / 2.5))
    c_0 = 3.0 * 1**0.4
    # ∇_x f = 0 and ∇_x g = −1, so d_x = (x − 2)/c − (−λ_{k+1}).
    direction_x = (x - 2) / c_0 + lam_next
    direction_y = (y - 3) / c_0 + (y - 1) - (y - theta_next) / 4.0
    z_next = max(0.0, z - 0.7 * (z - lam_next) / 2.5)

    assert float(step.theta) == pytest.approx(theta_next, abs=1e-14)
    assert float(step.multipliers) == pytest.approx(lam_next, abs=1e-14)
    assert float(step.x) == pytest.approx(x - 0.3 * direction_x, abs=1e-14)
    assert float(step.y) == pytest.approx(y - 0.3 * direction_y, abs=1e-14)
    assert float(step.z) == pytest.approx(z_next, abs=1e-14)


def test_multiplier_step_uses_constraint_at_current_theta():
    # The (θ, λ) step is one projected gradient step of L at (θ_k, λ_k), so λ_{k+1} reads
    # g(x_k, θ_k). Here θ moves from 0.5 to 0.4, so g(x_k, θ_{k+1}) would give another λ.
    config = LVHBAConfig(eta=0.2, gamma1=4.0, gamma2=2.5)
    x, theta, lam, z = 1.0, 0.5, 0.3, 0.7
    state = LVHBAState(vector(x), vector(2.0), vector(theta), vector(lam), vector(z))
    step = lvhba_step(scalar_problem(), state, 0, config)

    theta_next = float(step.theta)
    assert abs(theta_next - theta) > 0.05
    with_current = lam + 0.2 * ((theta - x) - (lam - z) / 2.5)
    with_next = lam + 0.2 * ((theta_next - x) - (lam - z) / 2.5)
    assert float(step.multipliers) == pytest.approx(with_current, abs=1e-15)
    assert abs(float(step.multipliers) - with_next) > 1e-3


def test_proximal_terms_divide_by_gamma():
    # Doubling γ₁ halves the pull (θ − y)/γ₁ of θ towards y; doubling γ₂ halves (λ − z)/γ₂.
    state = LVHBAState(vector(1.0), vector(2.0), vector(0.5), vector(0.3), vector(0.7))
    problem = scalar_problem()
    base = lvhba_step(problem, state, 0, LVHBAConfig(eta=0.2, gamma1=4.0, gamma2=2.5))
    wider = lvhba_step(problem, state, 0, LVHBAConfig(eta=0.2, gamma1=8.0, gamma2=5.0))

    # θ_{k+1} − θ_k = −η (∇f + λ∇g + (θ − y)/γ₁): only the last term changes.
    theta_change = float(wider.theta - base.theta)
    assert theta_change == pytest.approx(-0.2 * (0.5 - 2.0) * (1 / 8.0 - 1 / 4.0), abs=1e-15)
    multiplier_change = float(wider.multipliers - base.multipliers)
    assert multiplier_change == pytest.approx(-0.2 * (0.3 - 0.7) * (1 / 5.0 - 1 / 2.5), abs=1e-15)


def test_penalty_weight_grows_as_power_of_iteration():
    config = LVHBAConfig(c_lower=3.0, p=0.4)
    assert config.penalty(0) == pytest.approx(3.0)
    assert config.penalty(9) == pytest.approx(3.0 * 10**0.4)


def test_every_variable_changes_in_one_step():
    state = LVHBAState(vector(1.0), vector(2.0), vector(0.5), vector(0.6), vector(0.7))
    step = lvhba_step(scalar_problem(), state, 0, LVHBAConfig())
    for name in ("x", "y", "theta", "multipliers", "z"):
        assert not torch.equal(getattr(step, name), getattr(state, name)), name


def test_z_follows_multipliers_between_iterations():
    # θ moves towards a > x = 0, so g(x, θ) > 0 from the first step and λ grows from the second.
    toy = coupled_toy()
    config = LVHBAConfig()
    state, _ = initial_state(toy.problem, toy.x0, toy.y0)
    for k in range(20):
        next_state = lvhba_step(toy.problem, state, k, config)
        expected = torch.clamp(
            state.z - config.beta * (state.z - next_state.multipliers) / config.gamma2, min=0
        )
        torch.testing.assert_close(next_state.z, expected, atol=1e-15, rtol=0)
        if k >= 1:
            assert not torch.equal(next_state.z, state.z), k
        state = next_state
    assert float(state.z.max()) > 0


def test_multipliers_stay_nonnegative_where_ascent_points_below_zero():
    # y − x = −5 at the start, so the unprojected ascent step drives λ below zero.
    problem = scalar_problem()
    state = LVHBAState(vector(6.0), vector(1.0), vector(1.0), vector(0.4), vector(0.4))
    config = LVHBAConfig()
    unprojected = 0.4 + config.eta * ((1.0 - 6.0) - 0.0)
    assert unprojected < 0
    for k in range(200):
        state = lvhba_step(problem, state, k, config)
        assert float(state.multipliers.min()) >= 0.0
        assert float(state.z.min()) >= 0.0


def test_multipliers_stay_in_bound():
    toy = coupled_toy()
    config = LVHBAConfig(multiplier_bound=0.2)
    result = lvhba(toy.problem, toy.x0, toy.y0 + 3.0, config=config, max_iter=200)
    assert float(result.multipliers.max()) <= 0.2
    assert float(result.z.max()) <= 0.2


def test_constraint_violation_vanishes_on_coupled_toy():
    # (x, y) stays in C by projection, and the lower iterate θ becomes feasible: g(x, θ) → 0⁺.
    toy = coupled_toy()
    config = LVHBAConfig()
    state, _ = initial_state(toy.problem, toy.x0, toy.y0 + 2.0)
    theta_violation = []
    for k in range(3000):
        state = lvhba_step(toy.problem, state, k, config)
        g = toy.problem.constraints(state.x, state.theta)
        theta_violation.append(float(torch.clamp(g, min=0).max()))
        assert float(toy.problem.constraints(state.x, state.y).max()) <= 0
    assert max(theta_violation[:50]) > 1e-2
    # It was 1.9e-4 after 1000 iterations, 1.5e-5 after 3000 and 1.5e-6 after 6000.
    assert theta_violation[-1] < 2e-5


def test_constraints_without_feasible_projection_are_rejected():
    toy = coupled_toy()
    problem = BilevelProblem(
        upper=toy.problem.upper, lower=toy.problem.lower, constraints=toy.problem.constraints
    )
    with pytest.raises(InvalidArgumentError, match="project_feasible"):
        lvhba(problem, toy.x0, toy.y0, max_iter=2)


def test_history_has_one_entry_per_iteration_and_start():
    toy = coupled_toy()
    result = lvhba(toy.problem, toy.x0, toy.y0, max_iter=25)
    assert result.iterations == 25
    assert len(result.history.upper_objective) == 26
    assert len(result.history.lower_gap) == 26
    assert result.history.lower_gap[-1] < result.history.lower_gap[1]


def test_constraints_of_wrong_shape_are_rejected():
    problem = BilevelProblem(
        upper=lambda x, y: x.sum(),
        lower=lambda x, y: y.square().sum(),
        constraints=lambda x, y: (y - x).reshape(1, -1),
        project_feasible=lambda x, y: (x, y),
    )
    with pytest.raises(InvalidArgumentError, match=r"constraints g.*\(1, 2\).*\(2,\)"):
        lvhba(problem, torch.zeros(2), torch.zeros(2), max_iter=2)


def test_nan_upper_objective_names_iteration():
    def upper(x, y):
        return torch.where(x.sum() < -0.05, torch.tensor(math.nan, dtype=x.dtype), x.sum())

    problem = BilevelProblem(upper=upper, lower=lambda x, y: (y - x).square().sum())
    with pytest.raises(NonFiniteError, match=r"upper objective F is nan at iteration \d+"):
        lvhba(problem, torch.zeros(1), torch.zeros(1), max_iter=100)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"gamma1": -1.0}, "gamma1"),
        ({"p": 0.5}, "p must be"),
        ({"multiplier_bound": 0.0}, "multiplier_bound"),
    ],
)
def test_invalid_config_is_rejected(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        LVHBAConfig(**kwargs)


@pytest.mark.parametrize(
    ("x0", "y0", "match"),
    [
        (torch.zeros(2, 2), torch.zeros(3), "x0 must be a non-empty flat"),
        (torch.zeros(3, dtype=torch.float64), torch.zeros(3), "share dtype"),
        (torch.full((3,), math.nan), torch.zeros(3), "x0 contains NaN"),
    ],
)
def test_invalid_start_is_rejected(x0, y0, match):
    toy = coupled_toy()
    with pytest.raises(InvalidArgumentError, match=match):
        lvhba(toy.problem, x0, y0, max_iter=2)
