"""Costs, objectives and Wasserstein distances of entropic optimal transport.

The conventions follow POT 0.9 (``ot.sinkhorn``): for marginals a, b, a cost
matrix M and an entropic weight reg > 0, the primal problem is

    min_P ⟨M, P⟩ + reg · Σ_ij P_ij log P_ij   subject to P1 = a, Pᵀ1 = b, P ≥ 0,

and its optimal plan is P = exp((f_i + g_j − M_ij)/reg) for potentials f, g
that maximise :func:`dual_objective`. Functions here accept numpy arrays and
torch tensors (and return the same kind), except :func:`cost_matrix`,
:func:`image_to_measure` and :func:`wasserstein_distance`, which work in float64 numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
import torch

from hessframe.errors import InvalidArgumentError
from hessframe_transport._backend import to_float64
from hessframe_transport._checks import check_reg

__all__ = [
    "cost_matrix",
    "dual_objective",
    "entropic_objective",
    "image_to_measure",
    "transport_cost",
    "wasserstein_distance",
]

METRICS = ("sqeuclidean", "euclidean")


def transport_cost(plan: Any, M: Any) -> Any:
    """Return the linear transport cost ⟨M, P⟩ = Σ_ij M_ij P_ij.

    Args:
        plan: (n, m) plan: numpy array, scipy sparse matrix, or torch tensor (dense or sparse).
        M: (n, m) cost matrix of the same framework (a numpy M goes with a scipy plan).

    Returns:
        A float for numpy and scipy plans, a 0-d tensor for torch plans.

    Raises:
        InvalidArgumentError: The shapes differ.
    """
    _check_same_shape(plan, M)
    if isinstance(plan, torch.Tensor):
        if plan.layout != torch.strided:
            plan = plan.to_dense()
        return (plan * M).sum()
    if scipy.sparse.issparse(plan):
        return float(plan.multiply(np.asarray(M)).sum())
    return float(np.sum(np.asarray(plan) * np.asarray(M)))


def entropic_objective(plan: Any, M: Any, reg: float) -> Any:
    """Return the primal objective ⟨M, P⟩ + reg · Σ_ij P_ij log P_ij, with 0 log 0 = 0.

    Args:
        plan: (n, m) non-negative plan, numpy array or dense torch tensor.
        M: (n, m) cost matrix of the same framework.
        reg: Entropic weight, > 0.

    Returns:
        A float for numpy, a 0-d tensor for torch.

    Raises:
        InvalidArgumentError: The shapes differ or reg ≤ 0.
    """
    reg = check_reg(reg)
    _check_same_shape(plan, M)
    if isinstance(plan, torch.Tensor):
        entropy = torch.special.xlogy(plan, plan).sum()
        return (plan * M).sum() + reg * entropy
    plan = np.asarray(plan, dtype=np.float64)
    positive = plan > 0
    entropy = float(np.sum(plan[positive] * np.log(plan[positive])))
    return float(np.sum(plan * np.asarray(M))) + reg * entropy


def dual_objective(f: Any, g: Any, a: Any, b: Any, M: Any, reg: float) -> Any:
    """Return the entropic dual objective of potentials f, g.

        D(f, g) = ⟨f, a⟩ + ⟨g, b⟩ − reg · Σ_ij exp((f_i + g_j − M_ij)/reg) + reg · Σ_i a_i.

    D is concave. For marginals with equal totals it is the Lagrange dual of
    :func:`entropic_objective` (the usual dual with f shifted by reg), so
    D(f, g) ≤ ⟨M, P⟩ + reg Σ P log P for every feasible plan P, with equality
    at the optimum. Its negative Hessian is [[diag(P1), P], [Pᵀ, diag(Pᵀ1)]]/reg
    with P = exp((f ⊕ g − M)/reg). The sum is evaluated as a log-sum-exp, so
    large potentials give −inf rather than overflow warnings. Torch inputs keep
    their autograd graph, so ``torch.func.hessian`` applies.

    Args:
        f: (n,) source potential.
        g: (m,) target potential.
        a: (n,) source marginal.
        b: (m,) target marginal.
        M: (n, m) cost matrix.
        reg: Entropic weight, > 0.

    Returns:
        A float for numpy, a 0-d tensor for torch.

    Raises:
        InvalidArgumentError: Shapes disagree or reg ≤ 0.
    """
    reg = check_reg(reg)
    if not isinstance(M, torch.Tensor):
        f, g, a, b, M = (np.asarray(value, dtype=np.float64) for value in (f, g, a, b, M))
    if M.ndim != 2:
        raise InvalidArgumentError(f"M must be a 2-D cost matrix, got shape {tuple(M.shape)}")
    n, m = tuple(M.shape)
    for name, value, size in (("f", f, n), ("a", a, n), ("g", g, m), ("b", b, m)):
        if tuple(value.shape) != (size,):
            raise InvalidArgumentError(
                f"{name} must have shape ({size},) to match M of shape {(n, m)}, "
                f"got {tuple(value.shape)}"
            )
    if isinstance(M, torch.Tensor):
        exponents = (f[:, None] + g[None, :] - M) / reg
        mass = torch.exp(torch.logsumexp(exponents.reshape(-1), dim=0))
        return f @ a + g @ b - reg * mass + reg * a.sum()
    exponents = (f[:, None] + g[None, :] - M) / reg
    top = float(exponents.max())
    with np.errstate(over="ignore"):
        mass = np.exp(top) * float(np.exp(exponents - top).sum())
    return float(np.dot(f, a) + np.dot(g, b) - reg * mass + reg * np.sum(a))


def cost_matrix(x: Any, y: Any, metric: str = "sqeuclidean", scale: bool = True) -> np.ndarray:
    """Return the ground-cost matrix between two point sets.

    Args:
        x: (n, d) source points (a 1-D array is read as n points on a line).
        y: (m, d) target points, with the same d.
        metric: ``"sqeuclidean"`` for M_ij = ‖x_i − y_j‖² (the cost of W2) or
            ``"euclidean"`` for M_ij = ‖x_i − y_j‖ (the cost of W1).
        scale: Divide M by its largest entry, so that costs lie in [0, 1] and
            reg is relative to the largest cost (left as is when all costs are 0).

    Returns:
        The (n, m) float64 cost matrix.

    Raises:
        InvalidArgumentError: Unknown metric, empty or non-finite points, or
            point sets of different dimensions.
    """
    if metric not in METRICS:
        raise InvalidArgumentError(f"metric must be one of {METRICS}, got {metric!r}")
    source = _check_points(x, "x")
    target = _check_points(y, "y")
    if source.shape[1] != target.shape[1]:
        raise InvalidArgumentError(
            f"x has points in {source.shape[1]} dimensions but y in {target.shape[1]}; "
            "both point sets must have the same dimension"
        )
    squared = (
        (source * source).sum(axis=1)[:, None]
        + (target * target).sum(axis=1)[None, :]
        - 2.0 * source @ target.T
    )
    np.maximum(squared, 0.0, out=squared)
    cost = squared if metric == "sqeuclidean" else np.sqrt(squared)
    if scale and cost.max() > 0:
        cost = cost / cost.max()
    return cost


def image_to_measure(image: Any, *, keep_zeros: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a 2-D non-negative image as a probability measure on its pixel grid.

    Pixel (row, col) becomes the support point (row, col) in pixel widths, and
    its value divided by the image total becomes its mass.

    Args:
        image: (rows, cols) array of non-negative finite values, not all zero.
        keep_zeros: Keep pixels of zero mass in the support (by default only
            pixels with positive mass are returned).

    Returns:
        (weights, coordinates): (k,) float64 masses summing to one and (k, 2)
        float64 (row, col) coordinates, in row-major pixel order.

    Raises:
        InvalidArgumentError: The image is not 2-D, has negative or non-finite
            values, or sums to zero.
    """
    pixels = to_float64(image, "image")
    if pixels.ndim != 2 or pixels.size == 0:
        raise InvalidArgumentError(
            f"image must be a non-empty 2-D array (rows, cols), got shape {pixels.shape}; "
            "convert colour images to grayscale first"
        )
    if not np.all(np.isfinite(pixels)):
        raise InvalidArgumentError("image contains NaN or infinite values; pixels must be finite")
    if pixels.min() < 0:
        raise InvalidArgumentError(
            f"image contains negative values (smallest {pixels.min():.6g}); pixels are masses, >= 0"
        )
    total = pixels.sum()
    if total <= 0:
        raise InvalidArgumentError("image sums to zero, so it carries no mass to transport")
    rows, columns = np.nonzero(np.ones_like(pixels, dtype=bool) if keep_zeros else pixels > 0)
    weights = pixels[rows, columns] / total
    coordinates = np.column_stack([rows, columns]).astype(np.float64)
    return weights, coordinates


def wasserstein_distance(
    source: Any,
    target: Any,
    *,
    p: int = 2,
    reg: float = 1e-3,
    kind: str = "images",
    source_weights: Any = None,
    target_weights: Any = None,
    relative_reg: bool = True,
    return_plan: bool = False,
    numItermax: int = 1000,
    stopThr: float = 1e-9,
) -> Any:
    """Compute the entropic Wasserstein distance W_p between two images or point clouds.

    The value is (⟨M, P_reg⟩)^(1/p), where M_ij = ‖x_i − y_j‖^p and P_reg is
    the entropic optimal plan of :func:`~hessframe_transport.solver.sinkhorn_newton_sparse`.
    It is the p-th root of the transport cost of the entropic plan, without the
    entropy term. It is at least W_p and tends to W_p as reg → 0.

    Args:
        source, target: With ``kind="images"``, 2-D non-negative arrays read as
            densities on their pixel grids (:func:`image_to_measure`), of the
            same or different shapes, with distances in pixel widths. With
            ``kind="points"``, (n, d) and (m, d) point clouds. The kind is
            not guessed from the shapes, because an (n, 2) array is a valid
            image as well as a point cloud.
        p: 1 or 2.
        reg: Entropic weight. With ``relative_reg`` (the default) it is relative
            to the largest entry of M, so the solver is given M / max(M) and reg.
            Otherwise it is in the units of M (pixel widths to the power p for images).
        kind: ``"images"`` or ``"points"``.
        source_weights, target_weights: Point masses for ``kind="points"``;
            None means uniform. They are normalised to total one.
        relative_reg: Whether reg is relative to the largest cost.
        return_plan: Also return the (n, m) plan.
        numItermax, stopThr: Passed to the solver.

    Returns:
        W_p as a float, in the units of the coordinates; with ``return_plan``
        the pair (W_p, plan), the plan a float64 array over the supports (for
        images, the pixels with positive mass in row-major order).

    Raises:
        InvalidArgumentError: Invalid p, kind, reg, images or points, or
            weights given for images.
    """
    if isinstance(p, bool) or p not in (1, 2):
        raise InvalidArgumentError(f"p must be 1 or 2, got {p!r}")
    if kind == "images":
        if source_weights is not None or target_weights is not None:
            raise InvalidArgumentError(
                "source_weights and target_weights apply to kind='points'; images carry "
                "their masses in their pixel values"
            )
        a, x = _image_argument(source, "source")
        b, y = _image_argument(target, "target")
    elif kind == "points":
        x = _check_points(source, "source")
        y = _check_points(target, "target")
        a = _point_weights(source_weights, "source_weights", x.shape[0])
        b = _point_weights(target_weights, "target_weights", y.shape[0])
    else:
        raise InvalidArgumentError(f"kind must be 'images' or 'points', got {kind!r}")

    from hessframe_transport.solver import sinkhorn_newton_sparse

    M = cost_matrix(x, y, metric="sqeuclidean" if p == 2 else "euclidean", scale=False)
    reg = check_reg(reg)
    scale = float(M.max()) if relative_reg and M.max() > 0 else 1.0
    plan = sinkhorn_newton_sparse(a, b, M / scale, reg, numItermax=numItermax, stopThr=stopThr)
    value = max(transport_cost(plan, M), 0.0) ** (1.0 / p)
    return (value, plan) if return_plan else value


def _image_argument(image: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return :func:`image_to_measure` of ``image``, with errors that name the argument."""
    try:
        return image_to_measure(image)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(
            f"{name} was read as an image because kind='images' (the default), but {error}; "
            "for (n, d) point clouds pass kind='points'"
        ) from error


def _check_points(points: Any, name: str) -> np.ndarray:
    array = to_float64(points, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidArgumentError(
            f"{name} must be an (n, d) array of points with n, d >= 1, got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise InvalidArgumentError(f"{name} contains NaN or infinite coordinates")
    return array


def _point_weights(weights: Any, name: str, size: int) -> np.ndarray:
    if weights is None:
        return np.full(size, 1.0 / size)
    array = to_float64(weights, name)
    if array.shape != (size,):
        raise InvalidArgumentError(
            f"{name} must have shape ({size},), one mass per point, got {array.shape}"
        )
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.sum() <= 0:
        raise InvalidArgumentError(f"{name} must be finite, non-negative and not all zero")
    return array / array.sum()


def _check_same_shape(plan: Any, M: Any) -> None:
    if tuple(plan.shape) != tuple(np.shape(M) if not isinstance(M, torch.Tensor) else M.shape):
        raise InvalidArgumentError(
            f"plan has shape {tuple(plan.shape)} but M has shape {tuple(M.shape)}; they must match"
        )
