"""Sound matching of a dynamic range compressor for hessframe.

A differentiable feed-forward compressor whose attack/release smoothing runs
as a parallel associative scan, fitted to a target recording by
Newton-Raphson with Hessians from the core's curvature providers, and
exported as JSON, VST3 or VST2 presets.

    from hessframe_audio import match, read_audio, align_pair

    audio, target = align_pair(read_audio("dry.wav"), read_audio("wet.wav"))
    result = match(audio, target, hessian="gauss-newton")
    print(result.settings, result.esr)
"""

from hessframe_audio.compressor import Compressor, CompressorSettings
from hessframe_audio.export import read_settings, write_settings
from hessframe_audio.io import Audio, align_pair, read_audio, write_audio
from hessframe_audio.match import HESSIANS, MatchResult, adam, match, match_sweep, newton_raphson
from hessframe_audio.scan import linear_recurrence

__version__ = "0.1.0"

__all__ = [
    "HESSIANS",
    "Audio",
    "Compressor",
    "CompressorSettings",
    "MatchResult",
    "__version__",
    "adam",
    "align_pair",
    "linear_recurrence",
    "match",
    "match_sweep",
    "newton_raphson",
    "read_audio",
    "read_settings",
    "write_audio",
    "write_settings",
]
