"""The ``hessframe`` command through click's test runner."""

from __future__ import annotations

import errno
import json
import sys

import click
import pytest
from click.testing import CliRunner

from hessframe.cli import (
    KNOWN_PLUGINS,
    build_cli,
    checkout_plugins,
    pip_install_arguments,
    source_checkout_root,
)
from hessframe.clickutils import prepare_output_folder, reject_non_finite
from hessframe.errors import InvalidArgumentError
from hessframe.plugins import PluginManager


@pytest.fixture
def cli():
    return build_cli(PluginManager(autoload=False))


def test_providers_json_lists_four_builtin_kinds(cli):
    result = CliRunner().invoke(cli, ["providers", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["providers"]
    assert [(row["name"], row["kind"], row["plugin"]) for row in rows] == [
        ("autodiff", "autodiff", "core"),
        ("finite-difference", "finite-difference", "core"),
        ("low-rank-damped", "low-rank-damped", "core"),
        ("predicted", "predicted", "core"),
    ]


def test_providers_text_has_one_line_each(cli):
    result = CliRunner().invoke(cli, ["providers"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:3] == ["autodiff", "autodiff", "core"]


def test_plugins_json_describes_core(cli):
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["failed"] == []
    core = payload["plugins"][0]
    assert core["name"] == "core"
    assert core["distribution"] == "hessframe"
    assert core["providers"] == ["autodiff", "finite-difference", "low-rank-damped", "predicted"]
    assert "spectrum" in core["commands"]
    assert core["datasets"] == ["digits"]


def test_plugins_text_names_core(cli):
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("core (hessframe ")


def test_install_unknown_name_lists_checkout_plugins(cli):
    result = CliRunner().invoke(cli, ["install", "chemistry"])
    assert result.exit_code == 2
    assert "unknown plugin 'chemistry'" in result.output
    available = checkout_plugins(source_checkout_root())
    assert "transport" in available
    assert f"plugins in this checkout: {', '.join(available)}" in result.output


def test_install_outside_checkout_rejects_unknown_domain():
    with pytest.raises(click.BadParameter, match="known plugins: audio, bilevel, diffusion"):
        pip_install_arguments("chemistry", None)


def test_install_dry_run_uses_checkout_folder(cli):
    result = CliRunner().invoke(cli, ["install", "transport", "--dry-run"])
    assert result.exit_code == 0, result.output
    checkout = source_checkout_root()
    assert checkout is not None
    expected = f"{sys.executable} -m pip install -e {checkout / 'plugins' / 'transport'}"
    assert result.output.strip() == expected


def test_install_outside_checkout_uses_distribution_name():
    for name in KNOWN_PLUGINS:
        assert pip_install_arguments(name, None) == ["install", f"hessframe-{name}"]


def test_version_option(cli):
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("hessframe, version ")


def test_reject_non_finite_option_values():
    assert reject_non_finite(None, None, 0.5) == 0.5
    for value in (float("nan"), float("inf")):
        with pytest.raises(click.BadParameter, match="must be a finite number"):
            reject_non_finite(None, None, value)


def test_prepare_output_folder_creates_or_rejects(tmp_path):
    folder = tmp_path / "a" / "b"
    prepare_output_folder(folder, "--out")
    assert folder.is_dir()
    assert list(folder.iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(click.BadParameter, match="cannot write into folder"):
        prepare_output_folder(blocker / "sub", "--out")


def test_library_error_prints_message(cli):
    @cli.command("fails")
    def fails() -> None:
        raise InvalidArgumentError("seed must be an integer >= 0, got -1")

    result = CliRunner().invoke(cli, ["fails"])
    assert result.exit_code == 1
    assert result.output == "Error: InvalidArgumentError: seed must be an integer >= 0, got -1\n"
    assert "Traceback" not in result.output


def test_unwritable_stdout_prints_message(cli):
    @cli.command("writes")
    def writes() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    result = CliRunner().invoke(cli, ["writes"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: No space left on device; check the path, its permissions and the free "
        "space on its disk\n"
    )
