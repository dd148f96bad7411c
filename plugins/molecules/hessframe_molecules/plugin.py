"""The hessframe hooks of the molecules plugin: providers, commands and data sets.

Registered through the entry point ``molecules = "hessframe_molecules.plugin"`` of
the group ``hessframe``. Each hook imports its module only when it runs, so that
loading the plugin stays cheap.
"""

from __future__ import annotations

import click

from hessframe import DatasetRecord, ProviderRecord, hookimpl


@hookimpl
def hessframe_curvature_providers() -> list[ProviderRecord]:
    """Return the molecular Hessian providers: the network's head, its autodiff Hessian, xTB."""
    from hessframe_molecules.providers import provider_records

    return provider_records()


@hookimpl
def hessframe_datasets() -> list[DatasetRecord]:
    """Return the shipped GFN2-xTB Hessian data set and its splits."""
    from hessframe_molecules.dataset import dataset_records

    return dataset_records()


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    """Add the ``hessframe molecules`` group."""
    from hessframe_molecules.cli import molecules_group

    cli.add_command(molecules_group)
