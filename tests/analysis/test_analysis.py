"""Tables of salt.analysis.oof: per-tile and per-image rows, groupings, run directories."""

from pathlib import Path

import numpy as np
import pytest

from salt.analysis.oof import (
    best_and_worst,
    load_run,
    oof_table,
    project_path,
    read_history,
    score_by,
    tile_table,
)
from salt.core.errors import DataError, SaltError
from salt.data.io import TileSet


def square(size: int, shape=(101, 101)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[:size, :size] = 1
    return mask


def test_oof_table_scores_and_names_each_kind_of_error():
    empty, salt = square(0), square(50)  # 2500 px = 24.5% coverage
    masks = np.stack([empty, empty, salt, salt, salt])
    predictions = np.stack([empty, square(10), empty, salt, square(40)])  # IoU 0.64 last
    table = oof_table(
        predictions.astype(np.float32),
        masks,
        ["a", "b", "c", "d", "e"],
        predictions=predictions,
        depths={"a": 10.0, "e": 50.0},
    )
    assert table["score"].tolist() == pytest.approx([1, 0, 0, 1, 0.3])  # 0.64 > 0.50..0.60
    assert table["error"].tolist() == ["ok", "false salt", "missed salt", "ok", "partial"]
    assert table["coverage_class"].tolist() == [0, 0, 3, 3, 3]
    assert table["depth"].tolist()[0] == 10.0 and np.isnan(table["depth"].tolist()[1])

    summary = score_by(table, "coverage_class")
    assert summary.loc[0, "score"] == 0.5 and summary.loc[3, "images"] == 3
    assert summary.loc[3, "missed salt"] == pytest.approx(1 / 3)

    best, worst = best_and_worst(table, 2)
    assert best == [3, 0]  # perfect ones, the one with salt first
    assert worst == [2, 1]  # score 0: the larger disagreement in area first


def test_tile_table_marks_blank_tiles_and_coverage():
    images = np.random.default_rng(0).integers(0, 255, (3, 101, 101), dtype=np.uint8)
    images[1] = 7
    tiles = TileSet(["x", "y", "z"], images, np.stack([square(0), square(0), square(101)]))
    table = tile_table(tiles)
    assert table["blank"].tolist() == [False, True, False]
    assert table["coverage"].tolist() == [0.0, 0.0, 1.0]
    assert table["coverage_class"].tolist() == [0, 0, 10]


def test_history_has_one_row_per_epoch_with_the_learning_rate(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,lr-Adam,step,train/loss_step,val/score\n"
        ",0.002,0,,\n0,,0,1.5,\n0,,1,,0.25\n,0.001,2,,\n1,,2,1.0,\n1,,3,,0.5\n"
    )
    history = read_history(path)
    assert list(history.index) == [0, 1]
    assert history["lr-Adam"].tolist() == [0.002, 0.001]
    assert history["val/score"].tolist() == [0.25, 0.5]

    (tmp_path / "bad.csv").write_text("step,loss\n0,1\n")
    with pytest.raises(DataError, match="no epoch column"):
        read_history(tmp_path / "bad.csv")


def test_load_run_reads_what_is_there_and_rejects_what_is_not(tmp_path):
    with pytest.raises(SaltError, match="no such run directory"):
        load_run(tmp_path / "missing")
    (tmp_path / "metrics.json").write_text('{"experiment": "x"')
    with pytest.raises(DataError, match="metrics.json: not valid JSON"):
        load_run(tmp_path)
    (tmp_path / "metrics.json").write_text('{"experiment": "x"}')
    run = load_run(tmp_path)
    assert run.name == "x" and run.history is None and run.oof is None


def test_project_path_falls_back_to_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_path("salt/analysis/oof.py").is_file()  # found from the project root
    assert project_path("nothing/here") == Path("nothing/here")
