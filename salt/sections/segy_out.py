"""A volume written back as SEG-Y on the geometry of the survey it was predicted from.

The output copies the input's textual header (and extended textual headers), its binary header
and every trace header, in the input's trace order and byte order, so that an interpretation
package loads it on the input's geometry (inline, crossline, coordinates, sample interval,
delay); only the sample format changes: IEEE float32 (format 5) for probabilities, 2-byte
integers (format 3) for masks. The headers are copied as bytes rather than through segyio's
header fields, which cost tens of microseconds a field: a million traces would spend minutes
there. Traces are streamed `TRACE_CHUNK` at a time; callers write to a temporary path
(salt.core.files.atomic_path) so that the file is complete at its path, or absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from salt.sections.cube import TRACE_CHUNK, Survey, import_segyio
from salt.sections.paging import release_pages

IEEE_FLOAT = 5
INT16 = 3
SAMPLE_TYPES = {IEEE_FLOAT: np.float32, INT16: np.int16}
TEXT_AND_BINARY_BYTES = 3600
EXTENDED_TEXT_BYTES = 3200
TRACE_HEADER_BYTES = 240
FORMAT_BYTES = slice(3224, 3226)  # the binary header's sample format code


def write_segy_like(survey: Survey, path, volume: np.ndarray, sample_format: int) -> Path:
    """`volume` ((inlines, crosslines, samples), e.g. a memmap) as SEG-Y at `path`, with every
    header of `survey`'s file, trace for trace (the grid's missing traces are not in the file).

    The headers are copied as bytes: the textual and binary headers (the format code changed)
    and each trace's 240-byte header, read from the input where segyio found its traces."""
    path = Path(path)
    segyio = import_segyio(survey.path)
    with segyio.open(str(survey.path), "r", ignore_geometry=True, endian=survey.endian) as source:
        count, samples = source.tracecount, len(source.samples)
        data_start = TEXT_AND_BINARY_BYTES + EXTENDED_TEXT_BYTES * source.ext_headers
    trace_bytes = (survey.path.stat().st_size - data_start) // count
    sample_type = np.dtype(SAMPLE_TYPES[sample_format])
    sample_type = sample_type.newbyteorder(">" if survey.endian == "big" else "<")
    locations = survey.trace_locations()
    source_bytes = np.memmap(survey.path, dtype=np.uint8, mode="r")
    head = bytearray(source_bytes[:data_start])
    head[FORMAT_BYTES] = sample_format.to_bytes(2, survey.endian)
    with open(path, "wb") as target:
        target.write(head)
        for start in range(0, count, TRACE_CHUNK):
            stop = min(start + TRACE_CHUNK, count)
            traces = source_bytes[
                data_start + start * trace_bytes : data_start + stop * trace_bytes
            ]
            where = locations[start:stop]
            values = np.asarray(volume[where[:, 0], where[:, 1]]).astype(sample_type)
            chunk = np.empty(
                (stop - start, TRACE_HEADER_BYTES + samples * sample_type.itemsize), np.uint8
            )
            chunk[:, :TRACE_HEADER_BYTES] = traces.reshape(stop - start, trace_bytes)[
                :, :TRACE_HEADER_BYTES
            ]
            chunk[:, TRACE_HEADER_BYTES:] = values.view(np.uint8).reshape(stop - start, -1)
            target.write(chunk.data)  # no copy (tobytes would make one)
            release_pages(volume)
            release_pages(source_bytes)
    return path
