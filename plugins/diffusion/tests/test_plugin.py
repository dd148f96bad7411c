"""The plugin's hooks: its two low-rank damped providers and its command group."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from hessframe_diffusion import plugin

from hessframe.cli import build_cli
from hessframe.plugins import PluginManager


def _manager() -> PluginManager:
    manager = PluginManager(autoload=False, builtins=False)
    manager.register(plugin, "diffusion")
    return manager


def test_plugin_registers_two_low_rank_providers():
    records = _manager().provider_records()
    for name in ("diffusion-lml-damped-hessian", "diffusion-lm-increment-system"):
        record, owner = records[name]
        assert owner == "diffusion"
        assert record.kind == "low-rank-damped"


def test_damped_hessian_provider_is_block_diagonal_dense():
    directions = torch.nn.functional.normalize(
        torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)), dim=1
    )
    curvature = torch.tensor([0.2, 0.9, 0.0], dtype=torch.float64)
    provider = _manager().create_provider(
        "diffusion-lml-damped-hessian", directions, curvature, 0.5
    )
    blocks = [1.5 * torch.eye(4, dtype=torch.float64) - c * torch.outer(u, u)
              for u, c in zip(directions, curvature, strict=True)]
    torch.testing.assert_close(provider.to_dense(), torch.block_diag(*blocks), atol=1e-12, rtol=0)


def test_diffusion_group_is_added_to_hessframe_command():
    result = CliRunner().invoke(build_cli(), ["diffusion", "--help"])
    assert result.exit_code == 0, result.output
    for command in ("sample", "train-digits", "train-classifier"):
        assert command in result.output
