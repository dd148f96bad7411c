"""Small bundled data sets for the bilevel experiments: SVM hyperparameters and hyper-cleaning.

Every set comes from the copies that scikit-learn ships inside its package
(``sklearn.datasets.load_*``), so nothing is downloaded. Each loader splits the
samples with a seeded permutation into disjoint train, validation and test
parts, and standardises every feature with the mean and standard deviation of
the train part only (a feature that is constant on the train part keeps scale 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from hessframe import DatasetRecord
from hessframe.errors import InvalidArgumentError

#: Fractions of the samples that go to the train and validation parts; the rest is test.
TRAIN_FRACTION = 0.5
VALIDATION_FRACTION = 0.25


@dataclass(frozen=True)
class BinaryDataset:
    """A binary classification set with labels in {−1, +1}, as float64 tensors.

    Attributes:
        name: The name the set was loaded by.
        x_train: Standardised train features, shape (n_train, d).
        y_train: Train labels in {−1, +1}, shape (n_train,).
        x_validation: Validation features, standardised with the train statistics.
        y_validation: Validation labels.
        x_test: Test features, standardised with the train statistics.
        y_test: Test labels.
        indices: The original sample indices of the (train, validation, test) parts.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_validation: torch.Tensor
    y_validation: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    indices: tuple[np.ndarray, np.ndarray, np.ndarray]

    def head(self, num_train: int, num_validation: int) -> BinaryDataset:
        """Return the first ``num_train`` train and ``num_validation`` validation samples.

        The test part is kept whole, and the standardisation is not recomputed.

        Raises:
            InvalidArgumentError: A count is not an integer in [1, size of its part].
        """
        _check_head(num_train, self.x_train.shape[0], num_validation, self.x_validation.shape[0])
        train, validation, test = self.indices
        return replace(
            self,
            x_train=self.x_train[:num_train],
            y_train=self.y_train[:num_train],
            x_validation=self.x_validation[:num_validation],
            y_validation=self.y_validation[:num_validation],
            indices=(train[:num_train], validation[:num_validation], test),
        )


@dataclass(frozen=True)
class CorruptedDigits:
    """The digits set with a fraction of the train labels replaced by a different class.

    Attributes:
        x_train: Standardised train features, shape (n_train, 64).
        y_train: Train labels after corruption, int64 in 0..9.
        y_train_clean: The true train labels.
        corrupted: Boolean mask of the train samples whose label was replaced.
        x_validation: Validation features; its labels are clean.
        y_validation: Validation labels.
        x_test: Test features; its labels are clean.
        y_test: Test labels.
        num_classes: 10.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    y_train_clean: torch.Tensor
    corrupted: torch.Tensor
    x_validation: torch.Tensor
    y_validation: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 10

    def head(self, num_train: int, num_validation: int) -> CorruptedDigits:
        """Return the first ``num_train`` train and ``num_validation`` validation samples.

        The test part is kept whole. Small heads keep tests and first runs fast.

        Raises:
            InvalidArgumentError: A count is not an integer in [1, size of its part].
        """
        _check_head(num_train, self.x_train.shape[0], num_validation, self.x_validation.shape[0])
        return replace(
            self,
            x_train=self.x_train[:num_train],
            y_train=self.y_train[:num_train],
            y_train_clean=self.y_train_clean[:num_train],
            corrupted=self.corrupted[:num_train],
            x_validation=self.x_validation[:num_validation],
            y_validation=self.y_validation[:num_validation],
        )


def _check_head(num_train: int, train_size: int, num_validation: int, validation_size: int):
    for name, count, size in (
        ("num_train", num_train, train_size),
        ("num_validation", num_validation, validation_size),
    ):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= size:
            raise InvalidArgumentError(f"{name} must be an integer in [1, {size}], got {count!r}")


def _breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_breast_cancer()
    # scikit-learn codes malignant as 0 and benign as 1; malignant becomes +1.
    return bunch.data, np.where(bunch.target == 0, 1.0, -1.0)


def _wine_class_0() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_wine()
    return bunch.data, np.where(bunch.target == 0, 1.0, -1.0)


#: Binary sets by name: a loader returning (features, labels in {−1, +1}).
BINARY_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "breast-cancer": _breast_cancer,
    "wine-class-0": _wine_class_0,
}


def split_indices(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split range(num_samples) by a seeded permutation into disjoint train, validation, test.

    The parts hold floor(0.5 n), floor(0.25 n) and the remaining samples.

    Raises:
        InvalidArgumentError: ``seed`` is not an integer >= 0.
    """
    _check_seed(seed)
    permutation = np.random.default_rng(seed).permutation(num_samples)
    num_train = int(TRAIN_FRACTION * num_samples)
    num_validation = int(VALIDATION_FRACTION * num_samples)
    return (
        np.sort(permutation[:num_train]),
        np.sort(permutation[num_train : num_train + num_validation]),
        np.sort(permutation[num_train + num_validation :]),
    )


def _check_seed(seed: object) -> None:
    """Raise InvalidArgumentError unless ``seed`` is an integer >= 0, as numpy's generator needs."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidArgumentError(f"seed must be an integer >= 0, got {seed!r}")


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return [torch.from_numpy((part - mean) / scale) for part in (train, *others)]


def load_binary_dataset(name: str, seed: int = 0) -> BinaryDataset:
    """Load a bundled binary set, split it by ``seed`` and standardise it with train statistics.

    Known names: ``breast-cancer`` (Wisconsin diagnostic, 569 samples, 30 features,
    malignant = +1) and ``wine-class-0`` (178 wines, 13 features, cultivar 0 = +1
    against the other two).

    Args:
        name: One of the keys of :data:`BINARY_DATASETS`.
        seed: Seed of the split permutation.

    Returns:
        The three disjoint parts as float64 tensors.

    Raises:
        InvalidArgumentError: ``name`` is not a known set, or ``seed`` is not an integer >= 0.
    """
    if not isinstance(name, str) or name not in BINARY_DATASETS:
        raise InvalidArgumentError(
            f"unknown binary data set {name!r}; known sets: {', '.join(sorted(BINARY_DATASETS))}"
        )
    features, labels = BINARY_DATASETS[name]()
    train, validation, test = split_indices(len(labels), seed)
    x_train, x_validation, x_test = _standardise(
        features[train], features[validation], features[test]
    )
    targets = torch.from_numpy(labels.astype(np.float64))
    return BinaryDataset(
        name=name,
        x_train=x_train,
        y_train=targets[train],
        x_validation=x_validation,
        y_validation=targets[validation],
        x_test=x_test,
        y_test=targets[test],
        indices=(train, validation, test),
    )


def load_corrupted_digits(corruption: float = 0.4, seed: int = 0) -> CorruptedDigits:
    """Load the 8×8 digits set (1797 samples, 10 classes) with corrupted train labels.

    The split is that of :func:`split_indices` with ``seed``. Exactly
    round(corruption · n_train) train samples, drawn without replacement, get the
    label (y + k) mod 10 with k uniform in 1..9, so every corrupted label differs
    from the true one and is uniform over the other nine classes.

    Args:
        corruption: The fraction of corrupted train labels, in [0, 1].
        seed: Seed of the split and of the corruption.

    Returns:
        The corrupted train part with its clean labels and mask, and clean
        validation and test parts.

    Raises:
        InvalidArgumentError: ``corruption`` is not a number in [0, 1], or ``seed`` is
            not an integer >= 0.
    """
    if isinstance(corruption, bool) or not isinstance(corruption, int | float):
        raise InvalidArgumentError(
            f"corruption must be a number in [0, 1], got {type(corruption).__name__}"
        )
    if not 0 <= corruption <= 1:
        raise InvalidArgumentError(f"corruption must be in [0, 1], got {corruption!r}")
    bunch = load_digits()
    features, labels = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    train, validation, test = split_indices(len(labels), seed)
    x_train, x_validation, x_test = _standardise(
        features[train], features[validation], features[test]
    )

    rng = np.random.default_rng([seed, 1])
    clean = labels[train]
    num_corrupted = round(corruption * len(train))
    chosen = rng.choice(len(train), size=num_corrupted, replace=False)
    noisy = clean.copy()
    noisy[chosen] = (clean[chosen] + rng.integers(1, 10, size=num_corrupted)) % 10
    mask = np.zeros(len(train), dtype=bool)
    mask[chosen] = True
    return CorruptedDigits(
        x_train=x_train,
        y_train=torch.from_numpy(noisy),
        y_train_clean=torch.from_numpy(clean),
        corrupted=torch.from_numpy(mask),
        x_validation=x_validation,
        y_validation=torch.from_numpy(labels[validation]),
        x_test=x_test,
        y_test=torch.from_numpy(labels[test]),
    )


_BUNDLED = "bundled with scikit-learn (BSD-3-Clause)"
_UCI_LICENCE = "the bundled copy states no licence of the UCI original"


def dataset_records() -> list[DatasetRecord]:
    """Return the records of this module's sets, for the plugin's ``hessframe_datasets`` hook.

    The licence texts state what the scikit-learn 1.9.1 copies say of their
    source (their ``DESCR``): each is a copy of a UCI Machine Learning Repository
    set, and none names the licence of the UCI original.
    """
    return [
        DatasetRecord(
            name="bilevel-breast-cancer",
            description="Breast Cancer Wisconsin (Diagnostic), 569 samples, 30 features, "
            "malignant = +1, split 50/25/25 and standardised",
            licence=f"{_BUNDLED}; a copy of the UCI ML Breast Cancer Wisconsin (Diagnostic) "
            f"set by W. H. Wolberg, W. N. Street and O. L. Mangasarian; {_UCI_LICENCE}",
            loader=partial(load_binary_dataset, "breast-cancer"),
        ),
        DatasetRecord(
            name="bilevel-wine-class-0",
            description="Wine recognition, 178 samples, 13 features, cultivar 0 = +1 "
            "against the others, split 50/25/25 and standardised",
            licence=f"{_BUNDLED}; a copy of the UCI ML Wine recognition set; {_UCI_LICENCE}",
            loader=partial(load_binary_dataset, "wine-class-0"),
        ),
        DatasetRecord(
            name="bilevel-corrupted-digits",
            description="8x8 hand-written digits, 1797 samples, 10 classes, with 40% of "
            "the train labels replaced by a different class (seed 0)",
            licence=f"{_BUNDLED}; a copy of the test set of the UCI ML Optical Recognition "
            f"of Handwritten Digits set by E. Alpaydin; {_UCI_LICENCE}",
            loader=load_corrupted_digits,
        ),
    ]
