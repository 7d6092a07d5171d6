"""Pictures of a survey (salt.sections.pictures): slices and 3-D bodies as PNG files."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from salt.sections import pictures
from salt.sections.axes import CubeAxes
from salt.sections.pictures import (
    BODIES_SIZE,
    SALT_ALPHA,
    SALT_COLOR,
    SLICES_SIZE,
    bodies_figure,
    body_ids_by_size,
    body_surface,
    salt_outline,
    slices_figure,
    tinted_section,
)

pytest.importorskip("skimage")
TEST_DPI = 30  # the drawing is the same; writing slide-sized PNGs is what takes the time


SLIDE_DPI = pictures.DPI


@pytest.fixture(autouse=True)
def small_pictures(monkeypatch):
    monkeypatch.setattr(pictures, "DPI", TEST_DPI)


@pytest.fixture
def full_size(monkeypatch):
    """Pictures at the module's own DPI, as the survey writes them."""
    monkeypatch.setattr(pictures, "DPI", SLIDE_DPI)


def survey_axes(shape: tuple[int, int, int], vertical: str = "time") -> CubeAxes:
    inlines, crosslines, samples = shape
    return CubeAxes(
        inlines=100 + 2 * np.arange(inlines),
        crosslines=300 + np.arange(crosslines),
        samples=8.0 * np.arange(samples) + 500,
        vertical=vertical,
        bin_size=(25.0, 12.5),
    )


def pixels(size: tuple[float, float]) -> tuple[int, int]:
    return round(size[0] * pictures.DPI), round(size[1] * pictures.DPI)


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def slices_of(volume: np.ndarray, position: tuple[int, int, int]) -> dict[str, np.ndarray]:
    inline, crossline, sample = position
    return {
        "inline": volume[inline],
        "crossline": volume[:, crossline],
        "slice": volume[:, :, sample],
    }


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


@pytest.mark.parametrize("probability", [False, True])
def test_slices_are_a_png_of_the_documented_size(tmp_path, probability, request):
    if not probability:  # one at the size the survey writes
        request.getfixturevalue("full_size")
    shape, position = (30, 40, 50), (10, 25, 20)
    seismic = np.random.default_rng(0).integers(0, 256, shape).astype(np.uint8)
    salt = ball(shape, (12, 20, 25), 9)
    salt = salt * np.float32(0.8) if probability else salt
    path = slices_figure(
        tmp_path / "out" / "slices.png",
        slices_of(seismic, position),
        slices_of(salt, position),
        survey_axes(shape),
        position,
    )
    assert path == tmp_path / "out" / "slices.png"
    assert png_size(path) == pixels(SLICES_SIZE)
    assert probability or png_size(path) == (2700, 1008)
    assert [p.name for p in path.parent.iterdir()] == ["slices.png"]  # no temporary left


def test_slices_of_a_cube_smaller_than_a_tile_without_salt(tmp_path):
    shape = (2, 3, 1)
    seismic = np.full(shape, 128, np.uint8)
    salt = np.zeros(shape, bool)
    path = slices_figure(
        tmp_path / "s.png",
        slices_of(seismic, (1, 2, 0)),
        slices_of(salt, (1, 2, 0)),
        survey_axes(shape, "depth"),
        (1, 2, 0),
    )
    assert png_size(path) == pixels(SLICES_SIZE)


def test_slices_that_do_not_fit_the_survey_are_refused(tmp_path):
    shape = (6, 7, 8)
    seismic = slices_of(np.zeros(shape, np.uint8), (1, 2, 3))
    salt = slices_of(np.zeros(shape, bool), (1, 2, 3))
    with pytest.raises(ValueError, match="outside"):
        slices_figure(tmp_path / "s.png", seismic, salt, survey_axes(shape), (6, 0, 0))
    with pytest.raises(ValueError, match=r"salt\['slice'\]: expected shape \(6, 7\)"):
        salt["slice"] = salt["slice"].T
        slices_figure(tmp_path / "s.png", seismic, salt, survey_axes(shape), (1, 2, 3))
    assert not (tmp_path / "s.png").exists()


def test_a_tinted_section_blends_the_salt_colour_as_the_salt_is_certain():
    seismic = np.array([[0, 100, 200, 200, 50]], np.uint8)
    rgba = tinted_section(seismic, np.array([[0.0, 0.5, 1.0, np.nan, True]]))
    assert rgba.dtype == np.uint8 and rgba.shape == (1, 5, 4)
    assert (rgba[..., 3] == 255).all()  # opaque: the seismic is under the salt
    salt_rgb = np.array(to_rgb(SALT_COLOR)) * 255
    opacity = np.array([0, SALT_ALPHA / 2, SALT_ALPHA, 0, SALT_ALPHA])
    gray = seismic[0, :, None].astype(float)
    expected = gray + (salt_rgb - gray) * opacity[:, None]
    assert np.abs(rgba[0, :, :3] - expected).max() <= 0.5 + 1e-4


def test_the_salt_outline_is_the_half_level_in_survey_coordinates():
    """A square of salt over cells 2..4 of 0..7 (across) and 1..2 of 0..4 (down): the 0.5 line
    runs half a cell outside it, at the coordinates of the cells' centres."""
    salt = np.zeros((8, 5), bool)
    salt[2:5, 1:3] = True
    across, down = 300 + 2 * np.arange(8), 500 + 8.0 * np.arange(5)
    (line,) = salt_outline(salt, across, down)
    assert line.shape[1] == 2
    assert np.allclose([line[:, 0].min(), line[:, 0].max()], [300 + 2 * 1.5, 300 + 2 * 4.5])
    assert np.allclose([line[:, 1].min(), line[:, 1].max()], [500 + 8 * 0.5, 500 + 8 * 2.5])
    assert salt_outline(np.zeros((8, 5)), across, down) == []


def test_bodies_are_ordered_largest_first():
    labels = np.zeros((4, 4, 4), int)
    labels[0, 0, :3] = 2
    labels[1, :, :] = 5
    labels[3, 3, 3] = 1
    assert body_ids_by_size(labels) == [(5, 16), (2, 3), (1, 1)]
    assert body_ids_by_size(np.zeros((2, 2, 2), int)) == []


def test_no_salt_gives_a_picture_too(tmp_path):
    path = bodies_figure(tmp_path / "b.png", np.zeros((5, 6, 7), np.int32), survey_axes((5, 6, 7)))
    assert png_size(path) == pixels(BODIES_SIZE)


def test_one_body_cut_by_the_survey_side(tmp_path, full_size):
    shape = (20, 24, 30)
    labels = ball(shape, (0, 12, 15), 8).astype(np.int32)
    path = bodies_figure(tmp_path / "b.png", labels, survey_axes(shape))
    assert png_size(path) == pixels(BODIES_SIZE)


def test_more_bodies_than_colours_downsampled_by_a_step(tmp_path):
    full, step = (40, 36, 60), (2, 3, 4)
    shape = tuple(len(range(0, n, s)) for n, s in zip(full, step))
    labels = np.zeros(shape, np.int32)
    for body in range(10):  # ten small boxes, the first largest
        i, x = divmod(body, 5)
        labels[i * 8 + 1 : i * 8 + 7, x * 2 + 1 : x * 2 + 2, 2 : 12 - body // 2] = body + 1
    path = bodies_figure(tmp_path / "b.png", labels, survey_axes(full), step)
    assert png_size(path) == pixels(BODIES_SIZE)
    with pytest.raises(ValueError, match="every"):
        bodies_figure(tmp_path / "c.png", labels, survey_axes(full))


def test_a_survey_smaller_than_a_tile_with_a_one_voxel_body(tmp_path):
    labels = np.zeros((1, 2, 3), np.int32)
    labels[0, 1, 1] = 1
    path = bodies_figure(tmp_path / "b.png", labels, survey_axes((1, 2, 3), "depth"))
    assert png_size(path) == pixels(BODIES_SIZE)


def test_a_body_smaller_than_the_marching_step_still_gets_a_surface(tmp_path, monkeypatch):
    one_voxel = np.zeros((9, 9, 9), bool)
    one_voxel[4, 4, 4] = True
    vertices, faces = body_surface(one_voxel, step_size=4)
    assert len(faces) > 0
    assert np.allclose(vertices.mean(axis=0), 4, atol=0.5)
    monkeypatch.setattr(pictures, "MAX_FACES", 2_000)
    labels = np.zeros((40, 40, 40), np.int32)  # a large body makes the faces budget's step > 1
    labels[5:35, 5:35, 5:35] = 1
    labels[38, 38, 38] = 2
    assert pictures._faces_budget_step([labels == 1]) > 1
    path = bodies_figure(tmp_path / "b.png", labels, survey_axes(labels.shape))
    assert png_size(path) == pixels(BODIES_SIZE)
