"""Where the nets disagree, and which lines to paint next.

**The uncertainty** of a voxel is the standard deviation of the salt probabilities of every view
that predicted it: each (checkpoint, TTA view) pair of the ensemble, on the inline through the
voxel and on the crossline through it (2 x checkpoints x TTA views with both `--axes`;
checkpoints x TTA views with one). A view's probability is its own tiles blended as the
probability's are (salt.sections.stitch), so the views' mean is the survey's probability (with
`--merge mean`). The deviation is the population one (over the views, not views - 1): 0 where
every view says the same, at most 0.5 (half the views say 0, half say 1).

Why the standard deviation: it is in the probability's units, and it is exactly the sum of its
parts, so it streams: each line file keeps, beside the views' mean m_p, their standard deviation
s_p (`view_statistics`, over the views held in memory for a strip of tiles); the survey's
deviation over the views of P passes (the same number of views each) is then
sqrt(mean_p s_p^2 + mean_p (m_p - mean(m))^2) (`combine_passes`: the law of total variance, the
spread within the passes plus the spread between them), for two passes
sqrt((s_inline^2 + s_crossline^2) / 2 + ((m_inline - m_crossline) / 2)^2). Kept as the mean and
the mean of squares instead, the float16 line files could not bring an agreement back to 0
(E[p^2] - E[p]^2 cancels); a mean absolute deviation does not combine from per-pass summaries at
all (it needs every view's value).

**The lines to paint next** (`rank_lines`): a line's score is the sum of the uncertainty over its
voxels (`LineScores`: missing traces count 0; a sum rather than a mean, since painting a line
labels all of its voxels, so a longer line as uncertain teaches more). The views disagree most
where their probabilities straddle 0.5, along the predicted salt boundaries and over bodies some
views miss, so no separate boundary weight is added. Lines are picked greedily, the highest
weighted score first (it starts as the score); after each pick the weighted score of every line
of the same axis at a distance d < `spacing` lines is multiplied by d / `spacing`, so that the
picks spread out instead of crowding around one uncertain body (a crossing line, which shares a
single trace with the pick, is left as it is). Lines whose weighted score is 0 are never picked.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from salt.core.files import atomic_open
from salt.sections.axes import CubeAxes

LINES_TO_PAINT_COLUMNS = ("rank", "axis", "line", "index", "score", "weighted_score")


def view_statistics(views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) over axis 0 of `views` (V, ...): the V views' probabilities
    of one pass, float32. The deviation is 0 where the views are equal."""
    views = np.asarray(views, dtype=np.float32)
    mean = views.mean(axis=0)
    return mean, np.sqrt(np.square(views - mean).mean(axis=0))


def combine_passes(means: Sequence[np.ndarray], spreads: Sequence[np.ndarray]) -> np.ndarray:
    """The standard deviation over the views of every pass, float32, from each pass's views'
    mean and standard deviation (`view_statistics`; each pass with as many views):
    sqrt(mean_p spread_p^2 + mean_p (mean_p - mean of the means)^2)."""
    if not means or len(means) != len(spreads):
        raise ValueError("expected a mean and a spread for each of one or more passes")
    centres = [np.asarray(m, dtype=np.float32) for m in means]
    centre = sum(centres[1:], centres[0]) / np.float32(len(centres))
    variance = np.zeros(np.shape(centre), dtype=np.float32)
    for mean, spread in zip(centres, spreads):
        variance += np.square(np.asarray(spread, dtype=np.float32)) + np.square(mean - centre)
    return np.sqrt(variance / np.float32(len(centres)))


class LineScores:
    """The uncertainty summed over each inline and each crossline of a volume of `shape`,
    gathered one inline (crossline x sample plane) at a time, in float64 (NaN, a missing trace,
    counts 0); its `total` over the volume and its `max`."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self.scores = {"inline": np.zeros(shape[0]), "crossline": np.zeros(shape[1])}
        self.total = 0.0
        self.max = 0.0

    def add(self, inline: int, plane: np.ndarray) -> None:
        values = np.nan_to_num(np.asarray(plane, dtype=np.float64), nan=0.0)
        per_crossline = values.sum(axis=1)
        self.scores["inline"][inline] = per_crossline.sum()
        self.scores["crossline"] += per_crossline
        self.total += float(self.scores["inline"][inline])
        self.max = max(self.max, float(values.max(initial=0.0)))


@dataclass(frozen=True)
class Pick:
    """A line to paint: its `rank` (1 = first), `axis`, `index` along that axis, `score` (its
    summed uncertainty) and `weighted_score` (the score down-weighted by the picks before it,
    what it was picked by)."""

    rank: int
    axis: str
    index: int
    score: float
    weighted_score: float


def rank_lines(scores: Mapping[str, np.ndarray], count: int, spacing: int) -> list[Pick]:
    """The `count` lines to paint next from the per-line `scores` of each axis (the order of
    `scores` breaks ties, then the lower index): greedily the highest weighted score, each pick
    multiplying the weighted score of the lines of its axis at distance d < `spacing` by
    d / `spacing`; fewer where fewer lines have a weighted score above 0."""
    if spacing < 1:
        raise ValueError(f"spacing must be at least 1 line, got {spacing}")
    weighted = {
        axis: np.asarray(values, dtype=np.float64).copy() for axis, values in scores.items()
    }
    picks: list[Pick] = []
    while len(picks) < count:
        best = None
        for axis, values in weighted.items():
            if len(values) == 0:
                continue
            index = int(np.argmax(values))
            if values[index] > 0 and (best is None or values[index] > best[2]):
                best = (axis, index, float(values[index]))
        if best is None:
            break
        axis, index, value = best
        picks.append(Pick(len(picks) + 1, axis, index, float(scores[axis][index]), value))
        values = weighted[axis]
        near = np.arange(max(0, index - spacing + 1), min(len(values), index + spacing))
        values[near] *= np.abs(near - index) / spacing  # 0 on the pick itself
    return picks


def write_lines_to_paint(path, picks: Sequence[Pick], axes: CubeAxes) -> Path:
    """`picks` as a CSV at `path`, written atomically: rank, axis, line (its number in the
    headers), index (0-based along its axis), score, weighted_score (6 significant digits)."""
    numbers = {"inline": axes.inlines, "crossline": axes.crosslines}
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LINES_TO_PAINT_COLUMNS)
        for pick in picks:
            writer.writerow(
                [
                    pick.rank,
                    pick.axis,
                    int(numbers[pick.axis][pick.index]),
                    pick.index,
                    f"{pick.score:.6g}",
                    f"{pick.weighted_score:.6g}",
                ]
            )
    return Path(path)
