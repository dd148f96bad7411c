"""Stochastic estimates of the trace and the diagonal of H from products with random vectors.

Hutchinson (1989, "A stochastic estimator of the trace of the influence matrix
for Laplacian smoothing splines", Commun. Stat. Simul. Comput. 18) observed
that E[zᵀHz] = tr(H) for any random z with E[zzᵀ] = I. The average of m such
quadratic forms has variance 2‖H‖_F²/m for Gaussian z and
2(‖H‖_F² − Σᵢ Hᵢᵢ²)/m for Rademacher z (entries ±1), so the error falls as
1/sqrt(m).

Bekas, Kokiopoulou & Saad (2007, "An estimator for the diagonal of a
matrix", Appl. Numer. Math. 57) apply the same idea entrywise:
diag(H) ≈ (Σ_j z_j ⊙ H z_j) ⊘ (Σ_j z_j ⊙ z_j), which for Rademacher z is the
mean of z ⊙ Hz.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from hessframe.errors import InvalidArgumentError
from hessframe.linalg._common import (
    apply,
    check_generator,
    check_operator,
    check_positive_int,
    random_block,
)
from hessframe.linalg.results import TraceEstimate

logger = logging.getLogger(__name__)

DISTRIBUTIONS = ("rademacher", "gaussian")

#: Probes multiplied in one ``matmat`` call when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = 16


def hutchinson_trace(
    op: Any,
    num_samples: int,
    *,
    distribution: str = "rademacher",
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> TraceEstimate:
    """Estimate tr(H) as the mean of zᵀHz over random probes z.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device``, ``matvec(v)`` and ``matmat(V)``.
        num_samples: Number of probes m ≥ 1; one product each.
        distribution: ``"rademacher"`` (entries ±1, lower variance) or
            ``"gaussian"`` (standard normal entries).
        generator: Random generator for the probes.
        batch_size: Probes multiplied at once through ``matmat``; memory
            grows with n times this. Default: min(num_samples, 16).

    Returns:
        TraceEstimate with the mean, its standard error s/sqrt(m) from the
        sample standard deviation s of the quadratic forms (NaN when m = 1),
        and m products.

    Raises:
        InvalidArgumentError: ``num_samples`` or ``batch_size`` is below 1, or
            ``distribution`` is unknown.
    """
    check_operator(op, "hutchinson_trace")
    num_samples = check_positive_int(num_samples, "num_samples", "hutchinson_trace")
    _check_distribution(distribution, "hutchinson_trace")
    check_generator(generator, "hutchinson_trace")
    batch_size = _batch_size(batch_size, num_samples, "hutchinson_trace")

    quadratic_forms = []
    for count in _batches(num_samples, batch_size):
        probes = random_block(op, count, distribution, generator)
        products = apply(op, probes)
        quadratic_forms.append((probes * products).sum(dim=0).double().cpu())
    samples = torch.cat(quadratic_forms)

    value = float(samples.mean())
    standard_error = (
        float(samples.std(correction=1)) / math.sqrt(num_samples) if num_samples > 1 else math.nan
    )
    logger.info(
        "hutchinson_trace: %d probes, estimate %.6g ± %.3g", num_samples, value, standard_error
    )
    return TraceEstimate(value=value, standard_error=standard_error, num_matvecs=num_samples)


def hutchinson_diagonal(
    op: Any,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Estimate diag(H) as the mean of z ⊙ Hz over Rademacher probes z.

    Each entry is an unbiased estimate whose variance is
    (Σ_{j≠i} Hᵢⱼ²)/m, so it is exact for a diagonal H.

    Args:
        op: The operator: a CurvatureProvider, or any object with ``size``,
            ``dtype``, ``device``, ``matvec(v)`` and ``matmat(V)``.
        num_samples: Number of probes m ≥ 1; one product each.
        generator: Random generator for the probes.
        batch_size: Probes multiplied at once through ``matmat``. Default:
            min(num_samples, 16).

    Returns:
        A flat tensor of length n with the operator's dtype and device.

    Raises:
        InvalidArgumentError: ``num_samples`` or ``batch_size`` is below 1.
    """
    check_operator(op, "hutchinson_diagonal")
    num_samples = check_positive_int(num_samples, "num_samples", "hutchinson_diagonal")
    check_generator(generator, "hutchinson_diagonal")
    batch_size = _batch_size(batch_size, num_samples, "hutchinson_diagonal")

    total = torch.zeros(op.size, dtype=op.dtype, device=op.device)
    for count in _batches(num_samples, batch_size):
        probes = random_block(op, count, "rademacher", generator)
        total += (probes * apply(op, probes)).sum(dim=1)
    logger.info("hutchinson_diagonal: %d probes", num_samples)
    return total / num_samples


def _check_distribution(distribution: Any, caller: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise InvalidArgumentError(
            f"{caller}: distribution must be one of {', '.join(map(repr, DISTRIBUTIONS))}, "
            f"got {distribution!r}"
        )


def _batch_size(batch_size: int | None, num_samples: int, caller: str) -> int:
    if batch_size is None:
        return min(num_samples, DEFAULT_BATCH_SIZE)
    return check_positive_int(batch_size, "batch_size", caller)


def _batches(total: int, batch_size: int) -> list[int]:
    """Split ``total`` into counts of at most ``batch_size``."""
    return [min(batch_size, total - start) for start in range(0, total, batch_size)]
