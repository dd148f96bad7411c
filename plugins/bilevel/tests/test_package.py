"""The package's public names are the solver functions and records."""

from __future__ import annotations

import importlib

import hessframe_bilevel


def test_public_names_resolve():
    for name in hessframe_bilevel.__all__:
        assert getattr(hessframe_bilevel, name) is not None


def test_lvhba_name_stays_function_after_module_import():
    module = importlib.import_module("hessframe_bilevel.lvhba")
    assert hessframe_bilevel.lvhba is module.lvhba
    assert callable(hessframe_bilevel.lvhba)
