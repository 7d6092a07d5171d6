"""No command leaves a stray file in the folder it is run from: every output goes where its
options say, and Hydra's own log only into its `outputs/` folder (salt.predict's
`outputs/predict/<time>/predict.log`). `salt.tune` used to leave an empty `tune.log` there."""

from __future__ import annotations

import json

import cv2
import numpy as np

from salt.data.synthetic import make_section
from tests.helpers.commands import run_commands
from tests.helpers.tiny_net import write_checkpoint


def tiny_run(folder, ids):
    """A run directory without training: a tiny net's checkpoint, oof.npz and metrics.json."""
    write_checkpoint(folder / "checkpoints" / "best.ckpt")
    n = len(ids)
    rng = np.random.default_rng(0)
    np.savez_compressed(
        folder / "oof.npz",
        ids=np.array(ids),
        probabilities=rng.random((n, 101, 101), dtype=np.float32),
        masks=(rng.random((n, 101, 101)) > 0.5).astype(np.uint8),
    )
    (folder / "metrics.json").write_text(json.dumps({"experiment": "tiny", "fold": 0}))
    return folder


def test_no_command_leaves_a_file_in_the_folder_it_is_run_from(synthetic_root, tmp_path):
    ids = sorted(p.stem for p in (synthetic_root / "train" / "masks").glob("*.png"))[:4]
    run = tiny_run(tmp_path / "runs" / "run", ids)
    work = tmp_path / "work"
    work.mkdir()
    cv2.imwrite(str(work / "section.png"), make_section(101, 202, seed=0)[0])
    (work / "truth.csv").write_text("id,rle_mask\n" + "".join(f"{i},\n" for i in ids))
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    results, result = run_commands(
        [
            ["salt.tune", f"runs=[{run}]"],
            [
                "salt.predict",
                f"runs=[{run}]",
                f"data.root={synthetic_root}",
                f"out={work}/submission.csv",
                "progress=false",
            ],
            ["salt.report", str(run), "--out", str(work)],
            [
                "salt.section",
                str(work / "section.png"),
                "--runs",
                str(run),
                "--out",
                str(work / "section"),
            ],
            [
                "salt.evaluate",
                str(work / "truth.csv"),
                str(synthetic_root / "train" / "masks"),
                "--subset",
            ],
            ["salt.export", str(run), "--format", "torchscript", "--out", str(work / "model.pt")],
        ],
        cwd,
    )
    assert [r["status"] for r in results] == [0] * 6, result.stdout + result.stderr[-3000:]
    for output in ("submission.csv", "report.csv", "section/mask.png", "model.pt"):
        assert (work / output).is_file(), output
    assert (run / "postprocess.json").is_file()
    left = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*") if p.is_file())
    # Hydra's log of salt.predict, in its own outputs/ folder; nothing else
    assert [name for name in left if not name.startswith("outputs/predict/")] == []
