"""Small objectives with a known Hessian, shared by the core's tests.

Every case is tiny (at most a few hundred parameters, float64 on the CPU) so
that its Hessian can be formed densely in well under a second. Each one gives:

- ``objective``: a function of one flat float64 tensor returning the 0-d
  objective, for a model the mean loss over the WHOLE data set in one batch;
- ``x``: the point at which the Hessian is taken (for a model, its flattened
  parameters);
- ``dense``: the (n, n) float64 Hessian from ``torch.func.hessian(objective)(x)``;
- ``closed_form``: the Hessian from its formula, or None where there is none;
- ``provider(mode=...)``: a fresh :class:`~hessframe.curvature.AutodiffHessian`
  built the way a user would build it (``from_module`` over a ``DataLoader``
  with batches of unequal size for the network cases);
- ``gradient(x)``: the gradient of ``objective``, by ``torch.func.grad``, for
  providers that need only gradients (finite differences).

The cases:

=================  ==========================================================  =====
name               objective                                                   n
=================  ==========================================================  =====
quadratic          ½ xᵀAx + bᵀx with A symmetric indefinite; H = A             12
logistic           mean binary cross-entropy of Xw + ½λ‖w‖²;                   6
                   H = Xᵀ diag(p(1−p)) X / N + λI
mlp                tanh MLP 4→6→3, cross-entropy, batches of 8, 8 and 7        51
cnn                conv 3×3 (2 channels), tanh, 2×2 max pooling, linear,       47
                   cross-entropy, batches of 4, 4 and 2
=================  ==========================================================  =====

How to use them: ``tests/conftest.py`` turns :data:`CASES` into fixtures, so a
test only names the fixture and runs once per case::

    def test_my_provider_matches_dense(hessian_case, provider_checker):
        provider = MyProvider(hessian_case.gradient, hessian_case.x)
        provider_checker(provider, hessian_case.dense, rtol=1e-6)

``hessian_case`` runs over every case, ``closed_form_case`` over the cases
with a formula (check ``case.closed_form``), and ``module_case`` over the
network cases, whose ``model``, ``loss_fn`` and ``loader`` are also set. The
fixtures are session-scoped and the dense matrices are computed once, so a
test must not modify ``x``, ``dense`` or the model. ``provider()`` returns a
new provider on each call. Outside pytest, ``build_case(name)`` builds one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from hessframe.curvature.autodiff import AutodiffHessian

DTYPE = torch.float64


@dataclass
class HessianCase:
    """One objective at one point, with its Hessian.

    Attributes:
        name: Short name, used as the pytest id.
        objective: f, a function of a flat float64 tensor returning a 0-d tensor.
        x: The point, a flat float64 tensor.
        closed_form: H from its formula, or None.
        make_provider: Builds an AutodiffHessian for f at x; takes ``mode``.
        model: The network of a model case, else None.
        loss_fn: Its loss function (returning the batch mean), else None.
        loader: Its DataLoader, whose batches have unequal sizes, else None.
    """

    name: str
    objective: Callable[[torch.Tensor], torch.Tensor]
    x: torch.Tensor
    closed_form: torch.Tensor | None
    make_provider: Callable[..., AutodiffHessian]
    model: nn.Module | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    loader: DataLoader | None = None
    _dense: torch.Tensor | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """n, the number of variables."""
        return self.x.numel()

    @property
    def dense(self) -> torch.Tensor:
        """The float64 Hessian from ``torch.func.hessian``, computed on first use."""
        if self._dense is None:
            self._dense = torch.func.hessian(self.objective)(self.x).detach()
        return self._dense

    def provider(self, mode: str = "auto", **kwargs: Any) -> AutodiffHessian:
        """Build a new AutodiffHessian for this case."""
        return self.make_provider(mode=mode, **kwargs)

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        """Return ∇f(x) by ``torch.func.grad``."""
        return torch.func.grad(self.objective)(x)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _flatten(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def _unflatten(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """Split ``flat`` into the model's parameter shapes, independently of AutodiffHessian."""
    parameters: dict[str, torch.Tensor] = {}
    offset = 0
    for name, parameter in model.named_parameters():
        parameters[name] = flat[offset : offset + parameter.numel()].view(parameter.shape)
        offset += parameter.numel()
    return parameters


def _initialise(model: nn.Module, seed: int) -> nn.Module:
    """Draw every parameter from N(0, 0.5²) with a fixed seed, so cases do not share RNG state."""
    generator = _generator(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=DTYPE))
    return model.to(DTYPE).eval()


def quadratic_case() -> HessianCase:
    """½ xᵀAx + bᵀx with a symmetric indefinite A, so H = A everywhere."""
    generator = _generator(1)
    n = 12
    gaussian = torch.randn(n, n, generator=generator, dtype=DTYPE)
    matrix = (gaussian + gaussian.T) / 2
    offset = torch.randn(n, generator=generator, dtype=DTYPE)
    x = torch.randn(n, generator=generator, dtype=DTYPE)

    def objective(point: torch.Tensor) -> torch.Tensor:
        return 0.5 * point @ matrix @ point + offset @ point

    return HessianCase(
        name="quadratic",
        objective=objective,
        x=x,
        closed_form=matrix,
        make_provider=lambda **kwargs: AutodiffHessian(objective, x, **kwargs),
    )


def logistic_case() -> HessianCase:
    """Mean logistic loss with L2 penalty λ, so H = Xᵀ diag(p(1−p)) X / N + λI."""
    generator = _generator(2)
    num_samples, num_features, l2 = 40, 6, 0.1
    features = torch.randn(num_samples, num_features, generator=generator, dtype=DTYPE)
    labels = torch.randint(0, 2, (num_samples,), generator=generator).to(DTYPE)
    weights = torch.randn(num_features, generator=generator, dtype=DTYPE)

    def objective(w: torch.Tensor) -> torch.Tensor:
        logits = features @ w
        return F.binary_cross_entropy_with_logits(logits, labels) + 0.5 * l2 * (w @ w)

    probabilities = torch.sigmoid(features @ weights)
    curvature = probabilities * (1 - probabilities)
    closed_form = (features.T * curvature) @ features / num_samples
    closed_form += l2 * torch.eye(num_features, dtype=DTYPE)

    return HessianCase(
        name="logistic",
        objective=objective,
        x=weights,
        closed_form=closed_form,
        make_provider=lambda **kwargs: AutodiffHessian(objective, weights, **kwargs),
    )


def _module_case(
    name: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
) -> HessianCase:
    """A model case: the mean cross-entropy over all of ``inputs``, read in unequal batches."""
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=batch_size, shuffle=False)
    sizes = [len(batch_inputs) for batch_inputs, _ in loader]
    assert len(set(sizes)) > 1, f"{name}: the batches must have unequal sizes, got {sizes}"

    def objective(flat: torch.Tensor) -> torch.Tensor:
        outputs = torch.func.functional_call(model, _unflatten(model, flat), (inputs,))
        return loss_fn(outputs, targets)

    def make_provider(**kwargs: Any) -> AutodiffHessian:
        return AutodiffHessian.from_module(model, loss_fn, loader, **kwargs)

    return HessianCase(
        name=name,
        objective=objective,
        x=_flatten(model),
        closed_form=None,
        make_provider=make_provider,
        model=model,
        loss_fn=loss_fn,
        loader=loader,
    )


def mlp_case() -> HessianCase:
    """A tanh MLP 4→6→3 with cross-entropy over 23 samples in batches of 8, 8 and 7."""
    generator = _generator(3)
    model = _initialise(nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)), seed=30)
    inputs = torch.randn(23, 4, generator=generator, dtype=DTYPE)
    targets = torch.randint(0, 3, (23,), generator=generator)
    return _module_case("mlp", model, inputs, targets, batch_size=8)


def cnn_case() -> HessianCase:
    """A CNN (conv, tanh, max pooling, linear) with cross-entropy over 10 images of 6×6."""
    generator = _generator(4)
    model = _initialise(
        nn.Sequential(
            nn.Conv2d(1, 2, kernel_size=3),
            nn.Tanh(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8, 3),
        ),
        seed=40,
    )
    inputs = torch.randn(10, 1, 6, 6, generator=generator, dtype=DTYPE)
    targets = torch.randint(0, 3, (10,), generator=generator)
    return _module_case("cnn", model, inputs, targets, batch_size=4)


#: Builders of every case, by name; conftest.py turns them into fixtures.
CASES: dict[str, Callable[[], HessianCase]] = {
    "quadratic": quadratic_case,
    "logistic": logistic_case,
    "mlp": mlp_case,
    "cnn": cnn_case,
}

CLOSED_FORM_CASES = ("quadratic", "logistic")
MODULE_CASES = ("mlp", "cnn")


@functools.cache
def build_case(name: str) -> HessianCase:
    """Build the case ``name`` once and return the same object on later calls."""
    return CASES[name]()
