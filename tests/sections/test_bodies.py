"""salt.sections.bodies: streamed 3-D hole filling and salt bodies equal scipy's whole-volume
answers, read one axis-0 slice at a time, and bodies.csv in the headers' units."""

from __future__ import annotations

import csv
import tracemalloc

import numpy as np
import pytest
from scipy import ndimage

from salt.sections.axes import CubeAxes
from salt.sections.bodies import Body, fill_enclosed_holes, find_bodies, write_bodies_csv

SHAPES = [(1, 1, 1), (1, 7, 9), (8, 1, 1), (1, 1, 8), (6, 1, 9), (5, 9, 1), (9, 12, 10), (24, 8, 6)]
DENSITIES = [0.1, 0.3, 0.5, 0.7, 0.9]


def random_mask(shape, density, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < density).astype(np.uint8)


def scipy_bodies(mask: np.ndarray, min_voxels: int = 0) -> tuple[np.ndarray, list[Body]]:
    """The expected labels volume and bodies, from scipy's whole-volume labelling: components
    of at least `min_voxels`, renumbered largest first, ties in scipy's (first voxel) order."""
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = [c for c in sorted(range(count), key=lambda c: -sizes[c]) if sizes[c] >= min_voxels]
    renumber = np.zeros(count + 1, dtype=np.int64)
    boxes = ndimage.find_objects(labels)
    bodies = []
    for body_id, c in enumerate(order, start=1):
        renumber[c + 1] = body_id
        box = boxes[c]
        start = (box[0].start, box[1].start, box[2].start)
        stop = (box[0].stop, box[1].stop, box[2].stop)
        bodies.append(Body(body_id, int(sizes[c]), start, stop))
    return renumber[labels], bodies


def assert_bodies_match_scipy(mask: np.ndarray, min_voxels: int = 0) -> None:
    expected_labels, expected_bodies = scipy_bodies(mask, min_voxels)
    out = np.full(mask.shape, 7, dtype=np.uint8)
    labels = np.full(mask.shape, -1, dtype=np.int32)
    bodies = find_bodies(mask, out, min_voxels=min_voxels, labels=labels)
    assert bodies == expected_bodies
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_array_equal(out, (expected_labels > 0).astype(np.uint8))
    assert out.dtype == np.uint8


def assert_fill_matches_scipy(mask: np.ndarray) -> None:
    expected = ndimage.binary_fill_holes(mask).astype(np.uint8)
    out = np.full(mask.shape, 7, dtype=np.uint8)
    filled = fill_enclosed_holes(mask, out)
    np.testing.assert_array_equal(out, expected)
    assert filled == int(expected.sum()) - int(mask.sum())


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("density", DENSITIES)
def test_random_cubes_equal_scipy(shape, density):
    mask = random_mask(shape, density, seed=len(SHAPES) * DENSITIES.index(density) + 1)
    assert_bodies_match_scipy(mask)
    assert_fill_matches_scipy(mask)


@pytest.mark.parametrize("value", [0, 1], ids=["empty", "full"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (4, 5, 6), (1, 5, 6)], ids=str)
def test_empty_and_full_cubes(shape, value):
    mask = np.full(shape, value, dtype=np.uint8)
    out = np.full(shape, 7, dtype=np.uint8)
    assert fill_enclosed_holes(mask, out) == 0
    np.testing.assert_array_equal(out, mask)
    labels = np.full(shape, 7, dtype=np.int16)
    bodies = find_bodies(mask, out, labels=labels)
    np.testing.assert_array_equal(out, mask)
    np.testing.assert_array_equal(labels, mask)
    assert bodies == ([Body(1, int(np.prod(shape)), (0, 0, 0), shape)] if value else [])


def test_arms_that_join_only_in_the_last_slice_are_one_body():
    # a comb: 5 pillars along axis 0, separate in every slice but the last, where a bar joins them
    mask = np.zeros((10, 11, 3), dtype=np.uint8)
    mask[:, ::2, 1] = 1
    mask[-1, :, 1] = 1
    labels = np.zeros(mask.shape, dtype=np.int32)
    bodies = find_bodies(mask, None, labels=labels)
    assert bodies == [Body(1, 10 * 6 + 5, (0, 0, 1), (10, 11, 2))]
    np.testing.assert_array_equal(labels, mask)
    # without the bar: 5 bodies of 10, ids in the order of their first voxel
    mask[-1, 1::2, 1] = 0
    bodies = find_bodies(mask, None, labels=labels)
    assert [(b.id, b.voxels, b.start[1]) for b in bodies] == [(k + 1, 10, 2 * k) for k in range(6)]
    assert_bodies_match_scipy(mask)


def serpentine(shape: tuple[int, int, int]) -> np.ndarray:
    """One body snaking back and forth along axis 0: the rows of every other crossline, joined
    at alternate ends, so each slice sees many pieces that join through other slices."""
    mask = np.zeros(shape, dtype=np.uint8)
    for row, x in enumerate(range(0, shape[1], 2)):
        mask[:, x, 0] = 1
        if x + 2 < shape[1]:
            mask[-1 if row % 2 == 0 else 0, x : x + 3, 0] = 1
    return mask


def spiral(size: int) -> np.ndarray:
    """A square spiral wall in the (inline, crossline) plane, one sample thick."""
    plane = np.zeros((size, size), dtype=np.uint8)
    low, high = 0, size - 1
    while low <= high:
        plane[low, low : high + 1] = 1
        plane[low : high + 1, high] = 1
        if low + 2 <= high:
            plane[high, low + 2 : high + 1] = 1
            plane[low + 2 : high + 1, low + 2] = 1
        low, high = low + 2, high - 2
    return plane


def test_serpentine_and_spiral_need_the_union_find():
    snake = serpentine((7, 15, 2))
    assert_bodies_match_scipy(snake)
    assert len(find_bodies(snake, None)) == 1
    coil = spiral(17)[:, :, None].repeat(3, axis=2)
    assert len(find_bodies(coil, None)) == 1
    assert_bodies_match_scipy(coil)


def test_holes_closed_or_opened_only_in_a_later_slice():
    # a hollow box: its cavity is filled
    box = np.ones((6, 7, 8), dtype=np.uint8)
    box[1:-1, 2:5, 2:6] = 0
    out = np.zeros_like(box)
    assert fill_enclosed_holes(box, out) == 4 * 3 * 4
    np.testing.assert_array_equal(out, np.ones_like(box))
    # a U-shaped tunnel: enclosed in every slice but the last, where it reaches the face
    open_late = np.ones((6, 7, 8), dtype=np.uint8)
    open_late[1:, 3, 3] = 0
    assert fill_enclosed_holes(open_late, out) == 0
    np.testing.assert_array_equal(out, open_late)
    # a cavity shaped as a spiral inside a solid block (each slice sees it in pieces)
    block = np.ones((19, 19, 5), dtype=np.uint8)
    block[1:-1, 1:-1, 1:-1] = 1 - spiral(17)[:, :, None]
    assert_fill_matches_scipy(block)
    assert fill_enclosed_holes(block, np.zeros_like(block)) == int((1 - block).sum())


@pytest.mark.parametrize("thin_axis", [0, 1, 2])
def test_one_voxel_thick_cubes_have_no_enclosed_holes(thin_axis):
    shape = [9, 9, 9]
    shape[thin_axis] = 1
    ring = np.ones(shape, dtype=np.uint8)
    ring[tuple(slice(None) if n == 1 else slice(3, 6) for n in shape)] = 0
    out = np.zeros_like(ring)
    assert fill_enclosed_holes(ring, out) == 0
    np.testing.assert_array_equal(out, ring)
    assert_bodies_match_scipy(ring)


def test_memmap_input_and_output_in_place(tmp_path):
    mask = random_mask((12, 10, 9), 0.6, seed=3)
    expected_filled = ndimage.binary_fill_holes(mask).astype(np.uint8)
    expected_labels, expected_bodies = scipy_bodies(expected_filled, min_voxels=5)
    volume = np.lib.format.open_memmap(tmp_path / "mask.npy", "w+", np.uint8, mask.shape)
    volume[:] = mask
    fill_enclosed_holes(volume, volume)
    labels = np.lib.format.open_memmap(tmp_path / "labels.npy", "w+", np.int32, mask.shape)
    assert find_bodies(volume, volume, min_voxels=5, labels=labels) == expected_bodies
    del volume, labels
    np.testing.assert_array_equal(np.load(tmp_path / "mask.npy"), expected_labels > 0)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), expected_labels)


@pytest.mark.parametrize("min_voxels", [2, 4, 10])
def test_min_voxels_drops_the_small_bodies(min_voxels):
    mask = random_mask((10, 11, 12), 0.3, seed=5)
    assert_bodies_match_scipy(mask, min_voxels)
    bodies = find_bodies(mask, None, min_voxels=min_voxels)
    assert bodies and all(b.voxels >= min_voxels for b in bodies)
    assert len(bodies) < ndimage.label(mask)[1]


def test_ids_by_size_ties_by_first_voxel_and_bounding_boxes():
    mask = np.zeros((6, 6, 6), dtype=np.uint8)
    mask[0, 0, 0:5] = 1  # 5 voxels, first in C order
    mask[2:5, 2:5, 5] = 1  # 9 voxels
    mask[5, 0:5, 0] = 1  # 5 voxels, after the first
    mask[3, 0, 3] = 1  # 1 voxel
    labels = np.zeros(mask.shape, dtype=np.uint8)
    out = np.zeros_like(mask)
    bodies = find_bodies(mask, out, min_voxels=2, labels=labels)
    assert bodies == [
        Body(1, 9, (2, 2, 5), (5, 5, 6)),
        Body(2, 5, (0, 0, 0), (1, 1, 5)),
        Body(3, 5, (5, 0, 0), (6, 5, 1)),
    ]
    assert labels[3, 3, 5] == 1 and labels[0, 0, 4] == 2 and labels[5, 4, 0] == 3
    assert labels[3, 0, 3] == 0 and out[3, 0, 3] == 0 and out.sum() == 19


class SliceOnly:
    """A volume that serves and takes whole axis-0 slices only (`volume[i]`), and counts them."""

    def __init__(self, array: np.ndarray, change_on_second_read: bool = False):
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.reads: list[int] = []
        self.writes: list[int] = []
        self.change_on_second_read = change_on_second_read

    def __getitem__(self, index):
        if not isinstance(index, int):
            raise AssertionError(f"read {index!r}: only one axis-0 slice at a time")
        self.reads.append(index)
        plane = self.array[index].copy()
        if self.change_on_second_read and self.reads.count(index) == 2:
            plane[:] = 1 - plane
        return plane

    def __setitem__(self, index, plane):
        if not isinstance(index, int):
            raise AssertionError(f"wrote {index!r}: only one axis-0 slice at a time")
        self.writes.append(index)
        self.array[index] = plane

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was read")


def test_the_volume_is_read_and_written_one_slice_at_a_time_in_two_passes():
    mask = random_mask((9, 8, 7), 0.55, seed=7)
    slices = list(range(9))
    volume = SliceOnly(mask.copy())
    out = SliceOnly(np.zeros_like(mask))
    fill_enclosed_holes(volume, out)
    assert volume.reads == slices * 2 and out.writes == slices and out.reads == []
    np.testing.assert_array_equal(out.array, ndimage.binary_fill_holes(mask))

    volume = SliceOnly(mask.copy())
    labels = SliceOnly(np.zeros(mask.shape, dtype=np.int32))
    find_bodies(volume, out, min_voxels=3, labels=labels)
    assert volume.reads == slices * 2 and labels.writes == slices
    np.testing.assert_array_equal(labels.array, scipy_bodies(mask, 3)[0])

    volume = SliceOnly(mask.copy())
    find_bodies(volume, None)
    assert volume.reads == slices


def test_a_mask_that_changes_between_the_passes_is_an_error():
    mask = random_mask((5, 8, 8), 0.5, seed=9)
    with pytest.raises(RuntimeError, match="changed between the two passes"):
        find_bodies(SliceOnly(mask, change_on_second_read=True), np.zeros_like(mask))


def test_mismatched_shapes_and_small_label_dtypes_are_refused():
    mask = random_mask((4, 24, 24), 0.3, seed=11)
    with pytest.raises(ValueError, match="differs"):
        fill_enclosed_holes(mask, np.zeros((4, 24, 23), dtype=np.uint8))
    with pytest.raises(ValueError, match="3-D"):
        find_bodies(mask[0], None)
    assert ndimage.label(mask)[1] > 127
    with pytest.raises(ValueError, match="cannot hold"):
        find_bodies(mask, None, labels=np.zeros(mask.shape, dtype=np.int8))
    with pytest.raises(ValueError, match="integer"):
        find_bodies(mask, None, labels=np.zeros(mask.shape, dtype=np.float32))


def tubes(slices: int) -> np.ndarray:
    """A few tubes along axis 0 and a hollow in each: a handful of labels per slice."""
    mask = np.zeros((slices, 96, 96), dtype=np.uint8)
    for x in (10, 40, 70):
        mask[:, x : x + 16, 10:80] = 1
        mask[1:-1, x + 4 : x + 12, 20:70] = 0
    return mask


def peak_bytes(mask: np.ndarray, tmp_path) -> int:
    path = tmp_path / f"mask{len(mask)}.npy"
    np.save(path, mask)
    volume = np.load(path, mmap_mode="r+")
    tracemalloc.start()
    try:
        fill_enclosed_holes(volume, volume)
        find_bodies(volume, volume, min_voxels=10)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_slices(tmp_path):
    """Memory-mapped in and out, the peak grows by the per-label tables only (a few labels per
    slice here): far less than the 1 byte per voxel of holding the mask, or 4 of its labels."""
    few, many = tubes(4), tubes(128)
    growth = peak_bytes(many, tmp_path) - peak_bytes(few, tmp_path)
    assert growth < 0.1 * (many.nbytes - few.nbytes)


def axes_of(vertical: str, bin_size) -> CubeAxes:
    return CubeAxes(
        inlines=np.arange(6) * 2 + 100,
        crosslines=np.arange(6) + 500,
        samples=np.arange(6) * 4.0 + 1000.0 if vertical == "time" else np.arange(6) * 2.5 + 10,
        vertical=vertical,
        bin_size=bin_size,
    )


@pytest.mark.parametrize(
    "vertical, bin_size, volume, unit, vertical_column, vertical_range",
    [
        ("depth", (25.0, 12.5), "3906.25", "m3", "depth_m", ["10", "20"]),
        ("time", (25.0, 12.5), "6250", "m2*ms", "time_ms", ["1000", "1016"]),
        ("time", None, "5", "traces*samples", "time_ms", ["1000", "1016"]),
    ],
)
def test_bodies_csv_in_the_headers_units(
    tmp_path, vertical, bin_size, volume, unit, vertical_column, vertical_range
):
    bodies = [Body(1, 5, (1, 2, 0), (3, 6, 5)), Body(2, 1, (5, 5, 5), (6, 6, 6))]
    path = write_bodies_csv(tmp_path / "bodies.csv", bodies, axes_of(vertical, bin_size))
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [
        "id", "voxels", "volume", "volume_unit", "inline_min", "inline_max",
        "crossline_min", "crossline_max", f"{vertical_column}_min", f"{vertical_column}_max",
    ]  # fmt: skip
    assert rows[1][:4] == ["1", "5", volume, unit]
    assert rows[1][4:8] == ["102", "104", "502", "505"]
    assert rows[1][8:] == vertical_range
    assert rows[2][:2] == ["2", "1"] and rows[2][4:6] == ["110", "110"]
    assert float(rows[2][2]) == float(volume) / 5
    assert [p.name for p in tmp_path.iterdir()] == ["bodies.csv"]


def test_float32_header_values_are_written_as_read(tmp_path):
    axes = CubeAxes(
        inlines=np.arange(3, dtype=np.int32) + 7,
        crosslines=np.arange(3, dtype=np.int32),
        samples=np.arange(3, dtype=np.float32) * np.float32(2.2),
        vertical="depth",
    )
    path = write_bodies_csv(tmp_path / "bodies.csv", [Body(1, 2, (0, 0, 1), (3, 1, 3))], axes)
    with open(path, newline="") as handle:
        assert list(csv.reader(handle))[1] == [
            "1",
            "2",
            "2",
            "traces*samples",
            "7",
            "9",
            "0",
            "0",
            "2.2",
            "4.4",
        ]


def test_bodies_outside_the_cube_write_no_csv(tmp_path):
    with pytest.raises(ValueError, match="outside the cube"):
        write_bodies_csv(
            tmp_path / "b.csv", [Body(1, 1, (0, 0, 0), (7, 1, 1))], axes_of("time", None)
        )
    assert list(tmp_path.iterdir()) == []


def test_a_failure_while_writing_leaves_no_csv(tmp_path, monkeypatch):
    import salt.sections.bodies as bodies_module

    def row_or_fail(body, axes):
        if body.id == 2:
            raise OSError("disk full")
        return written_row(body, axes)

    written_row = bodies_module._body_row
    monkeypatch.setattr(bodies_module, "_body_row", row_or_fail)
    bodies = [Body(1, 1, (0, 0, 0), (1, 1, 1)), Body(2, 1, (1, 1, 1), (2, 2, 2))]
    with pytest.raises(OSError, match="disk full"):
        write_bodies_csv(tmp_path / "bodies.csv", bodies, axes_of("time", None))
    assert list(tmp_path.iterdir()) == []
