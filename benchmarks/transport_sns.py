"""Compare the Sinkhorn-Newton-Sparse solver with POT's and RegOT's entropic OT solvers.

Every solver runs in this one process on the same marginals and the same cost
matrix (scaled to [0, 1]) at the same entropic weight ``reg``. Each is timed
until the L1 marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ of its plan is below
``--target-error`` (1e-8), and the error is always recomputed here from the
returned plan, not taken from the solver's own log:

- SNS (``hessframe_transport.solver.sinkhorn_newton_sparse``) runs once with
  ``stopThr`` set to the target, since its stopping rule is the L1 marginal error.
- POT ``sinkhorn_log`` and ``sinkhorn_stabilized`` stop on the L2 error of one
  marginal, so they run in chunks of ``CHUNK_ITERATIONS`` iterations, each chunk
  warm-started from the last, and the L1 error is checked between chunks. Only the
  time spent inside POT counts. This is the check POT itself makes every ten
  iterations, with the L1 norm of both marginals in place of its own.
- POT ``sinkhorn_epsilon_scaling`` restarts its schedule on every call, so it
  runs once with ``stopThr = target² / (n + m)``, which bounds the L1 error by
  the target through its squared-L2 stopping rule. Its iterations are the inner
  ``sinkhorn_stabilized`` iterations, counted by wrapping that function.
- RegOT's ``sinkhorn_sparse_newton`` and ``sinkhorn_ssns`` stop on the L2 norm of
  the dual gradient; the first ``tol`` in 1e-9, 1e-10, … whose plan meets the
  target is reported (the failed tries are not timed).

A solver whose run takes less than ``REPEAT_BELOW_SECONDS`` runs ``REPEATS``
times and the median time is reported, since the fast runs are the most
sensitive to other load on the machine.

Peak memory is measured in a child process per solver and case, as the growth of
the peak resident set size (``VmHWM``) over the run; the POT solvers run
``MEMORY_ITERATIONS`` iterations there, which is enough because their working set
is fixed after the first iteration. Each child needs its own imports, so this
adds about a minute.

Usage::

    python benchmarks/transport_sns.py            # full run, about 10-20 minutes on 2 cores
    python benchmarks/transport_sns.py --quick    # smoke run on small inputs, under a minute

Writes the Markdown report to ``benchmarks/results/transport.md`` (or
``--output``) through a temporary file and a rename, and prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASET_DIR = REPO_ROOT / "datasets" / "transport"
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "transport.md"

REG = 1.0 / 1200.0
TARGET_ERROR = 1e-8
CHUNK_ITERATIONS = 10
MEMORY_ITERATIONS = 50
REPEATS = 3
REPEAT_BELOW_SECONDS = 5.0
REGOT_MAX_ITERATIONS = 1000
REGOT_TOLERANCES = (1e-9, 1e-10, 1e-11, 1e-12, 1e-13)

SNS = "SNS (hessframe)"
SINKHORN_LOG = "POT sinkhorn_log"
SINKHORN_STABILIZED = "POT sinkhorn_stabilized"
EPSILON_SCALING = "POT sinkhorn_epsilon_scaling"
SINKHORN_PLAIN = "POT sinkhorn"
REGOT_SPARSE_NEWTON = "RegOT sinkhorn_sparse_newton"
REGOT_SSNS = "RegOT sinkhorn_ssns"


@dataclass(frozen=True)
class Case:
    """One transport problem: marginals, a cost matrix in [0, 1] and the entropic weight."""

    name: str
    a: np.ndarray
    b: np.ndarray
    cost: np.ndarray
    reg: float


@dataclass(frozen=True)
class Limits:
    """Caps that keep a slow solver from running forever."""

    max_iterations: int
    max_seconds: float


@dataclass
class Run:
    """Iterations, time and final error of one solver on one case."""

    solver: str
    iterations: int
    time_s: float
    error: float
    detail: str = ""
    peak_mib: float | None = None
    newton_iterations: int | None = None

    def converged(self, target: float) -> bool:
        return bool(self.error < target)


def l1_marginal_error(plan: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    plan = plan.toarray() if hasattr(plan, "toarray") else np.asarray(plan)
    return float(np.abs(plan.sum(axis=1) - a).sum() + np.abs(plan.sum(axis=0) - b).sum())


# ----------------------------------------------------------------------------- cases


def random_assignment_case(n: int, reg: float, seed: int = 0) -> Case:
    """Build uniform marginals and a cost matrix of independent U(0, 1) entries."""
    cost = np.random.default_rng(seed).uniform(size=(n, n))
    uniform = np.full(n, 1.0 / n)
    return Case(f"random assignment, n={n}", uniform, uniform.copy(), cost / cost.max(), reg)


def digit_case(metric: str, reg: float, downsample: int = 1) -> Case:
    """Build the shipped digit pair (28×28, pixels with mass only) under a scaled ground cost."""
    from hessframe_transport.cost import cost_matrix
    from hessframe_transport.io import read_measure

    source = read_measure(DATASET_DIR / "source.png", argument="SOURCE", kind="image")
    target = read_measure(DATASET_DIR / "target.png", argument="TARGET", kind="image")
    a, b = source.weights, target.weights
    x, y = source.points, target.points
    if downsample > 1:
        a, x = a[::downsample] / a[::downsample].sum(), x[::downsample]
        b, y = b[::downsample] / b[::downsample].sum(), y[::downsample]
    cost = cost_matrix(x, y, metric=metric, scale=False)
    label = "W2 (sqeuclidean)" if metric == "sqeuclidean" else "W1 (euclidean)"
    return Case(f"{label}, digits {a.size}×{b.size}", a, b, cost / cost.max(), reg)


# ----------------------------------------------------------------------------- solvers


def run_sns(case: Case, limits: Limits, target: float) -> Run:
    from hessframe_transport.solver import sinkhorn_newton_sparse

    started = time.perf_counter()
    plan, log = sinkhorn_newton_sparse(
        case.a,
        case.b,
        case.cost,
        case.reg,
        numItermax=limits.max_iterations,
        stopThr=target,
        log=True,
    )
    elapsed = time.perf_counter() - started
    sinkhorn, newton = int(log["n_sinkhorn_iterations"]), int(log["n_newton_iterations"])
    failed = int(log.get("n_failed_newton_steps", 0))
    detail = f"{sinkhorn} Sinkhorn + {newton} Newton"
    if failed:
        detail += f" + {failed} rejected Newton steps"
    error = l1_marginal_error(plan, case.a, case.b)
    return Run(SNS, sinkhorn + newton + failed, elapsed, error, detail, newton_iterations=newton)


def _run_pot_chunked(
    name: str,
    step: Callable[[tuple | None], tuple[np.ndarray, dict]],
    warmstart_of: Callable[[dict], tuple],
    case: Case,
    limits: Limits,
    target: float,
) -> Run:
    warmstart, iterations, elapsed, error = None, 0, 0.0, np.inf
    while iterations < limits.max_iterations and elapsed < limits.max_seconds:
        started = time.perf_counter()
        plan, log = step(warmstart)
        elapsed += time.perf_counter() - started
        iterations += CHUNK_ITERATIONS
        warmstart = warmstart_of(log)
        error = l1_marginal_error(plan, case.a, case.b)
        if not np.isfinite(error) or error < target:
            break
    return Run(name, iterations, elapsed, error)


def run_sinkhorn_log(case: Case, limits: Limits, target: float) -> Run:
    import ot

    def step(warmstart):
        return ot.bregman.sinkhorn_log(
            case.a, case.b, case.cost, case.reg, numItermax=CHUNK_ITERATIONS, stopThr=0.0,
            log=True, warn=False, warmstart=warmstart,
        )  # fmt: skip

    return _run_pot_chunked(
        SINKHORN_LOG, step, lambda log: (log["log_u"], log["log_v"]), case, limits, target
    )


def run_sinkhorn_stabilized(case: Case, limits: Limits, target: float) -> Run:
    import ot

    def step(warmstart):
        return ot.bregman.sinkhorn_stabilized(
            case.a, case.b, case.cost, case.reg, numItermax=CHUNK_ITERATIONS, stopThr=0.0,
            log=True, warn=False, warmstart=warmstart,
        )  # fmt: skip

    return _run_pot_chunked(
        SINKHORN_STABILIZED, step, lambda log: (log["alpha"], log["beta"]), case, limits, target
    )


def run_sinkhorn_plain(case: Case, limits: Limits, target: float) -> Run:
    """POT's default ``ot.sinkhorn`` (method "sinkhorn", scalings u, v in the exp domain)."""
    import ot

    def step(warmstart):
        with np.errstate(all="ignore"):
            return ot.sinkhorn(
                case.a, case.b, case.cost, case.reg, numItermax=CHUNK_ITERATIONS, stopThr=0.0,
                log=True, warn=False, warmstart=warmstart,
            )  # fmt: skip

    return _run_pot_chunked(
        SINKHORN_PLAIN, step, lambda log: (np.log(log["u"]), np.log(log["v"])), case, limits, target
    )


@contextlib.contextmanager
def _count_stabilized_iterations():
    """Count the inner ``sinkhorn_stabilized`` iterations that epsilon scaling runs."""
    import ot.bregman._sinkhorn as module

    original = module.sinkhorn_stabilized
    counter = {"iterations": 0}

    def counted(*args, **kwargs):
        plan, log = original(*args, **kwargs)
        counter["iterations"] += int(log["n_iter"]) + 1
        return plan, log

    module.sinkhorn_stabilized = counted
    try:
        yield counter
    finally:
        module.sinkhorn_stabilized = original


def run_epsilon_scaling(case: Case, limits: Limits, target: float) -> Run:
    import ot

    inner = 100  # POT's default numInnerItermax
    outer = max(1, limits.max_iterations // inner)
    threshold = target**2 / (case.a.size + case.b.size)
    with _count_stabilized_iterations() as counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        plan, log = ot.bregman.sinkhorn_epsilon_scaling(
            case.a, case.b, case.cost, case.reg, numItermax=outer, numInnerItermax=inner,
            stopThr=threshold, log=True, warn=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
    return Run(
        EPSILON_SCALING,
        counter["iterations"],
        elapsed,
        l1_marginal_error(plan, case.a, case.b),
        f"{int(log['niter']) + 1} outer",
    )


def _run_regot(name: str, function_name: str, case: Case, limits: Limits, target: float) -> Run:
    import regot

    solve = getattr(regot, function_name)
    cost = np.asfortranarray(case.cost)
    run = None
    for tol in REGOT_TOLERANCES:
        started = time.perf_counter()
        max_iter = min(limits.max_iterations, REGOT_MAX_ITERATIONS)
        result = solve(cost, case.a, case.b, case.reg, tol=tol, max_iter=max_iter)
        elapsed = time.perf_counter() - started
        error = l1_marginal_error(result.plan, case.a, case.b)
        run = Run(name, int(result.niter), elapsed, error, f"tol={tol:g}")
        if error < target or result.niter >= max_iter:
            break
    return run


def run_regot_sparse_newton(case: Case, limits: Limits, target: float) -> Run:
    return _run_regot(REGOT_SPARSE_NEWTON, "sinkhorn_sparse_newton", case, limits, target)


def run_regot_ssns(case: Case, limits: Limits, target: float) -> Run:
    return _run_regot(REGOT_SSNS, "sinkhorn_ssns", case, limits, target)


SOLVERS: dict[str, Callable[[Case, Limits, float], Run]] = {
    SNS: run_sns,
    SINKHORN_LOG: run_sinkhorn_log,
    SINKHORN_STABILIZED: run_sinkhorn_stabilized,
    EPSILON_SCALING: run_epsilon_scaling,
    REGOT_SPARSE_NEWTON: run_regot_sparse_newton,
    REGOT_SSNS: run_regot_ssns,
    SINKHORN_PLAIN: run_sinkhorn_plain,
}

# ----------------------------------------------------------------------------- memory


def build_case(spec: dict) -> Case:
    if spec["kind"] == "random":
        return random_assignment_case(spec["n"], spec["reg"])
    return digit_case(spec["metric"], spec["reg"], spec.get("downsample", 1))


def measure_peak_mib(
    solver: str, spec: dict, target: float, timeout_s: float = 300.0
) -> float | None:
    """Run one solver on one case in a child process; return its resident-set growth in MiB."""
    command = [sys.executable, __file__, "--memory-probe", json.dumps({"solver": solver, **spec})]
    command += ["--target-error", str(target)]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"memory probe for {solver} failed: {error}", file=sys.stderr)
        return None
    return float(completed.stdout.strip().splitlines()[-1])


def memory_probe(request: dict, target: float) -> None:
    """Child-process side of :func:`measure_peak_mib`: print the growth of the peak RSS in MiB."""
    quiet_solver_logs()
    case = build_case(request)
    solver = request["solver"]
    pot = solver.startswith("POT")
    iterations = MEMORY_ITERATIONS if pot else 10_000
    limits = Limits(max_iterations=iterations, max_seconds=600.0)
    if solver == EPSILON_SCALING:
        limits = Limits(max_iterations=200, max_seconds=600.0)
    SOLVERS[solver](random_assignment_case(20, 0.1), Limits(10, 10.0), target)  # warm-up
    before = peak_rss_kib()
    SOLVERS[solver](case, limits, target)
    print((peak_rss_kib() - before) / 1024.0)


def peak_rss_kib() -> float:
    """Return the peak resident set size of this process in KiB.

    Linux keeps ``ru_maxrss`` across ``exec``, so a child started by a large
    parent would report the parent's peak. ``VmHWM`` in ``/proc/self/status``
    belongs to the current address space only, so it is read where it exists.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1])
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


# ----------------------------------------------------------------------------- report


def run_case(
    case: Case, spec: dict, solvers: list[str], limits: Limits, target: float, memory: bool
) -> list[Run]:
    runs = []
    for solver in solvers:
        run = SOLVERS[solver](case, limits, target)
        if run.time_s < REPEAT_BELOW_SECONDS:
            times = [run.time_s] + [
                SOLVERS[solver](case, limits, target).time_s for _ in range(REPEATS - 1)
            ]
            run.time_s = float(np.median(times))
        if memory:
            run.peak_mib = measure_peak_mib(solver, spec, target)
        status = "reached" if run.converged(target) else "did NOT reach"
        print(
            f"  {solver:30s} {run.iterations:7d} it  {run.time_s:9.3f} s  "
            f"L1 error {run.error:.2e} ({status} {target:g}) {run.detail}",
            file=sys.stderr,
        )
        runs.append(run)
    return runs


def format_table(case: Case, runs: list[Run], target: float) -> list[str]:
    reference = next((run for run in runs if run.solver == SNS), None)
    lines = [
        f"### {case.name}, reg = {case.reg:.6g}",
        "",
        "| solver | iterations | time (s) | iterations / SNS | time / SNS | final L1 error "
        f"| L1 < {target:g} | peak memory (MiB) | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for run in runs:
        if reference is None or run is reference:
            iteration_ratio, time_ratio = "1", "1"
        else:
            iteration_ratio = _format_ratio(run.iterations / max(reference.iterations, 1))
            time_ratio = _format_ratio(run.time_s / reference.time_s)
        reached = "yes" if run.converged(target) else "**no**"
        memory = "n/a" if run.peak_mib is None else f"{run.peak_mib:.1f}"
        lines.append(
            f"| {run.solver} | {run.iterations} | {run.time_s:.3f} | {iteration_ratio} | "
            f"{time_ratio} | {run.error:.2e} | {reached} | {memory} | {run.detail} |"
        )
    return [*lines, ""]


GOAL_WORDS = {"iterations": "fewer iterations", "time": "less time"}


def _format_ratio(ratio: float) -> str:
    return f"{ratio:.1f}×" if ratio >= 1.0 else f"{ratio:.2g}×"


def check_targets(results: dict[str, list[Run]], target: float) -> list[str]:
    """Compare the measured ratios with the speed-up goals set for SNS."""
    goals = [
        ("random", SINKHORN_LOG, "iterations", 50.0),
        ("random", SINKHORN_LOG, "time", 10.0),
        ("w2", SINKHORN_LOG, "time", 5.0),
        ("w1", SINKHORN_LOG, "time", 2.0),
    ]
    lines = ["## Goals", "", "| case | goal | measured | met |", "| --- | --- | ---: | --- |"]
    for key, solver, quantity, factor in goals:
        runs = {run.solver: run for run in results.get(key, [])}
        if SNS not in runs or solver not in runs:
            continue
        sns, other = runs[SNS], runs[solver]
        if quantity == "iterations":
            ratio = other.iterations / max(sns.iterations, 1)
        else:
            ratio = other.time_s / sns.time_s
        capped = "" if other.converged(target) else f" (lower bound: {solver} stopped at its cap)"
        if not sns.converged(target):
            met = "**no** (SNS did not reach the target error)"
        elif ratio >= factor:
            met = "yes"
        elif other.converged(target):
            met = "**no**"
        else:
            met = "undetermined"
        lines.append(
            f"| {key} | ≥{factor:g}× {GOAL_WORDS[quantity]} than {solver} "
            f"| {ratio:.1f}×{capped} | {met} |"
        )
    for key, runs_list in results.items():
        runs = {run.solver: run for run in runs_list}
        if SNS not in runs:
            continue
        for name in (REGOT_SPARSE_NEWTON, REGOT_SSNS):
            if name in runs:
                ratio = runs[name].time_s / runs[SNS].time_s
                if not runs[name].converged(target):
                    met = f"n/a ({name} did not reach the target error)"
                elif not runs[SNS].converged(target):
                    met = "**no** (SNS did not reach the target error)"
                else:
                    met = "yes" if ratio >= 1.0 else "**no**"
                lines.append(f"| {key} | no slower than {name} | {ratio:.2f}× | {met} |")
    return [*lines, ""]


def environment_lines(command: str) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    import ot
    import scipy

    try:
        regot_version = version("regot")
    except PackageNotFoundError:
        regot_version = "not installed"
    revision = _git_revision()
    return [
        f"Command: `{command}`, at hessframe commit {revision}.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"POT {ot.__version__}, regot {regot_version}.",
        "",
    ]


def _git_revision() -> str:
    """Return the short commit hash, marked when the transport plugin has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "plugins/transport/hessframe_transport"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes to the plugin" if changes else commit


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


# ----------------------------------------------------------------------------- main

MAIN_SOLVERS = [
    SNS,
    SINKHORN_LOG,
    SINKHORN_STABILIZED,
    EPSILON_SCALING,
    REGOT_SPARSE_NEWTON,
    REGOT_SSNS,
]


def case_specs(quick: bool) -> dict[str, dict]:
    """Return the three main cases (keys random, w2, w1) and the two limit cases."""
    n = 100 if quick else 500
    downsample = 4 if quick else 1
    large_n = 400 if quick else 2000
    return {
        "random": {"kind": "random", "n": n, "reg": REG},
        "w2": {"kind": "digits", "metric": "sqeuclidean", "reg": REG, "downsample": downsample},
        "w1": {"kind": "digits", "metric": "euclidean", "reg": REG, "downsample": downsample},
        "large reg": {
            "kind": "digits",
            "metric": "sqeuclidean",
            "reg": 0.1,
            "downsample": downsample,
        },
        "large n": {"kind": "random", "n": large_n, "reg": REG},
    }


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs and short caps")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown report path")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="time cap per solver and case in seconds (default 120, or 10 with --quick)",
    )
    parser.add_argument(
        "--max-iterations",
        type=int,
        default=100_000,
        help="iteration cap per solver and case (default 100000)",
    )
    parser.add_argument(
        "--target-error", type=float, default=TARGET_ERROR, help="L1 marginal error to reach"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _run_of(runs: list[Run], solver: str) -> Run | None:
    return next((run for run in runs if run.solver == solver), None)


def large_reg_paragraph(runs: list[Run], reg: float) -> str:
    """Describe the large-reg case from its measured runs."""
    sns, plain = _run_of(runs, SNS), _run_of(runs, SINKHORN_PLAIN)
    if sns is None or plain is None:
        return "Large reg: not measured."
    newton = (
        "took no Newton step"
        if sns.newton_iterations == 0
        else (f"took {sns.newton_iterations} Newton steps")
    )
    return (
        f"Large reg (reg = {reg:g}): POT's plain `ot.sinkhorn` converges in "
        f"{plain.iterations} iterations. SNS {newton} and needed "
        f"{_format_ratio(sns.time_s / plain.time_s)} the time of `ot.sinkhorn`, so at this reg "
        "the Newton phase brings nothing and plain Sinkhorn is the simpler tool."
    )


def large_n_paragraph(small_runs: list[Run], large_runs: list[Run], specs: dict) -> str:
    """Describe how SNS's time and memory grew from the random case to the large-n case."""
    small, large = _run_of(small_runs, SNS), _run_of(large_runs, SNS)
    n_small, n_large = specs["random"]["n"], specs["large n"]["n"]
    text = (
        "Large n: SNS, like every solver here, keeps dense n×m cost and plan matrices, so time "
        "per iteration and memory grow with n·m."
    )
    if small is not None and large is not None:
        text += (
            f" From n = {n_small} to n = {n_large} ({(n_large / n_small) ** 2:g} times the "
            f"entries) its time went from {small.time_s:.3f} s to {large.time_s:.3f} s"
        )
        if small.peak_mib is not None and large.peak_mib is not None:
            text += (
                f" and its peak memory from {small.peak_mib:.1f} MiB to {large.peak_mib:.1f} MiB"
            )
        text += "."
    return text + (
        " At n = m = 20000 one float64 matrix alone takes 3.2 GB, and problems of that size need "
        "online or multiscale solvers (for example GeomLoss with KeOps), which this benchmark "
        "does not run."
    )


def quiet_solver_logs() -> None:
    """Hide the solver's non-convergence warnings; the tables report every missed target."""
    logging.getLogger("hessframe_transport").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="sinkhorn_newton_sparse stopped")


def main(argv: list[str] | None = None) -> str | None:
    """Run the benchmark, write the report and return its text (None for a memory probe)."""
    arguments = parse_arguments(argv)
    quiet_solver_logs()
    target = arguments.target_error
    if arguments.memory_probe is not None:
        memory_probe(json.loads(arguments.memory_probe), target)
        return None

    max_seconds = arguments.max_seconds or (10.0 if arguments.quick else 120.0)
    limits = Limits(arguments.max_iterations, max_seconds)
    memory = not (arguments.no_memory or arguments.quick)
    specs = case_specs(arguments.quick)
    command = "python " + " ".join(
        [Path(__file__).relative_to(REPO_ROOT).as_posix(), *sys.argv[1:]]
    )

    environment = environment_lines(command)  # records the commit before the solver runs
    for solver in [*MAIN_SOLVERS, SINKHORN_PLAIN]:  # warm-up: imports and first-call costs
        SOLVERS[solver](random_assignment_case(20, 0.1), Limits(20, 5.0), target)

    results: dict[str, list[Run]] = {}
    sections: dict[str, list[str]] = {}
    plan = [
        ("random", MAIN_SOLVERS),
        ("w2", MAIN_SOLVERS),
        ("w1", MAIN_SOLVERS),
        ("large reg", [SNS, SINKHORN_PLAIN, SINKHORN_LOG, REGOT_SSNS]),
        ("large n", [SNS, SINKHORN_STABILIZED, REGOT_SSNS]),
    ]
    for key, solvers in plan:
        spec = specs[key]
        case = build_case(spec)
        print(f"{case.name}, reg={case.reg:.6g}", file=sys.stderr)
        results[key] = run_case(case, spec, solvers, limits, target, memory)
        sections[key] = format_table(case, results[key], target)

    report = [
        "# Sinkhorn-Newton-Sparse against POT and RegOT",
        "",
        *environment,
        f"Every solver gets the same marginals and cost matrix (scaled to [0, 1]) and runs until "
        f"the L1 marginal error of its plan, recomputed by the benchmark, is below {target:g}, "
        f"or until it reaches {limits.max_iterations} iterations or {max_seconds:g} s. "
        "Ratios are the solver's iterations or time divided by those of SNS, so a ratio above "
        "1× means SNS needed less. SNS iterations are Sinkhorn plus Newton iterations. Peak "
        "memory is the growth of the peak resident set size (VmHWM) in a child process "
        f"running the same call (POT solvers there run {MEMORY_ITERATIONS} iterations). "
        "How each solver is stopped is described in the docstring of benchmarks/transport_sns.py.",
        "",
        "## Main cases",
        "",
        *sections["random"],
        *sections["w2"],
        *sections["w1"],
        *check_targets(results, target),
        "## Where SNS is not the right tool",
        "",
        large_reg_paragraph(results["large reg"], specs["large reg"]["reg"]),
        "",
        *sections["large reg"],
        large_n_paragraph(results["random"], results["large n"], specs),
        "",
        *sections["large n"],
    ]
    text = "\n".join(report)
    write_atomically(arguments.output, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
