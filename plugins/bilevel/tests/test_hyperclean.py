"""Hyper-cleaning of corrupted digits: each solver lowers the validation loss and flags noise."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel import LVHBAConfig, implicit_descent, lvhba, unrolled_descent
from hessframe_bilevel.data import load_corrupted_digits
from hessframe_bilevel.hyperclean import evaluate_hyperclean, hyperclean_problem
from hessframe_bilevel.implicit import solve_lower
from hessframe_bilevel.problem import BilevelHistory, BilevelResult

from hessframe.errors import InvalidArgumentError


@pytest.fixture(autouse=True)
def single_thread():
    # The matrices are 150 x 65, and on a loaded 2-core machine two torch threads made
    # these runs 15 to 50 times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_corrupted_digits(corruption=0.4, seed=0).head(150, 150)


def _run(name, problem):
    if name == "implicit":
        return implicit_descent(
            problem.problem,
            problem.x0,
            problem.y0,
            step=100.0,
            max_iter=6,
            lower_step=3.0,
            lower_tol=1e-4,
            lower_max_iter=1000,
        )
    if name == "unrolled":
        return unrolled_descent(
            problem.problem, problem.x0, problem.y0, step=100.0, max_iter=30, inner_steps=20
        )
    config = LVHBAConfig(alpha=1.0, eta=2.0, c_lower=1.0)
    return lvhba(problem.problem, problem.x0, problem.y0, config=config, max_iter=100)


@pytest.mark.parametrize("solver", ["implicit", "unrolled", "lvhba"])
def test_solver_lowers_loss_and_flags_corrupted(data, solver):
    problem = hyperclean_problem(data)
    uniform = solve_lower(problem.problem, problem.x0, problem.y0, step=3.0, tol=1e-6)
    uniform_loss = float(problem.problem.upper(problem.x0, uniform.y))

    result = _run(solver, problem)
    scores = evaluate_hyperclean(result, data)

    assert scores["validation_loss"] < 0.8 * uniform_loss
    # Flagging at random has expected precision 0.4, the corruption rate.
    assert scores["precision"] > 0.6
    assert scores["recall"] > 0.8


def test_uniform_weights_score_as_unweighted_regression(data):
    problem = hyperclean_problem(data)
    uniform = solve_lower(problem.problem, problem.x0, problem.y0, step=3.0, tol=1e-8)
    history = BilevelHistory((0.0,), (0.0,), (0.0,))
    result = BilevelResult(problem.x0, uniform.y, 0, False, history)

    scores = evaluate_hyperclean(result, data)

    # Every weight is σ(0) = 0.5, which is not below the threshold 0.5.
    assert scores["flagged"] == 0
    assert scores["recall"] == 0.0


def test_evaluate_rejects_bad_threshold(data):
    problem = hyperclean_problem(data)
    history = BilevelHistory((0.0,), (0.0,), (0.0,))
    result = BilevelResult(problem.x0, problem.y0, 0, False, history)

    with pytest.raises(InvalidArgumentError, match="threshold"):
        evaluate_hyperclean(result, data, threshold=1.5)


@pytest.mark.parametrize("ridge", [0.0, -1.0, float("inf"), float("nan")])
def test_problem_rejects_ridge_that_is_not_finite_and_positive(data, ridge):
    with pytest.raises(InvalidArgumentError, match="ridge must be a finite number > 0"):
        hyperclean_problem(data, ridge=ridge)


def test_evaluate_rejects_result_and_data_of_wrong_types(data):
    problem = hyperclean_problem(data)
    history = BilevelHistory((0.0,), (0.0,), (0.0,))
    result = BilevelResult(problem.x0, problem.y0, 0, False, history)
    with pytest.raises(InvalidArgumentError, match="result must be the BilevelResult"):
        evaluate_hyperclean(None, data)
    with pytest.raises(InvalidArgumentError, match="data must be a CorruptedDigits"):
        evaluate_hyperclean(result, "digits")


def test_lower_level_matches_weighted_sklearn_regression(data):
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    problem = hyperclean_problem(data, ridge=1e-2)
    logits = torch.linspace(-2.0, 2.0, data.x_train.shape[0], dtype=torch.float64)
    solution = solve_lower(problem.problem, logits, problem.y0, step=3.0, tol=1e-9, max_iter=20000)
    weights = problem.weights_matrix(solution.y)

    # scikit-learn minimises Σ s_i ℓ_i + ‖W‖²/(2C), which is f for s_i = σ(x_i)/n and C = 1/ρ.
    # It leaves its intercept unpenalised, so a column of ones replaces the bias row.
    n = data.x_train.shape[0]
    with_ones = torch.cat([torch.ones(n, 1, dtype=torch.float64), data.x_train], dim=1)
    model = sklearn_linear.LogisticRegression(
        C=1.0 / 1e-2, fit_intercept=False, tol=1e-12, max_iter=10000
    )
    model.fit(
        with_ones.numpy(), data.y_train.numpy(), sample_weight=(torch.sigmoid(logits) / n).numpy()
    )

    torch.testing.assert_close(weights.T, torch.from_numpy(model.coef_), atol=1e-5, rtol=0)
