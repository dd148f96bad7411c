"""Every hook is documented in its spec, in the README, and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hessframe import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOK_NAMES = sorted(
    name
    for name, value in vars(hookspecs).items()
    if name.startswith("hessframe_") and inspect.isfunction(value)
)


def test_three_hooks_defined():
    assert HOOK_NAMES == [
        "hessframe_commands",
        "hessframe_curvature_providers",
        "hessframe_datasets",
    ]


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_docstring_states_contract(hook_name):
    docstring = inspect.getdoc(getattr(hookspecs, hook_name)) or ""
    assert "Returns:" in docstring
    assert "first-result" in docstring


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_documented_in_readme(hook_name):
    assert f"`{hook_name}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_hook_exercised_by_plugin_tests(hook_name):
    # The fake plugins in test_plugins.py implement every hook and the tests
    # there read what each returned.
    source = (ROOT / "tests" / "test_plugins.py").read_text()
    assert f"def {hook_name}(" in source
