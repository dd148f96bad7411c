"""Newton-Raphson matching: Hessian strategies against each other and parameter recovery."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import SAMPLE_RATE, varied_level_signal
from hessframe_audio.compressor import Compressor, CompressorSettings
from hessframe_audio.io import Audio
from hessframe_audio.match import (
    HESSIANS,
    adam,
    build_objective,
    curvature_at,
    match,
    match_sweep,
    newton_raphson,
)

from hessframe.curvature import AutodiffHessian, FiniteDifferenceHessian, LowRankDampedHessian
from hessframe.errors import InvalidArgumentError

TRUE = CompressorSettings(-18.0, 4.0, 5.0, 100.0, 3.0)
DISTANT_START = CompressorSettings(-30.0, 2.0, 30.0, 400.0, 0.0)


def rendered_pair(settings=TRUE, seconds=0.5, seed=0):
    audio = varied_level_signal(seconds, seed=seed)
    target = Compressor(SAMPLE_RATE).process(audio.samples.double(), settings).float()
    return audio, Audio(target, SAMPLE_RATE, "rendered target")


@pytest.fixture(scope="module")
def objective_and_point():
    audio, target = rendered_pair(seconds=0.3)
    objective = build_objective(audio, target)
    raw = TRUE.to_raw() + torch.tensor([0.2, -0.3, 0.4, -0.2, 0.1], dtype=torch.float64)
    return objective, raw, objective.decisions(raw)


def test_exact_strategies_agree_with_torch_func_hessian(objective_and_point):
    objective, raw, attack = objective_and_point
    reference = torch.func.hessian(lambda point: objective.loss(point, attack))(raw)
    for strategy in ("autodiff", "reverse-over-reverse", "forward-over-reverse"):
        provider = curvature_at(objective, raw, attack, strategy)
        assert isinstance(provider, AutodiffHessian)
        assert torch.allclose(provider.to_dense(), reference, rtol=1e-8, atol=1e-10), strategy


def test_finite_difference_strategy_approximates_exact_hessian(objective_and_point):
    objective, raw, attack = objective_and_point
    reference = torch.func.hessian(lambda point: objective.loss(point, attack))(raw)
    provider = curvature_at(objective, raw, attack, "finite-difference")
    assert isinstance(provider, FiniteDifferenceHessian)
    assert torch.allclose(provider.to_dense(), reference, rtol=1e-4, atol=1e-6)


def test_gauss_newton_strategy_is_twice_jacobian_product(objective_and_point):
    objective, raw, attack = objective_and_point
    # Central differences of the residual, independent of the forward mode the provider uses.
    step = 1e-6
    columns = []
    for index in range(5):
        shift = torch.zeros(5, dtype=torch.float64)
        shift[index] = step
        plus, minus = (
            objective.residual(raw + shift, attack),
            objective.residual(raw - shift, attack),
        )
        columns.append((plus - minus).detach() / (2 * step))
    jacobian = torch.stack(columns, dim=1)
    provider = curvature_at(objective, raw, attack, "gauss-newton")
    assert isinstance(provider, LowRankDampedHessian)
    assert torch.allclose(provider.to_dense(), 2 * jacobian.T @ jacobian, rtol=1e-6, atol=1e-9)


def test_gradient_matches_finite_differences(objective_and_point):
    objective, raw, attack = objective_and_point
    point = raw.clone().requires_grad_(True)
    gradient = torch.autograd.grad(objective.loss(point, attack), point)[0]
    step = 1e-6
    for index in range(5):
        shift = torch.zeros(5, dtype=torch.float64)
        shift[index] = step
        difference = (objective.loss(raw + shift, attack) - objective.loss(raw - shift, attack)) / (
            2 * step
        )
        assert float(gradient[index]) == pytest.approx(float(difference), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("hessian", ["gauss-newton", "reverse-over-reverse"])
def test_newton_recovers_parameters_from_distant_start(hessian):
    audio, target = rendered_pair()
    result = match(audio, target, hessian=hessian, start=DISTANT_START)
    assert result.converged
    assert result.esr < 1e-8
    for name, value in TRUE.as_dict().items():
        assert getattr(result.settings, name) == pytest.approx(value, rel=1e-3, abs=1e-3), name


def test_newton_loss_decreases_every_iteration():
    audio, target = rendered_pair(seconds=0.3)
    result = match(audio, target, hessian="gauss-newton", start=DISTANT_START)
    losses = [record.loss for record in result.history]
    assert all(later < earlier for earlier, later in itertools.pairwise(losses))


def test_newton_needs_fewer_iterations_than_adam():
    audio, target = rendered_pair(seconds=0.3)
    newton = match(audio, target, hessian="gauss-newton", start=DISTANT_START)
    first_order = match(
        audio, target, optimizer="adam", start=DISTANT_START, max_iterations=60, learning_rate=0.1
    )
    assert newton.iterations < 20
    assert newton.esr < first_order.esr


def test_adam_returns_best_point_seen():
    audio, target = rendered_pair(seconds=0.2)
    objective = build_objective(audio, target)
    result = adam(objective, DISTANT_START.to_raw(), learning_rate=0.5, max_iterations=15)
    assert result.loss <= min(record.loss for record in result.history) + 1e-15
    assert result.loss == pytest.approx(float(objective.loss(result.raw)), rel=1e-12)


def test_sweep_warm_starts_each_fit_from_the_previous():
    audio = varied_level_signal(0.3)
    sweep = [CompressorSettings(threshold, 4.0, 5.0, 100.0, 3.0) for threshold in (-18.0, -20.0)]
    targets = [
        Audio(
            Compressor(SAMPLE_RATE).process(audio.samples.double(), settings).float(), SAMPLE_RATE
        )
        for settings in sweep
    ]
    results = match_sweep(audio, targets, start=DISTANT_START, hessian="gauss-newton")
    assert results[1].initial_esr < results[0].initial_esr
    assert results[1].settings.threshold_db == pytest.approx(-20.0, abs=1e-2)


def test_newton_rejects_unknown_hessian(objective_and_point):
    objective, raw, _ = objective_and_point
    with pytest.raises(InvalidArgumentError, match="hessian must be one of"):
        newton_raphson(objective, raw, hessian="bfgs")


def test_newton_rejects_bad_start(objective_and_point):
    objective, _, _ = objective_and_point
    with pytest.raises(InvalidArgumentError, match="start must be a raw parameter tensor"):
        newton_raphson(objective, torch.zeros(3, dtype=torch.float64))


def test_match_rejects_unknown_optimizer():
    audio, target = rendered_pair(seconds=0.1)
    with pytest.raises(InvalidArgumentError, match="optimizer must be one of"):
        match(audio, target, optimizer="sgd")


@pytest.mark.parametrize(
    ("make_target", "message"),
    [
        (lambda target: target.samples, "target must be an Audio"),
        (lambda target: Audio(target.samples * float("nan"), SAMPLE_RATE), "NaN or infinite"),
        (lambda target: Audio(target.samples * 0, SAMPLE_RATE), "target: .* is silent"),
        (lambda target: Audio(target.samples[:, :100], SAMPLE_RATE), "target has shape"),
        (lambda target: Audio(target.samples.repeat(2, 1), SAMPLE_RATE), "target has shape"),
        (lambda target: Audio(target.samples[0], SAMPLE_RATE), r"shape \(channels, time\)"),
        (lambda target: Audio((target.samples * 100).short(), SAMPLE_RATE), "floating point"),
    ],
)
def test_match_rejects_bad_target_naming_it(make_target, message):
    audio, target = rendered_pair(seconds=0.1)
    with pytest.raises(InvalidArgumentError, match=message):
        match(audio, make_target(target), max_iterations=1)


def test_match_rejects_start_that_is_not_settings():
    audio, target = rendered_pair(seconds=0.1)
    with pytest.raises(InvalidArgumentError, match="start must be CompressorSettings"):
        match(audio, target, start=(-20.0, 3.0, 10.0, 150.0, 0.0), max_iterations=1)


def test_every_strategy_is_listed():
    assert set(HESSIANS) == {
        "autodiff",
        "reverse-over-reverse",
        "forward-over-reverse",
        "gauss-newton",
        "finite-difference",
    }


def test_spectral_loss_strategies_agree():
    audio, target = rendered_pair(seconds=0.1)
    objective = build_objective(audio, target, loss="spectral")
    raw = TRUE.to_raw() + torch.tensor([0.2, -0.3, 0.4, -0.2, 0.1], dtype=torch.float64)
    attack = objective.decisions(raw)
    reverse = curvature_at(objective, raw, attack, "reverse-over-reverse").to_dense()
    forward = curvature_at(objective, raw, attack, "forward-over-reverse").to_dense()
    differences = curvature_at(objective, raw, attack, "finite-difference").to_dense()
    assert torch.allclose(forward, reverse, rtol=1e-8, atol=1e-10)
    assert torch.allclose(differences, reverse, rtol=1e-4, atol=1e-6)


def test_spectral_loss_is_zero_at_truth():
    audio, target = rendered_pair(seconds=0.1)
    objective = build_objective(audio, target, loss="spectral")
    assert float(objective.loss(TRUE.to_raw())) < 1e-10
