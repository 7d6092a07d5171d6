"""salt.bench.pseudo's data: the validation fold of salt's split kept, the training tiles halved
into a labelled root and a folder of images whose masks are never linked."""

from __future__ import annotations

import pandas as pd

from salt.bench.pseudo import split_data
from salt.data.folds import load_or_make_folds, make_folds
from salt.data.io import load_train


def test_the_hidden_half_has_no_masks_and_the_validation_fold_is_salts(synthetic_root, tmp_path):
    data = split_data(synthetic_root, tmp_path, fold=0)
    everything = load_train(synthetic_root)
    split = make_folds(everything.ids, everything.truth, 5, 42)
    validation = set(split["id"][split["fold"] == 0])
    labelled = load_train(data["labelled"])
    hidden = {path.stem for path in data["hidden"].glob("*.png")}
    assert not hidden & set(labelled.ids) and not hidden & validation
    assert hidden | set(labelled.ids) == set(everything.ids)
    assert abs(len(hidden) - (len(everything.ids) - len(validation)) / 2) <= 1
    assert not any((data["labelled"] / "train" / "masks" / f"{i}.png").exists() for i in hidden)
    folds = load_or_make_folds(data["labelled_folds"], labelled.ids, labelled.truth, 5, 42)
    assert set(folds["id"][folds["fold"] == 0]) == validation
    full = pd.read_csv(data["full_folds"], dtype={"id": str})
    assert set(full["id"][full["fold"] == 0]) == validation
