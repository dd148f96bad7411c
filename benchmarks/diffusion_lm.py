"""Levenberg-Marquardt diffusion samplers against their base samplers at matched evaluations.

Two test beds, the same initial noise for every sampler of a seed, paired
95 % confidence intervals (Student t over seeds) for LM variant minus base:

1. The Gaussian mixture of ``hessframe_diffusion.mixture.default_mixture``
   (16 dimensions, four anisotropic components) with its exact noise
   prediction. Metrics: the mean distance of each sample to the exact
   probability-flow ODE solution from the same noise, the sliced
   Wasserstein-2 distance to exact samples, and the fraction of samples off
   every mode. A sample is off a mode when its squared Mahalanobis distance to
   the component exceeds the 0.999 quantile of χ²₁₆. The secant curvature of
   ``ddim-lml`` is also compared with the exact Hessian.
2. The shipped digits ``UNet2DModel``: Fréchet distance and KID in the
   features of the shipped digits classifier against the held-out test split.

Samplers: DDIM, DPM-Solver++ of order 2 and 3, the LM increment correction on
each (``-lml``), DDIM with the first-order Langevin corrector, and DDIM with
the LML corrector plus the increment correction (``lml-corrector``). A
corrector sampler with N predictor steps spends 2N - 1 evaluations, so at an
even budget it spends one evaluation less than the others.

Run from the repository root: ``python benchmarks/diffusion_lm.py``. The report
is printed and written to ``benchmarks/results/diffusion.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hessframe_diffusion
import numpy as np
import scipy.stats
import torch
from hessframe_diffusion import LMDDIMScheduler, LMDPMSolverMultistepScheduler
from hessframe_diffusion import _lm_scheduler as lm_scheduler_module
from hessframe_diffusion.mixture import (
    MixtureNoisePredictor,
    default_mixture,
    solve_probability_flow,
)

EVALUATIONS = (4, 5, 6, 8, 10, 20)
RESULTS = Path(__file__).resolve().parent / "results" / "diffusion.md"
#: LM variant -> its base sampler, for the paired differences.
PAIRS = {
    "ddim-lml": "ddim",
    "dpm2-lml": "dpm2",
    "dpm3-lml": "dpm3",
    "lml-corrector": "langevin",
}
SAMPLERS = ("ddim", "ddim-lml", "dpm2", "dpm2-lml", "dpm3", "dpm3-lml", "langevin", "lml-corrector")
CORRECTORS = ("langevin", "lml-corrector")


def build(name: str, config, lm_lambda: float):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = {"timestep_spacing": "trailing"}
    if name == "ddim":
        return DDIMScheduler.from_config(config, **common)
    if name == "ddim-lml":
        return LMDDIMScheduler.from_config(config, lm_lambda=lm_lambda, **common)
    if name in ("dpm2", "dpm3"):
        return DPMSolverMultistepScheduler.from_config(
            config, solver_order=int(name[3]), **common
        )
    if name in ("dpm2-lml", "dpm3-lml"):
        return LMDPMSolverMultistepScheduler.from_config(
            config, solver_order=int(name[3]), lm_lambda=lm_lambda, **common
        )
    if name == "langevin":
        return LMDDIMScheduler.from_config(
            config, lm_corrector="langevin", lm_mix=0.0, lm_lambda=lm_lambda, **common
        )
    return LMDDIMScheduler.from_config(config, lm_corrector="lml", lm_lambda=lm_lambda, **common)


def predictor_steps(name: str, evaluations: int) -> int:
    return (evaluations + 1) // 2 if name in CORRECTORS else evaluations


# ----------------------------------------------------------------------
# Gaussian mixture


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int, seed: int) -> float:
    """Return the sliced Wasserstein-2 distance between two equal-size samples."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(a.shape[1], projections, dtype=torch.float64, generator=generator)
    directions /= torch.linalg.vector_norm(directions, dim=0, keepdim=True)
    projected_a = torch.sort(a.double() @ directions, dim=0).values
    projected_b = torch.sort(b.double() @ directions, dim=0).values
    return float(torch.sqrt(((projected_a - projected_b) ** 2).mean()))


def run_mixture(seeds: int, samples: int, lm_lambda: float, log) -> dict:
    from diffusers import DDIMScheduler

    mixture = default_mixture(dim=16)
    config = DDIMScheduler(clip_sample=False).config
    alphas_cumprod = DDIMScheduler().alphas_cumprod
    threshold = float(scipy.stats.chi2.ppf(0.999, mixture.dim))
    metrics: dict = {}
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(1000 + seed)
        noise = torch.randn(samples, mixture.dim, generator=generator)
        exact_ode = solve_probability_flow(
            mixture, noise.double(), float(alphas_cumprod[-1]), steps=200
        )
        exact_samples = mixture.sample(samples, generator)
        for evaluations in EVALUATIONS:
            for name in SAMPLERS:
                scheduler = build(name, config, lm_lambda)
                predictor = MixtureNoisePredictor(mixture, alphas_cumprod)
                scheduler.set_timesteps(predictor_steps(name, evaluations))
                corrector_noise = torch.Generator().manual_seed(seed)
                x = noise.clone()
                started = time.perf_counter()
                for t in scheduler.timesteps:
                    output = predictor(x, t)
                    x = scheduler.step(output, t, x, generator=corrector_noise).prev_sample
                seconds = time.perf_counter() - started
                x = x.double()
                record = metrics.setdefault((name, evaluations), {})
                values = {
                    "ode": float(torch.linalg.vector_norm(x - exact_ode, dim=1).mean()),
                    "sw": sliced_wasserstein(x, exact_samples, 64, seed),
                    "off": float(
                        (mixture.mahalanobis_distances(x).min(1).values > threshold)
                        .double()
                        .mean()
                    ),
                    "ms": 1000 * seconds / samples,
                    "nfe": predictor.evaluations,
                }
                for key, value in values.items():
                    record.setdefault(key, []).append(value)
        log(f"mixture seed {seed + 1}/{seeds} done")
    return metrics


def hessian_error(samples: int, evaluations: int, lm_lambda: float) -> dict:
    """Compare the secant curvature of ddim-lml with the exact posterior covariance C.

    Returns the mean over steps and samples of |c - uᵀ C u| and of the relative
    Frobenius errors ‖M̃ - M‖_F / ‖M‖_F of M = I - C, for the secant
    approximation M̃ = I - c u uᵀ and for the first-order M̃ = I.
    """
    from diffusers import DDIMScheduler

    mixture = default_mixture(dim=16)
    alphas_cumprod = DDIMScheduler().alphas_cumprod
    scheduler = LMDDIMScheduler(clip_sample=False, timestep_spacing="trailing", lm_lambda=lm_lambda)
    predictor = MixtureNoisePredictor(mixture, alphas_cumprod)
    recorded = []
    original = lm_scheduler_module.secant_curvature

    def recording(previous, current):
        directions, curvature = original(previous, current)
        recorded.append((directions.double(), curvature.double(), current.y.double(), current.s))
        return directions, curvature

    lm_scheduler_module.secant_curvature = recording
    try:
        scheduler.set_timesteps(evaluations)
        x = torch.randn(samples, mixture.dim, generator=torch.Generator().manual_seed(7))
        for t in scheduler.timesteps:
            x = scheduler.step(predictor(x, t), t, x).prev_sample
    finally:
        lm_scheduler_module.secant_curvature = original

    rayleigh, secant, first_order = [], [], []
    eye = torch.eye(mixture.dim, dtype=torch.float64)
    for directions, curvature, y, s in recorded:
        alpha = 1 / math.sqrt(1 + s**2)
        sigma = s * alpha
        exact_c = eye + sigma**2 * mixture.hessian(alpha * y, alpha, sigma)
        exact_m = eye - exact_c
        along = torch.einsum("bi,bij,bj->b", directions, exact_c, directions)
        rayleigh.append((curvature - along).abs())
        approx_m = eye - curvature[:, None, None] * directions[:, :, None] * directions[:, None, :]
        norm = torch.linalg.matrix_norm(exact_m)
        secant.append(torch.linalg.matrix_norm(approx_m - exact_m) / norm)
        first_order.append(torch.linalg.matrix_norm(exact_c) / norm)
    return {
        "steps": len(recorded),
        "rayleigh": float(torch.cat(rayleigh).mean()),
        "secant": float(torch.cat(secant).mean()),
        "first_order": float(torch.cat(first_order).mean()),
    }


# ----------------------------------------------------------------------
# Digits


def run_digits(seeds: int, images: int, lm_lambda: float, evaluations_list, log) -> dict:
    from hessframe_diffusion.digits import load_digit_images
    from hessframe_diffusion.metrics import (
        digit_features,
        frechet_distance,
        kernel_inception_distance,
        load_digits_classifier,
    )
    from hessframe_diffusion.sampling import load_pipeline

    pipeline = load_pipeline("digits")
    pipeline.set_progress_bar_config(disable=True)
    config = pipeline.scheduler.config
    classifier = load_digits_classifier()
    real = digit_features(classifier, load_digit_images("test"))
    metrics: dict = {}
    for seed in range(seeds):
        for evaluations in evaluations_list:
            for name in SAMPLERS:
                pipeline.scheduler = build(name, config, lm_lambda)
                started = time.perf_counter()
                output = pipeline(
                    batch_size=images,
                    generator=torch.Generator().manual_seed(2000 + seed),
                    num_inference_steps=predictor_steps(name, evaluations),
                    output_type="np",
                )
                seconds = time.perf_counter() - started
                generated = torch.from_numpy(np.asarray(output.images)).permute(0, 3, 1, 2) * 2 - 1
                features = digit_features(classifier, generated)
                record = metrics.setdefault((name, evaluations), {})
                values = {
                    "fd": frechet_distance(features, real),
                    "kid": 1000 * kernel_inception_distance(features, real),
                    "ms": 1000 * seconds / images,
                    "nfe": len(pipeline.scheduler.timesteps),
                }
                for key, value in values.items():
                    record.setdefault(key, []).append(value)
        log(f"digits seed {seed + 1}/{seeds} done")
    return metrics


# ----------------------------------------------------------------------
# Report


def mean_interval(values) -> tuple[float, float]:
    """Return the mean and the half-width of its 95 % Student-t interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return float(values.mean()), float("nan")
    half = scipy.stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return float(values.mean()), float(half)


def format_interval(values, digits: int = 3) -> str:
    mean, half = mean_interval(values)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def metric_table(metrics: dict, keys, evaluations_list) -> list[str]:
    header = "| sampler | " + " | ".join(f"NFE {n}" for n in evaluations_list) + " |"
    lines = []
    for key, title in keys:
        lines += [f"**{title}** (mean ± 95 % interval over seeds)", "", header]
        lines.append("| --- |" + " --- |" * len(evaluations_list))
        for name in SAMPLERS:
            cells = []
            for n in evaluations_list:
                record = metrics[(name, n)]
                cells.append(format_interval(record[key]) + ("" if record["nfe"][0] == n else
                                                              f" ({record['nfe'][0]} NFE)"))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def paired_table(metrics: dict, keys, evaluations_list, verdicts: list) -> list[str]:
    lines = [
        "| LM variant − base | metric | "
        + " | ".join(f"NFE {n}" for n in evaluations_list)
        + " |",
        "| --- | --- |" + " --- |" * len(evaluations_list),
    ]
    for variant, base in PAIRS.items():
        for key, title in keys:
            cells = []
            for n in evaluations_list:
                difference = np.asarray(metrics[(variant, n)][key]) - np.asarray(
                    metrics[(base, n)][key]
                )
                mean, half = mean_interval(difference)
                better = mean + half < 0
                cells.append(f"{mean:+.3f} ± {half:.3f}" + (" ✓" if better else ""))
                if n <= 10:
                    verdicts.append((variant, base, title, n, better))
            lines.append(f"| {variant} − {base} | {title} | " + " | ".join(cells) + " |")
    return lines


def time_ratios(metrics: dict, evaluations_list) -> list[str]:
    lines = [
        "| LM variant / base | " + " | ".join(f"NFE {n}" for n in evaluations_list) + " |",
        "| --- |" + " --- |" * len(evaluations_list),
    ]
    for variant, base in PAIRS.items():
        cells = []
        for n in evaluations_list:
            ratio = np.median(metrics[(variant, n)]["ms"]) / np.median(metrics[(base, n)]["ms"])
            cells.append(f"{ratio:.2f}")
        lines.append(f"| {variant} / {base} | " + " | ".join(cells) + " |")
    return lines


def environment() -> list[str]:
    import diffusers

    return [
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        f"- torch {torch.__version__} on {torch.get_num_threads()} thread(s), diffusers "
        f"{diffusers.__version__}, hessframe-diffusion {hessframe_diffusion.__version__}, "
        f"Python {platform.python_version()}",
        f"- run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(name, 0o644)
    os.replace(name, path)


@dataclass(frozen=True)
class Settings:
    mixture_seeds: int
    mixture_samples: int
    digits_seeds: int
    digits_images: int
    digits_evaluations: tuple
    lm_lambda: float


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Small sizes, to check it runs.")
    parser.add_argument("--output", type=Path, default=None, help="Report path.")
    parser.add_argument("--lm-lambda", type=float, default=1.0, help="LM damping λ.")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--skip-digits", action="store_true", help="Only the mixture test bed.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        settings = Settings(2, 60, 2, 24, (4, 10), args.lm_lambda)
        output = args.output
    else:
        settings = Settings(8, 250, 4, 200, EVALUATIONS, args.lm_lambda)
        output = args.output or RESULTS

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    mixture = run_mixture(settings.mixture_seeds, settings.mixture_samples, args.lm_lambda, log)
    hessian = hessian_error(settings.mixture_samples, 10, args.lm_lambda)
    digits = None
    if not args.skip_digits:
        digits = run_digits(
            settings.digits_seeds,
            settings.digits_images,
            args.lm_lambda,
            settings.digits_evaluations,
            log,
        )
    total = time.perf_counter() - started

    verdicts: list = []
    mixture_keys = [
        ("ode", "distance to exact ODE solution"),
        ("sw", "sliced W2 to exact samples"),
        ("off", "fraction off every mode"),
    ]
    lines = [
        "# Levenberg-Marquardt diffusion samplers",
        "",
        f"Command: `python benchmarks/diffusion_lm.py{' --quick' if args.quick else ''}`"
        f" (λ = {args.lm_lambda}), {total:.0f} s in all.",
        f"mode: {'quick' if args.quick else 'full'}",
        "",
        *environment(),
        "",
        "## Gaussian mixture (16 dimensions, exact noise prediction)",
        "",
        f"{settings.mixture_seeds} seeds × {settings.mixture_samples} samples; the same "
        "initial noise for every sampler of a seed. NFE: network evaluations per sample "
        "(a corrector sampler at an even budget uses one less).",
        "",
        *metric_table(mixture, [*mixture_keys, ("ms", "wall time per sample, ms")], EVALUATIONS),
        "Paired differences, LM variant minus base (negative is better; ✓ marks an interval "
        "below zero):",
        "",
        *paired_table(mixture, mixture_keys, EVALUATIONS, verdicts),
        "",
        "Wall-time ratio per sample (median over seeds):",
        "",
        *time_ratios(mixture, EVALUATIONS),
        "",
        f"Secant curvature of ddim-lml against the exact Hessian (NFE 10, {hessian['steps']} "
        "steps with a secant pair):",
        "",
        "| quantity | value |",
        "| --- | --- |",
        f"| mean abs error of c against uᵀ C u | {hessian['rayleigh']:.4f} |",
        f"| relative Frobenius error of I − c u uᵀ against I − C | {hessian['secant']:.4f} |",
        f"| relative Frobenius error of the first-order I against I − C | "
        f"{hessian['first_order']:.4f} |",
        "",
    ]
    if digits is not None:
        digit_keys = [("fd", "Fréchet distance"), ("kid", "KID × 1000")]
        evaluations = settings.digits_evaluations
        lines += [
            "## Digits UNet2DModel (8×8, shipped weights)",
            "",
            f"{settings.digits_seeds} seeds × {settings.digits_images} images against the "
            "270 held-out test digits, in the 64 features of the shipped classifier.",
            "",
            *metric_table(digits, [*digit_keys, ("ms", "wall time per image, ms")], evaluations),
            "Paired differences, LM variant minus base:",
            "",
            *paired_table(digits, digit_keys, evaluations, verdicts),
            "",
            "Wall-time ratio per image (median over seeds):",
            "",
            *time_ratios(digits, evaluations),
            "",
        ]
    wins = sum(1 for *_, better in verdicts if better)
    lines += [
        "## Targets",
        "",
        f"At NFE ≤ 10 an LM variant beat its base with an interval below zero in {wins} of "
        f"{len(verdicts)} (variant, metric, NFE) cells. Target: all of them, at ≤ 5 % extra "
        "time per step.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if output is not None:
        write_atomically(output, text)
        log(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
