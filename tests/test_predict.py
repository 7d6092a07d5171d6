"""Inference, tuning and submission: TTA, ensembles, and a train -> tune -> predict -> evaluate
round trip that must reproduce the scores the run reported."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from salt.core.rundir import checkpoint_files
from salt.data.dataset import TileDataset
from salt.data.io import load_train
from salt.evaluate import evaluate_submission
from salt.inference.tiles import predict_ensemble, predict_tiles
from salt.models.checkpoints import load_net, read_checkpoint, tile_options
from tests.helpers.runs import run_module, train_smoke


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, synthetic_root):
    run = tmp_path_factory.mktemp("trained") / "run"
    metrics = train_smoke(synthetic_root, run, "model.classifier=true", "trainer.max_epochs=3")
    return run, metrics


def as_test_set(root, source, ids):
    """The given training tiles laid out as a Kaggle test set."""
    (root / "test" / "images").mkdir(parents=True)
    for tile_id in ids:
        shutil.copy(source / "train" / "images" / f"{tile_id}.png", root / "test" / "images")
    pd.DataFrame({"id": ids, "rle_mask": "1 1"}).to_csv(root / "sample_submission.csv", index=False)
    return root


def test_flip_tta_is_flip_equivariant(trained_run, synthetic_root):
    run, _ = trained_run
    checkpoint = read_checkpoint(run / "checkpoints" / "best.ckpt")
    net = load_net(run / "checkpoints" / "best.ckpt", checkpoint)
    images = load_train(synthetic_root).images[:6]
    options = tile_options("best.ckpt", checkpoint)
    tta = ["none", "hflip"]
    straight = predict_tiles(net, TileDataset(images, **options), tta=tta)
    mirrored = predict_tiles(net, TileDataset(images[..., ::-1].copy(), **options), tta=tta)
    assert np.allclose(mirrored.masks, straight.masks[..., ::-1], atol=1e-5)
    assert np.allclose(mirrored.salt, straight.salt, atol=1e-5)
    plain = predict_tiles(net, TileDataset(images, **options), tta=["none"])
    assert not np.allclose(plain.masks, straight.masks, atol=1e-5)


def test_ensemble_of_identical_checkpoints_equals_one(trained_run, synthetic_root):
    run, _ = trained_run
    best = run / "checkpoints" / "best.ckpt"
    images = load_train(synthetic_root).images[:5]
    one = predict_ensemble([best], images, tta=["none"])
    two = predict_ensemble([best, best], images, tta=["none"], progress=True)
    assert np.allclose(one.masks, two.masks, atol=1e-6) and np.allclose(
        one.salt, two.salt, atol=1e-6
    )
    last = predict_ensemble([best, run / "checkpoints" / "last.ckpt"], images, tta=["none"])
    assert last.masks.shape == one.masks.shape


def test_train_tune_predict_evaluate_reproduces_the_run_scores(
    trained_run, synthetic_root, tmp_path
):
    run, metrics = trained_run
    oof = np.load(run / "oof.npz")
    test_root = as_test_set(tmp_path / "valtest", synthetic_root, oof["ids"].tolist())
    masks_dir = synthetic_root / "train" / "masks"

    # the best checkpoint at threshold 0.5, no TTA: the validation score of the run
    fixed = tmp_path / "fixed.csv"
    result = run_module(
        "salt.predict",
        f"runs=[{run}]",
        f"data.root={test_root}",
        f"out={fixed}",
        "tta=[none]",
        "postprocess=fixed",
        "threshold=0.5",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "checkpoint 1/1" in result.stdout  # the progress bar
    assert (
        abs(evaluate_submission(fixed, masks_dir, subset=True) - metrics["best_val_score"]) < 1e-6
    )

    result = run_module("salt.tune", f"runs=[{run}]")
    assert result.returncode == 0, result.stderr[-2000:]
    tuned = json.loads((run / "postprocess.json").read_text())
    assert tuned["oof_score_after"] >= tuned["oof_score_before"]
    assert abs(tuned["oof_score_before"] - metrics["oof_score"]) < 1e-6
    assert "OOF score after" in result.stdout

    submission = tmp_path / "tuned.csv"
    result = run_module(
        "salt.predict", f"runs=[{run}]", f"data.root={test_root}", f"out={submission}", "tta=[none]"
    )  # the TTA of the smoke run's OOF
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        abs(evaluate_submission(submission, masks_dir, subset=True) - tuned["oof_score_after"])
        < 1e-6
    )


def test_predict_refuses_bad_inputs_in_one_line(trained_run, synthetic_root, tmp_path):
    run, _ = trained_run
    test_root = as_test_set(
        tmp_path / "valtest", synthetic_root, load_train(synthetic_root).ids[:2]
    )
    empty_run = tmp_path / "empty-run"
    (empty_run / "checkpoints").mkdir(parents=True)
    no_tests = tmp_path / "no-tests"
    no_tests.mkdir()
    (no_tests / "sample_submission.csv").write_text("id,rle_mask\nx,1 1\n")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    cases = [
        ([f"runs=[{empty_run}]", f"data.root={no_tests}"], "run directory has no best checkpoints"),
        ([f"runs=[{run}]", f"data.root={no_tests}", "postprocess=fixed"], "no test images"),
        (
            [f"runs=[{foreign}]", f"data.root={test_root}", "postprocess=fixed"],
            "not a salt checkpoint",
        ),
    ]
    for args, problem in cases:
        out = tmp_path / "s.csv"
        result = run_module("salt.predict", *args, f"out={out}")
        assert result.returncode == 1, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and problem in last, last
        assert not out.exists()


def test_predict_uses_the_weights_tuning_saw_and_warns_about_others(
    synthetic_root, tmp_path_factory, tmp_path
):
    """A run with SWA: its OOF (and so salt.tune) comes from swa.ckpt, and so does predict's
    default; picking best after tuning says that the tuning was done on other weights."""
    run = tmp_path_factory.mktemp("swa") / "run"
    metrics = train_smoke(
        synthetic_root,
        run,
        "sched=cosine_restarts",
        "callbacks=snapshots",
        "sched.cycle_epochs=1",
        "trainer.max_epochs=3",
        "oof_weights=swa",
    )
    assert metrics["oof_source"] == "swa"
    assert checkpoint_files([run]) == [run / "checkpoints" / "swa.ckpt"]
    assert run_module("salt.tune", f"runs=[{run}]").returncode == 0
    tuned = json.loads((run / "postprocess.json").read_text())
    oof = np.load(run / "oof.npz")
    test_root = as_test_set(tmp_path / "valtest", synthetic_root, oof["ids"].tolist())

    default = tmp_path / "default.csv"
    common = (f"runs=[{run}]", f"data.root={test_root}", "tta=[none]", "plots=false")
    result = run_module("salt.predict", *common, f"out={default}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning" not in result.stderr
    masks_dir = synthetic_root / "train" / "masks"
    assert (
        abs(evaluate_submission(default, masks_dir, subset=True) - tuned["oof_score_after"]) < 1e-6
    )

    result = run_module(
        "salt.predict", *common, f"out={tmp_path / 'best.csv'}", "checkpoints=[best]"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "post-processing was tuned on the out-of-fold predictions of its swa weights" in (
        result.stderr
    )
