"""The parallel scan equals the sequential recurrence and differentiates correctly in every mode."""

from __future__ import annotations

import pytest
import torch
from hessframe_audio.scan import BLOCK, linear_recurrence, sequential_linear_recurrence

from hessframe.errors import InvalidArgumentError


def random_operands(shape, dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = 0.5 + 0.5 * torch.rand(shape, generator=generator, dtype=dtype)
    b = torch.randn(shape, generator=generator, dtype=dtype)
    initial = torch.randn(shape[:-1], generator=generator, dtype=dtype)
    return a, b, initial


@pytest.mark.parametrize("length", [1, 2, BLOCK - 1, BLOCK, BLOCK + 1, 5 * BLOCK + 3, 3000])
def test_scan_equals_sequential_loop(length):
    a, b, initial = random_operands((3, length))
    expected = sequential_linear_recurrence(a, b, initial)
    assert torch.allclose(linear_recurrence(a, b, initial), expected, rtol=1e-12, atol=1e-12)


def test_scan_handles_extra_batch_axes_and_float32():
    a, b, initial = random_operands((2, 3, 700), dtype=torch.float32)
    expected = sequential_linear_recurrence(a.double(), b.double(), initial.double())
    assert torch.allclose(linear_recurrence(a, b, initial).double(), expected, atol=1e-4)


def test_scan_default_initial_state_is_zero():
    a, b, _ = random_operands((2, 100))
    expected = sequential_linear_recurrence(a, b, torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(linear_recurrence(a, b), expected)


def test_scan_gradient_matches_finite_differences():
    a, b, initial = (t.requires_grad_(True) for t in random_operands((2, 70)))
    assert torch.autograd.gradcheck(linear_recurrence, (a, b, initial))


def test_scan_second_derivatives_match_finite_differences():
    a, b, initial = (t.requires_grad_(True) for t in random_operands((2, 40)))
    assert torch.autograd.gradgradcheck(linear_recurrence, (a, b, initial))


def test_scan_forward_mode_matches_finite_differences():
    a, b, initial = (t.requires_grad_(True) for t in random_operands((2, 40)))
    assert torch.autograd.gradcheck(
        linear_recurrence,
        (a, b, initial),
        check_forward_ad=True,
        check_backward_ad=False,
        check_undefined_grad=False,
        check_batched_grad=False,
    )


def test_scan_hessian_by_vmap_equals_double_backward():
    a, b, initial = random_operands((2, 200))

    def objective(theta):
        y = linear_recurrence(a * torch.sigmoid(theta[0]), b * theta[1], initial * theta[2])
        return (y**2).sum()

    theta = torch.tensor([0.3, 0.7, -0.4], dtype=torch.float64)
    by_vmap = torch.func.hessian(objective)(theta)
    by_double_backward = torch.autograd.functional.hessian(objective, theta)
    assert torch.allclose(by_vmap, by_double_backward, rtol=1e-10)


def test_scan_rejects_mismatched_shapes():
    a, b, _ = random_operands((2, 10))
    with pytest.raises(InvalidArgumentError, match="b must have the shape"):
        linear_recurrence(a, b[:, :5])


def test_scan_rejects_empty_time_axis():
    with pytest.raises(InvalidArgumentError, match="non-empty last"):
        linear_recurrence(torch.ones(2, 0), torch.ones(2, 0))


def test_scan_rejects_wrong_initial_shape():
    a, b, _ = random_operands((2, 10))
    with pytest.raises(InvalidArgumentError, match="initial must be a tensor of shape"):
        linear_recurrence(a, b, torch.zeros(3, dtype=torch.float64))


def test_scan_rejects_integer_tensors():
    with pytest.raises(InvalidArgumentError, match="floating-point"):
        linear_recurrence(torch.ones(4, dtype=torch.int64), torch.ones(4, dtype=torch.int64))
