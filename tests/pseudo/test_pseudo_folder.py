"""The pseudo-label folder: written whole or not at all, read back for training, and refused in
one line when its makers are gone, when it lacks the fold or when it holds training tiles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import salt.data.pseudo as pseudo_folder
from salt.core.errors import DataError, SaltError
from salt.data.pseudo import LabelSet, PseudoFolder, write_pseudo_folder


def label_set(fold: int | None, ids: list[str]) -> LabelSet:
    rng = np.random.default_rng(len(ids))
    images = rng.integers(0, 255, (len(ids), 101, 101), dtype=np.uint8)
    masks = np.zeros((len(ids), 101, 101), dtype=np.uint8)
    masks[:, 40:60, 30:] = 1
    return LabelSet(fold=fold, ids=ids, images=images, masks=masks)


def write(out, runs, validation="ensemble", folds=(None,), ids=("p1", "p2")):
    info = {"validation": validation, "runs": [str(r) for r in runs]}
    info["folds"] = {str(f): info["runs"] for f in folds if f is not None}
    manifest = pd.DataFrame({"id": list(ids), "kept": True})
    return write_pseudo_folder(out, [label_set(f, list(ids)) for f in folds], manifest, info)


def test_an_ensemble_folder_reads_back_as_training_tiles(tmp_path):
    written = label_set(None, ["p1", "p2"])
    out = write(tmp_path / "labels", [tmp_path])
    tiles = PseudoFolder(out).load(fold=3, training_ids=["t1", "t2"])
    assert tiles.ids == ["p1", "p2"]
    assert np.array_equal(tiles.images, written.images)
    assert np.array_equal(tiles.masks, written.masks)
    assert (out / "manifest.csv").is_file() and not list(tmp_path.glob(".labels*"))


def test_clean_labels_serve_only_their_fold(tmp_path):
    out = write(tmp_path / "labels", [tmp_path], "clean", folds=(0, 2))
    assert PseudoFolder(out).load(2, []).ids == ["p1", "p2"]
    with pytest.raises(DataError, match="clean labels for fold.s. 0, 2 only, none for data.fold=1"):
        PseudoFolder(out).load(1, [])


def test_labels_made_by_a_run_that_no_longer_exists_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    out = write(tmp_path / "labels", [run])
    run.rmdir()
    with pytest.raises(DataError, match=f"made by run {run}, which no longer exists"):
        PseudoFolder(out).load(0, [])


def test_a_tile_cannot_be_both_pseudo_labelled_and_a_training_tile(tmp_path):
    out = write(tmp_path / "labels", [tmp_path])
    with pytest.raises(DataError, match="1 tile.s. are also training tiles.*'p2'"):
        PseudoFolder(out).load(0, ["t1", "p2"])


def test_a_folder_salt_pseudo_did_not_write_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a pseudo-label folder .no pseudo.json."):
        PseudoFolder(tmp_path).load(0, [])
    with pytest.raises(DataError, match="pseudo-label folder not found"):
        PseudoFolder(tmp_path / "missing").load(0, [])


def test_a_failed_write_leaves_nothing_and_keeps_the_previous_folder(tmp_path, monkeypatch):
    out = write(tmp_path / "labels", [tmp_path], ids=("old",))
    calls = []

    def failing_png(path, array):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        np.save(str(path) + ".npy", array)

    monkeypatch.setattr(pseudo_folder, "write_png", failing_png)
    with pytest.raises(OSError):
        write(out, [tmp_path], ids=("new1", "new2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]  # no staging folder left
    assert PseudoFolder(out).load(0, []).ids == ["old"]


def test_a_folder_of_other_files_is_never_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SaltError, match="exists and is not a pseudo-label folder"):
        write(tmp_path / "mine", [tmp_path])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
