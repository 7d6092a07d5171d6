"""Generated 3-D cubes (salt.data.synthetic_cube): values, SEG-Y files, and their 2-D look."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salt.data.synthetic import main as synthetic_main
from salt.data.synthetic import make_section
from salt.data.synthetic_cube import (
    COORDINATE_SCALAR,
    INT16_SCALE,
    corner_missing,
    cube_inlines,
    make_cube,
    random_dead,
    write_segy_cube,
)

segyio = pytest.importorskip("segyio")
ndimage = pytest.importorskip("scipy.ndimage")

SHAPE = (12, 16, 40)
INLINES = np.arange(SHAPE[0]) * 2 + 1001  # numbers that are neither indices nor steps of 1
CROSSLINES = np.arange(SHAPE[1]) + 300


@pytest.fixture(scope="module")
def cube() -> tuple[np.ndarray, np.ndarray]:
    return make_cube(SHAPE, seed=3)


def test_a_cube_is_float_amplitudes_and_a_binary_mask_of_its_shape(cube):
    amplitude, mask = cube
    assert amplitude.shape == mask.shape == SHAPE
    assert amplitude.dtype == np.float32 and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert abs(float(amplitude.mean())) < 0.1 and 0.8 < float(amplitude.std()) < 1.25


def test_the_same_seed_gives_the_same_cube_and_another_seed_another(cube):
    again = make_cube(SHAPE, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(cube, again))
    other_amplitude, other_mask = make_cube(SHAPE, seed=4)
    assert not np.array_equal(other_amplitude, cube[0])
    assert not np.array_equal(other_mask, cube[1])


def test_streamed_inlines_are_the_whole_cube_in_inline_order(cube):
    streamed = list(cube_inlines(SHAPE, seed=3))
    assert [index for index, _, _ in streamed] == list(range(SHAPE[0]))
    assert np.array_equal(np.stack([amplitude for _, amplitude, _ in streamed]), cube[0])
    assert np.array_equal(np.stack([mask for _, _, mask in streamed]), cube[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_salt_fills_a_tenth_to_a_third_of_the_cube_and_reaches_its_sides(seed):
    _, mask = make_cube((24, 24, 48), seed)
    assert 0.1 <= mask.mean() <= 0.3
    sides = [mask[0], mask[-1], mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]]
    assert any(side.any() for side in sides)


def test_a_cube_of_one_inline_or_a_few_samples_is_generated():
    amplitude, mask = make_cube((1, 3, 5), seed=0)
    assert amplitude.shape == mask.shape == (1, 3, 5) and np.isfinite(amplitude).all()
    with pytest.raises(ValueError, match="positive"):
        make_cube((0, 3, 5))


def look(amplitude: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """How a volume or a section (time along the last axis) looks along its first axis: the
    correlation of neighbouring traces deep inside salt and far from it, and the brightness of
    the top of salt and of salt's interior against the background."""
    salt = mask.astype(bool)
    ball = np.ones((3,) * salt.ndim, bool)
    deep = ndimage.binary_erosion(salt, ball, iterations=6, border_value=1)
    far = ~ndimage.binary_dilation(salt, ball, iterations=6)
    top = salt & ~np.roll(salt, 1, axis=-1)
    top[..., 0] = False
    background = float(np.abs(amplitude[far]).mean())

    def lateral_correlation(region: np.ndarray) -> float:
        both = region[:-1] & region[1:]
        return float(np.corrcoef(amplitude[:-1][both], amplitude[1:][both])[0, 1])

    return {
        "salt_coherence": lateral_correlation(deep),
        "layer_coherence": lateral_correlation(far),
        "top_brightness": float(np.abs(amplitude[top]).mean()) / background,
        "salt_brightness": float(np.abs(amplitude[deep]).mean()) / background,
    }


def test_speckle_inlines_and_crosslines_look_like_the_2d_sections():
    """The speckle style (the first generator, kept for comparison) in 3-D as in 2-D: a
    chaotic salt interior under a bright rim. The seismic style, the default, has its own test
    (tests/data/test_earth_model.py::test_cube_inlines_and_crosslines_look_like_the_2d_sections):
    its imaging smears the dim salt interior across traces, so the bounds below are speckle's."""
    amplitude, mask = make_cube((32, 64, 96), seed=0, style="speckle")
    section, section_mask = make_section(96, 200, seed=0, amplitudes=True, style="speckle")
    expected = look(section.T, section_mask.T)
    along_crosslines = look(amplitude, mask)  # neighbouring traces of each inline
    along_inlines = look(amplitude.transpose(1, 0, 2), mask.transpose(1, 0, 2))
    for seen in (along_crosslines, along_inlines):
        # layers are continuous from trace to trace, salt's interior is not
        assert seen["layer_coherence"] > 0.9 and expected["layer_coherence"] > 0.9
        assert abs(seen["salt_coherence"]) < 0.3 and abs(expected["salt_coherence"]) < 0.3
        # a strong top-of-salt reflection, as bright against the layers as in 2-D
        assert 0.5 < seen["top_brightness"] / expected["top_brightness"] < 2
        assert 0.5 < seen["salt_brightness"] / expected["salt_brightness"] < 2


def inline_cube(f) -> np.ndarray:
    """A regular SEG-Y file's samples as (inlines, crosslines, samples), whatever its sorting."""
    return np.stack([f.iline[number] for number in f.ilines])


def write(path: Path, amplitude: np.ndarray, **options) -> Path:
    return write_segy_cube(
        path,
        amplitude,
        inline_numbers=INLINES,
        crossline_numbers=CROSSLINES,
        sample_interval_ms=2,
        delay_ms=100,
        **options,
    )


@pytest.mark.parametrize("sorting", ["inline", "crossline"])
@pytest.mark.parametrize("endian", ["big", "little"])
def test_segy_reads_back_as_the_cube_with_its_geometry(tmp_path, cube, sorting, endian):
    amplitude, _ = cube
    path = write(tmp_path / "cube.sgy", amplitude, sorting=sorting, endian=endian)
    with segyio.open(path, strict=True, endian=endian) as f:
        assert f.sorting == {"inline": 2, "crossline": 1}[sorting]
        assert list(f.ilines) == list(INLINES) and list(f.xlines) == list(CROSSLINES)
        assert np.allclose(f.samples, 100 + 2 * np.arange(SHAPE[2]))
        assert f.bin[segyio.BinField.Interval] == 2000
        assert np.array_equal(inline_cube(f), amplitude)
        assert np.array_equal(f.iline[int(INLINES[3])], amplitude[3])
        assert np.array_equal(f.xline[int(CROSSLINES[5])], amplitude[:, 5])
        headers = {
            (h[segyio.TraceField.INLINE_3D], h[segyio.TraceField.CROSSLINE_3D]): dict(h)
            for h in f.header  # segyio reuses one header object while iterating
        }
    corner = headers[(int(INLINES[2]), int(CROSSLINES[5]))]
    assert corner[segyio.TraceField.SourceGroupScalar] == COORDINATE_SCALAR
    assert corner[segyio.TraceField.CDP_X] == (500_000 + 5 * 25) * 100  # centimetres
    assert corner[segyio.TraceField.CDP_Y] == (6_500_000 + 2 * 25) * 100
    assert corner[segyio.TraceField.TRACE_SAMPLE_INTERVAL] == 2000
    assert corner[segyio.TraceField.TRACE_SAMPLE_COUNT] == SHAPE[2]
    assert corner[segyio.TraceField.DelayRecordingTime] == 100


def test_int16_segy_holds_the_amplitudes_within_its_quantisation(tmp_path, cube):
    amplitude, _ = cube
    path = write(tmp_path / "cube.sgy", amplitude, format=3)
    with segyio.open(path, strict=True) as f:
        assert f.bin[segyio.BinField.Format] == 3
        stored = inline_cube(f)
    assert stored.dtype == np.int16
    assert np.abs(stored / INT16_SCALE - amplitude).max() <= 0.5 / INT16_SCALE + 1e-6


def test_missing_traces_are_left_out_and_dead_ones_written_as_zeros(tmp_path, cube):
    amplitude, _ = cube
    missing = corner_missing(SHAPE[:2], 0.2)
    dead = random_dead(SHAPE[:2], 0.1) & ~missing
    assert 0.1 < missing.mean() < 0.3 and dead.any()
    path = write(tmp_path / "cube.sgy", amplitude, missing=missing, dead=dead)
    with pytest.raises(ValueError):  # not a regular cube any more
        segyio.open(path, strict=True).close()
    with segyio.open(path, ignore_geometry=True) as f:
        assert f.tracecount == (~missing).sum()
        for trace, header in zip(f.trace, f.header):
            i = list(INLINES).index(header[segyio.TraceField.INLINE_3D])
            x = list(CROSSLINES).index(header[segyio.TraceField.CROSSLINE_3D])
            assert not missing[i, x]
            dead_code = header[segyio.TraceField.TraceIdentificationCode] == 2
            assert dead_code == dead[i, x]
            assert np.array_equal(trace, 0 * amplitude[i, x] if dead[i, x] else amplitude[i, x])


def test_a_wrong_number_of_inlines_leaves_no_file(tmp_path, cube):
    amplitude, _ = cube
    path = tmp_path / "cube.sgy"
    with pytest.raises(ValueError, match="inlines"):
        write(path, amplitude[:-1])
    with pytest.raises(ValueError, match="shape"):
        write(path, amplitude[:, :-1])
    assert list(tmp_path.iterdir()) == []


def test_the_command_writes_a_cube_and_its_truth(tmp_path, capsys):
    synthetic_main(
        [str(tmp_path), "--cube", "4x5x30", "--cube-only", "--seed", "2", "--sorting", "crossline"]
        + ["--endian", "little", "--dead", "0.2"]
    )
    amplitude, mask = make_cube((4, 5, 30), seed=2)
    assert np.array_equal(np.load(tmp_path / "cube_mask.npy"), mask)
    with segyio.open(tmp_path / "cube.sgy", strict=True, endian="little") as f:
        stored = inline_cube(f)
        assert f.sorting == 1 and list(f.ilines) == [100, 101, 102, 103]
    alive = stored.any(axis=2)
    assert not alive.all() and np.array_equal(stored[alive], amplitude[alive])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.sgy", "cube_mask.npy"]
    assert "4x5x30 cube" in capsys.readouterr().out
