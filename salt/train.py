"""Train one fold: `python -m salt.train experiment=resnet34 data.root=DIR data.fold=K`.

All folds: `python -m salt.train -m experiment=resnet34 data.fold=0,1,2,3,4`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, cast

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from pytorch_lightning.callbacks import ModelCheckpoint
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
from salt.core.errors import NonFiniteLossError, SaltError, exit_on_salt_error, run_hydra_main
from salt.core.metrics import sweep_thresholds, tgs_score
from salt.core.rundir import RunDir, metric_value
from salt.data.datamodule import TGSDataModule
from salt.inference.tiles import check_tta, predict_tiles
from salt.models.checkpoints import check_weights_fit, net_weights, read_checkpoint
from salt.training.callbacks import CycleSWA
from salt.training.loggers import log_config
from salt.training.machine import fit_trainer_to_machine
from salt.training.module import SaltModule, build_module
from salt.training.resume import config_differences, last_checkpoint, trim_metrics_csv

# where oof.npz (and so salt.tune's post-processing and salt.predict's default weights) comes from
OOF_WEIGHTS = ("auto", "swa", "best", "last")


def choose_oof_weights(policy: str, swa_score: float | None, best_score: float | None) -> str:
    """The checkpoint kind the OOF is predicted with under `oof_weights=policy`; a score is None
    when the run has no such checkpoint.

    auto: SWA, unless the best checkpoint validated higher; swa: SWA; best: the best checkpoint;
    last: the weights training ended with. A missing SWA falls back to best, a missing best
    to last.
    """
    if policy == "last":
        return "last"
    if policy == "best" or swa_score is None:
        return "best" if best_score is not None else "last"
    if policy == "swa" or best_score is None:
        return "swa"
    return "swa" if swa_score >= best_score else "best"


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Objects for every entry of a config group like `callbacks` or `logger`; null entries skip."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


@rank_zero_only
def write_metrics(run: RunDir, metrics: dict) -> None:
    run.write_metrics(metrics)


@rank_zero_only
def save_resolved_config(cfg: DictConfig, run: RunDir) -> None:
    run.write_config(cfg)


def _scalar(value) -> float | None:
    return None if value is None else float(value)


def _validate(trainer: pl.Trainer, module: SaltModule, datamodule, ckpt_path) -> dict[str, float]:
    results = trainer.validate(
        module, datamodule=datamodule, ckpt_path=str(ckpt_path), verbose=False
    )
    return {k: float(v) for k, v in results[0].items()}


@rank_zero_only
def save_out_of_fold(
    module: SaltModule,
    datamodule: TGSDataModule,
    weights: dict,
    run: RunDir,
    tta: list[str],
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Probabilities of the validation fold from `weights`, saved for threshold tuning.

    Predicted on the training device at the training precision (as `salt.predict` runs on a
    GPU), not where Lightning's teardown left the module.
    """
    module.net.load_state_dict(weights)
    predictions = predict_tiles(
        module.net,
        datamodule.val_set,
        batch_size=datamodule.val_batch_size,
        device=device,
        tta=tta,
        precision=precision,
    )
    val_tiles = datamodule.val_tiles
    assert val_tiles is not None and val_tiles.masks is not None  # set up for fit: training tiles
    probabilities, masks = predictions.masks, val_tiles.masks
    run.write_oof(val_tiles.ids, probabilities, masks, predictions.salt)
    threshold, best, _ = sweep_thresholds(probabilities, masks)
    at_half = tgs_score(torch.from_numpy(probabilities > 0.5), torch.from_numpy(masks > 0))
    return {"oof_score": float(at_half), "oof_best_score": best, "oof_best_threshold": threshold}


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


def check_settings(cfg: DictConfig) -> None:
    """The run's own keys and the trainer's, refused in one line before anything is written
    (the data keys are checked by the DataModule); the trainer fitted to the machine: a GPU
    setting on a machine without one runs on the CPU, with a note."""
    whole_number("seed", cfg.get("seed"), 0)
    module = cfg.get("module") or {}
    probability("module.threshold", module.get("threshold", 0.5))
    whole_number(
        "module.finite_check_every_n_steps", module.get("finite_check_every_n_steps", 10), 1
    )
    check_tta(cfg.get("oof_tta", ["none"]), key="oof_tta")
    choice("oof_weights", cfg.get("oof_weights", "auto"), OOF_WEIGHTS)
    if cfg.get("optim") and "lr" in cfg.optim:
        positive_number("optim.lr", cfg.optim.lr)
    trainer_settings(cfg.trainer)
    note = fit_trainer_to_machine(cfg.trainer)
    if note:
        _warn(note)


def train(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit one fold; write the run directory; return (metrics, objects) for callers and tests."""
    started = time.time()
    check_settings(cfg)
    ckpt_path, start = _start_checkpoint(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)  # stderr: errors and warnings

    # a bad model, checkpoint or data root stops the run here, before it writes anything
    module = build_module(cfg)
    if start is not None:
        check_weights_fit(ckpt_path, start.get("state_dict", {}), module)
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if cfg.get("resume"):
        differences = config_differences(run, cfg)
        if differences:
            _warn(f"resuming with settings that differ from the run's: {', '.join(differences)}")
    else:
        save_resolved_config(cfg, run)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    # Lightning sets rank_zero_only.rank at import; the decorator's type does not declare it
    if cfg.get("resume") and rank_zero_only.rank == 0:  # type: ignore[attr-defined]
        assert start is not None  # resume read the run's last checkpoint
        for logger in loggers:
            if isinstance(logger, CSVLogger):  # rows of the epoch the run was stopped in go
                trim_metrics_csv(
                    Path(logger.log_dir) / "metrics.csv", start["epoch"], start["global_step"]
                )
    log_config(loggers, cfg)  # the settings, for the trackers (TensorBoard HPARAMS, MLflow, W&B)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    fit_started = time.time()
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path and str(ckpt_path))
    except NonFiniteLossError as error:
        last = run.last_checkpoint
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint saved"
        raise SaltError(f"{error}: training stopped; {kept}") from None
    train_seconds = time.time() - fit_started

    # the configs' checkpoint callback is a ModelCheckpoint (Lightning types it as any Checkpoint)
    checkpoint = cast(ModelCheckpoint | None, trainer.checkpoint_callback)
    metrics: dict[str, Any] = {
        "experiment": cfg.get("experiment_name"),
        "fold": cfg.data.fold,
        "encoder": cfg.model.get("encoder_name"),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "train_batches_per_epoch": trainer.num_training_batches,
        "batch_size": cfg.data.batch_size,
        "train_seconds": round(train_seconds, 1),
        "best_val_score": _scalar(checkpoint.best_model_score) if checkpoint else None,
        "best_checkpoint": checkpoint.best_model_path if checkpoint else None,
        **{k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items()},
    }
    last_weights = module.net.state_dict()
    if cfg.get("oof_weights") == "last":  # validating SWA below loads its weights into these
        last_weights = {k: v.detach().clone() for k, v in last_weights.items()}
    swa = next((c for c in callbacks if isinstance(c, CycleSWA)), None)
    swa_score = None
    if swa is not None and swa.path.is_file():
        swa_metrics = _validate(trainer, module, datamodule, swa.path)
        swa_score = swa_metrics.get("val/score")
        metrics["swa_val_score"] = swa_score
        metrics["swa_val_best_score"] = swa_metrics.get("val/best_score")
        metrics["swa_checkpoint"] = str(swa.path)
    best_path = checkpoint.best_model_path if checkpoint else None
    best_score = metrics["best_val_score"] if best_path else None
    source = choose_oof_weights(cfg.get("oof_weights", "auto"), swa_score, best_score)
    metrics["oof_source"] = source
    if source == "swa":
        assert swa is not None
        final_weights = net_weights(read_checkpoint(swa.path))
    elif source == "best":
        final_weights = net_weights(read_checkpoint(best_path))
    else:  # the file salt.predict reads for "last", when the run saved one
        last = run.last_checkpoint
        final_weights = net_weights(read_checkpoint(last)) if last.is_file() else last_weights
    if cfg.get("oof", True) and trainer.is_global_zero:
        oof_metrics = save_out_of_fold(
            module,
            datamodule,
            final_weights,
            run,
            list(cfg.get("oof_tta", ["none"])),
            device=trainer.strategy.root_device,
            precision=str(trainer.precision),
        )
        assert oof_metrics is not None  # rank_zero_only's None is for the other ranks
        metrics.update(oof_metrics)
    metrics["wall_seconds"] = round(time.time() - started, 1)
    write_metrics(run, metrics)
    if trainer.is_global_zero:
        if cfg.get("plots", True):
            plot_finished_run(output_dir, datamodule.val_tiles)
        print(f"run directory: {output_dir}")
    return metrics, {"trainer": trainer, "module": module, "datamodule": datamodule}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
@exit_on_salt_error
def main(cfg: DictConfig) -> float | None:
    metrics, _ = train(cfg)
    run = RunDir(cfg.paths.output_dir)  # the run's own directory on resume too
    return metric_value(metrics, cfg.get("optimized_metric"), run.metrics)


if __name__ == "__main__":
    run_hydra_main(main)
