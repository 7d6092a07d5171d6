"""Pictures of a run, drawn with matplotlib's Agg renderer (no display needed).

Every training run writes RUN_DIR/plots/ (`plots: true` in conf/train.yaml):

    curves.png             train/val loss, validation score and learning rate per epoch
    thresholds.png         out-of-fold score against the probability threshold
    overlays.png           the best and the worst validation images: image, truth, prediction
    score_by_coverage.png  out-of-fold score per coverage class

`python -m salt.plots RUN_DIR [...]` draws them again from a run directory. `salt.predict`
writes `<out>.overlays.png`, a grid of test predictions, beside the submission. The figure
functions return `matplotlib.figure.Figure` objects, which notebooks display as they are.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from salt.analysis.oof import (
    COVERAGE_LABELS,
    Run,
    best_and_worst,
    depth_bins,
    load_run,
    oof_tiles,
    run_oof_table,
    score_by,
)
from salt.core.errors import SaltError
from salt.core.files import atomic_path
from salt.core.metrics import DEFAULT_SWEEP_THRESHOLDS, sweep_thresholds
from salt.core.rundir import RunDir
from salt.data.io import TileSet

DPI = 80
PALETTE_COLORS = 96  # enough for gray tiles with two tints; keeps the demo overlays near 140 KB
TRUTH_COLOR = (0.1, 0.85, 0.25)
PREDICTION_COLOR = (1.0, 0.25, 0.1)
# A wider range than training's sweep (0.30..0.70), to show the shape of the curve.
PLOT_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)


def new_figure(width: float, height: float) -> Figure:
    """A figure on the Agg canvas, outside pyplot's global state (nothing to close)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path, dpi: int = DPI) -> Path:
    """Write `figure` as a palette PNG at `path` (through a temporary file, so never
    half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        palette = image.convert("RGB").quantize(
            colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT
        )
    with atomic_path(path) as tmp:
        palette.save(tmp, format="png", optimize=True)
    return path


def overlay(image: np.ndarray, mask: np.ndarray | None, color=TRUTH_COLOR) -> np.ndarray:
    """A grayscale tile as RGB floats in 0..1 with `mask` tinted and outlined in `color`."""
    gray = image.astype(np.float32) / 255
    rgb = np.repeat(gray[..., None], 3, axis=2)
    if mask is None or not mask.any():
        return rgb
    inside = mask.astype(bool)
    rgb[inside] = 0.6 * rgb[inside] + 0.4 * np.asarray(color, dtype=np.float32)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(rgb, contours, -1, tuple(float(c) for c in color), 1)
    return rgb


def _show(ax, picture, title: str | None = None) -> None:
    ax.imshow(picture, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7, pad=2)


def curves_figure(history: pd.DataFrame) -> Figure:
    """Loss, score and learning rate per epoch from `salt.analysis.oof.read_history`."""
    panels = [
        ("loss", {"train/loss_epoch": "train", "val/loss": "validation"}),
        ("validation score", {"val/score": "at 0.5", "val/best_score": "at best threshold"}),
        ("learning rate", {c: c[3:] for c in history.columns if c.startswith("lr-")}),
    ]
    panels = [
        (name, {c: label for c, label in columns.items() if c in history.columns})
        for name, columns in panels
    ]
    panels = [(name, columns) for name, columns in panels if columns]
    if not panels:
        raise SaltError("the metrics history has no loss, score or learning-rate columns")
    figure = new_figure(3.2 * len(panels), 2.6)
    for ax, (name, columns) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for column, label in columns.items():
            values = history[column].dropna()
            ax.plot(values.index, values.to_numpy(), marker="o", markersize=3, label=label)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return figure


def thresholds_figure(
    probabilities: np.ndarray,
    masks: np.ndarray,
    marks: dict[str, float] | None = None,
    thresholds: Sequence[float] | np.ndarray = PLOT_THRESHOLDS,
) -> Figure:
    """Mean score of `probabilities > t` for each threshold t, the best one marked."""
    best, best_score, scores = sweep_thresholds(probabilities, masks, thresholds=thresholds)
    figure = new_figure(4.2, 2.8)
    ax = figure.subplots()
    ax.plot(thresholds, scores, color="tab:blue")
    ax.axvline(best, color="tab:blue", linestyle="--", linewidth=1)
    right = best > 0.7
    ax.annotate(
        f"best {best:g}: {best_score:.3f}",
        (best, best_score),
        textcoords="offset points",
        xytext=(-4 if right else 4, 4),
        ha="right" if right else "left",
        fontsize=7,
    )
    for (label, value), color in zip((marks or {}).items(), ("tab:orange", "tab:green")):
        ax.axvline(value, color=color, linestyle=":", linewidth=1, label=f"{label} ({value:g})")
    if marks:
        ax.legend(fontsize=7, loc="lower center")
    ax.set_xlabel("probability threshold", fontsize=8)
    ax.set_ylabel("score", fontsize=8)
    ax.set_title(f"out-of-fold score vs threshold ({len(masks)} images)", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    return figure


def group_score_figure(
    summary: pd.DataFrame, labels: Sequence[str], xlabel: str, title: str
) -> Figure:
    """Bars of `summary["score"]` (from `salt.analysis.oof.score_by`), one per label, each marked
    with its image count; groups without images stay empty."""
    figure = new_figure(max(3.0, 0.5 * len(labels) + 0.8), 2.8)
    ax = figure.subplots()
    positions = np.arange(len(labels))
    scores, counts = summary["score"].to_numpy(float), summary["images"].to_numpy(float)
    ax.bar(positions, np.nan_to_num(scores), color="tab:blue")
    for x, score, images in zip(positions, scores, counts):
        if not np.isnan(images):
            ax.annotate(f"{int(images)}", (x, score), ha="center", va="bottom", fontsize=6)
    ax.set_xticks(positions, [str(label) for label in labels], rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("mean score", fontsize=8)
    ax.set_xlabel(f"{xlabel} (numbers: images)", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    return figure


def coverage_figure(table: pd.DataFrame, title: str = "out-of-fold score by coverage") -> Figure:
    """Mean score per coverage class of `salt.analysis.oof.oof_table`, with the image counts."""
    summary = score_by(table, "coverage_class").reindex(range(len(COVERAGE_LABELS)))
    return group_score_figure(summary, COVERAGE_LABELS, "salt coverage", title)


def depth_figure(table: pd.DataFrame, bins: int = 5, title: str = "score by depth") -> Figure:
    """Mean score per depth range (about equal image counts) of `salt.analysis.oof.oof_table`."""
    if table["depth"].isna().all():
        raise SaltError("no depths (the data root has no depths.csv)")
    binned = table.assign(depth_range=depth_bins(table["depth"], bins))
    summary = score_by(binned, "depth_range")
    return group_score_figure(summary, list(summary.index), "depth range", title)


def distributions_figure(table: pd.DataFrame) -> Figure:
    """Coverage and depth distributions of `salt.analysis.oof.tile_table` (training tiles)."""
    has_depth = table["depth"].notna().any()
    figure = new_figure(9.6 if has_depth else 6.4, 2.8)
    axes = figure.subplots(1, 3 if has_depth else 2)
    counts = table["coverage_class"].value_counts().reindex(range(len(COVERAGE_LABELS)))
    axes[0].bar(COVERAGE_LABELS, counts.fillna(0).to_numpy(), color="tab:blue")
    axes[0].set_title(f"tiles per coverage class ({len(table)} tiles)", fontsize=9)
    axes[0].tick_params(axis="x", rotation=45, labelsize=7)
    covered = table.loc[table["coverage"] > 0, "coverage"]
    axes[1].hist(covered, bins=20, range=(0, 1), color="tab:blue")
    axes[1].set_title(f"coverage of the {len(covered)} tiles with salt", fontsize=9)
    axes[1].set_xlabel("salt coverage", fontsize=8)
    if has_depth:
        salt = table["coverage"] > 0
        for mask, label in ((salt, "salt"), (~salt, "no salt")):
            axes[2].hist(table.loc[mask, "depth"].dropna(), bins=20, alpha=0.6, label=label)
        axes[2].set_title("depth", fontsize=9)
        axes[2].legend(fontsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return figure


def spread_by_coverage(masks: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(coverage of every mask, positions of k masks evenly spread from emptiest to fullest)."""
    coverage = masks.reshape(len(masks), -1).mean(1)
    order = np.argsort(coverage, kind="stable")
    steps = np.linspace(0, len(order) - 1, min(k, len(order))).round().astype(int)
    return coverage, order[np.unique(steps)]


def example_tiles_figure(tiles: TileSet, k: int = 12, title: str = "") -> Figure:
    """k tiles with their masks, spread from the emptiest to the fullest."""
    coverage, chosen = spread_by_coverage(tiles.truth, k)
    titles = [f"{tiles.ids[i]} {coverage[i]:.0%}" for i in chosen]
    figure = overlay_figure(tiles.images[chosen], tiles.truth[chosen], None, titles)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def _tile_panels(axes, image, truth, prediction, title: str, labels: bool) -> None:
    """One tile as image | truth overlay | prediction overlay (each overlay only when given)."""
    _show(axes[0], image, title)
    if truth is not None:
        _show(axes[1], overlay(image, truth, TRUTH_COLOR), "truth" if labels else None)
    if prediction is not None:
        _show(
            axes[-1], overlay(image, prediction, PREDICTION_COLOR), "prediction" if labels else None
        )


def overlay_figure(
    images: np.ndarray,
    truths: np.ndarray | None,
    predictions: np.ndarray | None,
    titles: Sequence[str],
    groups: Sequence[tuple[str, Sequence[int]]] | None = None,
    columns: int = 4,
) -> Figure:
    """Tiles as image | truth (green) | prediction (red), leaving out `truths` or `predictions`
    when None. `groups` ([(heading, positions), ...]) puts each group in a column of tiles
    under its heading; by default the tiles fill `columns` columns in order."""
    panels = 1 + (truths is not None) + (predictions is not None)
    if groups is None:
        per_column = max(1, int(np.ceil(len(images) / columns)))
        positions = list(range(len(images)))
        groups = [("", positions[s : s + per_column]) for s in range(0, len(images), per_column)]
    rows = max(len(members) for _, members in groups)
    headings = any(heading for heading, _ in groups)
    figure = new_figure(1.05 * panels * len(groups), 1.15 * rows + (0.3 if headings else 0))
    subfigures = np.atleast_1d(np.asarray(figure.subfigures(1, len(groups)), dtype=object))
    for subfigure, (heading, members) in zip(subfigures, groups):
        axes = subfigure.subplots(rows, panels, squeeze=False)
        if heading:
            subfigure.suptitle(heading, fontsize=9)
        for row, ax_row in enumerate(axes):
            if row < len(members):
                i = members[row]
                truth = None if truths is None else truths[i]
                prediction = None if predictions is None else predictions[i]
                _tile_panels(ax_row, images[i], truth, prediction, titles[i], row == 0)
            else:
                for ax in ax_row:
                    ax.set_axis_off()
    return figure


def validation_overlays(
    tiles: TileSet, table: pd.DataFrame, predictions: np.ndarray, k: int = 6
) -> Figure:
    """The k best and k worst out-of-fold images (rows of `table`, in the order of `tiles`)."""
    best, worst = best_and_worst(table, k)
    titles = [f"{row.id} {row.score:.2f}" for row in table.itertuples()]
    return overlay_figure(
        tiles.images,
        tiles.masks,
        predictions,
        titles,
        groups=[("best", best), ("worst", worst)],
    )


def prediction_overlays(
    images: np.ndarray, masks: np.ndarray, ids: Sequence[str], k: int = 16
) -> Figure:
    """k test tiles with their predicted masks, spread from the emptiest to the fullest."""
    coverage, chosen = spread_by_coverage(masks, k)
    titles = [f"{ids[i]} {coverage[i]:.0%}" for i in chosen]
    return overlay_figure(images[chosen], None, masks[chosen], titles)


def write_run_plots(run_dir, tiles: TileSet | None = None, data_root=None) -> list[Path]:
    """Draw every plot the run directory has the data for into RUN_DIR/plots; the paths written.

    The overlays need the validation images: `tiles` (in memory after training), else read from
    `data_root` or the data root in the run's config.yaml.
    """
    run = load_run(run_dir)
    if run.history is None and run.oof is None:
        raise SaltError(f"{run.path}: not a run directory (no csv/metrics.csv and no oof.npz)")
    out = run.files.plots
    written = []
    # read first: bad data stops before any drawing
    validation = None if run.oof is None else oof_tiles(run, tiles, data_root)
    if run.history is not None and len(run.history):
        written.append(save_figure(curves_figure(run.history), out / "curves.png"))
    if validation is not None:
        written += _oof_plots(run, out, validation)
    return written


def _oof_plots(run: Run, out: Path, tiles: TileSet) -> list[Path]:
    oof = run.oof
    if oof is None:
        return []
    postprocess, source = run.oof_postprocess()
    marks = {"default": 0.5}
    if postprocess.threshold != 0.5:
        low, high = DEFAULT_SWEEP_THRESHOLDS[0], DEFAULT_SWEEP_THRESHOLDS[-1]
        label = "tuned" if run.postprocess else f"best of {low:.2f}-{high:.2f}"
        marks[label] = postprocess.threshold
    figure = thresholds_figure(oof["probabilities"], oof["masks"], marks)
    written = [save_figure(figure, out / "thresholds.png")]
    table = run_oof_table(run)
    title = f"out-of-fold score by coverage ({source})"
    written.append(save_figure(coverage_figure(table, title), out / "score_by_coverage.png"))
    predictions = postprocess(oof["probabilities"], oof.get("salt"))
    figure = validation_overlays(tiles, table, predictions)
    written.append(save_figure(figure, out / "overlays.png"))
    return written


def plot_finished_run(run_dir, tiles: TileSet | None = None) -> list[Path]:
    """`write_run_plots` after training: a failure is reported, never fatal to a finished run."""
    try:
        written = write_run_plots(run_dir, tiles)
    except Exception as error:  # the run's results are already saved
        print(f"warning: plots not written: {error}", file=sys.stderr)
        return []
    print(f"plots: {RunDir(run_dir).plots} ({len(written)} files)")
    return written


def write_prediction_plot(out, images: np.ndarray, masks: np.ndarray, ids) -> Path:
    """The overlay grid of test predictions beside the submission file `out`."""
    out = Path(out)
    path = out.with_name(f"{out.stem}.overlays.png")
    return save_figure(prediction_overlays(images, masks, list(ids)), path)
