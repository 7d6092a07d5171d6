"""The three axes of a 3-D survey, in the units its SEG-Y headers give.

A survey volume is indexed `[inline, crossline, sample]`: axis 0 runs over the inline numbers,
axis 1 over the crossline numbers, axis 2 down the trace (time or depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERTICAL_UNITS = {"time": "ms", "depth": "m"}


@dataclass(frozen=True)
class CubeAxes:
    """`inlines`, `crosslines`: the line numbers along axes 0 and 1 (increasing); `samples`: the
    vertical value of each sample (ms for time, m for depth: SEG-Y's sample interval and delay);
    `vertical`: "time" or "depth"; `bin_size`: the distance in metres between neighbouring inlines
    and between neighbouring crosslines, from the trace coordinates, or None where the headers
    carry no coordinates."""

    inlines: np.ndarray
    crosslines: np.ndarray
    samples: np.ndarray
    vertical: str = "time"
    bin_size: tuple[float, float] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.inlines), len(self.crosslines), len(self.samples)

    @property
    def vertical_unit(self) -> str:
        return VERTICAL_UNITS[self.vertical]

    @property
    def sample_interval(self) -> float:
        return float(self.samples[1] - self.samples[0]) if len(self.samples) > 1 else 1.0
