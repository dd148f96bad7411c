"""Compare LV-HBA with implicit and unrolled differentiation and with grid or random search.

Every method runs in this one process on the problems the bilevel plugin ships:

- The two toys with closed-form optima (``hessframe_bilevel.toys``), from seeded
  random starts. LV-HBA, implicit and unrolled differentiation run until the
  relative distance ‖(x, y) − (x*, y*)‖ / ‖(x*, y*)‖ is at most ``TOY_TARGET``,
  checked after every iteration through the solvers' callback. Implicit and
  unrolled differentiation run on the quadratic toy only, because the coupled toy
  has lower constraints. Random search draws
  ``RANDOM_SEARCH_SAMPLES`` upper points x uniformly in [−5, 5]³, solves the lower
  level at each with SciPy's SLSQP (with g as inequality constraints), and keeps
  the draw with the lowest F.
- SVM hyperparameter selection (``hessframe_bilevel.svm``) on the full
  breast-cancer and wine-class-0 sets, one split per seed. LV-HBA runs
  ``SVM_ITERATIONS`` iterations with ``SVM_LVHBA_CONFIG`` and scores the iterate
  with the lowest validation loss F, as ``hessframe bilevel svm`` does, once with the
  Euclidean projection onto C and once with the slack retraction. Grid search
  fits scikit-learn's ``SVC(kernel="linear", C=C)`` for each C of ``SVM_GRID`` and
  keeps the C with the lowest validation loss F; the soft-margin SVM at C solves
  the lower level at the slack bounds c = ξ*(C), so grid search moves along a
  one-dimensional curve of the n-dimensional space LV-HBA searches. Implicit and
  unrolled differentiation do not apply (the slack bounds couple both levels).
- Data hyper-cleaning (``hessframe_bilevel.hyperclean``) on the digits with 40%
  of the train labels corrupted, one split and corruption per seed. LV-HBA,
  implicit and unrolled differentiation run with the iterations and step sizes of
  ``hessframe bilevel hyperclean``. Grid search fits scikit-learn's
  ``LogisticRegression`` on all (corrupted) train labels for each ridge weight of
  ``HYPERCLEAN_RIDGE_GRID`` and keeps the one with the lowest validation loss.

Peak memory is the growth of the peak resident set size (``VmHWM`` of
``/proc/self/status``, reset through ``/proc/self/clear_refs`` before each run)
over the run, in MiB. glibc's mmap threshold is fixed at 64 KiB first, so freed
tensors of 64 KiB or more go back to the system and one run's memory is not
reused by the next. Python's ``tracemalloc`` is not used because it does not see
torch's tensor memory.

Usage::

    python benchmarks/bilevel_solvers.py            # full run, 3 seeds, about 2 minutes
    python benchmarks/bilevel_solvers.py --quick    # smoke run on tiny sizes, seconds

Writes the Markdown report to ``benchmarks/results/bilevel.md`` (or ``--output``)
through a temporary file and a rename, and prints it.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import functools
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

DEFAULT_OUTPUT = "bilevel.md"

TOY_TARGET = 1e-3
RANDOM_SEARCH_BOX = 5.0
SVM_DATASETS = ("breast-cancer", "wine-class-0")
HYPERCLEAN_CORRUPTION = 0.4


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Budgets and data sizes of one benchmark run.

    Attributes:
        toy_max_iterations: Iteration limit per solver key on the toys.
        random_search_samples: Upper points drawn by random search on the toys.
        svm_iterations: LV-HBA iterations on the SVM problem.
        svm_grid: Values of scikit-learn's C that grid search tries.
        svm_head: (train, validation) sizes to cut the SVM sets to, or None for all.
        hyperclean_iterations: Iterations per solver key on hyper-cleaning, or None
            for those of ``hessframe bilevel hyperclean``.
        hyperclean_grid: Ridge weights that grid search tries.
        hyperclean_head: (train, validation) sizes to cut the digits to, or None for all.
    """

    toy_max_iterations: dict[str, int]
    random_search_samples: int
    svm_iterations: int
    svm_grid: tuple[float, ...]
    svm_head: tuple[int, int] | None
    hyperclean_iterations: dict[str, int] | None
    hyperclean_grid: tuple[float, ...]
    hyperclean_head: tuple[int, int] | None


FULL = Sizes(
    toy_max_iterations={"lvhba": 20_000, "implicit": 500, "unrolled": 500},
    random_search_samples=200,
    svm_iterations=300,
    svm_grid=tuple(float(c) for c in np.logspace(-3, 2, 20)),
    svm_head=None,
    hyperclean_iterations=None,
    hyperclean_grid=tuple(float(r) for r in np.logspace(-4, 0, 10)),
    hyperclean_head=None,
)
QUICK = Sizes(
    toy_max_iterations={"lvhba": 30, "implicit": 5, "unrolled": 5},
    random_search_samples=4,
    svm_iterations=20,
    svm_grid=(0.01, 1.0, 100.0),
    svm_head=(40, 30),
    hyperclean_iterations={"lvhba": 3, "implicit": 2, "unrolled": 2},
    hyperclean_grid=(1e-3, 1e-1),
    hyperclean_head=(100, 50),
)

LVHBA = "LV-HBA"
LVHBA_SLACK = "LV-HBA, slack retraction"
IMPLICIT = "implicit differentiation"
UNROLLED = "unrolled differentiation"
RANDOM_SEARCH = "random search (SLSQP lower solves)"
SVM_GRID_SEARCH = "grid search (scikit-learn SVC over C)"
HYPERCLEAN_GRID_SEARCH = "grid search (scikit-learn LogisticRegression over ridge)"
SOLVER_KEYS = {LVHBA: "lvhba", IMPLICIT: "implicit", UNROLLED: "unrolled"}

TOY_HEADING = "## Toys: distance to the closed-form optimum"
SVM_HEADING = "## SVM hyperparameter selection"
HYPERCLEAN_HEADING = "## Data hyper-cleaning"
TARGET_HEADING = "## Targets"

#: mallopt parameter number of glibc's mmap threshold (M_MMAP_THRESHOLD in malloc.h).
_M_MMAP_THRESHOLD = -3


@dataclasses.dataclass(frozen=True)
class Measured:
    """One run of one method: its scores, wall time and peak memory growth."""

    scores: dict[str, Any]
    time_s: float
    peak_mib: float


def fix_mmap_threshold() -> bool:
    """Make glibc serve blocks of 64 KiB or more by mmap, so that freeing them lowers the RSS."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024))


def _status_kib(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as stream:
        for line in stream:
            if line.startswith(f"{field}:"):
                return float(line.split()[1])
    return math.nan


#: Whether :func:`measure` runs the garbage collector first. A full collection takes a
#: noticeable fraction of a second inside a test process, so ``--quick`` turns it off.
COLLECT_GARBAGE = True


def measure(run: Callable[[], dict[str, Any]]) -> Measured:
    """Run ``run`` once and return its scores, wall time and peak RSS growth in MiB."""
    if COLLECT_GARBAGE:
        gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as stream:
            stream.write("5")
        reset = True
    except OSError:
        # Without the reset VmHWM is the peak since the process started, which states
        # nothing about this run, so the memory cell reads n/a.
        reset = False
    baseline = _status_kib("VmRSS")
    start = time.perf_counter()
    scores = run()
    elapsed = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    growth = max(0.0, peak - baseline) / 1024 if reset else math.nan
    return Measured(scores, elapsed, growth)


# ----------------------------------------------------------------------
# Toys


def relative_distance(toy: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    error = torch.cat([x - toy.x_star, y - toy.y_star])
    reference = torch.cat([toy.x_star, toy.y_star])
    return float(torch.linalg.vector_norm(error) / torch.linalg.vector_norm(reference))


def toy_start(toy: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the toy's start shifted by a seeded standard normal draw."""
    generator = torch.Generator().manual_seed(seed)
    x0 = toy.x0 + torch.randn(toy.x0.shape, generator=generator, dtype=toy.x0.dtype)
    y0 = toy.y0 + torch.randn(toy.y0.shape, generator=generator, dtype=toy.y0.dtype)
    return x0, y0


def run_toy_solver(method: str, toy: Any, seed: int, max_iter: int) -> dict[str, Any]:
    from hessframe_bilevel import implicit_descent, lvhba, unrolled_descent

    solvers = {"lvhba": lvhba, "implicit": implicit_descent, "unrolled": unrolled_descent}
    reached: list[int] = []

    def stop_at_target(report: Any) -> bool:
        if relative_distance(toy, report.x, report.y) <= TOY_TARGET:
            reached.append(report.iteration)
            return True
        return False

    x0, y0 = toy_start(toy, seed)
    result = solvers[method](toy.problem, x0, y0, max_iter=max_iter, callback=stop_at_target)
    return {
        "reached": bool(reached),
        "iterations": result.iterations,
        "relative_distance": relative_distance(toy, result.x, result.y),
    }


def solve_lower_slsqp(problem: Any, x: torch.Tensor, y0: np.ndarray) -> np.ndarray:
    """Minimise f(x, ·) subject to g(x, ·) ≤ 0 by SciPy's SLSQP, with autograd gradients."""
    from scipy.optimize import minimize

    def with_gradient(function: Callable, sign: float) -> tuple[Callable, Callable]:
        def value(v: np.ndarray) -> Any:
            with torch.no_grad():
                return sign * function(x, torch.from_numpy(v)).numpy()

        def jacobian(v: np.ndarray) -> np.ndarray:
            y = torch.from_numpy(v)
            return sign * torch.autograd.functional.jacobian(lambda t: function(x, t), y).numpy()

        return value, jacobian

    objective, gradient = with_gradient(problem.lower, 1.0)
    constraints = []
    if problem.constraints is not None:
        # SLSQP's inequality constraints are fun(v) >= 0, so it takes −g.
        value, jacobian = with_gradient(problem.constraints, -1.0)
        constraints.append({"type": "ineq", "fun": value, "jac": jacobian})
    solution = minimize(
        objective,
        y0,
        jac=gradient,
        constraints=constraints,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 200},
    )
    return solution.x


def run_toy_random_search(toy: Any, seed: int, samples: int) -> dict[str, Any]:
    generator = np.random.default_rng(seed)
    n = toy.x0.shape[0]
    best = (math.inf, None, None)
    for _ in range(samples):
        x = torch.from_numpy(generator.uniform(-RANDOM_SEARCH_BOX, RANDOM_SEARCH_BOX, n))
        y = torch.from_numpy(solve_lower_slsqp(toy.problem, x, toy.y0.numpy()))
        value = float(toy.problem.upper(x, y))
        if value < best[0]:
            best = (value, x, y)
    distance = relative_distance(toy, best[1], best[2])
    return {"reached": distance <= TOY_TARGET, "iterations": samples, "relative_distance": distance}


def toy_section(seeds: list[int], sizes: Sizes) -> tuple[list[list[Any]], dict[Any, Any]]:
    from hessframe_bilevel.toys import coupled_toy, quadratic_toy

    toys = {"coupled": coupled_toy(), "quadratic": quadratic_toy()}
    methods = {
        "coupled": (LVHBA, RANDOM_SEARCH),
        "quadratic": (LVHBA, IMPLICIT, UNROLLED, RANDOM_SEARCH),
    }
    rows: list[list[Any]] = []
    summary: dict[Any, Any] = {}
    for name, toy in toys.items():
        for method in methods[name]:
            _common.progress(f"toy {name}: {method}")
            if method == RANDOM_SEARCH:
                run_toy_random_search(toy, 0, 1)
                run = functools.partial(
                    run_toy_random_search, toy, samples=sizes.random_search_samples
                )
            else:
                key = SOLVER_KEYS[method]
                run_toy_solver(key, toy, 0, 2)
                run = functools.partial(
                    run_toy_solver, key, toy, max_iter=sizes.toy_max_iterations[key]
                )
            runs = [measure(functools.partial(run, seed)) for seed in seeds]
            reached = sum(run.scores["reached"] for run in runs)
            rows.append(
                [
                    name,
                    method,
                    f"{reached}/{len(runs)}",
                    median(run.scores["iterations"] for run in runs),
                    median(run.time_s for run in runs),
                    max(run.scores["relative_distance"] for run in runs),
                    median(run.peak_mib for run in runs),
                ]
            )
            summary[name, method] = runs
    return rows, summary


# ----------------------------------------------------------------------
# SVM


def validation_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Return the mean logistic loss log(1 + exp(−y s)) of decision scores s, the SVM's F."""
    return float(np.mean(np.logaddexp(0.0, -labels * scores)))


def run_svm_lvhba(data: Any, iterations: int, projection: str = "euclidean") -> dict[str, Any]:
    from hessframe_bilevel import BestIterate, lvhba
    from hessframe_bilevel.svm import evaluate_svm, svm_hyperparameter_problem

    svm = svm_hyperparameter_problem(data, projection=projection)
    best = BestIterate()
    result = lvhba(
        svm.problem, svm.x0, svm.y0, config=svm.config, max_iter=iterations, callback=best
    )
    scores = evaluate_svm(dataclasses.replace(result, x=best.x, y=best.y), data)
    last = evaluate_svm(result, data)
    return {
        "test_accuracy": scores["test_accuracy"],
        "validation_loss": scores["validation_loss"],
        "last_test_accuracy": last["test_accuracy"],
        "setting": f"iteration {best.iteration}",
    }


def run_svm_grid(data: Any, grid: tuple[float, ...]) -> dict[str, Any]:
    from sklearn.svm import SVC

    features = data.x_train.numpy()
    labels = data.y_train.numpy()
    best = (math.inf, None)
    for c in grid:
        model = SVC(kernel="linear", C=c).fit(features, labels)
        loss = validation_loss(
            model.decision_function(data.x_validation.numpy()), data.y_validation.numpy()
        )
        if loss < best[0]:
            best = (loss, model, c)
    loss, model, c = best
    test_scores = model.decision_function(data.x_test.numpy())
    return {
        "test_accuracy": float(np.mean(test_scores * data.y_test.numpy() > 0)),
        "validation_loss": loss,
        "last_test_accuracy": math.nan,
        "setting": f"C = {c:.3g}",
    }


def svm_section(seeds: list[int], sizes: Sizes) -> tuple[list[list[Any]], dict[Any, Any]]:
    from hessframe_bilevel.data import load_binary_dataset

    rows: list[list[Any]] = []
    summary: dict[Any, Any] = {}
    for name in SVM_DATASETS:
        runs: dict[str, list[Measured]] = {LVHBA: [], LVHBA_SLACK: [], SVM_GRID_SEARCH: []}
        for seed in seeds:
            data = load_binary_dataset(name, seed=seed)
            if sizes.svm_head is not None:
                data = data.head(*sizes.svm_head)
            _common.progress(f"svm {name}, seed {seed}")
            if seed == seeds[0]:
                run_svm_lvhba(data, 2)
                run_svm_lvhba(data, 2, "slack")
                run_svm_grid(data, sizes.svm_grid[:1])
            lvhba_run = functools.partial(run_svm_lvhba, data, sizes.svm_iterations)
            runs[LVHBA].append(measure(lvhba_run))
            slack_run = functools.partial(run_svm_lvhba, data, sizes.svm_iterations, "slack")
            runs[LVHBA_SLACK].append(measure(slack_run))
            runs[SVM_GRID_SEARCH].append(
                measure(functools.partial(run_svm_grid, data, sizes.svm_grid))
            )
        for method, measured in runs.items():
            rows.append(
                [
                    name,
                    method,
                    mean_std(run.scores["test_accuracy"] for run in measured),
                    mean_std(run.scores["last_test_accuracy"] for run in measured),
                    median(run.scores["validation_loss"] for run in measured),
                    median(run.time_s for run in measured),
                    median(run.peak_mib for run in measured),
                    "; ".join(run.scores["setting"] for run in measured),
                ]
            )
            summary[name, method] = measured
    return rows, summary


# ----------------------------------------------------------------------
# Hyper-cleaning


def run_hyperclean_solver(method: str, data: Any, iterations: int | None) -> dict[str, Any]:
    from hessframe_bilevel import implicit_descent, lvhba, unrolled_descent
    from hessframe_bilevel.cli import HYPERCLEAN_ITERATIONS, HYPERCLEAN_SETTINGS
    from hessframe_bilevel.hyperclean import evaluate_hyperclean, hyperclean_problem
    from hessframe_bilevel.lvhba import LVHBAConfig

    settings = dict(HYPERCLEAN_SETTINGS[method])
    if "config" in settings:
        settings["config"] = LVHBAConfig(**settings["config"])
    solvers = {"lvhba": lvhba, "implicit": implicit_descent, "unrolled": unrolled_descent}
    problem = hyperclean_problem(data)
    iterations = HYPERCLEAN_ITERATIONS[method] if iterations is None else iterations
    result = solvers[method](
        problem.problem, problem.x0, problem.y0, max_iter=iterations, **settings
    )
    scores = evaluate_hyperclean(result, data)
    scores["setting"] = f"{result.iterations} iterations"
    return scores


def run_hyperclean_grid(data: Any, grid: tuple[float, ...]) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    features = data.x_train.numpy()
    labels = data.y_train.numpy()
    classes = np.arange(data.num_classes)
    best = (math.inf, None, None)
    for ridge in grid:
        # With every weight at σ(0) = ½, as at the start of the bilevel runs, the lower
        # objective (1/n) Σ ½ ℓ_i + (ρ/2)‖W‖² is scikit-learn's C Σ ℓ_i + ½‖W‖² times ρ
        # with C = 1/(2nρ), except that scikit-learn leaves the intercept unpenalised.
        model = LogisticRegression(C=1.0 / (2 * len(labels) * ridge), max_iter=2000)
        model.fit(features, labels)
        loss = log_loss(
            data.y_validation.numpy(),
            model.predict_proba(data.x_validation.numpy()),
            labels=classes,
        )
        if loss < best[0]:
            best = (loss, model, ridge)
    loss, model, ridge = best
    predicted = model.predict(data.x_test.numpy())
    return {
        "test_accuracy": float(np.mean(predicted == data.y_test.numpy())),
        "validation_loss": loss,
        "precision": math.nan,
        "recall": math.nan,
        "setting": f"ridge {ridge:.3g}",
    }


def hyperclean_section(seeds: list[int], sizes: Sizes) -> tuple[list[list[Any]], dict[Any, Any]]:
    from hessframe_bilevel.data import load_corrupted_digits

    methods = (LVHBA, IMPLICIT, UNROLLED, HYPERCLEAN_GRID_SEARCH)
    runs: dict[str, list[Measured]] = {method: [] for method in methods}
    for seed in seeds:
        data = load_corrupted_digits(corruption=HYPERCLEAN_CORRUPTION, seed=seed)
        if sizes.hyperclean_head is not None:
            data = data.head(*sizes.hyperclean_head)
        for method in methods:
            _common.progress(f"hyperclean seed {seed}: {method}")
            if method == HYPERCLEAN_GRID_SEARCH:
                if seed == seeds[0]:
                    run_hyperclean_grid(data, sizes.hyperclean_grid[:1])
                run = functools.partial(run_hyperclean_grid, data, sizes.hyperclean_grid)
            else:
                key = SOLVER_KEYS[method]
                limits = sizes.hyperclean_iterations
                iterations = None if limits is None else limits[key]
                if seed == seeds[0]:
                    run_hyperclean_solver(key, data, 1)
                run = functools.partial(run_hyperclean_solver, key, data, iterations)
            runs[method].append(measure(run))
    rows = [
        [
            method,
            mean_std(run.scores["test_accuracy"] for run in measured),
            median(run.scores["validation_loss"] for run in measured),
            median(run.scores["precision"] for run in measured),
            median(run.scores["recall"] for run in measured),
            median(run.time_s for run in measured),
            median(run.peak_mib for run in measured),
            measured[0].scores["setting"],
        ]
        for method, measured in runs.items()
    ]
    return rows, runs


# ----------------------------------------------------------------------
# Report


def median(values: Any) -> float | str:
    """Return the median of the values that are not NaN, or ``n/a`` when none is."""
    values = [float(value) for value in values]
    finite = [value for value in values if not math.isnan(value)]
    return statistics.median(finite) if finite else "n/a"


def mean_std(values: Any) -> str:
    values = [float(value) for value in values if not math.isnan(float(value))]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def mean_of(measured: list[Measured], key: str) -> float:
    return statistics.mean(run.scores[key] for run in measured)


def target_rows(
    toys: dict[str, Any], svm: dict[str, Any], hyperclean: dict[str, Any]
) -> list[list[Any]]:
    rows = []
    for name in ("coupled", "quadratic"):
        runs = toys[name, LVHBA]
        worst = max(run.scores["relative_distance"] for run in runs)
        passed = all(run.scores["reached"] for run in runs)
        rows.append(
            [
                f"LV-HBA reaches the {name} toy's optimum to {TOY_TARGET:g} relative",
                f"{sum(run.scores['reached'] for run in runs)}/{len(runs)} seeds, worst "
                f"final distance {worst:.3g}",
                _common.verdict(passed),
            ]
        )
    for name in SVM_DATASETS:
        ours, grid = svm[name, LVHBA], svm[name, SVM_GRID_SEARCH]
        accuracy, grid_accuracy = mean_of(ours, "test_accuracy"), mean_of(grid, "test_accuracy")
        seconds = statistics.median(run.time_s for run in ours)
        grid_seconds = statistics.median(run.time_s for run in grid)
        rows.append(
            [
                f"SVM on {name}: LV-HBA beats grid search's test accuracy in less time",
                f"accuracy {accuracy:.4f} vs {grid_accuracy:.4f}, time {seconds:.3g} s vs "
                f"{grid_seconds:.3g} s",
                _common.verdict(accuracy > grid_accuracy and seconds < grid_seconds),
            ]
        )
    ours, implicit = hyperclean[LVHBA], hyperclean[IMPLICIT]
    accuracy, implicit_accuracy = mean_of(ours, "test_accuracy"), mean_of(implicit, "test_accuracy")
    memory = statistics.median(run.peak_mib for run in ours)
    implicit_memory = statistics.median(run.peak_mib for run in implicit)
    rows.append(
        [
            "hyper-cleaning: LV-HBA's test accuracy at least implicit differentiation's, "
            "with less memory",
            f"accuracy {accuracy:.4f} vs {implicit_accuracy:.4f}, peak memory "
            f"{memory:.3g} MiB vs {implicit_memory:.3g} MiB",
            _common.verdict(accuracy >= implicit_accuracy and memory < implicit_memory),
        ]
    )
    return rows


TOY_HEADER = (
    "toy",
    "method",
    "seeds at target",
    "median iterations (samples)",
    "median time (s)",
    "worst final relative distance",
    "median peak memory (MiB)",
)
SVM_HEADER = (
    "data set",
    "method",
    "test accuracy (mean ± std)",
    "last-iterate test accuracy",
    "median validation loss F",
    "median time (s)",
    "median peak memory (MiB)",
    "selected per seed",
)
HYPERCLEAN_HEADER = (
    "method",
    "test accuracy (mean ± std)",
    "median validation loss",
    "median precision",
    "median recall",
    "median time (s)",
    "median peak memory (MiB)",
    "setting (first seed)",
)
TARGET_HEADER = ("target", "measured", "result")


def build_report(seeds: list[int], threads: int, quick: bool, mmap_fixed: bool) -> str:
    sizes = QUICK if quick else FULL
    toy_rows, toys = toy_section(seeds, sizes)
    svm_rows, svm = svm_section(seeds, sizes)
    hyperclean_rows, hyperclean = hyperclean_section(seeds, sizes)
    if mmap_fixed:
        memory_note = "glibc's mmap threshold fixed at 64 KiB"
    elif quick:
        memory_note = "glibc's mmap threshold at its default in quick mode"
    else:
        memory_note = "glibc's mmap threshold not fixed (mallopt failed)"
    memory_note += ", so reused heap memory may hide growth" if not mmap_fixed else ""
    lines = [
        "# Bilevel solvers: LV-HBA, implicit and unrolled differentiation, grid and random search",
        "",
        *_common.environment_lines(threads, quick),
        f"- seeds: {', '.join(str(seed) for seed in seeds)}",
        "- command: `python benchmarks/bilevel_solvers.py" + (" --quick`" if quick else "`"),
        "",
        "Times are wall-clock seconds of one run in this process. Peak memory is the growth "
        "of the peak resident set size (VmHWM) over the run, reset before it, with "
        f"{memory_note}. The setup of each method is in the docstring of "
        "`benchmarks/bilevel_solvers.py`.",
        "",
        TOY_HEADING,
        "",
        f"Each solver stops at a relative distance of {TOY_TARGET:g} (checked after every "
        "iteration) or at its iteration limit "
        f"({', '.join(f'{k} {v}' for k, v in sizes.toy_max_iterations.items())}); random "
        f"search draws {sizes.random_search_samples} points in [−{RANDOM_SEARCH_BOX:g}, "
        f"{RANDOM_SEARCH_BOX:g}]³. Implicit and unrolled differentiation do not apply to the "
        "coupled toy, whose lower level has constraints.",
        "",
        _common.markdown_table(TOY_HEADER, toy_rows),
        "",
        SVM_HEADING,
        "",
        f"LV-HBA runs {sizes.svm_iterations} iterations and is scored at the iterate with the "
        "lowest validation loss F; the last-iterate column scores its last iterate. It maps "
        "each step into C by the Euclidean projection (the default), or by the slack "
        "retraction that holds (w, b) fixed. Grid search "
        f"tries {len(sizes.svm_grid)} values of C in [{sizes.svm_grid[0]:g}, "
        f"{sizes.svm_grid[-1]:g}] "
        "(log-spaced) and keeps the lowest validation loss F. Implicit and unrolled "
        "differentiation do not apply: the slack bounds couple both levels.",
        "",
        _common.markdown_table(SVM_HEADER, svm_rows),
        "",
        HYPERCLEAN_HEADING,
        "",
        f"Digits with {HYPERCLEAN_CORRUPTION:g} of the train labels corrupted. Precision and "
        "recall are those of flagging the samples whose learned weight is below 0.5; grid "
        f"search over {len(sizes.hyperclean_grid)} ridge weights in "
        f"[{sizes.hyperclean_grid[0]:g}, {sizes.hyperclean_grid[-1]:g}] learns no weights.",
        "",
        _common.markdown_table(HYPERCLEAN_HEADER, hyperclean_rows),
        "",
        TARGET_HEADING,
        "",
        _common.markdown_table(TARGET_HEADER, target_rows(toys, svm, hyperclean)),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run on tiny sizes in seconds; the report is written only where --output states",
    )
    parser.add_argument(
        "--seeds",
        type=_common.positive_int,
        default=None,
        help="number of seeds, 0 to N − 1 (default: 3, or 1 with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=_common.positive_int,
        default=1,
        help="torch intra-op threads (default: 1)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the report (default: benchmarks/results/{DEFAULT_OUTPUT} for a "
        "full run, nowhere for --quick)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark, print the report, write it, and return its text."""
    global COLLECT_GARBAGE
    args = parse_args(argv)
    COLLECT_GARBAGE = not args.quick
    _common.set_threads(args.threads)
    # A quick run is a smoke test, often inside a test process, whose allocator it leaves alone.
    mmap_fixed = False if args.quick else fix_mmap_threshold()
    num_seeds = args.seeds
    if num_seeds is None:
        num_seeds = 1 if args.quick else 3
    seeds = list(range(num_seeds))
    report = build_report(seeds, args.threads, args.quick, mmap_fixed)
    print(report)
    _common.write_report(report, _common.resolve_output(args, DEFAULT_OUTPUT))
    return report


if __name__ == "__main__":
    main()
