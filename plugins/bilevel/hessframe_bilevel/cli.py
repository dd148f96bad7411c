"""The ``hessframe bilevel`` commands.

``hessframe bilevel toy --problem coupled|quadratic --method lvhba|implicit|unrolled``
solves one of the toys of :mod:`hessframe_bilevel.toys`, whose optima are known in
closed form, and prints the progress of the run, the final upper objective, the
lower-level gap, the constraint violation, the time and the distance to the optimum.
With ``--json`` it prints one JSON object instead.

``hessframe bilevel svm --dataset breast-cancer|wine-class-0`` learns per-sample slack
bounds of a linear SVM on a validation set (:mod:`hessframe_bilevel.svm`) with LV-HBA,
the only solver here for its coupled constraints, and reports the validation loss and
the validation and test accuracy of the iterate with the lowest validation loss (or of
the last iterate with ``--keep-last``).

``hessframe bilevel hyperclean --method lvhba|implicit|unrolled`` runs data
hyper-cleaning (:mod:`hessframe_bilevel.hyperclean`) on the 8x8 digits with
corrupted train labels, and reports the validation loss, the test accuracy and the
precision and recall with which low sample weights flag the corrupted labels.

Each command prints a progress line to stderr as the solver runs, every ``--every``
iterations and at the last one, through the solvers' per-iteration ``callback``.

The core's ``hessframe`` command adds :data:`bilevel_group` through this plugin's
``hessframe_commands`` hook; the group also runs on its own, for example through
:class:`click.testing.CliRunner`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import click

#: Solvers accepted by ``--method``, in the order that messages list them.
METHODS = ("lvhba", "implicit", "unrolled")

#: For each toy, the methods that apply to it. The implicit and unrolled
#: hypergradients need a lower level without constraints, so the coupled toy,
#: whose lower constraint y ≤ x couples both levels, takes LV-HBA only.
TOY_METHODS = {
    "coupled": ("lvhba",),
    "quadratic": ("lvhba", "implicit", "unrolled"),
}

#: Iterations when ``--iterations`` is not given: the counts at which the solver
#: tests reach each toy's optimum to a relative error below 1e-3.
DEFAULT_ITERATIONS = {
    ("coupled", "lvhba"): 6000,
    ("quadratic", "lvhba"): 10_000,
    ("quadratic", "implicit"): 500,
    ("quadratic", "unrolled"): 500,
}

#: Progress lines printed in a run when ``--every`` is not given.
PROGRESS_LINES = 10

#: The ``--every`` option that each command shares.
every_option = click.option(
    "--every",
    type=click.IntRange(min=1),
    default=None,
    help=f"Print a progress line to stderr every this many iterations [default: about "
    f"{PROGRESS_LINES} lines per run; none with --json unless given].",
)

#: The ``--json`` option that each command shares.
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object instead of progress and text."
)

bilevel_group = click.Group(
    "bilevel",
    help=(
        "Bilevel optimisation: LV-HBA for lower levels with coupled constraints, and "
        "implicit and unrolled hypergradient descent for lower levels without them."
    ),
)


def _check_method(method: str, accepted: tuple[str, ...], problem: str, constraint: str) -> None:
    """Raise click.BadParameter unless ``method`` is in ``accepted``.

    ``problem`` names the problem in the message, and ``constraint`` its lower constraint.
    """
    if method not in accepted:
        raise click.BadParameter(
            f"{method!r} requires a lower level without constraints, but {problem} has the "
            f"lower constraint {constraint}. Accepted with {problem}: {', '.join(accepted)}",
            param_hint="'--method'",
        )


def _reject_nan_fraction(value: float) -> float:
    """Return ``value``, or raise click.BadParameter if it is NaN.

    click.FloatRange lets NaN through, because every comparison with NaN is false.
    """
    if math.isnan(value):
        raise click.BadParameter("must be a number in [0, 1], got nan")
    return value


class ProgressPrinter:
    """A solver callback that prints iteration, F, lower-level gap and violation to stderr.

    It prints a header before the first line, then a line for every ``every``-th
    iteration as the solver reaches it. :meth:`finish` prints the last iteration when
    the stride skipped it.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self._last_printed: int | None = None
        self._last_report: Any = None

    def __call__(self, report: Any) -> None:
        if self._last_printed is None:
            click.echo(
                f"{'iteration':>9}  {'upper F':>14}  {'lower gap':>10}  {'violation':>10}",
                err=True,
            )
        self._last_report = report
        if report.iteration % self.every == 0:
            self._print(report)

    def finish(self) -> None:
        """Print the last iteration seen, unless it was printed already."""
        report = self._last_report
        if report is not None and report.iteration != self._last_printed:
            self._print(report)

    def _print(self, report: Any) -> None:
        click.echo(
            f"{report.iteration:>9}  {report.upper_objective:>14.8g}  {report.lower_gap:>10.3e}  "
            f"{report.constraint_violation:>10.3e}",
            err=True,
        )
        self._last_printed = report.iteration


def _run_solver(
    method: str,
    problem: Any,
    x0: Any,
    y0: Any,
    iterations: int,
    settings: dict[str, Any] | None = None,
    callbacks: tuple[Any, ...] = (),
) -> tuple[Any, float]:
    """Run ``method`` for at most ``iterations`` outer iterations and return (result, seconds).

    ``settings`` contains further keyword arguments of the solver (step sizes, tolerances).
    Every callable in ``callbacks`` is called with each iterate's report as the run goes.
    """
    from hessframe_bilevel.implicit import implicit_descent
    from hessframe_bilevel.lvhba import lvhba
    from hessframe_bilevel.unrolled import unrolled_descent

    def callback(report: Any) -> None:
        for function in callbacks:
            function(report)

    solvers = {"lvhba": lvhba, "implicit": implicit_descent, "unrolled": unrolled_descent}
    start = time.perf_counter()
    result = solvers[method](
        problem,
        x0,
        y0,
        max_iter=iterations,
        callback=callback if callbacks else None,
        **(settings or {}),
    )
    return result, time.perf_counter() - start


def _progress(as_json: bool, every: int | None, iterations: int) -> tuple[ProgressPrinter, ...]:
    """Return the progress printer of a run, or none with ``--json`` unless ``--every`` is given.

    The progress goes to stderr, so with ``--json`` and ``--every`` the standard output
    contains the JSON object alone.
    """
    if as_json and every is None:
        return ()
    return (ProgressPrinter(every or max(1, math.ceil(iterations / PROGRESS_LINES))),)


def _finish_progress(printers: tuple[ProgressPrinter, ...]) -> None:
    for printer in printers:
        printer.finish()


def _toy_summary(problem: str, method: str, toy: Any, result: Any, seconds: float) -> dict:
    """Return the summary of a toy run: the final measures and the distance to the optimum."""
    import torch

    error = torch.cat([result.x - toy.x_star, result.y - toy.y_star])
    reference = torch.cat([toy.x_star, toy.y_star])
    distance = float(torch.linalg.vector_norm(error))
    history = result.history
    summary = {
        "problem": problem,
        "method": method,
        "iterations": result.iterations,
        "converged": result.converged,
        "time_s": seconds,
        "upper_objective": history.upper_objective[-1],
        "upper_optimum": toy.upper_star,
        "lower_gap": history.lower_gap[-1],
        "constraint_violation": history.constraint_violation[-1],
        "distance_to_optimum": distance,
        "relative_distance_to_optimum": distance / float(torch.linalg.vector_norm(reference)),
        "x": result.x.tolist(),
        "y": result.y.tolist(),
        "x_optimum": toy.x_star.tolist(),
        "y_optimum": toy.y_star.tolist(),
    }
    if result.multipliers is not None:
        summary["multipliers"] = result.multipliers.tolist()
    return summary


def _print_toy_summary(summary: dict) -> None:
    def vector(values: list[float]) -> str:
        return "(" + ", ".join(f"{value:.6g}" for value in values) + ")"

    lines = [
        f"toy {summary['problem']} solved by {summary['method']}",
        f"  iterations            {summary['iterations']} "
        f"(converged: {'yes' if summary['converged'] else 'no'})",
        f"  time                  {summary['time_s']:.2f} s",
        f"  upper objective F     {summary['upper_objective']:.8g} "
        f"(optimum {summary['upper_optimum']:.8g})",
        f"  lower-level gap       {summary['lower_gap']:.3e}",
        f"  constraint violation  {summary['constraint_violation']:.3e}",
        f"  distance to optimum   {summary['distance_to_optimum']:.3e} "
        f"(relative {summary['relative_distance_to_optimum']:.3e})",
        f"  x                     {vector(summary['x'])}, optimum {vector(summary['x_optimum'])}",
        f"  y                     {vector(summary['y'])}, optimum {vector(summary['y_optimum'])}",
    ]
    if "multipliers" in summary:
        lines.append(f"  multipliers lambda    {vector(summary['multipliers'])}")
    click.echo("\n".join(lines))


@bilevel_group.command("toy")
@click.option(
    "--problem",
    type=click.Choice(tuple(TOY_METHODS)),
    default="coupled",
    show_default=True,
    help="coupled: lower constraint y <= x couples both levels (LV-HBA only); "
    "quadratic: strongly convex quadratic lower level without constraints.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="lvhba",
    show_default=True,
    help="Solver: lvhba (any toy), implicit or unrolled (quadratic only).",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Outer iterations at most [default: 6000 for coupled with lvhba, 10000 for "
    "quadratic with lvhba, 500 for implicit and unrolled].",
)
@every_option
@json_option
def toy_command(
    problem: str, method: str, iterations: int | None, every: int | None, as_json: bool
) -> None:
    """Solve a toy with a closed-form optimum and report the distance to it."""
    _check_method(method, TOY_METHODS[problem], f"--problem {problem}", "y <= x")
    from hessframe_bilevel.toys import coupled_toy, quadratic_toy

    iterations = iterations if iterations is not None else DEFAULT_ITERATIONS[problem, method]
    toy = coupled_toy() if problem == "coupled" else quadratic_toy()
    printers = _progress(as_json, every, iterations)
    result, seconds = _run_solver(
        method, toy.problem, toy.x0, toy.y0, iterations, callbacks=printers
    )
    _finish_progress(printers)
    summary = _toy_summary(problem, method, toy, result, seconds)
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_toy_summary(summary)


#: Solver settings of the hyper-cleaning runs, the same as in the hyper-cleaning tests.
#: With corruption 0.4 and seed 0, each solver flagged corrupted labels with precision > 0.9.
HYPERCLEAN_SETTINGS: dict[str, dict[str, Any]] = {
    "lvhba": {"config": {"alpha": 1.0, "eta": 2.0, "c_lower": 1.0}},
    "implicit": {"step": 100.0, "lower_step": 3.0, "lower_tol": 1e-5, "lower_max_iter": 1000},
    "unrolled": {"step": 100.0, "inner_steps": 20},
}

#: Outer iterations of the hyper-cleaning runs when ``--iterations`` is not given.
HYPERCLEAN_ITERATIONS = {"lvhba": 100, "implicit": 10, "unrolled": 30}


def _print_measures(title: str, summary: dict, names: tuple[str, ...]) -> None:
    """Print ``title``, then one line per name in ``names`` with its value in ``summary``."""
    click.echo(title)
    width = max(len(name) for name in names) + 2
    for name in names:
        value = summary[name]
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = str(value)
        click.echo(f"  {name:<{width}}{text}")


@bilevel_group.command("hyperclean")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="lvhba",
    show_default=True,
    help="Solver. The lower level has no constraints, so all three apply.",
)
@click.option(
    "--corruption",
    type=click.FloatRange(0.0, 1.0),
    default=0.4,
    show_default=True,
    callback=lambda context, parameter, value: _reject_nan_fraction(value),
    help="Fraction of train labels replaced by a wrong class.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the split and corruption, an integer >= 0.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=None,
    help="Outer iterations at most [default: 100 for lvhba, 10 for implicit, 30 for unrolled].",
)
@every_option
@json_option
def hyperclean_command(
    method: str,
    corruption: float,
    seed: int,
    iterations: int | None,
    every: int | None,
    as_json: bool,
) -> None:
    """Learn per-sample weights that discount the corrupted labels of the 8x8 digits."""
    from hessframe_bilevel.data import load_corrupted_digits
    from hessframe_bilevel.hyperclean import evaluate_hyperclean, hyperclean_problem
    from hessframe_bilevel.lvhba import LVHBAConfig

    iterations = iterations if iterations is not None else HYPERCLEAN_ITERATIONS[method]
    settings = dict(HYPERCLEAN_SETTINGS[method])
    if "config" in settings:
        settings["config"] = LVHBAConfig(**settings["config"])
    data = load_corrupted_digits(corruption=corruption, seed=seed)
    problem = hyperclean_problem(data)
    printers = _progress(as_json, every, iterations)
    result, seconds = _run_solver(
        method, problem.problem, problem.x0, problem.y0, iterations, settings, printers
    )
    _finish_progress(printers)
    history = result.history
    summary = {
        "method": method,
        "corruption": corruption,
        "seed": seed,
        "iterations": result.iterations,
        "converged": result.converged,
        "time_s": seconds,
        "upper_objective": history.upper_objective[-1],
        "lower_gap": history.lower_gap[-1],
        "constraint_violation": history.constraint_violation[-1],
        **evaluate_hyperclean(result, data),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_measures(
        f"hyperclean solved by {method} (corruption {corruption:g}, seed {seed})",
        summary,
        (
            "iterations",
            "converged",
            "time_s",
            "upper_objective",
            "lower_gap",
            "test_accuracy",
            "flagged",
            "precision",
            "recall",
            "f1",
        ),
    )


#: Outer iterations of the SVM runs when ``--iterations`` is not given: those of the SVM tests.
SVM_ITERATIONS = 300


@bilevel_group.command("svm")
@click.option(
    "--dataset",
    default="breast-cancer",
    show_default=True,
    help="Bundled binary data set: breast-cancer or wine-class-0.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="lvhba",
    show_default=True,
    help="Solver: lvhba only, because the slack bounds couple both levels.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the train/validation/test split, an integer >= 0.",
)
@click.option(
    "--iterations",
    type=click.IntRange(min=1),
    default=SVM_ITERATIONS,
    show_default=True,
    help="Outer iterations of LV-HBA.",
)
@every_option
@click.option(
    "--projection",
    type=click.Choice(("euclidean", "slack")),
    default="euclidean",
    show_default=True,
    help="How LV-HBA maps its (x, y) step into C: the Euclidean projection in all "
    "variables, or the cheaper retraction that moves only the slack bounds and slacks.",
)
@click.option(
    "--keep-best/--keep-last",
    default=True,
    show_default=True,
    help="Score the iterate with the lowest validation loss F (early stopping on the "
    "validation set), or the last iterate.",
)
@json_option
def svm_command(
    dataset: str,
    method: str,
    seed: int,
    iterations: int,
    every: int | None,
    projection: str,
    keep_best: bool,
    as_json: bool,
) -> None:
    """Learn the slack bounds of a linear SVM that minimise the validation loss."""
    _check_method(method, ("lvhba",), "the svm problem", "xi <= c on the slack bounds c")
    from hessframe_bilevel.data import BINARY_DATASETS, load_binary_dataset
    from hessframe_bilevel.problem import BestIterate
    from hessframe_bilevel.svm import evaluate_svm, svm_hyperparameter_problem

    if dataset not in BINARY_DATASETS:
        raise click.BadParameter(
            f"unknown data set {dataset!r}. Known sets: {', '.join(sorted(BINARY_DATASETS))}",
            param_hint="'--dataset'",
        )
    data = load_binary_dataset(dataset, seed=seed)
    svm = svm_hyperparameter_problem(data, projection=projection)
    printers = _progress(as_json, every, iterations)
    best = BestIterate()
    result, seconds = _run_solver(
        method, svm.problem, svm.x0, svm.y0, iterations, {"config": svm.config}, (*printers, best)
    )
    _finish_progress(printers)
    history = result.history
    selected = result.iterations
    if keep_best:
        selected = best.iteration
        result = dataclasses.replace(result, x=best.x, y=best.y)
    summary = {
        "dataset": dataset,
        "method": method,
        "projection": projection,
        "seed": seed,
        "iterations": result.iterations,
        "converged": result.converged,
        "time_s": seconds,
        "selected_iteration": selected,
        "upper_objective": history.upper_objective[selected],
        "upper_objective_start": history.upper_objective[0],
        "upper_objective_last": history.upper_objective[-1],
        "lower_gap": history.lower_gap[selected],
        **evaluate_svm(result, data),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    _print_measures(
        f"svm on {dataset} solved by {method} (seed {seed})",
        summary,
        (
            "iterations",
            "converged",
            "time_s",
            "selected_iteration",
            "upper_objective_start",
            "upper_objective",
            "upper_objective_last",
            "lower_gap",
            "constraint_violation",
            "validation_accuracy",
            "test_accuracy",
        ),
    )
