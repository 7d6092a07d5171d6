"""Train one fold: `python -m salt.train experiment=resnet34 data.root=DIR data.fold=K`.

All folds: `python -m salt.train -m experiment=resnet34 data.fold=0,1,2,3,4`.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

from salt.analysis.plots import plot_finished_run
from salt.core.checks import (
    choice,
    positive_number,
    probability,
    trainer_settings,
    whole_number,
)
from salt.core.config import CONFIG_DIR
from salt.core.errors import (
    ConfigError,
    NonFiniteLossError,
    SaltError,
    exit_on_salt_error,
    run_hydra_main,
    salt_error_in,
)
from salt.core.rundir import RunDir, checkpoint_files, metric_value
from salt.data.datamodule import TGSDataModule
from salt.data.tile_statistics import summarise
from salt.inference.tiles import check_tta
from salt.models.checkpoints import check_weights_fit, net_weights, read_checkpoint
from salt.models.encoders import check_encoder_name
from salt.training.budget import SharedClockTimer
from salt.training.distributed import check_launch_mode
from salt.training.finish import OOF_WEIGHTS, FinishSettings, finish_fit
from salt.training.loggers import log_config
from salt.training.machine import fit_trainer_to_machine
from salt.training.module import SaltModule, build_module
from salt.training.resume import config_differences, last_checkpoint, trim_metrics_csv


def _named_key(key: str, node: Any, message: str) -> tuple[str, str]:
    """The key of `node` that a constructor's error `message` names first (`trainer.devices`),
    and ", got VALUE" unless the message shows it; else `key` itself and nothing."""
    found = []
    for name in node.keys() if isinstance(node, DictConfig) else ():
        match = re.search(rf"(?<![\w.]){re.escape(str(name))}(?!\w)", message)
        if match and not str(name).startswith("_"):
            found.append((match.start(), str(name)))
    if not found:
        return key, ""
    name = min(found)[1]
    value = "" if re.search(r"\bgot\b", message) else f", got {node.get(name)!r}"
    return f"{key}.{name}", value


def instantiated(key: str, node: Any, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)` of config key `key` (`trainer`, `callbacks.swa`); what the
    constructor raises (Lightning's own checks of its arguments) becomes one line naming the
    key: `trainer.devices: ... should be an int > 0, got 'abc'`."""
    try:
        return instantiate(node, **kwargs)
    except Exception as error:
        if salt_error_in(error) is not None:
            raise
        cause: BaseException = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = " ".join(line.strip() for line in str(cause).splitlines() if line.strip())
        message = message or type(cause).__name__
        named, value = _named_key(key, node, message)
        raise ConfigError(named, message.rstrip(".") + value) from error


def _instantiate_group(cfg: DictConfig, group: str) -> list[Any]:
    """Objects for every entry of a config group like `callbacks` or `logger`; null entries skip."""
    entries = cfg.get(group)
    if not entries:
        return []
    return [
        instantiated(f"{group}.{name}", entry)
        for name, entry in entries.items()
        if entry and "_target_" in entry
    ]


@rank_zero_only
def save_resolved_config(cfg: DictConfig, run: RunDir) -> None:
    run.write_config(cfg)


@rank_zero_only
def unfinish(run: RunDir) -> None:
    """A resumed run is unfinished again until it ends: its metrics.json, of the checkpoints it
    is about to replace, goes (`runs=` takes finished runs only)."""
    run.metrics.unlink(missing_ok=True)


@rank_zero_only
def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _start_checkpoint(cfg: DictConfig) -> tuple[Path | None, dict | None]:
    """The checkpoint to continue from (`resume=RUN_DIR` or `ckpt_path=FILE`) and its content.

    With `resume`, the run directory becomes the output directory, so the run is appended to.
    """
    if cfg.get("resume") and cfg.get("ckpt_path"):
        raise SaltError("pass resume=RUN_DIR or ckpt_path=FILE, not both")
    if cfg.get("resume"):
        path, checkpoint = last_checkpoint(cfg.resume)
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(cfg.resume).absolute())
        return path, checkpoint
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path), read_checkpoint(cfg.ckpt_path)
    return None, None


def load_finetune_weights(cfg: DictConfig, module: SaltModule) -> None:
    """`finetune_from=RUN_DIR|FILE`: the net starts from those weights (its optimiser, schedule
    and epoch count start afresh, unlike `ckpt_path`)."""
    if cfg.get("resume") or cfg.get("ckpt_path"):
        raise SaltError("finetune_from starts a new run from weights only: drop resume/ckpt_path")
    entry = Path(cfg.finetune_from)
    if not entry.exists():
        raise SaltError(f"finetune_from={entry}: no such run directory or checkpoint file")
    path = checkpoint_files([entry])[0]
    weights = net_weights(read_checkpoint(path))
    check_weights_fit(path, weights, module.net)
    module.net.load_state_dict(weights)


def check_settings(cfg: DictConfig) -> str | None:
    """The run's own keys and the trainer's, refused in one line before anything is written
    (the data keys are checked by the DataModule); the trainer fitted to the machine: a GPU
    setting on a machine without one runs on the CPU; the note saying so, if any, is returned
    (printed once every other setting has passed, so a refused run prints its error alone)."""
    whole_number("seed", cfg.get("seed"), 0)
    module = cfg.get("module") or {}
    probability("module.threshold", module.get("threshold", 0.5))
    whole_number(
        "module.finite_check_every_n_steps", module.get("finite_check_every_n_steps", 10), 1
    )
    check_tta(cfg.get("oof_tta", ["none"]), key="oof_tta")
    choice("oof_weights", cfg.get("oof_weights", "auto"), OOF_WEIGHTS)
    check_launch_mode(cfg.trainer, multirun=_in_multirun())
    if cfg.get("optim") and "lr" in cfg.optim:
        positive_number("optim.lr", cfg.optim.lr)
    if cfg.get("model") and "encoder_name" in cfg.model:
        check_encoder_name(cfg.model.encoder_name)
    trainer_settings(cfg.trainer)
    return fit_trainer_to_machine(cfg.trainer)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> pl.Trainer:
    """The Trainer of `cfg.trainer`; a time budget (`trainer.max_time`) is read on rank 0's clock
    every few steps (SharedClockTimer) instead of each rank's at every step (Lightning's Timer).
    A value Lightning refuses is one line naming its key."""
    budget: dict[str, Any] = {}
    if cfg.trainer.get("max_time"):
        timer = SharedClockTimer(cfg.trainer.max_time, validate_last=cfg.get("validate_last", 1.0))
        callbacks = [*callbacks, timer]
        budget["max_time"] = None
        if cfg.trainer.get("max_epochs") is None and cfg.trainer.get("max_steps", -1) == -1:
            budget["max_epochs"] = -1  # the budget alone ends the run, as with max_time
    return instantiated(
        "trainer", cfg.trainer, callbacks=callbacks, logger=loggers or False, **budget
    )


def _start_loggers(cfg: DictConfig, loggers: list[Any], start: dict | None) -> None:
    """The settings logged for the trackers (TensorBoard HPARAMS, MLflow, W&B); on resume, rank
    0's CSV log loses the rows of the epoch the run was stopped in (the resumed run logs them
    again)."""
    # Lightning sets rank_zero_only.rank at import; the decorator's type does not declare it
    if cfg.get("resume") and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        assert start is not None  # resume read the run's last checkpoint
        for logger in loggers:
            if isinstance(logger, CSVLogger):
                trim_metrics_csv(
                    Path(logger.log_dir) / "metrics.csv", start["epoch"], start["global_step"]
                )
    log_config(loggers, cfg)


def compose(cfg: DictConfig) -> tuple[SaltModule, TGSDataModule, pl.Trainer, RunDir, Path | None]:
    """The run's module, data, trainer and run directory, and the checkpoint to start from; a bad
    setting, model, checkpoint or data root stops the run here, before it writes anything."""
    machine_note = check_settings(cfg)
    ckpt_path, start = _start_checkpoint(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # stderr: errors and warnings
    module = build_module(cfg)
    if cfg.get("finetune_from"):
        load_finetune_weights(cfg, module)
    if start is not None:
        check_weights_fit(ckpt_path, start.get("state_dict", {}), module)
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    # kept in every checkpoint: what salt.section and salt.survey compare their data with
    module.hparams["training_tiles"] = summarise(datamodule.train_set.images)
    callbacks = _instantiate_group(cfg, "callbacks")
    loggers = _instantiate_group(cfg, "logger")
    trainer = build_trainer(cfg, callbacks, loggers)  # before config.yaml: no unfinished run
    if machine_note:  # once every setting passed: a refused run prints its error line alone
        _warn(machine_note)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(output_dir)
    if cfg.get("resume"):
        differences = config_differences(run, cfg)
        if differences:
            _warn(f"resuming with settings that differ from the run's: {', '.join(differences)}")
        unfinish(run)
    else:
        save_resolved_config(cfg, run)
    _start_loggers(cfg, loggers, start)
    return module, datamodule, trainer, run, ckpt_path


def fit(trainer: pl.Trainer, module: SaltModule, datamodule, run: RunDir, ckpt_path) -> float:
    """Train; the seconds it took. A non-finite loss stops the run in one line."""
    fit_started = time.time()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path and str(ckpt_path))
    except NonFiniteLossError as error:
        last = run.last_checkpoint
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint saved"
        raise SaltError(f"{error}: training stopped; {kept}") from None
    return time.time() - fit_started


def finish_settings(cfg: DictConfig) -> FinishSettings:
    return FinishSettings(
        experiment=cfg.get("experiment_name"),
        fold=cfg.data.fold,
        encoder=cfg.model.get("encoder_name"),
        batch_size=cfg.data.batch_size,
        oof=cfg.get("oof", True),
        oof_tta=tuple(cfg.get("oof_tta", ["none"])),
        oof_weights=cfg.get("oof_weights", "auto"),
    )


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit one fold; write the run directory; return (metrics, objects) for callers and tests.
    Every rank of a multi-process run calls it and gets rank 0's metrics."""
    started = time.time()
    module, datamodule, trainer, run, ckpt_path = compose(cfg)
    fit_seconds = fit(trainer, module, datamodule, run, ckpt_path)

    def write(metrics: dict[str, Any], run: RunDir) -> None:  # rank 0's, after the OOF
        metrics["wall_seconds"] = round(time.time() - started, 1)
        run.write_metrics(metrics)
        if cfg.get("plots", True):
            plot_finished_run(run.path, datamodule.val_tiles)

    settings = finish_settings(cfg)
    metrics, run = finish_fit(trainer, module, datamodule, run, settings, fit_seconds, write)
    if trainer.is_global_zero:
        print(f"run directory: {run.path}")
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_salt_error
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    run = RunDir(cfg.paths.output_dir)  # the run's own directory on resume too
    return metric_value(metrics, cfg.get("optimized_metric"), run.metrics)


if __name__ == "__main__":
    run_hydra_main(main)
