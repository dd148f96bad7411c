"""The plugin manager: built-ins, entry-point discovery, failures, blocking, duplicates."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click
import pytest

from hessframe.errors import PluginError
from hessframe.plugins import (
    BLOCK_PLUGINS_ENV,
    DISABLE_AUTOLOAD_ENV,
    PluginManager,
    autoload_disabled,
    blocked_plugin_names,
)
from hessframe.records import ProviderRecord

TEST_PLUGIN_SOURCE = '''
import click
import torch

from hessframe import Capabilities, CurvatureProvider, DatasetRecord, ProviderRecord, hookimpl


class DiagonalProvider(CurvatureProvider):
    kind = "predicted"

    def __init__(self, values):
        super().__init__(len(values), values.dtype, values.device)
        self.values = values

    @property
    def capabilities(self):
        return Capabilities(True, bool((self.values >= 0).all()), False, True, False)

    def _matvec(self, v):
        return self.values * v


@hookimpl
def hessframe_curvature_providers():
    return [ProviderRecord("{provider}", "predicted", DiagonalProvider, "A diagonal matrix.")]


@hookimpl
def hessframe_commands(cli):
    @click.command("{command}")
    def greet():
        """Print a greeting."""
        click.echo("hello from {name}")

    cli.add_command(greet)


@hookimpl
def hessframe_datasets():
    return [DatasetRecord("{name}-data", "Three numbers.", "CC0-1.0", loader=lambda: [1, 2, 3])]
'''


def install_fake_distribution(
    site: Path, name: str, module_source: str, *, version: str = "1.2.3"
) -> None:
    """Make ``name`` importable from ``site`` with an entry point in the group ``hessframe``.

    The entry point lives in a real ``.dist-info`` folder, so discovery goes
    through importlib.metadata exactly as for a pip-installed plugin.
    """
    module = f"hessframe_{name}_plugin"
    (site / f"{module}.py").write_text(module_source)
    dist_info = site / f"hessframe_{name}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: hessframe-{name}\nVersion: {version}\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[hessframe]\n{name} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path where tests install fake plugin distributions."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("hessframe_") and m.endswith("_plugin")]:
        del sys.modules[module]


def good_plugin_source(name: str, provider: str | None = None) -> str:
    return textwrap.dedent(TEST_PLUGIN_SOURCE).format(
        name=name, provider=provider or f"{name}-diagonal", command=f"{name}-greet"
    )


def test_builtins_registered_as_core_plugin():
    manager = PluginManager(autoload=False)
    records = manager.provider_records()
    assert manager.plugin_names == ["core"]
    assert {name: records[name][0].kind for name in records} == {
        "autodiff": "autodiff",
        "finite-difference": "finite-difference",
        "low-rank-damped": "low-rank-damped",
        "predicted": "predicted",
    }
    assert all(plugin == "core" for _, plugin in records.values())


def test_builtin_commands_and_datasets_listed():
    info = PluginManager(autoload=False).plugin_infos()[0]
    assert info.name == "core"
    assert info.distribution == "hessframe"
    assert "spectrum" in info.commands
    assert "digits" in info.datasets


def test_entry_point_plugin_found_and_used(site):
    install_fake_distribution(site, "alpha", good_plugin_source("alpha"))
    manager = PluginManager(autoload=True, blocked=())
    assert "alpha" in manager.plugin_names
    _, plugin = manager.provider_records()["alpha-diagonal"]
    assert plugin == "alpha"
    torch = pytest.importorskip("torch")
    values = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    provider = manager.create_provider("alpha-diagonal", values)
    v = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
    assert torch.equal(provider.matvec(v), torch.tensor([1.0, -2.0, 6.0], dtype=torch.float64))
    info = next(i for i in manager.plugin_infos() if i.name == "alpha")
    assert info.version == "1.2.3"
    assert info.distribution == "hessframe-alpha"
    assert info.commands == ("alpha-greet",)
    assert info.datasets == ("alpha-data",)
    assert manager.dataset_records()["alpha-data"][0].loader() == [1, 2, 3]


def test_broken_plugin_reported_and_skipped(site):
    install_fake_distribution(site, "broken", "raise ImportError('missing libfoo.so')\n")
    install_fake_distribution(site, "alpha", good_plugin_source("alpha"))
    manager = PluginManager(autoload=True, blocked=())
    assert "broken" not in manager.plugin_names
    assert "alpha" in manager.plugin_names
    failures = [failure for failure in manager.failures if failure.name == "broken"]
    assert len(failures) == 1
    failure = failures[0]
    assert failure.target == "hessframe_broken_plugin"
    assert failure.error == "ImportError: missing libfoo.so"


def test_blocked_plugin_absent(site, monkeypatch):
    install_fake_distribution(site, "alpha", good_plugin_source("alpha"))
    install_fake_distribution(site, "beta", good_plugin_source("beta"))
    monkeypatch.setenv(BLOCK_PLUGINS_ENV, " alpha , gamma")
    manager = PluginManager(autoload=True)
    assert "alpha" not in manager.plugin_names
    assert "beta" in manager.plugin_names
    assert "alpha-diagonal" not in manager.provider_records()
    assert "hessframe_alpha_plugin" not in sys.modules


def test_autoload_switch_skips_entry_points(site, monkeypatch):
    install_fake_distribution(site, "alpha", good_plugin_source("alpha"))
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert autoload_disabled()
    assert PluginManager().plugin_names == ["core"]
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "0")
    assert not autoload_disabled()
    assert "alpha" in PluginManager(blocked=()).plugin_names


def test_block_env_parsing(monkeypatch):
    monkeypatch.setenv(BLOCK_PLUGINS_ENV, "a,, b ,")
    assert blocked_plugin_names() == frozenset({"a", "b"})
    monkeypatch.delenv(BLOCK_PLUGINS_ENV)
    assert blocked_plugin_names() == frozenset()


def test_duplicate_provider_names_rejected_naming_both(site):
    install_fake_distribution(site, "alpha", good_plugin_source("alpha", provider="autodiff"))
    manager = PluginManager(autoload=True, blocked=())
    with pytest.raises(PluginError) as excinfo:
        manager.provider_records()
    message = str(excinfo.value)
    assert "'autodiff'" in message
    assert "'core'" in message
    assert "'alpha'" in message


def test_duplicate_command_rejected(site):
    source = good_plugin_source("alpha").replace('"alpha-greet"', '"providers"')
    install_fake_distribution(site, "alpha", source)
    manager = PluginManager(autoload=True, blocked=())
    cli = click.Group(name="hessframe")
    cli.add_command(click.Command("providers"))
    with pytest.raises(PluginError, match="'providers'"):
        manager.add_commands(cli)


def test_plugin_returning_wrong_record_type_rejected():
    class Plugin:
        from hessframe import hookimpl

        @staticmethod
        @hookimpl
        def hessframe_curvature_providers():
            return ["not a record"]

    manager = PluginManager(autoload=False)
    manager.register(Plugin(), "odd")
    with pytest.raises(PluginError, match="plugin 'odd' returned str"):
        manager.provider_records()


def test_register_twice_rejected():
    manager = PluginManager(autoload=False)
    with pytest.raises(PluginError, match="'core' is already registered"):
        manager.register(object(), "core")


def test_unknown_provider_lists_known_names():
    manager = PluginManager(autoload=False)
    with pytest.raises(KeyError, match="registered providers: autodiff, finite-difference"):
        manager.get_provider("newton")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "", "kind": "autodiff"}, "non-empty string"),
        ({"name": "x", "kind": "exact"}, "kind 'exact' is not one of"),
    ],
)
def test_provider_record_rejects_bad_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProviderRecord(factory=dict, summary="s", **kwargs)
