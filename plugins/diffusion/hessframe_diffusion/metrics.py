"""A small convolutional digits classifier and the Fréchet distance and KID in its features.

The classifier plays the role that Inception-v3 plays for FID on natural
images: generated and real digits are compared through the 64 features of its
penultimate layer. It is trained by :func:`train_digits_classifier` on the
training split of :mod:`hessframe_diffusion.digits` (images in [-1, 1]) and
ships as ``weights/digits-classifier.safetensors``.

- Fréchet distance (Heusel et al., NeurIPS 2017):
  ‖μ₁ - μ₂‖² + tr(Σ₁ + Σ₂ - 2 (Σ₁ Σ₂)^{1/2}).
- Kernel inception distance (Bińkowski et al., ICLR 2018): the unbiased
  estimate of the squared MMD with the kernel k(a, b) = (aᵀb / n + 1)³, n the
  feature dimension.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn

from hessframe.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

PRETRAINED_CLASSIFIER = (
    Path(__file__).resolve().parent / "weights" / "digits-classifier.safetensors"
)
NUM_FEATURES = 64


class DigitsClassifier(nn.Module):
    """Two 3×3 convolutions, average pooling, a 64-unit feature layer and ten logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, NUM_FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(NUM_FEATURES, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the (B, 64) features of images (B, 1, 8, 8) in [-1, 1]."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def train_digits_classifier(
    output: Path | str = PRETRAINED_CLASSIFIER, *, epochs: int = 30, seed: int = 0
) -> dict:
    """Train the classifier with Adam and write its weights (safetensors) and a JSON record.

    Both files are written to temporary names and renamed. Returns the record:
    epochs, seed, seconds and the accuracy on the held-out test split.
    """
    from safetensors.torch import save_file

    from hessframe_diffusion.digits import load_digit_images, load_digit_labels

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidArgumentError(f"epochs must be an integer >= 1, got {epochs!r}")
    output = Path(output)
    torch.manual_seed(seed)
    images, labels = load_digit_images("train"), load_digit_labels("train")
    model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(images.shape[0], generator=generator)
        for batch in order.split(64):
            # Small shifts of one pixel make the features less sensitive to
            # the exact placement of strokes in generated digits.
            shift = tuple(torch.randint(-1, 2, (2,), generator=generator).tolist())
            inputs = torch.roll(images[batch], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(inputs), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        logger.info("epoch %d loss %.4f", epoch + 1, loss.item())
    seconds = time.perf_counter() - started

    model.eval()
    with torch.no_grad():
        predictions = model(load_digit_images("test")).argmax(1)
    accuracy = float((predictions == load_digit_labels("test")).float().mean())
    record = {"epochs": epochs, "seed": seed, "seconds": seconds, "test_accuracy": accuracy}

    output.parent.mkdir(parents=True, exist_ok=True)
    record_path = output.with_suffix(".json")
    staged = []
    try:
        for target in (output, record_path):
            handle, name = tempfile.mkstemp(dir=output.parent, prefix=f".{target.name}.")
            os.close(handle)
            staged.append((Path(name), target))
        save_file(model.state_dict(), str(staged[0][0]))
        staged[1][0].write_text(json.dumps(record, indent=2) + "\n")
        for temporary, target in staged:
            temporary.chmod(0o644)
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    return record


def load_digits_classifier(path: Path | str = PRETRAINED_CLASSIFIER) -> DigitsClassifier:
    """Load the classifier weights (safetensors) in evaluation mode."""
    from safetensors.torch import load_file

    model = DigitsClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def digit_features(model: DigitsClassifier, images: torch.Tensor) -> np.ndarray:
    """Return float64 features (B, 64) of images (B, 1, 8, 8) in [-1, 1]."""
    with torch.no_grad():
        return model.features(images.float()).double().numpy()


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Return the Fréchet distance between Gaussians fitted to two feature sets (rows = samples).

    Raises:
        InvalidArgumentError: The sets are not 2-D, differ in their number of
            features, have fewer than two rows, or hold NaN or infinite values.
    """
    features_a, features_b = _check_feature_sets(features_a, features_b)
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    cov_a = np.cov(features_a, rowvar=False)
    cov_b = np.cov(features_b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        root = root.real
    value = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    return float(max(value, 0.0))


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Return the unbiased MMD² estimate with the cubic polynomial kernel (KID).

    Raises:
        InvalidArgumentError: As :func:`frechet_distance`.
    """
    features_a, features_b = _check_feature_sets(features_a, features_b)
    n = features_a.shape[1]
    m_a, m_b = features_a.shape[0], features_b.shape[0]
    if m_a < 2 or m_b < 2:
        raise InvalidArgumentError("KID needs at least two samples in each set")
    k_aa = (features_a @ features_a.T / n + 1) ** 3
    k_bb = (features_b @ features_b.T / n + 1) ** 3
    k_ab = (features_a @ features_b.T / n + 1) ** 3
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m_a * (m_a - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (m_b * (m_b - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def _check_feature_sets(
    features_a: np.ndarray, features_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return both sets as float64 arrays, or raise InvalidArgumentError naming the bad one."""
    arrays = []
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        array = np.asarray(features, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] < 2:
            raise InvalidArgumentError(
                f"{name} must be a 2-D array (samples, features) with at least two samples, "
                f"got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise InvalidArgumentError(f"{name} contains NaN or infinite values")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise InvalidArgumentError(
            f"features_a and features_b must have the same number of features, got "
            f"{arrays[0].shape[1]} and {arrays[1].shape[1]}"
        )
    return arrays[0], arrays[1]
