"""``LMDDIMScheduler``: DDIM with the Levenberg-Marquardt increment correction and correctors."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from diffusers import DDIMScheduler
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput

from hessframe_diffusion._lm_scheduler import (
    LevenbergMarquardtMixin,
    check_inference_steps,
    check_lm_config,
)


class LMDDIMScheduler(LevenbergMarquardtMixin, DDIMScheduler):
    """A ``DDIMScheduler`` whose steps are corrected with a damped low-rank Hessian.

    Takes every argument of ``DDIMScheduler`` and these, all saved in the config:

    Args:
        lm_lambda: λ > 0, the Levenberg-Marquardt damping of the secant
            Hessian; large values turn both corrections off gradually.
        lm_mix: w in [0, 1], the mixing weight of the LM increment correction;
            0 gives DDIM exactly.
        lm_corrector: ``"none"``, ``"langevin"`` (first-order Langevin
            corrector) or ``"lml"`` (Langevin preconditioned by the damped
            secant Hessian); a corrector costs one network evaluation per level.
        lm_snr: r of the corrector's signal-to-noise step-size rule.

    Raises:
        InvalidArgumentError: An LM parameter is out of range, or the
            prediction type is not ``epsilon``, ``sample`` or ``v_prediction``.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = True,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading",
        rescale_betas_zero_snr: bool = False,
        lm_lambda: float = 1.0,
        lm_mix: float = 1.0,
        lm_corrector: Literal["none", "langevin", "lml"] = "none",
        lm_snr: float = 0.1,
    ):
        check_lm_config(
            lm_lambda=lm_lambda,
            lm_mix=lm_mix,
            lm_corrector=lm_corrector,
            lm_snr=lm_snr,
            prediction_type=prediction_type,
        )
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            clip_sample=clip_sample,
            set_alpha_to_one=set_alpha_to_one,
            steps_offset=steps_offset,
            prediction_type=prediction_type,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            clip_sample_range=clip_sample_range,
            sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        self._lm_roles: list[str] = []

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None):
        """Set the predictor steps as DDIM does, lay out corrector calls, and reset the LM state.

        Raises:
            InvalidArgumentError: ``num_inference_steps`` is not an integer in
                [1, num_train_timesteps].
        """
        check_inference_steps(num_inference_steps, self.config.num_train_timesteps)
        super().set_timesteps(num_inference_steps, device)
        self._lm_reset()

    def _lm_level(self, timestep: int) -> float:
        return _noise_to_signal(float(self.alphas_cumprod[timestep]))

    def _lm_next_level(self, timestep: int) -> float:
        previous = timestep - self.config.num_train_timesteps // self.num_inference_steps
        alpha_bar = (
            float(self.alphas_cumprod[previous])
            if previous >= 0
            else float(self.final_alpha_cumprod)
        )
        return _noise_to_signal(alpha_bar)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> DDIMSchedulerOutput | tuple:
        """Run the DDIM step (plus the LM correction) or a corrector step, by the call's role.

        Arguments and return value are those of ``DDIMScheduler.step``. On a
        corrector call ``pred_original_sample`` is None.
        """

        def base_step():
            output = DDIMScheduler.step(
                self,
                model_output,
                timestep,
                sample,
                eta=eta,
                use_clipped_model_output=use_clipped_model_output,
                generator=generator,
                variance_noise=variance_noise,
                return_dict=True,
            )
            return output.prev_sample, output.pred_original_sample

        prev_sample, denoised = self._lm_step(base_step, model_output, timestep, sample, generator)
        if not return_dict:
            return (prev_sample, denoised)
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=denoised)


def _noise_to_signal(alpha_bar: float) -> float:
    """Return s = σ/α = √((1 - ᾱ)/ᾱ)."""
    return math.sqrt(max(1 - alpha_bar, 0.0) / alpha_bar)
