"""Training: exact resume from a checkpoint, DistributedDataParallel under torchrun, eigen loss."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import TINY_CONFIG
from hessframe_molecules.model import load_model
from hessframe_molecules.train import CHECKPOINT, WEIGHTS, TrainConfig, train

from hessframe.errors import InvalidArgumentError


def _config(data_dir, out_dir, **changes) -> TrainConfig:
    settings = {
        "data_dir": str(data_dir),
        "out_dir": str(out_dir),
        "epochs": 2,
        "batch_size": 3,
        "max_geometries_per_molecule": 2,
        "model": TINY_CONFIG,
    }
    return TrainConfig(**{**settings, **changes})


def _state(out_dir) -> dict[str, torch.Tensor]:
    return torch.load(out_dir / CHECKPOINT, weights_only=False)["model"]["state_dict"]


def test_resumed_training_matches_uninterrupted_run(tiny_dataset, tmp_path) -> None:
    straight = tmp_path / "straight"
    train(_config(tiny_dataset, straight))

    resumed = tmp_path / "resumed"
    first = train(_config(tiny_dataset, resumed, max_minutes=0.0))
    assert first["stopped_early"]
    assert torch.load(resumed / CHECKPOINT, weights_only=False)["epoch"] == 1
    second = train(_config(tiny_dataset, resumed))
    assert [record["epoch"] for record in second["history"]] == [1, 2]

    expected, actual = _state(straight), _state(resumed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_training_lowers_loss_and_writes_loadable_weights(tiny_dataset, tmp_path) -> None:
    result = train(_config(tiny_dataset, tmp_path, epochs=4, learning_rate=5e-3))
    totals = [record["train"]["total"] for record in result["history"]]
    assert totals[-1] < totals[0]
    model = load_model(tmp_path / WEIGHTS)
    assert model.config == TINY_CONFIG


def test_eigen_loss_is_reported_when_weighted(tiny_dataset, tmp_path) -> None:
    result = train(_config(tiny_dataset, tmp_path, epochs=1, weight_eigen=0.5))
    eigen = result["history"][0]["train"]["eigen"]
    assert 0 < eigen < float("inf")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"learning_rate": -1.0}, "learning_rate must be a finite positive number"),
        ({"weight_hessian": float("nan")}, "weight_hessian must be a finite number >= 0"),
    ],
)
def test_invalid_settings_are_rejected(tiny_dataset, tmp_path, change, message) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        train(_config(tiny_dataset, tmp_path, **change))


def test_torchrun_two_processes_keep_weights_in_sync(tiny_dataset, tmp_path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import torch
            import torch.distributed as dist
            torch.set_num_threads(1)
            sys.path.insert(0, {os.path.dirname(__file__)!r})
            from conftest import TINY_CONFIG
            import hessframe_molecules.train as training

            seen = []
            original = training.batch_losses
            def record_batches(model, batch, config, scales):
                seen.append(model)
                return original(model, batch, config, scales)
            training.batch_losses = record_batches

            config = training.TrainConfig(
                data_dir={str(tiny_dataset)!r}, out_dir={str(tmp_path / "out")!r}, epochs=2,
                batch_size=2, max_geometries_per_molecule=2, model=TINY_CONFIG)
            training.train(config)
            wrapped = seen[0]
            assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel), type(wrapped)
            torch.save(wrapped.module.state_dict(),
                       {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.pt")
            dist.destroy_process_group()
            """
        )
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    saved = _state(tmp_path / "out")
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
        assert torch.equal(rank0[name], saved[name]), name
    history = torch.load(tmp_path / "out" / CHECKPOINT, weights_only=False)["history"]
    assert [record["epoch"] for record in history] == [1, 2]
