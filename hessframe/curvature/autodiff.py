"""Exact Hessians of differentiable objectives by automatic differentiation.

A Hessian-vector product is the directional derivative of the gradient,

    H v = d/dr ∇f(x + r v) at r = 0,

which costs about as much as one gradient and is exact up to floating point
(Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation
6(1):147-160, 1994, doi:10.1162/neco.1994.6.1.147). PyTorch offers it two ways:

- forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``: the
  cheapest, and what ``torch.func.hessian`` uses;
- reverse-over-reverse, a second ``torch.autograd.grad`` through the graph of
  the first (``create_graph=True``), which uses Hᵀ = H.

PyTorch covers more operators in reverse mode than in forward mode, as the
``torch.func.hessian`` documentation warns. For example ``torch.cdist`` has no
forward-mode derivative in torch 2.14.

:class:`AutodiffHessian` uses the first and, in mode ``"auto"``, falls back to
the second the first time an operator lacks a forward-mode derivative.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hessframe.curvature.base import DEFAULT_MAX_DENSE_SIZE, Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError, NondeterministicModelError

logger = logging.getLogger(__name__)

# torch 2.14 scripts a helper of its forward-mode machinery on the first
# torch.func.jvp and warns that torch.jit.script is deprecated. The warning is
# about torch's own code, not the caller's, so it is silenced for that message only.
warnings.filterwarnings(
    "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
)

FORWARD_OVER_REVERSE = "forward-over-reverse"
REVERSE_OVER_REVERSE = "reverse-over-reverse"
MODES = ("auto", FORWARD_OVER_REVERSE, REVERSE_OVER_REVERSE)

#: Entries of one identity block (n × chunk) that the default dense chunk size aims for.
_DENSE_CHUNK_ENTRIES = 2**20

#: Errors that mean a differentiation strategy or vmap does not support an operator.
_UNSUPPORTED_ERRORS = (NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class _Term:
    """One summand w·f(x) of the objective: the whole function, or one batch of data.

    Attributes:
        label: Where the term comes from, as messages append it to the step that
            failed ("of func at x", "on batch 3").
        weight: w, the term's weight in the sum.
        objective: f, a function of the flat point returning a 0-d tensor.
    """

    label: str
    weight: float
    objective: Callable[[torch.Tensor], torch.Tensor]


class AutodiffHessian(CurvatureProvider):
    """The exact Hessian of a differentiable scalar function, by automatic differentiation.

    H = ∇²f(x) for ``func`` f mapping a flat tensor of length n to a 0-d
    tensor. The matrix is never formed unless :meth:`to_dense` is called.

    Args:
        func: The objective, a function of one flat tensor returning a 0-d
            floating tensor. It must be differentiable twice by PyTorch.
        x: The point, a flat floating tensor. It is detached and copied, so
            later changes to the caller's tensor do not affect H and the
            provider never modifies it.
        mode: ``"forward-over-reverse"`` (``torch.func.jvp`` of
            ``torch.func.grad``), ``"reverse-over-reverse"`` (double backward
            with ``torch.autograd``), or ``"auto"``: forward-over-reverse, and
            reverse-over-reverse from the first product on if forward mode
            fails with NotImplementedError or RuntimeError.
        dense_chunk_size: Identity columns multiplied at once by
            :meth:`to_dense`. Defaults to ``min(n, max(1, 2**20 // n))``,
            which keeps each block of columns and their products at about
            2**20 entries. Lower it when one product of the objective needs
            much memory, because a block costs that memory once per column.

    Raises:
        InvalidArgumentError: ``func`` is not callable, or returns something
            other than a 0-d floating tensor; ``x`` is not a non-empty flat
            floating tensor; ``mode`` or ``dense_chunk_size`` is invalid.
        NonFiniteError: The value or the gradient of ``func`` at ``x`` is NaN
            or infinite.
    """

    kind = "autodiff"

    def __init__(
        self,
        func: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        *,
        mode: str = "auto",
        dense_chunk_size: int | None = None,
    ) -> None:
        if not callable(func):
            raise InvalidArgumentError(
                f"func must be a callable mapping a flat tensor to a 0-d tensor, "
                f"got {type(func).__name__}"
            )
        point = _check_point(x)
        term = _Term("of func at x", 1.0, func)
        self._setup(point, mode, dense_chunk_size, terms=lambda: iter((term,)))
        self._value, self._gradient = _value_and_gradient(
            func, point, value_name="value of func at x", gradient_name="gradient of func at x"
        )

    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
        data: Iterable[tuple[torch.Tensor, torch.Tensor]] | tuple[torch.Tensor, torch.Tensor],
        *,
        params: Sequence[str] | None = None,
        check_determinism: bool = True,
        mode: str = "auto",
        dense_chunk_size: int | None = None,
    ) -> AutodiffHessian:
        """Build the Hessian of a model's mean loss over a data set w.r.t. its parameters.

        The objective is the mean loss over all N samples of ``data``,

            L(θ) = (1/N) Σ_b n_b · loss_fn(model(inputs_b; θ), targets_b),

        where batch b contains n_b samples. ``loss_fn`` must return the mean over
        its batch (as ``nn.CrossEntropyLoss()`` and ``nn.MSELoss()`` do by
        default), so that batches of unequal size are weighted by their size
        and L is the loss of the whole data set in one batch. The model is
        called through ``torch.func.functional_call`` with θ unflattened into
        its parameters, so the model itself is never modified. Products run
        batch by batch and add up, so their memory is bounded by one batch.

        Args:
            model: The network. Put it in evaluation mode (``model.eval()``)
                when it contains dropout or batch normalisation.
            loss_fn: ``loss_fn(outputs, targets)`` returning the batch mean as
                a 0-d tensor.
            data: A ``DataLoader`` or any iterable of ``(inputs, targets)``
                batches, or one ``(inputs, targets)`` tuple. ``inputs`` is
                passed to the model as its only argument and its first
                dimension counts the samples. A re-iterable (a list, a
                DataLoader) is iterated again for every product and must yield
                the same samples each time; a one-shot iterator (a generator)
                is read once into a list.
            params: Names (as in ``model.named_parameters()``) of the
                parameters θ to differentiate, in this order. Defaults to all
                parameters with ``requires_grad``, in the model's order.
                The others are held at their current values.
            check_determinism: Before building, reject a model that has
                dropout or batch normalisation in training mode, and
                evaluate the first batch twice and reject different outputs.
            mode: As for :class:`AutodiffHessian`.
            dense_chunk_size: As for :class:`AutodiffHessian`.

        Returns:
            The provider. Its ``x`` is the flat parameter vector θ, and
            :meth:`unflatten` turns any flat vector (an eigenvector, a
            Newton step) back into a dict of parameter-shaped tensors.

        Raises:
            InvalidArgumentError: ``model`` is not a module, ``loss_fn`` is not
                callable or returns something other than a 0-d tensor, ``data``
                is empty or holds a batch that is not an (inputs, targets) pair
                of tensors, ``params`` names an unknown or repeated parameter, or
                the parameters differ in dtype or device.
            NondeterministicModelError: ``check_determinism`` is on and the
                model's outputs are random.
            NonFiniteError: The loss or its gradient on some batch is NaN or
                infinite; the message names the batch.
        """
        if not isinstance(model, nn.Module):
            raise InvalidArgumentError(
                f"model must be a torch.nn.Module, got {type(model).__name__}"
            )
        if not callable(loss_fn):
            raise InvalidArgumentError(
                f"loss_fn must be a callable loss_fn(outputs, targets) returning the batch "
                f"mean, got {type(loss_fn).__name__}"
            )
        if check_determinism:
            _reject_random_layers(model)

        names, parameters = _select_parameters(model, params)
        point = torch.cat([parameter.detach().reshape(-1) for parameter in parameters]).clone()
        batches = _ModuleBatches(
            model, loss_fn, _normalise_data(data), names, parameters, point.device
        )
        if check_determinism:
            batches.reject_random_outputs(point)

        provider = cls.__new__(cls)
        provider._setup(point, mode, dense_chunk_size, terms=batches.terms)
        provider._value, provider._gradient = batches.mean_value_and_gradient(point)
        provider._batches = batches
        return provider

    def _setup(
        self,
        point: torch.Tensor,
        mode: str,
        dense_chunk_size: int | None,
        terms: Callable[[], Iterator[_Term]],
    ) -> None:
        if mode not in MODES:
            raise InvalidArgumentError(f"mode must be one of {MODES}, got {mode!r}")
        if dense_chunk_size is not None and (
            isinstance(dense_chunk_size, bool)
            or not isinstance(dense_chunk_size, int)
            or dense_chunk_size < 1
        ):
            raise InvalidArgumentError(
                f"dense_chunk_size must be a positive integer or None, got {dense_chunk_size!r}"
            )
        super().__init__(point.numel(), point.dtype, point.device)

        self._point = point
        self._terms = terms
        self._batches: _ModuleBatches | None = None
        self.mode = mode
        # The strategy in use: fixed by ``mode``, or by the first product when "auto".
        self._active_mode = None if mode == "auto" else mode
        # Per strategy: None until tried, then whether torch.func.vmap works for it.
        self._vmap_works: dict[str, bool | None] = {
            FORWARD_OVER_REVERSE: None,
            REVERSE_OVER_REVERSE: None,
        }
        if dense_chunk_size is None:
            dense_chunk_size = min(point.numel(), max(1, _DENSE_CHUNK_ENTRIES // point.numel()))
        self.dense_chunk_size = dense_chunk_size

    # ------------------------------------------------------------------
    # What the provider states about itself

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            exact=True,
            positive_semidefinite=False,
            needs_double_backward=True,
            dense_available=False,
            gpu=self.device.type == "cuda",
        )

    @property
    def x(self) -> torch.Tensor:
        """A copy of the point (for ``from_module``, the flat parameter vector θ)."""
        return self._point.clone()

    @property
    def value(self) -> torch.Tensor:
        """The objective at ``x``, a 0-d tensor (the mean loss for ``from_module``)."""
        return self._value.clone()

    @property
    def gradient(self) -> torch.Tensor:
        """The gradient of the objective at ``x``, a flat tensor like ``x``."""
        return self._gradient.clone()

    @property
    def active_mode(self) -> str | None:
        """The strategy that products use; None in mode "auto" before the first product."""
        return self._active_mode

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the parameters in ``x``, in order (``from_module`` only, else empty)."""
        return () if self._batches is None else self._batches.names

    @property
    def num_samples(self) -> int | None:
        """N, the number of samples in the data (``from_module`` only, else None)."""
        return None if self._batches is None else self._batches.num_samples

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a flat vector like ``x`` into parameter-shaped views, by name.

        Raises:
            InvalidArgumentError: The provider was not built by ``from_module``,
                or ``vector`` is not a flat vector of length ``size``.
        """
        if self._batches is None:
            raise InvalidArgumentError(
                "unflatten needs parameter shapes, which only from_module providers have"
            )
        self.check_vector(vector, "vector")
        return self._batches.unflatten(vector)

    # ------------------------------------------------------------------
    # Products

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._sum_over_terms(v, batched=False)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._sum_over_terms(V, batched=True)

    def _sum_over_terms(self, tangents: torch.Tensor, *, batched: bool) -> torch.Tensor:
        total = torch.zeros_like(tangents)
        for term in self._terms():
            product = self._product_with_fallback(term, tangents, batched=batched)
            product = product.detach()
            self.check_finite(product, f"Hessian-vector product {term.label}")
            total.add_(product, alpha=term.weight)
        if self._batches is not None:
            self._batches.check_pass_complete()
        return total

    def _product_with_fallback(
        self, term: _Term, tangents: torch.Tensor, *, batched: bool
    ) -> torch.Tensor:
        """Return ∇²f tangents for one term, settling the strategy in mode "auto"."""
        if self._active_mode is not None:
            return self._product(term, tangents, batched=batched, mode=self._active_mode)

        try:
            product = self._product(term, tangents, batched=batched, mode=FORWARD_OVER_REVERSE)
        except _UNSUPPORTED_ERRORS as forward_error:
            if isinstance(forward_error, torch.OutOfMemoryError):
                raise
            product = self._product(term, tangents, batched=batched, mode=REVERSE_OVER_REVERSE)
            logger.info(
                "forward-over-reverse Hessian-vector products failed (%s: %s); "
                "using reverse-over-reverse for every product of this provider",
                type(forward_error).__name__,
                str(forward_error).splitlines()[0] if str(forward_error) else "",
            )
            self._active_mode = REVERSE_OVER_REVERSE
            return product

        self._active_mode = FORWARD_OVER_REVERSE
        return product

    def _product(
        self, term: _Term, tangents: torch.Tensor, *, batched: bool, mode: str
    ) -> torch.Tensor:
        """Return ∇²f v (flat ``tangents``) or ∇²f V (an (n, k) block) by one strategy."""
        single = _hvp_forward_over_reverse if mode == FORWARD_OVER_REVERSE else _hvp_reverse
        block = _hmm_forward_over_reverse if mode == FORWARD_OVER_REVERSE else _hmm_reverse
        if not batched:
            return single(term.objective, self._point, tangents)

        if self._vmap_works[mode] is not False:
            try:
                product = block(term.objective, self._point, tangents)
            except _UNSUPPORTED_ERRORS as error:
                if isinstance(error, torch.OutOfMemoryError) or self._vmap_works[mode]:
                    raise
                # One column without vmap shows whether vmap or the strategy failed.
                # If the strategy failed, this call raises its error.
                single(term.objective, self._point, tangents[:, 0])
                logger.info(
                    "vectorised %s products failed (%s: %s); multiplying columns one at a time",
                    mode,
                    type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "",
                )
                self._vmap_works[mode] = False
            else:
                self._vmap_works[mode] = True
                return product

        columns = [
            single(term.objective, self._point, tangents[:, j]) for j in range(tangents.shape[1])
        ]
        return torch.stack(columns, dim=1)

    # ------------------------------------------------------------------
    # Dense matrix

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Build H densely from vectorised products with identity columns, symmetrised.

        Columns are computed ``chunk_size`` at a time by vmap of the
        Hessian-vector product over a block of the identity, which bounds the
        memory of one block. The result is (H + Hᵀ)/2, so it is symmetric to
        the last bit.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Identity columns per block; defaults to ``dense_chunk_size``.

        Returns:
            The (n, n) Hessian.

        Raises:
            InvalidArgumentError: n exceeds ``max_size``, or ``chunk_size`` < 1.
        """
        if chunk_size is None:
            chunk_size = self.dense_chunk_size
        dense = super().to_dense(max_size=max_size, chunk_size=chunk_size)
        return (dense + dense.T) / 2

    def diagonal(self) -> torch.Tensor:
        """Return the exact diagonal of H from n products, ``dense_chunk_size`` columns at a time.

        For a stochastic estimate with fewer products use
        :func:`hessframe.linalg.hutchinson_diagonal`.
        """
        diagonal = torch.empty(self.size, dtype=self.dtype, device=self.device)
        for start in range(0, self.size, self.dense_chunk_size):
            stop = min(start + self.dense_chunk_size, self.size)
            rows = torch.arange(start, stop, device=self.device)
            columns = torch.arange(stop - start, device=self.device)
            basis = torch.zeros(self.size, stop - start, dtype=self.dtype, device=self.device)
            basis[rows, columns] = 1
            diagonal[start:stop] = self.matmat(basis)[rows, columns]
        return diagonal


def _check_point(x: Any) -> torch.Tensor:
    """Return a detached copy of ``x`` after checking it is a non-empty flat floating tensor."""
    if not isinstance(x, torch.Tensor):
        raise InvalidArgumentError(
            f"x must be a flat floating-point torch.Tensor, got {type(x).__name__}"
        )
    if not x.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"x must have a floating-point dtype (float32 or float64), got {x.dtype}; "
            "convert it with x.to(torch.float64)"
        )
    if x.ndim != 1 or x.numel() == 0:
        raise InvalidArgumentError(
            f"x must be a non-empty flat tensor of shape (n,), got shape {tuple(x.shape)}; "
            "flatten it with x.reshape(-1) and reshape inside func"
        )
    return x.detach().clone()


def _check_scalar_output(output: Any, name: str) -> torch.Tensor:
    """Return ``output`` after checking it is a 0-d floating tensor; ``name`` is the callable."""
    if not isinstance(output, torch.Tensor):
        raise InvalidArgumentError(
            f"{name} must return a 0-d floating tensor, but it returned {type(output).__name__}"
        )
    if output.ndim != 0:
        raise InvalidArgumentError(
            f"{name} must return a 0-d (scalar) tensor, but it returned shape "
            f"{tuple(output.shape)}; reduce it with .sum() or .mean()"
        )
    if not output.dtype.is_floating_point:
        raise InvalidArgumentError(
            f"{name} must return a floating-point tensor, but it returned dtype {output.dtype}"
        )
    return output


def _value_and_gradient(
    objective: Callable[[torch.Tensor], torch.Tensor],
    point: torch.Tensor,
    *,
    value_name: str,
    gradient_name: str,
    callable_name: str = "func",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate f and ∇f at ``point`` with torch.autograd, checking both are finite."""
    with torch.enable_grad():
        leaf = point.detach().clone().requires_grad_(True)
        value = _check_scalar_output(objective(leaf), callable_name)
        CurvatureProvider.check_finite(value.detach(), value_name)
        if value.requires_grad:
            (gradient,) = torch.autograd.grad(value, leaf, allow_unused=True)
        else:
            gradient = None
    if gradient is None:  # f does not depend on x.
        gradient = torch.zeros_like(point)
    CurvatureProvider.check_finite(gradient, gradient_name)
    return value.detach(), gradient.detach()


# ----------------------------------------------------------------------
# The two differentiation strategies, for one vector and for a block


def _hvp_forward_over_reverse(
    objective: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    _, product = torch.func.jvp(torch.func.grad(objective), (point,), (v,))
    return product


def _hmm_forward_over_reverse(
    objective: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    def hvp(v: torch.Tensor) -> torch.Tensor:
        return _hvp_forward_over_reverse(objective, point, v)

    return torch.func.vmap(hvp, in_dims=1, out_dims=1)(V)


def _gradient_graph(
    objective: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a leaf copy of the point and ∇f there, with the graph kept for a second backward."""
    leaf = point.detach().clone().requires_grad_(True)
    value = objective(leaf)
    (gradient,) = torch.autograd.grad(value, leaf, create_graph=True, allow_unused=True)
    return leaf, gradient


def _hvp_reverse(
    objective: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    with torch.enable_grad():
        leaf, gradient = _gradient_graph(objective, point)
        if gradient is None or not gradient.requires_grad:  # f is at most linear in x.
            return torch.zeros_like(v)
        (product,) = torch.autograd.grad(gradient, leaf, grad_outputs=v, allow_unused=True)
    return torch.zeros_like(v) if product is None else product


def _hmm_reverse(
    objective: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    with torch.enable_grad():
        leaf, gradient = _gradient_graph(objective, point)
        if gradient is None or not gradient.requires_grad:
            return torch.zeros_like(V)
        (products,) = torch.autograd.grad(
            gradient, leaf, grad_outputs=V.T, is_grads_batched=True, allow_unused=True
        )
    return torch.zeros_like(V) if products is None else products.T


# ----------------------------------------------------------------------
# Models and data for ``from_module``

_RANDOM_IN_TRAINING = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def _reject_random_layers(model: nn.Module) -> None:
    """Raise NondeterministicModelError if dropout or batch norm in training mode is present."""
    for name, module in model.named_modules():
        if module.training and isinstance(module, _RANDOM_IN_TRAINING):
            raise NondeterministicModelError(
                f"model is in training mode and its submodule {name or '(root)'!r} "
                f"({type(module).__name__}) makes the outputs depend on random masks or on "
                "the batch, so the loss has no fixed Hessian; call model.eval() first"
            )


def _select_parameters(
    model: nn.Module, params: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """Return the names and tensors of the parameters to differentiate, checked."""
    named = dict(model.named_parameters())
    if params is None:
        names = tuple(name for name, parameter in named.items() if parameter.requires_grad)
        if not names:
            raise InvalidArgumentError(
                "model has no parameters with requires_grad=True; pass params to choose some"
            )
    else:
        if isinstance(params, str) or not isinstance(params, Iterable):
            raise InvalidArgumentError(
                f"params must be a sequence of parameter names, got {params!r}"
            )
        names = tuple(params)
        if not names:
            raise InvalidArgumentError("params must name at least one parameter, got none")
        unknown = [name for name in names if name not in named]
        if unknown:
            available = ", ".join(list(named)[:20])
            raise InvalidArgumentError(
                f"params names unknown parameter(s) {unknown}; the model has: {available}"
            )
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise InvalidArgumentError(f"params names parameter(s) {repeated} more than once")

    parameters = tuple(named[name] for name in names)
    first = parameters[0]
    for name, parameter in zip(names, parameters, strict=True):
        if not parameter.dtype.is_floating_point:
            raise InvalidArgumentError(
                f"parameter {name!r} has dtype {parameter.dtype}; only floating-point "
                "parameters can be differentiated"
            )
        if parameter.dtype != first.dtype or parameter.device != first.device:
            raise InvalidArgumentError(
                f"parameter {name!r} is {parameter.dtype} on {parameter.device} but "
                f"{names[0]!r} is {first.dtype} on {first.device}; the selected parameters "
                "must share one dtype and device (convert the model with .to())"
            )
    return names, parameters


def _normalise_data(data: Any) -> Iterable[Any]:
    """Return ``data`` as a re-iterable of batches."""
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(item, torch.Tensor) for item in data)
    ):
        return [tuple(data)]
    if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise InvalidArgumentError(
            "data must be a DataLoader, an iterable of (inputs, targets) batches or one "
            f"(inputs, targets) tuple of tensors, got {type(data).__name__}"
        )
    if isinstance(data, Iterator):
        # A one-shot iterator cannot be read again for the next product.
        return list(data)
    return data


class _ModuleBatches:
    """The per-batch terms of a model's mean loss, read from the data on every pass."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
        data: Iterable[Any],
        names: tuple[str, ...],
        parameters: tuple[torch.Tensor, ...],
        device: torch.device,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.data = data
        self.names = names
        self.shapes = tuple(parameter.shape for parameter in parameters)
        self.numels = tuple(parameter.numel() for parameter in parameters)
        self.device = device
        self.num_samples = self._count_samples()
        self._pass_samples = 0

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        pieces = torch.split(flat, self.numels)
        return {
            name: piece.view(shape)
            for name, piece, shape in zip(self.names, pieces, self.shapes, strict=True)
        }

    def batches(self) -> Iterator[tuple[int, Any, torch.Tensor, int]]:
        """Yield (index, inputs, targets, batch size) on the parameters' device, checked."""
        for index, batch in enumerate(self.data):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise InvalidArgumentError(
                    f"data: batch {index} must be an (inputs, targets) pair, "
                    f"got {type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                )
            inputs, targets = batch
            if not isinstance(inputs, torch.Tensor) or inputs.ndim == 0:
                raise InvalidArgumentError(
                    f"data: the inputs of batch {index} must be a tensor whose first "
                    f"dimension counts the samples, got {_describe(inputs)}"
                )
            if not isinstance(targets, torch.Tensor):
                raise InvalidArgumentError(
                    f"data: the targets of batch {index} must be a tensor, "
                    f"got {type(targets).__name__}"
                )
            size = inputs.shape[0]
            if size == 0:
                raise InvalidArgumentError(f"data: batch {index} is empty")
            if targets.ndim > 0 and targets.shape[0] != size:
                raise InvalidArgumentError(
                    f"data: batch {index} has {size} inputs but {targets.shape[0]} targets"
                )
            yield index, inputs.to(self.device), targets.to(self.device), size

    def _count_samples(self) -> int:
        total = sum(size for _, _, _, size in self.batches())
        if total == 0:
            raise InvalidArgumentError("data is empty; it must yield at least one batch")
        return total

    def objective(self, inputs: Any, targets: torch.Tensor) -> Callable[[torch.Tensor], Any]:
        def batch_loss(flat: torch.Tensor) -> torch.Tensor:
            outputs = torch.func.functional_call(self.model, self.unflatten(flat), (inputs,))
            return self.loss_fn(outputs, targets)

        return batch_loss

    def terms(self) -> Iterator[_Term]:
        self._pass_samples = 0
        for index, inputs, targets, size in self.batches():
            self._pass_samples += size
            yield _Term(
                f"on batch {index}", size / self.num_samples, self.objective(inputs, targets)
            )

    def check_pass_complete(self) -> None:
        """Raise unless the last pass over the data saw the same N as the first."""
        if self._pass_samples != self.num_samples:
            raise InvalidArgumentError(
                f"data yielded {self._pass_samples} samples on this pass but "
                f"{self.num_samples} when the provider was built; it must yield the same "
                "samples on every pass (use drop_last=False and no random sampling)"
            )

    def mean_value_and_gradient(self, point: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return L(θ) and ∇L(θ), checking the loss and gradient of every batch."""
        value = torch.zeros((), dtype=point.dtype, device=point.device)
        gradient = torch.zeros_like(point)
        for term in self.terms():
            batch_value, batch_gradient = _value_and_gradient(
                term.objective,
                point,
                value_name=f"loss {term.label}",
                gradient_name=f"gradient of the loss {term.label}",
                callable_name="loss_fn",
            )
            value += term.weight * batch_value.to(point.dtype)
            gradient.add_(batch_gradient, alpha=term.weight)
        self.check_pass_complete()
        return value, gradient

    def reject_random_outputs(self, point: torch.Tensor) -> None:
        """Raise NondeterministicModelError if two evaluations of the first batch differ."""
        _, inputs, _, _ = next(iter(self.batches()))
        parameters = self.unflatten(point)
        with torch.no_grad():
            first = torch.func.functional_call(self.model, parameters, (inputs,))
            second = torch.func.functional_call(self.model, parameters, (inputs,))

        first_leaves = torch.utils._pytree.tree_leaves(first)
        second_leaves = torch.utils._pytree.tree_leaves(second)
        for left, right in zip(first_leaves, second_leaves, strict=True):
            if not isinstance(left, torch.Tensor) or not left.dtype.is_floating_point:
                continue
            tolerance = math.sqrt(torch.finfo(left.dtype).eps)
            scale = float(left.abs().max()) if left.numel() else 0.0
            if not torch.allclose(left, right, rtol=tolerance, atol=tolerance * scale):
                difference = float((left - right).abs().max())
                raise NondeterministicModelError(
                    "model returned different outputs for the same batch (max difference "
                    f"{difference:.3e}), so the loss has no fixed Hessian; call model.eval() "
                    "and remove any randomness from forward, or pass check_determinism=False"
                )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
