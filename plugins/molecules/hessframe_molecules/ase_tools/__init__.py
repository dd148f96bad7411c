"""ASE tools that put a molecular Hessian to work.

- :mod:`.hessians`: Hessian sources (registered providers, factories, finite differences).
- :mod:`.calculators`: the network's ASE calculator; any calculator paired with a source.
- :mod:`.optimizer`: :class:`HessianRFO`, an ASE optimizer started from a source's Hessian.
- :mod:`.transition_state`: Sella's saddle search and IRC fed by a source.
- :mod:`.vibrations`: frequencies, normal modes, ZPE and ideal-gas thermochemistry.
- :mod:`.jobs`: the ``hessframe molecules optimize|ts|vib`` jobs.
"""

from hessframe_molecules.ase_tools.calculators import (
    DomainWarning,
    HessianCalculator,
    ModelCalculator,
    domain_problems,
)
from hessframe_molecules.ase_tools.hessians import (
    HESSIAN_ALIASES,
    HessianSource,
    calculator_finite_difference,
    resolve_hessian,
)
from hessframe_molecules.ase_tools.optimizer import HessianRFO
from hessframe_molecules.ase_tools.transition_state import (
    ReactionPath,
    SaddleSearch,
    SaddleSearchError,
    find_transition_state,
    follow_irc,
)
from hessframe_molecules.ase_tools.vibrations import (
    Thermochemistry,
    VibrationalAnalysis,
    analyze_vibrations,
    project_rigid_motions,
    vibrations_from_hessian,
)

__all__ = [
    "HESSIAN_ALIASES",
    "DomainWarning",
    "HessianCalculator",
    "HessianRFO",
    "HessianSource",
    "ModelCalculator",
    "ReactionPath",
    "SaddleSearch",
    "SaddleSearchError",
    "Thermochemistry",
    "VibrationalAnalysis",
    "analyze_vibrations",
    "calculator_finite_difference",
    "domain_problems",
    "find_transition_state",
    "follow_irc",
    "project_rigid_motions",
    "resolve_hessian",
    "vibrations_from_hessian",
]
