"""3-D post-processing of a salt mask volume, streamed one inline (axis-0 slice) at a time.

A mask volume is indexed `[inline, crossline, sample]` and may be far larger than memory (a
numpy memmap on disk), so it is never read whole. Both operations here rest on one streamed
labelling of the 6-connected components of a per-voxel predicate (salt, or background):

1. First pass: each axis-0 slice is labelled in 2-D (`scipy.ndimage.label`, 4-connectivity in
   the slice); slice i's labels are numbered after slice i-1's (a running offset), giving
   "provisional" labels. For each provisional label the pass keeps its voxel count and bounding
   box, and for each pair of consecutive slices the unique (previous label, current label) pairs
   that are foreground at the same (crossline, sample): those labels are one 3-D component.
2. The pairs are the edges of a graph whose connected components (scipy.sparse.csgraph, linear
   time, no Python loop) are the 3-D components. Components are numbered by their first voxel in
   C order, as `scipy.ndimage.label` numbers them: the smallest provisional label of a component
   lies in its first slice and, within it, holds the slice's first voxel of the component.
3. Second pass: each slice is labelled in 2-D again (deterministic, so the same provisional
   labels come back; nothing of the first pass is stored per voxel), and a per-label table maps
   the slice's labels to what is written.

Peak memory is a few slices plus tables of a few dozen bytes per provisional label (per 2-D
component of a slice), whatever the number of slices.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from salt.core.files import atomic_open
from salt.sections.axes import CubeAxes

# An (I, X, T) array-like read (and written) one axis-0 slice at a time: `volume[i]`,
# `volume[i] = plane`, `volume.shape`; a numpy array or memmap, a zarr array.
SliceVolume = Any
Foreground = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Body:
    """One salt body: a 6-connected component of the mask. `id` 1 is the largest body, 2 the
    next, ...; `start` is the inclusive lowest and `stop` the exclusive highest index of its
    bounding box along (inline, crossline, sample)."""

    id: int
    voxels: int
    start: tuple[int, int, int]
    stop: tuple[int, int, int]


@dataclass(frozen=True)
class Components:
    """The 6-connected components of a volume's foreground, numbered 0, 1, ... by their first
    voxel in C order. `labels_per_slice[i]`: the number of 2-D labels of slice i;
    `component`: the component of each provisional label (slice i's 2-D label k is provisional
    label `sum(labels_per_slice[:i]) + k - 1`); `voxels`, `start`, `stop` (inclusive, exclusive
    indices, shape (C, 3)): each component's size and bounding box."""

    labels_per_slice: np.ndarray
    component: np.ndarray
    voxels: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    def touches_face(self, shape: tuple[int, ...]) -> np.ndarray:
        """Whether each component reaches a face of a cube of `shape`."""
        return (self.start == 0).any(axis=1) | (self.stop == np.asarray(shape)).any(axis=1)


# the columns of a slice's table, one row per 2-D label, int32 (a slice's sizes and indices fit)
VOXELS, CROSSLINE_START, CROSSLINE_STOP, SAMPLE_START, SAMPLE_STOP = range(5)


def _is_salt(plane: np.ndarray) -> np.ndarray:
    return plane != 0


def _is_background(plane: np.ndarray) -> np.ndarray:
    return plane == 0


def _check_volume(mask: SliceVolume, *others: SliceVolume) -> tuple[int, int, int]:
    shape = tuple(int(n) for n in mask.shape)
    if len(shape) != 3:
        raise ValueError(f"mask must be a 3-D (inline, crossline, sample) volume, got {shape}")
    for other in others:
        if other is not None and tuple(other.shape) != shape:
            raise ValueError(f"output shape {tuple(other.shape)} differs from the mask's {shape}")
    return shape


def _label_plane(foreground: np.ndarray) -> tuple[np.ndarray, int]:
    """The 2-D labels (4-connectivity: scipy's default) of a slice's foreground, 1, 2, ... in C
    order of their first pixel, and how many there are."""
    labels, count = ndimage.label(foreground)
    return labels, int(count)


def _reduce_at(reduce: np.ufunc, ids: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """`reduce` (np.minimum, np.maximum or np.add) of `values` over each of `count` ids."""
    initial = np.iinfo(np.int64).max if reduce is np.minimum else 0
    result = np.full(count, initial, dtype=np.int64)
    # ufunc.at is fast (vectorised) only on a contiguous array of the values' own dtype
    reduce.at(result, ids, np.asarray(values, dtype=np.int64))
    return result


def _slice_table(labels: np.ndarray, count: int) -> np.ndarray:
    """A (count, 5) int32 table of each 2-D label's voxels and bounding box in the slice."""
    rows, columns = np.nonzero(labels)
    ids = labels[rows, columns].astype(np.intp) - 1
    table = np.empty((count, 5), dtype=np.int32)
    table[:, VOXELS] = np.bincount(ids, minlength=count)
    table[:, CROSSLINE_START] = _reduce_at(np.minimum, ids, rows, count)
    table[:, CROSSLINE_STOP] = _reduce_at(np.maximum, ids, rows + 1, count)
    table[:, SAMPLE_START] = _reduce_at(np.minimum, ids, columns, count)
    table[:, SAMPLE_STOP] = _reduce_at(np.maximum, ids, columns + 1, count)
    return table


def _overlaps(previous: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """The unique (previous label, label) pairs, 0-based, of two consecutive slices' labels
    that are both foreground at some position, as an (n, 2) array."""
    both = (previous > 0) & (labels > 0)
    keys = previous[both].astype(np.int64) * (count + 1) + labels[both]
    # salt comes in long runs of the same pair: dropping repeats first makes np.unique cheap
    keys = np.unique(keys[np.flatnonzero(np.diff(keys, prepend=-1))])
    return np.stack([keys // (count + 1) - 1, keys % (count + 1) - 1], axis=1)


def _first_pass(
    mask: SliceVolume, foreground: Foreground
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each slice's number of 2-D labels, the (n, 5) tables of all provisional labels (slice
    after slice) and the (m, 2) pairs of provisional labels that touch across slices."""
    labels_per_slice = np.zeros(mask.shape[0], dtype=np.int64)
    tables = [np.zeros((0, 5), dtype=np.int32)]
    edges = [np.zeros((0, 2), dtype=np.int64)]
    previous = np.zeros(0)
    offset = 0
    for index in range(mask.shape[0]):
        labels, count = _label_plane(foreground(np.asarray(mask[index])))
        labels_per_slice[index] = count
        tables.append(_slice_table(labels, count))
        if index > 0:
            previous_offset = offset - labels_per_slice[index - 1]
            edges.append(_overlaps(previous, labels, count) + [previous_offset, offset])
        previous = labels
        offset += count
    return labels_per_slice, np.concatenate(tables), np.concatenate(edges)


def _join(total: int, edges: np.ndarray) -> np.ndarray:
    """The component of each of `total` provisional labels joined by `edges` ((m, 2) pairs),
    numbered by each component's smallest label."""
    if total == 0:
        return np.zeros(0, dtype=np.int32)
    weights = np.ones(len(edges), dtype=np.int8)
    graph = coo_array((weights, (edges[:, 0], edges[:, 1])), shape=(total, total))
    count, component = connected_components(graph, directed=False)
    first = _reduce_at(np.minimum, component, np.arange(total), count)
    rank = np.empty(count, dtype=component.dtype)
    rank[np.argsort(first)] = np.arange(count)
    return rank[component]


def _bounds(
    component: np.ndarray, count: int, tables: np.ndarray, labels_per_slice: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each component's bounding box: (count, 3) start and stop indices."""
    label = np.arange(len(component))
    slice_ends = np.cumsum(labels_per_slice)
    # a component's first and last provisional labels lie in its first and last slices
    first = _reduce_at(np.minimum, component, label, count)
    last = _reduce_at(np.maximum, component, label, count)
    start = [np.searchsorted(slice_ends, first, "right")]
    stop = [np.searchsorted(slice_ends, last, "right") + 1]
    for low, high in ((CROSSLINE_START, CROSSLINE_STOP), (SAMPLE_START, SAMPLE_STOP)):
        start.append(_reduce_at(np.minimum, component, tables[:, low], count))
        stop.append(_reduce_at(np.maximum, component, tables[:, high], count))
    return np.stack(start, axis=1), np.stack(stop, axis=1)


def label_components(mask: SliceVolume, foreground: Foreground = _is_salt) -> Components:
    """The 6-connected components of `foreground(slice)` over `mask`'s axis-0 slices (the first
    pass: each slice read once, in order)."""
    _check_volume(mask)
    labels_per_slice, tables, edges = _first_pass(mask, foreground)
    component = _join(len(tables), edges)
    count = int(component.max()) + 1 if len(component) else 0
    voxels = _reduce_at(np.add, component, tables[:, VOXELS], count)
    start, stop = _bounds(component, count, tables, labels_per_slice)
    return Components(labels_per_slice, component, voxels, start, stop)


def relabel(
    mask: SliceVolume, components: Components, values: np.ndarray, foreground: Foreground = _is_salt
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The second pass: for each axis-0 slice in order, (index, the slice as read, `values` of
    each voxel's component; `values.dtype`'s zero where the voxel is not foreground)."""
    offset = 0
    for index in range(len(components.labels_per_slice)):
        plane = np.asarray(mask[index])
        labels, count = _label_plane(foreground(plane))
        if count != components.labels_per_slice[index]:
            raise RuntimeError(f"mask slice {index} changed between the two passes")
        table = np.zeros(count + 1, dtype=values.dtype)
        table[1:] = values[components.component[offset : offset + count]]
        offset += count
        yield index, plane, table[labels]


def fill_enclosed_holes(mask: SliceVolume, out: SliceVolume) -> int:
    """`mask`: an (I, X, T) array-like of 0/1, read one axis-0 slice at a time (`mask[i]`), never
    whole. Writes into `out` (same shape; written `out[i] = uint8 slice`, may be `mask` itself)
    the mask with every enclosed hole filled, and returns the number of voxels filled. A hole is
    a 6-connected component of background that touches no face of the cube: the result equals
    `scipy.ndimage.binary_fill_holes(mask)`."""
    shape = _check_volume(mask, out)
    background = label_components(mask, _is_background)
    hole = ~background.touches_face(shape)
    for index, plane, filled in relabel(mask, background, hole, _is_background):
        out[index] = (_is_salt(plane) | filled).astype(np.uint8)
    return int(background.voxels[hole].sum())


def _bodies_by_size(components: Components, min_voxels: int) -> np.ndarray:
    """The components kept (at least `min_voxels` voxels), largest first, ties by first voxel."""
    order = np.argsort(-components.voxels, kind="stable")
    return order[components.voxels[order] >= min_voxels]


def find_bodies(
    mask: SliceVolume,
    out: SliceVolume | None,
    min_voxels: int = 0,
    labels: SliceVolume | None = None,
) -> list[Body]:
    """Salt bodies: the 6-connected components of `mask` (an (I, X, T) array-like of 0/1, read
    one axis-0 slice at a time; the components of `scipy.ndimage.label`'s default structure).
    Writes into `out` (uint8 0/1; may be `mask` itself; None: not written) the mask without the
    bodies of fewer than `min_voxels` voxels, and into `labels` (an integer array-like of the same
    shape, when given) each kept body's id, 0 elsewhere. Returns the kept bodies, largest first,
    ties in the order of their first voxel in C order (`scipy.ndimage.label`'s order); ids are
    1, 2, ... in that order. Reads the mask twice when `out` or `labels` is given, once if not."""
    _check_volume(mask, out, labels)
    components = label_components(mask, _is_salt)
    kept = _bodies_by_size(components, min_voxels)
    if labels is not None and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must have an integer dtype, got {labels.dtype}")
    if labels is not None and np.iinfo(labels.dtype).max < len(kept):
        raise ValueError(f"labels of dtype {labels.dtype} cannot hold {len(kept)} body ids")
    if out is not None or labels is not None:
        body_id = np.zeros(len(components.voxels), dtype=np.int64)
        body_id[kept] = np.arange(1, len(kept) + 1)
        for index, _, ids in relabel(mask, components, body_id):
            if out is not None:
                out[index] = (ids > 0).astype(np.uint8)
            if labels is not None:
                labels[index] = ids.astype(labels.dtype)
    return [
        Body(number, voxels, (i0, x0, t0), (i1, x1, t1))
        for number, voxels, (i0, x0, t0), (i1, x1, t1) in zip(
            range(1, len(kept) + 1),
            components.voxels[kept].tolist(),
            components.start[kept].tolist(),
            components.stop[kept].tolist(),
        )
    ]


def volume_unit(axes: CubeAxes) -> str:
    """What a body's volume is measured in: m3 (depth), m2*ms (time), or traces*samples where
    the headers give no bin size."""
    if axes.bin_size is None:
        return "traces*samples"
    return "m3" if axes.vertical == "depth" else "m2*ms"


def voxel_volume(axes: CubeAxes) -> float:
    """The volume of one voxel in `volume_unit(axes)`: bin area x sample interval, or 1."""
    if axes.bin_size is None:
        return 1.0
    return float(axes.bin_size[0]) * float(axes.bin_size[1]) * axes.sample_interval


def _number(value: Any) -> str:
    """A header value or volume as written: integers as they are, floats in the shortest form
    that reads back as the same value of their own dtype (a float32 4.004 as "4.004"), without
    a trailing ".0"."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return np.format_float_positional(value, trim="-")


def bodies_csv_header(axes: CubeAxes) -> list[str]:
    vertical = f"{axes.vertical}_{axes.vertical_unit}"
    return [
        "id",
        "voxels",
        "volume",
        "volume_unit",
        "inline_min",
        "inline_max",
        "crossline_min",
        "crossline_max",
        f"{vertical}_min",
        f"{vertical}_max",
    ]


def _body_row(body: Body, axes: CubeAxes) -> list[str]:
    extents = []
    for values, low, high in zip(
        (axes.inlines, axes.crosslines, axes.samples), body.start, body.stop
    ):
        extents += [_number(values[low]), _number(values[high - 1])]
    volume = body.voxels * voxel_volume(axes)
    return [str(body.id), str(body.voxels), _number(volume), volume_unit(axes), *extents]


def write_bodies_csv(path, bodies: list[Body], axes: CubeAxes) -> Path:
    """`bodies` as a CSV at `path`, written atomically: id, voxels, volume, volume_unit,
    inline_min, inline_max, crossline_min, crossline_max, <v>_min, <v>_max where <v> is time_ms
    or depth_m (`axes.vertical`). Bounding boxes are in line numbers and vertical units (the
    headers' values at the first and last index). volume = voxels x bin area x sample interval:
    m3 for depth, m2*ms for time; voxels in traces*samples where `axes.bin_size` is None."""
    for body in bodies:
        if any(high > size for high, size in zip(body.stop, axes.shape)):
            raise ValueError(f"body {body.id} reaches {body.stop}, outside the cube {axes.shape}")
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(bodies_csv_header(axes))
        writer.writerows(_body_row(body, axes) for body in bodies)
    return Path(path)
