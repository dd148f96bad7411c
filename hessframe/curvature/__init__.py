"""The CurvatureProvider interface and the four built-in kinds."""

from hessframe.curvature.autodiff import AutodiffHessian
from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.curvature.finite_difference import FiniteDifferenceHessian
from hessframe.curvature.lowrank import LowRankDampedHessian
from hessframe.curvature.predicted import PredictedHessian

__all__ = [
    "AutodiffHessian",
    "Capabilities",
    "CurvatureProvider",
    "FiniteDifferenceHessian",
    "LowRankDampedHessian",
    "PredictedHessian",
]
