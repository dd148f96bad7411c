"""A small MLP classifier on scikit-learn's handwritten digits, for Hessian spectra on real data.

The data is scikit-learn's bundled copy of the UCI optical recognition of
handwritten digits test set (:func:`sklearn.datasets.load_digits`): 1797
images of 8×8 pixels with grey levels 0–16, ten classes. Nothing is
downloaded. The samples are split once, stratified by class and seeded, into
training, validation and test sets. Every pixel is standardised with the mean
and standard deviation of the training set.

:class:`DigitsMLP` maps the 64 pixels through one tanh hidden layer to ten
logits. The tanh keeps the loss twice differentiable everywhere, so its
Hessian has curvature on every parameter rather than the piecewise-zero
second derivatives of a ReLU network. With 32 hidden units it has 2410
parameters, few enough for a dense Hessian to serve as ground truth.

The package ships weights trained once by :func:`train_digits_mlp` (see
``hessframe train-digits``); :func:`load_pretrained_digits_mlp` loads them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hessframe.errors import InvalidArgumentError
from hessframe.spectrum import write_files_atomically

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
NUM_FEATURES = 64
NUM_CLASSES = 10
DEFAULT_HIDDEN = 32
#: Seed of the stratified train/validation/test split; part of the data
#: definition, so it is not a parameter.
SPLIT_SEED = 0
VALIDATION_FRACTION = 0.15
TEST_FRACTION = 0.15

PRETRAINED_WEIGHTS = "digits_mlp.pt"
PRETRAINED_METADATA = "digits_mlp.json"


@dataclass(frozen=True)
class DigitsSplit:
    """Standardised features and labels of one split.

    Attributes:
        features: (m, 64) float64 array of standardised pixel values.
        labels: (m,) int64 array of digit classes 0–9.
        indices: (m,) indices of the samples in ``sklearn.datasets.load_digits()``.
    """

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray


@functools.cache
def _load_splits() -> dict[str, DigitsSplit]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.data.astype(np.float64)
    labels = bunch.target.astype(np.int64)
    all_indices = np.arange(len(labels))

    holdout_fraction = VALIDATION_FRACTION + TEST_FRACTION
    train_idx, holdout_idx = train_test_split(
        all_indices, test_size=holdout_fraction, stratify=labels, random_state=SPLIT_SEED
    )
    validation_idx, test_idx = train_test_split(
        holdout_idx,
        test_size=TEST_FRACTION / holdout_fraction,
        stratify=labels[holdout_idx],
        random_state=SPLIT_SEED,
    )

    # Some border pixels are 0 in every training image. A scale of 1 keeps them
    # at 0 after centring instead of dividing by zero.
    mean = images[train_idx].mean(axis=0)
    std = images[train_idx].std(axis=0)
    std[std == 0] = 1.0
    standardised = (images - mean) / std

    splits = {}
    for name, idx in zip(SPLITS, (train_idx, validation_idx, test_idx), strict=True):
        idx = np.sort(idx)
        features = standardised[idx]
        features.setflags(write=False)
        split_labels = labels[idx]
        split_labels.setflags(write=False)
        idx.setflags(write=False)
        splits[name] = DigitsSplit(features=features, labels=split_labels, indices=idx)
    return splits


def load_digits_split(split: str) -> DigitsSplit:
    """Load one split of the standardised digits data.

    The split is fixed: stratified by class with seed :data:`SPLIT_SEED`, 70 % of
    the samples for training, 15 % for validation and 15 % for test. The arrays
    are read-only and shared between calls.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
        The split's :class:`DigitsSplit`.

    Raises:
        InvalidArgumentError: ``split`` is not one of the three names.
    """
    _check_split(split)
    return _load_splits()[split]


def digits_loader(
    split: str,
    batch_size: int = 256,
    *,
    dtype: torch.dtype = torch.float32,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """Return a DataLoader of (features, labels) batches of one split.

    Args:
        split: ``"train"``, ``"validation"`` or ``"test"``.
        batch_size: Samples per batch, at least 1.
        dtype: Floating-point dtype of the features.
        shuffle: Reshuffle the samples at every pass (for training); the
            order then follows ``generator``.
        generator: Random generator of the shuffling; ignored without ``shuffle``.

    Returns:
        A DataLoader over the split with features of shape (batch, 64) and
        int64 labels of shape (batch,).

    Raises:
        InvalidArgumentError: ``split``, ``batch_size`` or ``dtype`` is invalid.
    """
    _check_split(split)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgumentError(f"dtype must be a floating-point torch dtype, got {dtype!r}")

    data = load_digits_split(split)
    dataset = TensorDataset(
        torch.tensor(data.features, dtype=dtype), torch.tensor(data.labels, dtype=torch.int64)
    )
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator if shuffle else None
    )


def _check_split(split: Any) -> None:
    if split not in SPLITS:
        raise InvalidArgumentError(f"split must be one of {SPLITS}, got {split!r}")


class DigitsMLP(nn.Module):
    """A 64 → hidden → 10 perceptron with a tanh hidden layer, returning logits.

    Args:
        hidden: Number of hidden units, at least 1. The model has
            65·hidden + (hidden + 1)·10 parameters (2410 for 32).
    """

    def __init__(self, hidden: int = DEFAULT_HIDDEN) -> None:
        super().__init__()
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise InvalidArgumentError(f"hidden must be a positive integer, got {hidden!r}")
        self.hidden = hidden
        self.layers = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, NUM_CLASSES)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Map (batch, 64) standardised pixels to (batch, 10) logits."""
        return self.layers(features)


def count_parameters(model: nn.Module) -> int:
    """Return the number of scalar parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, int, int]:
    """Compute the mean cross-entropy and the number of correct predictions.

    Args:
        model: A classifier returning logits.
        loader: Batches of (features, labels).

    Returns:
        (mean cross-entropy over all samples, number correct, number of samples).
    """
    total_loss = 0.0
    correct = 0
    count = 0
    for features, labels in loader:
        logits = model(features)
        total_loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
        count += len(labels)
    return total_loss / count, correct, count


@dataclass(frozen=True)
class TrainingMetrics:
    """Settings and results of one training run, as recorded next to shipped weights.

    Attributes:
        seed: Seed of the initialisation and the batch order.
        epochs: Passes over the training set.
        hidden: Hidden units of the model.
        batch_size: Samples per Adam step.
        learning_rate: Adam step size.
        num_parameters: Scalar parameters of the model.
        train_loss: Mean cross-entropy on the training set after training.
        validation_accuracy: Fraction of validation samples classified correctly.
        test_accuracy: Fraction of test samples classified correctly.
        test_correct: Number of test samples classified correctly.
        test_size: Number of test samples.
        seconds: Wall time of the training loop.
    """

    seed: int
    epochs: int
    hidden: int
    batch_size: int
    learning_rate: float
    num_parameters: int
    train_loss: float
    validation_accuracy: float
    test_accuracy: float
    test_correct: int
    test_size: int
    seconds: float


def train_digits_mlp(
    *,
    epochs: int = 100,
    seed: int = 0,
    hidden: int = DEFAULT_HIDDEN,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
) -> tuple[DigitsMLP, TrainingMetrics]:
    """Train a :class:`DigitsMLP` with Adam on the cross-entropy of the training split.

    The run is deterministic on CPU for a given seed: the seed fixes the
    initialisation and a separate generator fixes the batch order. Progress is
    logged every tenth of the run.

    Args:
        epochs: Passes over the training set, at least 1.
        seed: Seed of the initialisation and the batch order.
        hidden: Hidden units of the model.
        batch_size: Samples per Adam step.
        learning_rate: Adam step size, positive.

    Returns:
        The trained model (float32, in eval mode) and its :class:`TrainingMetrics`.

    Raises:
        InvalidArgumentError: An argument is out of range.
    """
    for name, value in (("epochs", epochs), ("seed", seed), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    if epochs < 1:
        raise InvalidArgumentError(f"epochs must be at least 1, got {epochs}")
    if seed < 0:
        raise InvalidArgumentError(f"seed must be a non-negative integer, got {seed}")
    if not learning_rate > 0:
        raise InvalidArgumentError(f"learning_rate must be positive, got {learning_rate!r}")

    torch.manual_seed(seed)
    model = DigitsMLP(hidden)
    shuffle_generator = torch.Generator().manual_seed(seed)
    train_loader = digits_loader("train", batch_size, shuffle=True, generator=shuffle_generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)

    start = time.perf_counter()
    log_every = max(1, epochs // 10)
    for epoch in range(1, epochs + 1):
        model.train()
        for features, labels in train_loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(features), labels)
            loss.backward()
            optimizer.step()
        if epoch % log_every == 0 or epoch == epochs:
            model.eval()
            train_loss, _, _ = evaluate(model, digits_loader("train", 1024))
            _, val_correct, val_size = evaluate(model, digits_loader("validation", 1024))
            logger.info(
                "epoch %d/%d: train loss %.5f, validation accuracy %.4f",
                epoch,
                epochs,
                train_loss,
                val_correct / val_size,
            )
    seconds = time.perf_counter() - start

    model.eval()
    train_loss, _, _ = evaluate(model, digits_loader("train", 1024))
    _, val_correct, val_size = evaluate(model, digits_loader("validation", 1024))
    _, test_correct, test_size = evaluate(model, digits_loader("test", 1024))
    metrics = TrainingMetrics(
        seed=seed,
        epochs=epochs,
        hidden=hidden,
        batch_size=batch_size,
        learning_rate=learning_rate,
        num_parameters=count_parameters(model),
        train_loss=train_loss,
        validation_accuracy=val_correct / val_size,
        test_accuracy=test_correct / test_size,
        test_correct=test_correct,
        test_size=test_size,
        seconds=seconds,
    )
    logger.info(
        "trained %d parameters in %.1f s: test accuracy %.4f (%d/%d)",
        metrics.num_parameters,
        seconds,
        metrics.test_accuracy,
        test_correct,
        test_size,
    )
    return model, metrics


def save_digits_mlp(
    model: DigitsMLP, metrics: TrainingMetrics, weights_path: Path | str, *, command: str
) -> tuple[Path, Path]:
    """Write the model's state dict and a JSON record of how it was made.

    The JSON goes next to the weights with the suffix ``.json``. Both files are
    written to temporary names in the target folder and renamed only after
    both are complete, so an interruption leaves no partial file.

    Args:
        model: The trained model.
        metrics: Its training metrics.
        weights_path: Path of the ``.pt`` file; its folder is created if missing.
        command: The command line that produced the weights, stored in the JSON.

    Returns:
        (path of the weights, path of the JSON).
    """
    import sklearn

    weights_path = Path(weights_path)
    metadata_path = weights_path.with_suffix(".json")
    weights_path.parent.mkdir(parents=True, exist_ok=True)

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    weights_bytes = buffer.getvalue()
    metadata = {
        "command": command,
        **asdict(metrics),
        "weights_file": weights_path.name,
        "weights_sha256": hashlib.sha256(weights_bytes).hexdigest(),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "split_seed": SPLIT_SEED,
        "split_sizes": {name: len(load_digits_split(name).labels) for name in SPLITS},
        "torch_version": torch.__version__,
        "sklearn_version": sklearn.__version__,
    }
    metadata_bytes = (json.dumps(metadata, indent=2) + "\n").encode()

    write_files_atomically({weights_path: weights_bytes, metadata_path: metadata_bytes})
    logger.info("wrote %s and %s", weights_path, metadata_path)
    return weights_path, metadata_path


def load_pretrained_digits_mlp(dtype: torch.dtype = torch.float32) -> DigitsMLP:
    """Load the weights that ship with hessframe into a :class:`DigitsMLP`.

    Args:
        dtype: Floating-point dtype of the returned model; use float64 for
            Hessian computations that need more than single precision.

    Returns:
        The model in eval mode.

    Raises:
        InvalidArgumentError: ``dtype`` is not a floating-point dtype.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InvalidArgumentError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    metadata = pretrained_digits_metadata()
    weights = resources.files("hessframe").joinpath("data", PRETRAINED_WEIGHTS)
    with weights.open("rb") as stream:
        state = torch.load(stream, map_location="cpu", weights_only=True)
    model = DigitsMLP(metadata["hidden"])
    model.load_state_dict(state)
    return model.to(dtype).eval()


def pretrained_digits_metadata() -> dict[str, Any]:
    """Return the JSON record stored with the shipped weights (command, seed, accuracy, …)."""
    text = resources.files("hessframe").joinpath("data", PRETRAINED_METADATA).read_text()
    return json.loads(text)
