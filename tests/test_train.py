import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import OmegaConf

import salt.train
from salt.core.config import CONFIG_DIR
from salt.core.errors import ConfigError, exit_on_salt_error
from salt.core.rundir import run_entries
from salt.models.checkpoints import load_net
from salt.train import train
from salt.training.finish import choose_oof_weights
from salt.training.module import SaltModule, build_module
from tests.helpers.interrupt import Interrupted
from tests.helpers.runs import compose_config, run_module


def test_smoke_run_trains_validates_and_writes_its_run_directory(train_config, tmp_path):
    cfg = train_config("logger=default")
    metrics, objects = train(cfg)
    run = tmp_path / "run"
    assert metrics["epochs"] == cfg.trainer.max_epochs
    assert 0.0 <= metrics["best_val_score"] <= 1.0
    # the threshold sweep includes 0.5: its best is at least the score at 0.5, up to float32
    # rounding (the two sum their images' scores differently: 1 ulp apart on the seismic tiles)
    assert (
        0.0 <= metrics["oof_best_score"] <= 1.0
        and metrics["oof_best_score"] >= metrics["oof_score"] - 1e-6
    )
    assert (
        json.loads((run / "metrics.json").read_text())["best_val_score"]
        == metrics["best_val_score"]
    )
    resolved = OmegaConf.load(run / "config.yaml")
    assert resolved.data.root == cfg.data.root and "${" not in (run / "config.yaml").read_text()
    folds = pd.read_csv(run / "folds.csv", dtype={"id": str})
    assert len(folds) == 60 and folds["fold"].nunique() == 5
    assert (run / "checkpoints" / "best.ckpt").is_file() and (
        run / "checkpoints" / "last.ckpt"
    ).is_file()
    logged = pd.read_csv(run / "csv" / "metrics.csv")
    for column in (
        "train/loss_epoch",
        "val/loss",
        "val/score",
        "val/best_score",
        "val/best_threshold",
    ):
        assert logged[column].notna().any(), column
    assert any(c.startswith("lr-") for c in logged.columns)
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    oof = np.load(run / "oof.npz")
    val_ids = folds.loc[folds["fold"] == cfg.data.fold, "id"].tolist()
    assert oof["ids"].tolist() == val_ids
    assert oof["probabilities"].shape == (len(val_ids), 101, 101)
    assert np.array_equal(oof["masks"], objects["datamodule"].val_tiles.masks)

    net = load_net(run / "checkpoints" / "best.ckpt")
    assert type(net).__name__ == type(objects["module"].net).__name__


def test_cli_honours_hydra_run_dir(synthetic_root, tmp_path):
    run = tmp_path / "cli-run"
    result = run_module(
        "salt.train",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",  # synthetic_root is not smoke's generated set: read as it is
        "trainer.max_epochs=1",
        "logger.tensorboard=null",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"run directory: {run}" in result.stdout
    assert (run / "metrics.json").is_file() and (run / ".hydra" / "config.yaml").is_file()


def test_missing_data_root_is_a_one_line_error(tmp_path):
    result = run_module(
        "salt.train",
        "experiment=smoke",
        f"data.root={tmp_path / 'none'}",
        "data.synthetic=null",
        f"hydra.run.dir={tmp_path / 'run'}",
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'none'}: data root not found (pass data.root=DIR with the Kaggle layout)"
    )


def test_snapshots_and_swa_start_from_the_second_cycle_by_default(train_config, tmp_path):
    cfg = train_config(
        "sched=cosine_restarts",
        "callbacks=snapshots",
        "sched.cycle_epochs=1",
        "trainer.max_epochs=3",
    )
    metrics, _ = train(cfg)
    checkpoints = tmp_path / "run" / "checkpoints"
    snapshots = sorted((checkpoints / "snapshots").glob("cycle-*.ckpt"))
    # the first cycle's weights (the least trained) are neither kept nor averaged
    assert [p.name for p in snapshots] == ["cycle-001.ckpt", "cycle-002.ckpt"]
    assert 0.0 <= metrics["swa_val_score"] <= 1.0
    # oof_weights=auto: the OOF comes from SWA unless the best checkpoint validated higher
    higher = "swa" if metrics["swa_val_score"] >= metrics["best_val_score"] else "best"
    assert metrics["oof_source"] == higher

    def state(path):
        return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]

    swa, averaged = state(checkpoints / "swa.ckpt"), [state(p) for p in snapshots]
    weight = next(k for k in swa if k.endswith(".weight") and swa[k].dim() == 4)
    assert torch.allclose(swa[weight], (averaged[0][weight] + averaged[1][weight]) / 2, atol=1e-6)
    running_mean = next(k for k in swa if k.endswith("running_mean"))
    # BatchNorm statistics are recomputed for the averaged weights, not averaged
    assert not torch.allclose(
        swa[running_mean], (averaged[0][running_mean] + averaged[1][running_mean]) / 2
    )


@pytest.mark.parametrize(
    ("policy", "swa_score", "best_score", "source"),
    [
        ("auto", 0.7, 0.6, "swa"),
        ("auto", 0.6, 0.6, "swa"),
        ("auto", 0.5, 0.6, "best"),
        ("auto", None, 0.6, "best"),
        ("auto", None, None, "last"),
        ("swa", 0.5, 0.6, "swa"),
        ("swa", None, 0.6, "best"),
        ("best", 0.7, 0.6, "best"),
        ("best", 0.7, None, "last"),
        ("last", 0.7, 0.6, "last"),
    ],
)
def test_the_oof_weights_follow_the_policy_and_the_validation_scores(
    policy, swa_score, best_score, source
):
    """A score of None: the run has no such checkpoint."""
    assert choose_oof_weights(policy, swa_score, best_score) == source


@pytest.mark.parametrize(
    "experiment", sorted(p.stem for p in (Path(CONFIG_DIR) / "experiment").glob("*.yaml"))
)
def test_every_experiment_composes_and_builds(experiment):
    cfg = compose_config("train", [f"experiment={experiment}", "model.encoder_weights=null"])
    HydraConfig().set_config(cfg)  # for ${hydra:runtime.output_dir}, whatever ran before
    module = build_module(cfg)
    assert isinstance(module, SaltModule)
    optimizer = module.configure_optimizers()
    assert optimizer
    assert cfg.trainer.max_epochs >= 1 and cfg.experiment_name == experiment
    trainer_cfg = OmegaConf.to_container(cfg.trainer)
    assert trainer_cfg["_target_"] == "pytorch_lightning.Trainer"
    instantiate(cfg.data)  # no data is read until setup


def test_resnet34_cpu_is_the_recipe_the_benchmarks_measured():
    """BENCHMARKS.md's run F measured experiment=resnet34 with these overrides (its r34sym
    arm), and "The time budget spent on training" validate_last=0.5 on top; the experiment must
    compose to exactly that config, so its figures are its own."""
    measured = [
        "experiment=resnet34",
        "trainer=cpu",
        "module.channels_last=true",
        "optim=adam",
        "optim.lr=1e-3",
        "sched.cycles=1",
        "data.batch_size=16",
        "loss.warm_start_epochs=2",
        "loss.mask_loss.empty=symmetric",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "trainer.max_time=00:00:40:00",
        "validate_last=0.5",
    ]
    configs = []
    for overrides in (["experiment=resnet34_cpu"], measured):
        cfg = OmegaConf.to_container(compose_config("train", overrides))
        del cfg["hydra"], cfg["experiment_name"]
        configs.append(cfg)
    assert configs[0] == configs[1]


def test_oof_is_predicted_on_the_training_device_at_the_training_precision(
    train_config, monkeypatch
):
    """As salt.predict runs (bf16 on a GPU), not in float32 wherever teardown left the module."""
    seen = {}
    original = salt.training.finish.predict_tiles

    def spy(*args, **kwargs):
        seen.update(device=kwargs["device"], precision=kwargs["precision"])
        return original(*args, **kwargs)

    monkeypatch.setattr(salt.training.finish, "predict_tiles", spy)
    # bf16 kept on a CPU without bf16 units too (autocast runs there, slowly)
    monkeypatch.setattr(salt.training.machine, "cpu_has_bf16", lambda: True)
    train(train_config("trainer.precision=bf16-mixed", "trainer.max_epochs=1", "plots=false"))
    assert seen == {"device": torch.device("cpu"), "precision": "bf16-mixed"}


@pytest.mark.parametrize(
    ("override", "error"),
    [
        (
            "trainer.devices=abc",
            "trainer.devices: `devices` selected with `CPUAccelerator` should be an int > 0, "
            "got 'abc'",
        ),
        (
            "trainer.num_nodes=0",
            "trainer.num_nodes: `num_nodes` must be a positive integer, but got 0",
        ),
        (
            "+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping",
            "callbacks.stop: EarlyStopping.__init__() missing 1 required positional argument: "
            "'monitor'",
        ),
        (
            "+logger.csv.flush_every=3",
            "logger.csv.flush_every: CSVLogger.__init__() got an unexpected keyword argument "
            "'flush_every'",
        ),
    ],
    ids=["trainer", "trainer-got", "callback", "logger"],
)
def test_what_lightning_refuses_while_building_the_trainer_is_one_line_naming_the_key(
    override, error, train_config, tmp_path, capsys
):
    """Lightning's own checks of the Trainer's, the callbacks' and the loggers' arguments (a
    Hydra traceback before): one line naming the config key, exit 1, before config.yaml is
    written (no unfinished run is left: the run directory holds the data's fold table only)."""
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:  # as `python -m salt.train` runs it
        exit_on_salt_error(train)(train_config(override, output_dir=run))
    assert stop.value.code == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {error}"]
    assert [path.name for path in run.iterdir()] == ["folds.csv"]


def test_a_resumed_run_is_unfinished_until_it_ends_again(smoke_run, train_config, tmp_path):
    """Resuming a finished run (to train it longer) removes its metrics.json: stopped before it
    ends, it is refused by runs= like any unfinished run."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    stop = ["+callbacks.stop._target_=tests.helpers.interrupt.StopAt", "+callbacks.stop.epoch=1"]
    with pytest.raises(Interrupted):
        train(
            train_config(f"resume={run}", "trainer.max_epochs=2", *stop, "+callbacks.stop.batch=0")
        )
    assert not (run / "metrics.json").exists() and (smoke_run / "metrics.json").exists()
    with pytest.raises(ConfigError, match="runs: 1 run is unfinished"):
        run_entries("runs", [run])
