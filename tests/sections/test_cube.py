"""A 3-D SEG-Y survey read from its trace headers (salt.sections.cube): the grid of its line
numbers, the bin size, and the file handle of each process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from salt.core.errors import DataError
from salt.data.synthetic_cube import corner_missing, make_cube, write_segy_cube
from salt.sections.cube import Survey
from salt.sections.lines import LineDataset, one_line
from tests.helpers.runs import REPO_ROOT

segyio = pytest.importorskip("segyio")

SHAPE = (9, 8, 30)
F3 = REPO_ROOT.parent / "shared" / "seismic" / "f3.sgy"


def write_cube(path: Path, shape=SHAPE, inlines=None, crosslines=None, **options) -> np.ndarray:
    amplitude, _ = make_cube(shape, seed=0)
    write_segy_cube(
        path,
        amplitude,
        inline_numbers=range(100, 100 + 2 * shape[0], 2) if inlines is None else inlines,
        crossline_numbers=range(300, 300 + shape[1]) if crosslines is None else crosslines,
        **options,
    )
    return amplitude


def test_a_line_without_traces_keeps_its_place_in_the_grid(tmp_path):
    """Inline 106 (every second number) and crossline 305 hold no trace: each is a row of
    missing traces, and its neighbours stay apart (they were spliced together)."""
    missing = np.zeros(SHAPE[:2], dtype=bool)
    missing[3, :] = missing[:, 5] = True
    amplitude = write_cube(tmp_path / "cube.sgy", missing=missing)
    survey = Survey(tmp_path / "cube.sgy")
    assert survey.shape == SHAPE
    assert list(survey.axes.inlines) == list(range(100, 118, 2))
    assert list(survey.axes.crosslines) == list(range(300, 308))
    assert np.array_equal(survey.trace_index < 0, missing)
    crossline = survey.line("crossline", 4)  # (samples, inlines): inline 106 a zero trace
    assert np.array_equal(crossline[:, ~missing[:, 4]], amplitude[~missing[:, 4], 4].T)
    assert not crossline[:, 3].any()


def test_real_f3_without_an_inline_keeps_its_grid(tmp_path):
    """segyio's F3 crop with inline 122's 18 traces cut out of the file: 23 inlines still."""
    if not F3.is_file():
        pytest.skip(f"{F3} is absent (the real SEG-Y files live in ../shared/seismic)")
    original = Survey(F3)
    row = int(np.flatnonzero(original.axes.inlines == 122)[0])
    kept = np.sort(original.trace_index[np.arange(original.shape[0]) != row].ravel())
    data = F3.read_bytes()
    trace_bytes = (len(data) - 3600) // (original.trace_index.size)
    cut = tmp_path / "f3-without-122.sgy"
    cut.write_bytes(
        data[:3600]
        + b"".join(data[3600 + t * trace_bytes : 3600 + (t + 1) * trace_bytes] for t in kept)
    )
    survey = Survey(cut)
    assert survey.shape == original.shape == (23, 18, 75)
    assert np.array_equal(survey.axes.inlines, original.axes.inlines)
    assert (survey.trace_index[row] == -1).all()
    for inline in (row - 1, row + 1):  # the neighbours read the traces they read before
        assert np.array_equal(survey.line("inline", inline), original.line("inline", inline))
    assert survey.axes.bin_size == pytest.approx(original.axes.bin_size, rel=1e-9)


def test_line_numbers_without_a_regular_increment_are_refused(tmp_path):
    write_cube(tmp_path / "cube.sgy", shape=(5, 4, 20), inlines=[100, 105, 110, 113, 115])
    with pytest.raises(DataError) as error:
        Survey(tmp_path / "cube.sgy")
    assert str(error.value) == (
        f"{tmp_path / 'cube.sgy'}: inline numbers have no regular increment: most are 5 apart, "
        "but 113 is not 100 + a multiple of 5"
    )


def stretch_northing(path: Path, factor: int) -> None:
    """Every trace's CDP_Y moved `factor` times as far from the first trace's."""
    with segyio.open(str(path), "r+", ignore_geometry=True) as f:
        origin = f.header[0][segyio.TraceField.CDP_Y]
        for header in f.header:
            northing = header[segyio.TraceField.CDP_Y]
            header[segyio.TraceField.CDP_Y] = origin + factor * (northing - origin)


@pytest.mark.parametrize("missing_crossline", [False, True])
def test_the_bin_size_is_measured_along_each_axis_whatever_the_outline(tmp_path, missing_crossline):
    """Inlines 50 m apart, crosslines 25 m; the survey's first corner cut off, so that its
    corner traces are not in line with each other; and then also a crossline without traces."""
    missing = np.flip(corner_missing(SHAPE[:2], 0.3))  # the first inlines' first crosslines
    missing[:, 6] = missing_crossline
    assert missing[0, 0] and not missing[-1, -1]
    write_cube(tmp_path / "cube.sgy", missing=missing, bin_size_m=25.0)
    stretch_northing(tmp_path / "cube.sgy", 2)  # inlines lie along the northing
    assert Survey(tmp_path / "cube.sgy").axes.bin_size == pytest.approx((50.0, 25.0), rel=1e-6)


def open_file_offsets(path: Path) -> dict[int, int]:
    """This process's file descriptors open on `path`, and the file offset of each."""
    offsets = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target == str(path.resolve()):
            offsets[int(name)] = os.lseek(int(name), 0, os.SEEK_CUR)
    return offsets


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd; fork")
def test_data_loader_workers_read_through_their_own_file_offset(tmp_path):
    """segyio reads a trace by a seek and then a read. A worker (a fork) reading through the
    handle its parent opened moves the file offset that the parent and every other worker share,
    so that one process's read can land where another's seek put the offset."""
    amplitude = write_cube(tmp_path / "cube.sgy")
    survey = Survey(tmp_path / "cube.sgy")
    scaling = survey.scaling()  # the parent's handle opened, as salt.survey opens it
    survey.line("inline", 0)  # the parent's offset near the start; the workers end near the end
    offsets = open_file_offsets(tmp_path / "cube.sgy")
    assert len(offsets) == 1
    lines = [("inline", i) for i in range(SHAPE[0])] + [("crossline", x) for x in range(SHAPE[1])]
    loader = DataLoader(
        LineDataset(survey, lines, scaling),
        batch_size=1,
        collate_fn=one_line,
        num_workers=2,
        multiprocessing_context="fork",
    )
    for item in loader:
        index = item["index"]
        expected = amplitude[index] if item["axis"] == "inline" else amplitude[:, index]
        assert np.array_equal(item["image"], scaling(expected.T))
    assert open_file_offsets(tmp_path / "cube.sgy") == offsets
