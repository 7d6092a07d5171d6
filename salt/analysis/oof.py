"""Tables for looking at data and errors, shared by `salt.analysis.plots`, `salt.report` and the notebooks.

- `tile_table(tiles)`: one row per tile (coverage, coverage class, depth, blank or not).
- `load_run(run_dir)`: a run directory in one object (config, metrics, tuned post-processing,
  per-epoch history from the CSV logger, out-of-fold probabilities).
- `oof_table(run)`: one row per out-of-fold image: its score, coverage, depth, kind of error.
- `score_by(table, column)`: mean score and count per group (coverage class, depth bin, ...).

Every problem with a run directory or its data is a `SaltError` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from salt.core.errors import DataError, SaltError
from salt.core.metrics import sweep_thresholds, tgs_scores
from salt.core.rundir import RunDir
from salt.data.folds import coverage_classes
from salt.data.io import TileSet, load_train
from salt.inference.postprocess import PostProcess

COVERAGE_LABELS = ["empty"] + [f"{10 * (k - 1)}-{10 * k}%" for k in range(1, 11)]


def project_path(path) -> Path:
    """`path` as given when it exists or is absolute, else relative to the project root.

    Notebooks run with notebooks/ as the working directory; this lets them take the same
    relative paths (data/synthetic, outputs/demo) as the command line.
    """
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    from_root = (
        Path(__file__).resolve().parents[2] / path
    )  # salt/analysis/oof.py -> the project root
    return from_root if from_root.exists() else path


def tile_table(tiles: TileSet) -> pd.DataFrame:
    """One row per tile: id, coverage, coverage_class, depth, mean, std, blank (a constant image).

    Tiles without masks (the test set) get no coverage columns.
    """
    flat = tiles.images.reshape(len(tiles), -1).astype(np.float32)
    table = pd.DataFrame({"id": tiles.ids, "mean": flat.mean(1), "std": flat.std(1)})
    table["blank"] = flat.max(1) == flat.min(1)
    if tiles.masks is not None:
        coverage, classes = coverage_classes(tiles.masks)
        table["coverage"] = coverage
        table["coverage_class"] = classes
    table["depth"] = np.nan if tiles.depths is None else tiles.depths
    return table


def read_history(path) -> pd.DataFrame:
    """Per-epoch metrics from a CSVLogger metrics.csv: one row per epoch, indexed by epoch.

    Rows without an epoch (the learning-rate monitor's) belong to the epoch that follows them;
    a metric logged twice in an epoch (a resumed run) keeps its last value.
    """
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(path, f"not a readable CSV ({str(error).splitlines()[0]})") from None
    if "epoch" not in frame.columns:
        raise DataError(path, "no epoch column (not a Lightning CSVLogger metrics.csv)")
    frame["epoch"] = frame["epoch"].bfill().ffill()
    frame = frame.dropna(subset=["epoch"]).drop(columns=["step"], errors="ignore")
    history = frame.groupby("epoch").last()
    history.index = history.index.astype(int)
    return history


@dataclass
class Run:
    """What a training run left in its directory; missing pieces are None."""

    path: Path
    metrics: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    postprocess: dict[str, Any] | None = None
    history: pd.DataFrame | None = None
    oof: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def files(self) -> RunDir:
        """The run directory's files by name."""
        return RunDir(self.path)

    @property
    def name(self) -> str:
        return (self.metrics or {}).get("experiment") or self.path.name

    def data_root(self) -> Path | None:
        """The training data of the run, as its resolved config names it."""
        root = ((self.config or {}).get("data") or {}).get("root")
        return Path(root) if root else None

    def oof_postprocess(self) -> tuple[PostProcess, str]:
        """How to binarise the out-of-fold probabilities, and where that choice comes from:
        the tuned post-processing (postprocess.json), else the best validation threshold."""
        if self.postprocess:
            tuned = PostProcess.from_tuned(self.postprocess, self.files.postprocess)
            return tuned, "tuned (postprocess.json)"
        if self.oof is None:
            return PostProcess(), "threshold 0.5"
        threshold, _, _ = sweep_thresholds(self.oof["probabilities"], self.oof["masks"])
        return PostProcess(threshold=threshold), f"best threshold {threshold:g}"


def training_tiles(root, ids=None) -> TileSet:
    """The training tiles of a data root (all, or `ids` in their order), depths included."""
    tiles = load_train(root, check_masks=False)
    if ids is None:
        return tiles
    position = {tile_id: i for i, tile_id in enumerate(tiles.ids)}
    missing = [str(i) for i in ids if str(i) not in position]
    if missing:
        raise DataError(
            Path(root) / "train.csv", f"no training tile {missing[0]!r} ({len(missing)} missing)"
        )
    return tiles.subset([position[str(i)] for i in ids])


def oof_tiles(run: Run, tiles: TileSet | None = None, root=None) -> TileSet:
    """The tiles of a run's out-of-fold images, in oof.npz order: taken from `tiles` when given
    (e.g. the validation tiles still in memory after training), else read from `root` or the
    run's data root."""
    if run.oof is None:
        raise SaltError(f"{run.files.oof}: not found (train with oof=true)")
    ids = [str(i) for i in run.oof["ids"]]
    if tiles is not None:
        if list(tiles.ids) == ids:
            return tiles
        position = {tile_id: i for i, tile_id in enumerate(tiles.ids)}
        if all(i in position for i in ids):
            return tiles.subset([position[i] for i in ids])
    root = root or run.data_root()
    if root is None:
        raise SaltError(f"{run.files.config}: names no data.root (pass the data root)")
    return training_tiles(project_path(root), ids)


def depths_of(tiles: TileSet) -> dict[str, float] | None:
    """{id: depth} of tiles that have depths, else None."""
    if tiles.depths is None:
        return None
    return dict(zip(tiles.ids, tiles.depths.astype(float)))


def load_run(run_dir) -> Run:
    """Read a run directory (as `python -m salt.train` writes it)."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise SaltError(f"{run.path}: no such run directory")
    history_path = run.history()
    return Run(
        path=run.path,
        metrics=run.read_metrics(),
        config=run.read_config(),
        postprocess=run.read_postprocess(),
        history=None if history_path is None else read_history(history_path),
        oof=run.read_oof() if run.oof.is_file() else None,
    )


def oof_table(
    probabilities: np.ndarray,
    masks: np.ndarray,
    ids,
    predictions: np.ndarray | None = None,
    threshold: float = 0.5,
    depths: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per image: score, coverage (truth and predicted), coverage class, depth, error.

    `predictions` are binary masks (e.g. from the tuned post-processing); by default
    `probabilities > threshold`. `error` is "ok" (score 1), "missed salt" (salt, empty
    prediction), "false salt" (no salt, salt predicted) or "partial" (overlap below some IoU
    thresholds).
    """
    if predictions is None:
        predictions = (probabilities > threshold).astype(np.uint8)
    scores = tgs_scores(predictions, masks).numpy().astype(np.float64)
    coverage, classes = coverage_classes(masks)
    predicted = predictions.reshape(len(predictions), -1).mean(1, dtype=np.float64)
    error = np.full(len(scores), "partial", dtype=object)
    error[scores == 1] = "ok"
    error[(coverage > 0) & (predicted == 0)] = "missed salt"
    error[(coverage == 0) & (predicted > 0)] = "false salt"
    ids = [str(i) for i in ids]
    table = pd.DataFrame(
        {
            "id": ids,
            "score": scores,
            "coverage": coverage,
            "coverage_class": classes,
            "predicted_coverage": predicted,
            "error": error,
        }
    )
    table["depth"] = np.nan if depths is None else [depths.get(i, np.nan) for i in ids]
    return table


def run_oof_table(run: Run, depths: dict[str, float] | None = None) -> pd.DataFrame:
    """`oof_table` of a run's out-of-fold predictions, post-processed as `run.oof_postprocess()`."""
    if run.oof is None:
        raise SaltError(f"{run.files.oof}: not found (train with oof=true)")
    postprocess, _ = run.oof_postprocess()
    predictions = postprocess(run.oof["probabilities"], run.oof.get("salt"))
    return oof_table(
        run.oof["probabilities"], run.oof["masks"], run.oof["ids"], predictions, depths=depths
    )


def score_by(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean score, image count and share of each error kind per value of `column`."""
    grouped = table.groupby(column, observed=True)
    summary = grouped["score"].agg(score="mean", images="size")
    errors = pd.crosstab(table[column], table["error"], normalize="index")
    return summary.join(errors).fillna(0.0)


def depth_bins(depths, bins: int = 5) -> pd.Series:
    """Depths cut into `bins` ranges of about equal counts (as labelled intervals)."""
    depths = pd.Series(depths, dtype=float)
    if depths.notna().sum() == 0:
        return pd.Series(pd.Categorical([None] * len(depths)), index=depths.index)
    return pd.qcut(depths, q=bins, duplicates="drop", precision=0)


def best_and_worst(table: pd.DataFrame, k: int) -> tuple[list[int], list[int]]:
    """Row positions of the k best and k worst images by score.

    Ties among the best prefer images with more salt (a perfect empty tile shows nothing); ties
    among the worst prefer the largest disagreement in salt area.
    """
    score = table["score"].to_numpy()
    coverage = table["coverage"].to_numpy()
    disagreement = np.abs(coverage - table["predicted_coverage"].to_numpy())
    best = [int(i) for i in np.lexsort((-coverage, -score))[:k]]
    worst = [int(i) for i in np.lexsort((-disagreement, score)) if i not in best][:k]
    return best, worst
