"""Fixtures of the core's tests: the shared Hessian cases of ``cases.py``.

The docstring of ``tests/cases.py`` describes what a case contains and how to use it.
The ``provider_checker`` fixture comes from the ``hessframe.testing`` pytest
plugin. It is registered here as well, so that the tests also run with pytest's
plugin autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``).
"""

from __future__ import annotations

import pytest
import torch
from cases import CASES, CLOSED_FORM_CASES, MODULE_CASES, HessianCase, build_case

import hessframe.testing


def pytest_configure(config: pytest.Config) -> None:
    # The cases are tiny, so a second intra-op thread only adds scheduling
    # overhead; on a loaded 2-core machine it made them many times slower.
    torch.set_num_threads(1)
    if not config.pluginmanager.is_registered(hessframe.testing):
        config.pluginmanager.register(hessframe.testing, "hessframe")


@pytest.fixture(scope="session", params=list(CASES))
def hessian_case(request: pytest.FixtureRequest) -> HessianCase:
    """Every case of ``cases.CASES``."""
    return build_case(request.param)


@pytest.fixture(scope="session", params=CLOSED_FORM_CASES)
def closed_form_case(request: pytest.FixtureRequest) -> HessianCase:
    """The cases whose Hessian has a closed form (``case.closed_form`` is set)."""
    return build_case(request.param)


@pytest.fixture(scope="session", params=MODULE_CASES)
def module_case(request: pytest.FixtureRequest) -> HessianCase:
    """The network cases (``model``, ``loss_fn`` and ``loader`` are set)."""
    return build_case(request.param)
