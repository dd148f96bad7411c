"""Shared parts of the Levenberg-Marquardt schedulers: configuration checks, state, and the step.

A scheduler class combines :class:`LevenbergMarquardtMixin` with a diffusers
scheduler and supplies the noise levels s = σ/α of a call and of its target.
The mixin wraps the base class's ``set_timesteps`` and ``step``:

- With a corrector, ``timesteps`` interleaves predictor and corrector calls:
  t₀, t₁ (corrector), t₁, t₂ (corrector), t₂, …, so a pipeline that loops
  over ``scheduler.timesteps`` and calls the model once per entry runs the
  predictor-corrector sampler. The number of network evaluations is 2N - 1 for
  N predictor steps.
- A predictor call runs the base class's step unchanged, then adds the LM
  increment correction (a no-op when ``lm_mix`` is zero).
- A corrector call runs one Langevin step (preconditioned for ``"lml"``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError, NonFiniteError
from hessframe_diffusion.lm import (
    Evaluation,
    damped_secant_hessian,
    langevin_corrector,
    lm_increment_correction,
    secant_curvature,
)

CORRECTORS = ("none", "langevin", "lml")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def check_lm_config(
    *, lm_lambda: Any, lm_mix: Any, lm_corrector: Any, lm_snr: Any, prediction_type: Any
) -> None:
    """Raise InvalidArgumentError unless the LM parameters and the prediction type are supported."""
    if isinstance(lm_lambda, bool) or not isinstance(lm_lambda, (int, float)):
        raise InvalidArgumentError(f"lm_lambda must be a number > 0, got {lm_lambda!r}")
    if not (math.isfinite(lm_lambda) and lm_lambda > 0):
        raise InvalidArgumentError(
            f"lm_lambda (the Levenberg-Marquardt damping) must be finite and > 0, got {lm_lambda}"
        )
    if isinstance(lm_mix, bool) or not isinstance(lm_mix, (int, float)) or not 0 <= lm_mix <= 1:
        raise InvalidArgumentError(f"lm_mix must be a number in [0, 1], got {lm_mix!r}")
    if lm_corrector not in CORRECTORS:
        raise InvalidArgumentError(
            f"lm_corrector must be one of {', '.join(CORRECTORS)}, got {lm_corrector!r}"
        )
    if isinstance(lm_snr, bool) or not isinstance(lm_snr, (int, float)):
        raise InvalidArgumentError(f"lm_snr must be a number > 0, got {lm_snr!r}")
    if not (math.isfinite(lm_snr) and lm_snr > 0):
        raise InvalidArgumentError(f"lm_snr must be finite and > 0, got {lm_snr}")
    if prediction_type not in PREDICTION_TYPES:
        raise InvalidArgumentError(
            f"prediction_type {prediction_type!r} is not supported by the Levenberg-Marquardt "
            f"schedulers; supported: {', '.join(PREDICTION_TYPES)}"
        )


def check_inference_steps(num_inference_steps: Any, num_train_timesteps: int) -> None:
    """Raise InvalidArgumentError unless 1 <= ``num_inference_steps`` <= ``num_train_timesteps``.

    diffusers' DDIM divides by zero at 0 steps, and its DPM-Solver accepts 0 or
    more steps than training time steps and then returns NaN.
    """
    if isinstance(num_inference_steps, bool) or not isinstance(
        num_inference_steps, numbers.Integral
    ):
        raise InvalidArgumentError(
            f"num_inference_steps must be an integer, got {num_inference_steps!r}"
        )
    if not 1 <= num_inference_steps <= num_train_timesteps:
        raise InvalidArgumentError(
            f"num_inference_steps must be in [1, {num_train_timesteps}] (num_train_timesteps), "
            f"got {num_inference_steps}"
        )


class LevenbergMarquardtMixin:
    """The LM state and step logic; see the module docstring."""

    def _lm_level(self, timestep: int) -> float:
        """Return s = σ/α of the level the sample is at when the model is called at ``timestep``."""
        raise NotImplementedError

    def _lm_next_level(self, timestep: int) -> float:
        """Return s of the level a predictor step from ``timestep`` lands on."""
        raise NotImplementedError

    # ------------------------------------------------------------------
    # State

    def _lm_reset(self) -> None:
        """Forget the trajectory and lay out the calls for the current ``timesteps``."""
        self._lm_previous: Evaluation | None = None
        self._lm_call = 0
        predictor = self.timesteps
        self._lm_predictor_timesteps = predictor
        if self.config.lm_corrector == "none":
            self._lm_roles = ["predictor"] * len(predictor)
            return
        order, roles = [], []
        for index, timestep in enumerate(predictor):
            if index > 0:
                order.append(timestep)
                roles.append("corrector")
            order.append(timestep)
            roles.append("predictor")
        self._lm_roles = roles
        self.timesteps = torch.stack(order) if len(order) else predictor

    # ------------------------------------------------------------------
    # The step

    def _lm_evaluation(
        self, model_output: torch.Tensor, sample: torch.Tensor, s: float
    ) -> Evaluation:
        """Return y = x/α and ε̂ per sample (float32, flattened) from the model output."""
        alpha = 1 / math.sqrt(1 + s**2)
        sigma = s * alpha
        batch = sample.shape[0]
        x = sample.reshape(batch, -1).float()
        output = model_output.reshape(batch, -1).float()
        kind = self.config.prediction_type
        if kind == "epsilon":
            noise = output
        elif kind == "sample":
            noise = (x - alpha * output) / sigma if sigma > 0 else torch.zeros_like(x)
        else:
            noise = alpha * output + sigma * x
        return Evaluation(y=x / alpha, noise=noise, s=s)

    def _lm_step(
        self,
        base_step: Any,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run one call; return (prev_sample, denoised estimate or None)."""
        if self.num_inference_steps is None:
            raise ValueError(
                "Number of inference steps is 'None', you need to run 'set_timesteps' after "
                "creating the scheduler"
            )
        if self._lm_call >= len(self._lm_roles):
            raise ValueError(
                f"step was called {self._lm_call + 1} times but set_timesteps laid out "
                f"{len(self._lm_roles)} calls; call set_timesteps before each sampling run"
            )
        role = self._lm_roles[self._lm_call]
        self._lm_call += 1
        timestep = int(timestep)

        # The base class receives only the predictor timesteps, so its own
        # bookkeeping (step index, lower-order final steps) is untouched.
        interleaved = self.timesteps
        self.timesteps = self._lm_predictor_timesteps
        try:
            s = self._lm_level(timestep)
            current = self._lm_evaluation(model_output, sample, s)
            if role == "corrector":
                return self._lm_corrector_step(current, sample, generator), None
            s_next = self._lm_next_level(timestep)
            prev_sample, denoised = base_step()
        finally:
            self.timesteps = interleaved

        previous, self._lm_previous = self._lm_previous, current
        if self.config.lm_mix == 0 or previous is None or s <= 0:
            return prev_sample, denoised

        _check_finite(previous, current, timestep)
        alpha_next = 1 / math.sqrt(1 + s_next**2)
        increment = prev_sample.reshape(sample.shape[0], -1).float() / alpha_next - current.y
        directions, curvature = secant_curvature(previous, current)
        corrected = lm_increment_correction(
            increment,
            directions,
            curvature,
            ratio=s_next / s,
            damping=self.config.lm_lambda,
            mixing=self.config.lm_mix,
        )
        prev_sample = (alpha_next * (current.y + corrected)).reshape(sample.shape)
        return prev_sample.to(sample.dtype), denoised

    def _lm_corrector_step(
        self, current: Evaluation, sample: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        previous, self._lm_previous = self._lm_previous, current
        _check_finite(previous, current, None)
        hessian = None
        if self.config.lm_corrector == "lml" and previous is not None:
            directions, curvature = secant_curvature(previous, current)
            hessian = damped_secant_hessian(directions, curvature, self.config.lm_lambda)

        alpha = 1 / math.sqrt(1 + current.s**2)
        z = randn_tensor(
            sample.shape, generator=generator, device=sample.device, dtype=torch.float32
        )
        updated = langevin_corrector(
            current.y * alpha,
            current.noise,
            current.s * alpha,
            z.reshape(sample.shape[0], -1),
            snr=self.config.lm_snr,
            hessian=hessian,
            damping=self.config.lm_lambda,
        )
        return updated.reshape(sample.shape).to(sample.dtype)


def _check_finite(previous: Evaluation | None, current: Evaluation, timestep: int | None) -> None:
    """Raise NonFiniteError if the sample or the model output of an evaluation is not finite."""
    for evaluation in (previous, current):
        if evaluation is None:
            continue
        finite = torch.isfinite(evaluation.y).all() & torch.isfinite(evaluation.noise).all()
        if not bool(finite):
            where = "" if timestep is None else f" at timestep {timestep}"
            raise NonFiniteError(
                f"the sample or the model output contains NaN or infinite values{where}; the "
                "Levenberg-Marquardt step needs finite values (check the model and its dtype)"
            )
