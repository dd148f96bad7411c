"""Bilevel optimisation for hessframe.

LV-HBA (:func:`~hessframe_bilevel.lvhba.lvhba`) for lower levels with coupled
constraints, and implicit (:func:`~hessframe_bilevel.implicit.implicit_descent`)
and unrolled (:func:`~hessframe_bilevel.unrolled.unrolled_descent`)
hypergradient descent for lower levels without constraints.
"""

from hessframe_bilevel.lvhba import LVHBAConfig, lvhba
from hessframe_bilevel.problem import BilevelHistory, BilevelProblem, BilevelResult
from hessframe_bilevel.projections import Box, NonNegative, Reals, Simplex

__version__ = "0.1.0"

__all__ = [
    "BilevelHistory",
    "BilevelProblem",
    "BilevelResult",
    "Box",
    "LVHBAConfig",
    "NonNegative",
    "Reals",
    "Simplex",
    "lvhba",
]
