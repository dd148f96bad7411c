"""Test settings of the bilevel plugin."""

from __future__ import annotations

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    # The problems are small, so a second intra-op thread only adds scheduling
    # overhead, and on a loaded 2-core machine it made the runs many times slower.
    torch.set_num_threads(1)
