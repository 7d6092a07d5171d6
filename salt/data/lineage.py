"""Which tiles the nets behind pseudo-labels may have trained on.

A split is named by its fingerprint, a hash of its sorted `id,fold` table: two runs share a
split exactly when every tile lies in the same fold for both (whatever data.root, n_folds,
fold_seed or folds_csv made it). A run's lineage is the run itself (its split and `data.fold`),
the lineage recorded with the pseudo-labels it trained on (`data.pseudo`) and the lineage of the
run it was fine-tuned from (`finetune_from`), read from the runs' `config.yaml`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from salt.core.errors import DataError
from salt.core.rundir import RunDir
from salt.data.folds import make_folds
from salt.data.io import load_train
from salt.data.pseudo import Ancestor, PseudoFolder


def split_fingerprint(ids: Iterable[Any], folds: Iterable[Any]) -> str:
    """The fingerprint of the split that puts tile `ids[i]` in fold `folds[i]`."""
    table = "\n".join(sorted(f"{tile_id},{int(fold)}" for tile_id, fold in zip(ids, folds)))
    return hashlib.sha256(table.encode()).hexdigest()[:16]


def run_split(data: Mapping[str, Any]) -> tuple[str | None, str]:
    """The fingerprint of the split a run's `data` config trained on and "", or None and why it
    cannot be told. The split is its fold file's when it names one (a file since deleted is
    never re-split: it may have held another split than salt's), else salt's split of its
    data root."""
    folds_csv = data.get("folds_csv")
    if folds_csv:
        path = Path(folds_csv)
        if not path.is_file():
            return None, f"its fold file {path} is gone"
        table = pd.read_csv(path, dtype={"id": str})
        if not {"id", "fold"} <= set(table.columns):
            raise DataError(path, "not a fold file: missing column(s) id, fold")
        return split_fingerprint(table["id"], table["fold"]), ""
    root = data.get("root")
    if not root or not (Path(root) / "train.csv").is_file():
        return None, f"its data.root {root} is gone"
    tiles = load_train(root)
    folds = make_folds(
        tiles.ids, tiles.truth, int(data.get("n_folds", 5)), int(data.get("fold_seed", 42))
    )
    return split_fingerprint(folds["id"], folds["fold"]), ""


def labels_lineage(folder: str | os.PathLike, fold: int | None) -> list[Ancestor]:
    """The ancestors of the label set of pseudo-label `folder` that trains `fold`."""
    labels = PseudoFolder(folder)
    if not labels.path.is_dir():
        return [Ancestor(str(labels.path), None, None, f"its data.pseudo {folder} is gone")]
    return labels.ancestors(labels.info(), fold)


def run_lineage(entry: str | os.PathLike, seen: frozenset[Path] = frozenset()) -> list[Ancestor]:
    """Every run behind the weights of `entry` (a run directory or a checkpoint file in one),
    itself first; a run whose config cannot be read is an ancestor of unknown split and fold."""
    run = RunDir.of(entry)
    if run.path.resolve() in seen:
        return []
    config = run.read_config()
    if config is None:
        return [Ancestor(str(Path(entry).absolute()), None, None, "no config.yaml")]
    data = config.get("data") or {}
    fold = data.get("fold")
    fold = fold if isinstance(fold, int) and not isinstance(fold, bool) else None
    split, why = run_split(data)
    if fold is None:
        why = why or "no data.fold"
    lineage = [Ancestor(str(run.path.absolute()), split, fold, why)]
    if data.get("pseudo"):
        lineage += labels_lineage(data["pseudo"], fold)
    source = config.get("finetune_from")
    if source:
        if Path(source).exists():
            lineage += run_lineage(source, seen | {run.path.resolve()})
        else:
            lineage.append(Ancestor(str(source), None, None, "its finetune_from is gone"))
    return list(dict.fromkeys(lineage))
