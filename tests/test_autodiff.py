"""Tests of AutodiffHessian against dense float64 Hessians and closed forms."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from cases import DTYPE, HessianCase, build_case
from torch import nn

import hessframe.linalg
from hessframe.curvature import AutodiffHessian
from hessframe.curvature.autodiff import FORWARD_OVER_REVERSE, REVERSE_OVER_REVERSE
from hessframe.errors import InvalidArgumentError, NondeterministicModelError, NonFiniteError

# ----------------------------------------------------------------------
# Every operation against the dense truth


def test_autodiff_matches_dense_hessian(hessian_case: HessianCase, provider_checker) -> None:
    provider = hessian_case.provider()

    errors = provider_checker(provider, hessian_case.dense, rtol=1e-10)

    for operation in ("matvec", "matmat", "to_dense", "diagonal", "trace"):
        assert operation in errors
    if hasattr(hessframe.linalg, "lanczos"):
        assert "eigsh" in errors
    if hasattr(hessframe.linalg, "conjugate_gradient"):
        assert "solve" in errors


def test_dense_truth_matches_closed_form(closed_form_case: HessianCase) -> None:
    closed_form = closed_form_case.closed_form

    assert torch.allclose(closed_form_case.dense, closed_form, rtol=1e-12, atol=1e-12)
    assert torch.allclose(
        closed_form_case.provider().to_dense(), closed_form, rtol=1e-12, atol=1e-12
    )


def test_to_dense_is_exactly_symmetric(hessian_case: HessianCase) -> None:
    dense = hessian_case.provider().to_dense()

    assert torch.equal(dense, dense.T)


def test_to_dense_in_chunks_matches_dense(hessian_case: HessianCase) -> None:
    # Three or more chunks, the last one shorter than the others.
    chunk_size = hessian_case.size // 3 + 1
    provider = hessian_case.provider(dense_chunk_size=chunk_size)

    dense = provider.to_dense()

    assert torch.allclose(dense, hessian_case.dense, rtol=1e-10, atol=1e-12)


def test_forward_and_reverse_modes_agree(hessian_case: HessianCase) -> None:
    forward = hessian_case.provider(mode=FORWARD_OVER_REVERSE)
    reverse = hessian_case.provider(mode=REVERSE_OVER_REVERSE)
    v = torch.randn(hessian_case.size, generator=torch.Generator().manual_seed(5), dtype=DTYPE)

    assert torch.allclose(forward.to_dense(), reverse.to_dense(), rtol=1e-10, atol=1e-12)
    assert torch.allclose(forward.matvec(v), reverse.matvec(v), rtol=1e-10, atol=1e-12)
    assert forward.active_mode == FORWARD_OVER_REVERSE
    assert reverse.active_mode == REVERSE_OVER_REVERSE


def test_both_modes_match_dense_hessian(hessian_case: HessianCase) -> None:
    v = torch.randn(hessian_case.size, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    truth = hessian_case.dense @ v

    for mode in (FORWARD_OVER_REVERSE, REVERSE_OVER_REVERSE):
        product = hessian_case.provider(mode=mode).matvec(v)

        assert torch.allclose(product, truth, rtol=1e-10, atol=1e-12), mode


def test_auto_mode_picks_working_strategy(hessian_case: HessianCase) -> None:
    v = torch.randn(hessian_case.size, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    provider = hessian_case.provider()
    assert provider.active_mode is None

    first = provider.matvec(v)
    second = provider.matvec(v)

    assert provider.active_mode in (FORWARD_OVER_REVERSE, REVERSE_OVER_REVERSE)
    assert torch.allclose(first, hessian_case.dense @ v, rtol=1e-10, atol=1e-12)
    assert torch.allclose(second, hessian_case.dense @ v, rtol=1e-10, atol=1e-12)


def test_auto_mode_keeps_reverse_on_cpu(caplog: pytest.LogCaptureFixture) -> None:
    case = build_case("mlp")
    v = torch.ones(case.size, dtype=DTYPE)
    provider = case.provider()

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        product = provider.matvec(v)

    assert provider.active_mode == REVERSE_OVER_REVERSE
    assert torch.allclose(product, case.dense @ v, rtol=1e-10, atol=1e-12)
    choices = [r.getMessage() for r in caplog.records if "agree" in r.getMessage()]
    assert len(choices) == 1
    assert "using reverse-over-reverse" in choices[0]


def test_auto_mode_repeats_bit_for_bit(module_case: HessianCase) -> None:
    v = torch.randn(module_case.size, generator=torch.Generator().manual_seed(4), dtype=DTYPE)

    first = module_case.provider().matvec(v)
    second = module_case.provider().matvec(v)

    assert torch.equal(first, second)


def _cube_without_double_backward(x: torch.Tensor) -> torch.Tensor:
    return _CubeWithoutDoubleBackward.apply(x).sum()


def test_auto_mode_keeps_forward_when_reverse_disagrees(
    caplog: pytest.LogCaptureFixture,
) -> None:
    x = torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE)
    truth = torch.diag(6 * x)
    # The once_differentiable backward cuts the graph of the gradient, so
    # reverse-over-reverse products come out zero without an error.
    reverse = AutodiffHessian(_cube_without_double_backward, x, mode=REVERSE_OVER_REVERSE)
    assert torch.equal(reverse.to_dense(), torch.zeros(3, 3, dtype=DTYPE))
    provider = AutodiffHessian(_cube_without_double_backward, x)

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        dense = provider.to_dense()

    assert provider.active_mode == FORWARD_OVER_REVERSE
    assert torch.allclose(dense, truth, rtol=1e-12)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "using forward-over-reverse" in warnings[0].getMessage()


def test_value_and_gradient_match_objective(hessian_case: HessianCase) -> None:
    provider = hessian_case.provider()

    want_value = hessian_case.objective(hessian_case.x)
    want_gradient = hessian_case.gradient(hessian_case.x)

    assert torch.allclose(provider.value, want_value, rtol=1e-12)
    assert torch.allclose(provider.gradient, want_gradient, rtol=1e-10, atol=1e-14)


def test_capabilities_state_exact_indefinite_cpu() -> None:
    capabilities = build_case("quadratic").provider().capabilities

    assert capabilities.exact
    assert not capabilities.positive_semidefinite
    assert capabilities.needs_double_backward
    assert not capabilities.dense_available
    assert not capabilities.gpu


# ----------------------------------------------------------------------
# The fallback to reverse-over-reverse and to a loop over columns


def _pairwise_energy_with_cdist(x: torch.Tensor) -> torch.Tensor:
    points = x.view(4, 2)
    anchors = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.5]], dtype=x.dtype)
    return torch.cdist(points, anchors).pow(3).sum()


def _pairwise_energy_elementwise(x: torch.Tensor) -> torch.Tensor:
    points = x.view(4, 2)
    anchors = torch.tensor([[0.0, 0.0], [1.0, 0.5], [-0.5, 1.5]], dtype=x.dtype)
    distances = (points[:, None, :] - anchors[None, :, :]).pow(2).sum(-1).sqrt()
    return distances.pow(3).sum()


def test_cdist_has_no_forward_mode_derivative() -> None:
    x = torch.linspace(-1.0, 2.0, 8, dtype=DTYPE)
    provider = AutodiffHessian(_pairwise_energy_with_cdist, x, mode=FORWARD_OVER_REVERSE)

    with pytest.raises(NotImplementedError, match="forward AD"):
        provider.matvec(torch.ones(8, dtype=DTYPE))


def test_auto_mode_falls_back_to_reverse_for_cdist(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.linspace(-1.0, 2.0, 8, dtype=DTYPE)
    truth = torch.func.hessian(_pairwise_energy_elementwise)(x)
    provider = AutodiffHessian(_pairwise_energy_with_cdist, x)

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        dense = provider.to_dense()
        v = torch.arange(8, dtype=DTYPE)
        product = provider.matvec(v)

    assert provider.active_mode == REVERSE_OVER_REVERSE
    assert torch.allclose(dense, truth, rtol=1e-10, atol=1e-12)
    assert torch.allclose(product, truth @ v, rtol=1e-10, atol=1e-12)
    fallback_logs = [r for r in caplog.records if "using reverse-over-reverse" in r.getMessage()]
    assert len(fallback_logs) == 1


class _CubeWithoutJvp(torch.autograd.Function):
    """x³ with a backward formula but no forward-mode (jvp) formula."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output


class _CubeWithoutDoubleBackward(torch.autograd.Function):
    """x³ with a jvp formula and a backward formula that cannot be differentiated again."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * tangent


class _SquareWithoutBackward(torch.autograd.Function):
    """x² with a jvp formula and a backward that raises NotImplementedError."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**2

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("_SquareWithoutBackward has no backward formula")

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2 * x * tangent


class _CubeWithSquareInBackward(torch.autograd.Function):
    """x³ whose backward 3 x² g uses x² without a backward, so it has no second derivative."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * _SquareWithoutBackward.apply(x) * grad_output

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * tangent


def test_auto_mode_falls_back_to_forward(
    caplog: pytest.LogCaptureFixture,
) -> None:
    x = torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE)
    reverse = AutodiffHessian(
        lambda point: _CubeWithSquareInBackward.apply(point).sum(), x, mode=REVERSE_OVER_REVERSE
    )
    with pytest.raises(NotImplementedError, match="no backward formula"):
        reverse.matvec(torch.ones(3, dtype=DTYPE))
    provider = AutodiffHessian(lambda point: _CubeWithSquareInBackward.apply(point).sum(), x)

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        dense = provider.to_dense()

    assert provider.active_mode == FORWARD_OVER_REVERSE
    assert torch.allclose(dense, torch.diag(6 * x), rtol=1e-12)
    fallback_logs = [r for r in caplog.records if "using forward-over-reverse" in r.getMessage()]
    assert len(fallback_logs) == 1


class _CubeWithoutVmap(torch.autograd.Function):
    """x³ with backward and jvp formulas but no vmap rule."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * grad_output

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * tangent


def test_auto_mode_falls_back_for_function_without_jvp() -> None:
    x = torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE)
    provider = AutodiffHessian(lambda point: _CubeWithoutJvp.apply(point).sum(), x)

    dense = provider.to_dense()

    assert provider.active_mode == REVERSE_OVER_REVERSE
    assert torch.allclose(dense, torch.diag(6 * x), rtol=1e-12)


def test_matmat_loops_when_vmap_fails(caplog: pytest.LogCaptureFixture) -> None:
    x = torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE)
    provider = AutodiffHessian(
        lambda point: _CubeWithoutVmap.apply(point).sum(), x, mode=FORWARD_OVER_REVERSE
    )
    block = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 3.0]], dtype=DTYPE)

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        product = provider.matmat(block)

    assert provider.active_mode == FORWARD_OVER_REVERSE
    assert torch.allclose(product, torch.diag(6 * x) @ block, rtol=1e-12)
    assert any("one at a time" in record.getMessage() for record in caplog.records)


# ----------------------------------------------------------------------
# Models and data


def _mlp_and_data(seed: int = 7) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DTYPE)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=DTYPE))
    inputs = torch.randn(11, 3, generator=generator, dtype=DTYPE)
    targets = torch.randint(0, 2, (11,), generator=generator)
    return model, inputs, targets


def _full_data_hessian(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    names = [name for name, _ in model.named_parameters()]
    shapes = [parameter.shape for parameter in model.parameters()]
    sizes = [parameter.numel() for parameter in model.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        parameters = {
            name: piece.view(shape)
            for name, piece, shape in zip(names, pieces, shapes, strict=True)
        }
        outputs = torch.func.functional_call(model, parameters, (inputs,))
        return nn.functional.cross_entropy(outputs, targets)

    flat = torch.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])
    return torch.func.hessian(loss)(flat)


def test_unequal_batches_weighted_by_size() -> None:
    model, inputs, targets = _mlp_and_data()
    batches = [(inputs[:2], targets[:2]), (inputs[2:], targets[2:])]
    truth = _full_data_hessian(model, inputs, targets)

    dense = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), batches).to_dense()

    assert torch.allclose(dense, truth, rtol=1e-10, atol=1e-12)


def test_unweighted_batch_mean_differs_from_truth() -> None:
    # Shows that the weighting test above can fail: a plain mean over batches is wrong.
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)
    first = _full_data_hessian(model, inputs[:2], targets[:2])
    second = _full_data_hessian(model, inputs[2:], targets[2:])

    unweighted = (first + second) / 2

    assert (unweighted - truth).abs().max() > 1e-3


def test_single_batch_tuple_is_accepted() -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)

    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))

    assert provider.num_samples == 11
    assert torch.allclose(provider.to_dense(), truth, rtol=1e-10, atol=1e-12)


def test_generator_data_serves_every_product() -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)
    batches = ((inputs[i : i + 4], targets[i : i + 4]) for i in range(0, 11, 4))

    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), batches)
    v = torch.ones(provider.size, dtype=DTYPE)

    assert torch.allclose(provider.matvec(v), truth @ v, rtol=1e-10, atol=1e-12)
    assert torch.allclose(provider.matvec(2 * v), truth @ (2 * v), rtol=1e-10, atol=1e-12)


def test_parameter_subset_is_block_of_full_hessian() -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)
    # Parameters in order: 0.weight (12), 0.bias (4), 2.weight (8), 2.bias (2).
    last_layer = slice(16, 26)

    provider = AutodiffHessian.from_module(
        model, nn.CrossEntropyLoss(), (inputs, targets), params=["2.weight", "2.bias"]
    )

    assert provider.parameter_names == ("2.weight", "2.bias")
    assert torch.allclose(
        provider.to_dense(), truth[last_layer, last_layer], rtol=1e-10, atol=1e-12
    )


def test_unflatten_restores_parameter_shapes(module_case: HessianCase) -> None:
    provider = module_case.provider()

    parameters = provider.unflatten(provider.x)

    for name, parameter in module_case.model.named_parameters():
        assert torch.equal(parameters[name], parameter.detach())


def test_flat_parameters_match_model(module_case: HessianCase) -> None:
    provider = module_case.provider()

    assert torch.equal(provider.x, module_case.x)
    assert provider.num_samples == len(module_case.loader.dataset)


# ----------------------------------------------------------------------
# Kept gradient graphs


class _CountingData:
    """Batches of a list, counting how often they are read."""

    def __init__(self, batches: list) -> None:
        self.batches = batches
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        return iter(self.batches)


def _two_batch_provider(**options) -> tuple[AutodiffHessian, _CountingData, torch.Tensor]:
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)
    data = _CountingData([(inputs[:5], targets[:5]), (inputs[5:], targets[5:])])
    provider = AutodiffHessian.from_module(
        model, nn.CrossEntropyLoss(), data, mode=REVERSE_OVER_REVERSE, **options
    )
    return provider, data, truth


def test_default_keeps_graphs_within_budget() -> None:
    provider, data, truth = _two_batch_provider()
    v = torch.ones(provider.size, dtype=DTYPE)
    assert not provider.retain_graph

    provider.matvec(v)
    passes_after_first = data.passes
    products = [provider.matvec(k * v) for k in (1.0, 2.0)]

    assert provider.retain_graph
    assert provider.num_kept_graphs == 2
    assert data.passes == passes_after_first
    for k, product in zip((1.0, 2.0), products, strict=True):
        assert torch.allclose(product, truth @ (k * v), rtol=1e-10, atol=1e-12)


def test_default_keeps_first_graph_beyond_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hessframe.curvature.autodiff._KEPT_GRAPH_BYTES", 0)
    provider, data, truth = _two_batch_provider()
    v = torch.ones(provider.size, dtype=DTYPE)

    provider.matvec(v)
    passes_after_first = data.passes
    product = provider.matvec(v)

    assert provider.num_kept_graphs == 1
    assert data.passes == passes_after_first + 1
    assert torch.allclose(product, truth @ v, rtol=1e-10, atol=1e-12)


def test_function_graph_kept_by_default() -> None:
    case = build_case("logistic")
    provider = case.provider(mode=REVERSE_OVER_REVERSE)
    v = torch.ones(case.size, dtype=DTYPE)

    products = [provider.matvec(v) for _ in range(2)]

    assert provider.num_kept_graphs == 1
    for product in products:
        assert torch.allclose(product, case.dense @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("retain_graph", [True, False])
def test_kept_and_rebuilt_graphs_match_dense(retain_graph: bool) -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _full_data_hessian(model, inputs, targets)
    data = _CountingData([(inputs[i : i + 4], targets[i : i + 4]) for i in range(0, 11, 4)])
    provider = AutodiffHessian.from_module(
        model,
        nn.CrossEntropyLoss(),
        data,
        mode=REVERSE_OVER_REVERSE,
        retain_graph=retain_graph,
    )
    passes_to_build = data.passes
    generator = torch.Generator().manual_seed(3)
    vectors = [torch.randn(provider.size, generator=generator, dtype=DTYPE) for _ in range(3)]

    products = [provider.matvec(v) for v in vectors]
    dense = provider.to_dense()

    for v, product in zip(vectors, products, strict=True):
        assert torch.allclose(product, truth @ v, rtol=1e-10, atol=1e-12)
    assert torch.allclose(dense, truth, rtol=1e-10, atol=1e-12)
    # Kept graphs need the data once; rebuilt ones read it for every product.
    expected_passes = 1 if retain_graph else len(vectors) + 1
    assert data.passes - passes_to_build == expected_passes


def test_invalid_retain_graph_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="retain_graph must be True, False or None"):
        AutodiffHessian(lambda x: x.sum(), torch.ones(2, dtype=DTYPE), retain_graph="yes")


# ----------------------------------------------------------------------
# Inputs are never modified


def test_caller_x_is_copied_and_unchanged() -> None:
    case = build_case("quadratic")
    x = case.x.clone()
    provider = AutodiffHessian(case.objective, x)

    provider.to_dense()
    provider.matvec(torch.ones(case.size, dtype=DTYPE))

    assert torch.equal(x, case.x)
    x.add_(1.0)
    assert torch.equal(provider.x, case.x)


def test_model_parameters_unchanged_by_products() -> None:
    model, inputs, targets = _mlp_and_data()
    before = [parameter.detach().clone() for parameter in model.parameters()]
    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))

    provider.to_dense()

    for parameter, original in zip(model.parameters(), before, strict=True):
        assert torch.equal(parameter, original)
        assert parameter.grad is None


# ----------------------------------------------------------------------
# Bad input


def test_non_scalar_func_output_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"func .*shape \(3,\)"):
        AutodiffHessian(lambda x: x**2, torch.ones(3, dtype=DTYPE))


def test_non_tensor_func_output_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="func must return a 0-d floating tensor"):
        AutodiffHessian(lambda x: 1.0, torch.ones(3, dtype=DTYPE))


def test_non_callable_func_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="func must be a callable"):
        AutodiffHessian("x**2", torch.ones(3, dtype=DTYPE))


def test_integer_x_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="x must have a floating-point dtype"):
        AutodiffHessian(lambda x: x.sum(), torch.arange(3))


def test_non_tensor_x_rejected() -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"x must be a flat floating-point torch\.Tensor"
    ):
        AutodiffHessian(lambda x: x.sum(), [1.0, 2.0])


def test_matrix_x_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match=r"x must be a non-empty flat tensor.*\(2, 2\)"):
        AutodiffHessian(lambda x: x.sum(), torch.ones(2, 2, dtype=DTYPE))


def test_unknown_mode_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="mode must be one of"):
        AutodiffHessian(lambda x: x.sum(), torch.ones(2, dtype=DTYPE), mode="reverse")


def test_invalid_dense_chunk_size_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="dense_chunk_size must be a positive integer"):
        AutodiffHessian(lambda x: x.sum(), torch.ones(2, dtype=DTYPE), dense_chunk_size=0)


def test_infinite_gradient_names_step() -> None:
    with pytest.raises(NonFiniteError, match="gradient of func at x"):
        AutodiffHessian(lambda x: x.sqrt().sum(), torch.zeros(3, dtype=DTYPE))


@pytest.mark.parametrize("mode", [FORWARD_OVER_REVERSE, REVERSE_OVER_REVERSE])
def test_non_finite_product_names_step(mode: str) -> None:
    # |x|^1.5 has gradient 0 but an infinite second derivative at 0.
    provider = AutodiffHessian(
        lambda x: x.abs().pow(1.5).sum(), torch.zeros(3, dtype=DTYPE), mode=mode
    )

    with pytest.raises(NonFiniteError, match="Hessian-vector product of func at x"):
        provider.matvec(torch.ones(3, dtype=DTYPE))


def test_non_finite_product_names_batch() -> None:
    # Batch 3 has zero inputs and targets, where |w·0 − 0|^1.5 has an infinite curvature.
    model = nn.Linear(1, 1, bias=False).to(DTYPE)
    inputs = torch.tensor([[1.0], [2.0], [-1.0], [0.0]], dtype=DTYPE)
    targets = torch.tensor([[0.5], [0.1], [0.3], [0.0]], dtype=DTYPE)
    batches = [(inputs[i : i + 1], targets[i : i + 1]) for i in range(4)]

    def loss_fn(outputs: torch.Tensor, batch_targets: torch.Tensor) -> torch.Tensor:
        return (outputs - batch_targets).abs().pow(1.5).mean()

    provider = AutodiffHessian.from_module(model, loss_fn, batches)

    with pytest.raises(NonFiniteError, match="Hessian-vector product on batch 3"):
        provider.matvec(torch.ones(1, dtype=DTYPE))


def test_non_scalar_loss_names_loss_fn() -> None:
    model, inputs, targets = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match=r"loss_fn .*shape \(11,\)"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(reduction="none"), (inputs, targets))


def test_empty_data_rejected() -> None:
    model, _, _ = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match="data is empty"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), [])


def test_batch_that_is_not_a_pair_rejected() -> None:
    model, inputs, targets = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match=r"data: batch 1 must be an \(inputs, targets\)"):
        AutodiffHessian.from_module(
            model, nn.CrossEntropyLoss(), [(inputs, targets), (inputs, targets, targets)]
        )


def test_mismatched_batch_sizes_rejected() -> None:
    model, inputs, targets = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match="batch 0 has 11 inputs but 5 targets"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), [(inputs, targets[:5])])


def test_data_that_changes_between_passes_rejected() -> None:
    model, inputs, targets = _mlp_and_data()

    class ShrinkingData:
        """Yields one sample fewer on every pass."""

        def __init__(self) -> None:
            self.count = 11

        def __iter__(self):
            self.count -= 1
            yield inputs[: self.count], targets[: self.count]

    with pytest.raises(InvalidArgumentError, match="must yield the same samples on every pass"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), ShrinkingData())


def test_unknown_parameter_name_rejected() -> None:
    model, inputs, targets = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match=r"params names unknown parameter\(s\)"):
        AutodiffHessian.from_module(
            model, nn.CrossEntropyLoss(), (inputs, targets), params=["3.weight"]
        )


def test_non_module_model_rejected() -> None:
    _, inputs, targets = _mlp_and_data()

    with pytest.raises(InvalidArgumentError, match=r"model must be a torch\.nn\.Module"):
        AutodiffHessian.from_module(lambda x: x, nn.CrossEntropyLoss(), (inputs, targets))


@pytest.mark.parametrize(
    "layer", [nn.Dropout(0.5), nn.BatchNorm1d(4)], ids=["dropout", "batch-norm"]
)
def test_training_mode_random_layer_rejected(layer: nn.Module) -> None:
    _, inputs, targets = _mlp_and_data()
    model = nn.Sequential(nn.Linear(3, 4), layer, nn.Tanh(), nn.Linear(4, 2)).to(DTYPE).train()

    with pytest.raises(NondeterministicModelError, match=r"call model\.eval\(\)"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))


def test_eval_mode_dropout_model_accepted() -> None:
    _, inputs, targets = _mlp_and_data()
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Tanh(), nn.Linear(4, 2))
    model = model.to(DTYPE).eval()
    plain = nn.Sequential(model[0], model[2], model[3])

    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))

    truth = _full_data_hessian(plain, inputs, targets)
    assert torch.allclose(provider.to_dense(), truth, rtol=1e-10, atol=1e-12)


class _NoisyLinear(nn.Linear):
    """A linear layer that adds fresh Gaussian noise on every call, in any mode."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        output = super().forward(inputs)
        return output + 0.1 * torch.randn_like(output)


def test_random_forward_rejected_by_repeated_evaluation() -> None:
    _, inputs, targets = _mlp_and_data()
    model = nn.Sequential(_NoisyLinear(3, 2)).to(DTYPE).eval()

    with pytest.raises(NondeterministicModelError, match="different outputs for the same batch"):
        AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))


def test_determinism_check_can_be_turned_off() -> None:
    _, inputs, targets = _mlp_and_data()
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.0)).to(DTYPE).train()

    provider = AutodiffHessian.from_module(
        model, nn.CrossEntropyLoss(), (inputs, targets), check_determinism=False
    )

    assert provider.size == 8


# ----------------------------------------------------------------------
# CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_provider_matches_cpu_dense(module_case: HessianCase, provider_checker) -> None:
    model = copy.deepcopy(module_case.model).cuda()

    provider = AutodiffHessian.from_module(model, module_case.loss_fn, module_case.loader)

    assert provider.device.type == "cuda"
    assert provider.capabilities.gpu
    provider_checker(provider, module_case.dense.cuda(), rtol=1e-10)


# ----------------------------------------------------------------------
# Dense matrix by vectorised forward-over-reverse


def _reverse_over_reverse_truth(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Return the full-data Hessian by jacrev of jacrev, a route to_dense does not take."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [parameter.shape for parameter in model.parameters()]
    sizes = [parameter.numel() for parameter in model.parameters()]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(flat, sizes)
        parameters = {
            name: piece.view(shape)
            for name, piece, shape in zip(names, pieces, shapes, strict=True)
        }
        outputs = torch.func.functional_call(model, parameters, (inputs,))
        return nn.functional.cross_entropy(outputs, targets)

    flat = torch.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])
    return torch.func.jacrev(torch.func.jacrev(loss))(flat)


def test_to_dense_sums_weighted_batches() -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _reverse_over_reverse_truth(model, inputs, targets)
    batches = [
        (inputs[:3], targets[:3]),
        (inputs[3:10], targets[3:10]),
        (inputs[10:], targets[10:]),
    ]
    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), batches)

    dense = provider.to_dense()

    assert torch.allclose(dense, truth, rtol=1e-10, atol=1e-12)
    assert torch.equal(dense, dense.T)


def test_to_dense_splits_block_over_memory_estimate(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model, inputs, targets = _mlp_and_data()
    truth = _reverse_over_reverse_truth(model, inputs, targets)
    provider = AutodiffHessian.from_module(model, nn.CrossEntropyLoss(), (inputs, targets))
    monkeypatch.setattr("hessframe.curvature.autodiff._DENSE_BLOCK_BYTES", 1)

    with caplog.at_level(logging.DEBUG, logger="hessframe.curvature.autodiff"):
        dense = provider.to_dense()

    assert torch.allclose(dense, truth, rtol=1e-10, atol=1e-12)
    assert any(" 1 columns per block" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("mode", ["auto", FORWARD_OVER_REVERSE])
def test_to_dense_falls_back_when_vmap_fails(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    x = torch.tensor([1.0, 2.0, -0.5], dtype=DTYPE)
    provider = AutodiffHessian(lambda point: _CubeWithoutVmap.apply(point).sum(), x, mode=mode)

    with caplog.at_level(logging.INFO, logger="hessframe.curvature.autodiff"):
        dense = provider.to_dense()

    assert torch.allclose(dense, torch.diag(6 * x), rtol=1e-12)
    messages = [record.getMessage() for record in caplog.records]
    assert any("vectorised forward-over-reverse Hessian failed" in m for m in messages)


def test_to_dense_non_finite_raises() -> None:
    # |x|^1.5 has gradient 0 but an infinite second derivative at 0.
    provider = AutodiffHessian(
        lambda x: x.abs().pow(1.5).sum(), torch.zeros(3, dtype=DTYPE), mode=FORWARD_OVER_REVERSE
    )

    with pytest.raises(NonFiniteError, match="dense Hessian"):
        provider.to_dense()
