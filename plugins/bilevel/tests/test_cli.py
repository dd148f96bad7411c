"""The ``hessframe bilevel`` commands: toys against closed-form optima, data runs, bad options."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from hessframe_bilevel.cli import ProgressPrinter, bilevel_group
from hessframe_bilevel.problem import IterationReport
from hessframe_bilevel.toys import coupled_toy, quadratic_toy

from hessframe.cli import build_cli
from hessframe.plugins import PluginManager


def run(*arguments: str):
    return CliRunner().invoke(bilevel_group, list(arguments))


def test_coupled_lvhba_json_reaches_optimum():
    result = run(
        "toy", "--problem", "coupled", "--method", "lvhba", "--iterations", "5000", "--json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    toy = coupled_toy()
    assert summary["iterations"] == 5000
    assert summary["relative_distance_to_optimum"] < 1e-3
    assert summary["x"] == pytest.approx(toy.x_star.tolist(), abs=5e-3)
    assert summary["y"] == pytest.approx(toy.y_star.tolist(), abs=5e-3)
    assert summary["multipliers"] == pytest.approx([0.5, 0.5, 0.0], abs=1e-3)
    assert summary["upper_objective"] == pytest.approx(toy.upper_star, rel=1e-3)
    assert summary["constraint_violation"] == 0.0


def test_quadratic_implicit_reaches_optimum():
    result = run("toy", "--problem", "quadratic", "--method", "implicit", "--every", "5")
    assert result.exit_code == 0, result.output
    toy = quadratic_toy()
    lines = result.stdout.splitlines()
    assert lines[0] == "toy quadratic solved by implicit"
    fields = {line.split(maxsplit=1)[0]: line for line in lines[1:]}
    relative = float(fields["distance"].split("(relative ")[1].rstrip(")"))
    assert relative < 1e-3
    upper = float(fields["upper"].split()[3])
    assert upper == pytest.approx(toy.upper_star, rel=1e-3)
    # The progress table goes to stderr: its header and its first row, iteration 0.
    progress = result.stderr.splitlines()
    assert progress[0].split() == ["iteration", "upper", "F", "lower", "gap", "violation"]
    assert progress[1].split()[0] == "0"
    assert [int(row.split()[0]) % 5 for row in progress[1:-1]] == [0] * (len(progress) - 2)


def test_quadratic_unrolled_json_reaches_optimum():
    result = run("toy", "--problem", "quadratic", "--method", "unrolled", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert result.stderr == ""
    assert summary["converged"] is True
    assert summary["relative_distance_to_optimum"] < 1e-3
    assert "multipliers" not in summary


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_coupled_rejects_unconstrained_methods(method):
    result = run("toy", "--problem", "coupled", "--method", method)
    assert result.exit_code == 2
    assert "Invalid value for '--method'" in result.output
    assert "Accepted with --problem coupled: lvhba" in result.output


def test_unknown_method_lists_methods():
    result = run("toy", "--method", "newton")
    assert result.exit_code == 2
    assert "'--method'" in result.output
    for method in ("lvhba", "implicit", "unrolled"):
        assert method in result.output


def test_zero_iterations_rejected():
    result = run("toy", "--iterations", "0")
    assert result.exit_code == 2
    assert "'--iterations'" in result.output


def test_core_cli_has_bilevel_group():
    cli = build_cli(PluginManager(autoload=True))
    assert "bilevel" in cli.commands
    assert "toy" in cli.commands["bilevel"].commands


def test_hyperclean_lvhba_flags_corrupted_labels():
    result = run("hyperclean", "--method", "lvhba", "--iterations", "40", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["iterations"] == 40
    # Flagging at random has expected precision 0.4, the corruption rate.
    assert summary["precision"] > 0.6
    assert summary["recall"] > 0.8
    # F is the validation cross-entropy, so the run's last F is the scored validation loss.
    assert summary["upper_objective"] == pytest.approx(summary["validation_loss"], rel=1e-12)


def test_hyperclean_text_reports_scores():
    result = run("hyperclean", "--iterations", "10", "--every", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "hyperclean solved by lvhba (corruption 0.4, seed 0)"
    fields = dict(line.split() for line in lines[1:])
    assert fields["iterations"] == "10"
    assert 0.0 <= float(fields["precision"]) <= 1.0
    progress = [row.split()[0] for row in result.stderr.splitlines()[1:]]
    assert progress == ["0", "5", "10"]


def test_hyperclean_rejects_corruption_above_one():
    result = run("hyperclean", "--corruption", "1.5")
    assert result.exit_code == 2
    assert "'--corruption'" in result.output


def test_svm_lvhba_lowers_validation_loss():
    result = run("svm", "--dataset", "wine-class-0", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    # At the start w = 0 and b = 0, so F = log 2.
    assert summary["upper_objective_start"] == pytest.approx(math.log(2))
    assert summary["upper_objective"] < 0.9 * math.log(2)
    assert summary["upper_objective"] == pytest.approx(summary["validation_loss"], rel=1e-12)
    assert summary["constraint_violation"] < 1e-12
    # Class 0 is 59 of the 178 wine samples, so always predicting the majority scores about 0.67.
    assert summary["test_accuracy"] > 0.8


def test_svm_keep_best_scores_lowest_validation_loss():
    best = json.loads(
        run("svm", "--dataset", "wine-class-0", "--iterations", "60", "--json").stdout
    )
    last = json.loads(
        run(
            "svm", "--dataset", "wine-class-0", "--iterations", "60", "--keep-last", "--json"
        ).stdout
    )
    assert last["selected_iteration"] == 60
    assert last["upper_objective"] == last["upper_objective_last"]
    # Both runs are the same deterministic run, so they share the last F.
    assert best["upper_objective_last"] == last["upper_objective_last"]
    assert 0 <= best["selected_iteration"] <= 60
    assert best["upper_objective"] <= last["upper_objective"]
    # The scored iterate is the selected one: its validation loss is the reported F.
    assert best["validation_loss"] == pytest.approx(best["upper_objective"], rel=1e-12)


@pytest.mark.parametrize("method", ["implicit", "unrolled"])
def test_svm_rejects_unconstrained_methods(method):
    result = run("svm", "--method", method)
    assert result.exit_code == 2
    assert "Invalid value for '--method'" in result.output
    assert "Accepted with the svm problem: lvhba" in result.output


def test_svm_unknown_dataset_lists_known():
    result = run("svm", "--dataset", "iris")
    assert result.exit_code == 2
    assert "'--dataset'" in result.output
    assert "breast-cancer, wine-class-0" in result.output


def test_progress_printer_prints_each_line_when_called(capsys):
    printer = ProgressPrinter(every=2)
    point = torch.zeros(1)
    for k in range(4):
        printer(IterationReport(k, 1.0 / (k + 1), 0.5, 0.0, point, point, 0.0))
        # The line of an iteration on the stride is on stderr before the next iteration runs.
        rows = capsys.readouterr().err.splitlines()
        if k == 0:
            assert rows[0].split() == ["iteration", "upper", "F", "lower", "gap", "violation"]
            rows = rows[1:]
        assert [row.split()[0] for row in rows] == ([str(k)] if k % 2 == 0 else [])
    printer.finish()
    assert capsys.readouterr().err.split()[:2] == ["3", "0.25"]
    printer.finish()
    assert capsys.readouterr().err == ""


def test_toy_progress_follows_stride():
    result = run("toy", "--problem", "coupled", "--iterations", "7", "--every", "3")
    assert result.exit_code == 0, result.output
    rows = [row.split() for row in result.stderr.splitlines()[1:]]
    assert [row[0] for row in rows] == ["0", "3", "6", "7"]
    summary_f = float(result.stdout.splitlines()[3].split()[3])
    assert float(rows[-1][1]) == pytest.approx(summary_f, rel=1e-6)


@pytest.mark.parametrize("projection", ["euclidean", "slack"])
def test_svm_projection_option_keeps_iterates_feasible(projection):
    result = run(
        "svm",
        "--dataset",
        "wine-class-0",
        "--iterations",
        "20",
        "--projection",
        projection,
        "--keep-last",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["projection"] == projection
    assert summary["constraint_violation"] < 1e-10


def test_svm_unknown_projection_lists_known():
    result = run("svm", "--projection", "exact")
    assert result.exit_code == 2
    assert "'--projection'" in result.output
    assert "euclidean" in result.output
    assert "slack" in result.output


@pytest.mark.parametrize("command", ["hyperclean", "svm"])
def test_negative_seed_is_a_usage_error(command):
    result = run(command, "--seed", "-1", "--iterations", "1")
    assert result.exit_code == 2, result.output
    assert "'--seed'" in result.output
    assert "x>=0" in result.output


def test_hyperclean_rejects_nan_corruption():
    result = run("hyperclean", "--corruption", "nan", "--iterations", "1")
    assert result.exit_code == 2, result.output
    assert "'--corruption'" in result.output
    assert "must be a number in [0, 1], got nan" in result.output


def test_json_with_every_separates_streams():
    result = run("toy", "--iterations", "4", "--every", "2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["iterations"] == 4
    progress = [row.split()[0] for row in result.stderr.splitlines()[1:]]
    assert progress == ["0", "2", "4"]


def test_json_without_every_prints_no_progress():
    result = run("toy", "--iterations", "4", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
