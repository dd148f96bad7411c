"""Benchmark the audio plugin: smoother, Hessian strategies, Newton against Adam, match quality.

Everything runs in this one process (peak memory in one child process per
Hessian strategy) on the same inputs:

1. Gain smoother, forward plus backward with respect to threshold, ratio,
   attack and release, from a given detector level, in float32 at 44.1 kHz.
   It compares the plugin's parallel scan (attack/release decisions included)
   and its sequential loop (``sequential_linear_recurrence``, autograd per
   sample). The loop runs at 1 s and batch 1 only, because it takes seconds
   per 10^4 samples. The third contender is ``torchcomp.compexp_gain`` (the
   peer differentiable compressor, with its expander switched off). Target:
   faster than torchcomp for 60 s of audio.
2. The Hessian strategies: time and peak memory of one 5×5 Hessian, in
   float64. The loss is the waveform loss of ``--hessian-seconds`` of speech
   (the shipped 3 s clip tiled) against its pedalboard-compressed copy. Peak
   memory is the growth of the child's peak resident set over the set-up.
3. Newton-Raphson (exact Hessian, ``autodiff``, and Gauss-Newton) against Adam
   (learning rate ``--adam-lr``) on each shipped target, from the same start:
   iterations and wall time until the ESR is within 1 % of the best that any
   of them reaches. Target: Newton needs at least 10 times fewer iterations
   and 3 times less time than Adam.
4. Match quality of the Newton fits: ESR, loudness error (ITU-R BS.1770-4,
   ``pyloudnorm``), gain-reduction error (RMS difference of 10 ms frame
   gains), and parameter error on the self-rendered target.

Usage::

    python benchmarks/audio_match.py            # full run
    python benchmarks/audio_match.py --quick    # smoke run on short inputs

Writes the Markdown report to ``benchmarks/results/audio.md`` (or ``--output``).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    build_parser,
    environment_lines,
    markdown_table,
    progress,
    resolve_output,
    set_threads,
    verdict,
    write_report,
)

DATASET_DIR = Path(__file__).resolve().parents[1] / "datasets" / "audio"
SAMPLE_RATE = 44100
SMOOTHER_SETTINGS = dict(threshold_db=-20.0, ratio=4.0, attack_ms=5.0, release_ms=100.0)
TARGETS = (
    ("speech", "speech_pedalboard", "pedalboard compressor"),
    ("drums", "drums_pedalboard", "pedalboard compressor, stereo"),
    ("speech", "speech_optical", "simulated optical leveller"),
    ("bass", "bass_self", "plugin's compressor (known settings)"),
)
STRATEGIES = ("reverse-over-reverse", "forward-over-reverse", "gauss-newton", "finite-difference")


# ----------------------------------------------------------------------
# 1. Gain smoother


def detector_level(seconds: float, batch: int) -> torch.Tensor:
    """Return a positive level (batch, time) from the shipped speech, tiled to ``seconds``."""
    from hessframe_audio.io import read_audio

    speech = read_audio(DATASET_DIR / "speech.wav").samples[0]
    length = int(seconds * SAMPLE_RATE)
    tiled = speech.repeat(math.ceil(length / speech.numel()))[:length]
    rows = [torch.roll(tiled, shifts=1000 * index) for index in range(batch)]
    return torch.stack(rows).abs().clamp_min(1e-5)


def plugin_smoother(level: torch.Tensor, sequential: bool = False):
    from hessframe_audio.compressor import (
        attack_decisions,
        smoothing_coefficient,
        static_gain_db,
    )
    from hessframe_audio.scan import linear_recurrence, sequential_linear_recurrence

    def run() -> None:
        threshold = torch.tensor(SMOOTHER_SETTINGS["threshold_db"], requires_grad=True)
        ratio = torch.tensor(SMOOTHER_SETTINGS["ratio"], requires_grad=True)
        attack_ms = torch.tensor(SMOOTHER_SETTINGS["attack_ms"], requires_grad=True)
        release_ms = torch.tensor(SMOOTHER_SETTINGS["release_ms"], requires_grad=True)
        level_db = 20 * torch.log10(level)
        reduction = -torch.expm1(static_gain_db(level_db, threshold, ratio) * (math.log(10) / 20))
        alpha_attack = smoothing_coefficient(attack_ms, SAMPLE_RATE).to(level.dtype)
        alpha_release = smoothing_coefficient(release_ms, SAMPLE_RATE).to(level.dtype)
        attack = attack_decisions(reduction, alpha_attack, alpha_release)
        alpha = torch.where(attack, alpha_attack, alpha_release)
        recurrence = sequential_linear_recurrence if sequential else linear_recurrence
        smoothed = recurrence(1 - alpha, alpha * reduction, torch.zeros_like(level[:, 0]))
        (1 - smoothed).sum().backward()

    return run


def torchcomp_smoother(level: torch.Tensor):
    import torchcomp

    def run() -> None:
        threshold = torch.tensor(SMOOTHER_SETTINGS["threshold_db"], requires_grad=True)
        ratio = torch.tensor(SMOOTHER_SETTINGS["ratio"], requires_grad=True)
        attack_ms = torch.tensor(SMOOTHER_SETTINGS["attack_ms"], requires_grad=True)
        release_ms = torch.tensor(SMOOTHER_SETTINGS["release_ms"], requires_grad=True)
        at = torchcomp.ms2coef(attack_ms, SAMPLE_RATE)
        rt = torchcomp.ms2coef(release_ms, SAMPLE_RATE)
        gain = torchcomp.compexp_gain(level, threshold, ratio, -200.0, 0.999, at, rt)
        gain.sum().backward()

    return run


def time_call(function, repeats: int, warmup: bool = True) -> float:
    if warmup:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def smoother_table(durations, batches, repeats):
    rows = []
    results = {}
    for seconds in durations:
        for batch in batches:
            progress(f"smoother: {seconds} s, batch {batch}")
            level = detector_level(seconds, batch)
            # The largest cases run once each after the warm-up on the smaller ones.
            large = seconds * batch > 100
            scan_s = time_call(plugin_smoother(level), 1 if large else repeats, warmup=not large)
            peer_s = time_call(torchcomp_smoother(level), 1 if large else repeats, warmup=not large)
            loop_s = (
                time_call(plugin_smoother(level, sequential=True), 1, warmup=False)
                if seconds <= 1 and batch == 1
                else math.nan
            )
            results[(seconds, batch)] = (scan_s, peer_s)
            rows.append(
                [
                    f"{seconds:g} s",
                    batch,
                    scan_s,
                    peer_s,
                    loop_s,
                    peer_s / scan_s,
                    loop_s / scan_s if math.isfinite(loop_s) else "not run",
                ]
            )
    table = markdown_table(
        [
            "audio",
            "batch",
            "parallel scan (s)",
            "torchcomp (s)",
            "sequential loop (s)",
            "torchcomp / scan",
            "loop / scan",
        ],
        rows,
    )
    return table, results


# ----------------------------------------------------------------------
# 2. Hessian strategies


def tiled_pair(seconds: float):
    from hessframe_audio.compressor import CompressorSettings
    from hessframe_audio.io import Audio, read_audio
    from hessframe_audio.targets import render_pedalboard

    speech = read_audio(DATASET_DIR / "speech.wav")
    length = int(seconds * SAMPLE_RATE)
    tiled = speech.samples.repeat(1, math.ceil(length / speech.samples.shape[1]))[:, :length]
    audio = Audio(tiled, SAMPLE_RATE, "speech tiled")
    target = render_pedalboard(audio, CompressorSettings(-28.0, 4.0, 3.0, 120.0, 6.0))
    return audio, target


def _peak_rss_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as stream:
        for line in stream:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident set (Linux ≥ 4.0).
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as stream:
        stream.write("5")


def hessian_child(strategy: str, seconds: float, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    from hessframe_audio.match import DEFAULT_START, build_objective, curvature_at

    # One Hessian of 0.1 s first, so that one-off set-up (vmap and forward-mode
    # machinery, allocator growth) is not counted.
    for length in (0.1, seconds):
        audio, target = tiled_pair(length)
        objective = build_objective(audio, target)
        raw = DEFAULT_START.to_raw()
        attack = objective.decisions(raw)
        if length < seconds:
            curvature_at(objective, raw, attack, strategy).to_dense()
    _reset_peak_rss()
    baseline = _peak_rss_bytes()
    start = time.perf_counter()
    matrix = curvature_at(objective, raw, attack, strategy).to_dense()
    elapsed = time.perf_counter() - start
    queue.put(
        {
            "seconds": elapsed,
            "peak_bytes": _peak_rss_bytes() - baseline,
            "matrix": matrix.tolist(),
        }
    )


def hessian_table(seconds: float, threads: int):
    context = multiprocessing.get_context("spawn")
    rows = []
    matrices = {}
    for strategy in STRATEGIES:
        progress(f"hessian: {strategy} on {seconds:g} s")
        queue = context.Queue()
        child = context.Process(target=hessian_child, args=(strategy, seconds, threads, queue))
        child.start()
        result = queue.get()
        child.join()
        matrices[strategy] = torch.tensor(result["matrix"], dtype=torch.float64)
        rows.append([strategy, result["seconds"], result["peak_bytes"] / 2**20])
    exact = matrices["reverse-over-reverse"]
    for row, strategy in zip(rows, STRATEGIES, strict=True):
        difference = torch.linalg.matrix_norm(matrices[strategy] - exact)
        row.append(float(difference / torch.linalg.matrix_norm(exact)))
    table = markdown_table(
        [
            "strategy",
            "time per Hessian (s)",
            "peak memory (MiB)",
            "‖H − H_reverse-over-reverse‖_F / ‖H_reverse-over-reverse‖_F",
        ],
        rows,
    )
    return table


# ----------------------------------------------------------------------
# 3 and 4. Newton against Adam, and match quality


def first_within(history, threshold):
    for record in history:
        if record.esr <= threshold:
            return record.iteration, record.elapsed_s
    return None, None


def optimiser_tables(adam_iterations: int, adam_lr: float, seconds: float | None):
    from hessframe_audio.io import Audio, align_pair, read_audio
    from hessframe_audio.match import DEFAULT_START, adam, build_objective, newton_raphson
    from hessframe_audio.metrics import gain_reduction_error_db, loudness_error_lu

    speed_rows = []
    quality_rows = []
    speed_ok = []
    settings_file = json.loads((DATASET_DIR / "targets" / "settings.json").read_text())
    for input_name, target_name, description in TARGETS:
        audio, target = align_pair(
            read_audio(DATASET_DIR / f"{input_name}.wav"),
            read_audio(DATASET_DIR / "targets" / f"{target_name}.wav"),
        )
        if seconds is not None:
            length = int(seconds * SAMPLE_RATE)
            audio = Audio(audio.samples[:, :length], SAMPLE_RATE, audio.name)
            target = Audio(target.samples[:, :length], SAMPLE_RATE, target.name)
        objective = build_objective(audio, target)
        start = DEFAULT_START.to_raw()
        progress(f"fits: {target_name}")
        fits = {
            "Newton (autodiff)": newton_raphson(objective, start, hessian="autodiff"),
            "Newton (Gauss-Newton)": newton_raphson(objective, start, hessian="gauss-newton"),
            f"Adam (lr {adam_lr:g})": adam(
                objective, start, learning_rate=adam_lr, max_iterations=adam_iterations
            ),
        }
        best = min(result.esr for result in fits.values())
        threshold = 1.01 * best
        reached = {}
        for name, result in fits.items():
            iteration, elapsed = first_within(result.history, threshold)
            reached[name] = (iteration, elapsed)
            speed_rows.append(
                [
                    target_name,
                    name,
                    result.esr,
                    iteration if iteration is not None else f"not within {result.iterations}",
                    elapsed if elapsed is not None else f"> {result.seconds:.3g}",
                ]
            )
        adam_name = f"Adam (lr {adam_lr:g})"
        adam_iteration, adam_time = reached[adam_name]
        newton_iteration, newton_time = reached["Newton (autodiff)"]
        if adam_iteration is None:
            adam_iteration = fits[adam_name].iterations
            adam_time = fits[adam_name].seconds
            bound = "≥ "
        else:
            bound = ""
        iteration_ratio = adam_iteration / newton_iteration
        time_ratio = adam_time / newton_time
        speed_ok.append(iteration_ratio >= 10 and time_ratio >= 3)
        speed_rows.append(
            [
                target_name,
                "Adam / Newton (autodiff)",
                "",
                f"{bound}{iteration_ratio:.3g}",
                f"{bound}{time_ratio:.3g}",
            ]
        )

        newton = fits["Newton (autodiff)"]
        predicted = Audio(
            objective.prediction(newton.raw)[0].detach().to(torch.float32), SAMPLE_RATE
        )
        parameter_error = ""
        if target_name.endswith("_self"):
            truth = settings_file[target_name]
            parameter_error = (
                ", ".join(
                    f"{name} {abs(getattr(newton.settings, name) - value) / abs(value):.1e}"
                    for name, value in truth.items()
                )
                + " (relative)"
            )
        quality_rows.append(
            [
                target_name,
                description,
                newton.esr,
                loudness_error_lu(predicted, target),
                gain_reduction_error_db(audio, predicted, target),
                parameter_error or "unknown",
            ]
        )
    speed = markdown_table(
        [
            "target",
            "method",
            "final ESR",
            "iterations to within 1 % of best ESR",
            "time to within 1 % (s)",
        ],
        speed_rows,
    )
    quality = markdown_table(
        [
            "target",
            "unit",
            "ESR",
            "loudness error (LU)",
            "gain-reduction error (dB)",
            "parameter error",
        ],
        quality_rows,
    )
    return speed, quality, all(speed_ok)


def main() -> None:
    parser = build_parser(__doc__.splitlines()[0], "audio.md")
    parser.add_argument(
        "--hessian-seconds",
        type=float,
        default=60.0,
        help="audio length of the Hessian timings (default 60 s)",
    )
    parser.add_argument("--adam-lr", type=float, default=0.1, help="Adam's learning rate")
    parser.add_argument("--adam-iterations", type=int, default=200, help="Adam's iterations")
    args = parser.parse_args()
    set_threads(args.threads)
    output = resolve_output(args, "audio.md")
    repeats = args.repeats or (1 if args.quick else 3)
    durations = (1.0,) if args.quick else (1.0, 10.0, 60.0)
    batches = (1, 2) if args.quick else (1, 16)
    hessian_seconds = 1.0 if args.quick else args.hessian_seconds
    adam_iterations = 10 if args.quick else args.adam_iterations
    fit_seconds = 0.5 if args.quick else None

    started = time.perf_counter()
    smoother, smoother_results = smoother_table(durations, batches, repeats)
    hessians = hessian_table(hessian_seconds, args.threads)
    speed, quality, speed_passed = optimiser_tables(adam_iterations, args.adam_lr, fit_seconds)

    longest = max(durations)
    long_cases = [value for key, value in smoother_results.items() if key[0] == longest]
    smoother_passed = all(scan < peer for scan, peer in long_cases)
    import pedalboard
    import pyloudnorm
    import torchaudio
    import torchcomp

    report = "\n".join(
        [
            "# Audio plugin: compressor matching",
            "",
            *environment_lines(args.threads, args.quick),
            f"- torchaudio {torchaudio.__version__}, pedalboard {pedalboard.__version__}, "
            f"torchcomp {getattr(torchcomp, '__version__', '0.2.1')}, "
            f"pyloudnorm {getattr(pyloudnorm, '__version__', 'unknown')}",
            f"- whole run: {time.perf_counter() - started:.0f} s",
            "",
            "## Targets",
            "",
            markdown_table(
                ["target", "result"],
                [
                    [
                        f"gain smoother faster than torchcomp at {longest:g} s",
                        verdict(smoother_passed),
                    ],
                    [
                        "Newton ≥ 10× fewer iterations, ≥ 3× less time than Adam, every target",
                        verdict(speed_passed),
                    ],
                ],
            ),
            "",
            "## 1. Gain smoother, forward and backward (float32, fastest of "
            f"{repeats} calls after a warm-up call; cases of more than 100 s of audio in all "
            "run once, without a warm-up)",
            "",
            smoother,
            "",
            f"## 2. Hessian strategies on {hessian_seconds:g} s of audio (float64)",
            "",
            hessians,
            "",
            "## 3. Newton-Raphson against Adam",
            "",
            speed,
            "",
            "## 4. Match quality of Newton-Raphson (autodiff)",
            "",
            quality,
            "",
        ]
    )
    print(report)
    write_report(report, output)


if __name__ == "__main__":
    main()
