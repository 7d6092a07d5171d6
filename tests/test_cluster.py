"""Fold sweeps on a cluster: Hydra's submitit launchers (hydra-submitit-launcher, the `cluster`
extra) with salt's configs."""

import json

import pytest

from tests.helpers.runs import compose_config, run_module

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

LAUNCHERS = {
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
}


def test_slurm_launcher_composes_with_the_readme_overrides():
    cfg = compose_config(
        "train",
        [
            "experiment=resnet34",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=1",
            "hydra.launcher.timeout_min=720",
        ],
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_ == LAUNCHERS["submitit_slurm"]
    assert (launcher.partition, launcher.gpus_per_node, launcher.timeout_min) == ("gpu", 1, 720)
    # submitit's job files go beside the sweep's run directories
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_submitit_launchers_compose_with_every_experiment(launcher):
    for experiment in ("smoke", "demo", "resnet34", "se_resnext50"):
        cfg = compose_config("train", [f"experiment={experiment}", f"hydra/launcher={launcher}"])
        assert cfg.hydra.launcher._target_ == LAUNCHERS[launcher]


@pytest.mark.slow
def test_a_fold_runs_as_a_submitit_job(synthetic_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_module(
        "salt.train",
        "-m",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        "data.fold=1",
        "trainer.max_epochs=1",
        "logger.tensorboard=null",
        "plots=false",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((sweep / "0_fold1" / "metrics.json").read_text())
    assert metrics["fold"] == 1 and 0 <= metrics["best_val_score"] <= 1
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # it ran through submitit
