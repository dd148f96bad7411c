"""FiniteDifferenceHessian against torch.func Hessians, closed forms and SciPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import rosen_der, rosen_hess

from hessframe.curvature.finite_difference import FiniteDifferenceHessian
from hessframe.errors import InvalidArgumentError, NondeterministicModelError, NonFiniteError


def sin_times_square(x: torch.Tensor) -> torch.Tensor:
    """f(x) = Σ sin(x_i)·x_i², separable, with nonzero third and fourth derivatives."""
    return (torch.sin(x) * x**2).sum()


def fourth_derivative_of_sin_times_square(x: torch.Tensor) -> torch.Tensor:
    """d⁴/dx⁴ (x² sin x) = x² sin x − 8x cos x − 12 sin x, by the Leibniz rule."""
    return x**2 * torch.sin(x) - 8 * x * torch.cos(x) - 12 * torch.sin(x)


def coupled_objective(x: torch.Tensor) -> torch.Tensor:
    """A non-separable objective, so the Hessian has off-diagonal entries."""
    return sin_times_square(x) + 0.5 * (x[:-1] * x[1:]).sum() ** 2 + torch.exp(0.3 * x).sum()


def torch_gradient(objective):
    return torch.func.grad(objective)


@pytest.fixture
def point() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(7, generator=generator, dtype=torch.float64)


# ----------------------------------------------------------------------
# Accuracy


def test_dense_matches_torch_func_hessian_float64(point):
    truth = torch.func.hessian(coupled_objective)(point)
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point)

    dense = provider.to_dense()

    # With the automatic step h ≈ 6e-6·‖x‖ the error is of order eps^(2/3)·scale ≈ 1e-10·scale.
    scale = float(truth.abs().max())
    assert float((dense - truth).abs().max()) < 1e-8 * scale


def test_matvec_matches_torch_func_hessian_float64(point):
    truth = torch.func.hessian(coupled_objective)(point)
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point)
    v = torch.linspace(-1.0, 2.0, point.numel(), dtype=torch.float64)

    product = provider.matvec(v)

    scale = float((truth.abs() @ v.abs()).max())
    assert float((product - truth @ v).abs().max()) < 1e-8 * scale


def test_float32_error_near_eps_two_thirds(point):
    truth = torch.func.hessian(coupled_objective)(point)
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point.float())

    dense = provider.to_dense()

    assert dense.dtype == torch.float32
    eps = torch.finfo(torch.float32).eps
    scale = float(truth.abs().max())
    assert float((dense.double() - truth).abs().max()) < 20 * eps ** (2 / 3) * scale


def test_error_matches_leading_truncation_term(point):
    # For a separable f the column of e_j has error (h²/6)·f''''(x_j) e_j + O(h⁴).
    truth = torch.func.hessian(sin_times_square)(point)
    fourth = fourth_derivative_of_sin_times_square(point)
    step = 1e-2
    provider = FiniteDifferenceHessian(torch_gradient(sin_times_square), point, step=step)

    error = provider.to_dense() - truth

    predicted_error = torch.diag(step**2 / 6 * fourth)
    assert float((error - predicted_error).abs().max()) < 1e-3 * float(predicted_error.abs().max())


def test_error_shrinks_quadratically_with_step(point):
    truth = torch.func.hessian(sin_times_square)(point)
    gradient = torch_gradient(sin_times_square)
    steps = [4e-2, 2e-2, 1e-2, 5e-3]

    errors = []
    for step in steps:
        dense = FiniteDifferenceHessian(gradient, point, step=step).to_dense()
        errors.append(float((dense - truth).abs().max()))

    for larger, smaller in itertools.pairwise(errors):
        assert 3.8 < larger / smaller < 4.2


def test_matvec_is_homogeneous_in_direction(point):
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point)
    v = torch.linspace(-1.0, 1.0, point.numel(), dtype=torch.float64)

    single = provider.matvec(v)
    scaled = provider.matvec(1000.0 * v)

    assert torch.allclose(scaled, 1000.0 * single, rtol=1e-12, atol=0.0)


def test_matmat_matches_columnwise_matvec(point):
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point)
    block = torch.randn(
        point.numel(), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )

    product = provider.matmat(block)

    for column in range(3):
        assert torch.equal(product[:, column], provider.matvec(block[:, column]))


def test_zero_direction_gives_zero_without_gradient_calls(point):
    calls = []

    def gradient(y):
        calls.append(1)
        return torch_gradient(coupled_objective)(y)

    provider = FiniteDifferenceHessian(gradient, point)

    product = provider.matvec(torch.zeros_like(point))

    assert torch.equal(product, torch.zeros_like(point))
    assert calls == []


def test_dense_is_exactly_symmetric(point):
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point.float())

    dense = provider.to_dense()

    assert torch.equal(dense, dense.T)


def test_dense_takes_two_gradient_calls_per_column(point):
    calls = []

    def gradient(y):
        calls.append(1)
        return torch_gradient(coupled_objective)(y)

    FiniteDifferenceHessian(gradient, point).to_dense()

    assert len(calls) == 2 * point.numel()


def test_automatic_step_follows_documented_rule():
    x = torch.tensor([3.0, 4.0], dtype=torch.float64)
    v = torch.tensor([0.0, 2.0], dtype=torch.float64)
    provider = FiniteDifferenceHessian(lambda y: y, x)

    eps = torch.finfo(torch.float64).eps
    assert provider.step_size(v) == pytest.approx(eps ** (1 / 3) * 5.0 / 2.0, rel=1e-12)
    small = FiniteDifferenceHessian(lambda y: y, 0.1 * x.float())
    eps32 = torch.finfo(torch.float32).eps
    assert small.step_size(v.float()) == pytest.approx(eps32 ** (1 / 3) * 1.0 / 2.0, rel=1e-6)
    fixed = FiniteDifferenceHessian(lambda y: y, x, step=1e-3)
    assert fixed.step_size(v) == 1e-3


# ----------------------------------------------------------------------
# numpy gradient functions


def test_numpy_grad_fn_matches_scipy_rosen_hess():
    x = np.array([1.3, 0.7, 0.8, 1.9, 1.2, -0.4])
    truth = torch.from_numpy(rosen_hess(x))
    provider = FiniteDifferenceHessian(rosen_der, x)

    dense = provider.to_dense()
    v = torch.arange(1.0, 7.0, dtype=torch.float64)
    product = provider.matvec(v)

    assert provider.dtype == torch.float64
    scale = float(truth.abs().max())
    assert float((dense - truth).abs().max()) < 1e-8 * scale
    assert float((product - truth @ v).abs().max()) < 1e-8 * float((truth.abs() @ v).max())


def test_numpy_grad_fn_receives_arrays_of_provider_dtype():
    received = []

    def gradient(y):
        received.append((type(y), y.dtype))
        return rosen_der(y)

    x = np.array([1.0, 0.5, -0.3], dtype=np.float32)
    provider = FiniteDifferenceHessian(gradient, x)
    product = provider.matvec(torch.ones(3))

    assert provider.dtype == torch.float32
    assert product.dtype == torch.float32
    assert set(received) == {(np.ndarray, np.dtype(np.float32))}


def test_caller_point_is_never_modified():
    def destructive_gradient(y):
        grad = rosen_der(y)
        y *= 100.0  # a careless black box that overwrites its input
        return grad

    x = np.array([1.3, 0.7, 0.8])
    before = x.copy()
    provider = FiniteDifferenceHessian(destructive_gradient, x)
    first = provider.to_dense()
    second = provider.to_dense()

    assert np.array_equal(x, before)
    assert torch.equal(first, second)
    assert np.array_equal(provider.point.numpy(), before)


def test_torch_caller_point_is_never_modified(point):
    def destructive_gradient(y):
        grad = torch_gradient(coupled_objective)(y)
        y.mul_(100.0)
        return grad

    before = point.clone()
    provider = FiniteDifferenceHessian(destructive_gradient, point)
    provider.to_dense()
    point.add_(1.0)  # changing the caller's tensor afterwards does not move the provider

    assert torch.equal(provider.point, before)


def test_restore_runs_after_each_product_and_after_errors(point):
    restores = []
    calls = []

    def gradient(y):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("black box failed")
        return torch_gradient(coupled_objective)(y)

    provider = FiniteDifferenceHessian(gradient, point, restore=lambda: restores.append(1))
    provider.matvec(torch.ones_like(point))
    with pytest.raises(RuntimeError, match="black box failed"):
        provider.matvec(torch.ones_like(point))

    assert len(restores) == 2


# ----------------------------------------------------------------------
# Modules


class TanhNetwork(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(3, 4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.out = torch.nn.Linear(4, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.norm(self.hidden(inputs))))


def make_regression_problem():
    torch.manual_seed(3)
    model = TanhNetwork().double().eval()
    inputs = torch.randn(8, 3, dtype=torch.float64)
    targets = torch.randn(8, 2, dtype=torch.float64)
    batches = [(inputs[:3], targets[:3]), (inputs[3:], targets[3:])]
    return model, inputs, targets, batches


def module_hessian_truth(model, inputs, targets) -> torch.Tensor:
    """Dense Hessian of the mean squared error over all samples, by torch.func."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = dict(model.named_buffers())

    def loss(theta):
        pieces = torch.split(theta, [s.numel() for s in shapes])
        params = {n: piece.view(s) for n, piece, s in zip(names, pieces, shapes, strict=True)}
        outputs = torch.func.functional_call(model, (params, buffers), (inputs,))
        return torch.nn.functional.mse_loss(outputs, targets)

    return torch.func.hessian(loss)(flat)


def module_state(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def test_from_module_matches_torch_func_hessian_over_batches():
    model, inputs, targets, batches = make_regression_problem()
    truth = module_hessian_truth(model, inputs, targets)

    provider = FiniteDifferenceHessian.from_module(model, torch.nn.functional.mse_loss, batches)
    dense = provider.to_dense()

    assert provider.size == sum(p.numel() for p in model.parameters())
    scale = float(truth.abs().max())
    assert float((dense - truth).abs().max()) < 1e-7 * scale


def test_from_module_single_batch_and_named_params():
    model, inputs, targets, _ = make_regression_problem()
    truth = module_hessian_truth(model, inputs, targets)
    count = model.out.weight.numel()
    start = sum(p.numel() for p in model.parameters()) - count - model.out.bias.numel()

    provider = FiniteDifferenceHessian.from_module(
        model, torch.nn.functional.mse_loss, (inputs, targets), params=["out.weight"]
    )
    dense = provider.to_dense()

    block = truth[start : start + count, start : start + count]
    assert float((dense - block).abs().max()) < 1e-7 * float(block.abs().max())


def test_from_module_restores_state_after_normal_use():
    model, _, _, batches = make_regression_problem()
    model.train()  # batch norm updates its running statistics in every forward pass
    before = module_state(model)

    provider = FiniteDifferenceHessian.from_module(model, torch.nn.functional.mse_loss, batches)
    provider.matvec(torch.ones(provider.size, dtype=torch.float64))
    provider.to_dense()

    after = module_state(model)
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert all(p.grad is None for p in model.parameters())


def test_from_module_restores_state_when_loss_raises_midway():
    model, _, _, batches = make_regression_problem()
    model.train()
    before = module_state(model)
    calls = []

    def failing_loss(outputs, targets):
        calls.append(1)
        if len(calls) == 3:  # second batch of the x + h·v gradient, parameters perturbed
            raise RuntimeError("loss failed on call 3")
        return torch.nn.functional.mse_loss(outputs, targets)

    provider = FiniteDifferenceHessian.from_module(model, failing_loss, batches)
    with pytest.raises(RuntimeError, match="call 3"):
        provider.matvec(torch.ones(provider.size, dtype=torch.float64))

    after = module_state(model)
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def test_from_module_rejects_bad_arguments():
    model, inputs, targets, batches = make_regression_problem()
    loss = torch.nn.functional.mse_loss

    with pytest.raises(InvalidArgumentError, match="model"):
        FiniteDifferenceHessian.from_module(lambda z: z, loss, batches)
    with pytest.raises(InvalidArgumentError, match="loss_fn"):
        FiniteDifferenceHessian.from_module(model, "mse", batches)
    with pytest.raises(InvalidArgumentError, match="data"):
        FiniteDifferenceHessian.from_module(model, loss, [])
    with pytest.raises(InvalidArgumentError, match="data"):
        FiniteDifferenceHessian.from_module(model, loss, [inputs])
    with pytest.raises(InvalidArgumentError, match="params"):
        FiniteDifferenceHessian.from_module(model, loss, batches, params=["missing.weight"])
    with pytest.raises(InvalidArgumentError, match="params"):
        FiniteDifferenceHessian.from_module(
            model, loss, batches, params=[torch.nn.Parameter(torch.ones(2))]
        )
    with pytest.raises(InvalidArgumentError, match="params"):
        FiniteDifferenceHessian.from_module(model, loss, batches, params=["out.bias", "out.bias"])
    with pytest.raises(InvalidArgumentError, match="loss_fn"):
        provider = FiniteDifferenceHessian.from_module(
            model, lambda o, t: (o - t) ** 2, (inputs, targets)
        )
        provider.matvec(torch.ones(provider.size, dtype=torch.float64))


# ----------------------------------------------------------------------
# Bad input and capabilities


def test_rejects_bad_point_step_and_grad_fn(point):
    gradient = torch_gradient(coupled_objective)

    with pytest.raises(InvalidArgumentError, match="x must be a flat vector"):
        FiniteDifferenceHessian(gradient, point.reshape(7, 1))
    with pytest.raises(InvalidArgumentError, match="x must be a floating-point"):
        FiniteDifferenceHessian(gradient, torch.arange(3))
    with pytest.raises(InvalidArgumentError, match="x must be a floating-point"):
        FiniteDifferenceHessian(rosen_der, np.arange(3))
    with pytest.raises(InvalidArgumentError, match=r"x must be a 1-D torch\.Tensor"):
        FiniteDifferenceHessian(gradient, [1.0, 2.0])
    with pytest.raises(InvalidArgumentError, match="x contains NaN"):
        FiniteDifferenceHessian(gradient, torch.tensor([1.0, float("nan")]))
    with pytest.raises(InvalidArgumentError, match="grad_fn must be a callable"):
        FiniteDifferenceHessian(None, point)
    with pytest.raises(InvalidArgumentError, match="dtype"):
        FiniteDifferenceHessian(gradient, point, dtype=torch.int64)
    with pytest.raises(InvalidArgumentError, match="bfloat16"):
        FiniteDifferenceHessian(rosen_der, np.ones(3), dtype=torch.bfloat16)
    for step in (0.0, -1e-3, float("nan"), float("inf"), "1e-3"):
        with pytest.raises(InvalidArgumentError, match="step"):
            FiniteDifferenceHessian(gradient, point, step=step)


def test_rejects_gradient_of_wrong_shape_or_type(point):
    ones = torch.ones_like(point)

    wrong_shape = FiniteDifferenceHessian(lambda y: y[:-1], point)
    with pytest.raises(InvalidArgumentError, match=r"grad_fn must return a tensor of shape \(7,\)"):
        wrong_shape.matvec(ones)
    wrong_type = FiniteDifferenceHessian(lambda y: y.numpy(), point)
    with pytest.raises(InvalidArgumentError, match=r"grad_fn must return a torch\.Tensor"):
        wrong_type.matvec(ones)
    numpy_shape = FiniteDifferenceHessian(lambda y: np.zeros((3, 2)), np.ones(3))
    with pytest.raises(InvalidArgumentError, match=r"shape \(3,\)"):
        numpy_shape.matvec(torch.ones(3, dtype=torch.float64))


def test_non_finite_gradient_names_the_point(point):
    def gradient(y):
        grad = torch_gradient(coupled_objective)(y)
        if y[0] > point[0]:
            grad[0] = float("nan")
        return grad

    provider = FiniteDifferenceHessian(gradient, point)
    with pytest.raises(NonFiniteError, match=r"gradient at x \+ h·v"):
        provider.matvec(torch.ones_like(point))
    with pytest.raises(NonFiniteError, match=r"gradient at x - h·v"):
        provider.matvec(-torch.ones_like(point))


def test_rejects_bad_direction(point):
    provider = FiniteDifferenceHessian(torch_gradient(coupled_objective), point)

    with pytest.raises(InvalidArgumentError, match="v must have shape"):
        provider.matvec(torch.ones(3, dtype=torch.float64))
    with pytest.raises(InvalidArgumentError, match="v has dtype"):
        provider.matvec(torch.ones(7))
    with pytest.raises(InvalidArgumentError, match="v contains NaN"):
        provider.matvec(torch.full((7,), float("nan"), dtype=torch.float64))


def test_capabilities_state_inexact_indefinite_first_order():
    provider = FiniteDifferenceHessian(lambda y: y, torch.ones(3))

    capabilities = provider.capabilities

    assert provider.kind == "finite-difference"
    assert capabilities.exact is False
    assert capabilities.positive_semidefinite is False
    assert capabilities.needs_double_backward is False
    assert capabilities.dense_available is False
    assert capabilities.gpu is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_provider_matches_cpu(point):
    gradient = torch_gradient(coupled_objective)
    on_cpu = FiniteDifferenceHessian(gradient, point).to_dense()

    provider = FiniteDifferenceHessian(gradient, point, device="cuda")
    numpy_provider = FiniteDifferenceHessian(rosen_der, point.numpy(), device="cuda")

    assert provider.capabilities.gpu is True
    torch.testing.assert_close(provider.to_dense().cpu(), on_cpu, rtol=1e-8, atol=1e-10)
    numpy_dense = numpy_provider.to_dense()
    assert numpy_dense.device.type == "cuda"
    truth = torch.from_numpy(rosen_hess(point.numpy()))
    assert float((numpy_dense.cpu() - truth).abs().max()) < 1e-8 * float(truth.abs().max())


# ----------------------------------------------------------------------
# The shared cases of tests/cases.py


def test_shared_case_matches_dense(hessian_case, provider_checker):
    provider = FiniteDifferenceHessian(hessian_case.gradient, hessian_case.x)

    # diagonal, trace, eigsh and solve are the base-class defaults built on
    # matvec, and each costs n more products, so they are left to other tests.
    provider_checker(
        provider, hessian_case.dense, rtol=1e-7, checks=("matvec", "matmat", "to_dense")
    )


def test_shared_module_case_from_loader_matches_dense(module_case, provider_checker):
    before = module_state(module_case.model)

    provider = FiniteDifferenceHessian.from_module(
        module_case.model, module_case.loss_fn, module_case.loader
    )
    provider_checker(
        provider, module_case.dense, rtol=1e-7, checks=("matvec", "matmat", "to_dense")
    )

    after = module_state(module_case.model)
    for name, value in before.items():
        assert torch.equal(after[name], value), name


def test_from_module_keeps_later_parameter_changes():
    model, inputs, targets, batches = make_regression_problem()
    truth = module_hessian_truth(model, inputs, targets)
    provider = FiniteDifferenceHessian.from_module(model, torch.nn.functional.mse_loss, batches)
    with torch.no_grad():
        model.out.bias.add_(1.0)  # a training step taken after building the provider
    changed = module_state(model)
    v = torch.linspace(-1.0, 1.0, provider.size, dtype=torch.float64)

    product = provider.matvec(v)

    after = module_state(model)
    for name, value in changed.items():
        assert torch.equal(after[name], value), name
    scale = float((truth.abs() @ v.abs()).max())
    assert float((product - truth @ v).abs().max()) < 1e-7 * scale


def test_from_module_rejects_dropout_in_training_mode():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.Linear(4, 2)
    ).double()
    batch = (torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,)))
    with pytest.raises(NondeterministicModelError, match=r"submodule '1' \(Dropout\).*model\.eval"):
        FiniteDifferenceHessian.from_module(model.train(), torch.nn.functional.cross_entropy, batch)
    provider = FiniteDifferenceHessian.from_module(
        model.eval(), torch.nn.functional.cross_entropy, batch
    )
    assert provider.size == 3 * 4 + 4 + 4 * 2 + 2


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e200])
def test_matvec_exact_at_extreme_vector_scales(scale):
    matrix = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    provider = FiniteDifferenceHessian(lambda x: matrix @ x, torch.zeros(2, dtype=torch.float64))
    v = torch.tensor([1.0, -2.0], dtype=torch.float64) * scale
    product = provider.matvec(v)
    expected = matrix @ v
    assert torch.allclose(product, expected, rtol=1e-6, atol=0.0)
    assert product.abs().min() > 0
