"""The uncertainty of a survey (the standard deviation of every view of both passes, streamed as
each pass's mean and deviation) and the lines it suggests painting next."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from salt.sections.axes import CubeAxes
from salt.sections.uncertainty import (
    LINES_TO_PAINT_COLUMNS,
    LineScores,
    Pick,
    combine_passes,
    rank_lines,
    view_statistics,
    write_lines_to_paint,
)


def stored(values: np.ndarray) -> np.ndarray:
    """As a line file holds it: float16."""
    return np.asarray(values).astype(np.float16)


def test_the_passes_combine_to_the_deviation_of_every_view():
    """Each pass summarised by its views' mean and deviation gives the deviation of all the
    views together (the law of total variance), not the mean of the passes' deviations."""
    rng = np.random.default_rng(0)
    inline_views, crossline_views = rng.random((2, 4, 6, 5), dtype=np.float32)
    crossline_views = crossline_views * 0.5  # the passes disagree too
    summaries = [view_statistics(views) for views in (inline_views, crossline_views)]
    for (mean, deviation), views in zip(summaries, (inline_views, crossline_views)):
        np.testing.assert_allclose(mean, views.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(deviation, views.std(axis=0), rtol=1e-5)
    combined = combine_passes([s[0] for s in summaries], [s[1] for s in summaries])
    every_view = np.concatenate([inline_views, crossline_views])
    assert combined.dtype == np.float32 and combined.shape == (6, 5)
    np.testing.assert_allclose(combined, every_view.std(axis=0), rtol=1e-5)
    within = np.sqrt((summaries[0][1] ** 2 + summaries[1][1] ** 2) / 2)
    assert (combined > within + 1e-3).any()  # the passes' disagreement is in it
    # one pass: its views' deviation, as it is
    np.testing.assert_array_equal(
        combine_passes([summaries[0][0]], [summaries[0][1]]), summaries[0][1]
    )


def test_the_uncertainty_is_zero_where_every_view_agrees_and_grows_with_disagreement():
    """Views 0.5 - d and 0.5 + d in one pass, the other pass the same or shifted by `shift`:
    0 exactly where d = shift = 0 (also through the float16 line files), d alone within a pass,
    and growing with d and with the shift."""
    spread = np.array([0.0, 0.05, 0.1, 0.2, 0.4], dtype=np.float32)
    views = np.stack([0.5 - spread, 0.5 + spread])  # (2 views, 5 voxels)
    mean, deviation = view_statistics(views)
    np.testing.assert_allclose(deviation, spread, rtol=1e-6)
    assert deviation[0] == 0
    same = combine_passes([stored(mean)] * 2, [stored(deviation)] * 2)
    assert same[0] == 0 and (np.diff(same) > 0).all()
    np.testing.assert_allclose(same, spread, rtol=1e-3)
    for shift in (0.0, 0.1, 0.3):  # the crossline pass: every view shifted
        shifted = view_statistics(views + shift)
        both = combine_passes(
            [stored(mean), stored(shifted[0])], [stored(deviation), stored(shifted[1])]
        )
        np.testing.assert_allclose(
            both, np.sqrt(spread**2 + (shift / 2) ** 2), rtol=1e-3, atol=1e-4
        )
    equal = view_statistics(np.full((4, 3), 0.3, dtype=np.float32))
    assert (equal[1] == 0).all()


def test_line_scores_sum_the_uncertainty_over_each_line_missing_traces_as_zero():
    rng = np.random.default_rng(1)
    volume = rng.random((4, 3, 5)).astype(np.float32)
    volume[1, 2] = np.nan  # a missing trace
    scores = LineScores(volume.shape)
    for inline, plane in enumerate(volume):
        scores.add(inline, plane)
    values = volume.astype(np.float64)  # summed in float64
    np.testing.assert_allclose(scores.scores["inline"], np.nansum(values, axis=(1, 2)))
    np.testing.assert_allclose(scores.scores["crossline"], np.nansum(values, axis=(0, 2)))
    assert scores.total == pytest.approx(np.nansum(volume)) and scores.max == np.nanmax(volume)


def test_the_ranking_prefers_uncertain_lines_and_spreads_its_picks():
    scores = {
        "inline": np.array([1.0, 2, 9, 8, 7, 1, 1, 1, 6, 1]),
        "crossline": np.array([5.0, 0, 0]),
    }
    # no spreading (spacing 1): the highest scores, in order
    assert [(p.axis, p.index) for p in rank_lines(scores, 4, spacing=1)] == [
        ("inline", 2),
        ("inline", 3),
        ("inline", 4),
        ("inline", 8),
    ]
    # spacing 3: inline 2's neighbours weigh 1/3 (inline 3: 8/3) and 2/3 (inline 4: 14/3), so
    # inline 8 and crossline 0 come before inline 4; inline 3, down-weighted by inline 2 and 4
    # (8/9), still before inline 1 (2/3) and the lines near inline 8 (below 2/3)
    picks = rank_lines(scores, 5, spacing=3)
    assert [(p.axis, p.index) for p in picks] == [
        ("inline", 2),
        ("inline", 8),
        ("crossline", 0),
        ("inline", 4),
        ("inline", 3),
    ]
    assert picks[0] == Pick(1, "inline", 2, 9.0, 9.0)
    assert picks[3].score == 7 and picks[3].weighted_score == pytest.approx(14 / 3)
    assert picks[4].score == 8 and picks[4].weighted_score == pytest.approx(8 / 9)
    weighted = [p.weighted_score for p in picks]
    assert weighted == sorted(weighted, reverse=True) and [p.rank for p in picks] == [1, 2, 3, 4, 5]
    # lines without uncertainty are never suggested: fewer picks than asked
    assert len(rank_lines(scores, 100, spacing=1)) == 11
    assert rank_lines({"inline": np.zeros(4)}, 3, spacing=2) == []
    # ties: the first axis given, then the lower index
    tied = rank_lines({"inline": np.array([0.0, 3.0]), "crossline": np.array([3.0])}, 2, 1)
    assert [(p.axis, p.index) for p in tied] == [("inline", 1), ("crossline", 0)]
    with pytest.raises(ValueError, match="spacing must be at least 1"):
        rank_lines(scores, 3, spacing=0)


def test_lines_to_paint_csv_names_lines_by_their_numbers(tmp_path):
    axes = CubeAxes(np.arange(100, 110, 2), np.arange(300, 303), np.arange(0.0, 40.0, 4.0))
    picks = [Pick(1, "crossline", 2, 12.3456789, 12.3456789), Pick(2, "inline", 3, 5.0, 2.5)]
    path = write_lines_to_paint(tmp_path / "lines_to_paint.csv", picks, axes)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        list(LINES_TO_PAINT_COLUMNS),
        ["1", "crossline", "302", "2", "12.3457", "12.3457"],
        ["2", "inline", "106", "3", "5", "2.5"],
    ]
