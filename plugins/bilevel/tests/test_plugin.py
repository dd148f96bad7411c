"""The plugin's hooks: the lower-level Hessian provider and the data sets."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel import plugin
from hessframe_bilevel.toys import quadratic_toy

from hessframe.curvature import AutodiffHessian
from hessframe.errors import InvalidArgumentError
from hessframe.plugins import PluginManager


def test_plugin_registers_lower_hessian_provider():
    manager = PluginManager(autoload=False, builtins=False)
    manager.register(plugin, "bilevel")

    record, owner = manager.provider_records()["bilevel-lower-hessian"]
    assert owner == "bilevel"
    assert record.kind == "autodiff"
    assert sorted(manager.dataset_records()) == [
        "bilevel-breast-cancer",
        "bilevel-corrupted-digits",
        "bilevel-wine-class-0",
    ]


def test_lower_hessian_provider_matches_dense_hessian():
    toy = quadratic_toy()
    x = torch.tensor([0.4, -0.2, 1.0], dtype=torch.float64)
    y = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    manager = PluginManager(autoload=False, builtins=False)
    manager.register(plugin, "bilevel")
    provider = manager.create_provider("bilevel-lower-hessian", toy.problem.lower, x, y)

    assert isinstance(provider, AutodiffHessian)
    dense = torch.func.hessian(lambda v: toy.problem.lower(x, v))(y)
    torch.testing.assert_close(provider.to_dense(), dense, atol=1e-12, rtol=0)


def test_lower_hessian_at_y_of_wrong_length_names_shapes():
    toy = quadratic_toy()
    with pytest.raises(
        InvalidArgumentError, match=r"lower failed at x of shape \(3,\) and y of shape \(1,\)"
    ):
        plugin.lower_level_hessian(toy.problem.lower, toy.x0, toy.y0[:1])
