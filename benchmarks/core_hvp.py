"""Time one Hessian-vector product against one gradient, on an MLP and a small CNN (CPU).

The cost of a Hessian-vector product is quoted as a multiple of the cost of
one gradient of the same loss on the same batch, because that ratio is what
decides whether a second-order method is affordable. Theory puts
forward-over-reverse differentiation at a small constant multiple of a
gradient (Pearlmutter, "Fast exact multiplication by the Hessian", Neural
Computation 6(1), 1994).

Compared, each on the same model, batch and vector:

- gradient: one forward pass and ``torch.autograd.grad`` (the denominator);
- hessframe: ``AutodiffHessian.from_module(...).matvec(v)`` (forward-over-reverse);
- reverse-over-reverse: ``torch.autograd.grad`` with ``create_graph=True``, then
  the gradient of ⟨∇L, v⟩, once rebuilding the graph of ∇L for every product and
  once keeping it between products (as PyHessian does for one batch), so that a
  product is one backward pass through that graph;
- ``torch.autograd.functional.hvp`` on the loss as a function of the flat parameters;
- ``torch.func.jvp`` of ``torch.func.grad``: forward-over-reverse written by hand,
  the cost hessframe builds on.

Inputs are random tensors: the cost of the products does not depend on the values.
The gradient's time includes its forward pass. Which strategy hessframe uses is
its own choice (``mode="auto"``); on one batch on the CPU it may keep the graph
of ∇L between products like the kept-graph row, which costs that graph's memory.

Run: ``python benchmarks/core_hvp.py`` (full) or ``--quick`` (smoke sizes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from hessframe.curvature import AutodiffHessian

DEFAULT_OUTPUT = "core_hvp.md"
TARGET_RATIO = 2.5
#: Timed rounds of a full run; one round takes milliseconds to a few tenths of a second.
FULL_REPEATS = 50
HESSFRAME_METHOD = "hessframe AutodiffHessian.matvec"
GRADIENT_METHOD = "gradient (torch.autograd.grad)"
PEER_METHODS = (
    "reverse-over-reverse (torch.autograd.grad twice)",
    "reverse-over-reverse, gradient graph kept",
    "torch.autograd.functional.hvp",
    "torch.func.jvp of torch.func.grad",
)


@dataclass(frozen=True)
class Problem:
    """One model with one batch of inputs and class labels."""

    name: str
    model: nn.Module
    inputs: torch.Tensor
    labels: torch.Tensor

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def make_mlp_problem(quick: bool) -> Problem:
    """Return a 784-128-10 ReLU MLP (101,770 parameters) on a batch of 256, or a small one."""
    hidden, batch = (16, 32) if quick else (128, 256)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    inputs = torch.randn(batch, 784)
    labels = torch.randint(0, 10, (batch,))
    return Problem(f"MLP 784-{hidden}-10", model, inputs, labels)


def make_cnn_problem(quick: bool) -> Problem:
    """Return a two-convolution ReLU CNN on 28×28 images, batch 64 (a narrow one with ``quick``)."""
    (first, second), batch = ((4, 8), 4) if quick else ((16, 32), 64)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, first, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * 5 * 5, 10),
    )
    inputs = torch.randn(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,))
    return Problem(f"CNN conv{first}-conv{second}-linear", model, inputs, labels)


def make_methods(problem: Problem, vector: torch.Tensor) -> dict[str, Callable[[], object]]:
    """Return one zero-argument callable per method, all computing on the same batch and vector."""
    model, inputs, labels = problem.model, problem.inputs, problem.labels
    loss_fn = nn.functional.cross_entropy
    names = [name for name, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    vector_list = [
        chunk.view(shape) for chunk, shape in zip(vector.split(sizes), shapes, strict=True)
    ]
    flat_params = torch.cat([p.detach().reshape(-1) for p in params])

    def gradient() -> object:
        loss = loss_fn(model(inputs), labels)
        return torch.autograd.grad(loss, params)

    hessian = AutodiffHessian.from_module(model, loss_fn, [(inputs, labels)])

    def hessframe_matvec() -> object:
        return hessian.matvec(vector)

    hessframe_matvec.provider = hessian

    def reverse_over_reverse() -> object:
        loss = loss_fn(model(inputs), labels)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((g * v).sum() for g, v in zip(grads, vector_list, strict=True))
        return torch.autograd.grad(dot, params)

    # PyHessian's single-batch mode builds the graph of the gradient once and
    # runs only the second backward pass per product.
    kept_gradient = torch.autograd.grad(loss_fn(model(inputs), labels), params, create_graph=True)

    def reverse_over_reverse_kept_graph() -> object:
        return torch.autograd.grad(
            kept_gradient, params, grad_outputs=vector_list, retain_graph=True
        )

    def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
        chunks = flat.split(sizes)
        state = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return loss_fn(functional_call(model, state, (inputs,)), labels)

    def autograd_functional_hvp() -> object:
        return torch.autograd.functional.hvp(loss_of_flat, flat_params, vector)

    detached = {n: p.detach() for n, p in zip(names, params, strict=True)}
    # Separate parameter-shaped tensors, as a user of torch.func would hold them,
    # rather than views into one flat vector.
    tangents = {name: v.clone() for name, v in zip(names, vector_list, strict=True)}

    def loss_of_dict(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, state, (inputs,)), labels)

    def func_forward_over_reverse() -> object:
        return torch.func.jvp(torch.func.grad(loss_of_dict), (detached,), (tangents,))[1]

    return {
        GRADIENT_METHOD: gradient,
        HESSFRAME_METHOD: hessframe_matvec,
        PEER_METHODS[0]: reverse_over_reverse,
        PEER_METHODS[1]: reverse_over_reverse_kept_graph,
        PEER_METHODS[2]: autograd_functional_hvp,
        PEER_METHODS[3]: func_forward_over_reverse,
    }


def check_agreement(problem: Problem, methods: dict[str, Callable[[], object]]) -> float:
    """Return the largest relative difference between the methods' Hessian-vector products.

    A timing is only worth comparing if every method computes the same product.
    """
    products = {}
    for name, method in methods.items():
        if name == GRADIENT_METHOD:
            continue
        result = method()
        if isinstance(result, torch.Tensor):
            products[name] = result.detach().reshape(-1)
        elif isinstance(result, dict):
            products[name] = torch.cat([t.detach().reshape(-1) for t in result.values()])
        elif name == "torch.autograd.functional.hvp":
            products[name] = result[1].detach().reshape(-1)
        else:
            products[name] = torch.cat([t.detach().reshape(-1) for t in result])
    reference = products[HESSFRAME_METHOD]
    scale = float(reference.norm()) or 1.0
    return max(float((p - reference).norm()) / scale for p in products.values())


def measure(problem: Problem, repeats: int) -> tuple[list[list[object]], str]:
    """Time every method on ``problem`` and return the table rows and a note on the products."""
    generator = torch.Generator().manual_seed(1)
    vector = torch.randn(problem.num_parameters, generator=generator)
    methods = make_methods(problem, vector)
    disagreement = check_agreement(problem, methods)

    timings = _common.time_interleaved(methods, repeats, warmup=2)

    rows = []
    for name, timing in timings.items():
        ratio = _common.median_ratio(timing, timings[GRADIENT_METHOD])
        min_ratio = timing.min_s / timings[GRADIENT_METHOD].min_s
        if name == HESSFRAME_METHOD:
            passed = ratio <= TARGET_RATIO and min_ratio <= TARGET_RATIO
            target, result = f"≤ {TARGET_RATIO}", _common.verdict(passed)
        else:
            target, result = "", ""
        rows.append(
            [
                problem.name,
                problem.num_parameters,
                len(problem.labels),
                name,
                timing.median_s * 1e3,
                timing.min_s * 1e3,
                ratio,
                min_ratio,
                target,
                result,
            ]
        )
    provider = methods[HESSFRAME_METHOD].provider
    note = (
        f"- {problem.name}: largest relative difference between the methods' products "
        f"{disagreement:.1e} (float32); hessframe used {provider.active_mode}"
        + (", keeping the graph of the gradient" if provider.retain_graph else "")
    )
    return rows, note


HEADER = (
    "model",
    "parameters",
    "batch",
    "method",
    "median ms",
    "min ms",
    "time / gradient",
    "min / min gradient",
    "target",
    "result",
)
HEADING = "## Hessian-vector product time over gradient time"


def run(quick: bool, repeats: int, threads: int) -> str:
    """Run the benchmark and return the Markdown report."""
    _common.set_threads(threads)
    rows = []
    notes = []
    for problem in (make_mlp_problem(quick), make_cnn_problem(quick)):
        _common.progress(f"timing {problem.name}")
        problem_rows, note = measure(problem, repeats)
        rows.extend(problem_rows)
        notes.append(note)

    lines = [
        "# Core benchmark: Hessian-vector product cost",
        "",
        *_common.environment_lines(threads, quick),
        f"- timing: {repeats} interleaved rounds (every method once per round) after 2 warm-up "
        "rounds. `time / gradient` is the median over rounds of the method's time over the "
        "gradient's time in the same round. `min / min gradient` compares the fastest calls, "
        "the least disturbed by other processes. A target passes only if both ratios meet it.",
        "- problem: cross-entropy loss, float32, random inputs and vector",
        "",
        HEADING,
        "",
        _common.markdown_table(HEADER, rows),
        "",
        "Agreement of the products (each timing computes the same H v):",
        "",
        *notes,
        "",
        "Command: `python benchmarks/core_hvp.py" + (" --quick" if quick else "") + "`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Parse the command line, run, print and write the report, and return it."""
    parser = _common.build_parser(__doc__.splitlines()[0], DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    report = run(args.quick, _common.resolve_repeats(args, FULL_REPEATS), args.threads)
    print(report)
    _common.write_report(report, _common.resolve_output(args, DEFAULT_OUTPUT))
    return report


if __name__ == "__main__":
    main()
