"""`python -m salt.pseudo`: the labels of a folder of tiles from trained runs, in the clean and
the ensemble mode, and its refusals (one line, nothing written)."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from salt import cli
from salt.core.errors import ConfigError, DataError
from salt.data.io import load_train, read_mask
from salt.pseudo import pseudo_label
from tests.helpers.pseudo import fake_run
from tests.helpers.runs import compose_config


def pseudo_config(run, data_root, out, *overrides: str):
    return compose_config(
        "pseudo",
        [f"runs=[{run}]", f"data.root={data_root}", f"out={out}", "progress=false", *overrides],
    )


def test_clean_labels_come_from_the_runs_of_their_fold(synthetic_root, tmp_path, capsys):
    """Fold 0's run predicts no salt, fold 1's salt everywhere: each fold's labels are its own
    run's (their mix, or the other's, would fill or empty the other fold's masks)."""
    runs = tmp_path / "runs"
    fold0 = fake_run(runs / "fold0", synthetic_root, 0, salt=False)
    fold1 = fake_run(runs / "fold1", synthetic_root, 1, salt=True)
    out = pseudo_label(
        pseudo_config(runs, synthetic_root, tmp_path / "labels", "pseudo.select=all", "tta=[none]")
    )
    assert capsys.readouterr().out.splitlines()[-2] == (
        "pseudo-labels (clean, select=all): "
        "fold 0: kept 10 of 10 tiles (dropped: none; kept masks by coverage: empty 10); "
        "fold 1: kept 10 of 10 tiles (dropped: none; kept masks by coverage: 90-100% 10)"
    )
    info = json.loads((out / "pseudo.json").read_text())
    assert info["validation"] == "clean"
    assert info["folds"] == {"0": [str(fold0)], "1": [str(fold1)]}
    test_ids = sorted(p.stem for p in (synthetic_root / "test" / "images").glob("*.png"))
    for fold, salt in ((0, 0), (1, 1)):
        tiles = load_train(out / f"fold_{fold}")  # the Kaggle layout: a data root of its own
        assert tiles.ids == test_ids and (tiles.truth == salt).all()
    manifest = pd.read_csv(out / "manifest.csv", dtype={"id": str, "labels": str})
    assert len(manifest) == 20 and manifest["kept"].all()
    runs_of = manifest.groupby("labels")["runs"].unique().to_dict()
    assert {k: list(v) for k, v in runs_of.items()} == {"0": [str(fold0)], "1": [str(fold1)]}
    coverage = manifest.set_index(["labels", "id"])["coverage"]
    assert (coverage["0"] == 0).all() and (coverage["1"] == 1).all()
    assert not (out / "train.csv").exists()


def test_ensemble_labels_keep_what_the_policy_keeps(smoke_run, synthetic_root, tmp_path):
    out = pseudo_label(
        pseudo_config(
            smoke_run,
            synthetic_root,
            tmp_path / "labels",
            "pseudo.validation=ensemble",
            "pseudo.bes.min_confidence=0.3",
        )
    )
    manifest = pd.read_csv(out / "manifest.csv", dtype={"id": str})
    assert set(manifest["labels"]) == {"all"}
    kept = manifest[manifest["kept"]]
    assert 0 < len(kept) and set(manifest["reason"]) <= {"kept", "low confidence", "blank image"}
    assert (manifest["reason"] == "kept").equals(manifest["kept"])
    dropped = manifest[~manifest["kept"]]
    low = dropped["reason"] == "low confidence"
    assert (dropped.loc[low, "confidence"] < 0.3).all()
    for tile_id in dropped.loc[~low, "id"]:  # blank images: dropped whatever their confidence
        image = cv2.imread(str(synthetic_root / "test" / "images" / f"{tile_id}.png"))
        assert image.std() == 0, tile_id
    assert load_train(out).ids == kept["id"].tolist()
    mask = read_mask(out / "train" / "masks" / f"{kept['id'].iloc[0]}.png")
    assert mask.shape == (101, 101)


def test_clean_labels_need_the_fold_of_every_run(smoke_run, synthetic_root, tmp_path):
    checkpoint = tmp_path / "weights.ckpt"
    checkpoint.write_bytes((smoke_run / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(ConfigError, match="^pseudo.validation: clean needs each run's data.fold"):
        pseudo_label(pseudo_config(checkpoint, synthetic_root, tmp_path / "labels"))
    assert not (tmp_path / "labels").exists()


def test_tiles_of_the_wrong_size_are_refused_naming_the_file(smoke_run, tmp_path):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    cv2.imwrite(str(tiles / "a.png"), np.zeros((101, 101), np.uint8))
    cv2.imwrite(str(tiles / "b.png"), np.zeros((100, 120), np.uint8))
    with pytest.raises(DataError, match=r"b\.png: expected a 101x101 tile, got 120x100$"):
        pseudo_label(pseudo_config(smoke_run, tiles, tmp_path / "labels"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiles"]


def test_a_folder_without_tiles_is_refused_in_one_line(smoke_run, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    arguments = [f"runs=[{smoke_run}]", f"data.root={empty}", f"out={tmp_path / 'labels'}"]
    monkeypatch.setattr(
        sys, "argv", ["salt-pseudo", *arguments, f"hydra.run.dir={tmp_path / 'hydra'}"]
    )
    with pytest.raises(SystemExit) as exit:
        cli.pseudo()  # the console script, in this process
    assert exit.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {empty}: no tile images (*.png) to pseudo-label"
    ]
    assert not list(empty.iterdir()) and not list(tmp_path.glob("*labels*"))
