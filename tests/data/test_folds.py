import numpy as np
import pandas as pd
import pytest

from salt.core.errors import DataError
from salt.data.folds import coverage_classes, load_or_make_folds, make_folds


def random_masks(n, seed=0):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 101, 101), dtype=np.uint8)
    for i, rows in enumerate(rng.integers(0, 102, n)):
        if i % 3:  # a third stay empty
            masks[i, :rows] = 1
    return masks


def test_coverage_classes():
    masks = np.zeros((3, 10, 10), dtype=np.uint8)
    masks[1, :1, :1] = 1  # 1% -> class 1
    masks[2] = 1  # 100% -> class 10
    coverage, classes = coverage_classes(masks)
    assert classes.tolist() == [0, 1, 10]
    assert coverage.tolist() == [0.0, 0.01, 1.0]


def test_folds_are_deterministic_balanced_and_stratified():
    ids = [f"{i:010x}" for i in range(500)]
    masks = random_masks(500)
    folds = make_folds(ids, masks, n_folds=5, seed=7)
    again = make_folds(list(reversed(ids)), masks[::-1], n_folds=5, seed=7)
    assert folds.set_index("id")["fold"].equals(again.set_index("id")["fold"].loc[folds["id"]])
    sizes = folds["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1
    per_class = folds.groupby("coverage_class")["fold"].value_counts().unstack(fill_value=0)
    assert (per_class.max(axis=1) - per_class.min(axis=1)).max() <= 1
    assert not make_folds(ids, masks, n_folds=5, seed=8)["fold"].equals(folds["fold"])


def test_fold_file_is_written_then_reused(tmp_path):
    ids = [f"{i:010x}" for i in range(50)]
    masks = random_masks(50)
    path = tmp_path / "run" / "folds.csv"
    written = load_or_make_folds(path, ids, masks, n_folds=5, seed=1)
    assert path.is_file()
    edited = pd.read_csv(path, dtype={"id": str})
    edited["fold"] = (edited["fold"] + 1) % 5  # a reused file wins over a fresh split
    edited.to_csv(path, index=False)
    reused = load_or_make_folds(path, ids, masks, n_folds=5, seed=1)
    assert (reused["fold"] == (written["fold"] + 1) % 5).all()


def test_fold_file_of_other_data_is_refused(tmp_path):
    ids = [f"{i:010x}" for i in range(50)]
    path = tmp_path / "folds.csv"
    load_or_make_folds(path, ids, random_masks(50), n_folds=5)
    with pytest.raises(DataError, match="ids differ"):
        load_or_make_folds(path, ids[:-1], random_masks(49), n_folds=5)
    with pytest.raises(DataError, match="config asks for 4"):
        load_or_make_folds(path, ids, random_masks(50), n_folds=4)
