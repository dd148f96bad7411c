"""The ``hessframe transport`` commands.

``hessframe transport solve SOURCE TARGET`` reads two measures (images or point
clouds, see :mod:`hessframe_transport.io`), builds the ground-cost matrix between
their support points, solves the entropic optimal transport problem with the
Sinkhorn-Newton-Sparse solver and prints the transport cost, the marginal error
and the iteration counts. Without SOURCE and TARGET it runs on the digit image
pair shipped in ``datasets/transport/`` of the source checkout.

The core's ``hessframe`` command adds :data:`transport_group` through this
plugin's ``hessframe_commands`` hook; the group also runs on its own, for
example through :class:`click.testing.CliRunner`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import numpy as np
import scipy.sparse as sp

from hessframe.clickutils import prepare_output_folder, reject_non_finite
from hessframe.errors import HessframeError, InvalidArgumentError
from hessframe_transport.io import (
    MEASURE_KINDS,
    Measure,
    read_measure,
    write_match_plot,
    write_plan,
)

logger = logging.getLogger(__name__)

#: Folder of the shipped data sets, when running from a source checkout.
DATASET_DIR = Path(__file__).resolve().parents[3] / "datasets" / "transport"
DEFAULT_SOURCE = DATASET_DIR / "source.png"
DEFAULT_TARGET = DATASET_DIR / "target.png"
DEFAULT_REG = 0.01
DEFAULT_MAX_ITER = 1000
DEFAULT_TOL = 1e-9
METRICS = ("sqeuclidean", "euclidean")

#: A plan whose total mass is below this share of the marginals' total has
#: underflowed: the solver stopped inside its ε-scaling stages, where the plan
#: at the requested reg has (almost) no mass, so the command reports an error.
MIN_PLAN_MASS = 0.5

transport_group = click.Group(
    "transport",
    help=(
        "Entropic optimal transport between images or point clouds, solved with the "
        "Sinkhorn-Newton-Sparse method."
    ),
)


def marginal_error(plan: np.ndarray | sp.sparray, a: np.ndarray, b: np.ndarray) -> float:
    """Return the L1 marginal error ‖P 1 − a‖₁ + ‖Pᵀ 1 − b‖₁ of a plan P."""
    row_sums = np.asarray(plan.sum(axis=1)).ravel()
    col_sums = np.asarray(plan.sum(axis=0)).ravel()
    return float(np.abs(row_sums - a).sum() + np.abs(col_sums - b).sum())


def linear_cost(plan: np.ndarray | sp.sparray, cost: np.ndarray) -> float:
    """Return ⟨P, M⟩ = Σᵢⱼ Pᵢⱼ Mᵢⱼ, without the entropy term."""
    if sp.issparse(plan):
        coo = sp.coo_array(plan)
        return float(np.dot(coo.data, cost[coo.row, coo.col]))
    return float(np.sum(plan * cost))


def _read_argument(path: Path, argument: str, kind: str) -> Measure:
    try:
        return read_measure(path, argument=argument, kind=kind)
    except InvalidArgumentError as error:
        # read_measure starts its messages with the argument name, which click adds itself.
        message = str(error).removeprefix(f"{argument} ")
        raise click.BadParameter(message, param_hint=argument) from error


def _require_extension(
    extension: str,
) -> Callable[[click.Context, click.Parameter, Path | None], Path | None]:
    """Return an option callback that rejects a path not ending in ``extension``."""

    def check(
        context: click.Context, parameter: click.Parameter, value: Path | None
    ) -> Path | None:
        if value is not None and value.suffix.lower() != extension:
            raise click.BadParameter(
                f"{str(value)!r} does not end in {extension}, the only format written; "
                f"pass a path ending in {extension}"
            )
        return value

    return check


def _default_pair(source: Path | None, target: Path | None) -> tuple[Path, Path]:
    if source is None and target is None:
        if not (DEFAULT_SOURCE.is_file() and DEFAULT_TARGET.is_file()):
            raise click.UsageError(
                f"no SOURCE and TARGET given, and the shipped pair {DEFAULT_SOURCE} and "
                f"{DEFAULT_TARGET} is missing (it ships with the source checkout only); "
                "pass SOURCE and TARGET files"
            )
        return DEFAULT_SOURCE, DEFAULT_TARGET
    if source is None or target is None:
        raise click.UsageError(
            "give both SOURCE and TARGET, or neither to use the shipped digit image pair"
        )
    return source, target


def _solve(
    source: Measure,
    target: Measure,
    metric: str,
    reg: float,
    scale: bool,
    max_iter: int,
    tol: float,
) -> dict:
    """Build the cost matrix, run the solver and return the plan with its diagnostics."""
    from hessframe_transport.cost import cost_matrix
    from hessframe_transport.solver import ConvergenceWarning, sinkhorn_newton_sparse

    if source.points.shape[1] != target.points.shape[1]:
        raise click.UsageError(
            f"SOURCE points have {source.points.shape[1]} coordinates but TARGET points have "
            f"{target.points.shape[1]}; both must live in the same space"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        raw_cost = cost_matrix(source.points, target.points, metric=metric, scale=False)
    if not np.isfinite(raw_cost).all():
        largest = max(np.abs(source.points).max(), np.abs(target.points).max())
        raise click.UsageError(
            f"the {metric} costs between SOURCE and TARGET overflow float64 (coordinates up to "
            f"{largest:.3g}); rescale the coordinates"
        )
    cost_scale = float(raw_cost.max()) if scale and raw_cost.max() > 0 else 1.0
    cost = raw_cost / cost_scale

    started = time.perf_counter()
    try:
        with warnings.catch_warnings(), _without_convergence_log():
            # The command reports a missed tolerance itself, in its own option names.
            warnings.simplefilter("ignore", ConvergenceWarning)
            plan, log = sinkhorn_newton_sparse(
                source.weights,
                target.weights,
                cost,
                reg,
                numItermax=max_iter,
                stopThr=tol,
                log=True,
            )
    except HessframeError as error:
        raise click.ClickException(f"the solver rejected the problem: {error}") from error
    elapsed = time.perf_counter() - started

    plan_mass = float(plan.sum())
    if plan_mass < MIN_PLAN_MASS:
        raise click.ClickException(
            f"the plan underflowed: its total mass is {plan_mass:.3g} instead of 1, because the "
            f"solver stopped after {log['niter']} iterations, before its ε-scaling stages "
            f"reached --reg {reg:g}; raise --max-iter or --reg. No file was written."
        )

    plan_cost = linear_cost(plan, cost)
    return {
        "plan": plan,
        "cost_matrix": cost,
        "cost": plan_cost,
        "cost_scale": cost_scale,
        "cost_unscaled": plan_cost * cost_scale,
        "marginal_error": marginal_error(plan, source.weights, target.weights),
        "n_sinkhorn_iterations": int(log["n_sinkhorn_iterations"]),
        "n_newton_iterations": int(log["n_newton_iterations"]),
        "converged": bool(log["converged"]),
        "time_s": elapsed,
    }


class _ConvergenceRecordFilter(logging.Filter):
    """Drop the solver's missed-tolerance log record, which the command reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "convergence", False)


@contextlib.contextmanager
def _without_convergence_log() -> Iterator[None]:
    solver_logger = logging.getLogger("hessframe_transport.solver")
    record_filter = _ConvergenceRecordFilter()
    solver_logger.addFilter(record_filter)
    try:
        yield
    finally:
        solver_logger.removeFilter(record_filter)


def _describe(measure: Measure) -> str:
    path = _relative_to_cwd(measure.path)
    if measure.kind == "image":
        rows, cols = measure.image.shape
        return f"{path} (image {rows}×{cols}, {measure.size} pixels with mass)"
    return f"{path} ({measure.size} points in {measure.points.shape[1]} dimensions)"


def _relative_to_cwd(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


@transport_group.command("solve")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.argument("target", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--cost",
    "metric",
    type=click.Choice(METRICS),
    default="sqeuclidean",
    show_default=True,
    help="Ground cost between support points: squared Euclidean (W2²) or Euclidean (W1).",
)
@click.option(
    "--reg",
    type=click.FloatRange(min=0.0, min_open=True),
    callback=reject_non_finite,
    default=DEFAULT_REG,
    show_default=True,
    help="Entropic regularisation weight, in units of the (scaled) cost.",
)
@click.option(
    "--scale/--no-scale",
    default=True,
    show_default=True,
    help="Divide the cost matrix by its maximum so costs lie in [0, 1] and --reg is "
    "relative to the largest cost.",
)
@click.option(
    "--kind",
    type=click.Choice(MEASURE_KINDS),
    default="auto",
    show_default=True,
    help="Read both files as images or as point clouds; auto decides by extension and shape.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_require_extension(".npz"),
    help="Write the plan, the marginals, the support points and the cost to this .npz file "
    "(missing folders are created).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_require_extension(".png"),
    help="Draw the strongest matches to this .png file (missing folders are created).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_ITER,
    show_default=True,
    help="Maximum number of solver iterations (passed to the solver as numItermax).",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0.0, min_open=True),
    callback=reject_non_finite,
    default=DEFAULT_TOL,
    show_default=True,
    help="Stop when the L1 marginal error ‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁ is below this.",
)
def solve_command(
    source: Path | None,
    target: Path | None,
    metric: str,
    reg: float,
    scale: bool,
    kind: str,
    out: Path | None,
    plot: Path | None,
    as_json: bool,
    max_iter: int,
    tol: float,
) -> None:
    """Solve entropic optimal transport from SOURCE to TARGET.

    SOURCE and TARGET are images (PNG and other Pillow formats, or a 2-D .npy
    array; brightness is mass) or point clouds (.csv/.txt with columns
    x, y[, ...][, weight], an (n, d) .npy array, or an .npz with 'points' and
    'weights'). Without both, the shipped digit pair datasets/transport/source.png
    and target.png is used. The cost matrix is scaled to [0, 1] unless --no-scale.
    """
    source, target = _default_pair(source, target)
    for path, option in ((out, "--out"), (plot, "--plot")):
        if path is not None:
            prepare_output_folder(path.parent, option)
    source_measure = _read_argument(source, "SOURCE", kind)
    target_measure = _read_argument(target, "TARGET", kind)

    result = _solve(source_measure, target_measure, metric, reg, scale, max_iter, tol)

    if out is not None:
        write_plan(
            out,
            result["plan"],
            source_measure.weights,
            target_measure.weights,
            source_points=source_measure.points,
            target_points=target_measure.points,
            cost=result["cost"],
            cost_scale=result["cost_scale"],
            marginal_error=result["marginal_error"],
            reg=reg,
            metric=metric,
        )
    if plot is not None:
        write_match_plot(plot, source_measure, target_measure, result["plan"])

    summary = {
        "source": str(source),
        "target": str(target),
        "source_kind": source_measure.kind,
        "target_kind": target_measure.kind,
        "n_source": source_measure.size,
        "n_target": target_measure.size,
        "metric": metric,
        "reg": reg,
        "scaled": scale,
        "cost": result["cost"],
        "cost_scale": result["cost_scale"],
        "cost_unscaled": result["cost_unscaled"],
        "marginal_error": result["marginal_error"],
        "tol": tol,
        "converged": result["converged"],
        "n_sinkhorn_iterations": result["n_sinkhorn_iterations"],
        "n_newton_iterations": result["n_newton_iterations"],
        "time_s": result["time_s"],
        "out": None if out is None else str(out),
        "plot": None if plot is None else str(plot),
        "warnings": [],
    }
    if not result["converged"]:
        summary["warnings"].append(
            f"the solver stopped at --max-iter {max_iter} with marginal error "
            f"{result['marginal_error']:.3g}, above --tol {tol:g}; raise --max-iter or --reg, "
            "or loosen --tol"
        )
    if as_json:
        click.echo(json.dumps(summary))
    else:
        _echo_summary(summary, source_measure, target_measure)


def _echo_summary(summary: dict, source: Measure, target: Measure) -> None:
    units = "pixel widths" if source.kind == "image" else "input units"
    power = "²" if summary["metric"] == "sqeuclidean" else ""
    click.echo(f"source:          {_describe(source)}")
    click.echo(f"target:          {_describe(target)}")
    click.echo(f"cost:            {summary['metric']}, reg {summary['reg']:g}")
    if summary["scaled"]:
        click.echo(
            f"transport cost:  {summary['cost']:.8g} (cost scaled to [0, 1]); "
            f"{summary['cost_unscaled']:.8g} in {units}{power}"
        )
    else:
        click.echo(f"transport cost:  {summary['cost']:.8g} in {units}{power}")
    click.echo(
        f"marginal error:  {summary['marginal_error']:.3g} (L1, tolerance {summary['tol']:g})"
    )
    click.echo(
        f"iterations:      {summary['n_sinkhorn_iterations']} Sinkhorn, "
        f"{summary['n_newton_iterations']} Newton"
    )
    click.echo(f"time:            {summary['time_s']:.3f} s")
    for warning in summary["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    for key, label in (("out", "plan written to"), ("plot", "plot written to")):
        if summary[key] is not None:
            click.echo(f"{label}: {summary[key]}")
