"""Algorithms that work on any CurvatureProvider.

Every routine here needs only ``size``, ``dtype``, ``device``, ``matvec(v)``
and ``matmat(V)``, so it runs on a provider of any kind, and on any object
with those attributes.

- :func:`lanczos`: extreme eigenpairs by (block, thick-restart) Lanczos with
  full reorthogonalisation; :func:`power_iteration` as a baseline.
- :func:`hutchinson_trace`, :func:`hutchpp_trace`, :func:`hutchinson_diagonal`:
  stochastic trace and diagonal estimates.
- :func:`spectral_density`: the eigenvalue density by stochastic Lanczos quadrature.
- :func:`conjugate_gradient`: (H + λI) x = b, with negative-curvature detection.
- :func:`to_linear_operator`: a SciPy LinearOperator view.
"""

from hessframe.linalg.cg import NegativeCurvatureError, conjugate_gradient
from hessframe.linalg.hutchinson import hutchinson_diagonal, hutchinson_trace
from hessframe.linalg.hutchpp import hutchpp_trace
from hessframe.linalg.lanczos import lanczos
from hessframe.linalg.power import power_iteration
from hessframe.linalg.results import EigenResult, SolveResult, SpectralDensity, TraceEstimate
from hessframe.linalg.scipy_view import ProviderLinearOperator, to_linear_operator
from hessframe.linalg.slq import spectral_density

__all__ = [
    "EigenResult",
    "NegativeCurvatureError",
    "ProviderLinearOperator",
    "SolveResult",
    "SpectralDensity",
    "TraceEstimate",
    "conjugate_gradient",
    "hutchinson_diagonal",
    "hutchinson_trace",
    "hutchpp_trace",
    "lanczos",
    "power_iteration",
    "spectral_density",
    "to_linear_operator",
]
