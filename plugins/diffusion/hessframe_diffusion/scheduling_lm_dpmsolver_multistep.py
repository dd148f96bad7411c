"""``LMDPMSolverMultistepScheduler``: DPM-Solver++ with the Levenberg-Marquardt corrections."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerOutput

from hessframe.errors import InvalidArgumentError
from hessframe_diffusion._lm_scheduler import (
    LevenbergMarquardtMixin,
    check_inference_steps,
    check_lm_config,
)

ALGORITHM_TYPES = ("dpmsolver++", "dpmsolver")


class LMDPMSolverMultistepScheduler(LevenbergMarquardtMixin, DPMSolverMultistepScheduler):
    """A ``DPMSolverMultistepScheduler`` whose steps are corrected with a damped low-rank Hessian.

    Takes every argument of ``DPMSolverMultistepScheduler`` and ``lm_lambda``,
    ``lm_mix``, ``lm_corrector`` and ``lm_snr`` (see
    :class:`~hessframe_diffusion.LMDDIMScheduler`), all saved in the config.
    The deterministic solvers ``dpmsolver++`` and ``dpmsolver`` are supported;
    the SDE variants and flow-matching sigmas are rejected, because the
    correction assumes the variance-preserving probability-flow ODE.

    Raises:
        InvalidArgumentError: An LM parameter is out of range, the prediction
            type is not ``epsilon``, ``sample`` or ``v_prediction``, the
            algorithm type is an SDE variant, or flow sigmas are requested.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: np.ndarray | list[float] | None = None,
        solver_order: int = 2,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        algorithm_type: Literal["dpmsolver++", "dpmsolver"] = "dpmsolver++",
        solver_type: Literal["midpoint", "heun"] = "midpoint",
        lower_order_final: bool = True,
        euler_at_final: bool = False,
        use_karras_sigmas: bool = False,
        use_exponential_sigmas: bool = False,
        use_beta_sigmas: bool = False,
        use_lu_lambdas: bool = False,
        use_flow_sigmas: bool = False,
        flow_shift: float = 1.0,
        final_sigmas_type: Literal["zero", "sigma_min"] = "zero",
        lambda_min_clipped: float = -float("inf"),
        variance_type: Literal["learned", "learned_range"] | None = None,
        timestep_spacing: Literal["linspace", "leading", "trailing"] = "linspace",
        steps_offset: int = 0,
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
        if algorithm_type not in ALGORITHM_TYPES:
            raise InvalidArgumentError(
                f"algorithm_type {algorithm_type!r} is not supported by the Levenberg-Marquardt "
                f"scheduler; supported: {', '.join(ALGORITHM_TYPES)}"
            )
        if use_flow_sigmas:
            raise InvalidArgumentError(
                "use_flow_sigmas=True is not supported: the Levenberg-Marquardt corrections "
                "assume a variance-preserving noise schedule"
            )
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            solver_order=solver_order,
            prediction_type=prediction_type,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            sample_max_value=sample_max_value,
            algorithm_type=algorithm_type,
            solver_type=solver_type,
            lower_order_final=lower_order_final,
            euler_at_final=euler_at_final,
            use_karras_sigmas=use_karras_sigmas,
            use_exponential_sigmas=use_exponential_sigmas,
            use_beta_sigmas=use_beta_sigmas,
            use_lu_lambdas=use_lu_lambdas,
            use_flow_sigmas=use_flow_sigmas,
            flow_shift=flow_shift,
            final_sigmas_type=final_sigmas_type,
            lambda_min_clipped=lambda_min_clipped,
            variance_type=variance_type,
            timestep_spacing=timestep_spacing,
            steps_offset=steps_offset,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        self._lm_roles: list[str] = []

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        mu: float | None = None,
        timesteps: list[int] | None = None,
    ):
        """Set the predictor steps as DPM-Solver does, lay out corrector calls, reset LM state.

        Raises:
            InvalidArgumentError: ``timesteps`` is not given and
                ``num_inference_steps`` is not an integer in [1, num_train_timesteps].
        """
        if timesteps is None:
            check_inference_steps(num_inference_steps, self.config.num_train_timesteps)
        super().set_timesteps(num_inference_steps, device, mu=mu, timesteps=timesteps)
        self._lm_reset()

    def _lm_level(self, timestep: int) -> float:
        if self.step_index is None:
            self._init_step_index(timestep)
        return float(self.sigmas[self.step_index])

    def _lm_next_level(self, timestep: int) -> float:
        return float(self.sigmas[self.step_index + 1])

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> SchedulerOutput | tuple:
        """Run the DPM-Solver step (plus the LM correction) or a corrector step, by the call's role.

        Arguments and return value are those of ``DPMSolverMultistepScheduler.step``.
        """

        def base_step():
            output = DPMSolverMultistepScheduler.step(
                self,
                model_output,
                timestep,
                sample,
                generator=generator,
                variance_noise=variance_noise,
                return_dict=True,
            )
            return output.prev_sample, None

        prev_sample, _ = self._lm_step(base_step, model_output, timestep, sample, generator)
        if not return_dict:
            return (prev_sample,)
        return SchedulerOutput(prev_sample=prev_sample)
