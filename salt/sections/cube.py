"""A 3-D post-stack SEG-Y survey read line by line: its geometry, its lines and their scaling.

The geometry is read from every trace's header (inline and crossline numbers, bytes 189 and 193,
and the CDP coordinates), not assumed from the file's sorting, so that an irregular survey (traces
missing from the inline x crossline grid) keeps every trace at its own place: `trace_index[i, x]`
is the trace at the i-th inline and x-th crossline, -1 where there is none. A line is read as a
(samples, traces) section with zeros where a trace is missing; segyio memory-maps the file where
it can, and a line of evenly spaced traces (every inline and crossline of a sorted survey) is one
strided read.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from salt.core.errors import DataError
from salt.sections.axes import CubeAxes
from salt.sections.seismic import SAMPLE_VALUES, Scaling, scaling_for

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


def bin_size(segyio, handle, trace_index: np.ndarray) -> tuple[float, float] | None:
    """Metres between neighbouring inlines and between neighbouring crosslines, from the CDP
    coordinates of the survey's corner traces; None where the headers hold no coordinates."""
    live = np.argwhere(trace_index >= 0)
    if len(live) < 2:
        return None
    corners = [live[0], live[np.argmax(live[:, 0])], live[np.argmax(live[:, 1])]]
    field = segyio.TraceField
    xy = []
    for inline, crossline in corners:
        header = handle.header[int(trace_index[inline, crossline])]
        scalar = header[field.SourceGroupScalar] or 1
        factor = 1 / -scalar if scalar < 0 else scalar
        xy.append(np.array([header[field.CDP_X], header[field.CDP_Y]], dtype=np.float64) * factor)
    if not np.any(xy[0]) and not np.any(xy[1]) and not np.any(xy[2]):
        return None
    spacing = []
    for corner, axis in ((xy[1], 0), (xy[2], 1)):
        steps = abs(int(corners[1 + axis][axis] - corners[0][axis]))
        spacing.append(float(np.linalg.norm(corner - xy[0]) / steps) if steps else 0.0)
    return (spacing[0], spacing[1]) if all(spacing) else None


class Survey:
    """A 3-D SEG-Y survey: `axes` (CubeAxes), `trace_index` (inline x crossline -> trace, -1 for
    a missing trace), and its lines. Picklable: each process opens its own handle on first read.
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

    def read_grid(self, handle) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        segyio = import_segyio(self.path)
        if handle.tracecount == 0:
            raise DataError(self.path, "no traces")
        numbers = [
            np.asarray(handle.attributes(field)[:], dtype=np.int64)
            for field in (segyio.TraceField.INLINE_3D, segyio.TraceField.CROSSLINE_3D)
        ]
        inlines, crosslines = (np.unique(n) for n in numbers)
        if len(inlines) == 1 or len(crosslines) == 1:
            if len(inlines) == 1 and len(crosslines) == 1:
                what = "no inline/crossline numbers in its trace headers (bytes 189, 193)"
            else:
                which = "inline" if len(inlines) == 1 else "crossline"
                what = f"one {which} only"
            raise DataError(
                self.path,
                f"a 2-D line, not a 3-D survey ({what}): predict it with python -m salt.section",
            )
        rows, columns = (
            np.searchsorted(inlines, numbers[0]),
            np.searchsorted(crosslines, numbers[1]),
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
        return {**self.__dict__, "_handle": None}

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @property
    def handle(self):
        if self._handle is None:
            self._handle = open_segy(self.path)[0]
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
        """One amplitude scaling for the whole survey: salt.sections.seismic's, on evenly spaced
        traces (at most ~4 million values), the dead (all-zero) ones left out."""
        live = np.sort(self.trace_index[self.trace_index >= 0])
        step = max(1, math.ceil(len(live) * self.shape[2] / SAMPLE_VALUES))
        sample = np.empty((len(live[::step]), self.shape[2]), dtype=np.float32)
        rows = 0  # the live traces read so far; a dead one is overwritten by the next
        for trace in live[::step]:
            sample[rows] = self.handle.trace.raw[int(trace)]
            rows += bool(sample[rows].any())
        if rows == 0:
            return Scaling(-1.0, 1.0)
        return scaling_for(sample[:rows], percentile)  # a view: one sample in memory
