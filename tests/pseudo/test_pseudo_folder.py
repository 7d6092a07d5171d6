"""The pseudo-label folder: written whole or not at all, read back for training, and refused in
one line when its makers are gone, when it lacks the fold, when it holds training tiles or when
clean labels descend from a net that trained on the fold (or do not say what they descend from)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import salt.data.pseudo as pseudo_folder
from salt.core.errors import DataError, SaltError
from salt.data.pseudo import (
    Ancestor,
    LabelSet,
    PseudoFolder,
    provenance_record,
    write_pseudo_folder,
)

SPLIT = "0123456789abcdef"  # the split of the training runs of these tests


def label_set(fold: int | None, ids: list[str]) -> LabelSet:
    rng = np.random.default_rng(len(ids))
    images = rng.integers(0, 255, (len(ids), 101, 101), dtype=np.uint8)
    masks = np.zeros((len(ids), 101, 101), dtype=np.uint8)
    masks[:, 40:60, 30:] = 1
    return LabelSet(fold=fold, ids=ids, images=images, masks=masks)


def write(out, runs, validation="ensemble", folds=(None,), ids=("p1", "p2"), ancestors=None):
    """Labels made by `runs` (of fold K for fold K's labels in the clean mode), with `ancestors`
    behind every fold's labels when given."""
    info = {"validation": validation, "runs": [str(r) for r in runs]}
    info["folds"] = {str(f): info["runs"] for f in folds if f is not None}
    info["provenance"] = {
        str(f): provenance_record(
            SPLIT,
            ancestors if ancestors else [Ancestor(r, SPLIT, f) for r in info["runs"]],
        )
        for f in folds
        if f is not None
    }
    manifest = pd.DataFrame({"id": list(ids), "kept": True})
    return write_pseudo_folder(out, [label_set(f, list(ids)) for f in folds], manifest, info)


def test_an_ensemble_folder_reads_back_as_training_tiles(tmp_path):
    written = label_set(None, ["p1", "p2"])
    out = write(tmp_path / "labels", [tmp_path])
    tiles = PseudoFolder(out).load(fold=3, training_ids=["t1", "t2"], split=SPLIT)
    assert tiles.ids == ["p1", "p2"]
    assert np.array_equal(tiles.images, written.images)
    assert np.array_equal(tiles.masks, written.masks)
    assert (out / "manifest.csv").is_file() and not list(tmp_path.glob(".labels*"))


def test_clean_labels_serve_only_their_fold(tmp_path):
    out = write(tmp_path / "labels", [tmp_path], "clean", folds=(0, 2))
    assert PseudoFolder(out).load(2, [], SPLIT).ids == ["p1", "p2"]
    with pytest.raises(DataError, match="clean labels for fold.s. 0, 2 only, none for data.fold=1"):
        PseudoFolder(out).load(1, [], SPLIT)


def test_clean_labels_descending_from_a_net_that_trained_on_the_fold_are_refused(tmp_path):
    """What training checks whatever made the folder: every ancestor of fold 0's labels must
    have validated on fold 0 of this run's split."""
    own, other = str(tmp_path / "fold0"), str(tmp_path / "fold1")
    behind = {
        "honest": [Ancestor(own, SPLIT, 0)],
        "another fold": [Ancestor(own, SPLIT, 0), Ancestor(other, SPLIT, 1)],
        "another split": [Ancestor(own, SPLIT, 0), Ancestor(other, "fedcba9876543210", 0)],
        "unknown": [Ancestor(own, SPLIT, 0), Ancestor(other, None, None, "no config.yaml")],
    }
    found = {}
    for case, ancestors in behind.items():
        out = write(tmp_path / case, [tmp_path], "clean", folds=(0,), ancestors=ancestors)
        try:
            found[case] = PseudoFolder(out).load(0, [], SPLIT).ids
        except DataError as error:
            found[case] = str(error)
    prefix = "fold 0's clean labels cannot train data.fold=0 honestly: run " + other
    assert found == {
        "honest": ["p1", "p2"],
        "another fold": f"{tmp_path / 'another fold' / 'pseudo.json'}: {prefix} trained on "
        "fold 0's tiles (it validated on fold 1); remake the labels with python -m salt.pseudo "
        "from runs of this split that validated on fold 0, or with pseudo.validation=ensemble "
        "(the OOF is then optimistic)",
        "another split": found["another split"],
        "unknown": found["unknown"],
    }
    assert found["another split"].startswith(
        f"{tmp_path / 'another split' / 'pseudo.json'}: {prefix} trained on another split "
        f"(split fedcba9876543210, this one {SPLIT}: "
    )
    assert found["unknown"].startswith(
        f"{tmp_path / 'unknown' / 'pseudo.json'}: {prefix} may have trained on any tile "
        "(no config.yaml); "
    )


def test_clean_labels_without_provenance_are_refused_but_ensemble_labels_train(tmp_path):
    """A folder of an older salt.pseudo: clean labels that cannot show what made them are
    refused naming the fix; ensemble labels are not honest by design and still train."""
    clean = write(tmp_path / "clean", [tmp_path], "clean", folds=(0,))
    ensemble = write(tmp_path / "ensemble", [tmp_path])
    for folder in (clean, ensemble):
        info = json.loads((folder / "pseudo.json").read_text())
        del info["provenance"]
        (folder / "pseudo.json").write_text(json.dumps(info))
    with pytest.raises(DataError) as refused:
        PseudoFolder(clean).load(0, [], SPLIT)
    assert str(refused.value) == (
        f"{clean / 'pseudo.json'}: records no provenance for fold 0's labels (an older "
        "salt.pseudo), so their honesty cannot be checked: remake the labels with python -m "
        "salt.pseudo"
    )
    assert PseudoFolder(ensemble).load(0, [], SPLIT).ids == ["p1", "p2"]


def test_clean_labels_made_on_another_split_are_refused(tmp_path):
    out = write(tmp_path / "labels", [tmp_path], "clean", folds=(0,))
    with pytest.raises(
        DataError, match="they were made on another split .split 0123456789abcdef, "
    ):
        PseudoFolder(out).load(0, [], "another split")


def test_labels_made_by_a_run_that_no_longer_exists_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    out = write(tmp_path / "labels", [run])
    run.rmdir()
    with pytest.raises(DataError, match=f"made by run {run}, which no longer exists"):
        PseudoFolder(out).load(0, [], SPLIT)


def test_a_tile_cannot_be_both_pseudo_labelled_and_a_training_tile(tmp_path):
    out = write(tmp_path / "labels", [tmp_path])
    with pytest.raises(DataError, match="1 tile.s. are also training tiles.*'p2'"):
        PseudoFolder(out).load(0, ["t1", "p2"], SPLIT)


def test_a_folder_salt_pseudo_did_not_write_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a pseudo-label folder .no pseudo.json."):
        PseudoFolder(tmp_path).load(0, [], SPLIT)
    with pytest.raises(DataError, match="pseudo-label folder not found"):
        PseudoFolder(tmp_path / "missing").load(0, [], SPLIT)


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
    assert PseudoFolder(out).load(0, [], SPLIT).ids == ["old"]


def test_a_folder_of_other_files_is_never_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SaltError, match="exists and is not a pseudo-label folder"):
        write(tmp_path / "mine", [tmp_path])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
