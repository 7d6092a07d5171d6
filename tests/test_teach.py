"""python -m salt.teach: painted lines -> fine-tuned runs -> the survey, resumable."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from salt.core.rundir import RunDir
from salt.models.checkpoints import net_weights, read_checkpoint
from tests.helpers.runs import run_module
from tests.helpers.tiny_net import write_checkpoint

pytest.importorskip("segyio")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def painted(tmp_path_factory):
    """A generated 3x102x110 survey, one inline painted from its truth (30% left unpainted),
    and a tiny untrained checkpoint to teach."""
    root = tmp_path_factory.mktemp("teach")
    made = run_module(
        "salt.data.synthetic", root / "data", "--cube", "3x102x110", "--cube-only", "--seed", "2"
    )
    assert made.returncode == 0, made.stderr
    cube = root / "data" / "cube.sgy"
    lines = run_module(
        "salt.paint",
        "lines",
        cube,
        "--inline",
        "101",
        "--out",
        root / "paint",
        "--truth",
        root / "data" / "cube_mask.npy",
        "--unpainted",
        "0.3",
    )
    assert lines.returncode == 0, lines.stderr
    base = write_checkpoint(root / "base" / "checkpoints" / "best.ckpt")
    return root, cube, base


def teach(root, cube, base, out, *extra, minutes="0.05"):
    return run_module(
        "salt.teach",
        cube,
        "--painted",
        root / "paint",
        "--runs",
        base,
        "--out",
        out,
        "--minutes",
        minutes,
        "--axes",
        "inline",
        "--truth",
        root / "data" / "cube_mask.npy",
        "--train-override",
        "trainer.max_steps=2",
        *extra,
        timeout=600,
    )


def test_the_loop_fine_tunes_every_run_and_predicts_the_survey_then_resumes(painted, tmp_path):
    root, cube, base = painted
    out = tmp_path / "taught"
    first = teach(root, cube, base, out)
    assert first.returncode == 0, first.stderr[-2000:]
    for step in ("[1/3] tiles", "[2/3] fine-tuning", "[3/3] the survey"):
        assert step in first.stdout
    tiles = (out / "tiles" / "train" / "labelled").glob("*.png")
    assert len(list(tiles)) >= 2
    (run,) = (out / "runs").iterdir()
    assert RunDir(run).metrics.is_file()
    taught = net_weights(read_checkpoint(RunDir(run).last_checkpoint))
    before = net_weights(read_checkpoint(base))
    assert any(not torch.equal(taught[k], before[k]) for k in before)  # it learnt
    summary = json.loads((out / "survey" / "summary.json").read_text())
    assert "iou" in json.dumps(summary)
    assert (out / "survey" / "probability.sgy").is_file()

    stamp = RunDir(run).metrics.stat().st_mtime_ns
    again = teach(root, cube, base, out)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[1/3]" not in again.stdout and "[2/3]" not in again.stdout
    assert RunDir(run).metrics.stat().st_mtime_ns == stamp

    other = teach(root, cube, base, out, minutes="0.1")
    assert other.returncode == 1
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {out}: taught with other minutes (see {out}/teach.json); "
        "give another --out to teach these"
    )


def test_too_few_painted_tiles_are_refused_in_one_line(painted, tmp_path):
    root, cube, base = painted
    (tmp_path / "paint").mkdir()
    lone = Path(tmp_path / "paint" / "inline_101.npy")
    labels = np.full((110, 102), -1, np.int8)
    labels[105:, 101:] = 0  # the bottom right corner: only the last window holds it
    np.save(lone, labels)
    result = run_module(
        "salt.teach",
        cube,
        "--painted",
        tmp_path / "paint",
        "--runs",
        base,
        "--out",
        tmp_path / "out",
        timeout=300,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("1 tile from the painted lines: paint more of them")
    )
    assert not (tmp_path / "out" / "runs").exists()
