"""Molecular Hessians for hessframe.

An equivariant graph network that predicts molecular Hessians directly, GFN2-xTB
labels computed through tblite, and the ASE tools that put a Hessian to work:
geometry optimisation, transition-state search and vibrational analysis.
"""

__version__ = "0.1.0"
