"""SparseDualHessian against the Hessian of the dual objective built by torch.func."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hessframe_transport.provider import SparseDualHessian
from hessframe_transport.solver import sinkhorn_newton_sparse

from hessframe.errors import InvalidArgumentError
from hessframe.testing import assert_provider_matches_dense

REG = 0.05


def _negative_dual(potentials, a, b, M, reg):
    """−D(f, g) for the dual of min ⟨M, P⟩ + reg Σ P log P, written out independently."""
    n = a.shape[0]
    f, g = potentials[:n], potentials[n:]
    return -(f @ a + g @ b - reg * torch.exp((f[:, None] + g[None, :] - M) / reg).sum())


def _dense_hessian(f, g, a, b, M, reg) -> torch.Tensor:
    torch_args = [torch.as_tensor(x, dtype=torch.float64) for x in (a, b, M)]
    potentials = torch.cat([torch.as_tensor(f), torch.as_tensor(g)]).double()
    return torch.func.hessian(_negative_dual)(potentials, *torch_args, reg)


def _top_pattern(plan: np.ndarray, per_row: int, per_column: int) -> np.ndarray:
    """Boolean mask of the per_row largest entries of each row and per_column of each column."""
    values = torch.from_numpy(plan)
    mask = torch.zeros_like(values, dtype=torch.bool)
    rows = torch.topk(values, per_row, dim=1).indices
    mask[torch.arange(plan.shape[0])[:, None], rows] = True
    columns = torch.topk(values, per_column, dim=0).indices
    mask[columns, torch.arange(plan.shape[1])[None, :]] = True
    return mask.numpy()


@pytest.fixture
def solved(problem):
    plan, log = sinkhorn_newton_sparse(problem.a, problem.b, problem.M, REG, log=True)
    return problem, plan, log


def test_full_provider_matches_autodiff_hessian(solved):
    problem, plan, log = solved
    dense = _dense_hessian(log["f"], log["g"], problem.a, problem.b, problem.M, REG)
    provider = SparseDualHessian.full(plan, REG)
    assert provider.capabilities.exact
    assert_provider_matches_dense(provider, dense, rtol=1e-9)


def test_full_provider_away_from_optimum_matches_autodiff(problem):
    rng = np.random.default_rng(0)
    f = 0.02 * rng.normal(size=problem.a.shape)
    g = 0.02 * rng.normal(size=problem.b.shape)
    dense = _dense_hessian(f, g, problem.a, problem.b, problem.M, REG)
    provider = SparseDualHessian.from_potentials(f, g, problem.M, REG)
    assert_provider_matches_dense(provider, dense, rtol=1e-9)


@pytest.mark.parametrize("density", [0.15, 0.3])
def test_sparsified_provider_keeps_largest_entries(solved, density):
    problem, plan, log = solved
    n, m = plan.shape
    per_row = int(np.ceil(density * m))
    per_column = int(np.ceil(density * n))
    dense = _dense_hessian(log["f"], log["g"], problem.a, problem.b, problem.M, REG)
    mask = torch.from_numpy(_top_pattern(plan, per_row, per_column))
    expected = dense.clone()
    expected[:n, n:] = torch.where(mask, dense[:n, n:], 0.0)
    expected[n:, :n] = torch.where(mask.T, dense[n:, :n], 0.0)

    provider = SparseDualHessian(plan, REG, density=density)

    assert not provider.capabilities.exact
    assert provider.nnz == int(mask.sum())
    assert provider.dropped_mass == pytest.approx(plan[~mask.numpy()].sum(), rel=1e-12)
    assert_provider_matches_dense(provider, expected, rtol=1e-9)


def test_sparsified_diagonal_stays_exact(solved):
    _, plan, _ = solved
    provider = SparseDualHessian(plan, REG, density=0.1)
    expected = np.concatenate([plan.sum(axis=1), plan.sum(axis=0)]) / REG
    assert np.abs(provider.diagonal().numpy() - expected).max() < 1e-12 * expected.max()


def test_full_provider_null_direction_is_one_minus_one(solved):
    _, plan, _ = solved
    n, m = plan.shape
    provider = SparseDualHessian.full(plan, REG)
    direction = torch.cat([torch.ones(n), -torch.ones(m)]).double()
    product = provider.matvec(direction)
    assert product.abs().max().item() < 1e-12 * provider.diagonal().max().item()


def test_sparsified_provider_is_positive_semidefinite(solved):
    _, plan, _ = solved
    provider = SparseDualHessian(plan, REG, density=0.1)
    eigenvalues = torch.linalg.eigvalsh(provider.to_dense())
    assert eigenvalues.min().item() > -1e-10 * eigenvalues.max().item()


def test_float32_torch_plan_gives_float32_provider(solved):
    problem, plan, log = solved
    provider = SparseDualHessian(torch.tensor(plan, dtype=torch.float32), REG)
    dense = _dense_hessian(log["f"], log["g"], problem.a, problem.b, problem.M, REG)
    assert provider.dtype == torch.float32
    assert_provider_matches_dense(
        provider, dense, rtol=1e-5, checks=("matvec", "matmat", "to_dense")
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"plan": np.array([1.0, 2.0])}, "plan must be a non-empty 2-D array"),
        ({"plan": -np.ones((2, 2))}, "plan must be finite and non-negative"),
        ({"reg": 0.0}, "reg must be a finite positive number"),
        ({"density": 0.0}, "density must lie in"),
        ({"density": 2.0}, "density must lie in"),
    ],
)
def test_invalid_provider_input_is_rejected(kwargs, match):
    arguments = {"plan": np.full((3, 2), 1 / 6), "reg": 0.1}
    density = kwargs.pop("density", 1.0)
    arguments.update(kwargs)
    with pytest.raises(InvalidArgumentError, match=match):
        SparseDualHessian(arguments["plan"], arguments["reg"], density=density)


def test_plugin_registers_provider_datasets_and_commands():
    import click
    from hessframe_transport import plugin

    from hessframe.plugins import PluginManager

    manager = PluginManager(autoload=False, builtins=False)
    manager.register(plugin, "transport")

    record, owner = manager.provider_records()["transport-sparse-dual-hessian"]
    assert owner == "transport"
    assert record.kind == "predicted"
    provider = manager.create_provider("transport-sparse-dual-hessian", np.full((3, 2), 1 / 6), 0.1)
    assert isinstance(provider, SparseDualHessian)

    datasets = manager.dataset_records()
    images = datasets["transport-digit-images"][0].loader()
    assert images["source"].shape == (28, 28)
    assert images["source"].min() >= 0
    points, weights = datasets["transport-digit-points"][0].loader()["target"]
    assert points.shape == (weights.shape[0], 2)
    assert np.all(weights > 0)

    cli = click.Group("hessframe")
    manager.add_commands(cli)
    assert "transport" in cli.commands


def test_solve_rejects_zero_damping_naming_null_direction(solved):
    _, plan, _ = solved
    provider = SparseDualHessian.full(plan, REG)
    b = torch.ones(provider.size, dtype=torch.float64)
    with pytest.raises(InvalidArgumentError, match=r"damping must be positive.*\(1, -1\)"):
        provider.solve(b, damping=0.0)


def test_solve_with_damping_matches_dense(solved):
    _, plan, _ = solved
    provider = SparseDualHessian.full(plan, REG)
    damping = 1e-3 * provider.diagonal().max().item()
    b = torch.linspace(-1.0, 1.0, provider.size, dtype=torch.float64)
    result = provider.solve(b, damping=damping, tol=1e-12)
    dense = provider.to_dense() + damping * torch.eye(provider.size, dtype=torch.float64)
    assert result.converged
    assert torch.allclose(result.x, torch.linalg.solve(dense, b), rtol=1e-6, atol=1e-9)
