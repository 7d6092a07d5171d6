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
from tests.helpers.runs import compose_config


def pseudo_config(run, data_root, out, *overrides: str):
    return compose_config(
        "pseudo",
        [f"runs=[{run}]", f"data.root={data_root}", f"out={out}", "progress=false", *overrides],
    )


def test_clean_labels_come_from_the_runs_of_their_fold(smoke_run, synthetic_root, tmp_path, capsys):
    out = pseudo_label(
        pseudo_config(smoke_run, synthetic_root, tmp_path / "labels", "pseudo.select=all")
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(
        line.startswith("pseudo-labels (clean, select=all): fold 0: kept 10 of 10")
        for line in lines
    )
    info = json.loads((out / "pseudo.json").read_text())
    assert info["validation"] == "clean" and info["folds"] == {"0": [str(smoke_run)]}
    manifest = pd.read_csv(out / "manifest.csv", dtype={"id": str})
    assert len(manifest) == 10 and set(manifest["labels"]) == {0} and manifest["kept"].all()
    assert set(manifest["runs"]) == {str(smoke_run)}
    tiles = load_train(out / "fold_0")  # the Kaggle layout: a data root of its own
    test_ids = sorted(p.stem for p in (synthetic_root / "test" / "images").glob("*.png"))
    assert tiles.ids == test_ids
    coverage = manifest.set_index("id").loc[tiles.ids, "coverage"].to_numpy()
    assert tiles.truth.reshape(10, -1).mean(1) == pytest.approx(coverage, abs=1e-4)
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
    assert (manifest.loc[~manifest["kept"], "confidence"] < 0.3).all()
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
