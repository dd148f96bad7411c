"""The CurvatureProvider interface and the four built-in kinds."""

from hessframe.curvature.autodiff import AutodiffHessian
from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.curvature.lowrank import LowRankDampedHessian

__all__ = [
    "AutodiffHessian",
    "Capabilities",
    "CurvatureProvider",
    "LowRankDampedHessian",
]
