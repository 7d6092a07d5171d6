"""Generated seismic tiles with salt bodies, in the Kaggle TGS layout and formats.

    python -m salt.data.synthetic OUT_DIR --train N --test M --seed S [--section HxW [--section-only]]
        [--style seismic|speckle] [--frequency F] [--noise N] [--polarity 1|-1] [--gain G]
    python -m salt.data.synthetic OUT_DIR --cube IxXxT --cube-only [--sorting ...] [--endian ...]

Two styles (`--style`). `seismic`, the default: tiles cut from sections of an earth model
(`salt.data.earth_model`): layered sediments, dipped, folded, faulted and dragged up against
salt bodies (diapirs, domes, sheets) that are one fast, reflection-poor unit, imaged by the
reflectivity of their log-impedance convolved with a Ricker wavelet, smeared across traces, with
band-limited noise; salt so looks as in the TGS tiles, a smooth, dim body under a bright top, the
layers ending against its flanks. `--frequency`, `--noise`, `--polarity` and `--gain` fix its
look (`earth_model.Style`; drawn per section when not given). `speckle`, the first generator,
kept for comparison: each tile a reflectivity series folded and dipped, convolved with a Ricker
wavelet, plus noise, and a salt body (blob, body rising from the bottom, near-vertical flank)
drawn as a weak chaotic interior with a bright rim: salt as bright speckle, which a net trained
on the real tiles does not recognise. Either way about 39% of the tiles have no salt and about
1.5% are blank, as in the competition data. The same arguments write the same bytes.

`--section HxW` also writes one large section with several salt bodies: `section.npy` (float32
seismic amplitudes, zero mean, unit std, as a SEG-Y section would hold), `section.png` (the
same rendered as 8-bit grayscale like the tiles) and its truth `section_mask.png` (0/255);
`--section-only` writes the section and no tiles.

`--cube IxXxT` also writes a 3-D survey of I inlines, X crosslines and T samples with salt bodies
(`salt.data.synthetic_cube`): `cube.sgy` (SEG-Y, inlines numbered from 100, crosslines from 300,
4 ms) and its truth `cube_mask.npy` (uint8 0/1, (I, X, T)), streamed with a few inlines in memory;
`--sorting`, `--endian`, `--format`, `--missing` and `--dead` shape the SEG-Y file, and
`--cube-only` writes the cube and no tiles.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from salt.core.errors import DataError
from salt.core.files import atomic_path, write_text
from salt.data.earth_model import ANY_LOOK, Style, earth_tiles, make_earth_section, to_gray
from salt.data.io import write_png
from salt.data.padding import TILE
from salt.data.rle import rle_encode
from salt.data.synthetic_cube import write_cube
from salt.data.synthetic_seismic import (
    BLANK_FRACTION,
    BOUNDARY_GAIN,
    DEFAULT_STYLE,
    EMPTY_FRACTION,
    INTERIOR_STD,
    NOISE_STD,
    STYLES,
    random_wavelet,
    reflectivity_series,
)

SETTINGS_FILE = "synthetic.json"  # beside train.csv: the settings `generate` was called with


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise: a coarse random grid resized with cubic interpolation."""
    coarse = rng.normal(size=(cells, max(2, cells * shape[1] // shape[0]))).astype(np.float32)
    return cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def smooth_curve(rng: np.random.Generator, length: int, cells: int) -> np.ndarray:
    """A smooth random 1-D curve of `length` samples with about `cells` undulations."""
    coarse = rng.normal(size=(1, cells + 1)).astype(np.float32)
    return cv2.resize(coarse, (length, 1), interpolation=cv2.INTER_CUBIC)[0]


def layered_reflectivity(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Layer-boundary reflectivity, folded and dipped by a displacement that varies with x."""
    height, width = shape
    margin = height
    series = reflectivity_series(rng, height + 2 * margin)
    x = np.arange(width, dtype=np.float32)
    shift = rng.uniform(-0.4, 0.4) * x  # dip
    for _ in range(rng.integers(1, 4)):  # folds
        period = rng.uniform(0.5, 3) * width
        shift += (
            rng.uniform(0, 0.08) * height * np.sin(2 * np.pi * x / period + rng.uniform(0, 6.3))
        )
    map_y = np.arange(height, dtype=np.float32)[:, None] + margin + shift[None, :]
    map_x = np.zeros_like(map_y)
    column = series[:, None]
    return cv2.remap(
        column, map_x, map_y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )


def salt_mask(rng: np.random.Generator, shape: tuple[int, int], coverage: float) -> np.ndarray:
    height, width = shape
    kind = rng.choice(["blob", "bottom", "flank"], p=[0.55, 0.3, 0.15])
    if kind == "blob":
        field = smooth_noise(rng, shape, int(rng.integers(2, 6)))
        level = np.quantile(field, 1 - coverage)
        return (field > level).astype(np.uint8)
    wiggle_cells = int(rng.integers(2, 5))
    if kind == "bottom":
        top = height * (1 - coverage) + smooth_curve(rng, width, wiggle_cells) * 8
        return (np.arange(height)[:, None] >= top[None, :]).astype(np.uint8)
    edge = width * coverage + smooth_curve(rng, height, wiggle_cells) * 4
    mask = (np.arange(width)[None, :] < edge[:, None]).astype(np.uint8)
    return mask[:, ::-1].copy() if rng.random() < 0.5 else mask


def seismic_amplitude(
    rng: np.random.Generator, reflectivity: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Zero-mean seismic amplitudes (float32, unit std) with salt where `mask` is 1."""
    salt = mask.astype(np.float32)
    interior = rng.normal(0, INTERIOR_STD, reflectivity.shape).astype(np.float32)
    boundary = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).astype(
        np.float32
    )
    field = reflectivity * (1 - salt) + interior * salt + boundary * rng.uniform(*BOUNDARY_GAIN)
    wavelet = random_wavelet(rng)
    amplitude = np.asarray(
        cv2.filter2D(field, -1, wavelet[:, None], borderType=cv2.BORDER_REFLECT_101),
        dtype=np.float32,
    )
    amplitude += np.asarray(rng.normal(0, NOISE_STD, amplitude.shape), dtype=np.float32)
    amplitude /= amplitude.std() + 1e-6
    return amplitude


def to_image(rng: np.random.Generator, amplitude: np.ndarray) -> np.ndarray:
    """8-bit grayscale as in the competition tiles: 1 std is 25 to 45 gray levels around ~128."""
    image = 128 + rng.uniform(25, 45) * amplitude + rng.uniform(-10, 10)
    return np.clip(image, 0, 255).astype(np.uint8)


def render(rng: np.random.Generator, reflectivity: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Seismic image (uint8) of a reflectivity field with salt where `mask` is 1."""
    return to_image(rng, seismic_amplitude(rng, reflectivity, mask))


def coverage_target(rng: np.random.Generator) -> float:
    if rng.random() < EMPTY_FRACTION:
        return 0.0
    return float(np.clip(rng.beta(0.9, 1.3), 0.005, 0.985))


def speckle_tile(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (101, 101), mask uint8 {0, 1} (101, 101)) pair of the speckle style."""
    shape = (TILE, TILE)
    if rng.random() < BLANK_FRACTION:
        return np.full(shape, int(rng.integers(0, 256)), dtype=np.uint8), np.zeros(shape, np.uint8)
    coverage = coverage_target(rng)
    mask = salt_mask(rng, shape, coverage) if coverage else np.zeros(shape, np.uint8)
    return render(rng, layered_reflectivity(rng, shape), mask), mask


def make_tiles(
    rng: np.random.Generator, count: int, style: str = DEFAULT_STYLE, look: Style = ANY_LOOK
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` (image uint8 (101, 101), mask uint8 {0, 1}) tiles of `style`."""
    check_style(style)
    if style == "speckle":
        return [speckle_tile(rng) for _ in range(count)]
    return earth_tiles(rng, count, look)


def make_tile(
    rng: np.random.Generator, style: str = DEFAULT_STYLE
) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 (101, 101), mask uint8 {0, 1} (101, 101)) pair."""
    return make_tiles(rng, 1, style)[0]


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")


def make_section(
    height: int,
    width: int,
    seed: int = 0,
    amplitudes: bool = False,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
) -> tuple[np.ndarray, np.ndarray]:
    """One large section with several salt bodies: (image, {0, 1} mask).

    The image is uint8 like the tiles or, with `amplitudes`, the zero-mean float32 seismic
    amplitudes it is rendered from (what a SEG-Y section holds). `look` fixes the seismic
    style's knobs.
    """
    check_style(style)
    rng = np.random.default_rng(seed)
    if style == "seismic":
        bodies = max(1, min(4, round(width / max(height, 1) * 1.2)))
        section = make_earth_section((height, width), rng, look, bodies=bodies)
        if amplitudes:
            return section.amplitude, section.mask
        return to_gray(section.amplitude, rng.uniform(25, 40), 0.0), section.mask
    field = smooth_noise(rng, (height, width), max(3, height // 150))
    mask = (field > np.quantile(field, 0.8)).astype(np.uint8)
    amplitude = seismic_amplitude(rng, layered_reflectivity(rng, (height, width)), mask)
    return (amplitude if amplitudes else to_image(rng, amplitude)), mask


def unique_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < count:
        tile_id = rng.bytes(5).hex()
        if tile_id not in seen:
            seen.add(tile_id)
            ids.append(tile_id)
    return ids


def write_mask(path: Path, mask: np.ndarray) -> None:
    # as in the competition data: 16-bit 0/65535, but 8-bit when empty
    write_png(path, mask.astype(np.uint16) * 65535 if mask.any() else mask.astype(np.uint8))


def generate(
    out_dir,
    n_train: int = 400,
    n_test: int = 100,
    seed: int = 0,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
) -> Path:
    """Write `n_train` labelled and `n_test` test tiles of `style` in the Kaggle layout under
    `out_dir`."""
    check_style(style)
    out = Path(out_dir)
    for folder in ("train/images", "train/masks", "test/images"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = unique_ids(rng, n_train + n_test)
    train_ids, test_ids = ids[:n_train], ids[n_train:]
    rows = []
    train_tiles = make_tiles(rng, n_train, style, look)
    test_tiles = make_tiles(rng, n_test, style, look)
    for tile_id, (image, mask) in zip(train_ids, train_tiles, strict=True):
        write_png(out / "train/images" / f"{tile_id}.png", cv2.merge([image] * 3))
        write_mask(out / "train/masks" / f"{tile_id}.png", mask)
        rows.append(f"{tile_id},{rle_encode(mask)}\n")
    for tile_id, (image, _) in zip(test_ids, test_tiles, strict=True):
        write_png(out / "test/images" / f"{tile_id}.png", cv2.merge([image] * 3))
    depths = rng.integers(50, 960, len(ids))
    write_text(out / "depths.csv", "id,z\n" + "".join(f"{i},{z}\n" for i, z in zip(ids, depths)))
    write_text(
        out / "sample_submission.csv", "id,rle_mask\n" + "".join(f"{i},1 1\n" for i in test_ids)
    )
    settings = generated_settings(n_train, n_test, seed, style, look)
    write_text(out / SETTINGS_FILE, json.dumps(settings, indent=1) + "\n")
    write_text(out / "train.csv", "id,rle_mask\n" + "".join(rows))  # last: marks a complete set
    return out


def generated_settings(
    n_train: int = 400,
    n_test: int = 100,
    seed: int = 0,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
) -> dict:
    """What `generate` writes for these arguments, as recorded in SETTINGS_FILE: the counts,
    seed and style, and the seismic style's knobs (None: drawn per section)."""
    return dict(n_train=n_train, n_test=n_test, seed=seed, style=style, **asdict(look))


def check_generated_settings(out: Path, **options) -> None:
    """A data set at `out` that `data.synthetic` (`options`) would reuse must have been
    generated with those settings, as its SETTINGS_FILE records: else one line naming the
    folder and the keys that differ (or the missing record)."""
    fix = (
        "pass data.root=DIR of a new or empty folder to generate them, or data.synthetic=null "
        "to read this one as it is"
    )
    record = out / SETTINGS_FILE
    if not record.is_file():
        raise DataError(
            out,
            f"holds a data set but no {SETTINGS_FILE} recording the settings it was generated "
            f"with (generated before salt recorded them, or not generated), so data.synthetic "
            f"cannot reuse it: {fix}",
        )
    try:
        recorded = json.loads(record.read_text())
        if not isinstance(recorded, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise DataError(record, f"not a settings record ({error})") from None
    asked = generated_settings(**options)
    differ = [key for key in asked if recorded.get(key) != asked[key]]
    if differ:
        was = ", ".join(f"{key}={recorded.get(key)}" for key in differ)
        now = ", ".join(f"{key}={asked[key]}" for key in differ)
        raise DataError(
            out, f"generated with {was} ({SETTINGS_FILE}), but data.synthetic asks for {now}: {fix}"
        )


def generate_into_new_folder(out_dir, **options) -> Path:
    """Generated data at `out_dir` for `data.synthetic`, never mixed with other files.

    A folder with a train.csv is reused when its SETTINGS_FILE records these `options` (else
    refused in one line naming the keys that differ: a set generated with another style, count
    or seed is never trained on in its place). Otherwise `out_dir` must be missing or empty
    (a folder holding anything else, such as a half-downloaded Kaggle set or a typo for one,
    is refused in one line): the tiles are generated in a hidden sibling folder and renamed
    into place, so an interrupted generation leaves no half-written data set behind, and
    processes generating the same set at once (the folds of a parallel multirun) keep one.
    """
    out = Path(out_dir)
    if (out / "train.csv").is_file():
        check_generated_settings(out, **options)
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(
            out,
            "not empty and has no train.csv: refusing to generate synthetic data into it "
            "(pass data.root=DIR of a new or empty folder for generated data, or "
            "data.synthetic=null to read this one as a Kaggle-layout data set)",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        generate(staging, **options)
        try:
            staging.replace(out)  # over a missing or empty folder: one rename
        except OSError:
            if not (out / "train.csv").is_file():  # not another process's finished set
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _section_shape(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"expected a positive HEIGHTxWIDTH, got {text!r}")
    return height, width


def parse_cube_shape(text: str) -> tuple[int, int, int]:
    try:
        inlines, crosslines, samples = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected INLINESxCROSSLINESxSAMPLES, got {text!r}"
        ) from None
    if min(inlines, crosslines, samples) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive IxXxT, got {text!r}")
    return inlines, crosslines, samples


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be in 0..0.5, got {value}")
    return value


def write_section(
    out: Path,
    height: int,
    width: int,
    seed: int,
    style: str = DEFAULT_STYLE,
    look: Style = ANY_LOOK,
) -> None:
    """section.npy (float32 amplitudes), section.png (uint8) and section_mask.png (0/255)."""
    out.mkdir(parents=True, exist_ok=True)
    amplitude, mask = make_section(height, width, seed, True, style, look)
    image, _ = make_section(height, width, seed, False, style, look)
    with atomic_path(out / "section.npy") as tmp:
        np.save(tmp, amplitude)
    write_png(out / "section.png", image)
    write_png(out / "section_mask.png", mask * 255)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=_positive, default=400)
    parser.add_argument("--test", type=_positive, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--section",
        type=_section_shape,
        help="also write a HxW section beside the tiles: section.npy (amplitudes), section.png, "
        "section_mask.png (its truth)",
    )
    parser.add_argument(
        "--section-only", action="store_true", help="write the section and no tiles"
    )
    add_style_arguments(parser)
    add_cube_arguments(parser)
    args = parser.parse_args(argv)
    try:
        look_from(args).check()
    except ValueError as error:
        parser.error(str(error))
    if args.section_only and not args.section:
        parser.error("--section-only needs --section HxW")
    if args.cube_only and not args.cube:
        parser.error("--cube-only needs --cube IxXxT")
    if not (args.section_only or args.cube_only):
        generate(args.out_dir, args.train, args.test, args.seed, args.style, look_from(args))
        print(f"wrote {args.train} train and {args.test} test tiles to {args.out_dir}")
    if args.section:
        height, width = args.section
        write_section(args.out_dir, height, width, args.seed, args.style, look_from(args))
        print(f"wrote a {height}x{width} section to {args.out_dir}/section.npy (.png, _mask.png)")
    if args.cube:
        write_cube_from(args)


def add_style_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--style",
        choices=STYLES,
        default=DEFAULT_STYLE,
        help="seismic (the default): the earth model, salt as the TGS tiles show it; speckle: "
        "the first generator, salt as bright speckle, kept for comparison",
    )
    look = parser.add_argument_group("the seismic style's look (drawn per section when not given)")
    look.add_argument("--frequency", type=float, help="Ricker peak, cycles per sample (0.03-0.12)")
    look.add_argument("--noise", type=float, help="noise std relative to the signal (0.04-0.25)")
    look.add_argument(
        "--polarity", type=int, choices=(1, -1), help="1: the top of salt is a peak, -1 a trough"
    )
    look.add_argument("--gain", type=float, help="amplitude times 1 + GAIN * depth / depth")


def look_from(args: argparse.Namespace) -> Style:
    return Style(args.frequency, args.noise, args.polarity, args.gain)


def add_cube_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cube",
        type=parse_cube_shape,
        help="also write an IxXxT survey beside the tiles: cube.sgy, cube_mask.npy (its truth)",
    )
    parser.add_argument("--cube-only", action="store_true", help="write the cube and no tiles")
    parser.add_argument("--sorting", choices=("inline", "crossline"), default="inline")
    parser.add_argument("--endian", choices=("big", "little"), default="big")
    parser.add_argument(
        "--format", type=int, choices=(5, 3), default=5, help="5: IEEE float, 3: int16"
    )
    parser.add_argument(
        "--missing", type=_fraction, default=0.0, help="fraction of traces left out (a corner)"
    )
    parser.add_argument(
        "--dead", type=_fraction, default=0.0, help="fraction of traces written as zeros"
    )


def write_cube_from(args: argparse.Namespace) -> None:
    segy, mask = write_cube(
        args.out_dir,
        args.cube,
        seed=args.seed,
        missing_fraction=args.missing,
        dead_fraction=args.dead,
        style=args.style,
        look=look_from(args),
        sorting=args.sorting,
        endian=args.endian,
        format=args.format,
    )
    print(f"wrote a {'x'.join(map(str, args.cube))} cube to {segy} (truth: {mask.name})")


if __name__ == "__main__":
    main()
