"""Per-iteration callbacks of the three solvers: what they receive, and stopping early."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel import BestIterate, IterationReport
from hessframe_bilevel.implicit import implicit_descent
from hessframe_bilevel.lvhba import lvhba
from hessframe_bilevel.problem import BilevelProblem
from hessframe_bilevel.toys import coupled_toy, quadratic_toy
from hessframe_bilevel.unrolled import unrolled_descent

from hessframe.errors import InvalidArgumentError


def small_problem() -> tuple[BilevelProblem, torch.Tensor]:
    """F = ½‖x − 1‖² + ½‖y‖² over f = ½‖y − x/2‖², and a start in ℝ².

    The hypergradient 1.25x − 1 makes a step of 0.5 contract the error by 0.375, so
    the implicit and unrolled runs take about 25 iterations to converge.
    """
    problem = BilevelProblem(
        upper=lambda x, y: 0.5 * (x - 1).square().sum() + 0.5 * y.square().sum(),
        lower=lambda x, y: 0.5 * (y - 0.5 * x).square().sum(),
    )
    return problem, torch.tensor([2.0, -1.0], dtype=torch.float64)


SOLVERS = {
    "lvhba": lambda problem, x0, y0, **kwargs: lvhba(problem, x0, y0, **kwargs),
    "implicit": lambda problem, x0, y0, **kwargs: implicit_descent(problem, x0, y0, **kwargs),
    "unrolled": lambda problem, x0, y0, **kwargs: unrolled_descent(problem, x0, y0, **kwargs),
}


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_callback_receives_every_iterate_in_order(method):
    problem, start = small_problem()
    reports: list[IterationReport] = []
    result = SOLVERS[method](problem, start, start, max_iter=7, callback=reports.append)

    assert [report.iteration for report in reports] == list(range(result.iterations + 1))
    history = result.history
    assert [report.upper_objective for report in reports] == list(history.upper_objective)
    assert [report.lower_gap for report in reports] == list(history.lower_gap)
    assert [report.constraint_violation for report in reports] == list(history.constraint_violation)
    # F recomputed from the reported iterate equals the reported F.
    for report in reports:
        assert float(problem.upper(report.x, report.y)) == pytest.approx(
            report.upper_objective, rel=1e-12
        )
    elapsed = [report.elapsed_s for report in reports]
    assert elapsed == sorted(elapsed)
    assert not result.stopped_by_callback


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_callback_returning_true_stops_run(method):
    problem, start = small_problem()
    seen: list[int] = []

    def stop_at_three(report: IterationReport) -> bool:
        seen.append(report.iteration)
        return report.iteration == 3

    result = SOLVERS[method](problem, start, start, max_iter=50, callback=stop_at_three)
    assert result.iterations == 3
    assert seen == [0, 1, 2, 3]
    assert result.stopped_by_callback
    assert not result.converged
    assert len(result.history.upper_objective) == 4


def test_callback_runs_while_solver_runs():
    # When the callback of iteration k runs, it has been called k times before: once per
    # iterate, during the run and not after it.
    toy = coupled_toy()
    counts: list[int] = []
    reports: list[IterationReport] = []

    def record(report: IterationReport) -> None:
        counts.append(len(reports))
        reports.append(report)

    lvhba(toy.problem, toy.x0, toy.y0, max_iter=5, callback=record)
    assert counts == [0, 1, 2, 3, 4, 5]
    assert all(report.x.shape == toy.x0.shape for report in reports)
    assert all(report.y.shape == toy.y0.shape for report in reports)


def test_best_iterate_keeps_lowest_upper_objective():
    best = BestIterate()
    values = [3.0, 1.0, 2.0, 0.5, 4.0]
    for k, value in enumerate(values):
        point = torch.full((2,), float(k))
        best(IterationReport(k, value, 0.0, 0.0, point, point + 10, 0.1 * k))
    assert best.iteration == 3
    assert best.upper_objective == 0.5
    torch.testing.assert_close(best.x, torch.full((2,), 3.0))
    torch.testing.assert_close(best.y, torch.full((2,), 13.0))


def test_best_iterate_copies_solver_iterate():
    toy = quadratic_toy()
    best = BestIterate()
    reports: list[IterationReport] = []

    def both(report: IterationReport) -> None:
        reports.append(report)
        best(report)

    lvhba(toy.problem, toy.x0, toy.y0, max_iter=30, callback=both)
    lowest = min(reports, key=lambda report: report.upper_objective)
    assert best.iteration == lowest.iteration
    torch.testing.assert_close(best.x, lowest.x, atol=0, rtol=0)
    assert best.x is not lowest.x


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_callback_that_is_not_callable_is_rejected(method):
    problem, start = small_problem()
    with pytest.raises(InvalidArgumentError, match="callback must be None or a callable"):
        SOLVERS[method](problem, start, start, max_iter=2, callback=42)


SOLVER_NAMES = {"lvhba": "lvhba", "implicit": "implicit_descent", "unrolled": "unrolled_descent"}


@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_callback_error_propagates_with_solver_and_iteration(method):
    problem, start = small_problem()

    def fail_at_second_iterate(report: IterationReport) -> None:
        if report.iteration == 2:
            raise KeyError("the caller's own bug")

    with pytest.raises(KeyError, match="the caller's own bug") as error:
        SOLVERS[method](problem, start, start, max_iter=5, callback=fail_at_second_iterate)
    assert error.value.__notes__ == [
        f"{SOLVER_NAMES[method]}: raised by the callback at iteration 2"
    ]
