"""How real generated seismic looks to nets: transfer from real tiles to generated data and back.

    python -m salt.bench.transfer --real DATA_ROOT --out DIR [--real-run RUN] [--generated-run RUN]
        [--styles speckle,seismic] [--tiles 800] [--section 400x1200] [--cube 100x120x150]
        [--figure PNG]

- real -> generated (`--real-run`, a run trained on the real tiles): for each generator style,
  its competition score (threshold 0.5, flip TTA) on `--tiles` generated tiles (seed 1000), its
  IoU on a generated section (`python -m salt.section`, seed 3) and its 3-D IoU on a generated
  cube (`python -m salt.survey`, seed 1); against its own score on the real validation fold
  (its oof.npz) and its IoU on the real validation tiles that have salt (pooled: the salt
  pixels' intersection over their union). The target: generated at least 0.8 of real.
- generated -> real (`--generated-run`, a run trained on generated tiles only): its score on the
  real validation fold of the real run's split (fold 0 of `DATA_ROOT`'s split as salt makes it),
  on the tiles that have salt, its pooled IoU there, and "predict no salt" (the share of empty
  tiles). Targets: on tiles with salt, at least half the real-trained net's; on the fold, above
  no salt.
- the statistics both kinds of tiles are compared on (gray level per tile, the vertical
  gradient inside salt against outside, the vertical amplitude spectrum's centroid, coverage).

`--figure` draws the statistics (gray-level histograms, vertical amplitude spectra, coverage of
the tiles with salt) and a grid of real tiles beside generated ones. Prints the tables, writes
OUT/results.json. Predictions run on the CPU, one thread per core.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from salt.core.files import write_json
from salt.core.metrics import pooled_iou, tgs_scores
from salt.core.rundir import RunDir
from salt.data.earth_model import Style
from salt.data.folds import load_or_make_folds
from salt.data.io import TileSet, load_train
from salt.data.synthetic import STYLES, generate, parse_cube_shape, write_section
from salt.data.synthetic_cube import write_cube
from salt.inference.tiles import predict_ensemble

TILE_SEED, SECTION_SEED, CUBE_SEED = 1000, 3, 1


def tile_figures(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Competition score, score on the tiles with salt, pooled IoU there, and no salt's score."""
    scores = tgs_scores(prediction, truth).numpy()
    salted = truth.reshape(len(truth), -1).any(axis=1)
    return {
        "score": float(scores.mean()),
        "score_salted": float(scores[salted].mean()),
        "iou_salted": pooled_iou(prediction[salted], truth[salted]),
        "no_salt": float((~salted).mean()),
        "tiles": int(len(truth)),
    }


def predicted(run: Path, images: np.ndarray) -> np.ndarray:
    checkpoints = RunDir(run).checkpoint_files(["auto"])
    probabilities = predict_ensemble(checkpoints, images, tta=["none", "hflip"]).masks
    return (probabilities > 0.5).astype(np.uint8)


def real_validation(real_root: Path, run: Path) -> TileSet:
    """The tiles of the real validation fold of `run`'s split."""
    tiles = load_train(real_root, check_masks=False)
    config = RunDir(run).read_config()
    if config is None:
        raise RuntimeError(f"{run}: no config.yaml")
    data = config["data"]
    folds = load_or_make_folds(
        Path(run) / "folds.csv", tiles.ids, tiles.truth, data["n_folds"], data["fold_seed"]
    )
    fold = folds.set_index("id").loc[tiles.ids, "fold"].to_numpy()
    return tiles.subset(np.flatnonzero(fold == data["fold"]))


def command_figure(command: list[str], pattern: str) -> float:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    match = re.search(pattern, result.stdout)
    if match is None:
        raise RuntimeError(f"{' '.join(command)}: no {pattern!r} in {result.stdout[-1000:]}")
    return float(match.group(1))


def tile_statistics(tiles: TileSet) -> dict[str, float]:
    """What generated tiles are compared with real ones on (blank tiles left out)."""
    images = tiles.images.astype(np.float32)
    masks = tiles.truth.astype(bool)
    live = images.reshape(len(images), -1).std(axis=1) > 0
    images, masks = images[live], masks[live]
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    mixed = (coverage > 0.1) & (coverage < 0.9)
    gradient = np.abs(np.diff(images, axis=1))
    inside = gradient[mixed][masks[mixed][:, 1:]].mean()
    outside = gradient[mixed][~masks[mixed][:, 1:]].mean()
    columns = images - images.mean(axis=1, keepdims=True)
    spectrum = np.abs(np.fft.rfft(columns, axis=1)).mean(axis=(0, 2))
    frequencies = np.fft.rfftfreq(images.shape[1])
    salted = coverage[coverage > 0]
    return {
        "gray_mean": float(images.mean()),
        "tile_std_p10": float(np.percentile(images.std(axis=(1, 2)), 10)),
        "tile_std_p90": float(np.percentile(images.std(axis=(1, 2)), 90)),
        "tile_mean_spread": float(images.mean(axis=(1, 2)).std()),
        "gradient_inside_over_outside": float(inside / outside),
        "spectrum_centroid": float((frequencies * spectrum).sum() / spectrum.sum()),
        "empty_share": float((coverage == 0).mean()),
        "coverage_median_salted": float(np.median(salted)) if len(salted) else 0.0,
    }


def statistics_figure(sets: dict[str, TileSet], path: Path, seed: int = 0) -> Path:
    """Gray-level histograms, vertical amplitude spectra and salted coverage of each set of
    tiles, and six tiles with salt of each, salt outlined."""
    from salt.analysis.plots import new_figure, overlay, save_figure

    figure = new_figure(12, 4 + 2.1 * len(sets))
    grid = figure.add_gridspec(1 + len(sets), 6, height_ratios=[2.2] + [1.0] * len(sets))
    histogram, spectra, coverage = (
        figure.add_subplot(grid[0, 2 * k : 2 * k + 2]) for k in range(3)
    )
    rng = np.random.default_rng(seed)
    for row, (name, tiles) in enumerate(sets.items(), 1):
        images = tiles.images.astype(np.float32)
        live = images.reshape(len(images), -1).std(axis=1) > 0
        histogram.hist(
            images[live].ravel(), bins=64, range=(0, 255), density=True, histtype="step", label=name
        )
        columns = images[live] - images[live].mean(axis=1, keepdims=True)
        spectrum = np.abs(np.fft.rfft(columns, axis=1)).mean(axis=(0, 2))
        spectra.plot(
            np.fft.rfftfreq(images.shape[1])[1:], spectrum[1:] / spectrum[1:].max(), label=name
        )
        share = tiles.truth.reshape(len(tiles.truth), -1).mean(axis=1)
        salted = np.sort(share[share > 0])
        coverage.plot(
            salted,
            np.arange(1, len(salted) + 1) / len(salted),
            label=f"{name} ({(share == 0).mean():.0%} empty)",
        )
        candidates = np.flatnonzero((share > 0.1) & (share < 0.9) & live)
        for column, index in enumerate(rng.choice(candidates, min(6, len(candidates)), False)):
            ax = figure.add_subplot(grid[row, column])
            ax.imshow(overlay(tiles.images[index], tiles.truth[index]), interpolation="nearest")
            ax.set_axis_off()
            if column == 0:
                ax.set_title(name, fontsize=9, loc="left")
    histogram.set(title="gray levels (blank tiles left out)", xlabel="gray level")
    spectra.set(title="vertical amplitude spectrum", xlabel="cycles per pixel")
    coverage.set(title="coverage of the tiles with salt (CDF)", xlabel="salt share of the tile")
    for ax in (histogram, spectra, coverage):
        ax.legend(fontsize=7)
    return save_figure(figure, path)


def generated_data(
    out: Path, style: str, tiles: int, section: tuple[int, int], cube
) -> dict[str, Path]:
    folder = out / f"generated-{style}"
    if not (folder / "train.csv").is_file():
        generate(folder, n_train=tiles, n_test=1, seed=TILE_SEED, style=style)
    if not (folder / "section.npy").is_file():
        write_section(folder, section[0], section[1], SECTION_SEED, style, Style())
    if not (folder / "cube.sgy").is_file():
        write_cube(folder, cube, seed=CUBE_SEED, style=style)
    return {
        "root": folder,
        "section": folder / "section.npy",
        "section_mask": folder / "section_mask.png",
        "cube": folder / "cube.sgy",
        "cube_mask": folder / "cube_mask.npy",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salt.bench.transfer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--real", type=Path, required=True, help="the real TGS data root")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real-run", type=Path, help="a run trained on the real tiles")
    parser.add_argument("--generated-run", type=Path, help="a run trained on generated tiles")
    parser.add_argument("--styles", default=",".join(reversed(STYLES)))
    parser.add_argument("--tiles", type=int, default=800)
    parser.add_argument("--section", default="400x1200")
    parser.add_argument("--cube", type=parse_cube_shape, default=(100, 120, 150))
    parser.add_argument("--figure", type=Path, help="draw the statistics and tiles here (PNG)")
    args = parser.parse_args(argv)
    styles = [s for s in args.styles.split(",") if s]
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        parser.error(f"--styles: unknown {', '.join(unknown)} (choose from {', '.join(STYLES)})")
    height, width = (int(v) for v in args.section.lower().split("x"))
    section = (height, width)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"styles": styles, "statistics": {}}
    real_tiles = load_train(args.real, check_masks=False)
    results["statistics"]["real"] = tile_statistics(real_tiles)
    data = {s: generated_data(args.out, s, args.tiles, section, args.cube) for s in styles}
    for style in styles:
        results["statistics"][style] = tile_statistics(load_train(data[style]["root"]))
    print("statistics:", json.dumps(results["statistics"], indent=1))
    if args.figure:
        sets = {"real (TGS)": real_tiles}
        sets.update({f"generated, {s}": load_train(data[s]["root"]) for s in styles})
        print(statistics_figure(sets, args.figure))

    if args.real_run:
        oof = RunDir(args.real_run).read_oof()
        truth = oof["masks"].astype(np.uint8)
        real = tile_figures((oof["probabilities"] > 0.5).astype(np.uint8), truth)
        row: dict = {"real": real}
        for style in styles:
            tiles = load_train(data[style]["root"])
            figures = tile_figures(predicted(args.real_run, tiles.images), tiles.truth)
            work = args.out / f"predicted-{style}"
            common = ["--runs", str(args.real_run), "--tta", "none", "hflip"]
            figures["section_iou"] = command_figure(
                [sys.executable, "-m", "salt.section", str(data[style]["section"]), *common]
                + ["--out", str(work / "section"), "--truth", str(data[style]["section_mask"])],
                r"IoU against .*: ([0-9.]+)",
            )
            figures["cube_iou"] = command_figure(
                [sys.executable, "-m", "salt.survey", str(data[style]["cube"]), *common]
                + ["--out", str(work / "survey"), "--truth", str(data[style]["cube_mask"])]
                + ["--no-pictures", "--overwrite"],
                r"3-D IoU ([0-9.]+)",
            )
            figures["tiles_against_real"] = figures["score"] / real["score"]
            figures["section_against_real"] = figures["section_iou"] / real["iou_salted"]
            figures["cube_against_real"] = figures["cube_iou"] / real["iou_salted"]
            row[style] = figures
        results["real_to_generated"] = row
        print("real -> generated:", json.dumps(row, indent=1))

    if args.generated_run:
        reference = args.real_run or args.generated_run
        validation = real_validation(args.real, reference)
        figures = tile_figures(predicted(args.generated_run, validation.images), validation.truth)
        results["generated_to_real"] = figures
        print("generated -> real:", json.dumps(figures, indent=1))
    write_json(args.out / "results.json", results)


if __name__ == "__main__":
    main()
