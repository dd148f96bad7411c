"""SVM hyperparameter selection: the lower level is the SVM, and LV-HBA lowers F."""

from __future__ import annotations

import pytest
import torch
from hessframe_bilevel import lvhba
from hessframe_bilevel.data import load_binary_dataset
from hessframe_bilevel.problem import BilevelHistory, BilevelResult
from hessframe_bilevel.svm import evaluate_svm, solve_svm_lower, svm_hyperparameter_problem
from sklearn.svm import SVC

from hessframe.errors import InvalidArgumentError

HEADS = {"breast-cancer": (60, 40), "wine-class-0": (60, 40)}


@pytest.fixture(scope="module", params=sorted(HEADS))
def dataset(request):
    return load_binary_dataset(request.param).head(*HEADS[request.param])


def test_lower_level_matches_sklearn_svc(dataset):
    model = SVC(kernel="linear", C=0.1, tol=1e-10)
    model.fit(dataset.x_train.numpy(), dataset.y_train.numpy())
    w = torch.tensor(model.coef_[0])
    b = float(model.intercept_[0])
    # At c = ξ*, the slack of the soft-margin SVM, both problems share w* and b*.
    slack = torch.clamp(1 - dataset.y_train * (dataset.x_train @ w + b), min=0)

    solution = solve_svm_lower(dataset, slack)
    w_ours, b_ours, slack_ours = svm_hyperparameter_problem(dataset).split(solution)

    torch.testing.assert_close(w_ours, w, atol=1e-6, rtol=0)
    assert abs(float(b_ours) - b) < 1e-6
    torch.testing.assert_close(slack_ours, slack, atol=1e-6, rtol=0)


def test_lvhba_lowers_validation_loss(dataset):
    svm = svm_hyperparameter_problem(dataset)
    result = lvhba(svm.problem, svm.x0, svm.y0, config=svm.config, max_iter=300)
    scores = evaluate_svm(result, dataset)

    # At the start w = 0 and b = 0, so F = log 2.
    assert result.history.upper_objective[0] == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert scores["validation_loss"] < 0.9 * result.history.upper_objective[0]
    assert scores["constraint_violation"] < 1e-12
    majority = max(
        float((dataset.y_test > 0).double().mean()), float((dataset.y_test < 0).double().mean())
    )
    assert scores["test_accuracy"] > majority + 0.1
    assert bool((result.x >= 0).all())


def test_slack_projection_lands_in_feasible_set(dataset):
    svm = svm_hyperparameter_problem(dataset, projection="slack")
    generator = torch.Generator().manual_seed(0)
    bounds = torch.randn(svm.x0.shape, generator=generator, dtype=torch.float64)
    lower = torch.randn(svm.y0.shape, generator=generator, dtype=torch.float64)

    projected_bounds, projected_lower = svm.problem.project_feasible(bounds, lower)
    constraints = svm.problem.constraints(projected_bounds, projected_lower)

    assert float(constraints.max()) <= 1e-12
    assert bool((projected_bounds >= 0).all())
    torch.testing.assert_close(
        projected_lower[: svm.num_features + 1], lower[: svm.num_features + 1]
    )
    again = svm.problem.project_feasible(projected_bounds, projected_lower)
    torch.testing.assert_close(again[0], projected_bounds, rtol=0, atol=0)
    torch.testing.assert_close(again[1], projected_lower, rtol=0, atol=0)


def test_slack_projection_pair_by_hand():
    dataset = load_binary_dataset("wine-class-0").head(1, 1)
    svm = svm_hyperparameter_problem(dataset, projection="slack")
    # With w = 0 and b = 0.7 y_1 the hinge is 0.3, so (c, ξ) = (0.2, 0.8) goes to (0.5, 0.5).
    lower = torch.zeros(svm.y0.shape, dtype=torch.float64)
    lower[svm.num_features] = 0.7 * dataset.y_train[0]
    lower[-1] = 0.8

    bounds, projected = svm.problem.project_feasible(
        torch.tensor([0.2], dtype=torch.float64), lower
    )

    assert float(bounds[0]) == pytest.approx(0.5)
    assert float(projected[-1]) == pytest.approx(0.5)


def test_bad_inputs_rejected(dataset):
    with pytest.raises(InvalidArgumentError, match="BinaryDataset"):
        svm_hyperparameter_problem("breast-cancer")
    with pytest.raises(InvalidArgumentError, match="one of euclidean, slack, got 'exact'"):
        svm_hyperparameter_problem(dataset, projection="exact")
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        solve_svm_lower(dataset, -torch.ones(dataset.x_train.shape[0], dtype=torch.float64))
    history = BilevelHistory((0.0,), (0.0,), (0.0,))
    short = BilevelResult(torch.zeros(3), torch.zeros(3), 0, False, history)
    with pytest.raises(InvalidArgumentError, match="shape"):
        evaluate_svm(short, dataset)
    with pytest.raises(InvalidArgumentError, match="result must be the BilevelResult"):
        evaluate_svm(None, dataset)
