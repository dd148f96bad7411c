"""Hessian-vector products by central differences of a gradient function.

For a gradient function g = ∇f, a point x and a direction v, the provider returns

    H v ≈ (g(x + h·v) − g(x − h·v)) / (2h).

Taylor expansion of g around x cancels the even terms, so the truncation error
is (h²/6)·∇⁴f(x)[v, v, v] + O(h⁴), while rounding in the two gradients adds an
error of about eps·‖g‖/h. The two balance at h ∝ eps^(1/3), which gives an
error of order eps^(2/3) relative to the scale of the problem. This is the
standard analysis of finite-difference derivatives in Nocedal & Wright,
*Numerical Optimization*, 2nd ed. (Springer, 2006), chapter 8.

Step rule used when no ``step`` is given::

    h = eps^(1/3) · max(1, ‖x‖₂) / ‖v‖₂

with eps the machine epsilon of the provider's dtype, so the perturbation h·v
always has 2-norm eps^(1/3)·max(1, ‖x‖₂): about 6.1e-6 relative to x in float64
and 4.9e-3 in float32. Because h scales with 1/‖v‖, the product is homogeneous:
H(α v) is α times H v up to rounding.

The provider suits black boxes that return gradients only, for example a
quantum-chemistry program, and a ``torch.nn.Module`` whose parameters are
perturbed in place (:meth:`FiniteDifferenceHessian.from_module`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch

from hessframe.curvature.base import DEFAULT_MAX_DENSE_SIZE, Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError, NondeterministicModelError

logger = logging.getLogger(__name__)

GradFn = Callable[[Any], Any]

_PLUS_LABEL = "x + h·v"
_MINUS_LABEL = "x - h·v"


class FiniteDifferenceHessian(CurvatureProvider):
    """Hessian of a function known through its gradient, by central differences.

    ``grad_fn`` takes one flat vector and returns the gradient there. The type
    of ``x`` decides what it receives and returns: tensors when ``x`` is a
    ``torch.Tensor``, arrays when ``x`` is a ``numpy.ndarray``. Numpy
    arrays are converted at the boundary, so the provider's own interface is
    torch in both cases. The array passed to a numpy ``grad_fn`` has the numpy
    dtype of the provider's dtype (float64 for torch.float64), and the
    gradient it returns is converted to the provider's dtype.

    Each product costs two gradient calls at x ± h·v (see the module docstring
    for the step h). After those calls, also when one of them raises,
    ``restore`` is called, so a black box that keeps state between calls (a
    calculator's positions, a wavefunction guess) can be put back.

    Args:
        grad_fn: Gradient of the objective, a callable of one flat vector of
            length n that returns a vector of length n.
        x: The point, a 1-D floating-point ``torch.Tensor`` or
            ``numpy.ndarray`` with at least one element. It is copied, so the
            caller's array is never modified.
        step: Fixed step h > 0 used for every direction, in place of the rule
            in the module docstring.
        dtype: Floating-point torch dtype of the provider; defaults to the
            dtype of ``x``, which is converted to it.
        device: Device of the provider; defaults to the device of ``x`` (the
            CPU for numpy arrays).
        restore: Callable with no arguments, called after the two gradient
            calls of each product, also when one of them raises.

    Raises:
        InvalidArgumentError: ``grad_fn`` or ``restore`` is not callable,
            ``x`` is not a finite 1-D floating-point tensor or array, ``dtype``
            is not a floating-point torch dtype, or ``step`` is not a finite
            positive number.
    """

    kind = "finite-difference"

    def __init__(
        self,
        grad_fn: GradFn,
        x: torch.Tensor | np.ndarray,
        *,
        step: float | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        restore: Callable[[], None] | None = None,
    ) -> None:
        if not callable(grad_fn):
            raise InvalidArgumentError(
                f"grad_fn must be a callable that returns the gradient at a flat vector, "
                f"got {type(grad_fn).__name__}"
            )
        if restore is not None and not callable(restore):
            raise InvalidArgumentError(
                "restore must be a callable with no arguments or None, "
                f"got {type(restore).__name__}"
            )
        self._numpy_grad = isinstance(x, np.ndarray)
        point = _copy_point(x, dtype, device)
        if self._numpy_grad and point.dtype == torch.bfloat16:
            raise InvalidArgumentError(
                "dtype torch.bfloat16 has no numpy equivalent, so a numpy grad_fn cannot "
                "receive it; use torch.float32 or torch.float64"
            )
        super().__init__(point.numel(), point.dtype, point.device)

        self._grad_fn = grad_fn
        self._restore = restore
        self._x = point
        self._x_norm = float(torch.linalg.vector_norm(point))
        self._step = _check_step(step)

    @classmethod
    def from_module(
        cls,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        data: Any,
        *,
        params: Iterable[torch.nn.Parameter | str] | None = None,
        step: float | None = None,
    ) -> FiniteDifferenceHessian:
        """Build the provider for the mean loss of a model over a data set.

        The objective is the mean loss over all samples,

            L(θ) = Σ_b n_b · loss_fn(model(X_b), y_b) / Σ_b n_b,

        where ``loss_fn`` returns the mean over a batch of n_b samples
        (``X_b.shape[0]``). Its gradient with respect to the flattened
        parameters θ comes from autograd, and the Hessian from central
        differences of that gradient. The parameters are perturbed in place.
        After every product, also when a forward or backward pass raises, the
        parameters and every buffer (for example batch-norm running statistics)
        are put back to the values they had before that product, bit for bit.

        The Hessian is taken at the values ``params`` had when this method was
        called, even if the model is trained further in between. Parameters
        outside ``params`` and the buffers keep their current values during a
        product, so build a new provider after changing them.

        The model must be deterministic. Dropout in training mode draws new
        masks in every gradient call, which makes the differences meaningless,
        so it is rejected: call ``model.eval()`` first. Batch norm in training
        mode is accepted, because with fixed batches its batch statistics are a
        deterministic function of the parameters, and its running statistics
        are restored after every product. The batches are kept in a list, so a one-shot
        iterator works and the data is held in memory.

        Args:
            model: The network.
            loss_fn: Callable ``loss_fn(outputs, targets)`` returning the mean
                loss over the batch as a 0-d tensor.
            data: One batch ``(inputs, targets)`` of two tensors, or an
                iterable of such batches (a list, a ``DataLoader``).
            params: Parameters to differentiate, as ``Parameter`` objects of
                ``model`` or their names from ``model.named_parameters()``;
                defaults to every parameter with ``requires_grad``. They are
                flattened in the order given.
            step: Fixed step h, as in the constructor.

        Returns:
            A provider of size Σ numel over ``params``, with their dtype and device.

        Raises:
            NondeterministicModelError: ``model`` has dropout in training mode.
            InvalidArgumentError: ``model`` is not a module, ``loss_fn`` is not
                callable, ``data`` contains no batch of (inputs, targets), or
                ``params`` is empty, names something that is not a parameter
                of ``model``, repeats one, or mixes dtypes or devices.
        """
        if not isinstance(model, torch.nn.Module):
            raise InvalidArgumentError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not callable(loss_fn):
            raise InvalidArgumentError(
                f"loss_fn must be a callable loss_fn(outputs, targets), "
                f"got {type(loss_fn).__name__}"
            )
        _reject_active_dropout(model)
        batches = _collect_batches(data)
        parameters = _select_parameters(model, params)
        state = _ModuleState(model, parameters)
        objective = _MeanLossGradient(model, loss_fn, batches, parameters)

        def grad_fn(point: torch.Tensor) -> torch.Tensor:
            state.load_parameters(point)
            return objective()

        x = torch.cat([p.detach().reshape(-1) for p in parameters])
        return cls(grad_fn, x, step=step, restore=state.restore)

    # ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """Inexact, possibly indefinite, first derivatives only, no stored matrix."""
        return Capabilities(
            exact=False,
            positive_semidefinite=False,
            needs_double_backward=False,
            dense_available=False,
            gpu=self.device.type == "cuda",
        )

    @property
    def point(self) -> torch.Tensor:
        """A copy of the point x at which H is taken, as a torch tensor."""
        return self._x.clone()

    def step_size(self, v: torch.Tensor) -> float:
        """Return the step h used for direction ``v``.

        Args:
            v: A nonzero flat vector of length ``size``.

        Returns:
            ``step`` when one was given, otherwise
            eps^(1/3)·max(1, ‖x‖₂)/‖v‖₂ with eps the machine epsilon of ``dtype``.

        Raises:
            InvalidArgumentError: ``v`` has the wrong shape, dtype or device,
                or is zero.
        """
        self.check_vector(v, "v")
        v_norm = float(torch.linalg.vector_norm(v))
        if v_norm == 0.0:
            raise InvalidArgumentError("v must be nonzero to have a step size, got a zero vector")
        return self._step_for_norm(v_norm)

    def _step_for_norm(self, v_norm: float) -> float:
        if self._step is not None:
            return self._step
        eps = torch.finfo(self.dtype).eps
        return eps ** (1.0 / 3.0) * max(1.0, self._x_norm) / v_norm

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        if not bool(torch.isfinite(v).all()):
            raise InvalidArgumentError("v contains NaN or infinite values; pass a finite direction")
        # With the automatic step only the direction of v matters, so v is
        # scaled to a largest entry of 1 first: its norm can then neither
        # underflow (entries near 1e-300) nor overflow (entries near 1e200).
        scale = float(v.abs().max()) if self._step is None else 1.0
        if scale == 0.0:
            return torch.zeros_like(v)
        direction = v / scale
        direction_norm = float(torch.linalg.vector_norm(direction))
        if direction_norm == 0.0:
            return torch.zeros_like(v)
        h = self._step_for_norm(direction_norm)

        try:
            grad_plus = self._gradient(self._x + h * direction, _PLUS_LABEL, h)
            grad_minus = self._gradient(self._x - h * direction, _MINUS_LABEL, h)
        finally:
            if self._restore is not None:
                self._restore()

        return (grad_plus - grad_minus) * (scale / (2.0 * h))

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int = 256
    ) -> torch.Tensor:
        """Build H column by column from 2n gradient calls and symmetrise it.

        Column j is the central difference along the unit vector e_j, so the
        raw matrix M costs two gradient calls per column. Rounding and
        truncation errors make M slightly asymmetric, and the result is
        (M + Mᵀ)/2, which is symmetric exactly.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Accepted for the signature of
                :meth:`CurvatureProvider.to_dense`. It has no effect, because
                every column takes its own two gradient calls.

        Returns:
            The symmetrised dense (n, n) matrix.

        Raises:
            InvalidArgumentError: n is larger than ``max_size`` or ``chunk_size`` < 1.
            NonFiniteError: A gradient came out NaN or infinite.
        """
        self.check_dense_arguments(max_size, chunk_size)
        logger.debug("building a %dx%d finite-difference Hessian", self.size, self.size)

        columns = []
        for j in range(self.size):
            unit = torch.zeros(self.size, dtype=self.dtype, device=self.device)
            unit[j] = 1.0
            columns.append(self._matvec(unit))
        raw = torch.stack(columns, dim=1)
        return (raw + raw.T) / 2.0

    # ------------------------------------------------------------------

    def _gradient(self, point: torch.Tensor, label: str, h: float) -> torch.Tensor:
        """Call ``grad_fn`` at ``point`` and check the result."""
        where = f"gradient at {label} (h={h:.3g})"
        if self._numpy_grad:
            raw = self._grad_fn(point.detach().cpu().numpy())
            grad = self._numpy_to_tensor(raw, where)
        else:
            raw = self._grad_fn(point)
            grad = self._check_tensor_gradient(raw, where)
        return self.check_finite(grad, where)

    def _numpy_to_tensor(self, raw: Any, where: str) -> torch.Tensor:
        array = np.asarray(raw)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise InvalidArgumentError(
                f"grad_fn must return a real numpy array; the {where} has dtype {array.dtype}"
            )
        if array.shape != (self.size,):
            raise InvalidArgumentError(
                f"grad_fn must return an array of shape ({self.size},) like x; "
                f"the {where} has shape {array.shape}"
            )
        return torch.as_tensor(array).to(dtype=self.dtype, device=self.device)

    def _check_tensor_gradient(self, raw: Any, where: str) -> torch.Tensor:
        if not isinstance(raw, torch.Tensor):
            raise InvalidArgumentError(
                f"grad_fn must return a torch.Tensor because x is one; "
                f"the {where} is a {type(raw).__name__}"
            )
        if tuple(raw.shape) != (self.size,):
            raise InvalidArgumentError(
                f"grad_fn must return a tensor of shape ({self.size},) like x; "
                f"the {where} has shape {tuple(raw.shape)}"
            )
        if raw.dtype.is_complex or raw.dtype == torch.bool:
            raise InvalidArgumentError(
                f"grad_fn must return a real tensor; the {where} has dtype {raw.dtype}"
            )
        return raw.detach().to(dtype=self.dtype, device=self.device)


# ----------------------------------------------------------------------
# Argument checks


def _copy_point(
    x: Any, dtype: torch.dtype | None, device: torch.device | str | None
) -> torch.Tensor:
    """Return a private torch copy of ``x`` after checking it."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidArgumentError(
                f"x must be a floating-point array (float32 or float64), got dtype {x.dtype}"
            )
        tensor = torch.from_numpy(np.array(x, copy=True))
    elif isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise InvalidArgumentError(
                f"x must be a floating-point tensor (float32 or float64), got dtype {x.dtype}"
            )
        tensor = x.detach().clone()
    else:
        raise InvalidArgumentError(
            f"x must be a 1-D torch.Tensor (for a torch grad_fn) or numpy.ndarray "
            f"(for a numpy grad_fn), got {type(x).__name__}"
        )

    if tensor.ndim != 1 or tensor.numel() == 0:
        raise InvalidArgumentError(
            f"x must be a flat vector with at least one element, got shape {tuple(tensor.shape)}"
        )
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise InvalidArgumentError(
            f"dtype must be a floating-point torch dtype (torch.float32 or torch.float64), "
            f"got {dtype!r}"
        )
    tensor = tensor.to(dtype=dtype or tensor.dtype, device=device or tensor.device)
    if not bool(torch.isfinite(tensor).all()):
        raise InvalidArgumentError("x contains NaN or infinite values; pass a finite point")
    return tensor


def _check_step(step: Any) -> float | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int | float):
        raise InvalidArgumentError(
            f"step must be a positive number or None (for the automatic step), "
            f"got {type(step).__name__}"
        )
    if not math.isfinite(step) or step <= 0:
        raise InvalidArgumentError(
            f"step must be a finite positive number or None (for the automatic step), got {step}"
        )
    return float(step)


# ----------------------------------------------------------------------
# The objective of from_module


def _collect_batches(data: Any) -> list[tuple[Any, Any]]:
    """Return the batches of ``data`` as a list of (inputs, targets) pairs."""
    if _is_batch(data):
        return [(data[0], data[1])]
    try:
        batches = list(data)
    except TypeError:
        raise InvalidArgumentError(
            f"data must be one batch (inputs, targets) of tensors or an iterable of such "
            f"batches, got {type(data).__name__}"
        ) from None
    if not batches:
        raise InvalidArgumentError("data must contain at least one batch, got an empty iterable")
    for index, batch in enumerate(batches):
        if not _is_batch(batch):
            raise InvalidArgumentError(
                f"data must contain batches (inputs, targets) of two tensors; "
                f"batch {index} is a {type(batch).__name__}"
            )
        if batch[0].shape[0] == 0:
            raise InvalidArgumentError(f"data: batch {index} has no samples")
    return [(batch[0], batch[1]) for batch in batches]


def _is_batch(candidate: Any) -> bool:
    return (
        isinstance(candidate, tuple | list)
        and len(candidate) == 2
        and all(isinstance(item, torch.Tensor) for item in candidate)
        and candidate[0].ndim >= 1
    )


def _select_parameters(
    model: torch.nn.Module, params: Iterable[torch.nn.Parameter | str] | None
) -> list[torch.nn.Parameter]:
    named = dict(model.named_parameters())
    if params is None:
        selected = [p for p in named.values() if p.requires_grad]
    else:
        by_id = {id(p): p for p in named.values()}
        selected = []
        for item in params:
            if isinstance(item, str):
                if item not in named:
                    raise InvalidArgumentError(
                        f"params: {item!r} is not a parameter name of the model; "
                        f"names are {sorted(named)}"
                    )
                selected.append(named[item])
            elif isinstance(item, torch.Tensor) and id(item) in by_id:
                selected.append(by_id[id(item)])
            else:
                raise InvalidArgumentError(
                    "params must contain parameters of the model or their names from "
                    f"model.named_parameters(), got a {type(item).__name__} that is neither"
                )

    if not selected:
        raise InvalidArgumentError("params: the model has no parameters to differentiate")
    if len({id(p) for p in selected}) != len(selected):
        raise InvalidArgumentError("params must not contain the same parameter twice")
    dtypes = {p.dtype for p in selected}
    devices = {p.device for p in selected}
    if len(dtypes) != 1 or len(devices) != 1 or not selected[0].dtype.is_floating_point:
        raise InvalidArgumentError(
            f"params must share one floating-point dtype and one device, "
            f"got dtypes {sorted(map(str, dtypes))} on devices {sorted(map(str, devices))}"
        )
    return selected


class _ModuleState:
    """Parameters and buffers of a module, saved before a product and put back after it."""

    def __init__(self, model: torch.nn.Module, parameters: Sequence[torch.nn.Parameter]) -> None:
        self._model = model
        self._parameters = list(parameters)
        self._saved_parameters: list[torch.Tensor] | None = None
        self._saved_buffers: list[tuple[torch.nn.Module, str, torch.Tensor, torch.Tensor]] = []

    def load_parameters(self, point: torch.Tensor) -> None:
        """Save the state unless it is saved already, then copy ``point`` into the parameters."""
        if self._saved_parameters is None:
            self._save()
        with torch.no_grad():
            offset = 0
            for parameter in self._parameters:
                count = parameter.numel()
                parameter.copy_(point[offset : offset + count].view_as(parameter))
                offset += count

    def _save(self) -> None:
        self._saved_parameters = [p.detach().clone() for p in self._parameters]
        # A forward pass may replace a buffer object rather than update it, so
        # the owning module and attribute name are kept with the saved value.
        self._saved_buffers = [
            (module, name, buffer, buffer.detach().clone())
            for module in self._model.modules()
            for name, buffer in module._buffers.items()
            if buffer is not None
        ]

    def restore(self) -> None:
        """Put back the saved parameters and buffers, bit for bit, and forget them."""
        if self._saved_parameters is None:
            return
        with torch.no_grad():
            for parameter, saved in zip(self._parameters, self._saved_parameters, strict=True):
                parameter.copy_(saved)
            for module, name, original, saved in self._saved_buffers:
                module._buffers[name] = original
                original.copy_(saved)
        self._saved_parameters = None
        self._saved_buffers = []


class _MeanLossGradient:
    """Gradient of the sample-weighted mean loss over a list of batches."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[[Any, Any], torch.Tensor],
        batches: list[tuple[Any, Any]],
        parameters: Sequence[torch.nn.Parameter],
    ) -> None:
        self._model = model
        self._loss_fn = loss_fn
        self._batches = batches
        self._parameters = list(parameters)
        self._total_samples = sum(inputs.shape[0] for inputs, _ in batches)

    def __call__(self) -> torch.Tensor:
        total = [torch.zeros_like(p) for p in self._parameters]
        for inputs, targets in self._batches:
            weight = inputs.shape[0] / self._total_samples
            with torch.enable_grad():
                loss = self._loss_fn(self._model(inputs), targets)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise InvalidArgumentError(
                        "loss_fn must return the mean loss over the batch as a 0-d tensor, "
                        f"got {type(loss).__name__} of shape {tuple(getattr(loss, 'shape', ()))}"
                    )
                grads = torch.autograd.grad(loss.reshape(()), self._parameters, allow_unused=True)
            for accumulated, grad in zip(total, grads, strict=True):
                if grad is not None:
                    accumulated.add_(grad, alpha=weight)
        return torch.cat([g.reshape(-1) for g in total])


def _reject_active_dropout(model: torch.nn.Module) -> None:
    for name, module in model.named_modules():
        if module.training and isinstance(module, torch.nn.modules.dropout._DropoutNd):
            raise NondeterministicModelError(
                f"model is in training mode and its submodule {name or '(root)'!r} "
                f"({type(module).__name__}) draws a new random mask in every gradient call, "
                "so finite differences of the gradient are meaningless; call model.eval() first"
            )
