"""Entropic optimal transport for hessframe: the Sinkhorn-Newton-Sparse solver,
its sparsified dual Hessian as a curvature provider, and transport costs.

    from hessframe_transport import sinkhorn_newton_sparse

    plan = sinkhorn_newton_sparse(a, b, M, reg)   # the call of ot.sinkhorn(a, b, M, reg)
"""

from hessframe_transport.cost import (
    cost_matrix,
    dual_objective,
    entropic_objective,
    image_to_measure,
    transport_cost,
    wasserstein_distance,
)
from hessframe_transport.provider import SparseDualHessian
from hessframe_transport.solver import ConvergenceWarning, sinkhorn_newton_sparse

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "SparseDualHessian",
    "__version__",
    "cost_matrix",
    "dual_objective",
    "entropic_objective",
    "image_to_measure",
    "sinkhorn_newton_sparse",
    "transport_cost",
    "wasserstein_distance",
]
