"""Deterministic K-fold split stratified by salt coverage.

Empty masks are their own class; the others fall into ten coverage bins (0-10%, ..., 90-100%).
Ids are sorted before shuffling, so the split depends only on the ids, their masks and the seed,
never on file order or the machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from salt.core.errors import DataError
from salt.core.files import write_text

FOLD_COLUMNS = ("id", "fold", "coverage", "coverage_class")


def coverage_classes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Salt coverage of each mask and its class: 0 for empty, 1..10 for coverage deciles."""
    coverage = masks.reshape(len(masks), -1).mean(axis=1, dtype=np.float64)
    classes = np.where(coverage > 0, np.ceil(coverage * 10).clip(1, 10), 0).astype(int)
    return coverage, classes


def make_folds(ids: list[str], masks: np.ndarray, n_folds: int = 5, seed: int = 42) -> pd.DataFrame:
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(ids) < n_folds:
        raise ValueError(f"cannot split {len(ids)} images into {n_folds} folds")
    coverage, classes = coverage_classes(masks)
    order = np.argsort(np.asarray(ids), kind="stable")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(ids), dtype=int)
    next_fold = 0
    for cls in np.unique(classes):
        members = order[classes[order] == cls]
        members = members[rng.permutation(len(members))]
        # continuing the round-robin across classes keeps the fold sizes within one of each other
        folds[members] = (next_fold + np.arange(len(members))) % n_folds
        next_fold = (next_fold + len(members)) % n_folds
    return pd.DataFrame(
        {"id": ids, "fold": folds, "coverage": coverage.round(6), "coverage_class": classes}
    )


def load_or_make_folds(
    path, ids: list[str], masks: np.ndarray, n_folds: int = 5, seed: int = 42
) -> pd.DataFrame:
    """Reuse the fold CSV at `path` if it exists (checking it matches the data), else write it."""
    path = Path(path)
    if path.is_file():
        folds = pd.read_csv(path, dtype={"id": str})
        missing = [c for c in FOLD_COLUMNS if c not in folds.columns]
        if missing:
            raise DataError(path, f"not a fold file: missing column(s) {', '.join(missing)}")
        if set(folds["id"]) != set(ids) or len(folds) != len(ids):
            raise DataError(path, "its ids differ from the training data; delete it to re-split")
        if folds["fold"].nunique() != n_folds:
            raise DataError(
                path, f"holds {folds['fold'].nunique()} folds, config asks for {n_folds}"
            )
        return folds.set_index("id").loc[ids].reset_index()
    folds = make_folds(ids, masks, n_folds, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, folds.to_csv(index=False, lineterminator="\n"))
    return folds
