"""Exact Hessians of differentiable objectives by automatic differentiation.

A Hessian-vector product is the directional derivative of the gradient,

    H v = d/dr ∇f(x + r v) at r = 0,

which costs about as much as one gradient and is exact up to floating point
(Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation
6(1):147-160, 1994, doi:10.1162/neco.1994.6.1.147). PyTorch offers it two ways:

- forward-over-reverse: the gradient is computed by ``torch.autograd.grad``
  at dual numbers x + εv of ``torch.autograd.forward_ad``, and the tangent of
  the gradient is H v (blocks of vectors use ``torch.func.vmap`` over
  ``torch.func.jvp`` of ``torch.func.grad``, as ``torch.func.hessian`` does);
- reverse-over-reverse, a second ``torch.autograd.grad`` through the graph of
  the first (``create_graph=True``), which uses Hᵀ = H. The graph of ∇f does
  not depend on v, so it can be kept and reused by every later product, which
  then costs one backward pass.

PyTorch covers more operators in reverse mode than in forward mode, as the
``torch.func.hessian`` documentation warns. For example ``torch.cdist`` has no
forward-mode derivative in torch 2.14.

:class:`AutodiffHessian` tries forward-over-reverse first. In mode ``"auto"``
it falls back to reverse-over-reverse when an operator lacks a forward-mode
derivative. When both work, it keeps reverse-over-reverse on the CPU, where it
was the faster in every case measured, and forward-over-reverse elsewhere.
The dense matrix of :meth:`AutodiffHessian.to_dense` is the exception: it
vectorises forward-over-reverse over all identity columns at once, the route
of ``torch.func.hessian``, whenever forward mode works. On the 1962-parameter
MLP of ``benchmarks/core_dense.py`` with two threads under load, blocks of
reverse-over-reverse products took 1.5 to 1.9 times as long as
``torch.func.hessian``, and this route about as long.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd import forward_ad

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

#: Bytes that one vectorised block of :meth:`AutodiffHessian.to_dense` may take, as estimated.
_DENSE_BLOCK_BYTES = 2**30

#: Per identity column, the estimated memory of a forward-over-reverse product in
#: units of the bytes that one evaluation of the objective saves for backward.
_DENSE_BYTES_PER_SAVED_BYTE = 4

#: Bytes of saved tensors up to which retain_graph=None keeps the graphs of further terms.
_KEPT_GRAPH_BYTES = 2**28

#: Errors that mean a differentiation strategy or vmap does not support an operator.
_UNSUPPORTED_ERRORS = (NotImplementedError, RuntimeError)


@dataclass(frozen=True)
class _Term:
    """One summand w·f(θ) of the objective: the whole function, or one batch of data.

    Attributes:
        label: Where the term comes from, as messages append it to the step that
            failed ("of func at x", "on batch 3").
        weight: w, the term's weight in the sum.
        evaluate: f, called with one tensor per piece of the point (the flat
            point itself, or one tensor per parameter) and returning a 0-d tensor.
    """

    label: str
    weight: float
    evaluate: Callable[..., torch.Tensor]


class _Layout:
    """The split of a flat vector of length n into the pieces that ``_Term.evaluate`` takes."""

    def __init__(self, shapes: Sequence[torch.Size]) -> None:
        self.shapes = tuple(torch.Size(shape) for shape in shapes)
        self.numels = tuple(shape.numel() for shape in self.shapes)

    def split(self, flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return views of a flat vector in the shapes of the pieces."""
        pieces = torch.split(flat, self.numels)
        return tuple(piece.view(shape) for piece, shape in zip(pieces, self.shapes, strict=True))

    def split_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return a (k, n) block as pieces of shape (k, *piece shape)."""
        pieces = torch.split(rows, self.numels, dim=1)
        return tuple(
            piece.reshape(rows.shape[0], *shape)
            for piece, shape in zip(pieces, self.shapes, strict=True)
        )

    def join(self, pieces: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
        """Concatenate pieces (None for a zero piece) into a flat vector like ``like``."""
        if len(pieces) == 1 and pieces[0] is not None:
            return pieces[0].reshape(-1)
        return torch.cat(
            [
                like.new_zeros(numel) if piece is None else piece.reshape(-1)
                for piece, numel in zip(pieces, self.numels, strict=True)
            ]
        )

    def join_rows(self, pieces: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
        """Concatenate pieces of shape (k, *piece shape) into a (k, n) block like ``like``."""
        rows = like.shape[0]
        return torch.cat(
            [
                like.new_zeros(rows, numel) if piece is None else piece.reshape(rows, numel)
                for piece, numel in zip(pieces, self.numels, strict=True)
            ],
            dim=1,
        )


class AutodiffHessian(CurvatureProvider):
    """The exact Hessian of a differentiable scalar function, by automatic differentiation.

    H = ∇²f(x) for ``func`` f mapping a flat tensor of length n to a 0-d
    tensor. The matrix is never formed unless :meth:`to_dense` is called.

    How mode ``"auto"`` picks a strategy, on the first product and then for
    every product of the provider:

    1. Forward-over-reverse, the default strategy, is tried on the first
       term (the function, or the first batch of data). If it raises
       NotImplementedError or RuntimeError, as for an operator without a
       forward-mode derivative, reverse-over-reverse is used.
    2. Otherwise reverse-over-reverse is tried on the same term. If it
       raises, forward-over-reverse is used.
    3. If both work but their products differ by more than √eps times the
       norm of the forward-over-reverse product, forward-over-reverse is
       used and a warning logged. This catches a backward formula that
       cannot be differentiated again (``once_differentiable``), which can
       make reverse-over-reverse products zero without an error.
    4. Otherwise, on the CPU, reverse-over-reverse is kept, and on other
       devices forward-over-reverse. The choice is logged at INFO.

    The check costs two extra products of one term, once. The rule is fixed
    rather than timed, so that the strategy, and with it the rounding of every
    product, does not depend on the machine's load.
    Reverse-over-reverse was the faster on the CPU for every network
    measured with torch 2.14.1 and one thread: the MLP and CNN of
    ``benchmarks/core_hvp.py`` and the digits MLP of :mod:`hessframe.digits`.
    With its graphs rebuilt it took about 1/1.5 of the time on the digits
    MLP. With one batch, whose kept graph (see ``retain_graph``) leaves one
    backward pass per product, it was 2 times faster on the CNN and 7 times
    on the MLP. :attr:`active_mode` states the choice.

    NOTE: the choice of forward-over-reverse off the CPU follows
    ``torch.func.hessian`` and was not timed here.

    Args:
        func: The objective, a function of one flat tensor returning a 0-d
            floating tensor. It must be differentiable twice by PyTorch.
        x: The point, a flat floating tensor. It is detached and copied, so
            later changes to the caller's tensor do not affect H and the
            provider never modifies it.
        mode: ``"forward-over-reverse"`` (the gradient at dual numbers of
            ``torch.autograd.forward_ad``), ``"reverse-over-reverse"`` (double
            backward with ``torch.autograd``), or ``"auto"``, which picks one of
            them on the first product as described above.
        dense_chunk_size: Identity columns multiplied at once by
            :meth:`to_dense` and :meth:`diagonal`. By default
            :meth:`to_dense` chooses its block from an estimate of the
            memory (see there), and :meth:`diagonal` uses
            ``min(n, max(1, 2**20 // n))`` columns, which keeps each block of
            columns and their products at about 2**20 entries. Lower it when
            one product of the objective needs much memory, because a block
            costs that memory once per column.
        retain_graph: Keep the autograd graphs of ∇f that reverse-over-reverse
            products differentiate, one per term (batch), so that later
            products skip the forward and first backward pass (about half the
            cost). Kept graphs stay in memory as long as the provider. True
            keeps the graph of every batch, so memory grows with the data.
            False rebuilds every graph for every product. The default None
            keeps the graph of the first term, which takes no more memory
            than one product needs anyway, and the graphs of the following
            terms while the tensors they save total at most 256 MiB
            (estimated by ``torch.autograd.graph.saved_tensors_hooks``, each
            storage counted once per graph). Once every term's graph is kept,
            products no longer read the data.

    Raises:
        InvalidArgumentError: ``func`` is not callable, or returns something
            other than a 0-d floating tensor; ``x`` is not a non-empty flat
            floating tensor; ``mode``, ``dense_chunk_size`` or ``retain_graph``
            is invalid.
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
        retain_graph: bool | None = None,
    ) -> None:
        if not callable(func):
            raise InvalidArgumentError(
                f"func must be a callable mapping a flat tensor to a 0-d tensor, "
                f"got {type(func).__name__}"
            )
        point = _check_point(x)
        term = _Term("of func at x", 1.0, func)
        self._setup(
            point,
            _Layout([point.shape]),
            mode,
            dense_chunk_size,
            retain_graph,
            num_terms=1,
            terms=lambda: iter((term,)),
        )
        self._value, self._gradient = _value_and_gradient(
            func,
            self._leaves,
            self._layout,
            value_name="value of func at x",
            gradient_name="gradient of func at x",
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
        retain_graph: bool | None = None,
    ) -> AutodiffHessian:
        """Build the Hessian of a model's mean loss over a data set w.r.t. its parameters.

        The objective is the mean loss over all N samples of ``data``,

            L(θ) = (1/N) Σ_b n_b · loss_fn(model(inputs_b; θ), targets_b),

        where batch b contains n_b samples. ``loss_fn`` must return the mean over
        its batch (as ``nn.CrossEntropyLoss()`` and ``nn.MSELoss()`` do by
        default), so that batches of unequal size are weighted by their size
        and L is the loss of the whole data set in one batch. The model is
        called through ``torch.func.functional_call`` with θ split into its
        parameters, so the model itself is never modified. Products run
        batch by batch and add up, so their memory is bounded by one batch
        plus the kept graphs (see ``retain_graph``).

        Args:
            model: The network. Put it in evaluation mode (``model.eval()``)
                when it contains dropout or batch normalisation.
            loss_fn: ``loss_fn(outputs, targets)`` returning the batch mean as
                a 0-d tensor.
            data: A ``DataLoader`` or any iterable of ``(inputs, targets)``
                batches, or one ``(inputs, targets)`` tuple. ``inputs`` is
                passed to the model as its only argument and its first
                dimension counts the samples. A re-iterable (a list, a
                DataLoader) must yield the same samples each time, because it
                is iterated again for every product unless the graphs of all
                batches are kept. A one-shot iterator (a generator) is read
                once into a list.
            params: Names (as in ``model.named_parameters()``) of the
                parameters θ to differentiate, in this order. Defaults to all
                parameters with ``requires_grad``, in the model's order.
                The others are held at their current values.
            check_determinism: Before building, reject a model that has
                dropout or batch normalisation in training mode, and
                evaluate the first batch twice and reject different outputs.
            mode: As for :class:`AutodiffHessian`.
            dense_chunk_size: As for :class:`AutodiffHessian`.
            retain_graph: As for :class:`AutodiffHessian`.

        Returns:
            The provider. Its ``x`` is the flat parameter vector θ, and
            :meth:`unflatten` turns any flat vector (an eigenvector, a
            Newton step) back into a dict of parameter-shaped tensors.

        Raises:
            InvalidArgumentError: ``model`` is not a module, ``loss_fn`` is not
                callable or returns something other than a 0-d tensor, ``data``
                is empty or contains a batch that is not an (inputs, targets) pair
                of tensors, ``params`` names an unknown or repeated parameter,
                the parameters differ in dtype or device, or ``mode``,
                ``dense_chunk_size`` or ``retain_graph`` is invalid.
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
        provider._setup(
            point,
            _Layout(batches.shapes),
            mode,
            dense_chunk_size,
            retain_graph,
            num_terms=batches.num_batches,
            terms=batches.terms,
        )
        provider._value, provider._gradient = batches.mean_value_and_gradient(
            provider._leaves, provider._layout
        )
        provider._batches = batches
        return provider

    def _setup(
        self,
        point: torch.Tensor,
        layout: _Layout,
        mode: str,
        dense_chunk_size: int | None,
        retain_graph: bool | None,
        *,
        num_terms: int,
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
        if retain_graph is not None and not isinstance(retain_graph, bool):
            raise InvalidArgumentError(
                f"retain_graph must be True, False or None, got {retain_graph!r}"
            )
        super().__init__(point.numel(), point.dtype, point.device)

        self._point = point
        self._layout = layout
        # Leaf copies of the pieces of the point, made once: every product
        # differentiates at them, and a kept graph refers to them.
        self._leaves = tuple(
            piece.detach().clone().requires_grad_(True) for piece in layout.split(point)
        )
        self._terms = terms
        self._batches: _ModuleBatches | None = None
        self._retain_graph = retain_graph
        # The gradient graph kept per term index, and the bytes their saved tensors take.
        self._graphs: dict[int, _GradientGraph] = {}
        self._kept_graph_bytes = 0
        # False once a graph did not fit the budget of retain_graph=None.
        self._keeping_graphs = retain_graph is not False
        # The terms once read, kept when products no longer need the data.
        self._kept_terms: list[_Term] | None = None
        self.mode = mode
        # The strategy in use: fixed by ``mode``, or by the first product when "auto".
        self._active_mode = None if mode == "auto" else mode
        # Per strategy: None until tried, then whether a vectorised block product works.
        self._vmap_works: dict[str, bool | None] = {
            FORWARD_OVER_REVERSE: None,
            REVERSE_OVER_REVERSE: None,
        }
        # Whether the caller fixed the block size of to_dense.
        self._dense_chunk_given = dense_chunk_size is not None
        if dense_chunk_size is None:
            dense_chunk_size = min(point.numel(), max(1, _DENSE_CHUNK_ENTRIES // point.numel()))
        self.dense_chunk_size = dense_chunk_size
        # Whether forward-over-reverse products work, once mode "auto" has tried them.
        self._forward_works: bool | None = None

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
    def retain_graph(self) -> bool:
        """Whether reverse-over-reverse products reuse at least one kept graph of ∇f.

        False before the first reverse-over-reverse product.
        """
        return bool(self._graphs)

    @property
    def num_kept_graphs(self) -> int:
        """The number of terms (batches) whose graph of ∇f is kept."""
        return len(self._graphs)

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

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Multiply H with a vector.

        Args:
            v: Flat tensor of length ``size`` with the provider's dtype and device.

        Returns:
            H v, a flat tensor like ``v``.

        Raises:
            InvalidArgumentError: ``v`` has the wrong shape, dtype or device.
            NonFiniteError: The product contains NaN or infinity; the message
                names the first term (batch) whose product does.
        """
        self.check_vector(v, "v")
        return self._matvec(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """Multiply H with a block of vectors.

        Args:
            V: Tensor of shape (size, k) with the provider's dtype and device.

        Returns:
            H V, of shape (size, k).

        Raises:
            InvalidArgumentError: ``V`` has the wrong shape, dtype or device.
            NonFiniteError: The product contains NaN or infinity; the message
                names the first term (batch) whose product does.
        """
        self.check_block(V, "V")
        if V.shape[1] == 0:
            return V.clone()
        return self._matmat(V)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._sum_over_terms(v, batched=False)

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        return self._sum_over_terms(V, batched=True)

    def _sum_over_terms(self, tangents: torch.Tensor, *, batched: bool) -> torch.Tensor:
        total = torch.zeros_like(tangents)
        for index, term in self._indexed_terms():
            if self._active_mode is None:
                self._choose_mode(index, term, tangents[:, 0] if batched else tangents)
            product = self._product(index, term, tangents, batched=batched)
            total.add_(product, alpha=term.weight)

        # One check of the sum instead of one per term, because a NaN or an
        # infinity in any term's product leaves the sum non-finite.
        if not bool(torch.isfinite(total).all()):
            self._raise_non_finite(tangents, batched=batched)
        return total

    def _indexed_terms(self) -> Iterator[tuple[int, _Term]]:
        """Yield the terms with their indices: the kept ones, or read anew from the data."""
        if self._kept_terms is not None:
            yield from enumerate(self._kept_terms)
            return

        read = []
        for index, term in enumerate(self._terms()):
            read.append(term)
            yield index, term
        if self._batches is not None:
            self._batches.check_pass_complete()
        if self._retain_graph or len(self._graphs) == len(read):
            self._kept_terms = read

    def _raise_non_finite(self, tangents: torch.Tensor, *, batched: bool) -> None:
        """Raise NonFiniteError naming the first term whose product is not finite."""
        for index, term in self._indexed_terms():
            product = self._product(index, term, tangents, batched=batched)
            self.check_finite(product, f"Hessian-vector product {term.label}")
        self.check_finite(torch.full((), math.nan), "Hessian-vector product")

    def _choose_mode(self, index: int, term: _Term, vector: torch.Tensor) -> None:
        """Settle the strategy of mode "auto" on one term, as the class docstring states."""
        try:
            forward = self._product(index, term, vector, batched=False, mode=FORWARD_OVER_REVERSE)
        except _UNSUPPORTED_ERRORS as forward_error:
            if isinstance(forward_error, torch.OutOfMemoryError):
                raise
            logger.info(
                "forward-over-reverse Hessian-vector products failed (%s: %s); "
                "using reverse-over-reverse for every product of this provider",
                type(forward_error).__name__,
                _first_line(forward_error),
            )
            self._active_mode = REVERSE_OVER_REVERSE
            self._forward_works = False
            return
        self._forward_works = True

        try:
            reverse = self._product(index, term, vector, batched=False, mode=REVERSE_OVER_REVERSE)
        except _UNSUPPORTED_ERRORS as reverse_error:
            if isinstance(reverse_error, torch.OutOfMemoryError):
                raise
            logger.info(
                "reverse-over-reverse Hessian-vector products failed (%s: %s); "
                "using forward-over-reverse for every product of this provider",
                type(reverse_error).__name__,
                _first_line(reverse_error),
            )
            self._active_mode = FORWARD_OVER_REVERSE
            return

        tolerance = math.sqrt(torch.finfo(forward.dtype).eps)
        difference = float(torch.linalg.vector_norm(forward - reverse))
        if not difference <= tolerance * float(torch.linalg.vector_norm(forward)):
            logger.warning(
                "forward-over-reverse and reverse-over-reverse Hessian-vector products %s "
                "differ by %.3e in norm, more than rounding explains; using "
                "forward-over-reverse for every product of this provider. A backward formula "
                "that cannot be differentiated again (once_differentiable) can make "
                "reverse-over-reverse products silently zero",
                term.label,
                difference,
            )
            self._active_mode = FORWARD_OVER_REVERSE
            return

        # A fixed rule instead of timing both, so that the same inputs give the
        # same bits on every run whatever the machine's load.
        if self.device.type == "cpu":
            self._active_mode = REVERSE_OVER_REVERSE
            reason = "the faster on the CPU"
        else:
            self._active_mode = FORWARD_OVER_REVERSE
            reason = f"the default on {self.device.type}"
        logger.info(
            "forward-over-reverse and reverse-over-reverse Hessian-vector products %s agree; "
            "using %s, %s, for every product of this provider",
            term.label,
            self._active_mode,
            reason,
        )

    def _product(
        self,
        index: int,
        term: _Term,
        tangents: torch.Tensor,
        *,
        batched: bool,
        mode: str | None = None,
    ) -> torch.Tensor:
        """Return ∇²f v (flat ``tangents``) or ∇²f V (an (n, k) block) for one term."""
        mode = self._active_mode if mode is None else mode
        if mode == REVERSE_OVER_REVERSE:
            graph = self._gradient_graph(index, term)
            column_product = graph.product
            block_product = graph.block_product
        else:
            primals = tuple(leaf.detach() for leaf in self._leaves)

            def column_product(v: torch.Tensor) -> torch.Tensor:
                return _forward_over_reverse(term.evaluate, self._leaves, self._layout, v)

            def block_product(V: torch.Tensor) -> torch.Tensor:
                return _forward_over_reverse_block(term.evaluate, primals, self._layout, V)

        if not batched:
            return column_product(tangents)

        if self._vmap_works[mode] is not False:
            try:
                product = block_product(tangents)
            except _UNSUPPORTED_ERRORS as error:
                if isinstance(error, torch.OutOfMemoryError) or self._vmap_works[mode]:
                    raise
                # One column without vmap shows whether vmap or the strategy failed.
                # If the strategy failed, this call raises its error.
                column_product(tangents[:, 0])
                logger.info(
                    "vectorised %s products failed (%s: %s); multiplying columns one at a time",
                    mode,
                    type(error).__name__,
                    _first_line(error),
                )
                self._vmap_works[mode] = False
            else:
                self._vmap_works[mode] = True
                return product

        columns = [column_product(tangents[:, j]) for j in range(tangents.shape[1])]
        return torch.stack(columns, dim=1)

    def _gradient_graph(self, index: int, term: _Term) -> _GradientGraph:
        """Return the graph of ∇f for one term: the kept one, or a new one."""
        graph = self._graphs.get(index)
        if graph is not None:
            return graph

        budgeted = self._retain_graph is None and self._keeping_graphs
        graph = _GradientGraph.build(term.evaluate, self._leaves, self._layout, measure=budgeted)
        if self._retain_graph:
            self._graphs[index] = graph
        elif budgeted:
            if not self._graphs or self._kept_graph_bytes + graph.saved_bytes <= _KEPT_GRAPH_BYTES:
                self._graphs[index] = graph
                self._kept_graph_bytes += graph.saved_bytes
            else:
                self._keeping_graphs = False
                logger.info(
                    "keeping the gradient graphs of %d term(s), %.1f MiB; the graph %s would "
                    "exceed %d MiB, so it and later ones are rebuilt for every product",
                    len(self._graphs),
                    self._kept_graph_bytes / 2**20,
                    term.label,
                    _KEPT_GRAPH_BYTES // 2**20,
                )
        return graph

    # ------------------------------------------------------------------
    # Dense matrix

    def to_dense(
        self, max_size: int = DEFAULT_MAX_DENSE_SIZE, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Build H densely, symmetrised as (H + Hᵀ)/2.

        Unless the strategy is reverse-over-reverse by request or because
        forward mode fails, each term's Hessian is the Jacobian of its
        gradient, ``torch.func.vmap`` over ``torch.func.jvp`` of
        ``torch.func.grad`` with the identity columns, the route of
        ``torch.func.hessian``; the terms' matrices are summed with their
        weights. Otherwise, or when that route raises (an operator without
        a vmap rule), the columns come from :meth:`matmat` with blocks of the
        identity. In mode "auto" the strategy is settled first, as for a
        product. The sum is checked for NaN and infinity once.

        The default block takes every column at once when the estimated
        memory of the block, 4 times the bytes that one evaluation of the
        first term saves for backward plus 2·n entries, per column, fits in
        1 GiB, and proportionally fewer columns otherwise.

        NOTE: the factor 4 is an estimate (a vectorised forward-over-reverse
        product carries tangents of the forward and backward intermediates),
        not a measured bound; pass ``chunk_size`` when memory is tight.

        Args:
            max_size: Largest n accepted; raise it explicitly for larger matrices.
            chunk_size: Identity columns per block; defaults to
                ``dense_chunk_size`` when that was given, else to the memory
                estimate above.

        Returns:
            The (n, n) Hessian.

        Raises:
            InvalidArgumentError: n exceeds ``max_size``, or ``chunk_size`` < 1.
            NonFiniteError: The Hessian contains NaN or infinity.
        """
        if chunk_size is None and self._dense_chunk_given:
            chunk_size = self.dense_chunk_size
        self.check_dense_arguments(max_size, 1 if chunk_size is None else chunk_size)

        if self._active_mode is None:
            terms = self._indexed_terms()
            first_index, first_term = next(terms)
            terms.close()
            probe = torch.zeros(self.size, dtype=self.dtype, device=self.device)
            probe[0] = 1
            self._choose_mode(first_index, first_term, probe)
        forward_usable = self.mode == FORWARD_OVER_REVERSE or (
            self.mode == "auto" and self._forward_works is not False
        )

        dense = None
        if forward_usable:
            try:
                dense = self._dense_forward_over_reverse(chunk_size)
            except _UNSUPPORTED_ERRORS as error:
                if isinstance(error, torch.OutOfMemoryError):
                    raise
                logger.info(
                    "vectorised forward-over-reverse Hessian failed (%s: %s); building it "
                    "from blocks of Hessian-vector products",
                    type(error).__name__,
                    _first_line(error),
                )
        if dense is None:
            if chunk_size is None:
                chunk_size = self.dense_chunk_size
            dense = super().to_dense(max_size=max_size, chunk_size=chunk_size)
        # a + b = b + a exactly, so the result is symmetric to the last bit.
        dense = torch.add(dense, dense.T).mul_(0.5)
        # NaN and infinity carry into the sum, so a finite sum proves every
        # entry finite with one pass. Only a non-finite sum needs the full check.
        if not bool(torch.isfinite(dense.sum())):
            self.check_finite(dense, "dense Hessian")
        return dense

    def _dense_forward_over_reverse(self, chunk_size: int | None) -> torch.Tensor:
        """Return Σ w·∇²f over the terms by vmap over jvp of grad with the identity columns."""
        identity = torch.eye(self.size, dtype=self.dtype, device=self.device)
        total = None
        for _, term in self._indexed_terms():
            if chunk_size is None:
                chunk_size = self._default_dense_chunk(term)

            def flat_objective(flat: torch.Tensor, evaluate=term.evaluate) -> torch.Tensor:
                return evaluate(*self._layout.split(flat))

            gradient = torch.func.grad(flat_objective)

            def column(tangent: torch.Tensor, gradient=gradient) -> torch.Tensor:
                return torch.func.jvp(gradient, (self._point,), (tangent,))[1]

            with torch.enable_grad():
                # Row i is H eᵢ, the i-th column of the symmetric H.
                block = torch.func.vmap(column, chunk_size=chunk_size)(identity)
            if total is None:
                total = block if term.weight == 1.0 else block.mul_(term.weight)
            else:
                total.add_(block, alpha=term.weight)
        return total

    def _default_dense_chunk(self, term: _Term) -> int:
        """Return the identity columns per block that fit the memory estimate of to_dense."""
        storages: dict[int, int] = {}

        def count_storage(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with (
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(count_storage, _unchanged),
        ):
            term.evaluate(*self._leaves)
        entry_bytes = self._point.element_size()
        column_bytes = _DENSE_BYTES_PER_SAVED_BYTE * sum(storages.values())
        column_bytes += 2 * self.size * entry_bytes
        chunk = max(1, min(self.size, _DENSE_BLOCK_BYTES // column_bytes))
        logger.debug(
            "to_dense: about %.1f MiB per identity column, %d columns per block",
            column_bytes / 2**20,
            chunk,
        )
        return chunk

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
    evaluate: Callable[..., torch.Tensor],
    leaves: tuple[torch.Tensor, ...],
    layout: _Layout,
    *,
    value_name: str,
    gradient_name: str,
    callable_name: str = "func",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate f and ∇f at ``leaves`` with torch.autograd, checking both are finite."""
    with torch.enable_grad():
        value = _check_scalar_output(evaluate(*leaves), callable_name)
        CurvatureProvider.check_finite(value.detach(), value_name)
        if value.requires_grad:
            gradients = torch.autograd.grad(value, leaves, allow_unused=True)
        else:  # f does not depend on x.
            gradients = (None,) * len(leaves)
    gradient = layout.join(gradients, leaves[0].detach()).detach()
    CurvatureProvider.check_finite(gradient, gradient_name)
    return value.detach(), gradient


# ----------------------------------------------------------------------
# The two differentiation strategies, for one vector and for a block


def _unchanged(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else ""


def _forward_over_reverse(
    evaluate: Callable[..., torch.Tensor],
    leaves: tuple[torch.Tensor, ...],
    layout: _Layout,
    v: torch.Tensor,
) -> torch.Tensor:
    """Return H v as the tangent of ∇f computed at the dual numbers leaves + ε v."""
    with torch.enable_grad(), forward_ad.dual_level():
        duals = tuple(
            forward_ad.make_dual(leaf, tangent)
            for leaf, tangent in zip(leaves, layout.split(v), strict=True)
        )
        value = evaluate(*duals)
        if not value.requires_grad:  # f does not depend on x.
            return torch.zeros_like(v)
        gradients = torch.autograd.grad(value, duals, allow_unused=True)
        products = [
            None if gradient is None else forward_ad.unpack_dual(gradient).tangent
            for gradient in gradients
        ]
    return layout.join(products, v)


def _forward_over_reverse_block(
    evaluate: Callable[..., torch.Tensor],
    primals: tuple[torch.Tensor, ...],
    layout: _Layout,
    V: torch.Tensor,
) -> torch.Tensor:
    """Return H V by torch.func.vmap over the columns of torch.func.jvp of torch.func.grad."""
    gradient = torch.func.grad(evaluate, argnums=tuple(range(len(primals))))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        _, products = torch.func.jvp(gradient, primals, layout.split(v))
        return torch.cat([product.reshape(-1) for product in products])

    return torch.func.vmap(hvp, in_dims=1, out_dims=1)(V)


@dataclass(frozen=True)
class _GradientGraph:
    """∇f of one term at the provider's leaves, with its graph kept for second backwards.

    Attributes:
        gradients: The pieces of ∇f that depend on the point, each with its graph.
        leaves: The leaves those pieces are differentiated with respect to.
        positions: The index of each of those pieces in the layout.
        layout: How the flat vectors split into pieces.
        saved_bytes: The bytes of the storages that the graph saves for
            backward, each counted once; 0 when not measured.
    """

    gradients: tuple[torch.Tensor, ...]
    leaves: tuple[torch.Tensor, ...]
    positions: tuple[int, ...]
    layout: _Layout
    saved_bytes: int = 0

    @classmethod
    def build(
        cls,
        evaluate: Callable[..., torch.Tensor],
        leaves: tuple[torch.Tensor, ...],
        layout: _Layout,
        *,
        measure: bool = False,
    ) -> _GradientGraph:
        """Evaluate f and ∇f with ``create_graph=True``, measuring saved tensors if asked.

        Measuring leaves a Python hook on every saved tensor, which costs a
        few percent of each later backward pass.
        """
        storages: dict[int, int] = {}

        def count_storage(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.enable_grad(), contextlib.ExitStack() as stack:
            if measure:
                stack.enter_context(
                    torch.autograd.graph.saved_tensors_hooks(count_storage, _unchanged)
                )
            value = evaluate(*leaves)
            if value.requires_grad:
                gradients = torch.autograd.grad(value, leaves, create_graph=True, allow_unused=True)
            else:  # f does not depend on x.
                gradients = (None,) * len(leaves)
        # A piece without a graph is constant, so its rows of H are zero.
        positions = tuple(
            index
            for index, gradient in enumerate(gradients)
            if gradient is not None and gradient.requires_grad
        )
        return cls(
            gradients=tuple(gradients[index] for index in positions),
            leaves=tuple(leaves[index] for index in positions),
            positions=positions,
            layout=layout,
            saved_bytes=sum(storages.values()),
        )

    def product(self, v: torch.Tensor) -> torch.Tensor:
        """Return H v = ∇⟨∇f, v⟩, using Hᵀ = H."""
        pieces = self.layout.split(v)
        products = self._backward([pieces[index] for index in self.positions], batched=False)
        return self.layout.join(self._scatter(products), v)

    def block_product(self, V: torch.Tensor) -> torch.Tensor:
        """Return H V by one batched second backward (``is_grads_batched``) over V's columns."""
        rows = V.T
        pieces = self.layout.split_rows(rows)
        products = self._backward([pieces[index] for index in self.positions], batched=True)
        return self.layout.join_rows(self._scatter(products), rows).T

    def _backward(
        self, grad_outputs: list[torch.Tensor], *, batched: bool
    ) -> tuple[torch.Tensor | None, ...]:
        if not self.positions:
            return ()
        # retain_graph=True lets the graph serve further products; it is
        # freed with this object.
        return torch.autograd.grad(
            self.gradients,
            self.leaves,
            grad_outputs=grad_outputs,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )

    def _scatter(self, products: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        pieces: list[torch.Tensor | None] = [None] * len(self.layout.numels)
        for index, product in zip(self.positions, products, strict=True):
            pieces[index] = product
        return pieces


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
    """The per-batch terms of a model's mean loss, read from the data on each call of ``terms``."""

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
        self.num_samples, self.num_batches = self._count_samples_and_batches()
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

    def _count_samples_and_batches(self) -> tuple[int, int]:
        sizes = [size for _, _, _, size in self.batches()]
        if not sizes:
            raise InvalidArgumentError("data is empty; it must yield at least one batch")
        return sum(sizes), len(sizes)

    def objective(self, inputs: Any, targets: torch.Tensor) -> Callable[..., Any]:
        """Return the batch loss as a function of the parameters, one tensor each, in order."""

        def batch_loss(*parameters: torch.Tensor) -> torch.Tensor:
            named = dict(zip(self.names, parameters, strict=True))
            outputs = torch.func.functional_call(self.model, named, (inputs,))
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

    def mean_value_and_gradient(
        self, leaves: tuple[torch.Tensor, ...], layout: _Layout
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return L(θ) and ∇L(θ) at the parameter ``leaves``, checking every batch."""
        first = leaves[0]
        value = torch.zeros((), dtype=first.dtype, device=first.device)
        gradient = torch.zeros(sum(layout.numels), dtype=first.dtype, device=first.device)
        for term in self.terms():
            batch_value, batch_gradient = _value_and_gradient(
                term.evaluate,
                leaves,
                layout,
                value_name=f"loss {term.label}",
                gradient_name=f"gradient of the loss {term.label}",
                callable_name="loss_fn",
            )
            value += term.weight * batch_value.to(first.dtype)
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
