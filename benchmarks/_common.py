"""Shared pieces of the core benchmarks: command line, timing, tables, atomic output.

Every core benchmark is a script with ``--quick`` (a smoke run in seconds),
``--repeats`` and ``--threads``, that prints one Markdown report and writes it
to ``benchmarks/results/``. The report states the machine and library versions
it was measured with, so a table is never separated from its context.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def build_parser(description: str, default_output: str) -> argparse.ArgumentParser:
    """Return a parser with the options every core benchmark shares.

    Args:
        description: Help text of the benchmark.
        default_output: File name under ``benchmarks/results/`` that a full run writes.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run on small sizes in a few seconds; prints the report and writes "
        "it only where --output says",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="timed repetitions per measurement (default: set by each benchmark, 2 with --quick)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=min(2, os.cpu_count() or 1),
        help="torch intra-op threads (default: min(2, CPU count))",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the Markdown report (default: benchmarks/results/{default_output} "
        "for a full run, nowhere for --quick)",
    )
    return parser


def positive_int(text: str) -> int:
    """Parse a command-line integer that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def resolve_output(args: argparse.Namespace, default_output: str) -> Path | None:
    """Return where the report goes: ``--output``, else the results file of a full run."""
    if args.output is not None:
        return args.output
    if args.quick:
        return None
    return RESULTS_DIR / default_output


def resolve_repeats(args: argparse.Namespace, full_default: int = 10) -> int:
    """Return ``--repeats``, or 2 with ``--quick``, or the benchmark's ``full_default``."""
    if args.repeats is not None:
        return args.repeats
    return 2 if args.quick else full_default


def progress(message: str) -> None:
    """Print a timestamped progress line to stderr, apart from the report on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def set_threads(threads: int) -> None:
    """Fix torch's intra-op thread count so timings are comparable between runs."""
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls.

    Attributes:
        samples_s: Every timed call in the order of the rounds, in seconds.
    """

    samples_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        """Median over the repeats, in seconds."""
        return statistics.median(self.samples_s)

    @property
    def min_s(self) -> float:
        """Fastest repeat, in seconds."""
        return min(self.samples_s)

    @property
    def repeats(self) -> int:
        """Number of timed calls."""
        return len(self.samples_s)


def median_ratio(numerator: Timing, denominator: Timing) -> float:
    """Return the median over rounds of the ratio of two interleaved timings.

    Both calls of a round ran back to back, so a burst of load from other
    processes inflates numerator and denominator alike, and the ratio of each
    round is steadier than the ratio of the two medians.
    """
    if numerator.repeats != denominator.repeats:
        raise ValueError(
            f"timings have {numerator.repeats} and {denominator.repeats} repeats; "
            "ratios need timings from the same rounds"
        )
    return statistics.median(
        top / bottom for top, bottom in zip(numerator.samples_s, denominator.samples_s, strict=True)
    )


def time_interleaved(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, Timing]:
    """Time several functions by the median of ``repeats`` calls, taken in rounds.

    Each round calls every function once, so a change in machine load during
    the run (other processes on a shared machine) reaches all of them alike
    instead of biasing whichever was timed at the busy moment. ``warmup``
    untimed rounds first absorb one-off costs (allocator growth, lazy imports,
    vmap and autograd set-up) that a user pays once and not per call.
    """
    for _ in range(warmup):
        for fn in functions.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: Timing(samples_s=tuple(times)) for name, times in samples.items()}


def verdict(passed: bool) -> str:
    """Return ``PASS`` or ``FAIL``."""
    return "PASS" if passed else "FAIL"


def format_number(value: float, digits: int = 4) -> str:
    """Format a measured number with ``digits`` significant digits, or ``nan``/``inf``."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Render a Markdown table; floats get four significant digits."""
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = [format_number(c) if isinstance(c, float) else str(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_markdown_table(text: str, heading: str) -> list[dict[str, str]]:
    """Read back the first table after the line ``heading`` as a list of row dicts.

    Raises:
        ValueError: ``heading`` is missing or no table follows it.
    """
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise ValueError(f"heading {heading!r} not found in the report") from None
    table_lines = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table_lines.append(line)
        elif table_lines:
            break
    if len(table_lines) < 2:
        raise ValueError(f"no Markdown table follows the heading {heading!r}")
    header = [cell.strip() for cell in table_lines[0].strip("|").split("|")]
    rows = []
    for line in table_lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def environment_lines(threads: int, quick: bool) -> list[str]:
    """Describe the machine and versions behind a report, one Markdown bullet each."""
    import numpy
    import scipy

    lines = [
        f"- torch {torch.__version__}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
        f"Python {platform.python_version()}",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores), "
        f"torch threads: {threads}, no GPU used",
        f"- mode: {'quick (smoke sizes, not a measurement)' if quick else 'full'}",
        f"- measured: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
    return lines


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_report(text: str, path: Path | None) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; skip when None."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp creates the file readable by its owner only; give the report
        # the permissions of a file created with open().
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, path)
    finally:
        Path(temp_name).unlink(missing_ok=True)
