"""Tests of the digits data, the MLP and its shipped weights."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_digits

from hessframe.commands import train_digits_command
from hessframe.digits import (
    SPLITS,
    DigitsMLP,
    count_parameters,
    digits_loader,
    evaluate,
    load_digits_split,
    load_pretrained_digits_mlp,
    pretrained_digits_metadata,
    train_digits_mlp,
)
from hessframe.errors import InvalidArgumentError


def test_splits_are_disjoint_and_cover_all_samples():
    indices = [set(load_digits_split(name).indices.tolist()) for name in SPLITS]

    assert indices[0].isdisjoint(indices[1])
    assert indices[0].isdisjoint(indices[2])
    assert indices[1].isdisjoint(indices[2])
    assert set().union(*indices) == set(range(1797))
    assert [len(part) for part in indices] == [1257, 270, 270]


def test_split_is_deterministic_across_loads():
    from hessframe import digits

    first = {name: load_digits_split(name).indices.copy() for name in SPLITS}
    digits._load_splits.cache_clear()
    second = {name: load_digits_split(name).indices for name in SPLITS}

    for name in SPLITS:
        np.testing.assert_array_equal(first[name], second[name])


def test_split_matches_sklearn_labels_and_training_standardisation():
    bunch = load_digits()
    train = load_digits_split("train")
    test = load_digits_split("test")

    np.testing.assert_array_equal(test.labels, bunch.target[test.indices])
    raw_train = bunch.data[train.indices]
    np.testing.assert_allclose(train.features.mean(axis=0), 0.0, atol=1e-12)
    varying = raw_train.std(axis=0) > 0
    np.testing.assert_allclose(train.features.std(axis=0)[varying], 1.0, rtol=1e-12)
    expected = (bunch.data[test.indices] - raw_train.mean(axis=0)) / np.where(
        varying, raw_train.std(axis=0), 1.0
    )
    np.testing.assert_allclose(test.features, expected, rtol=1e-12)


def test_split_keeps_every_class_in_every_split():
    for name in SPLITS:
        counts = np.bincount(load_digits_split(name).labels, minlength=10)
        assert counts.min() > 0, name


def test_loader_batches_have_requested_shapes_and_dtype():
    loader = digits_loader("validation", batch_size=100, dtype=torch.float64)
    batches = list(loader)

    assert [len(labels) for _, labels in batches] == [100, 100, 70]
    features, labels = batches[0]
    assert features.shape == (100, 64)
    assert features.dtype == torch.float64
    assert labels.dtype == torch.int64


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"split": "training"}, "split"),
        ({"split": "train", "batch_size": 0}, "batch_size"),
        ({"split": "train", "dtype": torch.int64}, "dtype"),
    ],
)
def test_loader_rejects_bad_arguments(arguments, name):
    with pytest.raises(InvalidArgumentError, match=name):
        digits_loader(**arguments)


def test_mlp_parameter_count_matches_formula():
    for hidden in (1, 8, 32):
        assert count_parameters(DigitsMLP(hidden)) == 65 * hidden + (hidden + 1) * 10


def test_shipped_weights_reach_recorded_test_accuracy():
    metadata = pretrained_digits_metadata()
    model = load_pretrained_digits_mlp()

    _, correct, size = evaluate(model, digits_loader("test", batch_size=64))

    assert size == metadata["test_size"]
    assert correct == metadata["test_correct"]
    assert correct / size == pytest.approx(metadata["test_accuracy"], abs=1e-12)
    assert count_parameters(model) == metadata["num_parameters"] == 2410
    assert metadata["test_accuracy"] > 0.95


def test_shipped_weights_match_recorded_hash_and_command():
    metadata = pretrained_digits_metadata()
    data = resources.files("hessframe").joinpath("data", metadata["weights_file"]).read_bytes()

    assert hashlib.sha256(data).hexdigest() == metadata["weights_sha256"]
    assert metadata["command"].startswith("hessframe train-digits ")
    assert f"--epochs {metadata['epochs']}" in metadata["command"]
    assert f"--seed {metadata['seed']}" in metadata["command"]


def test_pretrained_model_in_float64_keeps_predictions():
    single = load_pretrained_digits_mlp(torch.float32)
    double = load_pretrained_digits_mlp(torch.float64)
    features = torch.tensor(load_digits_split("test").features)

    logits = double(features)

    assert logits.dtype == torch.float64
    torch.testing.assert_close(logits.float(), single(features.float()), rtol=1e-4, atol=1e-4)


def test_training_is_deterministic_for_a_seed():
    first, first_metrics = train_digits_mlp(epochs=1, seed=3)
    second, second_metrics = train_digits_mlp(epochs=1, seed=3)
    other, _ = train_digits_mlp(epochs=1, seed=4)

    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert first_metrics.test_correct == second_metrics.test_correct
    assert not torch.equal(first.layers[0].weight, other.layers[0].weight)


def test_training_lowers_training_loss():
    _, short = train_digits_mlp(epochs=1, seed=0)
    _, longer = train_digits_mlp(epochs=4, seed=0)

    assert longer.train_loss < short.train_loss


def test_train_digits_command_writes_loadable_weights(tmp_path):
    out = tmp_path / "weights" / "mlp.pt"

    result = CliRunner().invoke(
        train_digits_command, ["--out", str(out), "--epochs", "1", "--seed", "5"]
    )

    assert result.exit_code == 0, result.output
    metadata = json.loads(out.with_suffix(".json").read_text())
    assert metadata["command"] == f"hessframe train-digits --out {out} --epochs 1 --seed 5"
    model = DigitsMLP(metadata["hidden"])
    model.load_state_dict(torch.load(out, weights_only=True))
    _, correct, _ = evaluate(model, digits_loader("test", batch_size=512))
    assert correct == metadata["test_correct"]
    assert sorted(path.name for path in out.parent.iterdir()) == ["mlp.json", "mlp.pt"]


def test_train_digits_command_rejects_bad_options(tmp_path):
    runner = CliRunner()

    bad_epochs = runner.invoke(train_digits_command, ["--epochs", "0"])
    bad_out = runner.invoke(train_digits_command, ["--out", str(tmp_path / "weights.bin")])

    assert bad_epochs.exit_code == 2
    assert "--epochs" in bad_epochs.output
    assert bad_out.exit_code == 2
    assert "--out" in bad_out.output
