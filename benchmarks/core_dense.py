"""Time a dense Hessian of a ~2,000-parameter model: hessframe beside ``torch.func.hessian``.

The model is a 20-48-16-10 tanh MLP (1962 parameters) with the mean
cross-entropy over a batch of 128 random inputs. Both tools differentiate the
same function of the flat parameter vector; hessframe is also timed through
``AutodiffHessian.from_module``, the route a user of a ``torch.nn.Module``
takes. ``torch.func.hessian(f)`` is ``jacfwd(jacrev(f))``, forward-over-reverse
vectorised over all n basis vectors at once.

Run: ``python benchmarks/core_dense.py`` (full) or ``--quick`` (smoke sizes).
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from hessframe.curvature import AutodiffHessian

DEFAULT_OUTPUT = "core_dense.md"
TARGET_RATIO = 1.2
HEADING = "## Dense Hessian time"
REFERENCE_METHOD = "torch.func.hessian(f)(x)"
HESSFRAME_METHODS = (
    "hessframe AutodiffHessian(f, x).to_dense()",
    "hessframe AutodiffHessian.from_module(...).to_dense()",
)


def make_model(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Return the tanh MLP and a batch of inputs and labels (tiny with ``quick``)."""
    widths, batch = ((8, 12, 4, 3), 16) if quick else ((20, 48, 16, 10), 128)
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(widths):
        layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    inputs = torch.randn(batch, widths[0])
    labels = torch.randint(0, widths[-1], (batch,))
    return model, inputs, labels


def make_methods(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype
) -> dict[str, Callable[[], torch.Tensor]]:
    """Return one zero-argument callable per method, each building the same dense Hessian."""
    model = model.to(dtype)
    inputs = inputs.to(dtype)
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    sizes = [p.numel() for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of_flat(x: torch.Tensor) -> torch.Tensor:
        state = {n: c.view(s) for n, c, s in zip(names, x.split(sizes), shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(model, state, (inputs,)), labels)

    from_function = AutodiffHessian(loss_of_flat, flat)
    from_module = AutodiffHessian.from_module(
        model, nn.functional.cross_entropy, [(inputs, labels)]
    )
    return {
        REFERENCE_METHOD: lambda: torch.func.hessian(loss_of_flat)(flat),
        HESSFRAME_METHODS[0]: from_function.to_dense,
        HESSFRAME_METHODS[1]: from_module.to_dense,
    }


def measure(quick: bool, dtype: torch.dtype, repeats: int) -> tuple[list[list[object]], int]:
    """Time the methods in ``dtype`` and return the table rows and the parameter count."""
    model, inputs, labels = make_model(quick)
    methods = make_methods(model, inputs, labels, dtype)

    reference = methods[REFERENCE_METHOD]()
    scale = float(reference.abs().max())
    timings = _common.time_interleaved(methods, repeats, warmup=1)

    rows = []
    for name, timing in timings.items():
        difference = float((methods[name]() - reference).abs().max()) / scale
        ratio = _common.median_ratio(timing, timings[REFERENCE_METHOD])
        min_ratio = timing.min_s / timings[REFERENCE_METHOD].min_s
        passed = ratio <= TARGET_RATIO and min_ratio <= TARGET_RATIO
        is_ours = name in HESSFRAME_METHODS
        rows.append(
            [
                str(dtype).removeprefix("torch."),
                reference.shape[0],
                name,
                timing.median_s * 1e3,
                timing.min_s * 1e3,
                ratio,
                min_ratio,
                f"{difference:.1e}",
                f"≤ {TARGET_RATIO}" if is_ours else "",
                _common.verdict(passed) if is_ours else "",
            ]
        )
    return rows, reference.shape[0]


HEADER = (
    "dtype",
    "parameters",
    "method",
    "median ms",
    "min ms",
    "time / torch.func.hessian",
    "min / min torch.func.hessian",
    "max abs difference / max abs H",
    "target",
    "result",
)


def run(quick: bool, repeats: int, threads: int) -> str:
    """Run the benchmark in float32 and float64 and return the Markdown report."""
    _common.set_threads(threads)
    rows = []
    for dtype in (torch.float32, torch.float64):
        _common.progress(f"timing dense Hessians in {dtype}")
        dtype_rows, _ = measure(quick, dtype, repeats)
        rows.extend(dtype_rows)
    lines = [
        "# Core benchmark: dense Hessian",
        "",
        *_common.environment_lines(threads, quick),
        f"- timing: {repeats} interleaved rounds (every method once per round) after 1 warm-up "
        "round. `time / torch.func.hessian` is the median over rounds of the method's time "
        "over torch.func.hessian's time in the same round, and `min / min` compares the fastest "
        "calls, the least disturbed by other processes. A target passes only if both ratios "
        "meet it. The difference column compares each result with torch.func.hessian.",
        "",
        HEADING,
        "",
        _common.markdown_table(HEADER, rows),
        "",
        "Command: `python benchmarks/core_dense.py" + (" --quick" if quick else "") + "`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Parse the command line, run, print and write the report, and return it."""
    parser = _common.build_parser(__doc__.splitlines()[0], DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    report = run(args.quick, _common.resolve_repeats(args), args.threads)
    print(report)
    _common.write_report(report, _common.resolve_output(args, DEFAULT_OUTPUT))
    return report


if __name__ == "__main__":
    main()
