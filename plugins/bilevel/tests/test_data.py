"""The bundled data sets: disjoint deterministic splits, train standardisation, corruption."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hessframe_bilevel.data import (
    BINARY_DATASETS,
    dataset_records,
    load_binary_dataset,
    load_corrupted_digits,
)
from sklearn.datasets import load_breast_cancer

from hessframe.errors import InvalidArgumentError


@pytest.mark.parametrize("name", sorted(BINARY_DATASETS))
def test_binary_split_is_disjoint_and_complete(name):
    data = load_binary_dataset(name)
    train, validation, test = data.indices

    assert not set(train) & set(validation)
    assert not set(train) & set(test)
    assert not set(validation) & set(test)
    assert len(train) + len(validation) + len(test) == len(set(np.concatenate(data.indices)))
    assert data.x_train.shape[0] == len(train)
    assert set(data.y_train.tolist()) == {-1.0, 1.0}


def test_binary_split_is_deterministic_per_seed():
    first = load_binary_dataset("breast-cancer", seed=3)
    second = load_binary_dataset("breast-cancer", seed=3)
    other = load_binary_dataset("breast-cancer", seed=4)

    torch.testing.assert_close(first.x_train, second.x_train, rtol=0, atol=0)
    assert np.array_equal(first.indices[1], second.indices[1])
    assert not np.array_equal(first.indices[1], other.indices[1])


def test_breast_cancer_standardised_with_train_statistics():
    data = load_binary_dataset("breast-cancer")
    raw = load_breast_cancer().data
    train, _, test = data.indices
    mean, scale = raw[train].mean(axis=0), raw[train].std(axis=0)

    torch.testing.assert_close(data.x_train.mean(dim=0), torch.zeros(30, dtype=torch.float64))
    expected_test = torch.from_numpy((raw[test] - mean) / scale)
    torch.testing.assert_close(data.x_test, expected_test)
    assert (
        data.y_train.tolist()
        == np.where(load_breast_cancer().target[train] == 0, 1.0, -1.0).tolist()
    )


def test_unknown_dataset_lists_known_names():
    with pytest.raises(InvalidArgumentError) as error:
        load_binary_dataset("mnist")

    for name in BINARY_DATASETS:
        assert name in str(error.value)


def test_corruption_rate_and_changed_labels():
    data = load_corrupted_digits(corruption=0.4, seed=0)
    num_train = data.y_train.shape[0]
    corrupted = data.corrupted

    assert int(corrupted.sum()) == round(0.4 * num_train)
    assert bool((data.y_train[corrupted] != data.y_train_clean[corrupted]).all())
    assert bool((data.y_train[~corrupted] == data.y_train_clean[~corrupted]).all())


def test_corruption_is_deterministic_per_seed():
    first = load_corrupted_digits(seed=1)
    second = load_corrupted_digits(seed=1)

    assert torch.equal(first.corrupted, second.corrupted)
    assert torch.equal(first.y_train, second.y_train)
    assert first.x_train.shape[0] + first.x_validation.shape[0] + first.x_test.shape[0] == 1797


@pytest.mark.parametrize("corruption", [-0.1, 1.5, "0.4"])
def test_corruption_outside_unit_interval_rejected(corruption):
    with pytest.raises(InvalidArgumentError, match="corruption"):
        load_corrupted_digits(corruption=corruption)


def test_head_keeps_leading_samples_and_whole_test_part():
    data = load_binary_dataset("wine-class-0")
    head = data.head(10, 5)

    torch.testing.assert_close(head.x_train, data.x_train[:10], rtol=0, atol=0)
    torch.testing.assert_close(head.y_validation, data.y_validation[:5], rtol=0, atol=0)
    assert head.x_test.shape == data.x_test.shape
    assert np.array_equal(head.indices[0], data.indices[0][:10])


def test_head_rejects_count_above_part_size():
    data = load_corrupted_digits()

    with pytest.raises(InvalidArgumentError, match="num_train"):
        data.head(10_000, 5)


def test_dataset_records_load_their_sets():
    records = {record.name: record for record in dataset_records()}

    assert sorted(records) == [
        "bilevel-breast-cancer",
        "bilevel-corrupted-digits",
        "bilevel-wine-class-0",
    ]
    assert records["bilevel-breast-cancer"].loader().x_train.shape == (284, 30)
    assert records["bilevel-wine-class-0"].loader().x_train.shape == (89, 13)
    assert records["bilevel-corrupted-digits"].loader().x_train.shape == (898, 64)
    for record in records.values():
        assert "BSD-3-Clause" in record.licence


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_invalid_seed_is_rejected(seed):
    with pytest.raises(InvalidArgumentError, match=r"seed must be an integer >= 0"):
        load_binary_dataset("wine-class-0", seed=seed)
    with pytest.raises(InvalidArgumentError, match=r"seed must be an integer >= 0"):
        load_corrupted_digits(seed=seed)


def test_non_string_dataset_lists_names():
    with pytest.raises(InvalidArgumentError, match="known sets: breast-cancer, wine-class-0"):
        load_binary_dataset(["wine-class-0"])
