"""A 3-D post-stack SEG-Y survey read line by line: its geometry, its lines and their scaling.

The geometry is read from every trace's header (inline and crossline numbers, bytes 189 and 193,
and the CDP coordinates), not assumed from the file's sorting, so that an irregular survey (traces
missing from the inline x crossline grid) keeps every trace at its own place: `trace_index[i, x]`
is the trace at the i-th inline and x-th crossline, -1 where there is none. The grid is regular:
its inline (crossline) numbers run from the first to the last present, every most common step
between them, so that a line with no trace at all keeps its place as a row of missing traces
instead of closing up (a numbering off that step is refused). A line is read as a (samples,
traces) section with zeros where a trace is missing, through segyio's reads (a seek and a read
per trace: the file is not memory-mapped); a line of evenly spaced traces (every inline and
crossline of a sorted survey) is one strided read.

`ArrayCube` reads a 3-D .npy volume the same way (lines numbered from 0), and `open_cube` opens
either by the file's suffix; both scale amplitudes with `traces_scaling`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from salt.core.errors import DataError
from salt.sections.axes import CubeAxes
from salt.sections.seismic import SAMPLE_VALUES, SEGY_SUFFIXES, Scaling, load_npy, scaling_for

AXES = ("inline", "crossline")
ENDIANS = ("big", "little")
TRACE_CHUNK = 512  # traces read or written at a time in a pass over the whole file (a few MiB)


def import_segyio(path: Path):
    try:
        import segyio
    except ImportError:
        raise DataError(
            path, "reading SEG-Y needs segyio: pip install 'tgs-salt[section]'"
        ) from None
    return segyio


def open_segy(path: Path):
    """segyio's handle on `path` without its geometry, big-endian or else little-endian."""
    segyio = import_segyio(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    problem = ""
    for endian in ENDIANS:
        try:
            handle = segyio.open(str(path), "r", ignore_geometry=True, endian=endian)
        except Exception as error:  # segyio raises RuntimeError, OSError, ValueError
            problem = problem or str(error)
            continue
        return handle, endian
    raise DataError(path, f"not a readable SEG-Y file ({problem})")


def trace_coordinates(segyio, handle, traces: np.ndarray) -> np.ndarray:
    """(len(traces), 2) CDP x and y of `traces` in metres (the headers' coordinate scalar applied)."""
    field = segyio.TraceField
    xy = np.stack(
        [
            np.asarray(handle.attributes(f)[traces], dtype=np.float64)
            for f in (field.CDP_X, field.CDP_Y)
        ],
        axis=1,
    )
    scalar = np.asarray(handle.attributes(field.SourceGroupScalar)[traces], dtype=np.float64)
    factor = np.ones_like(scalar)  # a scalar of 0 means 1; a negative one divides
    factor[scalar > 0] = scalar[scalar > 0]
    factor[scalar < 0] = -1 / scalar[scalar < 0]
    return xy * factor[:, None]


def bin_size(segyio, handle, trace_index: np.ndarray) -> tuple[float, float] | None:
    """Metres between neighbouring inlines and between neighbouring crosslines: along each axis,
    the median distance per grid step between consecutive live traces of one line (the line of
    that direction with the most traces), so that an irregular outline or a missing trace or line
    does not mix the other axis's offset in; None where the headers hold no coordinates."""
    present = trace_index >= 0
    spacing = []
    for axis in (0, 1):
        # along axis 0 (the inline spacing) runs a crossline, along axis 1 an inline
        fullest = int(np.argmax(present.sum(axis=axis)))
        line = trace_index[:, fullest] if axis == 0 else trace_index[fullest]
        positions = np.flatnonzero(line >= 0)
        if len(positions) < 2:
            return None
        xy = trace_coordinates(segyio, handle, line[positions])
        if not np.any(xy):
            return None
        steps = np.linalg.norm(np.diff(xy, axis=0), axis=1) / np.diff(positions)
        spacing.append(float(np.median(steps)))
    return (spacing[0], spacing[1]) if all(spacing) else None


def regular_numbers(path: Path, which: str, present: np.ndarray) -> np.ndarray:
    """The line numbers of the grid, from `present` (sorted, unique): from the first to the last,
    every most common step between neighbours (the smallest of equally common ones), so that a
    line without a trace keeps its place. A number off that step is refused."""
    if len(present) < 2:
        return present
    steps, counts = np.unique(np.diff(present), return_counts=True)
    step = int(steps[np.argmax(counts)])
    off = present[(present - present[0]) % step != 0]
    if len(off):
        raise DataError(
            path,
            f"{which} numbers have no regular increment: most are {step} apart, but {off[0]} "
            f"is not {present[0]} + a multiple of {step}",
        )
    return np.arange(present[0], present[-1] + 1, step, dtype=np.int64)


class Survey:
    """A 3-D SEG-Y survey: `axes` (CubeAxes), `trace_index` (inline x crossline -> trace, -1 for
    a missing trace), and its lines. Each process reads through a handle of its own, opened on
    its first read: one pickled (spawned) starts without one, and one forked (a DataLoader worker)
    opens its own instead of the parent's, whose file offset it would share.
    """

    def __init__(self, path, vertical: str = "time") -> None:
        self.path = Path(path)
        handle, self.endian = open_segy(self.path)
        try:
            self.trace_index, inlines, crosslines = self.read_grid(handle)
            self.axes = CubeAxes(
                inlines=inlines,
                crosslines=crosslines,
                samples=np.asarray(handle.samples, dtype=np.float64),
                vertical=vertical,
                bin_size=bin_size(import_segyio(self.path), handle, self.trace_index),
            )
            self.sample_format = int(handle.format) if handle.format is not None else 0
        finally:
            handle.close()
        self._handle = None
        self._handle_pid = 0
        self._inherited: list = []

    def read_grid(self, handle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        segyio = import_segyio(self.path)
        if handle.tracecount == 0:
            raise DataError(self.path, "no traces")
        numbers = [
            np.asarray(handle.attributes(field)[:], dtype=np.int64)
            for field in (segyio.TraceField.INLINE_3D, segyio.TraceField.CROSSLINE_3D)
        ]
        present = [np.unique(n) for n in numbers]
        if len(present[0]) == 1 or len(present[1]) == 1:
            if len(present[0]) == 1 and len(present[1]) == 1:
                what = "no inline/crossline numbers in its trace headers (bytes 189, 193)"
            else:
                which = "inline" if len(present[0]) == 1 else "crossline"
                what = f"one {which} only"
            raise DataError(
                self.path,
                f"a 2-D line, not a 3-D survey ({what}): predict it with python -m salt.section",
            )
        inlines, crosslines = (
            regular_numbers(self.path, axis, p) for axis, p in zip(AXES, present)
        )
        rows, columns = (
            (n - grid[0]) // (grid[1] - grid[0]) for n, grid in zip(numbers, (inlines, crosslines))
        )
        trace_index = np.full((len(inlines), len(crosslines)), -1, dtype=np.int64)
        trace_index[rows, columns] = np.arange(handle.tracecount)
        placed = np.count_nonzero(trace_index >= 0)
        if placed != handle.tracecount:
            raise DataError(
                self.path,
                f"{handle.tracecount - placed} traces repeat an inline/crossline pair "
                "already taken by another trace",
            )
        return trace_index, inlines, crosslines

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None, "_handle_pid": 0, "_inherited": []}

    def close(self) -> None:
        self._set_aside_inherited()
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _set_aside_inherited(self) -> None:
        if self._handle is not None and self._handle_pid != os.getpid():
            # inherited across a fork: it shares the parent's file offset, and segyio reads by a
            # seek then a read; closing it would move that offset too, so it is only set aside
            self._inherited.append(self._handle)
            self._handle = None

    @property
    def handle(self):
        """This process's segyio handle on the file."""
        self._set_aside_inherited()
        if self._handle is None:
            self._handle = open_segy(self.path)[0]
            self._handle_pid = os.getpid()
        return self._handle

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.axes.shape

    def line_count(self, axis: str) -> int:
        return self.shape[AXES.index(axis)]

    def line_traces(self, axis: str, index: int) -> np.ndarray:
        """The trace numbers along one line (-1 where a trace is missing)."""
        return self.trace_index[index] if axis == "inline" else self.trace_index[:, index]

    def read_traces(self, traces: np.ndarray) -> np.ndarray:
        """(len(traces), samples) float32 amplitudes; zeros for the -1 entries."""
        out = np.zeros((len(traces), self.shape[2]), dtype=np.float32)
        live = np.flatnonzero(traces >= 0)
        if len(live) == 0:
            return out
        numbers = traces[live]
        steps = np.diff(numbers)
        if len(numbers) == 1 or (steps[0] > 0 and np.all(steps == steps[0])):
            step = int(steps[0]) if len(numbers) > 1 else 1
            read = self.handle.trace.raw[int(numbers[0]) : int(numbers[-1]) + 1 : step]
            out[live] = np.asarray(read, dtype=np.float32).reshape(len(numbers), -1)
        else:
            for row, number in zip(live, numbers):
                out[row] = self.handle.trace.raw[int(number)]
        return out

    def line(self, axis: str, index: int) -> np.ndarray:
        """One inline (crossline x sample) or crossline (inline x sample) as a (samples, traces)
        float32 section, like the sections salt.section reads; zeros where a trace is missing."""
        return np.ascontiguousarray(self.read_traces(self.line_traces(axis, index)).T)

    def trace_chunks(self):
        """(first trace number, (traces, samples) amplitudes) for every trace, in file order,
        `TRACE_CHUNK` traces at a time."""
        count = self.handle.tracecount
        for start in range(0, count, TRACE_CHUNK):
            stop = min(start + TRACE_CHUNK, count)
            yield (
                start,
                np.asarray(self.handle.trace.raw[start:stop], dtype=np.float32).reshape(
                    stop - start, -1
                ),
            )

    def trace_locations(self) -> np.ndarray:
        """(traces, 2): the (inline index, crossline index) of every trace, in file order."""
        present = self.trace_index >= 0
        locations = np.empty((int(present.sum()), 2), dtype=np.int64)
        locations[self.trace_index[present]] = np.argwhere(present)
        return locations

    def scan_traces(self, sample: int) -> tuple[np.ndarray, np.ndarray]:
        """One read of every trace: (dead, amplitudes), both (inlines, crosslines): the traces
        present but all zeros, and each trace's amplitude at `sample` (0 where missing)."""
        dead = np.zeros(self.shape[:2], dtype=bool)
        amplitudes = np.zeros(self.shape[:2], dtype=np.float32)
        locations = self.trace_locations()
        for start, chunk in self.trace_chunks():
            rows = locations[start : start + len(chunk)]
            dead[rows[:, 0], rows[:, 1]] = ~np.any(chunk, axis=1)
            amplitudes[rows[:, 0], rows[:, 1]] = chunk[:, sample]
        return dead, amplitudes

    def scaling(self, percentile: float = 99.0) -> Scaling:
        """One amplitude scaling for the whole survey: `traces_scaling` over its traces."""
        live = np.sort(self.trace_index[self.trace_index >= 0])
        return traces_scaling(
            live, self.shape[2], lambda trace: self.handle.trace.raw[trace], np.float32, percentile
        )


def traces_scaling(
    traces: np.ndarray,
    samples: int,
    read: Callable[[int], np.ndarray],
    dtype: npt.DTypeLike,
    percentile: float = 99.0,
) -> Scaling:
    """One amplitude scaling for a whole cube: salt.sections.seismic's, on evenly spaced
    `traces` (their numbers, each `read` as `samples` values of `dtype`; at most ~4 million
    values), the dead (all-zero) ones left out."""
    step = max(1, math.ceil(len(traces) * samples / SAMPLE_VALUES))
    sample = np.empty((len(traces[::step]), samples), dtype=dtype)
    rows = 0  # the live traces read so far; a dead one is overwritten by the next
    for trace in traces[::step]:
        sample[rows] = read(int(trace))
        rows += bool(sample[rows].any())
    if rows == 0:
        return Scaling(-1.0, 1.0)
    return scaling_for(sample[:rows], percentile)  # a view: one sample in memory


class ArrayCube:
    """A 3-D .npy volume indexed [inline, crossline, sample] (memory-mapped), read as a survey
    is: its lines and one scaling for the whole cube (`traces_scaling`, as `Survey.scaling`).
    It has no headers: lines are numbered from 0, samples counted in samples."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "no such file")
        self.volume = load_npy(self.path)
        if self.volume.ndim != 3 or 0 in self.volume.shape:
            raise DataError(
                self.path,
                "expected a 3-D cube [inline, crossline, sample], "
                f"got an array of shape {self.volume.shape}",
            )
        if not np.issubdtype(self.volume.dtype, np.number) or np.iscomplexobj(self.volume):
            raise DataError(self.path, f"expected real numbers, got dtype {self.volume.dtype}")
        inlines, crosslines, samples = self.volume.shape
        self.axes = CubeAxes(
            inlines=np.arange(inlines, dtype=np.int64),
            crosslines=np.arange(crosslines, dtype=np.int64),
            samples=np.arange(samples, dtype=np.float64),
        )
        self.trace_index = np.arange(inlines * crosslines, dtype=np.int64).reshape(
            inlines, crosslines
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.axes.shape

    def line_count(self, axis: str) -> int:
        return self.shape[AXES.index(axis)]

    def line(self, axis: str, index: int) -> np.ndarray:
        """One line as a (samples, traces) float32 section, as `Survey.line` reads one."""
        traces = self.volume[index] if axis == "inline" else self.volume[:, index]
        return np.ascontiguousarray(np.asarray(traces, dtype=np.float32).T)

    def scaling(self, percentile: float = 99.0) -> Scaling:
        crosslines = self.shape[1]
        return traces_scaling(
            self.trace_index.ravel(),
            self.shape[2],
            lambda trace: self.volume[trace // crosslines, trace % crosslines],
            self.volume.dtype,
            percentile,
        )

    def close(self) -> None:
        pass


def open_cube(path, vertical: str = "time") -> Survey | ArrayCube:
    """A 3-D SEG-Y survey (`Survey`) or a 3-D .npy cube (`ArrayCube`), by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in SEGY_SUFFIXES:
        return Survey(path, vertical=vertical)
    if suffix == ".npy":
        return ArrayCube(path)
    raise DataError(path, "expected a 3-D SEG-Y file (.sgy, .segy) or a 3-D .npy cube")
