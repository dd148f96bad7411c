"""The ``hessframe`` command.

The core adds ``plugins``, ``providers`` and ``install``; every other command,
the core's own ``spectrum`` included, comes through the ``hessframe_commands``
hook of a plugin.
"""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from pathlib import Path

import click

from hessframe import __version__
from hessframe.errors import HessframeError
from hessframe.plugins import PluginManager, get_plugin_manager

logger = logging.getLogger(__name__)

#: The domains that hessframe plugins cover, by short name. ``hessframe install``
#: accepts these; from a source checkout only those with a folder under plugins/.
KNOWN_PLUGINS = ("audio", "bilevel", "diffusion", "molecules", "transport")


class _ManagedGroup(click.Group):
    """The top-level group; it keeps the plugin manager that built it for the core commands.

    A HessframeError that a command raises (an InvalidArgumentError from a library
    check, say) ends the command as a click error: its message on stderr and exit
    status 1, with the traceback logged at DEBUG level (``-vv``) instead of printed.
    So does an OSError, such as a full disk under the standard output; a broken pipe
    is left to click, which exits quietly.
    """

    plugin_manager: PluginManager

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HessframeError as error:
            logger.debug("%s failed", ctx.command_path, exc_info=True)
            raise click.ClickException(f"{type(error).__name__}: {error}") from error
        except OSError as error:
            if error.errno == errno.EPIPE:
                raise
            logger.debug("%s failed", ctx.command_path, exc_info=True)
            where = f" ({error.filename})" if error.filename else ""
            raise click.ClickException(
                f"{error.strerror or error}{where}; check the path, its permissions and "
                "the free space on its disk"
            ) from error


def build_cli(manager: PluginManager | None = None) -> click.Group:
    """Build the ``hessframe`` command with the core commands and every plugin's commands.

    Args:
        manager: The plugin manager to read plugins from; the process-wide one
            (built from the environment) by default.
    """
    manager = manager if manager is not None else get_plugin_manager()

    @click.group(name="hessframe", cls=_ManagedGroup)
    @click.version_option(__version__, prog_name="hessframe")
    @click.option("-v", "--verbose", count=True, help="Log more: -v for INFO, -vv for DEBUG.")
    def cli(verbose: int) -> None:
        """Second-order information (Hessians, Hessian-vector products, spectra) for science."""
        levels = {0: logging.WARNING, 1: logging.INFO}
        level = levels.get(verbose, logging.DEBUG)
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")

    cli.plugin_manager = manager
    cli.add_command(plugins_command)
    cli.add_command(providers_command)
    cli.add_command(install_command)
    # A plugin that failed to import has already been reported through logging.
    manager.add_commands(cli)
    return cli


def _manager_of(context: click.Context) -> PluginManager:
    root = context.find_root().command
    return getattr(root, "plugin_manager", None) or get_plugin_manager()


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def plugins_command(context: click.Context, as_json: bool) -> None:
    """List each plugin with its version, providers, commands and data sets."""
    manager = _manager_of(context)
    infos = manager.plugin_infos()
    if as_json:
        payload = {
            "plugins": [
                {
                    "name": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "providers": list(info.providers),
                    "commands": list(info.commands),
                    "datasets": list(info.datasets),
                }
                for info in infos
            ],
            "failed": [
                {"name": failure.name, "target": failure.target, "error": failure.error}
                for failure in manager.failures
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    for info in infos:
        click.echo(f"{info.name} ({info.distribution} {info.version})")
        click.echo(f"  providers: {', '.join(info.providers) or '-'}")
        click.echo(f"  commands:  {', '.join(info.commands) or '-'}")
        click.echo(f"  datasets:  {', '.join(info.datasets) or '-'}")
    for failure in manager.failures:
        click.echo(f"{failure.name} (failed to import: {failure.error})")


@click.command("providers")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def providers_command(context: click.Context, as_json: bool) -> None:
    """List each curvature provider with its name, kind and plugin."""
    records = _manager_of(context).provider_records()
    rows = [
        {"name": name, "kind": record.kind, "plugin": plugin, "summary": record.summary}
        for name, (record, plugin) in sorted(records.items())
    ]
    if as_json:
        click.echo(json.dumps({"providers": rows}, indent=2))
        return
    width = max((len(row["name"]) for row in rows), default=4)
    for row in rows:
        click.echo(
            f"{row['name']:<{width}}  {row['kind']:<17}  {row['plugin']:<10}  {row['summary']}"
        )


def source_checkout_root() -> Path | None:
    """Return the repository root when hessframe runs from a source checkout, else None."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "plugins").is_dir():
        return root
    return None


def pip_install_arguments(name: str, checkout: Path | None) -> list[str]:
    """Return the pip arguments that install the domain plugin ``name``.

    From a source checkout the plugin is installed editable from ``plugins/NAME``
    and only the plugins in that folder are accepted. Otherwise pip installs the
    distribution ``hessframe-NAME`` for one of :data:`KNOWN_PLUGINS`.

    Raises:
        click.BadParameter: ``name`` is not a plugin of the checkout, or outside
            a checkout not one of :data:`KNOWN_PLUGINS`.
    """
    if checkout is not None:
        available = checkout_plugins(checkout)
        if name not in available:
            raise click.BadParameter(
                f"unknown plugin {name!r}: this checkout has no plugins/{name}/pyproject.toml; "
                f"plugins in this checkout: {', '.join(available) or 'none'}",
                param_hint="NAME",
            )
        return ["install", "-e", str(checkout / "plugins" / name)]
    if name not in KNOWN_PLUGINS:
        raise click.BadParameter(
            f"unknown plugin {name!r}; known plugins: {', '.join(KNOWN_PLUGINS)}",
            param_hint="NAME",
        )
    return ["install", f"hessframe-{name}"]


def checkout_plugins(checkout: Path) -> list[str]:
    """Return the names of the plugin folders (with a pyproject.toml) under ``checkout/plugins``."""
    return sorted(path.parent.name for path in (checkout / "plugins").glob("*/pyproject.toml"))


@click.command("install")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Print the pip command instead of running it.")
def install_command(name: str, dry_run: bool) -> None:
    """Install the domain plugin NAME into the running Python environment with pip."""
    command = [sys.executable, "-m", "pip", *pip_install_arguments(name, source_checkout_root())]
    click.echo(" ".join(command))
    if dry_run:
        return
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise click.ClickException(
            f"pip failed with exit code {completed.returncode} while installing {name!r}"
        )
    click.echo(f"installed plugin {name!r}; `hessframe plugins` lists it")


def main() -> None:
    """Run the ``hessframe`` command (the console-script entry point)."""
    build_cli()(prog_name="hessframe")
