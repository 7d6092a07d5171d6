"""`make pseudo`: train -> pseudo-label -> retrain, each round's runs and labels in its own
folder, the retrained runs trained on the previous round's labels."""

from __future__ import annotations

import json
import subprocess

import pytest
from omegaconf import OmegaConf

from tests.helpers.runs import REPO_ROOT

pytestmark = pytest.mark.slow


def test_make_pseudo_runs_the_rounds_apart(synthetic_root, tmp_path):
    out = tmp_path / "rounds"
    quick = "data.synthetic=null trainer.max_epochs=1 trainer.limit_train_batches=1 plots=false"
    quick += " logger.tensorboard=null oof_tta=[none]"
    done = subprocess.run(
        ["make", "--no-print-directory", "pseudo"]
        # the environment as it is (make would reinstall it when pyproject.toml is newer)
        + ["-o", ".venv/.installed-torch-cuda", "-o", ".venv/.installed-torch-cpu"]
        + [f"DATA={synthetic_root}", "EXPERIMENT=smoke", "ROUNDS=1", "FOLDS=0"]
        + [f"PSEUDO_OUT={out}", f"ARGS={quick}", "PSEUDO_ARGS=pseudo.select=all progress=false"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = out / "round0" / "runs" / "0_fold0", out / "round1" / "runs" / "0_fold0"
    labels = out / "round0" / "labels"
    assert (first / "checkpoints").is_dir() and (second / "checkpoints").is_dir()
    assert json.loads((labels / "pseudo.json").read_text())["folds"] == {"0": [str(first)]}
    assert OmegaConf.load(first / "config.yaml").data.pseudo is None
    assert OmegaConf.load(second / "config.yaml").data.pseudo == str(labels)
    assert sorted(p.name for p in out.iterdir()) == ["round0", "round1"]
    assert not (out / "round1" / "labels").exists()  # the last round's runs are the result
