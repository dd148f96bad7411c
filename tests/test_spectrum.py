"""Tests of compute_spectrum, write_spectrum and the ``spectrum`` command against dense truths."""

from __future__ import annotations

import itertools
import json
import math
import os

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from click.testing import CliRunner
from matplotlib.image import imread
from torch.func import functional_call, grad, hessian, jvp

from hessframe.commands import spectrum_command
from hessframe.digits import load_digits_split, load_pretrained_digits_mlp
from hessframe.errors import InvalidArgumentError
from hessframe.spectrum import SpectrumResult, compute_spectrum, write_spectrum

# Small settings for the stages that a test does not examine.
CHEAP = {
    "num_probes": 2,
    "num_steps": 8,
    "trace_matvecs": 6,
    "exact_trace_max_size": 0,
    "progress": False,
}
CHEAP_LANCZOS = {"top_k": 1, "max_iter": 2, "tol": 1e-2}


def make_tiny_problem(seed: int = 0):
    """Return a 5-8-3 tanh MLP (75 parameters) in float64 and two batches of 40 samples."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    inputs = torch.randn(40, 5, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (40,), generator=generator)
    batches = [(inputs[:25], targets[:25]), (inputs[25:], targets[25:])]
    return model, batches


def flat_loss_function(model, loss_fn, batches):
    """Return (mean loss as a function of the flat parameters, the flat parameters)."""
    names = [name for name, _ in model.named_parameters()]
    tensors = [parameter.detach() for _, parameter in model.named_parameters()]
    shapes = [tensor.shape for tensor in tensors]
    sizes = [tensor.numel() for tensor in tensors]
    total = sum(len(targets) for _, targets in batches)

    def mean_loss(theta):
        chunks = theta.split(sizes)
        params = {
            name: chunk.view(shape)
            for name, chunk, shape in zip(names, chunks, shapes, strict=True)
        }
        weighted = [
            len(targets) * loss_fn(functional_call(model, params, (inputs,)), targets)
            for inputs, targets in batches
        ]
        return sum(weighted) / total

    return mean_loss, torch.cat([tensor.reshape(-1) for tensor in tensors])


@pytest.fixture(scope="module")
def tiny():
    model, batches = make_tiny_problem()
    loss_fn = torch.nn.functional.cross_entropy
    mean_loss, theta = flat_loss_function(model, loss_fn, batches)
    dense = hessian(mean_loss)(theta)
    eigenvalues = torch.linalg.eigvalsh((dense + dense.T) / 2)
    return model, loss_fn, batches, dense, eigenvalues


def test_tiny_problem_has_indefinite_hessian(tiny):
    _, _, _, dense, eigenvalues = tiny

    assert dense.shape == (75, 75)
    assert eigenvalues[0] < 0 < eigenvalues[-1]


def test_top_eigenvalues_match_dense(tiny):
    model, loss_fn, batches, _, eigenvalues = tiny
    expected = eigenvalues.flip(0)[:5]

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        top_k=5,
        tol=1e-9,
        generator=torch.Generator().manual_seed(0),
        **CHEAP,
    )

    assert result.eigenvalues_converged
    assert result.num_parameters == 75
    torch.testing.assert_close(
        torch.tensor(result.top_eigenvalues, dtype=torch.float64), expected, rtol=1e-6, atol=0
    )
    assert max(result.eigenvalue_residuals) <= 1e-9 * float(eigenvalues.abs().max()) * 1.0001


def test_exact_trace_matches_dense(tiny):
    model, loss_fn, batches, dense, _ = tiny

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        generator=torch.Generator().manual_seed(0),
        **{**CHEAP, **CHEAP_LANCZOS, "exact_trace_max_size": 75},
    )

    assert result.exact_trace == pytest.approx(float(dense.trace()), rel=1e-10)
    assert result.exact_trace_matvecs == 75


def test_exact_trace_skipped_above_size_limit(tiny):
    model, loss_fn, batches, _, _ = tiny

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        generator=torch.Generator().manual_seed(0),
        **{**CHEAP, **CHEAP_LANCZOS, "exact_trace_max_size": 74},
    )

    assert result.exact_trace is None
    assert result.exact_trace_matvecs == 0


def test_hutchpp_trace_converges_to_dense(tiny):
    model, loss_fn, batches, dense, _ = tiny
    exact = float(dense.trace())
    settings = {**CHEAP, **CHEAP_LANCZOS}

    def trace_errors(matvecs, seeds):
        errors = []
        for seed in seeds:
            result = compute_spectrum(
                model,
                loss_fn,
                batches,
                **{**settings, "trace_matvecs": matvecs},
                generator=torch.Generator().manual_seed(seed),
            )
            assert result.trace_matvecs <= matvecs
            errors.append(abs(result.trace_estimate - exact))
        return np.array(errors)

    few = trace_errors(9, range(5))
    many = trace_errors(60, range(5))
    # 225 = 3·75 products: the sketch spans the whole space, so Hutch++ is exact.
    full = trace_errors(225, range(1))

    assert many.mean() < few.mean()
    assert full[0] < 1e-9 * abs(exact)


def test_density_is_normalised_and_covers_spectrum(tiny):
    model, loss_fn, batches, _, eigenvalues = tiny

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        top_k=1,
        num_probes=4,
        num_steps=30,
        trace_matvecs=6,
        exact_trace_max_size=0,
        progress=False,
        generator=torch.Generator().manual_seed(1),
    )
    grid = np.array(result.density_grid)
    density = np.array(result.density)

    assert np.all(density >= 0)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-3)
    assert grid.min() <= float(eigenvalues[0])
    assert grid.max() >= float(eigenvalues[-1])
    assert result.density_num_probes == 4
    assert result.density_num_steps == 30


def test_matvec_counts_add_up(tiny):
    model, loss_fn, batches, _, _ = tiny

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        top_k=2,
        generator=torch.Generator().manual_seed(0),
        **{**CHEAP, "exact_trace_max_size": 75},
    )

    stages = (
        result.lanczos_matvecs
        + result.trace_matvecs
        + result.exact_trace_matvecs
        + result.density_matvecs
    )
    assert result.num_matvecs == stages
    assert result.trace_matvecs == CHEAP["trace_matvecs"]
    assert result.exact_trace_matvecs == 75
    assert result.density_matvecs == CHEAP["num_probes"] * CHEAP["num_steps"]
    assert set(result.stage_seconds) == {"provider", "lanczos", "hutchpp", "exact_trace", "density"}


def test_same_generator_seed_gives_same_result(tiny):
    model, loss_fn, batches, _, _ = tiny

    first = compute_spectrum(
        model, loss_fn, batches, top_k=2, generator=torch.Generator().manual_seed(7), **CHEAP
    )
    second = compute_spectrum(
        model, loss_fn, batches, top_k=2, generator=torch.Generator().manual_seed(7), **CHEAP
    )

    assert first.top_eigenvalues == second.top_eigenvalues
    assert first.trace_estimate == second.trace_estimate
    assert first.density == second.density


def test_finite_difference_matches_autodiff(tiny):
    model, loss_fn, batches, _, eigenvalues = tiny
    expected = eigenvalues.flip(0)[:3]

    result = compute_spectrum(
        model,
        loss_fn,
        batches,
        provider="finite-difference",
        top_k=3,
        tol=1e-8,
        generator=torch.Generator().manual_seed(0),
        **CHEAP,
    )

    assert result.provider == "finite-difference"
    torch.testing.assert_close(
        torch.tensor(result.top_eigenvalues, dtype=torch.float64), expected, rtol=1e-6, atol=0
    )


def test_finite_difference_error_is_second_order(tiny):
    model, loss_fn, batches, _, eigenvalues = tiny
    largest = float(eigenvalues[-1])

    errors = []
    for step in (4e-2, 2e-2, 1e-2):
        result = compute_spectrum(
            model,
            loss_fn,
            batches,
            provider="finite-difference",
            top_k=1,
            tol=1e-10,
            provider_options={"step": step},
            generator=torch.Generator().manual_seed(0),
            **{**CHEAP, "num_probes": 1, "num_steps": 2, "trace_matvecs": 3},
        )
        errors.append(abs(result.top_eigenvalues[0] - largest))

    # Halving h divides an O(h²) error by 4.
    for coarse, fine in itertools.pairwise(errors):
        assert 3.0 < coarse / fine < 5.0


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"provider": "exact"}, "provider"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 76}, "top_k"),
        ({"tol": 0.0}, "tol"),
        ({"trace_matvecs": 2}, "trace_matvecs"),
        ({"num_probes": 0}, "num_probes"),
        ({"num_steps": 0}, "num_steps"),
        ({"grid_size": 1}, "grid_size"),
        ({"exact_trace_max_size": -1}, "exact_trace_max_size"),
        ({"sigma": -1.0}, "sigma"),
    ],
)
def test_compute_spectrum_rejects_bad_arguments(tiny, arguments, name):
    model, loss_fn, batches, _, _ = tiny

    with pytest.raises(InvalidArgumentError, match=name):
        compute_spectrum(model, loss_fn, batches, **{"progress": False, **arguments})


@pytest.fixture(scope="module")
def tiny_result(tiny):
    model, loss_fn, batches, _, _ = tiny
    return compute_spectrum(
        model, loss_fn, batches, top_k=3, generator=torch.Generator().manual_seed(0), **CHEAP
    )


def test_write_spectrum_writes_json_and_png(tiny_result, tmp_path):
    out = tmp_path / "nested" / "spectrum"

    json_path, png_path = write_spectrum(tiny_result, out)

    payload = json.loads(json_path.read_text())
    assert payload["top_eigenvalues"] == list(tiny_result.top_eigenvalues)
    assert payload["num_parameters"] == 75
    assert payload["density"] == list(tiny_result.density)
    image = imread(png_path)
    assert image.ndim == 3
    assert image.shape[0] > 100
    assert sorted(os.listdir(out)) == ["spectrum.json", "spectrum.png"]


def test_write_spectrum_interrupted_leaves_no_file(tiny_result, tmp_path, monkeypatch):
    out = tmp_path / "spectrum"
    out.mkdir()
    (out / "spectrum.json").write_text("earlier run\n")
    calls = []

    def failing_fsync(descriptor):
        calls.append(descriptor)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_spectrum(tiny_result, out)

    assert sorted(os.listdir(out)) == ["spectrum.json"]
    assert (out / "spectrum.json").read_text() == "earlier run\n"


def test_write_spectrum_rejects_other_objects(tmp_path):
    with pytest.raises(InvalidArgumentError, match="result"):
        write_spectrum({"top_eigenvalues": [1.0]}, tmp_path)


def test_spectrum_result_json_has_no_nan(tiny_result):
    from dataclasses import replace

    result = replace(tiny_result, trace_standard_error=math.nan)

    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    assert payload["trace_standard_error"] is None
    assert isinstance(result, SpectrumResult)


def top_eigenvalues_by_scipy(k: int) -> np.ndarray:
    """Return the k largest Hessian eigenvalues of the shipped MLP by scipy's eigsh.

    The Hessian-vector products come from torch.func (forward over reverse)
    on the whole training split, independently of hessframe's providers.
    """
    model = load_pretrained_digits_mlp(torch.float64)
    split = load_digits_split("train")
    batch = [(torch.tensor(split.features), torch.tensor(split.labels))]
    mean_loss, theta = flat_loss_function(model, torch.nn.functional.cross_entropy, batch)
    gradient = grad(mean_loss)

    def hessian_vector_product(vector: np.ndarray) -> np.ndarray:
        tangent = torch.from_numpy(np.ascontiguousarray(vector).reshape(-1))
        return jvp(gradient, (theta,), (tangent,))[1].numpy()

    operator = scipy.sparse.linalg.LinearOperator(
        (theta.numel(), theta.numel()), matvec=hessian_vector_product, dtype=np.float64
    )
    start = np.random.default_rng(0).standard_normal(theta.numel())
    values = scipy.sparse.linalg.eigsh(
        operator, k=k, which="LA", tol=1e-12, v0=start, return_eigenvectors=False
    )
    return np.sort(values)[::-1]


def test_spectrum_command_matches_scipy_on_shipped_model(tmp_path):
    out = tmp_path / "out"
    arguments = [
        "--top-k", "2", "--json", "--out", str(out), "--no-progress",
        "--num-probes", "2", "--num-steps", "10", "--trace-matvecs", "30",
    ]  # fmt: skip

    result = CliRunner().invoke(spectrum_command, arguments)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    expected = top_eigenvalues_by_scipy(2)
    assert payload["num_parameters"] == 2410
    assert payload["train_size"] == 1257
    assert payload["eigenvalues_converged"] is True
    np.testing.assert_allclose(payload["top_eigenvalues"], expected, rtol=1e-6)
    assert payload["files"]["json"] == str(out / "spectrum.json")
    assert (
        json.loads((out / "spectrum.json").read_text())["top_eigenvalues"]
        == payload["top_eigenvalues"]
    )
    assert (out / "spectrum.png").is_file()


def test_spectrum_command_prints_summary(tmp_path):
    arguments = [
        "--top-k", "1", "--out", str(tmp_path), "--no-progress",
        "--num-probes", "1", "--num-steps", "5", "--trace-matvecs", "6", "--tol", "1e-4",
    ]  # fmt: skip

    result = CliRunner().invoke(spectrum_command, arguments)

    assert result.exit_code == 0, result.output
    assert "2410 parameters" in result.stdout
    assert "top 1 eigenvalue:" in result.stdout
    assert "1 probe × 5 steps" in result.stdout
    assert f"wrote {tmp_path / 'spectrum.json'}" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        (["--top-k", "0"], "--top-k"),
        (["--top-k", "2411"], "--top-k"),
        (["--provider", "exact"], "--provider"),
        (["--trace-matvecs", "2"], "--trace-matvecs"),
        (["--tol", "0"], "--tol"),
    ],
)
def test_spectrum_command_rejects_bad_options(arguments, option, tmp_path):
    result = CliRunner().invoke(spectrum_command, [*arguments, "--out", str(tmp_path)])

    assert result.exit_code == 2
    assert option in result.output
    assert not (tmp_path / "spectrum.json").exists()
