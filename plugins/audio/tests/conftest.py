"""Short test signals shared by the audio plugin's tests; torch runs on one thread."""

from __future__ import annotations

import torch
from hessframe_audio.io import Audio

torch.set_num_threads(1)

SAMPLE_RATE = 44100


def varied_level_signal(
    seconds: float = 0.5, channels: int = 1, seed: int = 0, sample_rate: int = SAMPLE_RATE
) -> Audio:
    """Return a tone plus noise whose level jumps between -40 and -2 dBFS every 25 ms.

    Levels that cover the threshold region make every compressor parameter
    identifiable from the output.
    """
    generator = torch.Generator().manual_seed(seed)
    length = int(seconds * sample_rate)
    segment = sample_rate // 40
    levels_db = torch.empty(length // segment + 2, dtype=torch.float64).uniform_(
        -40, -2, generator=generator
    )
    envelope = 10 ** (levels_db.repeat_interleave(segment)[:length] / 20)
    time = torch.arange(length, dtype=torch.float64) / sample_rate
    rows = []
    for channel in range(channels):
        noise = torch.randn(length, generator=generator, dtype=torch.float64).clamp(-2.5, 2.5)
        tone = torch.sin(2 * torch.pi * (180 + 40 * channel) * time)
        rows.append(envelope * (0.6 * tone + 0.4 * noise / 2.5))
    return Audio(torch.stack(rows).to(torch.float32), sample_rate, "varied-level signal")
