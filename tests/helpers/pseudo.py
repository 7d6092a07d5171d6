"""A pseudo-label folder without a trained run: the test tiles of a generated data root,
labelled by a brightness threshold, as `salt.pseudo` lays them out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from salt.data.io import load_test
from salt.data.pseudo import LabelSet, write_pseudo_folder


def threshold_labels(data_root: Path, out: Path, made_by: Path) -> Path:
    """Every test tile of `data_root` labelled salt where brighter than 128; `made_by` stands
    for the run that made them (it must exist)."""
    tiles = load_test(data_root)
    masks = (tiles.images > 128).astype("uint8")
    info = {"validation": "ensemble", "runs": [str(made_by)], "folds": {}}
    manifest = pd.DataFrame({"id": tiles.ids, "labels": "all", "kept": True, "reason": "kept"})
    labels = LabelSet(fold=None, ids=tiles.ids, images=tiles.images, masks=masks)
    return write_pseudo_folder(out, [labels], manifest, info)
