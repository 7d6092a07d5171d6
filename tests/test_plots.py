"""Plots of a training run (written by `salt.train`, redrawn by `python -m salt.analysis.plots`) and of
test predictions (written by `salt.predict`)."""

import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from omegaconf import open_dict

from salt.analysis.oof import load_run
from salt.analysis.plots import write_prediction_plot, write_run_plots
from salt.core.rundir import PLOTS
from salt.data.io import load_train
from salt.plots import main
from salt.predict import predict
from tests.helpers.runs import compose_config, run_main

RUN_PLOTS = ("curves.png", "thresholds.png", "overlays.png", "score_by_coverage.png")


def read_png(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"{path} is not a decodable image"
    return image


def assert_nontrivial_png(path, min_size=(150, 250)):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = read_png(path)
    height, width = image.shape[:2]
    assert height >= min_size[0] and width >= min_size[1], (path.name, image.shape)
    assert image.std() > 15, f"{path.name}: almost uniform (std {image.std():.1f})"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 16, f"{path.name}: too few colours"
    return image


def tinted_pixels(image, channel):
    """Pixels where one BGR channel clearly dominates the other two (green truth, red
    prediction overlays)."""
    image = image.astype(int)
    others = [c for c in range(3) if c != channel]
    return int(((image[..., channel] - image[..., others].max(-1)) > 40).sum())


def test_training_writes_every_plot(smoke_run):
    plots = smoke_run / PLOTS
    assert sorted(p.name for p in plots.iterdir()) == sorted(RUN_PLOTS)
    for name in RUN_PLOTS:
        assert_nontrivial_png(plots / name)
    overlays = read_png(plots / "overlays.png")
    # the smoke model predicts salt somewhere (red) and the fold has salt (green)
    assert tinted_pixels(overlays, 2) > 100 and tinted_pixels(overlays, 1) > 100


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """`python -m salt.analysis.plots ARGV` in this process: (exit status, stdout, stderr)."""
    return run_main(main, argv, capsys)


def test_plots_cli_redraws_a_run_directory(smoke_run, tmp_path, capsys):
    run = tmp_path / "copy"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("checkpoints", PLOTS))
    status, out, err = run_cli([run], capsys)
    assert status == 0, err
    written = out.split()
    assert sorted(written) == sorted(str(run / PLOTS / name) for name in RUN_PLOTS)
    before, after = read_png(smoke_run / PLOTS / "overlays.png"), read_png(written[-1])
    assert before.shape == after.shape  # same figure from the files as from memory


def test_plots_without_oof_draw_the_curves_only(smoke_run, tmp_path):
    run = tmp_path / "no-oof"
    (run / "csv").mkdir(parents=True)
    shutil.copy(smoke_run / "csv" / "metrics.csv", run / "csv")
    written = write_run_plots(run)
    assert [p.name for p in written] == ["curves.png"]


def test_plots_cli_rejects_a_folder_that_is_no_run(tmp_path, capsys):
    status, _, err = run_cli([tmp_path], capsys)
    assert status == 1
    assert err.strip().splitlines()[-1] == (
        f"error: {tmp_path}: not a run directory (no csv/metrics.csv and no oof.npz)"
    )
    assert not (tmp_path / PLOTS).exists()


def test_curves_read_every_epoch_of_the_csv_log(smoke_run):
    run = load_run(smoke_run)
    logged = pd.read_csv(smoke_run / "csv" / "metrics.csv")
    assert list(run.history.index) == sorted(logged["epoch"].dropna().astype(int).unique())
    assert run.history["val/score"].notna().all() and run.history["lr-Adam"].notna().all()


def test_predict_writes_an_overlay_grid_beside_the_submission(smoke_run, synthetic_root, tmp_path):
    out = tmp_path / "submission.csv"
    cfg = compose_config(
        "predict",
        [
            f"runs=[{smoke_run}]",
            f"data.root={synthetic_root}",
            f"out={out}",
            "postprocess=fixed",
            "tta=[none]",
        ],
    )
    with open_dict(cfg):
        del cfg["hydra"]
    predict(cfg)
    grid = assert_nontrivial_png(tmp_path / "submission.overlays.png")
    assert tinted_pixels(grid, 1) == 0  # no truth panels for test tiles

    cfg.out = str(tmp_path / "quiet.csv")
    cfg.plots = False
    predict(cfg)
    assert not (tmp_path / "quiet.overlays.png").exists()


def test_prediction_grid_shows_empty_and_full_masks(synthetic_root, tmp_path):
    tiles = load_train(synthetic_root)
    masks = np.zeros_like(tiles.masks)
    masks[: len(masks) // 2, 30:70, 30:70] = 1
    path = write_prediction_plot(tmp_path / "sub.csv", tiles.images, masks, tiles.ids)
    image = assert_nontrivial_png(path)
    assert tinted_pixels(image, 2) > 100
    empty = write_prediction_plot(tmp_path / "empty.csv", tiles.images, 0 * masks, tiles.ids)
    assert tinted_pixels(read_png(empty), 2) == 0


@pytest.mark.parametrize("bad", ["missing", "corrupt"])
def test_unreadable_run_files_are_one_line_errors(smoke_run, tmp_path, bad, capsys):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("checkpoints", PLOTS))
    if bad == "missing":
        (run / "config.yaml").write_text("data:\n  root: /nonexistent/data\n")
        expected = "error: /nonexistent/data: data root not found"
    else:
        (run / "oof.npz").write_bytes(b"not a zip")
        expected = f"error: {run / 'oof.npz'}: not a readable .npz"
    status, _, err = run_cli([run], capsys)
    assert status == 1
    assert err.strip().splitlines()[-1].startswith(expected)
    assert not (run / PLOTS).exists()  # nothing drawn before the error
