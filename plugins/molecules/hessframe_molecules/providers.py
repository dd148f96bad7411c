"""Curvature providers of the molecules plugin.

Each factory takes ``(atoms: ase.Atoms, **kwargs)`` and returns a core
:class:`~hessframe.curvature.CurvatureProvider` over the 3N Cartesian
coordinates (atom-major: x0, y0, z0, x1, ...), whose ``to_dense()`` is the
(3N, 3N) Hessian in eV/Å².

- ``molecules-predicted``: the Hessian that the network's head outputs directly.
- ``molecules-autodiff``: the Hessian of the same network's energy, by automatic
  differentiation.
- ``xtb-finite-difference``: GFN2-xTB through tblite, central differences of its
  analytic gradients.
"""

from __future__ import annotations

from typing import Any

from hessframe import ProviderRecord


def molecules_predicted(atoms: Any, *, model: Any = None, weights: Any = None, **kwargs: Any):
    """Build the network's directly predicted Hessian of ``atoms``.

    Args:
        atoms: The molecule, an ``ase.Atoms``.
        model: A loaded :class:`hessframe_molecules.model.HessianNet`; the
            shipped weights are loaded when None.
        weights: Path of a checkpoint to load instead of the shipped weights.
        **kwargs: Passed to :meth:`HessianNet.predicted_provider`.

    Raises:
        InvalidArgumentError: ``atoms`` fails
            :func:`hessframe_molecules.model.check_molecule`.
    """
    from hessframe_molecules.model import load_pretrained

    model = model if model is not None else load_pretrained(weights)
    return model.predicted_provider(atoms, **kwargs)


def molecules_autodiff(atoms: Any, *, model: Any = None, weights: Any = None, **kwargs: Any):
    """Build the autodiff Hessian of the network's energy at ``atoms``.

    Arguments as in :func:`molecules_predicted`; ``**kwargs`` go to
    :meth:`HessianNet.autodiff_provider`.
    """
    from hessframe_molecules.model import load_pretrained

    model = model if model is not None else load_pretrained(weights)
    return model.autodiff_provider(atoms, **kwargs)


def xtb_finite_difference(atoms: Any, **kwargs: Any):
    """Build the GFN2-xTB Hessian of ``atoms`` by central differences.

    See :func:`hessframe_molecules.xtb.xtb_finite_difference` for ``step``,
    ``charge`` and ``uhf``.
    """
    from hessframe_molecules.xtb import xtb_finite_difference as build

    return build(atoms, **kwargs)


def provider_records() -> list[ProviderRecord]:
    """Return the three molecular Hessian providers."""
    return [
        ProviderRecord(
            name="molecules-predicted",
            kind="predicted",
            factory=molecules_predicted,
            summary="Molecular Hessian (eV/Å²) output directly by the equivariant network "
            "(molecules_predicted(atoms)).",
        ),
        ProviderRecord(
            name="molecules-autodiff",
            kind="autodiff",
            factory=molecules_autodiff,
            summary="Hessian (eV/Å²) of the equivariant network's energy by automatic "
            "differentiation (molecules_autodiff(atoms)).",
        ),
        ProviderRecord(
            name="xtb-finite-difference",
            kind="finite-difference",
            factory=xtb_finite_difference,
            summary="GFN2-xTB Hessian (eV/Å²) by central differences of tblite's analytic "
            "gradients (xtb_finite_difference(atoms, step=0.005)).",
        ),
    ]
