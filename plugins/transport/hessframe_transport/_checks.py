"""Checks of the marginals, cost matrix and options that the solvers accept."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from hessframe.errors import InvalidArgumentError
from hessframe_transport._backend import to_float64

#: Marginal totals that differ by at most this share of the larger one are
#: taken as equal, and b is then rescaled to the total of a. Float32
#: histograms that sum to one differ by about 1e-7.
TOTAL_MASS_RTOL = 1e-5


@dataclass(frozen=True)
class Problem:
    """Checked float64 marginals and cost matrix.

    Attributes:
        a: (n,) non-negative source marginal.
        b: (m,) non-negative target marginal with the same total as ``a``.
        M: (n, m) finite non-negative cost matrix.
        reg: Entropic weight, positive.
    """

    a: np.ndarray
    b: np.ndarray
    M: np.ndarray
    reg: float


def check_cost_matrix(M: Any, name: str = "M") -> np.ndarray:
    """Return M as a float64 (n, m) array with n, m ≥ 1 and finite non-negative entries."""
    cost = to_float64(M, name)
    if cost.ndim != 2 or cost.shape[0] == 0 or cost.shape[1] == 0:
        raise InvalidArgumentError(
            f"{name} must be a 2-D cost matrix of shape (n, m) with n, m >= 1, "
            f"got shape {cost.shape}"
        )
    if not np.all(np.isfinite(cost)):
        bad = int((~np.isfinite(cost)).sum())
        raise InvalidArgumentError(
            f"{name} contains {bad} NaN or infinite value(s); every cost must be finite"
        )
    if cost.min() < 0:
        raise InvalidArgumentError(
            f"{name} contains negative costs (smallest {cost.min():.6g}); costs must be >= 0, "
            "so subtract M.min() first (a constant shift does not change the plan)"
        )
    return cost


def check_marginal(value: Any, name: str, size: int, axis: str) -> np.ndarray:
    """Return a marginal of length ``size``; None or an empty list means uniform 1/size."""
    if value is None:
        return np.full(size, 1.0 / size)
    marginal = to_float64(value, name)
    if marginal.size == 0:
        return np.full(size, 1.0 / size)
    if marginal.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be a 1-D histogram of length {size}, got shape {marginal.shape}; "
            "one target histogram at a time is supported"
        )
    if marginal.shape[0] != size:
        raise InvalidArgumentError(
            f"{name} has length {marginal.shape[0]} but M has {size} {axis}; "
            f"{name} must have one mass per {axis[:-1]} of M"
        )
    if not np.all(np.isfinite(marginal)):
        raise InvalidArgumentError(f"{name} contains NaN or infinite masses; masses must be finite")
    if marginal.min() < 0:
        raise InvalidArgumentError(
            f"{name} contains negative masses (smallest {marginal.min():.6g}); masses must be >= 0"
        )
    if marginal.sum() <= 0:
        raise InvalidArgumentError(f"{name} has total mass 0; at least one mass must be positive")
    return marginal


def check_reg(reg: Any) -> float:
    """Return reg as a float after checking it is a finite positive number."""
    if isinstance(reg, bool) or not isinstance(reg, Real | np.floating | np.integer):
        if not (hasattr(reg, "item") and getattr(reg, "ndim", 1) == 0):
            raise InvalidArgumentError(
                f"reg must be a positive number (the entropic weight), got {type(reg).__name__}"
            )
        reg = reg.item()
    value = float(reg)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(
            f"reg must be a finite positive number (the entropic weight), got {reg!r}"
        )
    return value


def check_problem(a: Any, b: Any, M: Any, reg: Any, normalize: bool) -> Problem:
    """Check and convert the inputs of an entropic optimal transport problem.

    Args:
        a, b: Marginals; None or empty means uniform.
        M: Cost matrix.
        reg: Entropic weight.
        normalize: Divide each marginal by its total instead of requiring equal totals.

    Returns:
        The checked problem in float64.

    Raises:
        InvalidArgumentError: Any input is outside what is accepted; the
            message names the argument.
    """
    cost = check_cost_matrix(M)
    n, m = cost.shape
    source = check_marginal(a, "a", n, "rows")
    target = check_marginal(b, "b", m, "columns")
    reg_value = check_reg(reg)

    total_a = source.sum()
    total_b = target.sum()
    if normalize:
        source = source / total_a
        target = target / total_b
    elif abs(total_a - total_b) > TOTAL_MASS_RTOL * max(total_a, total_b):
        raise InvalidArgumentError(
            f"a and b have different total masses ({total_a:.9g} and {total_b:.9g}); "
            "transport needs equal totals, so rescale them or pass normalize=True"
        )
    else:
        target = target * (total_a / total_b)
    return Problem(source, target, cost, reg_value)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int after checking it is an integer ≥ ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(
    value: Any, name: str, *, include_one: bool = True, include_zero: bool = False
) -> float:
    """Return ``value`` as a float after checking it lies in (0, 1] (or the stated interval)."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating):
        raise InvalidArgumentError(f"{name} must be a number in (0, 1], got {value!r}")
    number = float(value)
    low_ok = number >= 0 if include_zero else number > 0
    high_ok = number <= 1 if include_one else number < 1
    if not (math.isfinite(number) and low_ok and high_ok):
        lower_bracket = "[0" if include_zero else "(0"
        upper_bracket = ", 1]" if include_one else ", 1)"
        interval = lower_bracket + upper_bracket
        raise InvalidArgumentError(f"{name} must lie in {interval}, got {value!r}")
    return number


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a float after checking it is finite and positive."""
    if isinstance(value, bool) or not isinstance(value, Real | np.floating):
        raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise InvalidArgumentError(f"{name} must be a finite positive number, got {value!r}")
    return number
