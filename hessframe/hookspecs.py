"""Every hook that hessframe calls, with its contract.

Plugins implement these with the public marker :data:`hookimpl`::

    from hessframe import hookimpl, ProviderRecord

    @hookimpl
    def hessframe_curvature_providers():
        return [ProviderRecord("my-provider", "autodiff", make_provider, "What it computes.")]

and expose the module through the entry-point group ``hessframe`` in their
``pyproject.toml``::

    [project.entry-points.hessframe]
    mydomain = "hessframe_mydomain.plugin"

None of the hooks is first-result: hessframe calls every implementation and
collects what each returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from hessframe.records import DatasetRecord, ProviderRecord

PROJECT_NAME = "hessframe"

_hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@_hookspec
def hessframe_curvature_providers() -> list[ProviderRecord]:
    """Return the curvature providers that this plugin offers.

    Called once when the plugin manager builds its provider registry. Not
    first-result: the lists of all plugins are joined. A provider name that two
    plugins both return is rejected with a
    :class:`~hessframe.errors.PluginError` that names both plugins.

    Returns:
        A list of :class:`~hessframe.records.ProviderRecord` (may be empty).
    """


@_hookspec
def hessframe_commands(cli: click.Group) -> None:
    """Add this plugin's subcommands to the ``hessframe`` command.

    Called once when the command line is built. Not first-result: every
    plugin adds its commands. By convention a domain plugin adds one group
    named after its domain (``hessframe transport ...``).

    Args:
        cli: The top-level click group; call ``cli.add_command(group)``.

    Returns:
        Nothing; the hook works by adding to ``cli``.
    """


@_hookspec
def hessframe_datasets() -> list[DatasetRecord]:
    """Return the data sets that this plugin ships or can build.

    Called when ``hessframe plugins`` lists plugins or a caller looks a data
    set up by name. Not first-result: the lists of all plugins are joined.

    Returns:
        A list of :class:`~hessframe.records.DatasetRecord` (may be empty).
    """
