"""The built-in plugin ``core``: the four provider kinds, the core commands, the digits data.

It is registered through the same hooks as any external plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hessframe.hookspecs import hookimpl
from hessframe.records import DatasetRecord, ProviderRecord

if TYPE_CHECKING:
    import click


def _autodiff(*args: Any, **kwargs: Any) -> Any:
    from hessframe.curvature.autodiff import AutodiffHessian

    return AutodiffHessian(*args, **kwargs)


def _finite_difference(*args: Any, **kwargs: Any) -> Any:
    from hessframe.curvature.finite_difference import FiniteDifferenceHessian

    return FiniteDifferenceHessian(*args, **kwargs)


def _low_rank_damped(*args: Any, **kwargs: Any) -> Any:
    from hessframe.curvature.lowrank import LowRankDampedHessian

    return LowRankDampedHessian(*args, **kwargs)


def _predicted(*args: Any, **kwargs: Any) -> Any:
    from hessframe.curvature.predicted import PredictedHessian

    return PredictedHessian(*args, **kwargs)


@hookimpl
def hessframe_curvature_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            "autodiff",
            "autodiff",
            _autodiff,
            "Exact Hessian-vector products by automatic differentiation, forward-over-reverse "
            "or reverse-over-reverse (AutodiffHessian(func, x)).",
        ),
        ProviderRecord(
            "finite-difference",
            "finite-difference",
            _finite_difference,
            "Central differences of a torch or numpy gradient function "
            "(FiniteDifferenceHessian(grad_fn, x)).",
        ),
        ProviderRecord(
            "low-rank-damped",
            "low-rank-damped",
            _low_rank_damped,
            "U diag(s) Uᵀ + λI with Woodbury solves and inverse square roots "
            "(LowRankDampedHessian(U, s, damping)).",
        ),
        ProviderRecord(
            "predicted",
            "predicted",
            _predicted,
            "A matrix or its 3×3 blocks returned by a model for an input "
            "(PredictedHessian(predict_fn, inputs)).",
        ),
    ]


@hookimpl
def hessframe_commands(cli: click.Group) -> None:
    from hessframe.commands import spectrum_command, train_digits_command

    cli.add_command(spectrum_command)
    cli.add_command(train_digits_command)


def _load_digits() -> Any:
    from sklearn.datasets import load_digits

    return load_digits()


@hookimpl
def hessframe_datasets() -> list[DatasetRecord]:
    return [
        DatasetRecord(
            name="digits",
            description="8×8 handwritten digits, 1,797 images in 10 classes "
            "(scikit-learn's bundled copy of the UCI data set)",
            licence="redistributed with scikit-learn (BSD-3-Clause); original data by Alpaydin "
            "and Kaynak, UCI Machine Learning Repository (see datasets/digits/README.md)",
            loader=_load_digits,
        )
    ]
