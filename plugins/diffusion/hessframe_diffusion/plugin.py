"""The hessframe hooks of the diffusion plugin: its providers and commands.

Registered through the entry point ``diffusion = "hessframe_diffusion.plugin"``
of the group ``hessframe``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hessframe import ProviderRecord, hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def hessframe_curvature_providers() -> list[ProviderRecord]:
    """Return the damped secant Hessian of the LML corrector and the LM increment system."""
    from hessframe_diffusion.lm import lm_increment_system_provider, lml_damped_hessian_provider

    return [
        ProviderRecord(
            name="diffusion-lml-damped-hessian",
            kind="low-rank-damped",
            factory=lml_damped_hessian_provider,
            summary="λI + I - blockdiag(c_b u_b u_bᵀ), the damped secant approximation of "
            "σ²(-∇² log p_t) of a batch, block diagonal "
            "(lml_damped_hessian_provider(directions, curvature, damping)).",
        ),
        ProviderRecord(
            name="diffusion-lm-increment-system",
            kind="low-rank-damped",
            factory=lm_increment_system_provider,
            summary="I + blockdiag(a_b u_b u_bᵀ), the rank-one system of the LM increment "
            "correction, block diagonal (lm_increment_system_provider(directions, coefficients)).",
        ),
    ]


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    """Add the ``hessframe diffusion`` group."""
    from hessframe_diffusion.cli import diffusion_group

    cli.add_command(diffusion_group)
