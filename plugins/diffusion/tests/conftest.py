"""Shared settings and fixtures of the diffusion plugin's tests."""

from __future__ import annotations

import os

# Nothing in these tests may reach the network; diffusers and huggingface_hub
# read this before their first download attempt.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest
import torch
from hessframe_diffusion.mixture import GaussianMixture, default_mixture


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mixture() -> GaussianMixture:
    """The benchmark's mixture in 6 dimensions (small, so Hessians are cheap)."""
    return default_mixture(dim=6, seed=0)
