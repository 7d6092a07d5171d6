"""A pseudo-label folder (`python -m salt.pseudo` writes it, `data.pseudo=DIR` trains on it).

    DIR/pseudo.json      how the labels were made: validation mode, source runs (by fold in the
                         clean mode), selection, the one-line summary, and per label set its
                         provenance: the split its runs trained on and every ancestor run
                         (`Ancestor`: a run whose weights or labels are behind it, with its split
                         and fold)
    DIR/manifest.csv     every predicted tile: id, labels (the fold its labels serve, or all),
                         runs, confidence, coverage, kept, reason
    DIR/train.csv, DIR/train/images, DIR/train/masks
                         the kept tiles in the Kaggle layout (validation=ensemble)
    DIR/fold_K/...       the same per training fold K (validation=clean: fold K's labels are
                         made only by the runs that validated on fold K)

The folder is written whole or not at all (a temporary sibling renamed into place). Every
problem with one read back is a `DataError` naming the file; so are clean labels that cannot
train the run's fold honestly (`leak`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from salt.core.errors import DataError, SaltError
from salt.core.files import write_json, write_text
from salt.data.io import TileSet, load_train, write_png
from salt.data.rle import rle_encode

INFO = "pseudo.json"
MANIFEST = "manifest.csv"
VALIDATION_MODES = ("clean", "ensemble")
MANIFEST_COLUMNS = ("id", "labels", "runs", "confidence", "coverage", "kept", "reason")
ALL_FOLDS = "all"  # the key of the one label set of the ensemble mode
REMAKE = "remake the labels with python -m salt.pseudo"


@dataclass(frozen=True)
class Ancestor:
    """A run whose weights are behind a label set: the labelling runs, the runs behind the labels
    they trained on, the runs they were fine-tuned from. `split` (a fingerprint,
    `salt.data.lineage.split_fingerprint`) and `fold` say which tiles it never trained on: those
    of `fold` of `split`. None where they cannot be told; `note` says why."""

    run: str
    split: str | None
    fold: int | None
    note: str = ""

    def record(self) -> dict[str, Any]:
        return {"run": self.run, "split": self.split, "fold": self.fold, "note": self.note}

    @classmethod
    def read(cls, record: Any, source: Path) -> Ancestor:
        fold = record.get("fold") if isinstance(record, dict) else None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("run"), str)
            or not isinstance(record.get("split"), str | None)
            or not (fold is None or (isinstance(fold, int) and not isinstance(fold, bool)))
        ):
            raise DataError(
                source, f"a provenance ancestor is not {{run, split, fold}}: {record!r}"
            )
        return cls(record["run"], record["split"], fold, str(record.get("note") or ""))


def leak(ancestors: Sequence[Ancestor], split: str | None, fold: int) -> str | None:
    """Why labels descending from `ancestors` can have learnt the tiles of `fold` of `split`
    (the first ancestor that may have trained on them), or None when none can."""
    for ancestor in ancestors:
        if ancestor.split is None or ancestor.fold is None:
            return f"run {ancestor.run} may have trained on any tile ({ancestor.note})"
        if ancestor.split != split:
            return (
                f"run {ancestor.run} trained on another split (split {ancestor.split}, this one "
                f"{split}: another data.root, n_folds, fold_seed or folds_csv), which can put "
                f"fold {fold}'s tiles in its training"
            )
        if ancestor.fold != fold:
            return (
                f"run {ancestor.run} trained on fold {fold}'s tiles (it validated on fold "
                f"{ancestor.fold})"
            )
    return None


def provenance_record(split: str | None, ancestors: Sequence[Ancestor]) -> dict[str, Any]:
    """A label set's provenance as pseudo.json holds it."""
    return {"split": split, "ancestors": [ancestor.record() for ancestor in ancestors]}


@dataclass
class LabelSet:
    """The kept tiles of one set of labels: `fold` the training fold they serve (None: all)."""

    fold: int | None
    ids: list[str]
    images: np.ndarray
    masks: np.ndarray


def fold_folder(fold: int) -> str:
    return f"fold_{fold}"


def _write_kaggle_layout(root: Path, labels: LabelSet) -> None:
    for folder in ("train/images", "train/masks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for tile_id, image, mask in zip(labels.ids, labels.images, labels.masks):
        write_png(root / "train/images" / f"{tile_id}.png", image)
        write_png(root / "train/masks" / f"{tile_id}.png", mask.astype(np.uint8) * 255)
        rows.append(f"{tile_id},{rle_encode(mask)}\n")
    write_text(root / "train.csv", "id,rle_mask\n" + "".join(rows))


def write_pseudo_folder(
    out, label_sets: Sequence[LabelSet], manifest: pd.DataFrame, info: Mapping[str, Any]
) -> Path:
    """Write the folder at `out` whole or not at all; a previous pseudo-label folder there is
    replaced, any other existing path refused."""
    out = Path(out)
    if out.exists() and not (out / INFO).is_file():
        raise SaltError(f"{out}: exists and is not a pseudo-label folder; choose another out=")
    if not out.absolute().parent.is_dir():
        raise SaltError(f"{out}: output folder {out.absolute().parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.absolute().parent))
    try:
        for labels in label_sets:
            root = staging if labels.fold is None else staging / fold_folder(labels.fold)
            _write_kaggle_layout(root, labels)
        write_text(staging / MANIFEST, manifest.to_csv(index=False, lineterminator="\n"))
        write_json(staging / INFO, dict(info))  # last: marks a complete folder
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.absolute().parent))
            out.rename(old / out.name)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


class PseudoFolder:
    """A pseudo-label folder read back for training."""

    def __init__(self, path) -> None:
        self.path = Path(path)

    def info(self) -> dict[str, Any]:
        path = self.path / INFO
        if not self.path.is_dir():
            raise DataError(self.path, "pseudo-label folder not found (data.pseudo)")
        if not path.is_file():
            raise DataError(
                self.path,
                f"not a pseudo-label folder (no {INFO}); make one with python -m salt.pseudo",
            )
        try:
            info = json.loads(path.read_text())
        except ValueError as error:
            raise DataError(path, f"not valid JSON ({error})") from None
        if not isinstance(info, dict) or info.get("validation") not in VALIDATION_MODES:
            raise DataError(path, "not a salt.pseudo record (no validation mode)")
        return info

    def check_sources(self, info: Mapping[str, Any]) -> None:
        """The runs that made the labels still exist (a label whose maker is gone cannot be
        traced, nor checked against the folds it saw)."""
        for run in info.get("runs", []):
            if not Path(run).exists():
                raise DataError(
                    self.path / INFO,
                    f"made by run {run}, which no longer exists; remake the labels with "
                    "python -m salt.pseudo",
                )

    def label_set(self, info: Mapping[str, Any], fold: int | None) -> str:
        """The key of the label set that trains `fold`: its fold, or all (ensemble)."""
        return ALL_FOLDS if info["validation"] == "ensemble" else str(fold)

    def provenance(
        self, info: Mapping[str, Any], fold: int | None
    ) -> tuple[str | None, list[Ancestor]] | None:
        """The split and the ancestors of the label set that trains `fold`; None when the folder
        records none (made by an older salt.pseudo)."""
        record = (info.get("provenance") or {}).get(self.label_set(info, fold))
        if record is None:
            return None
        source = self.path / INFO
        if not isinstance(record, dict) or not isinstance(record.get("ancestors"), list):
            raise DataError(source, f"provenance is not {{split, ancestors}}: {record!r}")
        ancestors = [Ancestor.read(item, source) for item in record["ancestors"]]
        return record.get("split"), ancestors

    def ancestors(self, info: Mapping[str, Any], fold: int | None) -> list[Ancestor]:
        """Every run behind the label set that trains `fold` (one unknown one for a folder
        without provenance): what a run trained on it inherits."""
        provenance = self.provenance(info, fold)
        if provenance is None:
            return [Ancestor(str(self.path.absolute()), None, None, "labels without provenance")]
        return provenance[1]

    def check_honest(self, info: Mapping[str, Any], fold: int, split: str) -> None:
        """Clean labels train fold `fold` of split `split` only when no net behind them can
        have trained on its tiles; ensemble labels are not honest by design (not checked)."""
        if info["validation"] != "clean":
            return
        provenance = self.provenance(info, fold)
        if provenance is None:
            raise DataError(
                self.path / INFO,
                f"records no provenance for fold {fold}'s labels (an older salt.pseudo), so "
                f"their honesty cannot be checked: {REMAKE}",
            )
        made_on, ancestors = provenance
        why = (
            leak(ancestors, split, fold)
            if made_on == split
            else f"they were made on another split (split {made_on}, this run's {split}: "
            "another data.root, n_folds, fold_seed or folds_csv)"
        )
        if why:
            raise DataError(
                self.path / INFO,
                f"fold {fold}'s clean labels cannot train data.fold={fold} honestly: {why}; "
                f"{REMAKE} from runs of this split that validated on fold {fold}, or with "
                "pseudo.validation=ensemble (the OOF is then optimistic)",
            )

    def labels_root(self, info: Mapping[str, Any], fold: int) -> Path:
        if info["validation"] == "ensemble":
            return self.path
        folds = sorted(int(k) for k in info.get("folds", {}))
        if fold not in folds:
            made = ", ".join(map(str, folds)) or "none"
            raise DataError(
                self.path / INFO,
                f"clean labels for fold(s) {made} only, none for data.fold={fold} (fold K's "
                "labels come from the runs that validated on fold K)",
            )
        return self.path / fold_folder(fold)

    def load(self, fold: int, training_ids: Sequence[str], split: str) -> TileSet:
        """The labelled tiles meant for training fold `fold` of split `split` (its fingerprint);
        refused when a run that made them is gone, when clean labels can have learnt the fold's
        tiles (`check_honest`) or when a tile is also a training tile of the data root."""
        info = self.info()
        self.check_sources(info)
        root = self.labels_root(info, fold)
        self.check_honest(info, fold, split)
        tiles = load_train(root)
        overlap = sorted(set(tiles.ids) & set(training_ids))
        if overlap:
            raise DataError(
                root / "train.csv",
                f"{len(overlap)} tile(s) are also training tiles of data.root, e.g. "
                f"{overlap[0]!r}: a tile cannot be both (pseudo-label other tiles)",
            )
        return TileSet(ids=tiles.ids, images=tiles.images, masks=tiles.masks)
