"""Sinkhorn-Newton-Sparse against POT's log-domain Sinkhorn, duality and the marginals."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import ot
import pytest
import scipy.sparse
import torch
from conftest import make_problem
from hessframe_transport.cost import dual_objective, entropic_objective
from hessframe_transport.solver import ConvergenceWarning, sinkhorn_newton_sparse

from hessframe.errors import InvalidArgumentError


def _marginal_error(plan, a, b) -> float:
    return float(np.abs(plan.sum(axis=1) - a).sum() + np.abs(plan.sum(axis=0) - b).sum())


def _pot_plan(a, b, M, reg):
    return ot.bregman.sinkhorn_log(a, b, M, reg, numItermax=200_000, stopThr=1e-14)


@pytest.mark.parametrize(("n", "m"), [(12, 9), (9, 12), (25, 25)])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.02, 0.002])
@pytest.mark.parametrize("warmup_iterations", [None, 1])
def test_plan_matches_pot_sinkhorn_log(n, m, reg, warmup_iterations):
    problem = make_problem(n, m, seed=n + m)
    plan, log = sinkhorn_newton_sparse(
        problem.a,
        problem.b,
        problem.M,
        reg,
        stopThr=1e-13,
        warmup_iterations=warmup_iterations,
        log=True,
    )
    reference = _pot_plan(problem.a, problem.b, problem.M, reg)
    assert plan.shape == (n, m)
    assert np.abs(plan - reference).max() < 1e-8
    if warmup_iterations == 1:
        assert log["n_newton_iterations"] >= 1


def test_dual_and_primal_objectives_agree_at_convergence(problem):
    reg = 0.05
    plan, log = sinkhorn_newton_sparse(
        problem.a, problem.b, problem.M, reg, log=True, stopThr=1e-13
    )
    primal = entropic_objective(plan, problem.M, reg)
    dual = dual_objective(log["f"], log["g"], problem.a, problem.b, problem.M, reg)
    assert math.isclose(primal, dual, rel_tol=1e-9, abs_tol=1e-12)


def test_dual_below_primal_away_from_optimum(problem):
    reg = 0.05
    plan, log = sinkhorn_newton_sparse(problem.a, problem.b, problem.M, reg, log=True)
    rng = np.random.default_rng(3)
    primal = entropic_objective(plan, problem.M, reg)
    for _ in range(5):
        f = log["f"] + 0.01 * rng.normal(size=log["f"].shape)
        g = log["g"] + 0.01 * rng.normal(size=log["g"].shape)
        assert dual_objective(f, g, problem.a, problem.b, problem.M, reg) < primal


def test_both_marginals_hold(square_problem):
    p = square_problem
    plan, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.01, log=True, stopThr=1e-11)
    assert log["converged"]
    assert np.abs(plan.sum(axis=1) - p.a).sum() < 1e-11
    assert np.abs(plan.sum(axis=0) - p.b).sum() < 1e-11
    assert log["err"][-1] == pytest.approx(_marginal_error(plan, p.a, p.b), rel=1e-6, abs=1e-15)


def test_log_potentials_reproduce_plan(problem):
    reg = 0.05
    plan, log = sinkhorn_newton_sparse(problem.a, problem.b, problem.M, reg, log=True)
    from_f_g = np.exp((log["f"][:, None] + log["g"][None, :] - problem.M) / reg)
    from_log_u_v = np.exp(log["log_u"][:, None] + log["log_v"][None, :] - problem.M / reg)
    assert np.abs(from_f_g - plan).max() < 1e-12
    assert np.abs(from_log_u_v - plan).max() < 1e-12


def test_log_reports_iterations_and_history(square_problem):
    p = square_problem
    _, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.005, log=True)
    assert log["converged"] is True
    assert log["n_newton_iterations"] >= 1
    assert log["niter"] == (
        log["n_sinkhorn_iterations"] + log["n_newton_iterations"] + log["n_failed_newton_steps"]
    )
    assert len(log["err"]) == log["niter"]
    assert len(log["density"]) == len(log["n_cg_iterations"])
    assert all(0 < d <= 1 for d in log["density"])
    assert log["time"] > 0


def test_newton_needs_fewer_iterations_than_sinkhorn():
    p = make_problem(60, 60, seed=5)
    reg = 2e-3
    _, log = sinkhorn_newton_sparse(p.a, p.b, p.M, reg, log=True, stopThr=1e-9)
    _, pot_log = ot.bregman.sinkhorn_log(
        p.a, p.b, p.M, reg, numItermax=100_000, stopThr=1e-10, log=True
    )
    assert log["converged"]
    assert log["niter"] * 5 < pot_log["niter"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_dtype_is_kept(problem, dtype):
    reg = 0.05
    plan = sinkhorn_newton_sparse(
        problem.a.astype(dtype), problem.b.astype(dtype), problem.M.astype(dtype), reg
    )
    reference = _pot_plan(problem.a, problem.b, problem.M, reg)
    assert isinstance(plan, np.ndarray)
    assert plan.dtype == dtype
    tolerance = 1e-7 if dtype == np.float32 else 1e-9
    assert np.abs(plan.astype(np.float64) - reference).max() < tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_input_gives_torch_plan(problem, dtype):
    reg = 0.05
    a, b, M = (torch.tensor(x, dtype=dtype) for x in (problem.a, problem.b, problem.M))
    plan, log = sinkhorn_newton_sparse(a, b, M, reg, log=True)
    reference = _pot_plan(problem.a, problem.b, problem.M, reg)
    assert isinstance(plan, torch.Tensor)
    assert plan.dtype == dtype
    assert isinstance(log["f"], torch.Tensor)
    assert log["f"].dtype == dtype
    tolerance = 1e-7 if dtype == torch.float32 else 1e-9
    assert (plan.double() - torch.from_numpy(reference)).abs().max().item() < tolerance


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_input_gives_cuda_plan(problem, dtype):
    reg = 0.05
    a, b, M = (
        torch.tensor(x, dtype=dtype, device="cuda") for x in (problem.a, problem.b, problem.M)
    )
    plan = sinkhorn_newton_sparse(a, b, M, reg)
    reference = _pot_plan(problem.a, problem.b, problem.M, reg)
    assert plan.device.type == "cuda"
    assert plan.dtype == dtype
    assert (plan.double().cpu() - torch.from_numpy(reference)).abs().max().item() < 1e-7


def test_zero_masses_give_zero_rows_and_columns():
    p = make_problem(10, 8, seed=2)
    a = p.a.copy()
    b = p.b.copy()
    a[[0, 4]] = 0.0
    b[[3]] = 0.0
    a /= a.sum()
    b /= b.sum()
    reg = 0.05
    plan, log = sinkhorn_newton_sparse(a, b, p.M, reg, log=True, stopThr=1e-13)
    assert np.all(plan[[0, 4], :] == 0)
    assert np.all(plan[:, 3] == 0)
    assert np.all(np.isfinite(log["f"]))
    assert np.all(np.isfinite(log["g"]))
    rows = np.flatnonzero(a)
    columns = np.flatnonzero(b)
    reference = _pot_plan(a[rows], b[columns], p.M[np.ix_(rows, columns)], reg)
    assert np.abs(plan[np.ix_(rows, columns)] - reference).max() < 1e-8


def test_one_hot_source_sends_target_from_one_row(problem):
    a = np.zeros_like(problem.a)
    a[3] = 1.0
    plan = sinkhorn_newton_sparse(a, problem.b, problem.M, 0.01)
    assert np.abs(plan[3] - problem.b).max() < 1e-12
    assert np.all(np.delete(plan, 3, axis=0) == 0)


def test_one_hot_marginals_on_both_sides(problem):
    a = np.zeros_like(problem.a)
    b = np.zeros_like(problem.b)
    a[1] = 1.0
    b[7] = 1.0
    plan = sinkhorn_newton_sparse(a, b, problem.M, 0.01)
    expected = np.zeros_like(problem.M)
    expected[1, 7] = 1.0
    assert np.abs(plan - expected).max() < 1e-12


def test_small_reg_converges_without_nan():
    p = make_problem(30, 20, seed=4)
    plan, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 1e-5, log=True)
    assert np.all(np.isfinite(plan))
    assert np.all(np.isfinite(log["f"]))
    assert log["converged"]
    exact = ot.emd2(p.a, p.b, p.M)
    assert float((plan * p.M).sum()) == pytest.approx(exact, rel=1e-3)


def test_underflowed_plan_warns_and_stays_finite(caplog):
    p = make_problem(30, 20, seed=4)

    with pytest.warns(ConvergenceWarning, match="plan has underflowed to total mass"):
        plan, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 1e-300, numItermax=50, log=True)

    assert np.all(np.isfinite(plan))
    assert plan.sum() < 0.5
    assert not log["converged"]
    records = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(records) == 1
    assert records[0].convergence is True


def test_small_reg_with_float32_torch_stays_finite():
    p = make_problem(30, 20, seed=4)
    a, b, M = (torch.tensor(x, dtype=torch.float32) for x in (p.a, p.b, p.M))
    plan = sinkhorn_newton_sparse(a, b, M, 1e-5)
    assert torch.isfinite(plan).all()


def test_empty_marginals_mean_uniform(problem):
    n, m = problem.M.shape
    plan = sinkhorn_newton_sparse([], [], problem.M, 0.05)
    reference = _pot_plan(np.full(n, 1 / n), np.full(m, 1 / m), problem.M, 0.05)
    assert np.abs(plan - reference).max() < 1e-8


def test_normalize_rescales_both_marginals(problem):
    plan = sinkhorn_newton_sparse(3.0 * problem.a, 0.5 * problem.b, problem.M, 0.05, normalize=True)
    reference = _pot_plan(problem.a, problem.b, problem.M, 0.05)
    assert np.abs(plan - reference).max() < 1e-8


def test_sparse_plan_numpy_matches_dense(square_problem):
    p = square_problem
    dense = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.002)
    sparse, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.002, log=True, return_sparse=True)
    assert scipy.sparse.issparse(sparse)
    assert sparse.nnz < dense.size
    assert np.abs(sparse.toarray() - dense).max() <= np.finfo(np.float64).eps * dense.max()
    assert log["sparse_dropped_mass"] == pytest.approx(dense.sum() - sparse.sum(), abs=1e-15)


def test_sparse_plan_torch_matches_dense(square_problem):
    p = square_problem
    a, b, M = (torch.tensor(x) for x in (p.a, p.b, p.M))
    dense = sinkhorn_newton_sparse(a, b, M, 0.002)
    sparse = sinkhorn_newton_sparse(a, b, M, 0.002, return_sparse=True)
    assert sparse.is_sparse
    assert sparse.dtype == torch.float64
    assert (sparse.to_dense() - dense).abs().max().item() <= 2.3e-16 * dense.max().item()


def test_not_converged_warns_with_error_reached(square_problem):
    p = square_problem
    with pytest.warns(ConvergenceWarning, match="marginal error"):
        _, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.001, numItermax=3, log=True)
    assert log["converged"] is False
    assert log["niter"] <= 3


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"a": [-0.1, 0.6, 0.5]}, "a contains negative masses"),
        ({"b": [np.nan, 0.5]}, "b contains NaN"),
        ({"a": [np.inf, 0.5, 0.5]}, "a contains NaN or infinite"),
        ({"M": [[0.0, -1.0], [1.0, 0.0], [1.0, 1.0]]}, "M contains negative costs"),
        ({"M": [[0.0, np.nan], [1.0, 0.0], [1.0, 1.0]]}, "M contains 1 NaN"),
        ({"M": [[0.0, np.inf], [1.0, 0.0], [1.0, 1.0]]}, "M contains 1 NaN or infinite"),
        ({"a": [0.3, 0.3, 0.3]}, "different total masses"),
        ({"a": [0.5, 0.5]}, "a has length 2 but M has 3 rows"),
        ({"b": [0.2, 0.3, 0.5]}, "b has length 3 but M has 2 columns"),
        ({"b": [[0.5, 0.5]]}, "b must be a 1-D histogram"),
        ({"M": [0.0, 1.0, 2.0]}, "M must be a 2-D cost matrix"),
        ({"a": [0.0, 0.0, 0.0], "b": [0.0, 0.0]}, "a has total mass 0"),
        ({"reg": 0.0}, "reg must be a finite positive number"),
        ({"reg": -1.0}, "reg must be a finite positive number"),
        ({"reg": np.nan}, "reg must be a finite positive number"),
        ({"reg": "0.1"}, "reg must be a positive number"),
        ({"numItermax": 0}, "numItermax must be an integer >= 1"),
        ({"stopThr": -1e-9}, "stopThr must be a finite positive number"),
        ({"density": 0.0}, "density must lie in"),
        ({"density": 0.5, "max_density": 0.25}, "must not exceed max_density"),
        ({"cg_tol": 1.0}, "cg_tol must lie in"),
        ({"line_search_shrink": 1.5}, "line_search_shrink must lie in"),
        ({"warmup_iterations": -1}, "warmup_iterations must be an integer >= 0"),
    ],
)
def test_invalid_input_is_rejected_with_its_name(change, match):
    arguments = {
        "a": [0.2, 0.3, 0.5],
        "b": [0.4, 0.6],
        "M": [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]],
        "reg": 0.1,
    }
    arguments.update(change)
    a = arguments.pop("a")
    b = arguments.pop("b")
    M = arguments.pop("M")
    reg = arguments.pop("reg")
    with pytest.raises(InvalidArgumentError, match=match):
        sinkhorn_newton_sparse(np.asarray(a), np.asarray(b), np.asarray(M), reg, **arguments)


def test_mixed_numpy_and_torch_is_rejected(problem):
    with pytest.raises(InvalidArgumentError, match="a is a numpy array but M is a torch tensor"):
        sinkhorn_newton_sparse(problem.a, torch.tensor(problem.b), torch.tensor(problem.M), 0.1)


def test_verbose_logs_progress_at_info(problem, caplog):
    with caplog.at_level(logging.INFO, logger="hessframe_transport.solver"):
        sinkhorn_newton_sparse(problem.a, problem.b, problem.M, 0.01, verbose=True)
    summaries = [r for r in caplog.records if "Sinkhorn and" in r.getMessage()]
    assert len(summaries) == 1
    assert summaries[0].levelno == logging.INFO


def test_zero_warmup_starts_with_newton(square_problem):
    p = square_problem
    plan, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.01, warmup_iterations=0, log=True)
    assert log["n_sinkhorn_iterations"] <= log["n_failed_newton_steps"] * 10
    assert log["converged"]
    assert _marginal_error(plan, p.a, p.b) < 1e-9


def test_warmstart_from_solution_converges_at_once(square_problem):
    p = square_problem
    reference, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.005, log=True, stopThr=1e-12)
    plan, warm_log = sinkhorn_newton_sparse(
        p.a, p.b, p.M, 0.005, log=True, stopThr=1e-9, warmstart=(log["log_u"], log["log_v"])
    )
    assert warm_log["niter"] <= 1
    assert np.abs(plan - reference).max() < 1e-12


def test_warmstart_far_from_optimum_still_converges(square_problem):
    p = square_problem
    n, m = p.M.shape
    start = (np.full(n, 800.0), np.full(m, 800.0))
    plan = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.005, stopThr=1e-11, warmstart=start)
    reference = _pot_plan(p.a, p.b, p.M, 0.005)
    assert np.abs(plan - reference).max() < 1e-8


def test_warn_false_silences_convergence_warning(square_problem):
    p = square_problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, log = sinkhorn_newton_sparse(p.a, p.b, p.M, 0.001, numItermax=2, log=True, warn=False)
    assert log["converged"] is False


@pytest.mark.parametrize(
    ("warmstart", "match"),
    [
        (np.zeros(3), "warmstart must be a pair"),
        ((np.zeros(3), np.zeros(3)), r"warmstart\[1\] \(log_v\) must have shape \(2,\)"),
        ((np.array([np.nan, 0.0, 0.0]), np.zeros(2)), "must be finite"),
    ],
)
def test_invalid_warmstart_is_rejected(warmstart, match):
    a = np.array([0.2, 0.3, 0.5])
    b = np.array([0.4, 0.6])
    M = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    with pytest.raises(InvalidArgumentError, match=match):
        sinkhorn_newton_sparse(a, b, M, 0.1, warmstart=warmstart)
