"""Lines out for painting and painted lines in as training tiles (`python -m salt.paint`,
salt.sections.painting): the lines are the survey's at the scaling salt.survey feeds the nets,
the tiles are windows of those lines with the painting's salt and labelled masks, the data root
is read by salt.data.io, and every bad painted line is one line of error with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from salt import paint
from salt.data.io import load_train, read_mask
from salt.data.rle import rle_decode
from salt.data.synthetic_cube import make_cube, write_cube, write_segy_cube
from salt.sections.cube import ArrayCube, Survey
from salt.sections.lines import LineDataset
from salt.sections.painting import paint_from_truth, window_origins
from tests.helpers.runs import run_main

pytest.importorskip("segyio")

SHAPE = (6, 260, 120)  # inlines x crosslines x samples: inlines longer than a tile, crosslines
# narrower than one (6 traces: mirrored as salt.section mirrors them)
INLINES = 100 + np.arange(SHAPE[0])  # the generator's numbering
CROSSLINES = 300 + np.arange(SHAPE[1])
TILE = 101
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def cube(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A generated survey (cube.sgy) and its true salt (I, X, T)."""
    segy, mask = write_cube(tmp_path_factory.mktemp("cube"), SHAPE, seed=1)
    return segy, np.load(mask)


def scaled_line(segy: Path, axis: str, index: int) -> np.ndarray:
    """The line as salt.survey feeds it to the nets: its LineDataset item's image."""
    survey = Survey(segy)
    return LineDataset(survey, [(axis, index)], survey.scaling(99.0))[0]["image"]


def true_line(truth: np.ndarray, axis: str, index: int) -> np.ndarray:
    return (truth[index] if axis == "inline" else truth[:, index]).T


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def paint_png(path: Path, labels: np.ndarray) -> None:
    """Paint a written line PNG as an editor would (Pillow, RGB): salt red, not-salt blue."""
    rgb = read_rgb(path).copy()
    rgb[labels == 1] = RED
    rgb[labels == 0] = BLUE
    Image.fromarray(rgb).save(path)


def person_labels(truth_line: np.ndarray, seed: int) -> np.ndarray:
    """Labels from the truth with about 30% of the pixels left unpainted, and the right part of
    a wide line (columns 120 on) not painted at all."""
    rng = np.random.default_rng(seed)
    labels = truth_line.astype(np.int8)
    labels[rng.random(labels.shape) < 0.3] = -1
    labels[:, 120:] = -1
    return labels


def lines_out(segy: Path, out: Path, capsys, *more) -> None:
    status, _, err = run_main(
        paint.main,
        ["lines", segy, "--inline", 102, "--crossline", 310, "--out", out, *more],
        capsys,
    )
    assert status == 0, err


@pytest.fixture
def painted(cube, tmp_path, capsys) -> tuple[Path, dict[tuple[str, int], np.ndarray]]:
    """inline 102 and crossline 310 written out and painted from the truth, part unpainted."""
    segy, truth = cube
    folder = tmp_path / "paint"
    lines_out(segy, folder, capsys)
    labels = {}
    for axis, number, index in (("inline", 102, 2), ("crossline", 310, 10)):
        labels[axis, index] = person_labels(true_line(truth, axis, index), seed=index)
        paint_png(folder / f"{axis}_{number}.png", labels[axis, index])
    return folder, labels


def mirrored(array: np.ndarray) -> np.ndarray:
    """Reflect-101 past the bottom and right edges up to a tile (numpy's "reflect")."""
    rows, columns = (max(0, TILE - n) for n in array.shape)
    return np.pad(array, ((0, rows), (0, columns)), mode="reflect")


def test_lines_are_the_survey_lines_at_the_scaling_the_nets_see(cube, tmp_path, capsys):
    segy, _ = cube
    out = tmp_path / "paint"
    lines_out(segy, out, capsys)
    for name, axis, index in (
        ("inline_102.png", "inline", 2),
        ("crossline_310.png", "crossline", 10),
    ):
        rgb = read_rgb(out / name)
        expected = scaled_line(segy, axis, index)
        assert rgb.shape == (*expected.shape, 3)  # depth down, a column per trace
        assert np.array_equal(rgb[..., 0], expected)
        assert np.array_equal(rgb[..., 1], expected) and np.array_equal(rgb[..., 2], expected)
    record = json.loads((out / "lines.json").read_text())
    scaling = Survey(segy).scaling(99.0)
    assert record["survey"] == str(segy.resolve())
    assert record["geometry"]["shape"] == list(SHAPE)
    assert record["geometry"]["inlines"] == {"first": 100, "last": 105, "step": 1, "count": 6}
    assert record["geometry"]["crosslines"]["count"] == SHAPE[1]
    assert record["geometry"]["samples"] == {
        "first": 0.0,
        "interval": 4.0,
        "count": SHAPE[2],
        "unit": "ms",
    }
    assert record["scaling"]["clip_percentile"] == 99.0
    assert (record["scaling"]["low"], record["scaling"]["high"]) == (scaling.low, scaling.high)
    assert [(line["axis"], line["number"], line["file"]) for line in record["lines"]] == [
        ("inline", 102, "inline_102.png"),
        ("crossline", 310, "crossline_310.png"),
    ]
    legend = (out / "LEGEND.md").read_text()
    assert "(255, 0, 0)" in legend and "(0, 0, 255)" in legend and "antialiasing" in legend


def test_lines_out_protect_a_painting_and_refuse_a_line_not_in_the_survey(
    cube, painted, tmp_path, capsys
):
    segy, _ = cube
    folder, _ = painted
    before = (folder / "inline_102.png").read_bytes()
    status, _, err = run_main(paint.main, ["lines", segy, "--inline", 102, "--out", folder], capsys)
    assert status == 1 and err.strip().splitlines() == [
        f"error: {folder / 'inline_102.png'}: exists (painted already?): pass --overwrite to "
        "replace it"
    ]
    assert (folder / "inline_102.png").read_bytes() == before
    status, _, err = run_main(
        paint.main, ["lines", segy, "--crossline", 311, "--out", folder], capsys
    )
    assert status == 0, err  # a line more: lines.json lists all three
    record = json.loads((folder / "lines.json").read_text())
    assert [line["file"] for line in record["lines"]] == [
        "inline_102.png",
        "crossline_310.png",
        "crossline_311.png",
    ]
    status, _, err = run_main(
        paint.main,
        ["lines", segy, "--crossline", 312, "--out", folder, "--clip-percentile", 98],
        capsys,
    )
    assert status == 1 and err.strip().splitlines() == [
        f"error: {folder / 'lines.json'}: lines of another survey, geometry or scaling are in "
        "this folder: write these into another one, or pass --overwrite"
    ]
    assert not (folder / "crossline_312.png").exists()
    status, _, err = run_main(
        paint.main, ["lines", segy, "--crossline", 299, "--out", tmp_path / "new"], capsys
    )
    assert status == 1 and err.strip().splitlines() == [
        f"error: {segy}: no crossline 299 (crosslines 300..559)"
    ]
    assert not (tmp_path / "new").exists()
    status, _, err = run_main(paint.main, ["lines", segy, "--out", tmp_path / "new"], capsys)
    assert status == 1 and err.strip().splitlines() == [
        "error: pass the lines to write: --inline N or --crossline N (repeatable)"
    ]
    assert not (tmp_path / "new").exists()


def test_painted_lines_become_tiles_of_the_scaled_lines(cube, painted, tmp_path, capsys):
    segy, _ = cube
    folder, labels = painted
    root = tmp_path / "data"
    status, out, err = run_main(
        paint.main, ["tiles", folder, "--survey", segy, "--out", root], capsys
    )
    assert status == 0, err
    ids = [row.split(",")[0] for row in (root / "train.csv").read_text().splitlines()[1:]]
    # inline 102: 120 samples x 260 crosslines, windows at rows 0, 19 and columns 0, 50, 100,
    # 150, 159 (flush with the end); columns 120 on are unpainted, so 150 and 159 are dropped.
    # crossline 310: 120 x 6, mirrored to 120 x 101: rows 0, 19, one column
    expected_ids = [f"crossline_0310_y{top:03d}_x000" for top in (0, 19)] + [
        f"inline_0102_y{top:03d}_x{left:03d}" for top in (0, 19) for left in (0, 50, 100)
    ]
    assert ids == expected_ids
    assert (root / "depths.csv").read_text().splitlines()[1:3] == [
        "crossline_0310_y000_x000,0",
        "crossline_0310_y019_x000,76",  # row 19 at 4 ms a sample
    ]
    covered = {key: np.zeros(mirrored(value).shape, dtype=bool) for key, value in labels.items()}
    for tile_id in ids:
        axis, number, y, x = tile_id.split("_")
        index = 2 if axis == "inline" else 10
        top, left = int(y[1:]), int(x[1:])
        window = (slice(top, top + TILE), slice(left, left + TILE))
        line_labels = mirrored(labels[axis, index])
        image = cv2.imread(str(root / "train/images" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (TILE, TILE, 3)
        assert np.array_equal(image[..., 0], mirrored(scaled_line(segy, axis, index))[window])
        mask = cv2.imread(str(root / "train/masks" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        labelled = cv2.imread(str(root / "train/labelled" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(mask, (line_labels[window] == 1) * np.uint8(255))
        assert np.array_equal(labelled, (line_labels[window] != -1) * np.uint8(255))
        covered[axis, index][window] = True
    for key, value in labels.items():  # every labelled pixel is in a tile
        assert covered[key][mirrored(value) != -1].all()
    train = load_train(root)  # the Kaggle layout reader takes it, masks checked against the RLE
    assert train.ids == expected_ids and train.images.shape == (len(ids), TILE, TILE)
    assert train.depths is not None and not np.isnan(train.depths).any()
    assert "7 tiles" not in out and f"{len(ids)} tiles" in out
    summary = json.loads((root / "painted.json").read_text())
    assert summary["tiles"] == len(ids) and summary["stride"] == 50
    assert [(line["axis"], line["number"], line["tiles"]) for line in summary["lines"]] == [
        ("crossline", 310, 2),
        ("inline", 102, 6),
    ]


def test_label_arrays_and_a_label_cube_give_the_tiles_of_their_painting(cube, tmp_path, capsys):
    """An inline as a .npy of 1/0/-1 gives the tiles the same painting as a PNG gives; a label
    cube (.npy or SEG-Y, -1 where unlabelled) gives every line holding a labelled voxel."""
    segy, truth = cube
    labels = person_labels(true_line(truth, "inline", 4), seed=3)
    as_png, as_npy = tmp_path / "png", tmp_path / "npy"
    as_npy.mkdir()
    status, _, err = run_main(paint.main, ["lines", segy, "--inline", 104, "--out", as_png], capsys)
    assert status == 0, err
    paint_png(as_png / "inline_104.png", labels)
    np.save(as_npy / "inline_104.npy", labels)
    for folder in (as_png, as_npy):
        status, _, err = run_main(
            paint.main, ["tiles", folder, "--survey", segy, "--out", folder / "data"], capsys
        )
        assert status == 0, err
    for name in ("train.csv", "depths.csv"):
        assert (as_png / "data" / name).read_text() == (as_npy / "data" / name).read_text()
    cube_labels = np.full(SHAPE, -1, dtype=np.int16)
    cube_labels[:, 20] = truth[:, 20]  # crossline 320 labelled: every inline crosses it
    np.save(tmp_path / "labels.npy", cube_labels)
    write_segy_cube(
        tmp_path / "labels.sgy",
        cube_labels.astype(np.float32),
        inline_numbers=INLINES,
        crossline_numbers=CROSSLINES,
    )
    for mask, axes, lines in (
        ("labels.npy", "both", {("crossline", 320)} | {("inline", int(n)) for n in INLINES}),
        ("labels.sgy", "both", {("crossline", 320)} | {("inline", int(n)) for n in INLINES}),
        ("labels.npy", "crossline", {("crossline", 320)}),
    ):
        root = tmp_path / f"{mask}-{axes}"
        status, _, err = run_main(
            paint.main,
            ["tiles", "--mask-cube", tmp_path / mask, "--axes", axes, "--survey", segy]
            + ["--out", root],
            capsys,
        )
        assert status == 0, err
        summary = json.loads((root / "painted.json").read_text())
        assert {(line["axis"], line["number"]) for line in summary["lines"]} == lines
        train = load_train(root)
        crossline = [i for i, name in enumerate(train.ids) if name.startswith("crossline_0320")]
        assert [train.ids[i] for i in crossline] == [
            "crossline_0320_y000_x000",
            "crossline_0320_y019_x000",
        ]
        expected = mirrored(true_line(truth, "crossline", 20))
        assert np.array_equal(train.truth[crossline[1]], expected[19 : 19 + TILE, :TILE])
        labelled = cv2.imread(str(root / "train/labelled/crossline_0320_y000_x000.png"), 0)
        assert (labelled == 255).all()
        if axes == "both":  # an inline: only its column at crossline 320 is labelled
            labelled = cv2.imread(str(root / "train/labelled/inline_0100_y000_x000.png"), 0)
            assert np.array_equal(np.flatnonzero(labelled.any(axis=0)), [20])
    assert (tmp_path / "labels.npy-both" / "train.csv").read_text() == (
        tmp_path / "labels.sgy-both" / "train.csv"
    ).read_text()
    missing = np.zeros(SHAPE[:2], dtype=bool)
    missing[0, 20] = True  # inline 100's trace on crossline 320: not in the file, unlabelled
    write_segy_cube(
        tmp_path / "holes.sgy",
        cube_labels.astype(np.float32),
        inline_numbers=INLINES,
        crossline_numbers=CROSSLINES,
        missing=missing,
    )
    status, _, err = run_main(
        paint.main,
        ["tiles", "--mask-cube", tmp_path / "holes.sgy", "--axes", "crossline"]
        + ["--survey", segy, "--out", tmp_path / "holes"],
        capsys,
    )
    assert status == 0, err
    labelled = cv2.imread(str(tmp_path / "holes/train/labelled/crossline_0320_y000_x000.png"), 0)
    assert (labelled[:, 0] == 0).all() and (labelled[:, 1:6] == 255).all()


def test_a_npy_cube_is_scaled_as_the_same_cube_in_segy(tmp_path, capsys):
    amplitude, truth = make_cube((4, 30, 110), seed=2)
    np.save(tmp_path / "cube.npy", amplitude)
    write_segy_cube(
        tmp_path / "cube.sgy", amplitude, inline_numbers=range(4), crossline_numbers=range(30)
    )
    assert ArrayCube(tmp_path / "cube.npy").scaling() == Survey(tmp_path / "cube.sgy").scaling()
    np.save(tmp_path / "truth.npy", truth)
    status, _, err = run_main(
        paint.main,
        ["lines", tmp_path / "cube.npy", "--crossline", 7, "--out", tmp_path / "paint"]
        + ["--truth", tmp_path / "truth.npy", "--unpainted", 0.4],
        capsys,
    )
    assert status == 0, err
    rgb = read_rgb(tmp_path / "paint" / "crossline_7.png")
    salt = (rgb == RED).all(axis=-1)
    not_salt = (rgb == BLUE).all(axis=-1)
    gray = (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])
    assert (salt | not_salt | gray).all() and 0.4 <= gray.mean() < 0.8
    assert np.array_equal(salt, truth[:, 7].T.astype(bool) & ~gray)
    line = scaled_line(tmp_path / "cube.sgy", "crossline", 7)
    assert np.array_equal(rgb[..., 0][gray], line[gray])
    status, _, err = run_main(
        paint.main,
        ["tiles", tmp_path / "paint", "--survey", tmp_path / "cube.npy", "--out", tmp_path / "d"],
        capsys,
    )
    assert status == 0, err
    assert load_train(tmp_path / "d").ids == [
        "crossline_0007_y000_x000",
        "crossline_0007_y009_x000",
    ]


def test_person_painting_leaves_the_share_unpainted_and_paints_the_rest_true():
    truth = np.zeros((120, 200), dtype=np.uint8)
    truth[40:90, 60:150] = 1
    labels = paint_from_truth(truth, unpainted=0.3, seed=0)
    assert 0.3 <= (labels == -1).mean() < 0.6
    painted = labels != -1
    assert np.array_equal(labels[painted], truth[painted])
    assert (labels[38:43, 100] == -1).all()  # the outline is left unpainted
    assert (paint_from_truth(truth, unpainted=0) == truth).all()


@pytest.mark.parametrize("length", [50, 101, 102, 151, 260])
@pytest.mark.parametrize("stride", [1, 50, 101])
def test_windows_cover_every_pixel_the_last_flush_with_the_end(length, stride):
    origins = window_origins(length, stride)
    covered = np.zeros(max(length, TILE), dtype=bool)
    for origin in origins:
        covered[origin : origin + TILE] = True
    assert covered.all() and origins[0] == 0
    assert origins[-1] == max(0, length - TILE)
    assert all(0 < b - a <= stride for a, b in zip(origins, origins[1:]))


def bad_png_size(folder: Path) -> str:
    path = folder / "inline_102.png"
    Image.fromarray(read_rgb(path)[:, :-1]).save(path)
    return f"{path}: expected 260x120 (crosslines x samples), got 259x120"


def bad_line_number(folder: Path) -> str:
    (folder / "inline_102.png").rename(folder / "inline_107.png")
    return f"{folder / 'inline_107.png'}: no inline 107 in {{segy}} (inlines 100..105)"


def bad_name(folder: Path) -> str:
    (folder / "inline_102.png").rename(folder / "my_inline.png")
    return (
        f"{folder / 'my_inline.png'}: the name names no line: expected inline_<N> or "
        "crossline_<N> with .png or .npy (N: the line's number)"
    )


def bad_nothing_painted(folder: Path) -> str:
    path = folder / "inline_102.png"
    rgb = read_rgb(path).copy()
    gray = rgb.max(axis=-1, keepdims=True)  # the painting wiped: every pixel gray again
    Image.fromarray(np.repeat(gray, 3, axis=-1)).save(path)
    return (
        f"{path}: no salt RGB (255, 0, 0) and no not-salt RGB (0, 0, 255) pixels: "
        "nothing is labelled"
    )


def bad_colour(folder: Path) -> str:
    path = folder / "inline_102.png"
    rgb = read_rgb(path).copy()
    rgb[5, 5:10] = (254, 0, 0)  # antialiased red
    rgb[6, 5:7] = (128, 0, 130)
    Image.fromarray(rgb).save(path)
    return (
        f"{path}: 7 pixels of an unknown colour in 2 colours, most of them RGB (254, 0, 0) "
        "(5 pixels): paint salt RGB (255, 0, 0) and not-salt RGB (0, 0, 255) with "
        "antialiasing off, and leave the rest gray (unlabelled)"
    )


def bad_npy_values(folder: Path) -> str:
    labels = np.zeros((SHAPE[2], SHAPE[1]), dtype=np.int8)
    labels[:3, :] = 2
    np.save(folder / "inline_103.npy", labels)
    return (
        f"{folder / 'inline_103.npy'}: values other than 1 (salt), 0 (not salt) and -1 "
        f"(unlabelled): 2 ({3 * SHAPE[1]} pixels)"
    )


def bad_npy_shape(folder: Path) -> str:
    np.save(folder / "crossline_400.npy", np.zeros((SHAPE[0], SHAPE[2]), dtype=np.int8))
    return (
        f"{folder / 'crossline_400.npy'}: expected shape (120, 6) (samples, inlines), got (6, 120)"
    )


def bad_twice(folder: Path) -> str:
    np.save(folder / "inline_0102.npy", np.zeros((SHAPE[2], SHAPE[1]), dtype=np.int8))
    return f"{folder / 'inline_102.png'}: inline 102 is given twice: here and in {folder / 'inline_0102.npy'}"


BAD = {
    "wrong size": [bad_png_size],
    "line not in the survey": [bad_line_number],
    "name without a line": [bad_name],
    "nothing painted": [bad_nothing_painted],
    "unknown colour": [bad_colour],
    "npy values": [bad_npy_values],
    "npy shape": [bad_npy_shape],
    "a line twice": [bad_twice],
    "two bad lines": [bad_npy_shape, bad_colour],
}


@pytest.mark.parametrize("spoil", BAD.values(), ids=BAD.keys())
def test_a_bad_painted_line_is_one_line_of_error_and_nothing_is_written(
    spoil, cube, painted, tmp_path, capsys
):
    segy, _ = cube
    folder, _ = painted
    expected = sorted(f"error: {problem(folder)}".replace("{segy}", str(segy)) for problem in spoil)
    before = sorted(p.name for p in tmp_path.iterdir())
    status, out, err = run_main(
        paint.main, ["tiles", folder, "--survey", segy, "--out", tmp_path / "data"], capsys
    )
    assert status == 1 and out == ""
    assert sorted(err.strip().splitlines()) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no data root, no hidden folder


def test_bad_label_cubes_and_settings_are_one_line_and_write_nothing(
    cube, painted, tmp_path, capsys
):
    segy, truth = cube
    folder, _ = painted
    np.save(tmp_path / "small.npy", np.zeros((6, 259, 120), dtype=np.int8))
    np.save(tmp_path / "empty.npy", np.full(SHAPE, -1, dtype=np.int8))
    np.save(tmp_path / "inline.npy", truth.astype(np.int8))  # inline 102 given twice
    values = truth.astype(np.int8)
    values[3, 7, :2] = 5
    np.save(tmp_path / "values.npy", values)
    write_segy_cube(
        tmp_path / "other.sgy",
        truth.astype(np.float32),
        inline_numbers=INLINES,
        crossline_numbers=CROSSLINES + 1,
    )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    other = tmp_path / "other"  # painted lines whose lines.json is another survey's
    other.mkdir()
    (other / "inline_102.png").write_bytes((folder / "inline_102.png").read_bytes())
    record = json.loads((folder / "lines.json").read_text())
    record["geometry"]["samples"]["count"] = 121
    (other / "lines.json").write_text(json.dumps(record))
    tiles = ["tiles", "--survey", segy, "--out"]
    cases = [
        (
            [*tiles, tmp_path / "data", "--mask-cube", tmp_path / "small.npy"],
            f"{tmp_path / 'small.npy'}: a label cube of shape (6, 259, 120), the survey's is "
            "(6, 260, 120) (inlines, crosslines, samples)",
        ),
        (
            [*tiles, tmp_path / "data", "--mask-cube", tmp_path / "empty.npy"],
            f"{tmp_path / 'empty.npy'}: no salt (1) and no not-salt (0) voxels: nothing is "
            "labelled",
        ),
        (
            [*tiles, tmp_path / "data", "--mask-cube", tmp_path / "values.npy"],
            f"{tmp_path / 'values.npy'}: inline 103: values other than 1 (salt), 0 (not salt) "
            "and -1 (unlabelled): 5 (2 pixels)",
        ),
        (
            [*tiles, tmp_path / "data", "--mask-cube", tmp_path / "other.sgy"],
            f"{tmp_path / 'other.sgy'}: not on the survey's geometry: crosslines 301..560, the "
            "survey's crosslines 300..559",
        ),
        (
            [*tiles, tmp_path / "data", folder, "--mask-cube", tmp_path / "inline.npy"],
            f"{tmp_path / 'inline.npy'}: inline 102 is given twice: here and in "
            f"{folder / 'inline_102.png'}\n"
            f"error: {tmp_path / 'inline.npy'}: crossline 310 is given twice: here and in "
            f"{folder / 'crossline_310.png'}",
        ),
        (
            [*tiles, tmp_path / "full", folder],
            f"{tmp_path / 'full'}: exists and is not empty: pass --overwrite to replace it",
        ),
        (
            [*tiles, tmp_path / "data", other],
            f"{other / 'lines.json'}: written for another survey (inlines 100..105, crosslines "
            f"300..559, 121 samples: {segy.resolve()}) than {segy} (inlines 100..105, "
            "crosslines 300..559, 120 samples)",
        ),
        (
            [*tiles, tmp_path / "data", folder, "--stride", 0],
            "--stride must be in 1..101 so that tiles overlap or touch, got 0",
        ),
        (
            [*tiles, tmp_path / "data"],
            "pass PAINT_DIR (the painted lines), --mask-cube MASK, or both",
        ),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in cases:
        status, out, err = run_main(paint.main, argv, capsys)
        assert (status, out) == (1, ""), argv
        assert err.strip() == f"error: {message}"  # one line each
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["x.txt"]


def test_a_failure_while_writing_leaves_nothing_and_overwrite_replaces_the_root(
    cube, painted, tmp_path, capsys, monkeypatch
):
    segy, _ = cube
    folder, _ = painted
    root = tmp_path / "data"
    root.mkdir()
    (root / "old.txt").write_text("an earlier data set")
    written = []

    def fail_on_the_fifth(path, array):
        written.append(path)
        if len(written) == 5:
            raise OSError(28, "No space left on device")
        assert cv2.imwrite(str(path), array)

    monkeypatch.setattr("salt.sections.painting.write_png", fail_on_the_fifth)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["tiles", folder, "--survey", segy, "--out", root, "--overwrite"]
    status, _, err = run_main(paint.main, argv, capsys)
    assert status == 1
    assert err.strip().splitlines() == [
        f"error: {root}: could not be written (No space left on device)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p.name for p in root.iterdir()] == ["old.txt"]
    monkeypatch.undo()
    status, _, err = run_main(paint.main, argv, capsys)
    assert status == 0, err
    assert not (root / "old.txt").exists() and (root / "train.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    first = (root / "train.csv").read_text().splitlines()[1].split(",")
    assert np.array_equal(read_mask(root / "train/masks" / f"{first[0]}.png"), rle_decode(first[1]))
