"""Levenberg-Marquardt-Langevin diffusion sampling for hessframe and diffusers.

from diffusers import DDPMPipeline
from hessframe_diffusion import LMDDIMScheduler

pipeline = DDPMPipeline.from_pretrained(path)
pipeline.scheduler = LMDDIMScheduler.from_config(pipeline.scheduler.config, lm_lambda=1.0)
"""

from hessframe_diffusion.scheduling_lm_ddim import LMDDIMScheduler
from hessframe_diffusion.scheduling_lm_dpmsolver_multistep import LMDPMSolverMultistepScheduler

__version__ = "0.1.0"

__all__ = ["LMDDIMScheduler", "LMDPMSolverMultistepScheduler", "__version__"]
