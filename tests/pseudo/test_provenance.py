"""Clean pseudo-labels train fold K only when no net behind them can have trained on fold K's
tiles: pseudo.json records each label set's split and every ancestor run (the labelling runs,
the runs behind the labels they trained on, the runs they were fine-tuned from), salt.pseudo
refuses to make labels that would leak, and training (`data.pseudo`) refuses labels made on
another split. The runs are fake (config.yaml and a tiny checkpoint): nothing trains."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from salt.core.errors import ConfigError, DataError
from salt.data.datamodule import TGSDataModule
from salt.data.folds import make_folds
from salt.data.io import load_train
from salt.data.lineage import split_fingerprint
from salt.data.synthetic import generate
from salt.pseudo import pseudo_label
from tests.helpers.pseudo import fake_run
from tests.pseudo.test_pseudo_command import pseudo_config


def make_labels(runs, data_root, out, *overrides: str):
    return pseudo_label(
        pseudo_config(runs, data_root, out, "pseudo.select=all", "tta=[none]", *overrides)
    )


def train_with(data_root, labels, fold: int = 0) -> TGSDataModule:
    """The data of a run of `fold` (salt's default split of `data_root`) on `labels`, set up as
    salt.train sets it up before training."""
    data = TGSDataModule(str(data_root), fold=fold, pseudo=str(labels))
    data.setup("fit")
    return data


def default_split(data_root) -> str:
    tiles = load_train(data_root)
    folds = make_folds(tiles.ids, tiles.truth)
    return split_fingerprint(folds["id"], folds["fold"])


def test_labels_whose_every_ancestor_validated_on_the_fold_train_it(synthetic_root, tmp_path):
    """Round 2 of fold 0: a fold-0 run trained on fold 0's clean labels and fine-tuned from the
    fold-0 run that made them; its labels descend from fold-0 runs of this split only."""
    first = fake_run(tmp_path / "round0", synthetic_root, 0)
    labels = make_labels(first, synthetic_root, tmp_path / "labels0")
    second = fake_run(tmp_path / "round1", synthetic_root, 0, pseudo=labels, finetune_from=first)
    again = make_labels(second, synthetic_root, tmp_path / "labels1")
    split = default_split(synthetic_root)
    record = json.loads((again / "pseudo.json").read_text())["provenance"]
    assert record == {
        "0": {
            "split": split,
            "ancestors": [
                {"run": str(run), "split": split, "fold": 0, "note": ""} for run in (second, first)
            ],
        }
    }
    assert len(train_with(synthetic_root, again).pseudo_tiles.ids) == 10


def other_root(tmp_path, root):
    return {"data_root": generate(tmp_path / "other-root", n_train=60, n_test=1, seed=1)}


def other_folds_csv(tmp_path, root):
    tiles = load_train(root)
    folds = make_folds(tiles.ids, tiles.truth)
    folds["fold"] = (folds["fold"] + 1) % 5  # fold 0 of this file is fold 4 of salt's split
    path = tmp_path / "my-folds.csv"
    folds.to_csv(path, index=False)
    return {"folds_csv": path}


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda tmp_path, root: {"n_folds": 3}, id="n_folds"),
        pytest.param(lambda tmp_path, root: {"fold_seed": 7}, id="fold_seed"),
        pytest.param(other_folds_csv, id="folds_csv"),
        pytest.param(other_root, id="data_root"),
    ],
)
def test_labels_made_on_another_split_are_refused_in_training(synthetic_root, tmp_path, source):
    """Fold 0 of another split holds tiles of this split's other folds, which the labelling
    net trained on: training fold 0 of salt's split on its labels is refused in one line."""
    options = {"data_root": synthetic_root, **source(tmp_path, synthetic_root)}
    run = fake_run(tmp_path / "run", options.pop("data_root"), 0, **options)
    labels = make_labels(run, synthetic_root, tmp_path / "labels")
    with pytest.raises(DataError) as refused:
        train_with(synthetic_root, labels)
    message = str(refused.value)
    assert message.startswith(
        f"{labels / 'pseudo.json'}: fold 0's clean labels cannot train data.fold=0 honestly: "
        f"they were made on another split (split "
    )
    assert f"this run's {default_split(synthetic_root)}" in message and "\n" not in message


def test_labels_of_a_run_trained_on_ensemble_labels_are_refused(synthetic_root, tmp_path):
    """A fold-0 run trained on ensemble labels made by a fold-1 run learnt, through them, what
    that run learnt from fold 0's tiles: its clean labels for fold 0 are refused, nothing
    written."""
    fold1 = fake_run(tmp_path / "fold1", synthetic_root, 1)
    ensemble = make_labels(
        fold1, synthetic_root, tmp_path / "ensemble", "pseudo.validation=ensemble"
    )
    fold0 = fake_run(tmp_path / "fold0", synthetic_root, 0, pseudo=ensemble)
    with pytest.raises(ConfigError) as refused:
        make_labels(fold0, synthetic_root, tmp_path / "labels")
    assert str(refused.value) == (
        "pseudo.validation: clean labels for fold 0 cannot be honest: run "
        f"{fold1} trained on fold 0's tiles (it validated on fold 1); label fold 0 with runs "
        "that never trained on its tiles, or pass pseudo.validation=ensemble"
    )
    assert not (tmp_path / "labels").exists()
    # the opt-out: ensemble labels (an optimistic OOF, documented) still train any fold
    assert len(train_with(synthetic_root, ensemble).pseudo_tiles.ids) == 10


@pytest.mark.parametrize("entry", ["run", "checkpoint", "bare checkpoint"])
def test_labels_of_a_run_fine_tuned_from_another_folds_net_are_refused(
    synthetic_root, tmp_path, entry
):
    """A fold-0 run fine-tuned from fold 1's net (its directory, a checkpoint in it, or a
    checkpoint file with no run around it) starts from weights that trained on fold 0."""
    fold1 = fake_run(tmp_path / "fold1", synthetic_root, 1)
    source = {
        "run": fold1,
        "checkpoint": fold1 / "checkpoints" / "best.ckpt",
        "bare checkpoint": shutil.copy(fold1 / "checkpoints" / "best.ckpt", tmp_path / "w.ckpt"),
    }[entry]
    fold0 = fake_run(tmp_path / "fold0", synthetic_root, 0, finetune_from=source)
    with pytest.raises(ConfigError) as refused:
        make_labels(fold0, synthetic_root, tmp_path / "labels")
    why = (
        f"run {source} may have trained on any tile (no config.yaml)"
        if entry == "bare checkpoint"
        else f"run {fold1} trained on fold 0's tiles (it validated on fold 1)"
    )
    assert str(refused.value).startswith(
        f"pseudo.validation: clean labels for fold 0 cannot be honest: {why}; "
    )
    assert not (tmp_path / "labels").exists()


def test_a_run_whose_fold_file_is_gone_cannot_make_clean_labels(synthetic_root, tmp_path):
    """The split of a run that named a fold file is that file's, never re-made: a file since
    deleted cannot be told from another split."""
    folds = tmp_path / "shared-folds.csv"
    run = fake_run(tmp_path / "run", synthetic_root, 0, folds_csv=folds)
    folds.unlink()
    with pytest.raises(
        ConfigError, match=f"run {run} may have trained on any tile .its fold file "
    ):
        make_labels(run, synthetic_root, tmp_path / "labels")


def test_a_run_without_a_fold_file_is_split_as_salt_splits_its_data_root(synthetic_root, tmp_path):
    run = fake_run(tmp_path / "run", synthetic_root, 0, folds_csv=None)
    labels = make_labels(run, synthetic_root, tmp_path / "labels")
    assert len(train_with(synthetic_root, labels).pseudo_tiles.ids) == 10
    manifest = pd.read_csv(labels / "manifest.csv")
    assert set(manifest["runs"]) == {str(run)}
