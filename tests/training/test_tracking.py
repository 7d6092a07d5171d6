"""Loggers: CSV and TensorBoard by default; MLflow and W&B configs that work offline."""

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from salt.train import train
from salt.training.loggers import HPARAMS_METRICS, flat_config
from tests.helpers.runs import compose_config

DEFAULT_LOGGERS = {"csv", "tensorboard"}


def targets(cfg) -> dict[str, str]:
    return {name: entry["_target_"] for name, entry in cfg.logger.items() if entry}


def test_default_loggers_are_csv_and_tensorboard(tmp_path):
    cfg = compose_config("train", ["experiment=smoke"])
    OmegaConf.update(cfg, "paths.output_dir", str(tmp_path), force_add=True)
    assert set(targets(cfg)) == DEFAULT_LOGGERS
    loggers = {name: instantiate(entry) for name, entry in cfg.logger.items()}
    assert isinstance(loggers["csv"], CSVLogger)
    assert isinstance(loggers["tensorboard"], TensorBoardLogger)


@pytest.mark.parametrize("logger", ["mlflow", "wandb"])
def test_tracking_configs_add_to_the_defaults_and_stay_in_the_run_directory(logger):
    cfg = compose_config("train", ["experiment=smoke", f"logger={logger}"])
    OmegaConf.update(cfg, "paths.output_dir", "/runs/r1", force_add=True)
    assert set(targets(cfg)) == DEFAULT_LOGGERS | {logger}
    entry = OmegaConf.to_container(cfg.logger[logger], resolve=True)
    if logger == "mlflow":
        assert entry["tracking_uri"] == "sqlite:////runs/r1/mlflow.db"
        assert entry["artifact_location"] == "/runs/r1/mlartifacts"
    else:
        assert entry["offline"] is True and entry["save_dir"] == "/runs/r1"


@pytest.mark.slow
def test_mlflow_logger_records_a_smoke_run_locally(train_config, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    cfg = train_config("logger=mlflow", "logger.tensorboard=null", "plots=false")
    metrics, _ = train(cfg)
    run_dir = tmp_path / "run"
    client = mlflow.tracking.MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "fold0"
    assert run.data.params["model.encoder_name"] == cfg.model.encoder_name
    assert float(run.data.params["optim.lr"]) == cfg.optim.lr
    history = client.get_metric_history(run.info.run_id, "val/score")
    assert len(history) == cfg.trainer.max_epochs
    assert max(m.value for m in history) == pytest.approx(metrics["best_val_score"])
    assert not (run_dir / "plots").exists()  # plots=false


@pytest.mark.slow
def test_wandb_logger_records_a_smoke_run_offline(train_config, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    train(train_config("logger=wandb", "logger.tensorboard=null", "plots=false"))
    wandb.finish()  # what the end of a `python -m salt.train` process does: flush the run file
    (offline,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
    (log,) = offline.glob("run-*.wandb")
    data = log.read_bytes()
    assert b"val/score" in data and b"train/loss_epoch" in data
    assert b"model.encoder_name" in data and b"optim.lr" in data  # the config, in W&B's


def test_flat_config_has_one_dotted_key_per_leaf_with_plain_values():
    cfg = OmegaConf.create(
        {
            "model": {"name": "r34", "depth": 5, "channels": [16, 8]},
            "lr": "${model.depth}",
            "x": None,
        }
    )
    assert flat_config(cfg) == {
        "model.name": "r34",
        "model.depth": 5,
        "model.channels": "[16, 8]",
        "lr": 5,  # resolved
        "x": "None",
    }


def read_tensorboard_hparams(log_dir):
    """(settings of the run's session, metric tags of the HPARAMS tab) from the event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(log_dir))
    events.Reload()
    contents = events.PluginTagToContent("hparams")
    data = [plugin_data_pb2.HParamsPluginData.FromString(c) for c in contents.values()]
    (session,) = [d.session_start_info for d in data if d.HasField("session_start_info")]
    (experiment,) = [d.experiment for d in data if d.HasField("experiment")]
    return session.hparams, [info.name.tag for info in experiment.metric_infos]


@pytest.mark.slow
def test_a_run_shows_its_settings_in_tensorboards_hparams(train_config, tmp_path):
    cfg = train_config(
        "logger.csv=null", "optim.lr=0.00123", "data.fold=1", "plots=false", "trainer.max_epochs=1"
    )
    train(cfg)
    hparams, metric_tags = read_tensorboard_hparams(tmp_path / "run" / "tensorboard")
    assert hparams["model.encoder_name"].string_value == cfg.model.encoder_name
    assert hparams["optim.lr"].number_value == pytest.approx(0.00123)
    assert hparams["data.fold"].number_value == 1
    assert hparams["loss._target_"].string_value == cfg.loss._target_
    assert hparams["experiment_name"].string_value == "smoke"
    assert set(metric_tags) == set(HPARAMS_METRICS)
