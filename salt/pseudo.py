"""Pseudo-labels for unlabelled tiles from trained runs:
`python -m salt.pseudo runs=[RUN_DIR,...] data.root=DIR out=PSEUDO_DIR`, then train with
`data.pseudo=PSEUDO_DIR`. docs/pseudo-labels.md."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, cast

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from salt.core.checks import choice, choices, whole_number
from salt.core.config import CONFIG_DIR
from salt.core.errors import ConfigError, DataError, SaltError, exit_on_salt_error, run_hydra_main
from salt.core.rundir import CHECKPOINT_KINDS, RunDir, checkpoint_files, run_entries
from salt.data.folds import coverage_classes
from salt.data.io import TileSet, read_tile_image
from salt.data.lineage import run_lineage
from salt.data.pseudo import (
    ALL_FOLDS,
    VALIDATION_MODES,
    Ancestor,
    LabelSet,
    leak,
    provenance_record,
    write_pseudo_folder,
)
from salt.inference.selection import KEPT, Selection, check_policy, select
from salt.inference.tiles import check_tta, predict_ensemble, resolve_device
from salt.predict import PRECISIONS


def tile_folder(root) -> Path:
    """DIR/test/images when DIR has one (the Kaggle layout), else DIR itself."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "tile folder not found (pass data.root=DIR)")
    test_images = root / "test" / "images"
    return test_images if test_images.is_dir() else root


def load_tiles(folder: Path) -> TileSet:
    """Every PNG of `folder`, in the order of their ids; each must be a 101x101 tile."""
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise DataError(folder, "no tile images (*.png) to pseudo-label")
    images = np.stack([read_tile_image(path) for path in paths])
    return TileSet(ids=[path.stem for path in paths], images=images)


def runs_by_fold(runs: list[str], validation: str) -> dict[int | None, list[str]]:
    """The runs that label the tiles for each training fold: every run for every fold
    (ensemble: key None), or, clean, the runs that validated on fold K for fold K."""
    if validation == "ensemble":
        return {None: runs}
    groups: dict[int | None, list[str]] = {}
    for entry in runs:
        config = RunDir.of(entry).read_config()
        fold = ((config or {}).get("data") or {}).get("fold")
        if not isinstance(fold, int):
            raise ConfigError(
                "pseudo.validation",
                f"clean needs each run's data.fold, and {entry} has no config.yaml naming it: "
                "pass run directories, or pseudo.validation=ensemble",
            )
        groups.setdefault(fold, []).append(entry)
    return dict(sorted(groups.items(), key=lambda item: item[0] or 0))


def provenance(fold: int | None, entries: list[str]) -> dict[str, Any]:
    """The provenance of the label set that `entries` make for training `fold` (None: every
    fold): the split the labelling runs trained on (None when they differ) and every ancestor.
    Clean labels that could carry what a net learnt from fold K's tiles into fold K are
    refused here, before predicting."""
    lineages = [run_lineage(entry) for entry in entries]
    splits = {lineage[0].split for lineage in lineages}
    split = splits.pop() if len(splits) == 1 else None
    ancestors: list[Ancestor] = list(dict.fromkeys(a for lineage in lineages for a in lineage))
    if fold is not None:
        why = leak(ancestors, lineages[0][0].split, fold)
        if why:
            raise ConfigError(
                "pseudo.validation",
                f"clean labels for fold {fold} cannot be honest: {why}; label fold {fold} with "
                "runs that never trained on its tiles, or pass pseudo.validation=ensemble",
            )
    return provenance_record(split, ancestors)


def coverage_summary(masks: np.ndarray) -> str:
    if not len(masks):
        return "none"
    _, classes = coverage_classes(masks)
    counts = Counter(classes.tolist())
    names = {0: "empty"} | {c: f"{10 * (c - 1)}-{10 * c}%" for c in range(1, 11)}
    return ", ".join(f"{names[c]} {counts[c]}" for c in sorted(counts))


def summary_line(fold: int | None, selection: Selection, masks: np.ndarray) -> str:
    kept = selection.kept
    dropped = Counter(reason for reason in selection.reasons if reason != KEPT)
    reasons = ", ".join(f"{count} {reason}" for reason, count in dropped.most_common()) or "none"
    labels = "every fold" if fold is None else f"fold {fold}"
    return (
        f"{labels}: kept {int(kept.sum())} of {len(kept)} tiles (dropped: {reasons}; "
        f"kept masks by coverage: {coverage_summary(masks[kept])})"
    )


def check_settings(cfg: DictConfig) -> list[str]:
    """The run entries; every other key's bad value refused in one line before predicting."""
    runs = run_entries("runs", cfg.runs)
    choices("checkpoints", cfg.checkpoints, CHECKPOINT_KINDS)
    whole_number("batch_size", cfg.batch_size, 1)
    choice("precision", str(cfg.precision), PRECISIONS)
    choice("pseudo.validation", cfg.pseudo.validation, VALIDATION_MODES)
    check_policy(cfg.pseudo)
    out = Path(cfg.out)
    if not out.absolute().parent.is_dir():
        raise ConfigError("out", f"{out}: output folder {out.absolute().parent} does not exist")
    return runs


def pseudo_label(cfg: DictConfig) -> Path:
    runs = check_settings(cfg)
    tta = check_tta(cfg.tta)
    device = resolve_device(cfg.device)
    groups = runs_by_fold(runs, cfg.pseudo.validation)
    provenances = {
        ALL_FOLDS if fold is None else str(fold): provenance(fold, entries)
        for fold, entries in groups.items()
    }
    folder = tile_folder(cfg.data.root)
    tiles = load_tiles(folder)
    settings = cast(dict[str, Any], OmegaConf.to_container(cfg.pseudo, resolve=True))
    label_sets, manifests, lines = [], [], []
    for fold, entries in groups.items():
        checkpoints = checkpoint_files(entries, list(cfg.checkpoints))
        labels = "every fold" if fold is None else f"fold {fold}"
        print(
            f"pseudo-labelling {len(tiles)} tiles of {folder} for {labels} with "
            f"{len(checkpoints)} checkpoint(s) x {len(tta)} TTA"
        )
        predictions = predict_ensemble(
            checkpoints,
            tiles.images,
            batch_size=cfg.batch_size,
            device=device,
            tta=tta,
            precision=cfg.precision,
            progress=cfg.get("progress", True),
        )
        masks, selection = select(tiles.images, predictions.masks, settings)
        kept = np.flatnonzero(selection.kept)
        line = summary_line(fold, selection, masks)
        if not len(kept):
            raise SaltError(
                f"pseudo.select={cfg.pseudo.select} kept no tile for {labels} ({line}); "
                "nothing written: lower its thresholds or pass pseudo.select=all"
            )
        lines.append(line)
        sources = ";".join(str(Path(e).absolute()) for e in entries)
        manifests.append(
            pd.DataFrame(
                {
                    "id": tiles.ids,
                    "labels": ALL_FOLDS if fold is None else str(fold),
                    "runs": sources,
                    "confidence": selection.confidence.round(4),
                    "coverage": selection.coverage.round(4),
                    "kept": selection.kept,
                    "reason": selection.reasons,
                }
            )
        )
        label_sets.append(
            LabelSet(
                fold=fold,
                ids=[tiles.ids[i] for i in kept],
                images=tiles.images[kept],
                masks=masks[kept],
            )
        )
    summary = "; ".join(lines)
    info = {
        "validation": cfg.pseudo.validation,
        "tiles": str(folder.absolute()),
        "runs": [str(Path(e).absolute()) for e in runs],
        "folds": {
            str(fold): [str(Path(e).absolute()) for e in entries]
            for fold, entries in groups.items()
            if fold is not None
        },
        "provenance": provenances,
        "checkpoints": list(cfg.checkpoints),
        "tta": tta,
        "pseudo": settings,
        "summary": summary,
    }
    out = write_pseudo_folder(cfg.out, label_sets, pd.concat(manifests), info)
    print(f"pseudo-labels ({cfg.pseudo.validation}, select={cfg.pseudo.select}): {summary}")
    print(f"wrote {out}")
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pseudo")
@exit_on_salt_error
def main(cfg: DictConfig) -> None:
    pseudo_label(cfg)


if __name__ == "__main__":
    run_hydra_main(main)
