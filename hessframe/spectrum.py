"""The loss-Hessian spectrum of a model: top eigenvalues, trace and eigenvalue density.

For a model with flattened parameters θ ∈ ℝⁿ, a loss and a data set,
:func:`compute_spectrum` studies the Hessian H = ∇²L(θ) of the mean loss

    L(θ) = Σ_b n_b · loss_fn(model(X_b), y_b) / Σ_b n_b

over every batch of the data, through Hessian-vector products only:

- the ``top_k`` largest eigenvalues by Lanczos with full reorthogonalisation
  (:func:`hessframe.linalg.lanczos`), with their residuals ‖H v − λ v‖;
- the trace by Hutch++ (Meyer, Musco, Musco & Woodruff, "Hutch++: Optimal
  Stochastic Trace Estimation", SOSA 2021), and exactly as the sum of the
  diagonal (n products) when n is at most ``exact_trace_max_size``;
- the eigenvalue density by stochastic Lanczos quadrature (Lin, Saad & Yang,
  "Approximating spectral densities of large matrices", SIAM Review 58, 2016;
  Ghorbani, Krishnan & Xiao, "An Investigation into Neural Net Optimization via
  Hessian Eigenvalue Density", ICML 2019), :func:`hessframe.linalg.spectral_density`.

:func:`write_spectrum` stores a result as ``spectrum.json`` and ``spectrum.png``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from hessframe.curvature.base import Capabilities, CurvatureProvider
from hessframe.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

SPECTRUM_PROVIDERS = ("autodiff", "finite-difference")
DEFAULT_EXACT_TRACE_MAX_SIZE = 512
SPECTRUM_JSON = "spectrum.json"
SPECTRUM_PNG = "spectrum.png"


@dataclass(frozen=True)
class SpectrumResult:
    """The spectrum of a loss Hessian, with what is needed to judge it.

    Attributes:
        provider: Name of the curvature provider (``"autodiff"`` or ``"finite-difference"``).
        num_parameters: n, the number of scalar parameters (rows of H).
        dtype: Floating-point dtype of the parameters and products.
        top_eigenvalues: The ``top_k`` largest eigenvalues of H, in descending order.
        eigenvalue_residuals: ‖H v − λ v‖ of each eigenpair, in the same order.
        eigenvalues_converged: Every residual met the Lanczos tolerance.
        tol: Lanczos tolerance, relative to the spectral scale of H.
        lanczos_iterations: Lanczos steps taken.
        lanczos_matvecs: Hessian-vector products spent by Lanczos.
        trace_estimate: Hutch++ estimate of tr(H).
        trace_standard_error: Standard error of ``trace_estimate`` as Hutch++
            reports it (NaN where it reports none).
        trace_matvecs: Hessian-vector products spent by Hutch++: the requested
            budget, or 2n when the budget reaches 3n and the sketch spans the whole space.
        exact_trace: tr(H) as the sum of the exact diagonal, or None when n was
            larger than the ``exact_trace_max_size`` of the call.
        exact_trace_matvecs: Hessian-vector products spent on ``exact_trace`` (n or 0).
        density_grid: Eigenvalue grid of the density estimate.
        density: Estimated eigenvalue density on ``density_grid``, integrating to one.
        density_num_probes: Random probe vectors of stochastic Lanczos quadrature.
        density_num_steps: Lanczos steps per probe.
        density_matvecs: Hessian-vector products spent on the density.
        num_matvecs: All Hessian-vector products of the call, counted at the provider.
        seconds: Wall time of the whole call, building the provider included.
        stage_seconds: Wall time of each stage: ``"provider"``, ``"lanczos"``,
            ``"hutchpp"``, ``"exact_trace"`` and ``"density"``.
    """

    provider: str
    num_parameters: int
    dtype: str
    top_eigenvalues: tuple[float, ...]
    eigenvalue_residuals: tuple[float, ...]
    eigenvalues_converged: bool
    tol: float
    lanczos_iterations: int
    lanczos_matvecs: int
    trace_estimate: float
    trace_standard_error: float
    trace_matvecs: int
    exact_trace: float | None
    exact_trace_matvecs: int
    density_grid: tuple[float, ...]
    density: tuple[float, ...]
    density_num_probes: int
    density_num_steps: int
    density_matvecs: int
    num_matvecs: int
    seconds: float
    stage_seconds: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a dictionary of JSON types (NaN becomes None)."""
        payload = asdict(self)
        payload["stage_seconds"] = dict(self.stage_seconds)
        return _replace_nan(payload)


def _replace_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _replace_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replace_nan(item) for item in value]
    return value


class _CountingProvider(CurvatureProvider):
    """Forwards products to another provider, counting them and advancing a progress bar."""

    def __init__(self, inner: CurvatureProvider) -> None:
        super().__init__(inner.size, inner.dtype, inner.device)
        self.inner = inner
        self.num_matvecs = 0
        self.bar: Any = None

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.inner.kind

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        product = self.inner.matvec(v)
        self._count(1)
        return product

    def _matmat(self, V: torch.Tensor) -> torch.Tensor:
        product = self.inner.matmat(V)
        self._count(V.shape[1])
        return product

    def _count(self, products: int) -> None:
        self.num_matvecs += products
        if self.bar is not None:
            self.bar.update(products)


def build_provider(
    model: torch.nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    data: Any,
    provider: str = "autodiff",
    provider_options: Mapping[str, Any] | None = None,
) -> CurvatureProvider:
    """Build the Hessian of the mean loss of ``model`` over ``data`` as a provider.

    Args:
        model: The network; its parameters with ``requires_grad`` are the variables.
        loss_fn: ``loss_fn(outputs, targets)`` returning the mean loss of a batch.
        data: An iterable of (inputs, targets) batches, such as a DataLoader.
        provider: ``"autodiff"`` (:class:`~hessframe.curvature.AutodiffHessian`)
            or ``"finite-difference"`` (:class:`~hessframe.curvature.FiniteDifferenceHessian`).
        provider_options: Keyword arguments passed on to the provider's
            ``from_module`` (for example ``step`` of the finite-difference provider).

    Returns:
        The provider.

    Raises:
        InvalidArgumentError: ``provider`` is not one of :data:`SPECTRUM_PROVIDERS`.
    """
    options = dict(provider_options or {})
    if provider == "autodiff":
        from hessframe.curvature.autodiff import AutodiffHessian

        return AutodiffHessian.from_module(model, loss_fn, data, **options)
    if provider == "finite-difference":
        from hessframe.curvature.finite_difference import FiniteDifferenceHessian

        return FiniteDifferenceHessian.from_module(model, loss_fn, data, **options)
    raise InvalidArgumentError(f"provider must be one of {SPECTRUM_PROVIDERS}, got {provider!r}")


def compute_spectrum(
    model: torch.nn.Module,
    loss_fn: Callable[[Any, Any], torch.Tensor],
    data: Any,
    *,
    provider: str = "autodiff",
    top_k: int = 5,
    tol: float = 1e-6,
    max_iter: int | None = None,
    trace_matvecs: int = 99,
    exact_trace_max_size: int = DEFAULT_EXACT_TRACE_MAX_SIZE,
    num_probes: int = 10,
    num_steps: int = 60,
    grid_size: int = 1000,
    sigma: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    provider_options: Mapping[str, Any] | None = None,
) -> SpectrumResult:
    """Compute the top eigenvalues, trace and eigenvalue density of a loss Hessian.

    The Hessian is that of the mean loss over every batch of ``data`` with
    respect to the model's parameters (see the module docstring). The three
    stages run in this order and share ``generator``: Lanczos, Hutch++ (plus
    the exact trace when n ≤ ``exact_trace_max_size``) and stochastic Lanczos
    quadrature. Progress bars go to stderr when ``progress`` is true; each
    stage is also logged.

    Args:
        model: The network, in the mode whose loss is wanted (``eval()`` for
            dropout or batch norm).
        loss_fn: ``loss_fn(outputs, targets)`` returning the mean loss of a batch.
        data: An iterable of (inputs, targets) batches, such as a DataLoader.
        provider: ``"autodiff"`` or ``"finite-difference"``.
        top_k: Number of largest eigenvalues, 1 ≤ top_k ≤ n.
        tol: Lanczos tolerance on the residuals relative to the spectral scale, positive.
        max_iter: Largest number of Lanczos steps; the default of
            :func:`hessframe.linalg.lanczos` when None.
        trace_matvecs: Hessian-vector products for Hutch++, at least 3.
        exact_trace_max_size: Compute the exact trace (n products) when n is
            at most this; 0 turns it off.
        num_probes: Probe vectors of stochastic Lanczos quadrature, at least 1.
        num_steps: Lanczos steps per probe, at least 1.
        grid_size: Points of the density grid, at least 2.
        sigma: Width of the Gaussian that smooths each quadrature node; the
            default of :func:`hessframe.linalg.spectral_density` when None.
        generator: Random generator of the Lanczos start vector and the probes;
            a fresh unseeded one when None.
        progress: Show tqdm progress bars on stderr.
        provider_options: Keyword arguments for the provider's ``from_module``.

    Returns:
        A :class:`SpectrumResult`.

    Raises:
        InvalidArgumentError: An argument is out of range, ``provider`` is
            unknown, or ``top_k`` exceeds the number of parameters.
    """
    _check_spectrum_arguments(
        provider=provider,
        top_k=top_k,
        tol=tol,
        max_iter=max_iter,
        trace_matvecs=trace_matvecs,
        exact_trace_max_size=exact_trace_max_size,
        num_probes=num_probes,
        num_steps=num_steps,
        grid_size=grid_size,
        sigma=sigma,
    )
    from hessframe.linalg import hutchpp_trace, lanczos, spectral_density

    start = time.perf_counter()
    stage_seconds: dict[str, float] = {}

    inner = build_provider(model, loss_fn, data, provider, provider_options)
    operator = _CountingProvider(inner)
    n = operator.size
    if top_k > n:
        raise InvalidArgumentError(
            f"top_k must be at most the number of parameters ({n}), got {top_k}"
        )
    if generator is None:
        generator = torch.Generator(device=operator.device)
        generator.seed()
    stage_seconds["provider"] = time.perf_counter() - start
    logger.info("built the %s Hessian of %d parameters (%s)", provider, n, inner.dtype)

    lanczos_options: dict[str, Any] = {"tol": tol, "generator": generator}
    if max_iter is not None:
        lanczos_options["max_iter"] = max_iter
    with _stage(operator, stage_seconds, "lanczos", progress, "Lanczos", "matvec", max_iter):
        eigen = lanczos(operator, top_k, "largest", **lanczos_options)
    lanczos_matvecs = operator.num_matvecs
    logger.info(
        "Lanczos: top %d eigenvalues %s, converged %s, %d products",
        top_k,
        [round(float(value), 6) for value in eigen.eigenvalues],
        eigen.converged,
        lanczos_matvecs,
    )

    counted = operator.num_matvecs
    with _stage(operator, stage_seconds, "hutchpp", progress, "Hutch++", "matvec", trace_matvecs):
        trace = hutchpp_trace(operator, trace_matvecs, generator=generator)
    hutchpp_matvecs = operator.num_matvecs - counted
    logger.info(
        "Hutch++: trace %.6g ± %.2g (%d products)",
        trace.value,
        trace.standard_error,
        hutchpp_matvecs,
    )

    exact_trace = None
    counted = operator.num_matvecs
    if n <= exact_trace_max_size:
        with _stage(operator, stage_seconds, "exact_trace", progress, "exact trace", "matvec", n):
            exact_trace = float(operator.trace())
        logger.info("exact trace %.10g (%d products)", exact_trace, operator.num_matvecs - counted)
    else:
        stage_seconds["exact_trace"] = 0.0
    exact_trace_matvecs = operator.num_matvecs - counted

    counted = operator.num_matvecs
    density_options: dict[str, Any] = {
        "num_probes": num_probes,
        "num_steps": num_steps,
        "grid_size": grid_size,
        "generator": generator,
    }
    if sigma is not None:
        density_options["sigma"] = sigma
    stage_start = time.perf_counter()
    with tqdm(desc="spectral density", unit="step", disable=not progress, leave=False) as bar:
        density_options["progress"] = functools.partial(_advance_bar, bar)
        density = spectral_density(operator, **density_options)
    stage_seconds["density"] = time.perf_counter() - stage_start
    density_matvecs = operator.num_matvecs - counted
    logger.info("spectral density: %d probes, %d products", num_probes, density_matvecs)

    return SpectrumResult(
        provider=provider,
        num_parameters=n,
        dtype=str(inner.dtype).removeprefix("torch."),
        top_eigenvalues=tuple(float(value) for value in eigen.eigenvalues),
        eigenvalue_residuals=tuple(float(value) for value in eigen.residuals),
        eigenvalues_converged=bool(eigen.converged),
        tol=float(tol),
        lanczos_iterations=int(eigen.iterations),
        lanczos_matvecs=lanczos_matvecs,
        trace_estimate=float(trace.value),
        trace_standard_error=float(trace.standard_error),
        trace_matvecs=hutchpp_matvecs,
        exact_trace=exact_trace,
        exact_trace_matvecs=exact_trace_matvecs,
        density_grid=tuple(float(value) for value in density.grid),
        density=tuple(float(value) for value in density.density),
        density_num_probes=num_probes,
        density_num_steps=num_steps,
        density_matvecs=density_matvecs,
        num_matvecs=operator.num_matvecs,
        seconds=time.perf_counter() - start,
        stage_seconds=stage_seconds,
    )


def _advance_bar(bar: Any, done: int, total: int) -> None:
    """Move ``bar`` to ``done`` of ``total`` Lanczos steps (the progress callback of SLQ)."""
    bar.total = total
    bar.update(done - bar.n)


@contextlib.contextmanager
def _stage(
    operator: _CountingProvider,
    stage_seconds: dict[str, float],
    name: str,
    progress: bool,
    description: str,
    unit: str,
    total: int | None,
) -> Iterator[None]:
    """Time one stage under ``stage_seconds[name]`` and count its products on a progress bar."""
    start = time.perf_counter()
    with tqdm(total=total, desc=description, unit=unit, disable=not progress, leave=False) as bar:
        operator.bar = bar
        try:
            yield
        finally:
            operator.bar = None
            stage_seconds[name] = time.perf_counter() - start


def _check_spectrum_arguments(**arguments: Any) -> None:
    if arguments["provider"] not in SPECTRUM_PROVIDERS:
        raise InvalidArgumentError(
            f"provider must be one of {SPECTRUM_PROVIDERS}, got {arguments['provider']!r}"
        )
    minimums = {
        "top_k": 1,
        "trace_matvecs": 3,
        "exact_trace_max_size": 0,
        "num_probes": 1,
        "num_steps": 1,
        "grid_size": 2,
    }
    if arguments["max_iter"] is not None:
        minimums["max_iter"] = 1
    for name, minimum in minimums.items():
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidArgumentError(
                f"{name} must be an integer of at least {minimum}, got {value!r}"
            )
    for name in ("tol", "sigma"):
        value = arguments[name]
        if value is None and name == "sigma":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InvalidArgumentError(f"{name} must be a positive number, got {value!r}")
        if not math.isfinite(value):
            raise InvalidArgumentError(f"{name} must be finite, got {value!r}")


def write_spectrum(result: SpectrumResult, out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``spectrum.json`` and ``spectrum.png`` into ``out_dir``.

    The JSON contains :meth:`SpectrumResult.to_dict`. The figure plots the density
    on a logarithmic density axis and a symmetric-logarithmic eigenvalue axis
    (linear near zero, logarithmic for both signs), with the top eigenvalues
    marked. Both files are rendered in memory, written to temporary names in
    ``out_dir`` and renamed after both are complete, so an error leaves neither
    a partial file nor a stray temporary one.

    Args:
        result: The spectrum.
        out_dir: Folder to write into; created if missing.

    Returns:
        (path of the JSON, path of the PNG).

    Raises:
        InvalidArgumentError: ``result`` is not a :class:`SpectrumResult`.
    """
    if not isinstance(result, SpectrumResult):
        raise InvalidArgumentError(f"result must be a SpectrumResult, got {type(result).__name__}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / SPECTRUM_JSON
    png_path = out_dir / SPECTRUM_PNG

    json_bytes = (json.dumps(result.to_dict(), indent=2) + "\n").encode()
    png_bytes = render_spectrum_png(result)
    write_files_atomically({json_path: json_bytes, png_path: png_bytes})
    logger.info("wrote %s and %s", json_path, png_path)
    return json_path, png_path


def render_spectrum_png(result: SpectrumResult) -> bytes:
    """Plot the eigenvalue density with the top eigenvalues marked and return the PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    grid = torch.tensor(result.density_grid, dtype=torch.float64)
    density = torch.tensor(result.density, dtype=torch.float64)
    # A log axis cannot show zero; values below this floor are drawn at it.
    floor = max(float(density.max()) * 1e-12, 1e-300)
    scale = max(float(grid.abs().max()), *(abs(value) for value in result.top_eigenvalues))
    linear_threshold = scale * 1e-3 if scale > 0 else 1.0

    figure = Figure(figsize=(7, 4.5), dpi=120)
    axes = figure.add_subplot()
    axes.plot(
        grid.numpy(), density.clamp(min=floor).numpy(), color="tab:blue", label="density (SLQ)"
    )
    for index, value in enumerate(result.top_eigenvalues):
        axes.axvline(
            value,
            color="tab:red",
            linestyle="--",
            linewidth=0.8,
            label=f"top {len(result.top_eigenvalues)} eigenvalues" if index == 0 else None,
        )
    axes.set_xscale("symlog", linthresh=linear_threshold)
    axes.set_yscale("log")
    axes.set_xlabel(f"eigenvalue (linear for |λ| < {linear_threshold:.2g})")
    axes.set_ylabel("density")
    axes.set_title(
        f"Hessian spectrum, {result.num_parameters} parameters ({result.provider}); "
        f"trace ≈ {result.trace_estimate:.4g}",
        fontsize=10,
    )
    axes.set_ylim(bottom=max(float(density.max()) * 1e-9, floor))
    axes.legend(loc="lower center", fontsize=8)
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_files_atomically(contents: Mapping[Path, bytes]) -> None:
    """Write several files so that either all of them appear complete or none changes.

    Each file is first written to a temporary name in its target folder. The
    temporary files are renamed over the targets only after all were written,
    and removed if any step fails. The renames themselves are atomic one by
    one; a crash between two renames can leave the first file new and the
    second one old.

    Args:
        contents: Bytes to write, per target path. The target folders must exist.
    """
    temporary: dict[Path, Path] = {}
    try:
        for target, data in contents.items():
            handle, name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
            temporary[target] = Path(name)
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            # mkstemp creates the file readable by its owner only; give it the
            # permissions that open() would have given under the current umask.
            os.chmod(name, 0o666 & ~_current_umask())
        for target, temp_path in temporary.items():
            os.replace(temp_path, target)
    finally:
        for temp_path in temporary.values():
            temp_path.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
