"""The end of a fit, written once for several processes: who decides, who writes, what is sent.

After `trainer.fit` every rank calls `finish_fit`:
1. the run's figures (epochs, steps, best score, the last logged metrics) are taken on every rank;
2. SWA, when its average exists, is validated by every rank together (a collective), from the
   averaged weights each rank holds in memory: no rank reads a file another rank wrote;
3. rank 0 alone (no collective: `sweep_thresholds` computes locally) chooses the OOF weights
   (`oof_weights`), reads them, predicts the validation fold, writes oof.npz, then the caller's
   files (salt.train: metrics.json and the plots);
4. rank 0's figures are broadcast once it has written them, so every rank returns the same
   metrics once the run directory is complete; or, when rank 0 failed in step 3 (out of memory,
   a full disk), every rank raises at once (`rank_zero_does`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from salt.core.metrics import sweep_thresholds, tgs_score
from salt.core.rundir import RunDir
from salt.data.datamodule import TGSDataModule
from salt.inference.tiles import predict_tiles
from salt.models.checkpoints import net_weights, read_checkpoint, weights_loaded
from salt.training.callbacks import CycleSWA
from salt.training.distributed import broadcast, rank_zero_does
from salt.training.module import SaltModule

# where oof.npz (and so salt.tune's post-processing and salt.predict's default weights) comes from
OOF_WEIGHTS = ("auto", "swa", "best", "last")


@dataclass(frozen=True)
class FinishSettings:
    """The run config's keys that the end of a fit reads."""

    experiment: str | None
    fold: int
    encoder: str | None
    batch_size: int
    oof: bool = True
    oof_tta: tuple[str, ...] = ("none",)
    oof_weights: str = "auto"


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


def _scalar(value) -> float | None:
    return None if value is None else float(value)


def fit_figures(trainer: pl.Trainer, settings: FinishSettings, train_seconds: float) -> dict:
    """What the fit itself measured: the same on every rank (the logged validation is synced)."""
    # the configs' checkpoint callback is a ModelCheckpoint (Lightning types it as any Checkpoint)
    checkpoint = cast(ModelCheckpoint | None, trainer.checkpoint_callback)
    return {
        "experiment": settings.experiment,
        "fold": settings.fold,
        "encoder": settings.encoder,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "train_batches_per_epoch": trainer.num_training_batches,
        "batch_size": settings.batch_size,
        "train_seconds": round(train_seconds, 1),
        "best_val_score": _scalar(checkpoint.best_model_score) if checkpoint else None,
        "best_checkpoint": checkpoint.best_model_path if checkpoint else None,
        **{k.replace("/", "_"): float(v) for k, v in trainer.callback_metrics.items()},
    }


def validate_weights(
    trainer: pl.Trainer, module: SaltModule, datamodule, weights: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """Validation metrics of `weights` (every rank together); the net's own weights are put back."""
    with weights_loaded(module.net, weights):
        results = trainer.validate(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in results[0].items()}


def save_out_of_fold(
    module: SaltModule,
    datamodule: TGSDataModule,
    weights: Mapping[str, torch.Tensor],
    run: RunDir,
    tta: list[str],
    device: torch.device,
    precision: str,
) -> dict[str, float]:
    """Probabilities of the validation fold from `weights`, saved for threshold tuning (one
    process: no collective); 0 where a tile is unlabelled (tiles from painted lines), so the OOF
    is scored on the labelled pixels, as validation is.

    Predicted on the training device at the training precision (as `salt.predict` runs on a
    GPU), not where Lightning's teardown left the module. The net's own weights are put back.
    """
    with weights_loaded(module.net, weights) as net:
        predictions = predict_tiles(
            net,
            datamodule.val_set,
            batch_size=datamodule.val_batch_size,
            device=device,
            tta=tta,
            precision=precision,
        )
    val_tiles = datamodule.val_tiles
    assert val_tiles is not None and val_tiles.masks is not None  # set up for fit: training tiles
    probabilities, masks = predictions.masks, val_tiles.masks
    if val_tiles.labelled is not None:  # scored on the labelled pixels only, as in validation
        probabilities = probabilities * val_tiles.labelled
    run.write_oof(val_tiles.ids, probabilities, masks, predictions.salt)
    threshold, best, _ = sweep_thresholds(probabilities, masks)
    at_half = tgs_score(torch.from_numpy(probabilities > 0.5), torch.from_numpy(masks > 0))
    return {"oof_score": float(at_half), "oof_best_score": best, "oof_best_threshold": threshold}


def _oof_weights(
    source: str, swa: CycleSWA | None, best_path: str | None, run: RunDir, last: Mapping
) -> Mapping[str, torch.Tensor]:
    """The weights of `source` (rank 0 only: it reads its own files)."""
    if source == "swa":
        assert swa is not None
        averaged = swa.averaged_weights()
        assert averaged is not None  # chosen only when SWA validated
        return averaged
    if source == "best":
        assert best_path is not None  # chosen only with a best checkpoint
        return net_weights(read_checkpoint(best_path))
    # the file salt.predict reads for "last", when the run saved one
    return (
        net_weights(read_checkpoint(run.last_checkpoint)) if run.last_checkpoint.is_file() else last
    )


def finish_fit(
    trainer: pl.Trainer,
    module: SaltModule,
    datamodule: TGSDataModule,
    run: RunDir,
    settings: FinishSettings,
    fit_seconds: float,
    write: Callable[[dict[str, Any], RunDir], None],
) -> tuple[dict[str, Any], RunDir]:
    """Validate SWA, choose the OOF weights, predict and save the OOF, then `write(metrics, run)`
    (metrics.json, the plots): every rank calls this after `trainer.fit`; rank 0 alone predicts
    and writes. Returns rank 0's metrics and run directory on every rank once rank 0 has
    written them; a failure on rank 0 is raised on every rank."""
    run = RunDir(Path(broadcast(trainer, str(run.path))))
    metrics = fit_figures(trainer, settings, fit_seconds)
    # Lightning sets trainer.callbacks at run time; Trainer does not declare it
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    swa = next((c for c in callbacks if isinstance(c, CycleSWA)), None)
    swa_score = None
    averaged = swa.averaged_weights() if swa is not None else None
    if broadcast(trainer, averaged is not None):
        if averaged is None:
            raise RuntimeError("rank 0 averaged SWA weights that this rank did not")
        swa_metrics = validate_weights(trainer, module, datamodule, averaged)
        swa_score = swa_metrics.get("val/score")
        metrics["swa_val_score"] = swa_score
        metrics["swa_val_best_score"] = swa_metrics.get("val/best_score")
        assert swa is not None
        metrics["swa_checkpoint"] = str(swa.path)
    best_path = metrics["best_checkpoint"] or None
    best_score = metrics["best_val_score"] if best_path else None
    source = choose_oof_weights(settings.oof_weights, swa_score, best_score)
    metrics["oof_source"] = source

    def rank_zero_end() -> dict[str, Any]:
        if settings.oof:
            weights = _oof_weights(source, swa, best_path, run, module.net.state_dict())
            metrics.update(
                save_out_of_fold(
                    module,
                    datamodule,
                    weights,
                    run,
                    list(settings.oof_tta),
                    device=trainer.strategy.root_device,
                    precision=str(trainer.precision),
                )
            )
        write(metrics, run)
        return metrics

    return rank_zero_does(trainer, rank_zero_end), run
