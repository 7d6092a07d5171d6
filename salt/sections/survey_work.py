"""The names and contents of a survey's output folder, finished and unfinished.

`SurveyWork` owns OUT_DIR. Until a survey is finished its work lives in OUT_DIR/.survey/:
`settings.json` (what the predicted lines depend on) and one file per predicted line,
`lines/<axis>/<index>.npy` ((2, samples, traces) float16: the probability, which is the mean of
the line's views, and the views' standard deviation, salt.sections.uncertainty), each written
atomically by the rank that predicted it. The set of line files is the progress record: a line
is done exactly when its file exists, so a killed run resumes from the lines already done, and a
line predicted twice (a resume, or the distributed sampler's padding) is the same bytes twice.

Merging (one process, after every line is done) builds the final volumes, indexed
[inline, crossline, sample]: the inline pass is read line by line; the crossline pass is first
gathered into an [inline, crossline, 2, sample] float16 volume (`crossline.npy`, one strided
write per crossline) so that both passes are then read in inline order; the probability is the
mean of the passes given, the uncertainty the standard deviation of all their views
(`combine_passes`), and each line's summed uncertainty is gathered on the way (`LineScores`).
The final files are written under temporary names and renamed into OUT_DIR together at the end,
`summary.json` last: a folder with `summary.json` is finished.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salt.core.errors import SaltError
from salt.core.files import atomic_path, write_json
from salt.sections.cube import AXES, Survey
from salt.sections.paging import PAGE_RELEASE_EVERY, Slices, release_pages
from salt.sections.uncertainty import LineScores, combine_passes

WORK = ".survey"
SETTINGS = "settings.json"
SUMMARY = "summary.json"
PROBABILITY_SEGY, MASK_SEGY = "probability.sgy", "mask.sgy"
PROBABILITY, MASK, TRACES = "probability.npy", "mask.npy", "traces.npy"
UNCERTAINTY_SEGY, UNCERTAINTY = "uncertainty.sgy", "uncertainty.npy"
BODIES_CSV, SLICES_PNG, BODIES_PNG = "bodies.csv", "slices.png", "bodies.png"
LINES_TO_PAINT = "lines_to_paint.csv"
OUTPUTS = (
    PROBABILITY_SEGY,
    MASK_SEGY,
    UNCERTAINTY_SEGY,
    PROBABILITY,
    MASK,
    UNCERTAINTY,
    TRACES,
    BODIES_CSV,
    LINES_TO_PAINT,
    SLICES_PNG,
    BODIES_PNG,
    SUMMARY,
)
# what a line file holds (a settings entry: line files of another layout are not continued)
LINE_FILE = "float16 [probability, views' standard deviation] x samples x traces"
MERGES = ("mean", "max")
# traces.npy: what each (inline, crossline) position of the grid holds
MISSING, LIVE, DEAD = 0, 1, 2


@dataclass
class Merged:
    """The merged volumes (temporary files until the merge's ExitStack closes): `probability`
    (float32), `mask` (uint8 0/1), `uncertainty` (float32), and the uncertainty summed over each
    line (`scores`)."""

    probability: Slices
    mask: Slices
    uncertainty: Slices
    scores: LineScores


class SurveyWork:
    def __init__(self, out_dir) -> None:
        self.out = Path(out_dir)
        self.root = self.out / WORK

    def output(self, name: str) -> Path:
        return self.out / name

    @property
    def finished(self) -> bool:
        return self.output(SUMMARY).is_file()

    def lines_dir(self, axis: str) -> Path:
        return self.root / "lines" / axis

    def line_path(self, axis: str, index: int) -> Path:
        return self.lines_dir(axis) / f"{index:06d}.npy"

    def done(self, axis: str) -> set[int]:
        """The lines of `axis` whose file is complete (temporary files start with a dot)."""
        folder = self.lines_dir(axis)
        if not folder.is_dir():
            return set()
        return {int(p.stem) for p in folder.glob("[0-9]*.npy")}

    def write_line(self, axis: str, index: int, line: np.ndarray) -> None:
        """A line's file: `line`, (2, samples, traces) float16, its probability and its views'
        standard deviation."""
        if line.dtype != np.float16 or line.ndim != 3 or len(line) != 2:
            raise ValueError(
                f"a line is (2, samples, traces) float16, not {line.shape} {line.dtype}"
            )
        with atomic_path(self.line_path(axis, index)) as temporary:
            np.save(temporary, line, allow_pickle=False)

    # -- settings: what the line files were predicted with -------------------------------------
    def conflict(self, settings: dict[str, Any]) -> str | None:
        """What a survey of `settings` would replace here, needing `--overwrite`: a finished
        survey, or an unfinished one predicted with other settings. None for an unfinished one of
        these settings (it is continued, with `--overwrite` or without) or an empty folder."""
        if self.finished:
            return f"holds a finished survey ({SUMMARY}): pass --overwrite to replace it"
        saved = self.read_settings()
        if saved is None or saved == settings:
            return None
        changed = sorted(
            k for k in settings.keys() | saved.keys() if settings.get(k) != saved.get(k)
        )
        return (
            f"holds an unfinished survey predicted with other settings ({', '.join(changed)}): "
            "run it with those, or pass --overwrite to start again"
        )

    def check(self, settings: dict[str, Any], overwrite: bool) -> None:
        """Refuses (one line) what `conflict` names, unless `overwrite`. Reads only: every rank
        calls it before any starts."""
        conflict = self.conflict(settings)
        if conflict is not None and not overwrite:
            raise SaltError(f"{self.out}: {conflict}")

    def start(self, settings: dict[str, Any], overwrite: bool) -> None:
        """The work folder for `settings`: the unfinished one of these settings, continued (with
        `overwrite` too: a preempted `--overwrite` run goes on from its lines), or new, after
        removing a finished survey or one of other settings (`overwrite`: `check` has refused
        them without). One process only."""
        if overwrite and self.conflict(settings) is not None:
            self.remove_outputs()
        for axis in AXES:
            self.lines_dir(axis).mkdir(parents=True, exist_ok=True)
        if self.read_settings() is None:
            write_json(self.root / SETTINGS, settings)

    def read_settings(self) -> dict[str, Any] | None:
        path = self.root / SETTINGS
        return json.loads(path.read_text()) if path.is_file() else None

    def remove_outputs(self) -> None:
        for name in (SUMMARY, *OUTPUTS):  # the mark of a finished survey first
            self.output(name).unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def remove_work(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- merging ---------------------------------------------------------------------------------
    def gather_crosslines(self, shape: tuple[int, int, int]) -> np.ndarray:
        """The crossline pass as an [inline, crossline, 2, sample] float16 memmap in the work
        folder: [..., 0, :] the probability, [..., 1, :] the views' standard deviation."""
        inlines, crosslines, samples = shape
        with atomic_path(self.root / "crossline.npy") as temporary:
            volume = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.float16, shape=(inlines, crosslines, 2, samples)
            )
            for index in range(crosslines):
                line = np.load(self.line_path("crossline", index))  # (2, samples, inlines)
                volume[:, index] = line.transpose(2, 0, 1)
                if index % PAGE_RELEASE_EVERY == PAGE_RELEASE_EVERY - 1:
                    release_pages(volume)
            volume.flush()
            del volume
        return np.load(self.root / "crossline.npy", mmap_mode="r")

    def merge(
        self,
        survey: Survey,
        axes: Sequence[str],
        threshold: float,
        files: ExitStack,
        how: str = "mean",
    ) -> Merged:
        """The volumes, written to temporary files that `files` renames into OUT_DIR when it
        closes: float32 probabilities (the passes' mean, or `how`="max" their maximum; NaN where
        a trace is missing), the uint8 0/1 mask (probability >= threshold) and the float32
        uncertainty (the standard deviation of every view of the passes, whatever `how`; NaN
        where a trace is missing), with each line's summed uncertainty."""
        shape = survey.shape
        missing = [a for a in axes if len(self.done(a)) < survey.line_count(a)]
        if missing:
            raise SaltError(f"{self.out}: lines missing from the {' and '.join(missing)} pass")
        crosslines = self.gather_crosslines(shape) if "crossline" in axes else None
        present = survey.trace_index >= 0

        def memmap(name: str, dtype) -> np.ndarray:
            temporary = files.enter_context(atomic_path(self.output(name)))
            return np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)

        probability = Slices(memmap(PROBABILITY, np.float32))
        mask = Slices(memmap(MASK, np.uint8))
        uncertainty = Slices(memmap(UNCERTAINTY, np.float32))
        scores = LineScores(shape)
        crossline_slices = None if crosslines is None else Slices(crosslines)
        for inline in range(shape[0]):
            passes, spreads = [], []
            if "inline" in axes:
                line = np.load(self.line_path("inline", inline), allow_pickle=False)
                passes.append(line[0].T.astype(np.float32))
                spreads.append(line[1].T)
            if crossline_slices is not None:
                plane = crossline_slices[inline]  # (crosslines, 2, samples)
                passes.append(plane[:, 0].astype(np.float32))
                spreads.append(plane[:, 1])
            if len(passes) == 1:
                merged = passes[0]
            elif how == "max":
                merged = np.maximum(passes[0], passes[1])
            else:
                merged = (passes[0] + passes[1]) / np.float32(2)
            spread = combine_passes(passes, spreads)
            merged[~present[inline]] = np.nan
            spread[~present[inline]] = np.nan
            probability[inline] = merged
            mask[inline] = merged >= threshold
            uncertainty[inline] = spread
            scores.add(inline, spread)
        return Merged(probability, mask, uncertainty, scores)

    def write_traces(self, survey: Survey, dead: np.ndarray, files: ExitStack) -> np.ndarray:
        """The uint8 trace map (MISSING, LIVE, DEAD) of `survey`, written to a temporary file
        that `files` renames into OUT_DIR when it closes."""
        traces = np.where(survey.trace_index >= 0, LIVE, MISSING).astype(np.uint8)
        traces[dead] = DEAD
        np.save(files.enter_context(atomic_path(self.output(TRACES))), traces)
        return traces
