"""salt.tune on constructed out-of-fold predictions whose best post-processing is known: each
setting is chosen where it alone raises the score, none where none does; runs of overlapping
folds are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salt.core.errors import SaltError
from salt.inference.postprocess import PostProcess
from salt.inference.tuning import load_out_of_fold, tune
from tests.helpers.runs import compose_config, run_module

SIZE = 101
SALT, BACKGROUND = 0.9, 0.1  # predicted probabilities: the same masks at every swept threshold


@pytest.fixture(scope="module")
def cfg():
    """The real grids of conf/tune.yaml (min sizes 5..80, min areas 5..160, salt 0.2..0.8)."""
    return compose_config("tune", ["runs=[unused]"])


def boxes(*corners: tuple[int, int, int, int]) -> np.ndarray:
    """A 101x101 {0, 1} mask of the boxes (row, column, height, width)."""
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    for row, column, height, width in corners:
        mask[row : row + height, column : column + width] = 1
    return mask


def empty() -> np.ndarray:
    return boxes()


def out_of_fold(pairs: list[tuple[np.ndarray, np.ndarray]], salt=None) -> dict[str, np.ndarray]:
    """OOF arrays of (truth, predicted mask) pairs: probability 0.9 on the predicted pixels, 0.1
    elsewhere; `salt`: the "has salt" probabilities, if the runs have the head."""
    truth = np.stack([t for t, _ in pairs])
    predicted = np.stack([p for _, p in pairs])
    oof = {
        "ids": np.array([f"id{i}" for i in range(len(pairs))]),
        "probabilities": np.where(predicted == 1, SALT, BACKGROUND).astype(np.float32),
        "masks": truth,
    }
    if salt is not None:
        oof["salt"] = np.asarray(salt, dtype=np.float32)
    return oof


BLOB = (30, 30, 20, 20)  # 400 pixels
SPECKS = [(2 + 6 * i, 2, 2, 2) for i in range(15)] + [(2, 8 + 6 * i, 2, 2) for i in range(9)]


def test_specks_are_removed_by_the_minimum_size(cfg):
    """24 specks of 4 pixels around a true blob (IoU 0.81) and on empty tiles: min_size=5, the
    smallest size that removes them, wins; the blob (400 pixels) survives every size."""
    oof = out_of_fold(
        [(boxes(BLOB), boxes(BLOB, *SPECKS))] * 4 + [(empty(), boxes(*SPECKS[:3]))] * 2
    )
    postprocess, before, after = tune(oof, cfg)
    assert postprocess == PostProcess(min_size=5)
    assert before == pytest.approx(0.7 * 4 / 6) and after == 1.0


def test_false_small_masks_are_emptied_by_the_area_gate(cfg):
    """Empty tiles with one false 30-pixel component; salt tiles whose truth is five 30-pixel
    components (150 pixels). A minimum size of 40 would empty both kinds (worse); an area gate of
    40 or 80 pixels empties only the false ones: the smaller, 40, wins."""
    pieces = [(10 + 12 * i, 10, 5, 6) for i in range(5)]
    oof = out_of_fold(
        [(boxes(*pieces), boxes(*pieces))] * 5 + [(empty(), boxes((40, 40, 5, 6)))] * 4
    )
    postprocess, before, after = tune(oof, cfg)
    assert postprocess == PostProcess(gate="area", min_area=40)
    assert before == pytest.approx(5 / 9) and after == 1.0


def test_confident_false_masks_are_emptied_by_the_classifier_gate(cfg):
    """False 400-pixel blobs on empty tiles, as large as the true ones: no size or area removes
    them; the classifier says 0.1 there and 0.9 on the salt tiles, so its gate at 0.2 (the first
    threshold that separates them) wins."""
    oof = out_of_fold(
        [(boxes(BLOB), boxes(BLOB))] * 3 + [(empty(), boxes(BLOB))] * 3,
        salt=[0.9] * 3 + [0.1] * 3,
    )
    postprocess, before, after = tune(oof, cfg)
    assert postprocess == PostProcess(gate="classifier", salt_threshold=0.2)
    assert before == pytest.approx(0.5) and after == 1.0


def test_holes_in_predicted_blobs_are_filled(cfg):
    """Predicted blobs with an 8x8 hole (IoU 0.84) where the truth is solid: fill_holes wins."""
    with_hole = boxes(BLOB)
    with_hole[36:44, 36:44] = 0
    oof = out_of_fold([(boxes(BLOB), with_hole)] * 4 + [(empty(), empty())] * 2)
    postprocess, before, after = tune(oof, cfg)
    assert postprocess == PostProcess(fill_holes=True)
    assert before == pytest.approx((0.7 * 4 + 2) / 6) and after == 1.0


def test_nothing_is_chosen_where_nothing_helps(cfg):
    """Imperfect predictions (a shifted blob) that every setting would leave as they are or make
    worse: true specks of 4 pixels (a minimum size removes them), a true 30-pixel mask (the area
    gates empty it), a true ring (hole filling fills it), an uninformative classifier (0.5 on
    every tile: its gates keep all or empty all) and probabilities of 0.1 or 0.9 (every swept
    threshold gives the same masks). The defaults are kept, the threshold 0.5 included."""
    ring = boxes(BLOB)
    ring[35:45, 35:45] = 0
    pairs = [
        (boxes(BLOB, *SPECKS[:5]), boxes(BLOB, *SPECKS[:5])),
        (boxes((40, 40, 5, 6)), boxes((40, 40, 5, 6))),
        (ring, ring),
        (boxes(BLOB), boxes((33, 30, 20, 20))),  # IoU 340/460: scores 0.5
        (empty(), empty()),
    ]
    oof = out_of_fold(pairs, salt=[0.5] * len(pairs))
    postprocess, before, after = tune(oof, cfg)
    assert postprocess == PostProcess()
    assert before == after == pytest.approx(4.5 / 5)


# ---------------------------------------------------------------- runs of overlapping folds


def write_run(folder: Path, ids: list[str]) -> Path:
    """A run directory holding only oof.npz, as salt.train writes it."""
    folder.mkdir(parents=True)
    n = len(ids)
    np.savez_compressed(
        folder / "oof.npz",
        ids=np.array(ids),
        probabilities=np.full((n, SIZE, SIZE), BACKGROUND, dtype=np.float32),
        masks=np.zeros((n, SIZE, SIZE), dtype=np.uint8),
    )
    return folder


def test_runs_of_different_folds_are_tuned_together(tmp_path):
    first = write_run(tmp_path / "fold0", ["a", "b"])
    second = write_run(tmp_path / "fold1", ["c"])
    oof = load_out_of_fold([first, second])
    assert oof["ids"].tolist() == ["a", "b", "c"] and oof["masks"].shape == (3, SIZE, SIZE)


def test_overlapping_fold_ids_are_refused_naming_the_runs_and_ids(tmp_path):
    first = write_run(tmp_path / "fold0", ["a", "b", "c", "d", "e"])
    second = write_run(tmp_path / "fold1", ["x", "y"])
    third = write_run(tmp_path / "fold0-again", ["y", "e", "d", "c", "b"])
    with pytest.raises(SaltError) as error:
        load_out_of_fold([first, second, third])
    message = str(error.value)
    assert "\n" not in message
    assert f"{first} and {third} share 4 out-of-fold ids ('b', 'c', 'd', ...)" in message
    assert f"{second} and {third} share 1 out-of-fold id ('y')" in message
    assert "pass runs of different folds" in message

    with pytest.raises(SaltError, match=f"{second} and {second} share 2 out-of-fold ids"):
        load_out_of_fold([second, second])  # the same run twice

    repeated = write_run(tmp_path / "repeated", ["r", "s", "r"])
    with pytest.raises(
        SaltError, match=f"{repeated}/oof.npz holds 1 out-of-fold id \\('r'\\) twice"
    ):
        load_out_of_fold([repeated])


def test_the_command_refuses_overlapping_runs_in_one_line_and_writes_nothing(tmp_path):
    first = write_run(tmp_path / "fold0", ["a", "b"])
    second = write_run(tmp_path / "fold1", ["b", "c"])
    result = run_module("salt.tune", f"runs=[{first},{second}]")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: out-of-fold ids overlap: {first} and {second} share 1 out-of-fold id ('b'); "
        "pass runs of different folds"
    ]
    assert not list(tmp_path.rglob("postprocess.json*"))


def test_a_multirun_folder_or_a_glob_tunes_every_fold_inside(tmp_path, capsys):
    import salt.tune

    multirun = tmp_path / "multirun"
    folds = [write_run(multirun / f"{k}_fold{k}", [f"a{k}", f"b{k}"]) for k in range(3)]
    (multirun / "multirun.yaml").write_text("")
    # a pattern with brackets quoted inside the list, as docs/inference.md writes it
    for runs, tuned in (
        (str(multirun), folds),
        (f"{multirun}/*_fold*", folds),
        (f"'{multirun}/*_fold[0-1]'", folds[:2]),
    ):
        salt.tune.main(compose_config("tune", [f"runs=[{runs}]"]))
        images = 2 * len(tuned)
        assert f"{images} out-of-fold images from {len(tuned)} run(s)" in capsys.readouterr().out
        assert [(fold / "postprocess.json").is_file() for fold in folds] == [
            fold in tuned for fold in folds
        ]
        for fold in tuned:
            (fold / "postprocess.json").unlink()


def test_the_submission_message_counts_the_runs_of_a_multirun_folder(tmp_path):
    from salt.inference.submission import submission_message
    from salt.inference.tuning import save_tuned

    multirun = tmp_path / "multirun"
    folds = [write_run(multirun / f"{k}_fold{k}", [f"a{k}"]) for k in range(2)]
    for k, fold in enumerate(folds):
        (fold / "metrics.json").write_text(f'{{"experiment": "resnet34", "fold": {k}}}')
    save_tuned(folds, PostProcess(), 0.5, 0.75, 2)
    assert submission_message([multirun]) == "salt resnet34: 2 run(s), OOF score 0.7500"
