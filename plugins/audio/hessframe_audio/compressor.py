"""A differentiable feed-forward dynamic range compressor.

Signal flow, per batch item (all channels share one detector, so stereo is linked):

1. level detector: the peak |x[n]| (maximum over channels), or the RMS, the
   square root of the mean over channels of x², smoothed by a fixed one-pole
   filter of ``rms_ms`` (``torchaudio.functional.lfilter``);
2. gain computer, in dB: G = 0 below the threshold T, G = (1/R − 1)(L − T)
   above it, and with a soft knee of width W the quadratic
   (1/R − 1)(L − T + W/2)²/(2W) inside |L − T| ≤ W/2 (Giannoulis, Massberg and
   Reiss, "Digital dynamic range compressor design: a tutorial and analysis",
   JAES 60(6), 2012);
3. attack/release smoothing of the linear gain reduction r = 1 − 10^(G/20):
   s[n] = (1 − α)·s[n−1] + α·r[n] with α the attack coefficient when the
   reduction rises (r[n] > s[n−1], the gain falls) and the release
   coefficient otherwise. Coefficients follow torchcomp, the reference
   differentiable compressor: α = 1 − exp(−2200 / (t_ms · f_s)), so t_ms is
   the 10 %–90 % rise time. Smoothing the reduction instead of the gain
   makes silence an exact fixed point (r = s = 0), so the attack/release
   decisions there do not depend on rounding;
4. output y = x · (1 − s) · 10^(makeup/20).

The smoothing is a time-varying one-pole recursion, computed by the parallel
scan of :mod:`hessframe_audio.scan`. The attack/release decision at n depends on
s[n−1], so it is found by a fixed-point iteration (:func:`attack_decisions`)
that provably returns the decisions of the sequential loop.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torchaudio

from hessframe.errors import InvalidArgumentError
from hessframe_audio.scan import linear_recurrence, scan

#: Names of the fitted parameters, in the order of the raw parameter vector.
PARAMETER_NAMES = ("threshold_db", "ratio", "attack_ms", "release_ms", "makeup_db")

#: Units of the parameters, for output and export.
PARAMETER_UNITS = {
    "threshold_db": "dB",
    "ratio": ":1",
    "attack_ms": "ms",
    "release_ms": "ms",
    "makeup_db": "dB",
}

#: Bounds of the attack and release times in ms; the raw parameters map into them.
ATTACK_RANGE_MS = (0.05, 500.0)
RELEASE_RANGE_MS = (1.0, 5000.0)

#: dB of threshold and make-up gain per unit of the raw parameter vector, so
#: that every raw coordinate moves a comparable amount per unit step.
DB_PER_RAW_UNIT = 10.0

DETECTORS = ("peak", "rms")

#: A fixed-point round of :func:`attack_decisions` that settles fewer samples
#: than this hands the next window of samples to the sequential loop.
MIN_SCAN_PROGRESS = 64

#: First window of that sequential loop, in samples; it doubles each time.
SEQUENTIAL_WINDOW = 256

#: Floor of the detected level, -200 dB, so that silence has a finite logarithm.
LEVEL_FLOOR = 1e-10


@dataclass(frozen=True)
class CompressorSettings:
    """Settings of the compressor in their units.

    Attributes:
        threshold_db: Level above which the gain is reduced, in dBFS.
        ratio: Compression ratio R ≥ 1 (input dB per output dB above the threshold).
        attack_ms: Attack time in ms, within :data:`ATTACK_RANGE_MS`.
        release_ms: Release time in ms, within :data:`RELEASE_RANGE_MS`.
        makeup_db: Make-up gain in dB.
    """

    threshold_db: float
    ratio: float
    attack_ms: float
    release_ms: float
    makeup_db: float = 0.0

    def __post_init__(self) -> None:
        for name in PARAMETER_NAMES:
            value = getattr(self, name)
            if not _is_number(value):
                raise InvalidArgumentError(f"{name} must be a number, got {type(value).__name__}")
            if not math.isfinite(value):
                raise InvalidArgumentError(f"{name} must be finite, got {value}")
        if self.ratio < 1:
            raise InvalidArgumentError(f"ratio must be at least 1, got {self.ratio}")
        for name, (low, high) in (("attack_ms", ATTACK_RANGE_MS), ("release_ms", RELEASE_RANGE_MS)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise InvalidArgumentError(f"{name} must be within [{low}, {high}] ms, got {value}")

    def as_dict(self) -> dict[str, float]:
        """Return the settings as a dict of floats keyed by :data:`PARAMETER_NAMES`."""
        return {name: float(value) for name, value in asdict(self).items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CompressorSettings:
        """Build settings from a mapping with every name of :data:`PARAMETER_NAMES`."""
        missing = [name for name in PARAMETER_NAMES if name not in values]
        if missing:
            raise InvalidArgumentError(
                f"settings are missing {', '.join(missing)}; expected {', '.join(PARAMETER_NAMES)}"
            )
        return cls(**{name: float(values[name]) for name in PARAMETER_NAMES})

    def to_raw(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Return the unconstrained raw vector whose :func:`raw_to_settings` are these settings.

        Times at a bound map to ±30, the raw value whose sigmoid rounds to the bound.
        """
        return torch.tensor(
            [
                self.threshold_db / DB_PER_RAW_UNIT,
                math.log(max(self.ratio - 1.0, 1e-12)),
                _time_to_raw(self.attack_ms, ATTACK_RANGE_MS),
                _time_to_raw(self.release_ms, RELEASE_RANGE_MS),
                self.makeup_db / DB_PER_RAW_UNIT,
            ],
            dtype=dtype,
        )

    @classmethod
    def from_raw(cls, raw: torch.Tensor) -> CompressorSettings:
        """Return the settings of a raw parameter vector of length 5."""
        values = raw_to_parameters(raw.detach().to(torch.float64))
        return cls(**{name: float(values[name]) for name in PARAMETER_NAMES})


def raw_to_parameters(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Map a raw vector θ of length 5 to the parameters, differentiably.

    threshold = 10 dB·θ₀, ratio = 1 + exp(θ₁), attack and release move on a
    logarithmic scale between their bounds with a sigmoid of θ₂ and θ₃, and
    make-up gain = 10 dB·θ₄.
    """
    if not isinstance(raw, torch.Tensor) or raw.shape != (len(PARAMETER_NAMES),):
        raise InvalidArgumentError(
            f"raw must be a tensor of shape ({len(PARAMETER_NAMES)},) ordered as "
            f"{', '.join(PARAMETER_NAMES)}, got {_describe(raw)}"
        )
    return {
        "threshold_db": DB_PER_RAW_UNIT * raw[0],
        "ratio": 1.0 + torch.exp(raw[1]),
        "attack_ms": _raw_to_time(raw[2], ATTACK_RANGE_MS),
        "release_ms": _raw_to_time(raw[3], RELEASE_RANGE_MS),
        "makeup_db": DB_PER_RAW_UNIT * raw[4],
    }


def _raw_to_time(raw: torch.Tensor, bounds: tuple[float, float]) -> torch.Tensor:
    low, high = math.log(bounds[0]), math.log(bounds[1])
    return torch.exp(low + (high - low) * torch.sigmoid(raw))


def _time_to_raw(time_ms: float, bounds: tuple[float, float]) -> float:
    low, high = math.log(bounds[0]), math.log(bounds[1])
    position = (math.log(time_ms) - low) / (high - low)
    position = min(max(position, 1e-13), 1 - 1e-13)
    return math.log(position / (1 - position))


def smoothing_coefficient(time_ms: torch.Tensor | float, sample_rate: int) -> torch.Tensor:
    """Return α = 1 − exp(−2200 / (t_ms · f_s)), the one-pole coefficient of a rise time."""
    if not isinstance(time_ms, torch.Tensor):
        time_ms = torch.tensor(float(time_ms), dtype=torch.float64)
    return -torch.expm1(-2200.0 / (time_ms * sample_rate))


def detect_level(
    samples: torch.Tensor, sample_rate: int, detector: str = "peak", rms_ms: float = 10.0
) -> torch.Tensor:
    """Return the linked linear level (batch, time) of samples (batch, channels, time).

    The peak detector takes max over channels of |x|. The RMS detector smooths
    the mean over channels of x² with the fixed one-pole low-pass
    ``torchaudio.functional.lfilter([α, 0], [1, α − 1])``, α from ``rms_ms``
    as for the attack and release times, and takes the square root.
    """
    if detector == "peak":
        return samples.abs().amax(dim=-2)
    if detector != "rms":
        raise InvalidArgumentError(f"detector must be one of {DETECTORS}, got {detector!r}")
    power = samples.pow(2).mean(dim=-2)
    alpha = float(smoothing_coefficient(rms_ms, sample_rate))
    a_coeffs = torch.tensor([1.0, alpha - 1.0], dtype=power.dtype, device=power.device)
    b_coeffs = torch.tensor([alpha, 0.0], dtype=power.dtype, device=power.device)
    smoothed = torchaudio.functional.lfilter(power, a_coeffs, b_coeffs, clamp=False)
    return smoothed.clamp_min(0.0).sqrt()


def static_gain_db(
    level_db: torch.Tensor,
    threshold_db: torch.Tensor | float,
    ratio: torch.Tensor | float,
    knee_db: float = 0.0,
) -> torch.Tensor:
    """Return the gain computer's output G ≤ 0 in dB for input levels in dB (hard or soft knee)."""
    slope = 1.0 / torch.as_tensor(ratio) - 1.0
    overshoot = level_db - threshold_db
    above = slope * overshoot
    if knee_db <= 0:
        return torch.where(overshoot > 0, above, torch.zeros_like(above))
    inside = slope * (overshoot + knee_db / 2) ** 2 / (2 * knee_db)
    gain = torch.where(2 * overshoot > knee_db, above, inside)
    return torch.where(2 * overshoot < -knee_db, torch.zeros_like(gain), gain)


def attack_decisions(
    reduction: torch.Tensor, alpha_attack: torch.Tensor, alpha_release: torch.Tensor
) -> torch.Tensor:
    """Return the attack/release decisions of the smoothing, True where it attacks.

    The decision at n is r[n] > s[n−1], which depends on the smoothed state.
    Starting from the guess r[n] > r[n−1], the iteration scans the recursion
    with the current decisions, recomputes them from the scanned states, and
    finds the first sample where they changed. Every decision before it is
    consistent with states that only depend on earlier decisions, so it and
    the state entering it are final. The next scan starts there. When a round
    advances fewer than :data:`MIN_SCAN_PROGRESS` samples, the next
    ``window`` samples are decided by the sequential loop and ``window``
    doubles, which bounds the number of rounds by O(log N) slow ones plus the
    fast ones. The result is the sequence the sequential loop produces, up to
    states that tie with the target within the rounding of the two orders of
    summation. The decisions are computed in float64 whatever the input's
    dtype, which makes such ties rare: in float32 the two orders differ by
    about 1e-6 relative, and one sample in 44100 of an RMS-detected test
    signal tied that closely.

    Args:
        reduction: Target linear gain reduction r of shape (batch, time).
        alpha_attack: Attack coefficient, a 0-d tensor or one per batch item.
        alpha_release: Release coefficient, the same shape.

    Returns:
        A bool tensor like ``reduction``.
    """
    with torch.no_grad():
        reduction = reduction.detach().to(torch.float64)
        batch = reduction.shape[0]
        alpha_attack = alpha_attack.detach().to(reduction.dtype).reshape(-1, 1).expand(batch, 1)
        alpha_release = alpha_release.detach().to(reduction.dtype).reshape(-1, 1).expand(batch, 1)
        # Rows are settled one at a time, because a round can only move on to
        # the first sample that changed in any row, which would make every row
        # wait for the slowest.
        rows = [
            _row_decisions(reduction[row : row + 1], alpha_attack[row], alpha_release[row])
            for row in range(batch)
        ]
    return torch.cat(rows, dim=0)


def _row_decisions(
    reduction: torch.Tensor, alpha_attack: torch.Tensor, alpha_release: torch.Tensor
) -> torch.Tensor:
    """Return the decisions of :func:`attack_decisions` for one float64 row (1, time)."""
    length = reduction.shape[1]
    alpha_attack = alpha_attack.reshape(1, 1)
    alpha_release = alpha_release.reshape(1, 1)
    previous_target = torch.cat([torch.zeros_like(reduction[:, :1]), reduction[:, :-1]], dim=1)
    attack = reduction > previous_target

    start = 0
    window = SEQUENTIAL_WINDOW
    state = torch.zeros_like(reduction[:, 0])
    while start < length:
        part_attack = attack[:, start:]
        part_reduction = reduction[:, start:]
        alpha = torch.where(part_attack, alpha_attack, alpha_release)
        smoothed = scan(1.0 - alpha, alpha * part_reduction, state)
        previous = torch.cat([state.unsqueeze(1), smoothed[:, :-1]], dim=1)
        updated = part_reduction > previous
        changed = (updated != part_attack).any(dim=0)
        if not bool(changed.any()):
            break
        first = int(torch.nonzero(changed)[0, 0])
        attack[:, start:] = updated
        state = previous[:, first]
        start += first
        if first >= MIN_SCAN_PROGRESS:
            continue

        stop = min(start + window, length)
        smoothed_window, attack_window = sequential_smoothing(
            reduction[:, start:stop].cpu().numpy(),
            alpha_attack[:, 0].cpu().numpy(),
            alpha_release[:, 0].cpu().numpy(),
            initial=state.cpu().numpy(),
        )
        attack[:, start:stop] = torch.from_numpy(attack_window).to(attack.device)
        state = torch.from_numpy(smoothed_window[:, -1]).to(state)
        start = stop
        window *= 2
    return attack


def smooth_reduction(
    reduction: torch.Tensor,
    alpha_attack: torch.Tensor,
    alpha_release: torch.Tensor,
    attack: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the smoothed gain reduction s (batch, time) by the differentiable parallel scan.

    Args:
        reduction: Target linear gain reduction r of shape (batch, time).
        alpha_attack: Attack coefficient, a 0-d tensor or one per batch item.
        alpha_release: Release coefficient, the same shape.
        attack: Decisions from :func:`attack_decisions`; computed when None.
            Derivatives treat them as constant, which they are almost
            everywhere.
    """
    if attack is None:
        attack = attack_decisions(reduction, alpha_attack, alpha_release)
    alpha = torch.where(attack, alpha_attack.reshape(-1, 1), alpha_release.reshape(-1, 1))
    return linear_recurrence(1.0 - alpha, alpha * reduction, torch.zeros_like(reduction[:, 0]))


def sequential_smoothing(
    reduction: np.ndarray,
    alpha_attack: float | np.ndarray,
    alpha_release: float | np.ndarray,
    initial: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the smoothed reduction and the attack decisions by a plain loop over samples.

    The reference for :func:`attack_decisions` and :func:`smooth_reduction`,
    on a (batch, time) float array, vectorised over the batch only.

    Args:
        reduction: Target linear gain reduction r, (batch, time).
        alpha_attack: Attack coefficient, a number or one per batch item.
        alpha_release: Release coefficient, likewise.
        initial: State before the first sample, (batch,); zero when None.
    """
    reduction = np.asarray(reduction)
    dtype = reduction.dtype.type
    smoothed = np.empty_like(reduction)
    attack = np.empty(reduction.shape, dtype=bool)
    if initial is None:
        state = np.zeros(reduction.shape[0], dtype=reduction.dtype)
    else:
        state = np.asarray(initial, dtype=reduction.dtype).copy()
    alpha_a = np.broadcast_to(np.asarray(alpha_attack, dtype=reduction.dtype), state.shape)
    alpha_r = np.broadcast_to(np.asarray(alpha_release, dtype=reduction.dtype), state.shape)
    one = dtype(1.0)
    for n in range(reduction.shape[1]):
        target = reduction[:, n]
        attacking = target > state
        alpha = np.where(attacking, alpha_a, alpha_r)
        state = (one - alpha) * state + alpha * target
        smoothed[:, n] = state
        attack[:, n] = attacking
    return smoothed, attack


@dataclass(frozen=True)
class CompressorTrace:
    """Intermediate signals of one pass, for plots and the gain-reduction error.

    Attributes:
        output: Compressed samples, the shape of the input.
        level_db: Detected level in dB, (batch, time).
        gain_reduction_db: Smoothed gain in dB (≤ 0 before make-up), (batch, time).
        attack: Attack decisions, (batch, time).
    """

    output: torch.Tensor
    level_db: torch.Tensor
    gain_reduction_db: torch.Tensor
    attack: torch.Tensor


class Compressor:
    """A feed-forward compressor with a linked detector, applied with raw or physical parameters.

    Args:
        sample_rate: Sample rate in Hz of the signals it processes.
        detector: ``"peak"`` or ``"rms"``.
        knee_db: Width of the soft knee in dB; 0 for a hard knee.
        rms_ms: Averaging time of the RMS detector in ms.

    Raises:
        InvalidArgumentError: An argument is out of its range.
    """

    def __init__(
        self, sample_rate: int, detector: str = "peak", knee_db: float = 0.0, rms_ms: float = 10.0
    ) -> None:
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise InvalidArgumentError(
                f"sample_rate must be a positive integer in Hz, got {sample_rate!r}"
            )
        if detector not in DETECTORS:
            raise InvalidArgumentError(f"detector must be one of {DETECTORS}, got {detector!r}")
        if not (_is_number(knee_db) and math.isfinite(knee_db) and knee_db >= 0):
            raise InvalidArgumentError(f"knee_db must be a finite number ≥ 0, got {knee_db!r}")
        if not (_is_number(rms_ms) and math.isfinite(rms_ms) and rms_ms > 0):
            raise InvalidArgumentError(f"rms_ms must be a finite positive number, got {rms_ms!r}")
        self.sample_rate = sample_rate
        self.detector = detector
        self.knee_db = float(knee_db)
        self.rms_ms = float(rms_ms)

    def level_db(self, samples: torch.Tensor) -> torch.Tensor:
        """Return the detected level in dB, (batch, time), of samples (batch, channels, time)."""
        level = detect_level(samples, self.sample_rate, self.detector, self.rms_ms)
        return 20.0 * torch.log10(level.clamp_min(LEVEL_FLOOR))

    def target_reduction(self, level_db: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Return the unsmoothed linear gain reduction r = 1 − 10^(G/20), (batch, time)."""
        parameters = raw_to_parameters(raw)
        gain_db = static_gain_db(
            level_db, parameters["threshold_db"], parameters["ratio"], self.knee_db
        )
        return -torch.expm1(gain_db * (math.log(10.0) / 20.0))

    def coefficients(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the attack and release coefficients α of a raw parameter vector."""
        parameters = raw_to_parameters(raw)
        return (
            smoothing_coefficient(parameters["attack_ms"], self.sample_rate),
            smoothing_coefficient(parameters["release_ms"], self.sample_rate),
        )

    def decisions(self, level_db: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Return the attack/release decisions at raw parameters, (batch, time) bools."""
        alpha_attack, alpha_release = self.coefficients(raw.detach())
        return attack_decisions(
            self.target_reduction(level_db, raw.detach()), alpha_attack, alpha_release
        )

    def apply(
        self,
        samples: torch.Tensor,
        raw: torch.Tensor,
        *,
        level_db: torch.Tensor | None = None,
        attack: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compress samples (batch, channels, time) with raw parameters, differentiably.

        ``level_db`` and ``attack`` may be passed when already known (the
        detector does not depend on the parameters), so that a fit computes
        them once per point.
        """
        return self.trace(samples, raw, level_db=level_db, attack=attack).output

    def trace(
        self,
        samples: torch.Tensor,
        raw: torch.Tensor,
        *,
        level_db: torch.Tensor | None = None,
        attack: torch.Tensor | None = None,
    ) -> CompressorTrace:
        """Compress like :meth:`apply` and also return the level, gain and decisions."""
        if level_db is None:
            level_db = self.level_db(samples)
        reduction = self.target_reduction(level_db, raw)
        alpha_attack, alpha_release = self.coefficients(raw)
        if attack is None:
            attack = attack_decisions(reduction, alpha_attack, alpha_release)
        smoothed = smooth_reduction(reduction, alpha_attack, alpha_release, attack)
        makeup = torch.exp(raw_to_parameters(raw)["makeup_db"] * (math.log(10.0) / 20.0))
        gain = (1.0 - smoothed) * makeup
        output = samples * gain.unsqueeze(-2)
        gain_db = 20.0 * torch.log10((1.0 - smoothed).clamp_min(LEVEL_FLOOR))
        return CompressorTrace(output, level_db, gain_db, attack)

    def process(self, samples: torch.Tensor, settings: CompressorSettings) -> torch.Tensor:
        """Compress samples (batch, channels, time) or (channels, time) with physical settings."""
        if not isinstance(samples, torch.Tensor) or samples.ndim not in (2, 3):
            raise InvalidArgumentError(
                "samples must be a tensor of shape (channels, time) or (batch, channels, time), "
                f"got {_describe(samples)}"
            )
        if not samples.is_floating_point():
            raise InvalidArgumentError(f"samples must be floating point, got {samples.dtype}")
        if not isinstance(settings, CompressorSettings):
            raise InvalidArgumentError(
                f"settings must be CompressorSettings, got {type(settings).__name__}"
            )
        raw = settings.to_raw(samples.dtype).to(samples.device)
        if samples.ndim == 2:
            return self.apply(samples.unsqueeze(0), raw)[0]
        return self.apply(samples, raw)


def _is_number(value: Any) -> bool:
    """True for a real number (also NumPy's), False for bools and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
