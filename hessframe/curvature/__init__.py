"""The CurvatureProvider interface and the four built-in kinds."""

from hessframe.curvature.autodiff import AutodiffHessian
from hessframe.curvature.base import Capabilities, CurvatureProvider

__all__ = [
    "AutodiffHessian",
    "Capabilities",
    "CurvatureProvider",
]
