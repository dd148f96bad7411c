"""The plugin manager: built-in plugins, entry-point discovery, block and autoload switches.

Built-ins are registered exactly like external plugins, under the name
``core``. External plugins are modules named in the entry-point group
``hessframe`` of any installed distribution. Two environment variables steer
discovery:

``HESSFRAME_DISABLE_PLUGIN_AUTOLOAD=1``
    Load no entry points; only the built-ins (and plugins registered by hand).
``HESSFRAME_BLOCK_PLUGINS=name,name``
    Skip the plugins with these entry-point names (``core`` blocks the built-ins).

A plugin that fails to import is reported (its name and error) in
:attr:`PluginManager.failures` and in the log, and the others keep working.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import click
import pluggy

from hessframe import hookspecs
from hessframe.errors import PluginError
from hessframe.records import DatasetRecord, ProviderRecord

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hessframe"
DISABLE_AUTOLOAD_ENV = "HESSFRAME_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_PLUGINS_ENV = "HESSFRAME_BLOCK_PLUGINS"
CORE_PLUGIN_NAME = "core"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded.

    Attributes:
        name: Its entry-point name.
        target: The ``module:attribute`` the entry point names.
        error: The exception, formatted as ``Type: message``.
    """

    name: str
    target: str
    error: str


@dataclass(frozen=True)
class PluginInfo:
    """The providers, commands and data sets of one registered plugin.

    Attributes:
        name: Entry-point name (``core`` for the built-ins).
        version: Version of the distribution that ships it.
        distribution: Name of that distribution.
        providers: Names of its curvature providers.
        commands: Names of the top-level commands it adds.
        datasets: Names of its data sets.
    """

    name: str
    version: str
    distribution: str
    providers: tuple[str, ...] = field(default_factory=tuple)
    commands: tuple[str, ...] = field(default_factory=tuple)
    datasets: tuple[str, ...] = field(default_factory=tuple)


def autoload_disabled() -> bool:
    """Return True when ``HESSFRAME_DISABLE_PLUGIN_AUTOLOAD`` is set to a true value."""
    value = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no")


def blocked_plugin_names() -> frozenset[str]:
    """Return the plugin names listed in ``HESSFRAME_BLOCK_PLUGINS``."""
    value = os.environ.get(BLOCK_PLUGINS_ENV, "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


class PluginManager:
    """Registers hessframe plugins and collects what their hooks return.

    Args:
        autoload: Load entry-point plugins. ``None`` reads
            ``HESSFRAME_DISABLE_PLUGIN_AUTOLOAD``.
        blocked: Plugin names to skip. ``None`` reads ``HESSFRAME_BLOCK_PLUGINS``.
        builtins: Register the built-in plugin ``core``.
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        blocked: Iterable[str] | None = None,
        builtins: bool = True,
    ) -> None:
        self._pluggy = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pluggy.add_hookspecs(hookspecs)
        self._blocked = frozenset(blocked) if blocked is not None else blocked_plugin_names()
        self._distributions: dict[str, tuple[str, str]] = {}
        self.failures: list[PluginFailure] = []

        for name in sorted(self._blocked):
            self._pluggy.set_blocked(name)
        if builtins and CORE_PLUGIN_NAME not in self._blocked:
            from hessframe import __version__, builtin

            self.register(builtin, CORE_PLUGIN_NAME, distribution=("hessframe", __version__))
        if autoload if autoload is not None else not autoload_disabled():
            self.load_entry_points()

    # ------------------------------------------------------------------
    # Registration

    def register(
        self, plugin: ModuleType | object, name: str, *, distribution: tuple[str, str] | None = None
    ) -> None:
        """Register a plugin object (usually a module with hook implementations).

        Args:
            plugin: The module or object whose ``@hookimpl`` functions are used.
            name: Its plugin name; must be unique.
            distribution: (distribution name, version) shown by ``hessframe plugins``.

        Raises:
            PluginError: Another plugin is registered under ``name``.
        """
        if self._pluggy.has_plugin(name):
            raise PluginError(f"a plugin named {name!r} is already registered")
        if self._pluggy.is_blocked(name):
            logger.info("plugin %r is blocked by %s; not registering it", name, BLOCK_PLUGINS_ENV)
            return
        self._pluggy.register(plugin, name=name)
        self._distributions[name] = distribution or ("unknown", "unknown")

    def load_entry_points(self) -> None:
        """Import and register every plugin in the entry-point group ``hessframe``.

        A plugin that raises on import is recorded in :attr:`failures` and logged
        as a warning; loading goes on with the next one.
        """
        for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=_by_name):
            if entry_point.name in self._blocked:
                logger.info(
                    "skipping plugin %r: blocked by %s", entry_point.name, BLOCK_PLUGINS_ENV
                )
                continue
            if self._pluggy.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # a broken plugin must not take the others down
                failure = PluginFailure(
                    entry_point.name, entry_point.value, f"{type(error).__name__}: {error}"
                )
                self.failures.append(failure)
                logger.warning(
                    "plugin %r (%s) failed to import and is skipped: %s",
                    failure.name,
                    failure.target,
                    failure.error,
                )
                continue
            dist = entry_point.dist
            distribution = (dist.name, dist.version) if dist is not None else None
            self.register(plugin, entry_point.name, distribution=distribution)

    @property
    def plugin_names(self) -> list[str]:
        """Names of the registered plugins, the built-ins first."""
        names = [name for name, plugin in self._pluggy.list_name_plugin() if plugin is not None]
        return sorted(names, key=lambda name: (name != CORE_PLUGIN_NAME, name))

    # ------------------------------------------------------------------
    # What the hooks return, with the plugin each item came from

    def _call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        hook = getattr(self._pluggy.hook, hook_name)
        for implementation in hook.get_hookimpls():
            yield implementation.plugin_name, implementation.function(**kwargs)

    def provider_records(self) -> dict[str, tuple[ProviderRecord, str]]:
        """Return every provider record by name, with the plugin that registered it.

        Raises:
            PluginError: Two plugins register a provider under the same name, or a
                plugin returns something other than ProviderRecord objects.
        """
        records: dict[str, tuple[ProviderRecord, str]] = {}
        for plugin_name, returned in self._call_each("hessframe_curvature_providers"):
            for record in _as_records(returned, ProviderRecord, plugin_name, "provider"):
                if record.name in records:
                    first_plugin = records[record.name][1]
                    raise PluginError(
                        f"provider name {record.name!r} is registered twice: by plugin "
                        f"{first_plugin!r} and by plugin {plugin_name!r}; rename one of them "
                        f"or block a plugin with {BLOCK_PLUGINS_ENV}"
                    )
                records[record.name] = (record, plugin_name)
        return records

    def dataset_records(self) -> dict[str, tuple[DatasetRecord, str]]:
        """Return every data set record by name, with the plugin that registered it.

        Raises:
            PluginError: Two plugins register a data set under the same name.
        """
        records: dict[str, tuple[DatasetRecord, str]] = {}
        for plugin_name, returned in self._call_each("hessframe_datasets"):
            for record in _as_records(returned, DatasetRecord, plugin_name, "dataset"):
                if record.name in records:
                    raise PluginError(
                        f"dataset name {record.name!r} is registered twice: by plugin "
                        f"{records[record.name][1]!r} and by plugin {plugin_name!r}"
                    )
                records[record.name] = (record, plugin_name)
        return records

    def get_provider(self, name: str) -> ProviderRecord:
        """Return the provider record called ``name``.

        Raises:
            KeyError: No plugin registers that name; the message lists the known names.
        """
        records = self.provider_records()
        if name not in records:
            known = ", ".join(sorted(records)) or "none"
            raise KeyError(f"unknown curvature provider {name!r}; registered providers: {known}")
        return records[name][0]

    def create_provider(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Build the provider called ``name`` by calling its factory with the given arguments."""
        return self.get_provider(name).factory(*args, **kwargs)

    def add_commands(self, cli: click.Group) -> dict[str, str]:
        """Let every plugin add its subcommands to ``cli``.

        Returns:
            The plugin that added each command, by command name.

        Raises:
            PluginError: Two plugins add a command with the same name.
        """
        origins: dict[str, str] = {}
        for implementation in self._pluggy.hook.hessframe_commands.get_hookimpls():
            before = set(cli.commands)
            scratch = click.Group(name=cli.name)
            implementation.function(cli=scratch)
            for command_name, command in scratch.commands.items():
                if command_name in before or command_name in origins:
                    owner = origins.get(command_name, "the hessframe command itself")
                    raise PluginError(
                        f"command {command_name!r} from plugin {implementation.plugin_name!r} "
                        f"clashes with the one from {owner}"
                    )
                cli.add_command(command, command_name)
                origins[command_name] = implementation.plugin_name
        return origins

    def plugin_infos(self) -> list[PluginInfo]:
        """Describe each registered plugin: version, providers, commands and data sets."""
        providers = self.provider_records()
        datasets = self.dataset_records()
        commands = self.add_commands(click.Group(name="hessframe"))
        infos = []
        for name in self.plugin_names:
            distribution, version = self._distributions.get(name, ("unknown", "unknown"))
            infos.append(
                PluginInfo(
                    name=name,
                    version=version,
                    distribution=distribution,
                    providers=_owned_by(name, providers),
                    commands=tuple(sorted(c for c, owner in commands.items() if owner == name)),
                    datasets=_owned_by(name, datasets),
                )
            )
        return infos


def _by_name(entry_point: metadata.EntryPoint) -> str:
    return entry_point.name


def _owned_by(plugin_name: str, records: dict[str, tuple[Any, str]]) -> tuple[str, ...]:
    return tuple(sorted(name for name, (_, owner) in records.items() if owner == plugin_name))


def _as_records(returned: Any, record_type: type, plugin_name: str, what: str) -> list[Any]:
    if returned is None:
        return []
    if isinstance(returned, record_type):
        returned = [returned]
    records = list(returned)
    for record in records:
        if not isinstance(record, record_type):
            raise PluginError(
                f"plugin {plugin_name!r} returned {type(record).__name__} from its {what} hook; "
                f"expected {record_type.__name__} objects"
            )
    return records


_default_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """Return the process-wide plugin manager, built on first use from the environment."""
    global _default_manager
    if _default_manager is None:
        _default_manager = PluginManager()
    return _default_manager


def reset_plugin_manager() -> None:
    """Forget the process-wide plugin manager, so the next call rebuilds it (for tests)."""
    global _default_manager
    _default_manager = None
