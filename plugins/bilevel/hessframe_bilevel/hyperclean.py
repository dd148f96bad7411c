"""Data hyper-cleaning: learn per-sample weights that discount corrupted train labels.

Franceschi et al., "Forward and reverse gradient-based hyperparameter
optimization" (ICML 2017), pose the task as a bilevel problem; this module uses
the following form of it. With n train samples (a_i, ỹ_i) of which some labels
are corrupted, K classes, d features, and the upper variable x ∈ ℝⁿ giving the
weight σ(x_i) = 1/(1 + e^{−x_i}) of sample i:

    lower:  f(x, W) = (1/n) Σ_i σ(x_i) ℓ(W; a_i, ỹ_i) + (ρ/2) ‖W‖²_F,
    upper:  F(x, W) = (1/m) Σ_j ℓ(W; a_j, y_j) over the m clean validation samples,

where W ∈ ℝ^{(d+1)×K} is a multinomial logistic regression with a bias row,
ℓ(W; a, y) = −log softmax(W₀ + Wᵀ_{1:d} a)_y is the cross-entropy, and the
flat lower variable y is W flattened row by row. The lower level is strongly
convex (ρ > 0) and has no constraints, so implicit and unrolled
differentiation and LV-HBA (without g) all apply.

A sample is flagged as corrupted when its learned weight σ(x_i) is below a
threshold, 0.5 by default: the start x = 0 puts every weight at 0.5, so a
flagged sample is one whose weight the upper level pushed down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hessframe.errors import InvalidArgumentError
from hessframe_bilevel.data import CorruptedDigits
from hessframe_bilevel.problem import BilevelProblem, BilevelResult

#: Ridge weight ρ of the lower level.
DEFAULT_RIDGE = 1e-2


@dataclass(frozen=True)
class HypercleanProblem:
    """The hyper-cleaning bilevel problem with its starts.

    Attributes:
        problem: The bilevel problem in x ∈ ℝⁿ (weight logits) and y = vec(W).
        x0: Start of x, zeros (every weight 0.5).
        y0: Start of y, zeros.
        num_features: d.
        num_classes: K.
    """

    problem: BilevelProblem
    x0: torch.Tensor
    y0: torch.Tensor
    num_features: int
    num_classes: int

    def weights_matrix(self, y: torch.Tensor) -> torch.Tensor:
        """Return W of shape (d + 1, K) from the flat lower variable y."""
        return y.reshape(self.num_features + 1, self.num_classes)


def _check_result(result: object) -> None:
    """Raise InvalidArgumentError unless ``result`` is a BilevelResult."""
    if not isinstance(result, BilevelResult):
        raise InvalidArgumentError(
            f"result must be the BilevelResult of a solver, got {type(result).__name__}"
        )


def _logits(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    return features @ weights[1:] + weights[0]


def hyperclean_problem(data: CorruptedDigits, ridge: float = DEFAULT_RIDGE) -> HypercleanProblem:
    """Build the hyper-cleaning problem of the module docstring for a corrupted data set.

    Args:
        data: The corrupted train part and the clean validation part, for example
            from :func:`hessframe_bilevel.data.load_corrupted_digits`.
        ridge: ρ > 0, the ridge weight of the lower level.

    Returns:
        The problem, with zero starts.

    Raises:
        InvalidArgumentError: ``data`` is not a CorruptedDigits or ``ridge`` is not a
            finite number > 0.
    """
    if not isinstance(data, CorruptedDigits):
        raise InvalidArgumentError(
            f"data must be a CorruptedDigits (see load_corrupted_digits), got {type(data).__name__}"
        )
    if (
        isinstance(ridge, bool)
        or not isinstance(ridge, int | float)
        or not 0 < ridge < float("inf")
    ):
        raise InvalidArgumentError(f"ridge must be a finite number > 0, got {ridge!r}")
    num_features = data.x_train.shape[1]
    num_classes = data.num_classes
    shape = (num_features + 1, num_classes)
    x_train, y_train = data.x_train, data.y_train
    x_validation, y_validation = data.x_validation, data.y_validation

    def lower(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weights = y.reshape(shape)
        losses = torch.nn.functional.cross_entropy(
            _logits(weights, x_train), y_train, reduction="none"
        )
        return (torch.sigmoid(x) * losses).mean() + 0.5 * ridge * weights.square().sum()

    def upper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        weights = y.reshape(shape)
        return torch.nn.functional.cross_entropy(_logits(weights, x_validation), y_validation)

    return HypercleanProblem(
        problem=BilevelProblem(upper=upper, lower=lower),
        x0=x_train.new_zeros(x_train.shape[0]),
        y0=x_train.new_zeros(shape[0] * shape[1]),
        num_features=num_features,
        num_classes=num_classes,
    )


def evaluate_hyperclean(
    result: BilevelResult, data: CorruptedDigits, threshold: float = 0.5
) -> dict[str, float]:
    """Score a hyper-cleaning run: test accuracy and how well low weights find corrupted labels.

    Sample i is flagged as corrupted when σ(x_i) < ``threshold``. Precision is the
    fraction of flagged samples that are corrupted, and recall the fraction of
    corrupted samples that are flagged. Flagging at random has an expected
    precision equal to the corruption rate.

    Args:
        result: A solver's result on :func:`hyperclean_problem` of ``data``.
        data: The same data set.
        threshold: The weight below which a sample is flagged, in (0, 1).

    Returns:
        ``test_accuracy``, ``validation_loss``, ``precision`` (0 when nothing is
        flagged), ``recall``, ``flagged`` (the count) and ``f1``.

    Raises:
        InvalidArgumentError: ``threshold`` is not in (0, 1), ``result`` is not a
            BilevelResult, ``data`` not a CorruptedDigits, or the result does not fit ``data``.
    """
    _check_result(result)
    if not isinstance(data, CorruptedDigits):
        raise InvalidArgumentError(
            f"data must be a CorruptedDigits (see load_corrupted_digits), got {type(data).__name__}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidArgumentError(f"threshold must be a number in (0, 1), got {threshold!r}")
    if not 0 < threshold < 1:
        raise InvalidArgumentError(f"threshold must be in (0, 1), got {threshold!r}")
    num_train, num_features = data.x_train.shape
    expected = (num_features + 1) * data.num_classes
    if result.x.shape != (num_train,) or result.y.shape != (expected,):
        raise InvalidArgumentError(
            f"result has x of shape {tuple(result.x.shape)} and y of shape "
            f"{tuple(result.y.shape)}, but the data set needs ({num_train},) and ({expected},)"
        )
    weights = result.y.detach().reshape(num_features + 1, data.num_classes)
    with torch.no_grad():
        predicted = _logits(weights, data.x_test).argmax(dim=1)
        validation_loss = torch.nn.functional.cross_entropy(
            _logits(weights, data.x_validation), data.y_validation
        )
    flagged = torch.sigmoid(result.x.detach()) < threshold
    true_positives = int((flagged & data.corrupted).sum())
    num_flagged = int(flagged.sum())
    num_corrupted = int(data.corrupted.sum())
    precision = true_positives / num_flagged if num_flagged else 0.0
    recall = true_positives / num_corrupted if num_corrupted else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "test_accuracy": float((predicted == data.y_test).double().mean()),
        "validation_loss": float(validation_loss),
        "precision": precision,
        "recall": recall,
        "flagged": num_flagged,
        "f1": f1,
    }
