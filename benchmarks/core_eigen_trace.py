"""Top eigenvalue and trace of the digits MLP's Hessian: hessframe, PyHessian and curvlinops.

The matrix is the Hessian of the mean cross-entropy over the whole training
split of scikit-learn's digits data with respect to the 2410 parameters of
the MLP that ships with hessframe (``hessframe.digits``). Every tool receives the
same float32 model and the same batches of 256 samples. A dense float64
Hessian built by reverse-over-reverse differentiation
(``torch.func.jacrev(torch.func.jacrev(...))``, a different route from
hessframe's forward-over-reverse products) is the ground truth for both parts.

Top eigenvalue, every tool at tolerance 1e-3 in its own sense:

- hessframe: ``lanczos(op, k=1, criterion="eigenvalue")`` (Lanczos, "An
  iteration method for the solution of the eigenvalue problem of linear
  differential and integral operators", J. Res. Nat. Bur. Standards 45, 1950)
  from a random start; ``tol`` bounds the Kato-Temple estimate
  min(r, r²/gap) of the eigenvalue error relative to |λ|, so like the peers'
  tolerances it is a tolerance on the eigenvalue;
- PyHessian 0.1: ``hessian(...).eigenvalues(maxIter=100, tol=1e-3, top_n=1)``,
  power iteration that stops when two consecutive estimates differ by less
  than ``tol`` relative (its defaults);
- curvlinops: ``HessianLinearOperator(...).to_scipy()`` with
  ``scipy.sparse.linalg.eigsh(k=1, which="LA", tol=1e-3)`` (implicitly
  restarted Lanczos in ARPACK; ``tol`` is the relative accuracy of the Ritz value).

Hessian-vector products are counted by wrapping each tool's product function,
so a count never relies on a tool's own report. One product is one pass over
the whole training split. Wall time includes building each tool's operator;
for curvlinops that includes its default determinism check, whose products
are not counted.

Trace at an equal number of products: hessframe's Hutch++ (Meyer, Musco,
Musco and Woodruff, "Hutch++: Optimal Stochastic Trace Estimation", SOSA
2021) against PyHessian's Hutchinson estimator (Hutchinson, "A stochastic
estimator of the trace of the influence matrix for Laplacian smoothing
splines", 1989), error against the exact trace, averaged over seeds.
PyHessian's ``trace(maxIter, tol)`` is called with ``tol=0`` so that it spends
exactly ``maxIter`` products, and once with its defaults (``maxIter=100,
tol=1e-3``), where Hutch++ gets the number of products PyHessian chose.

Run: ``python benchmarks/core_eigen_trace.py`` (full) or ``--quick`` (smoke sizes).
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse.linalg
import torch
from torch import nn
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

from hessframe.curvature import AutodiffHessian
from hessframe.digits import digits_loader, load_pretrained_digits_mlp
from hessframe.linalg import hutchpp_trace, lanczos

DEFAULT_OUTPUT = "core_eigen_trace.md"
TOLERANCE = 1e-3
AGREEMENT_RTOL = 1e-3
PYHESSIAN_MAX_ITER = 100
PYHESSIAN_TRACE_DEFAULT_TOL = 1e-3
BATCH_SIZE = 256
QUICK_SAMPLES = 64
EIGEN_HEADING = "## Top eigenvalue"
TRACE_HEADING = "## Trace at an equal number of Hessian-vector products"
PYHESSIAN_TIGHT_TOLERANCE = 1e-4
PYHESSIAN_TIGHT_METHOD = "PyHessian power iteration, tol=1e-4"
EIGEN_METHODS = (
    "hessframe lanczos",
    "PyHessian power iteration",
    "curvlinops + scipy eigsh",
)


@dataclass(frozen=True)
class Problem:
    """The digits MLP, its training batches and the dense float64 ground truth.

    Attributes:
        eigenvalues: Eigenvalues of ``dense`` in ascending order.
    """

    model: nn.Module
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    dense: torch.Tensor
    eigenvalues: torch.Tensor

    @property
    def num_parameters(self) -> int:
        return self.dense.shape[0]

    @property
    def num_samples(self) -> int:
        return sum(len(labels) for _, labels in self.batches)


def load_problem(quick: bool) -> Problem:
    """Load the shipped model and the training batches (one batch of 64 with ``quick``)."""
    model = load_pretrained_digits_mlp()
    if quick:
        batches = [next(iter(digits_loader("train", QUICK_SAMPLES)))]
    else:
        batches = list(digits_loader("train", BATCH_SIZE))
    dense = dense_hessian(model, batches)
    return Problem(model, batches, dense, torch.linalg.eigvalsh(dense))


def dense_hessian(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Return the float64 Hessian of the mean cross-entropy over ``batches`` (n × n)."""
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach().to(torch.float64) for _, p in model.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    inputs = torch.cat([features for features, _ in batches]).to(torch.float64)
    labels = torch.cat([target for _, target in batches])

    def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
        chunks = flat.split(sizes)
        state = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return nn.functional.cross_entropy(functional_call(model, state, (inputs,)), labels)

    flat = torch.cat([p.reshape(-1) for p in params])
    hessian = torch.func.jacrev(torch.func.jacrev(loss_of_flat), chunk_size=512)(flat)
    return (hessian + hessian.T) / 2


class ProductCounter:
    """Count Hessian-vector products (columns) that pass through a wrapped function."""

    def __init__(self) -> None:
        self.count = 0

    def wrap_columns(self, fn: Callable, columns_of: Callable[[object], int]) -> Callable:
        def counted(*args, **kwargs):
            self.count += columns_of(args[0])
            return fn(*args, **kwargs)

        return counted


def count_hessframe_products(operator: AutodiffHessian, counter: ProductCounter) -> None:
    """Route the provider's ``_matvec`` and ``_matmat`` through ``counter``."""
    operator._matvec = counter.wrap_columns(operator._matvec, lambda v: 1)
    operator._matmat = counter.wrap_columns(operator._matmat, lambda block: block.shape[1])


def pyhessian_instance(problem: Problem, counter: ProductCounter):
    """Build PyHessian's ``hessian`` on the same batches and count its full-data products."""
    from pyhessian import hessian

    instance = hessian(problem.model, nn.CrossEntropyLoss(), dataloader=problem.batches, cuda=False)
    instance.dataloader_hv_product = counter.wrap_columns(
        instance.dataloader_hv_product, lambda v: 1
    )
    return instance


def hessframe_operator(problem: Problem, counter: ProductCounter) -> AutodiffHessian:
    operator = AutodiffHessian.from_module(
        problem.model, nn.functional.cross_entropy, problem.batches
    )
    count_hessframe_products(operator, counter)
    return operator


@dataclass(frozen=True)
class EigenRun:
    """One tool's top eigenvalue, its product count, wall time and CPU time of this process."""

    value: float
    products: int
    seconds: float
    cpu_seconds: float


def run_hessframe_eigen(problem: Problem, seed: int) -> EigenRun:
    counter = ProductCounter()
    start = time.perf_counter()
    cpu_start = time.process_time()
    operator = hessframe_operator(problem, counter)
    result = lanczos(
        operator,
        k=1,
        which="largest",
        tol=TOLERANCE,
        criterion="eigenvalue",
        generator=torch.Generator().manual_seed(seed),
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return EigenRun(float(result.eigenvalues[0]), counter.count, seconds, cpu_seconds)


def run_pyhessian_eigen(problem: Problem, seed: int, tol: float = TOLERANCE) -> EigenRun:
    counter = ProductCounter()
    torch.manual_seed(seed)
    start = time.perf_counter()
    cpu_start = time.process_time()
    instance = pyhessian_instance(problem, counter)
    eigenvalues, _ = instance.eigenvalues(maxIter=PYHESSIAN_MAX_ITER, tol=tol, top_n=1)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return EigenRun(float(eigenvalues[0]), counter.count, seconds, cpu_seconds)


def run_curvlinops_eigen(problem: Problem, seed: int) -> EigenRun:
    from curvlinops import HessianLinearOperator

    counter = ProductCounter()
    start = time.perf_counter()
    cpu_start = time.process_time()
    params = [p for p in problem.model.parameters() if p.requires_grad]
    operator = HessianLinearOperator(
        problem.model, nn.CrossEntropyLoss(), params, problem.batches
    ).to_scipy()
    counted = scipy.sparse.linalg.LinearOperator(
        operator.shape,
        matvec=counter.wrap_columns(operator.matvec, lambda v: 1),
        matmat=counter.wrap_columns(operator.matmat, lambda block: block.shape[1]),
        dtype=operator.dtype,
    )
    # A seeded random start vector, like the one ARPACK draws without v0, keeps
    # the run reproducible without favouring any direction.
    start_vector = np.random.default_rng(seed).standard_normal(operator.shape[0])
    values = scipy.sparse.linalg.eigsh(
        counted, k=1, which="LA", tol=TOLERANCE, v0=start_vector, return_eigenvectors=False
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return EigenRun(float(values[0]), counter.count, seconds, cpu_seconds)


def eigen_section(problem: Problem, repeats: int) -> list[str]:
    """Run the three eigenvalue methods ``repeats`` times each and return the report lines."""
    reference = float(problem.eigenvalues[-1])
    runners = {
        EIGEN_METHODS[0]: run_hessframe_eigen,
        EIGEN_METHODS[1]: run_pyhessian_eigen,
        EIGEN_METHODS[2]: run_curvlinops_eigen,
        PYHESSIAN_TIGHT_METHOD: functools.partial(
            run_pyhessian_eigen, tol=PYHESSIAN_TIGHT_TOLERANCE
        ),
    }
    runs: dict[str, list[EigenRun]] = {name: [] for name in runners}
    for seed in range(repeats):
        _common.progress(f"top eigenvalue, seed {seed + 1} of {repeats}")
        for name, runner in runners.items():
            runs[name].append(runner(problem, seed))

    summary = {
        name: EigenRun(
            value=statistics.median(r.value for r in rs),
            products=int(statistics.median(r.products for r in rs)),
            seconds=statistics.median(r.seconds for r in rs),
            cpu_seconds=statistics.median(r.cpu_seconds for r in rs),
        )
        for name, rs in runs.items()
    }
    ours = summary[EIGEN_METHODS[0]]
    pyhessian = summary[EIGEN_METHODS[1]]
    rows = []
    for name, result in summary.items():
        worst_error = max(abs(r.value - reference) / abs(reference) for r in runs[name])
        rows.append(
            [
                name,
                result.value,
                worst_error,
                result.products,
                result.seconds,
                result.cpu_seconds,
                ours.products / result.products,
                ours.seconds / result.seconds,
            ]
        )

    values = [r.value for name in EIGEN_METHODS for r in runs[name]]
    spread = (max(values) - min(values)) / abs(reference)
    peer_seconds = min(summary[name].seconds for name in EIGEN_METHODS[1:])
    fastest = {name: min(r.seconds for r in runs[name]) for name in EIGEN_METHODS}
    peer_fastest = min(fastest[name] for name in EIGEN_METHODS[1:])
    targets = [
        [
            "all values agree to 1e-3 relative",
            f"largest relative spread over all runs {spread:.2e}",
            _common.verdict(spread <= AGREEMENT_RTOL),
        ],
        [
            "hessframe uses at most half of PyHessian's products",
            f"{ours.products} vs {pyhessian.products} "
            f"(ratio {ours.products / pyhessian.products:.3f})",
            _common.verdict(ours.products <= 0.5 * pyhessian.products),
        ],
        [
            "hessframe wall time below both peers (median and fastest seed)",
            f"median {ours.seconds:.3f} s vs fastest peer {peer_seconds:.3f} s, fastest seed "
            f"{fastest[EIGEN_METHODS[0]]:.3f} s vs {peer_fastest:.3f} s",
            _common.verdict(
                ours.seconds < peer_seconds and fastest[EIGEN_METHODS[0]] < peer_fastest
            ),
        ],
    ]
    return [
        EIGEN_HEADING,
        "",
        f"Dense float64 reference λ_max = {reference:.6g}. Medians over {repeats} seeds, the "
        "methods taking turns within each seed. CPU s is the CPU time of this process over "
        "both threads, which other processes on the machine disturb less than wall time. "
        "Ratios are hessframe over the row's method. The last row runs PyHessian again "
        f"with tol={PYHESSIAN_TIGHT_TOLERANCE:g}, to show what its power iteration spends to "
        "reach the accuracy of the others; it is not part of the targets, which compare every "
        f"tool at tol={TOLERANCE:g}.",
        "",
        _common.markdown_table(
            (
                "method",
                "λ_max",
                "worst relative error",
                "products",
                "wall s",
                "CPU s",
                "hessframe / method products",
                "hessframe / method time",
            ),
            rows,
        ),
        "",
        "### Targets",
        "",
        _common.markdown_table(("target", "measured", "result"), targets),
        "",
    ]


@dataclass(frozen=True)
class TraceRun:
    """One trace estimate, its product count and wall time."""

    value: float
    products: int
    seconds: float


def run_hutchpp(problem: Problem, budget: int, seed: int) -> TraceRun:
    counter = ProductCounter()
    operator = hessframe_operator(problem, counter)
    start = time.perf_counter()
    estimate = hutchpp_trace(operator, budget, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    return TraceRun(float(estimate.value), counter.count, seconds)


def run_pyhessian_trace(problem: Problem, max_iter: int, tol: float, seed: int) -> TraceRun:
    counter = ProductCounter()
    instance = pyhessian_instance(problem, counter)
    torch.manual_seed(seed)
    start = time.perf_counter()
    samples = instance.trace(maxIter=max_iter, tol=tol)
    seconds = time.perf_counter() - start
    return TraceRun(float(np.mean(samples)), counter.count, seconds)


def predicted_error_ratio(eigenvalues: torch.Tensor, budget: int) -> float:
    """Estimate Hutch++'s error over Hutchinson's at a budget m, from the spectrum of H.

    Hutchinson's estimate from m Gaussian probes of a symmetric A has variance
    2‖A‖_F²/m. Hutch++ spends 2k products, k = ⌊m/3⌋, on a basis and probes the
    deflated matrix with the other m − 2k. If that basis were the k eigenvectors of
    largest |λ|, the probes would see H − H_k, with ‖H − H_k‖_F² the sum of the other
    λ². The ratio of the two standard deviations then shows how far the spectrum's
    decay lets deflation help at that budget. It is an estimate: Rademacher probes
    (which both tools use) have a smaller variance, 2(‖A‖_F² − Σᵢ Aᵢᵢ²)/m, a random
    sketch only approximates the top eigenvectors, and an error averaged over a few
    seeds scatters around its expectation.
    """
    squares = eigenvalues.abs().sort(descending=True).values ** 2
    k = budget // 3
    hutchinson_variance = float(squares.sum()) / budget
    hutchpp_variance = float(squares[k:].sum()) / (budget - 2 * k)
    return (hutchpp_variance / hutchinson_variance) ** 0.5


def trace_rows(problem: Problem, budgets: tuple[int, ...], seeds: int) -> list[list[object]]:
    """Compare the two estimators at each budget and at PyHessian's default stopping rule."""
    exact = float(torch.trace(problem.dense))
    rows = []
    for budget in budgets:
        _common.progress(f"trace with {budget} products, {seeds} seeds")
        ours = [run_hutchpp(problem, budget, seed) for seed in range(seeds)]
        theirs = [run_pyhessian_trace(problem, budget, 0.0, seed) for seed in range(seeds)]
        rows.append(
            trace_row(
                f"{budget}", exact, ours, theirs, predicted_error_ratio(problem.eigenvalues, budget)
            )
        )

    _common.progress(f"trace with PyHessian's default stopping rule, {seeds} seeds")
    theirs = [
        run_pyhessian_trace(problem, PYHESSIAN_MAX_ITER, PYHESSIAN_TRACE_DEFAULT_TOL, seed)
        for seed in range(seeds)
    ]
    # Hutch++ needs at least 3 products (sketch, deflated trace, probes). The
    # product columns show when that exceeds PyHessian's own count.
    ours = [run_hutchpp(problem, max(run.products, 3), seed) for seed, run in enumerate(theirs)]
    typical_budget = round(statistics.mean(r.products for r in ours))
    rows.append(
        trace_row(
            "PyHessian defaults (maxIter=100, tol=1e-3)",
            exact,
            ours,
            theirs,
            predicted_error_ratio(problem.eigenvalues, typical_budget),
        )
    )
    return rows


def trace_row(
    label: str, exact: float, ours: list[TraceRun], theirs: list[TraceRun], predicted_ratio: float
) -> list[object]:
    ours_error = statistics.mean(abs(r.value - exact) / abs(exact) for r in ours)
    theirs_error = statistics.mean(abs(r.value - exact) / abs(exact) for r in theirs)
    return [
        label,
        f"{statistics.mean(r.products for r in ours):.1f}",
        f"{statistics.mean(r.products for r in theirs):.1f}",
        ours_error,
        theirs_error,
        ours_error / theirs_error,
        predicted_ratio,
        statistics.mean(r.seconds for r in ours),
        statistics.mean(r.seconds for r in theirs),
        _common.verdict(ours_error < theirs_error),
    ]


def trace_section(problem: Problem, budgets: tuple[int, ...], seeds: int) -> list[str]:
    exact = float(torch.trace(problem.dense))
    return [
        TRACE_HEADING,
        "",
        f"Exact trace from the dense float64 Hessian: {exact:.6g}. Errors are relative, "
        f"averaged over {seeds} seeds. Target: Hutch++ error below PyHessian's Hutchinson. "
        "The predicted ratio is the ratio of standard deviations Hutch++ would reach if its "
        "sketch found the top ⌊m/3⌋ eigenvectors exactly, computed from the dense Hessian's "
        "spectrum. Near or above 1, this spectrum decays too slowly for deflation to pay at "
        "that budget.",
        "",
        _common.markdown_table(
            (
                "products",
                "Hutch++ products",
                "PyHessian products",
                "Hutch++ error",
                "PyHessian error",
                "error ratio",
                "predicted ratio",
                "Hutch++ s",
                "PyHessian s",
                "result",
            ),
            trace_rows(problem, budgets, seeds),
        ),
        "",
    ]


def run(quick: bool, repeats: int, threads: int) -> str:
    """Run both parts and return the Markdown report."""
    _common.set_threads(threads)
    _common.progress("building the dense float64 Hessian")
    problem = load_problem(quick)
    budgets = (6,) if quick else (30, 90, 300)
    seeds = 1 if quick else 10
    lines = [
        "# Core benchmark: top eigenvalue and trace of the digits MLP Hessian",
        "",
        *_common.environment_lines(threads, quick),
        f"- problem: {problem.num_parameters} parameters, mean cross-entropy over "
        f"{problem.num_samples} training samples in batches of "
        f"{len(problem.batches[0][1])}, float32",
        "",
        *eigen_section(problem, repeats),
        *trace_section(problem, budgets, seeds),
        "Command: `python benchmarks/core_eigen_trace.py" + (" --quick" if quick else "") + "`",
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
