"""The LM schedulers: reduction to the base samplers, config round trip, state, batches, errors."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from hessframe_diffusion import LMDDIMScheduler, LMDPMSolverMultistepScheduler
from hessframe_diffusion.mixture import GaussianMixture, MixtureNoisePredictor, default_mixture

from hessframe.errors import InvalidArgumentError

PAIRS = [
    (DDIMScheduler, LMDDIMScheduler, {"clip_sample": False}),
    (DPMSolverMultistepScheduler, LMDPMSolverMultistepScheduler, {}),
]


def _run(scheduler, predictor, x_start, steps, seed=0):
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    x = x_start.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(predictor(x, t), t, x, generator=generator).prev_sample
    return x


@pytest.fixture(scope="module")
def predictor():
    return MixtureNoisePredictor(default_mixture(dim=8), DDIMScheduler().alphas_cumprod)


@pytest.fixture(scope="module")
def x_start():
    return torch.randn(6, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("base", "lm", "options"), PAIRS)
@pytest.mark.parametrize("steps", [1, 4, 7])
def test_zero_mixing_is_base_sampler_exactly(base, lm, options, steps, predictor, x_start):
    expected = _run(base(timestep_spacing="trailing", **options), predictor, x_start, steps)
    result = _run(lm(timestep_spacing="trailing", lm_mix=0.0, **options), predictor, x_start, steps)
    assert torch.equal(result, expected)


@pytest.mark.parametrize(("base", "lm", "options"), PAIRS)
def test_lm_correction_changes_trajectory(base, lm, options, predictor, x_start):
    expected = _run(base(timestep_spacing="trailing", **options), predictor, x_start, 5)
    result = _run(lm(timestep_spacing="trailing", lm_mix=1.0, **options), predictor, x_start, 5)
    assert not torch.allclose(result, expected)


@pytest.mark.parametrize(("base", "lm", "options"), PAIRS)
def test_config_round_trip(base, lm, options, tmp_path):
    scheduler = lm(lm_lambda=0.25, lm_mix=0.5, lm_corrector="lml", lm_snr=0.05, **options)
    scheduler.save_pretrained(tmp_path)
    loaded = lm.from_pretrained(tmp_path)
    for key in ("lm_lambda", "lm_mix", "lm_corrector", "lm_snr"):
        assert loaded.config[key] == scheduler.config[key]
    overridden = lm.from_config(loaded.config, lm_lambda=3.0)
    assert overridden.config.lm_lambda == 3.0
    assert overridden.config.lm_corrector == "lml"
    from_base = lm.from_config(base().config, lm_lambda=2.0)
    assert from_base.config.lm_lambda == 2.0


@pytest.mark.parametrize(("base", "lm", "options"), PAIRS)
def test_set_timesteps_resets_state(base, lm, options, predictor, x_start):
    scheduler = lm(timestep_spacing="trailing", lm_corrector="lml", **options)
    first = _run(scheduler, predictor, x_start, 4, seed=3)
    second = _run(scheduler, predictor, x_start, 4, seed=3)
    assert torch.equal(first, second)


@pytest.mark.parametrize(("base", "lm", "options"), PAIRS)
def test_samples_do_not_depend_on_batch(base, lm, options, predictor):
    x_start = torch.randn(21, 8, generator=torch.Generator().manual_seed(5))
    scheduler = lm(timestep_spacing="trailing", **options)
    whole = _run(scheduler, predictor, x_start, 5)
    single = _run(scheduler, predictor, x_start[7:8], 5)
    assert torch.allclose(whole[7:8], single, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_corrector_interleaves_calls(steps):
    scheduler = LMDDIMScheduler(lm_corrector="langevin")
    scheduler.set_timesteps(steps)
    assert len(scheduler.timesteps) == 2 * steps - 1
    plain = DDIMScheduler()
    plain.set_timesteps(steps)
    assert scheduler.timesteps[::2].tolist() == plain.timesteps.tolist()


def test_step_beyond_layout_raises(predictor, x_start):
    scheduler = LMDDIMScheduler(clip_sample=False)
    scheduler.set_timesteps(2)
    x = x_start
    for t in scheduler.timesteps:
        x = scheduler.step(predictor(x, t), t, x).prev_sample
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(predictor(x, 0), 0, x)


@pytest.mark.parametrize("lm", [LMDDIMScheduler, LMDPMSolverMultistepScheduler])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lm_lambda": 0.0}, "lm_lambda"),
        ({"lm_lambda": -1.0}, "lm_lambda"),
        ({"lm_mix": 1.5}, "lm_mix"),
        ({"lm_corrector": "newton"}, "lm_corrector must be one of none, langevin, lml"),
        ({"lm_snr": 0.0}, "lm_snr"),
    ],
)
def test_bad_lm_parameters_raise(lm, options, message):
    with pytest.raises(InvalidArgumentError, match=message):
        lm(**options)


def test_unsupported_prediction_type_raises():
    with pytest.raises(InvalidArgumentError, match="prediction_type 'flow_prediction'"):
        LMDPMSolverMultistepScheduler(prediction_type="flow_prediction")


def test_sde_algorithm_raises():
    with pytest.raises(InvalidArgumentError, match="algorithm_type 'sde-dpmsolver\\+\\+'"):
        LMDPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")


def _one_gaussian():
    mean = torch.tensor([0.4, -0.3, 0.1], dtype=torch.float64)
    root = torch.tensor([[0.5, 0.0, 0.0], [0.2, 0.3, 0.0], [-0.1, 0.1, 0.2]], dtype=torch.float64)
    covariance = root @ root.T
    return GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None], covariance[None])


@pytest.mark.parametrize("kind", ["lml", "none"])
def test_one_gaussian_samples_match_mean_and_covariance(kind):
    single = _one_gaussian()
    scheduler = LMDDIMScheduler(clip_sample=False, timestep_spacing="trailing", lm_corrector=kind)
    predictor = MixtureNoisePredictor(single, scheduler.alphas_cumprod)
    x_start = torch.randn(1500, 3, generator=torch.Generator().manual_seed(0))
    samples = _run(scheduler, predictor, x_start, 40).double()
    # With 1500 samples the standard errors are about 0.013 for the mean and at
    # most 0.009 for a covariance entry.
    assert torch.allclose(samples.mean(0), single.means[0], atol=0.04)
    assert torch.allclose(torch.cov(samples.T), single.covariances[0], atol=0.04)


def test_lm_correction_restores_gaussian_variance_at_few_steps():
    """DDIM shrinks the variance at 10 steps; the LM correction recovers most of it."""
    single = _one_gaussian()
    x_start = torch.randn(1500, 3, generator=torch.Generator().manual_seed(0))
    exact = torch.diagonal(single.covariances[0])
    errors = {}
    for name, scheduler in (
        ("ddim", DDIMScheduler(clip_sample=False, timestep_spacing="trailing")),
        ("lm", LMDDIMScheduler(clip_sample=False, timestep_spacing="trailing")),
    ):
        predictor = MixtureNoisePredictor(single, scheduler.alphas_cumprod)
        samples = _run(scheduler, predictor, x_start, 10).double()
        errors[name] = float((torch.diagonal(torch.cov(samples.T)) - exact).abs().sum())
    assert errors["lm"] < 0.5 * errors["ddim"]


@pytest.mark.parametrize("lm", [LMDDIMScheduler, LMDPMSolverMultistepScheduler])
@pytest.mark.parametrize("steps", [0, -2, 1001, 2.5])
def test_set_timesteps_rejects_steps_outside_training_range(lm, steps):
    # diffusers' DDIM divides by zero at 0 steps; its DPM-Solver accepts 0 or
    # 1001 steps and then returns NaN.
    with pytest.raises(InvalidArgumentError, match=r"num_inference_steps must be"):
        lm().set_timesteps(steps)


@pytest.mark.parametrize("lm", [LMDDIMScheduler, LMDPMSolverMultistepScheduler])
def test_set_timesteps_accepts_every_training_step(lm):
    scheduler = lm(timestep_spacing="trailing")
    scheduler.set_timesteps(1000)
    assert len(set(scheduler.timesteps.tolist())) == 1000
