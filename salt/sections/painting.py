"""Lines of a survey out for painting, and painted lines in as training tiles.

Out (`write_lines`): chosen inlines and crosslines as 8-bit PNGs at exactly the scaling the
survey's prediction feeds the nets (`Survey.scaling`, one for the whole cube), samples down the
rows and one column per trace, saved as RGB so that they can be painted in colour, with
`lines.json` (the survey, its geometry, the scaling, the lines) and `LEGEND.md` (the colours).

In (`painted_lines`, `mask_cube_lines`, `write_tiles`): a painted PNG per line (salt pure red,
not-salt pure blue, gray pixels unlabelled), a label array per line (`.npy`: 1 salt, 0 not
salt, -1 unlabelled) or a whole label cube on the survey's geometry, each checked against the
survey (axis, line number, size, colours or values); then 101x101 windows over each line at a
stride, the last one flush with the line's end, those holding a labelled pixel written in the
Kaggle layout with a per-pixel labelled mask beside the salt mask:

    ROOT/train/images/<id>.png     the tile of the scaled line (3 equal channels, 8-bit)
    ROOT/train/masks/<id>.png      salt 255, not-salt and unlabelled 0 (8-bit)
    ROOT/train/labelled/<id>.png   labelled 255, unlabelled 0 (8-bit)
    ROOT/train.csv                 id,rle_mask (salt.data.rle)
    ROOT/depths.csv                id,z (the sample value, ms or m, of the tile's first row)
    ROOT/painted.json              the survey, the scaling, the stride, the lines and tiles

Ids name the line and the window: `inline_0130_y000_x050` (its top row and left column in the
line). A line shorter than a tile is mirrored past its end as salt.section mirrors it
(reflect-101), its labels with it. The data root is built in a hidden folder beside it and
renamed into place at the end: a failure leaves nothing.

`paint_from_truth` paints a line from a true mask as a person would (a band along the salt's
outline and patches left unpainted), for trying the loop and measuring it without an editor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from salt.core.errors import DataError, SaltError
from salt.core.files import atomic_folder, atomic_path, write_json, write_text
from salt.data.io import write_png
from salt.data.padding import TILE
from salt.data.rle import rle_encode
from salt.sections.cube import AXES, ArrayCube, Survey
from salt.sections.seismic import Scaling, load_npy
from salt.sections.stitch import check_stride, reflect_index
from salt.sections.truth import read_truth

SALT, NOT_SALT, UNLABELLED = 1, 0, -1
SALT_RGB = (255, 0, 0)
NOT_SALT_RGB = (0, 0, 255)
LINES_JSON = "lines.json"
LEGEND_MD = "LEGEND.md"
PAINTED_JSON = "painted.json"
LINE_NAME = re.compile(r"(inline|crossline)_(-?\d+)\.(png|npy)", re.IGNORECASE)
DEFAULT_STRIDE = 50
DEFAULT_PERCENTILE = 99.0
TRACES_OF = {"inline": "crosslines", "crossline": "inlines"}  # the columns of a line

Cube = Survey | ArrayCube


# --- the survey's geometry and its lines ---------------------------------------------------------


def numbers_record(numbers: np.ndarray) -> dict[str, int]:
    numbers = np.asarray(numbers)
    step = int(numbers[1] - numbers[0]) if len(numbers) > 1 else 1
    return {
        "first": int(numbers[0]),
        "last": int(numbers[-1]),
        "step": step,
        "count": len(numbers),
    }


def geometry(cube: Cube) -> dict[str, Any]:
    """The survey's grid as lines.json and painted.json record it."""
    samples = cube.axes.samples
    return {
        "shape": list(cube.shape),
        "inlines": numbers_record(cube.axes.inlines),
        "crosslines": numbers_record(cube.axes.crosslines),
        "samples": {
            "first": float(samples[0]),
            "interval": cube.axes.sample_interval,
            "count": len(samples),
            "unit": "sample" if isinstance(cube, ArrayCube) else cube.axes.vertical_unit,
        },
    }


def same_grid(one: Any, other: Any) -> bool:
    """Whether two `geometry` records describe the same grid (the samples' unit aside: it is
    what --vertical says, not what the file holds)."""

    def grid(record: Any) -> Any:
        if not isinstance(record, dict) or not isinstance(record.get("samples"), dict):
            return record
        return {**record, "samples": {k: v for k, v in record["samples"].items() if k != "unit"}}

    return grid(one) == grid(other)


def geometry_text(record: dict[str, Any]) -> str:
    """A `geometry` record in words: inlines 100..159, crosslines 300..379, 150 samples."""
    try:
        words = [
            f"{axis}s {record[axis + 's']['first']}..{record[axis + 's']['last']}" for axis in AXES
        ]
        return ", ".join([*words, f"{record['samples']['count']} samples"])
    except (KeyError, TypeError):
        return "unknown geometry"


def scaling_record(scaling: Scaling, percentile: float) -> dict[str, Any]:
    return {
        "clip_percentile": percentile,
        "low": scaling.low,
        "high": scaling.high,
        "text": str(scaling),
    }


def survey_scaling(cube: Cube, percentile: float) -> Scaling:
    """The scaling salt.survey feeds the nets: one for the whole cube."""
    try:
        return cube.scaling(percentile)
    except ValueError as error:
        raise SaltError(f"--clip-percentile: {error}") from None


def line_numbers(cube: Cube, axis: str) -> np.ndarray:
    return cube.axes.inlines if axis == "inline" else cube.axes.crosslines


def numbers_text(axis: str, numbers: np.ndarray) -> str:
    record = numbers_record(numbers)
    text = f"{axis}s {record['first']}..{record['last']}"
    return text + (f" every {record['step']}" if record["step"] != 1 else "")


def line_index(cube: Cube, axis: str, number: int) -> int | None:
    """The index of line `number` along `axis`, None where the survey has no such line."""
    found = np.flatnonzero(line_numbers(cube, axis) == number)
    return int(found[0]) if len(found) else None


def line_shape(cube: Cube, axis: str) -> tuple[int, int]:
    """(samples, traces) of a line along `axis`."""
    return cube.shape[2], cube.shape[1] if axis == "inline" else cube.shape[0]


def line_name(axis: str, number: int, suffix: str = ".png") -> str:
    return f"{axis}_{number}{suffix}"


def describe_size(cube: Cube, axis: str) -> str:
    height, width = line_shape(cube, axis)
    return f"{width}x{height} ({TRACES_OF[axis]} x samples)"


# --- lines out ----------------------------------------------------------------------------------

LEGEND = """# Painting these lines

Each PNG is one line of {survey}: samples (depth or time) downwards, one column per trace,
the amplitudes scaled to gray exactly as the nets see them. Paint over them in any image
editor and save them under the same names, as PNG:

- **salt**: pure red, RGB (255, 0, 0);
- **not salt**: pure blue, RGB (0, 0, 255);
- **unlabelled**: anything left gray (red = green = blue) is not used for training, so paint
  only what you are sure of: a few strokes inside and outside the salt are enough.

Turn antialiasing (smoothing, feathering) off: a blended edge pixel is a colour that is neither
red nor blue nor gray, and the line is refused. Keep the image's size (no cropping, scaling or
rotating): each column is a trace, each row a sample. Any other colour is refused with the RGB
value and the number of its pixels.

Then: `python -m salt.paint tiles {folder} --survey {survey} --out DATA_ROOT`

Lines here: {lines}.
"""


@dataclass(frozen=True)
class LineOut:
    axis: str
    number: int
    index: int

    @property
    def file(self) -> str:
        return line_name(self.axis, self.number)


def requested_lines(cube: Cube, inlines: Sequence[int], crosslines: Sequence[int]) -> list[LineOut]:
    """The lines asked for, each once, in order; a number the survey lacks refused in one line."""
    lines: list[LineOut] = []
    for axis, numbers in (("inline", inlines), ("crossline", crosslines)):
        for number in numbers:
            index = line_index(cube, axis, number)
            if index is None:
                raise DataError(
                    cube.path,
                    f"no {axis} {number} ({numbers_text(axis, line_numbers(cube, axis))})",
                )
            line = LineOut(axis, int(number), index)
            if line not in lines:
                lines.append(line)
    if not lines:
        raise SaltError("pass the lines to write: --inline N or --crossline N (repeatable)")
    return lines


def painting_image(gray: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The (H, W, 3) RGB picture of a line painted with `labels` (1 salt red, 0 not-salt blue,
    -1 left gray)."""
    rgb = np.repeat(np.asarray(gray, dtype=np.uint8)[..., None], 3, axis=-1)
    rgb[labels == SALT] = SALT_RGB
    rgb[labels == NOT_SALT] = NOT_SALT_RGB
    return rgb


def write_rgb_png(path, rgb: np.ndarray) -> None:
    write_png(path, np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR


def paint_from_truth(
    truth: np.ndarray, unpainted: float = 0.3, seed: int = 0, band: int = 3
) -> np.ndarray:
    """Labels (1, 0, -1) of a line painted from its true mask (nonzero is salt) as a person
    paints: a band of `band` pixels either side of the salt's outline left unpainted, then
    rectangles left unpainted at random until at least `unpainted` of the pixels are."""
    if not 0 <= unpainted < 1:
        raise ValueError(f"the unpainted share must be in [0, 1), got {unpainted}")
    salt = np.asarray(truth) != 0
    labels = np.where(salt, SALT, NOT_SALT).astype(np.int8)
    if unpainted == 0:
        return labels
    kernel = np.ones((2 * band + 1, 2 * band + 1), dtype=np.uint8)
    as_bytes = salt.astype(np.uint8)
    left = cv2.dilate(as_bytes, kernel) != cv2.erode(as_bytes, kernel)
    rng = np.random.default_rng(seed)
    height, width = salt.shape
    for _ in range(10_000):
        if left.mean() >= unpainted:
            break
        h = int(rng.integers(max(1, height // 8), max(2, height // 3) + 1))
        w = int(rng.integers(max(1, width // 8), max(2, width // 3) + 1))
        top, start = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        left[top : top + h, start : start + w] = True
    labels[left] = UNLABELLED
    return labels


def existing_lines_json(out: Path, record: dict[str, Any], overwrite: bool) -> list[dict]:
    """The lines an earlier call wrote into `out` for the same survey and scaling (to keep in
    lines.json); lines of another survey or scaling refused unless `overwrite`."""
    path = out / LINES_JSON
    if not path.is_file():
        return []
    try:
        earlier = json.loads(path.read_text())
        same = same_grid(earlier["geometry"], record["geometry"]) and all(
            earlier[key] == record[key] for key in ("survey", "scaling")
        )
        lines = list(earlier["lines"])
    except (ValueError, KeyError, TypeError):
        same, lines = False, []
    if same:
        return lines
    if overwrite:
        return []
    raise DataError(
        path,
        "lines of another survey, geometry or scaling are in this folder: "
        "write these into another one, or pass --overwrite",
    )


def write_lines(
    cube: Cube,
    inlines: Sequence[int],
    crosslines: Sequence[int],
    out,
    percentile: float = DEFAULT_PERCENTILE,
    overwrite: bool = False,
    truth=None,
    unpainted: float = 0.3,
    seed: int = 0,
) -> dict[str, Any]:
    """OUT/<axis>_<N>.png for each line asked for, OUT/lines.json and OUT/LEGEND.md, written
    together at the end (none on a failure); with `truth` (a mask .npy of the cube's shape) the
    lines come painted from it (`paint_from_truth`). Returns lines.json's record."""
    out = Path(out)
    lines = requested_lines(cube, inlines, crosslines)
    truth_volume = None if truth is None else read_truth(truth, cube.shape, "survey")
    if not 0 <= unpainted < 1:
        raise SaltError(f"--unpainted: must be in [0, 1), got {unpainted}")
    scaling = survey_scaling(cube, percentile)
    if out.exists() and not out.is_dir():
        raise SaltError(f"{out}: not a folder")
    taken = [line.file for line in lines if (out / line.file).exists()]
    if taken and not overwrite:
        raise SaltError(
            f"{out / taken[0]}: exists (painted already?): pass --overwrite to replace "
            f"{'it' if len(taken) == 1 else f'it and {len(taken) - 1} more'}"
        )
    record: dict[str, Any] = {
        "survey": str(cube.path.resolve()),
        "geometry": geometry(cube),
        "scaling": scaling_record(scaling, percentile),
    }
    written = [
        {"axis": line.axis, "number": line.number, "index": line.index, "file": line.file}
        for line in lines
    ]
    earlier = existing_lines_json(out, record, overwrite) if out.is_dir() else []
    names = {line["file"] for line in written}
    record["lines"] = [line for line in earlier if line.get("file") not in names] + written
    if truth is not None:
        record["painted_from_truth"] = {
            "truth": str(Path(truth).resolve()),
            "unpainted": unpainted,
            "seed": seed,
            "files": [line.file for line in lines],
        }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SaltError(f"{out}: cannot create the output directory ({error.strerror})") from None
    with ExitStack() as files:
        for number, line in enumerate(lines):
            gray = scaling(cube.line(line.axis, line.index))
            if truth_volume is None:
                labels = np.full(gray.shape, UNLABELLED, dtype=np.int8)
            else:
                true = (
                    truth_volume[line.index]
                    if line.axis == "inline"
                    else truth_volume[:, line.index]
                )
                labels = paint_from_truth(np.asarray(true).T, unpainted, seed + number)
            write_rgb_png(
                files.enter_context(atomic_path(out / line.file)), painting_image(gray, labels)
            )
        write_json(files.enter_context(atomic_path(out / LINES_JSON)), record)
        all_files = ", ".join(line["file"] for line in record["lines"])
        write_text(
            files.enter_context(atomic_path(out / LEGEND_MD)),
            LEGEND.format(survey=cube.path, folder=out, lines=all_files),
        )
    return record


# --- painted lines in ---------------------------------------------------------------------------


@dataclass
class PaintedLine:
    """One labelled line: where it lies, where its labels come from, and how to read them
    ((samples, traces) int8: 1 salt, 0 not salt, -1 unlabelled)."""

    axis: str
    number: int
    index: int
    source: Path
    read: Callable[[], np.ndarray] = field(repr=False)


class PaintProblems(SaltError):
    """Every bad painted line, one DataError each (the command prints one line per problem)."""

    def __init__(self, problems: list[DataError]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def labels_problem(labels: np.ndarray, values: tuple[str, str]) -> str | None:
    if not np.any(labels != UNLABELLED):
        return f"no salt {values[0]} and no not-salt {values[1]} pixels: nothing is labelled"
    return None


def rgb_labels(rgb: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Labels of a painted (H, W, 3) RGB image, and what is wrong with its colours (None)."""
    r, g, b = (rgb[..., c].astype(np.int32) for c in range(3))
    salt = (r == SALT_RGB[0]) & (g == SALT_RGB[1]) & (b == SALT_RGB[2])
    not_salt = (r == NOT_SALT_RGB[0]) & (g == NOT_SALT_RGB[1]) & (b == NOT_SALT_RGB[2])
    gray = (r == g) & (g == b)
    labels = np.full(rgb.shape[:2], UNLABELLED, dtype=np.int8)
    labels[salt] = SALT
    labels[not_salt] = NOT_SALT
    unknown = ~(salt | not_salt | gray)
    if not unknown.any():
        return labels, None
    packed = (r << 16 | g << 8 | b)[unknown]
    colours, counts = np.unique(packed, return_counts=True)
    top = int(colours[np.argmax(counts)])
    colour = (top >> 16, (top >> 8) & 255, top & 255)
    total = int(unknown.sum())
    kinds = f" in {len(colours)} colours" if len(colours) > 1 else ""
    return labels, (
        f"{total} pixels of an unknown colour{kinds}, most of them RGB {colour} "
        f"({int(counts.max())} pixels): paint salt RGB {SALT_RGB} and not-salt RGB "
        f"{NOT_SALT_RGB} with antialiasing off, and leave the rest gray (unlabelled)"
    )


def read_painted_png(path: Path, shape: tuple[int, int], size: str) -> np.ndarray:
    """Labels of a painted line PNG, checked to be `shape` (samples, traces) and to hold only
    salt red, not-salt blue and gray."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(path, "not a readable image")
    if image.dtype != np.uint8:
        raise DataError(path, f"expected an 8-bit image, got {image.dtype} pixels")
    if image.shape[:2] != shape:
        raise DataError(path, f"expected {size}, got {image.shape[1]}x{image.shape[0]}")
    if image.ndim == 2:
        rgb = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[2] < 3:
        rgb = np.repeat(image[..., :1], 3, axis=-1)  # gray (with alpha)
    else:
        rgb = image[..., 2::-1]  # BGR(A) -> RGB, alpha dropped
    labels, problem = rgb_labels(rgb)
    problem = problem or labels_problem(labels, (f"RGB {SALT_RGB}", f"RGB {NOT_SALT_RGB}"))
    if problem:
        raise DataError(path, problem)
    return labels


def values_problem(values: np.ndarray) -> str | None:
    """What is wrong with label values other than 1, 0 and -1 (None: nothing)."""
    values = np.asarray(values)
    valid = (values == SALT) | (values == NOT_SALT) | (values == UNLABELLED)
    if valid.all():
        return None
    bad = values[~valid]
    found, counts = np.unique(bad, return_counts=True)
    shown = ", ".join(f"{v:g}" for v in found[:3].astype(np.float64))
    shown += ", ..." if len(found) > 3 else ""
    return (
        f"values other than 1 (salt), 0 (not salt) and -1 (unlabelled): {shown} "
        f"({int(counts.sum())} pixels)"
    )


def as_labels(array: np.ndarray) -> np.ndarray:
    return np.asarray(array).astype(np.int8)


def read_label_npy(path: Path, shape: tuple[int, int], axis: str) -> np.ndarray:
    """Labels of a line from a (samples, traces) .npy array of 1, 0 and -1."""
    array = load_npy(path)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise DataError(path, f"expected numbers 1, 0, -1, got dtype {array.dtype}")
    if array.shape != shape:
        raise DataError(
            path, f"expected shape {shape} (samples, {TRACES_OF[axis]}), got {array.shape}"
        )
    problem = values_problem(array) or labels_problem(array, ("(1)", "(0)"))
    if problem:
        raise DataError(path, problem)
    return as_labels(array)


def painted_lines(paint_dir, cube: Cube) -> list[PaintedLine]:
    """Every painted line of PAINT_DIR (<axis>_<N>.png or .npy), checked against the survey;
    every bad one reported together (PaintProblems). Other files (lines.json, LEGEND.md, an
    editor's own files, hidden ones) are left alone."""
    paint_dir = Path(paint_dir)
    if not paint_dir.is_dir():
        raise DataError(paint_dir, "no such folder")
    problems: list[DataError] = []
    lines: list[PaintedLine] = []
    seen: dict[tuple[str, int], Path] = {}
    for path in sorted(paint_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".png", ".npy"):
            continue
        if not path.is_file():
            continue
        match = LINE_NAME.fullmatch(path.name)
        if match is None:
            problems.append(
                DataError(
                    path,
                    "the name names no line: expected inline_<N> or crossline_<N> "
                    "with .png or .npy (N: the line's number)",
                )
            )
            continue
        axis, number = match.group(1).lower(), int(match.group(2))
        index = line_index(cube, axis, number)
        if index is None:
            numbers = numbers_text(axis, line_numbers(cube, axis))
            problems.append(DataError(path, f"no {axis} {number} in {cube.path} ({numbers})"))
            continue
        if (axis, number) in seen:
            problems.append(
                DataError(path, f"{axis} {number} is given twice: here and in {seen[axis, number]}")
            )
            continue
        seen[axis, number] = path
        shape = line_shape(cube, axis)
        try:
            if path.suffix.lower() == ".png":
                labels = read_painted_png(path, shape, describe_size(cube, axis))
            else:
                labels = read_label_npy(path, shape, axis)
        except DataError as problem:
            problems.append(problem)
            continue
        lines.append(PaintedLine(axis, number, index, path, read=partial(np.asarray, labels)))
    if problems:
        raise PaintProblems(problems)
    if not lines:
        raise DataError(
            paint_dir, "no painted lines in it (inline_<N>.png, crossline_<N>.png or .npy)"
        )
    return lines


class MaskCube:
    """A label cube on the survey's geometry (1 salt, 0 not salt, -1 unlabelled): a .npy
    volume [inline, crossline, sample] of the survey's shape, or a SEG-Y file of its inline,
    crossline and sample numbers (a trace missing from it is unlabelled)."""

    def __init__(self, path, cube: Cube) -> None:
        self.path = Path(path)
        self.survey: Survey | None = None
        self.volume: np.ndarray | None = None
        suffix = self.path.suffix.lower()
        if suffix == ".npy":
            if not self.path.is_file():
                raise DataError(self.path, "no such file")
            volume = load_npy(self.path)
            if volume.shape != cube.shape:
                raise DataError(
                    self.path,
                    f"a label cube of shape {volume.shape}, the survey's is {cube.shape} "
                    "(inlines, crosslines, samples)",
                )
            if not (np.issubdtype(volume.dtype, np.number) or volume.dtype == bool):
                raise DataError(self.path, f"expected numbers 1, 0, -1, got dtype {volume.dtype}")
            self.volume = volume
        elif suffix in (".sgy", ".segy"):
            survey = Survey(self.path)
            for axis in AXES:
                mine, theirs = line_numbers(survey, axis), line_numbers(cube, axis)
                if not np.array_equal(mine, theirs):
                    raise DataError(
                        self.path,
                        f"not on the survey's geometry: {numbers_text(axis, mine)}, "
                        f"the survey's {numbers_text(axis, theirs)}",
                    )
            if survey.shape[2] != cube.shape[2]:
                raise DataError(
                    self.path,
                    f"not on the survey's geometry: {survey.shape[2]} samples a trace, "
                    f"the survey's {cube.shape[2]}",
                )
            self.survey = survey
        else:
            raise DataError(self.path, "expected a label cube as .npy or SEG-Y (.sgy, .segy)")

    def line(self, axis: str, index: int) -> np.ndarray:
        """One line's labels, (samples, traces) int8."""
        return as_labels(self.line_values(axis, index))

    def line_values(self, axis: str, index: int) -> np.ndarray:
        """One line's values as they are stored, (samples, traces); a trace missing from a SEG-Y
        label cube unlabelled."""
        if self.volume is not None:
            traces = self.volume[index] if axis == "inline" else self.volume[:, index]
            return np.asarray(traces).T
        assert self.survey is not None
        values = self.survey.line(axis, index)
        values[:, self.survey.line_traces(axis, index) < 0] = UNLABELLED
        return values

    def close(self) -> None:
        if self.survey is not None:
            self.survey.close()


def mask_cube_lines(path, cube: Cube, axes: Sequence[str] = AXES) -> list[PaintedLine]:
    """The lines along `axes` of a label cube that hold a labelled voxel, found in one pass over
    its inlines (every value checked to be 1, 0 or -1)."""
    mask = MaskCube(path, cube)
    labelled_inlines = np.zeros(cube.shape[0], dtype=bool)
    labelled_crosslines = np.zeros(cube.shape[1], dtype=bool)
    for index in range(cube.shape[0]):
        values = mask.line_values("inline", index)  # (samples, crosslines)
        problem = values_problem(values)
        if problem:
            raise DataError(mask.path, f"inline {int(cube.axes.inlines[index])}: {problem}")
        labelled = values != UNLABELLED
        labelled_inlines[index] = labelled.any()
        labelled_crosslines |= labelled.any(axis=0)
    if not labelled_inlines.any():
        raise DataError(mask.path, "no salt (1) and no not-salt (0) voxels: nothing is labelled")
    lines = []
    for axis in AXES:
        if axis not in axes:
            continue
        numbers = line_numbers(cube, axis)
        labelled = labelled_inlines if axis == "inline" else labelled_crosslines
        for position in np.flatnonzero(labelled):
            line = int(position)
            lines.append(
                PaintedLine(
                    axis, int(numbers[line]), line, mask.path, read=partial(mask.line, axis, line)
                )
            )
    return lines


def merged_lines(lines: list[PaintedLine], more: list[PaintedLine]) -> list[PaintedLine]:
    """Both lists, a line given in both refused (one line each)."""
    given = {(line.axis, line.number): line.source for line in lines}
    twice = [
        DataError(
            line.source,
            f"{line.axis} {line.number} is given twice: here and in {given[line.axis, line.number]}",
        )
        for line in more
        if (line.axis, line.number) in given
    ]
    if twice:
        raise PaintProblems(twice)
    return lines + more


# --- tiles ---------------------------------------------------------------------------------------


def window_origins(length: int, stride: int) -> list[int]:
    """Where windows start along an axis of `length` pixels: every `stride`, the last one flush
    with the end (so every pixel is covered); one at 0 for an axis shorter than a tile."""
    if length <= TILE:
        return [0]
    origins = list(range(0, length - TILE + 1, stride))
    if origins[-1] != length - TILE:
        origins.append(length - TILE)
    return origins


def mirrored(array: np.ndarray) -> np.ndarray:
    """`array` (H, W) mirrored past its bottom and right edges (reflect-101, as salt.section's
    tiles run past a section's edges) up to a tile where it is shorter than one."""
    height, width = array.shape
    if height >= TILE and width >= TILE:
        return array
    rows = reflect_index(np.arange(max(height, TILE)), height)
    columns = reflect_index(np.arange(max(width, TILE)), width)
    return array[np.ix_(rows, columns)]


def line_tiles(
    image: np.ndarray, labels: np.ndarray, stride: int
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(top, left, image tile, labels tile) of every window of a line holding a labelled pixel."""
    image, labels = mirrored(image), mirrored(labels)
    height, width = image.shape
    for top in window_origins(height, stride):
        for left in window_origins(width, stride):
            window = labels[top : top + TILE, left : left + TILE]
            if np.any(window != UNLABELLED):
                yield top, left, image[top : top + TILE, left : left + TILE], window


def tile_id(axis: str, number: int, top: int, left: int) -> str:
    return f"{axis}_{number:04d}_y{top:03d}_x{left:03d}"


def check_data_root(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise SaltError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SaltError(f"{out}: exists and is not empty: pass --overwrite to replace it")


def write_tiles(
    cube: Cube,
    lines: Sequence[PaintedLine],
    out,
    stride: int = DEFAULT_STRIDE,
    percentile: float = DEFAULT_PERCENTILE,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The training tiles of `lines` in the Kaggle layout at OUT (see the module docstring),
    built beside it and renamed into place at the end. Returns painted.json's record."""
    out = Path(out)
    try:
        check_stride(stride)
    except ValueError as error:
        raise SaltError(f"--{error}") from None
    if not lines:
        raise SaltError("no painted lines: pass PAINT_DIR, --mask-cube, or both")
    scaling = survey_scaling(cube, percentile)
    check_data_root(out, overwrite)
    samples = cube.axes.samples
    record: dict[str, Any] = {
        "survey": str(cube.path.resolve()),
        "geometry": geometry(cube),
        "scaling": scaling_record(scaling, percentile),
        "stride": stride,
        "tile": TILE,
        "tiles": 0,
        "lines": [],
    }
    with atomic_folder(out) as staging:
        train = staging / "train"
        for folder in ("images", "masks", "labelled"):
            (train / folder).mkdir(parents=True)
        rows, depths = ["id,rle_mask\n"], ["id,z\n"]
        for line in lines:
            image = scaling(cube.line(line.axis, line.index))
            labels = line.read()
            tiles = 0
            for top, left, tile, window in line_tiles(image, labels, stride):
                name = tile_id(line.axis, line.number, top, left)
                mask = (window == SALT).astype(np.uint8) * np.uint8(255)
                labelled = (window != UNLABELLED).astype(np.uint8) * np.uint8(255)
                write_png(train / "images" / f"{name}.png", cv2.merge([tile] * 3))
                write_png(train / "masks" / f"{name}.png", mask)
                write_png(train / "labelled" / f"{name}.png", labelled)
                rows.append(f"{name},{rle_encode(mask)}\n")
                depths.append(f"{name},{float(samples[min(top, len(samples) - 1)]):g}\n")
                tiles += 1
            record["lines"].append(
                {
                    "axis": line.axis,
                    "number": line.number,
                    "index": line.index,
                    "source": str(line.source),
                    "labelled_pixels": int(np.count_nonzero(labels != UNLABELLED)),
                    "salt_pixels": int(np.count_nonzero(labels == SALT)),
                    "tiles": tiles,
                }
            )
            record["tiles"] += tiles
        write_text(staging / "depths.csv", "".join(depths))
        write_text(staging / "train.csv", "".join(rows))
        write_json(staging / PAINTED_JSON, record)
    return record


def lines_json_percentile(paint_dir, cube: Cube) -> float | None:
    """The clip percentile PAINT_DIR's lines.json was written with (None without one); a
    lines.json of another survey geometry refused."""
    if paint_dir is None:
        return None
    path = Path(paint_dir) / LINES_JSON
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        written_for, percentile = record["geometry"], float(record["scaling"]["clip_percentile"])
    except (ValueError, KeyError, TypeError):
        raise DataError(path, "not a lines.json of salt.paint lines") from None
    if not same_grid(written_for, geometry(cube)):
        raise DataError(
            path,
            f"written for another survey ({geometry_text(written_for)}: {record.get('survey')}) "
            f"than {cube.path} ({geometry_text(geometry(cube))})",
        )
    return percentile
