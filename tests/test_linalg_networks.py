"""The linear algebra on autodiff Hessians of small networks, against their dense Hessians."""

from __future__ import annotations

import torch
from cases import HessianCase

from hessframe.linalg import conjugate_gradient, hutchpp_trace, lanczos, spectral_density


def test_lanczos_top_eigenvalues_of_network_hessian(module_case: HessianCase) -> None:
    provider = module_case.provider()
    result = lanczos(provider, k=2, tol=1e-8, generator=torch.Generator().manual_seed(0))

    expected = torch.linalg.eigvalsh(module_case.dense).flip(0)[:2]
    assert result.converged
    torch.testing.assert_close(result.eigenvalues, expected, atol=1e-7, rtol=0)


def test_lanczos_smallest_eigenvalue_of_network_hessian(module_case: HessianCase) -> None:
    provider = module_case.provider()
    result = lanczos(
        provider, k=1, which="smallest", tol=1e-8, generator=torch.Generator().manual_seed(0)
    )

    expected = torch.linalg.eigvalsh(module_case.dense)[0]
    assert result.converged
    assert abs(float(result.eigenvalues[0]) - float(expected)) < 1e-7


def test_hutchpp_trace_of_network_hessian(module_case: HessianCase) -> None:
    provider = module_case.provider()
    exact = float(torch.trace(module_case.dense))

    def mean_error(budget: int) -> float:
        errors = [
            abs(
                hutchpp_trace(provider, budget, generator=torch.Generator().manual_seed(seed)).value
                - exact
            )
            for seed in range(8)
        ]
        return sum(errors) / len(errors)

    small, large = mean_error(6), mean_error(24)
    assert large < small / 2
    # A sketch as wide as n spans the whole space, so the trace is exact.
    assert mean_error(3 * module_case.size) < 1e-8 * max(1.0, abs(exact))


def test_slq_first_moment_of_network_hessian(module_case: HessianCase) -> None:
    provider = module_case.provider()
    exact = float(torch.linalg.eigvalsh(module_case.dense).mean())

    def mean_error(num_probes: int) -> float:
        errors = []
        for seed in range(4):
            result = spectral_density(
                provider,
                num_probes=num_probes,
                num_steps=8,
                generator=torch.Generator().manual_seed(seed),
            )
            first_moment = float(torch.trapezoid(result.grid * result.density, result.grid))
            errors.append(abs(first_moment - exact))
        return sum(errors) / len(errors)

    assert mean_error(32) < mean_error(2) / 2.5


def test_cg_damped_solve_with_network_hessian(module_case: HessianCase) -> None:
    provider = module_case.provider()
    dense = module_case.dense
    damping = 1.0 + max(0.0, -float(torch.linalg.eigvalsh(dense)[0]))
    b = torch.ones(module_case.size, dtype=dense.dtype)
    result = conjugate_gradient(provider, b, damping=damping, tol=1e-10)

    identity = torch.eye(module_case.size, dtype=dense.dtype)
    assert result.converged
    torch.testing.assert_close(result.x, torch.linalg.solve(dense + damping * identity, b))
