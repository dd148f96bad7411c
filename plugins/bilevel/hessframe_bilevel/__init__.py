"""Bilevel optimisation for hessframe.

LV-HBA (:func:`~hessframe_bilevel.lvhba.lvhba`) for lower levels with coupled
constraints, and implicit (:func:`~hessframe_bilevel.implicit.implicit_descent`)
and unrolled (:func:`~hessframe_bilevel.unrolled.unrolled_descent`)
hypergradient descent for lower levels without constraints.

The names are imported eagerly, which imports torch, because the function
``lvhba`` shares its name with its module: a lazy attribute would be replaced by
the module as soon as anything imported ``hessframe_bilevel.lvhba``.
"""

from hessframe_bilevel.implicit import implicit_descent, implicit_hypergradient
from hessframe_bilevel.lvhba import LVHBAConfig, lvhba
from hessframe_bilevel.problem import (
    BestIterate,
    BilevelHistory,
    BilevelProblem,
    BilevelResult,
    IterationReport,
)
from hessframe_bilevel.projections import Box, NonNegative, Reals, Simplex
from hessframe_bilevel.unrolled import unrolled_descent, unrolled_hypergradient

__version__ = "0.1.0"

__all__ = [
    "BestIterate",
    "BilevelHistory",
    "BilevelProblem",
    "BilevelResult",
    "Box",
    "IterationReport",
    "LVHBAConfig",
    "NonNegative",
    "Reals",
    "Simplex",
    "implicit_descent",
    "implicit_hypergradient",
    "lvhba",
    "unrolled_descent",
    "unrolled_hypergradient",
]
