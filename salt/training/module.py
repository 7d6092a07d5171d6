"""The LightningModule: a segmentation net, its criterion, optimiser and schedule from config."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from salt.core.labels import split_target
from salt.core.metrics import TGSScore, TGSScoreSweep
from salt.data.padding import crop_tile
from salt.training.budget import ScheduleFittedToRun
from salt.training.compile import CompiledOrEager, compile_options
from salt.training.distributed import SigtermCheckEveryNSteps
from salt.training.finite import NonFiniteLossStop
from salt.training.generators import RankGenerators
from salt.training.lightning_private import attached_trainer


class SaltModule(pl.LightningModule):
    """Trains `net` (a module returning a dict with "mask" logits: docs/customizing.md, "The net
    contract") with `loss`, scored by the competition metric (on the labelled pixels only, for
    masks with a labelled channel: `salt.core.labels`).

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) completed in
    `configure_optimizers`. `net_config` (the net's Hydra config) and `tile_options` (the input
    normalisation, see `TileDataset`) are kept in every checkpoint, so inference can rebuild the
    net and its inputs without the training config; so is `training_tiles`, the summary of the
    tiles it learnt from (`salt.data.tile_statistics`, set by `salt.train` once the data are
    read), which the section and survey commands compare their data with. The loss is given the fractional epoch when
    its forward takes `epoch` (`SaltLoss`'s warm start). `compile` (true, or `torch.compile`
    options) compiles the net for training, with a fallback to eager.

    What a fit needs besides the science comes as callbacks (`configure_callbacks`), each in its
    own module: a NaN or infinite loss stops the run without a sync per step
    (`NonFiniteLossStop`, every `finite_check_every_n_steps` steps), a `CosineCycles` schedule is
    fitted to the run and its time budget (`ScheduleFittedToRun`), every rank draws its own
    random numbers and a resumed run the same as an uninterrupted one (`RankGenerators`), and
    Lightning's SIGTERM flag is sent at the budget's cadence (`SigtermCheckEveryNSteps`).
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/score",
        threshold: float = 0.5,
        channels_last: bool = False,
        finite_check_every_n_steps: int = 10,
        compile: bool | Mapping | None = False,
        net_config: Mapping | None = None,
        tile_options: Mapping | None = None,
        training_tiles: Mapping | None = None,
    ):
        super().__init__()
        if finite_check_every_n_steps < 1:
            raise ValueError(
                f"finite_check_every_n_steps must be >= 1, got {finite_check_every_n_steps}"
            )
        compile_options(compile)  # a bad setting fails here, not when training starts
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_score = TGSScore(threshold=threshold)
        self.val_sweep = TGSScoreSweep()
        self._net_call: CompiledOrEager | None = None

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        # compiled for training only: validation's batch sizes would each compile again
        compiled = self._net_call if self.training else None
        return (compiled or self.net)(images)

    def setup(self, stage: str) -> None:
        # before the strategy wraps the net (DDP's gradient buckets follow the weights' strides)
        if stage == "fit" and self.hparams["channels_last"]:
            self.net.to(memory_format=torch.channels_last)

    def on_fit_start(self) -> None:
        options = compile_options(self.hparams["compile"])
        if options is not None and self._net_call is None:
            self._net_call = CompiledOrEager(self.net, **options)

    def configure_callbacks(self) -> list[pl.Callback]:
        return [
            NonFiniteLossStop(self.hparams["finite_check_every_n_steps"]),
            ScheduleFittedToRun(),
            RankGenerators(),
            SigtermCheckEveryNSteps(),
        ]

    def _criterion(self, outputs, masks, epoch: float) -> dict[str, torch.Tensor]:
        # the fractional epoch goes to a loss whose forward takes it (SaltLoss's warm start);
        # read at every call, as the loss may be replaced after the module is built
        if "epoch" in inspect.signature(self.loss.forward).parameters:
            return self.loss(outputs, masks, epoch=epoch)
        return self.loss(outputs, masks)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks = batch
        epoch = self.current_epoch + batch_idx / max(1, self.trainer.num_training_batches)
        losses = self._criterion(self(images), masks, epoch)
        # not on the progress bar: a bar that shows a step value reads it back every step
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, batch_size=len(images))
        components = {f"train/{k}": v for k, v in losses.items() if k != "loss"}
        self.log_dict(components, on_step=False, on_epoch=True, batch_size=len(images))
        return losses["loss"]

    def validation_step(self, batch, batch_idx: int) -> None:
        images, masks = batch
        outputs = self(images)
        losses = self._criterion(outputs, masks, float(self.current_epoch))
        self.log(
            "val/loss",
            losses["loss"],
            on_epoch=True,
            sync_dist=True,
            prog_bar=True,
            batch_size=len(images),
        )
        truth, labelled = split_target(masks)
        probabilities = torch.sigmoid(outputs["mask"].float())
        if labelled is not None:  # scored on the labelled pixels only
            probabilities = probabilities * labelled
        probabilities, truth = crop_tile(probabilities), crop_tile(truth)
        self.val_score.update(probabilities, truth)
        self.val_sweep.update(probabilities, truth)

    def on_validation_epoch_end(self) -> None:
        swept = self.val_sweep.compute()
        self.log("val/score", self.val_score.compute(), prog_bar=True)
        self.log("val/best_score", swept["score"])
        self.log("val/best_threshold", swept["threshold"])
        self.val_score.reset()
        self.val_sweep.reset()

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.scheduler_factory(optimizer=optimizer),
                "interval": self.hparams["scheduler_interval"],
                "monitor": self.hparams["scheduler_monitor"],
                # with validation every N epochs, a monitoring schedule skips the epochs between
                "strict": attached_trainer(self) is None
                or self.trainer.check_val_every_n_epoch == 1,
            },
        }


def build_module(cfg: DictConfig) -> SaltModule:
    """The SaltModule of a training config: its model, loss, optim, sched and module groups."""
    sched = cfg.get("sched")
    # OmegaConf.to_container of a DictConfig is a dict
    return SaltModule(
        net=instantiate(cfg.model),
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(sched.scheduler) if sched else None,
        scheduler_interval=sched.interval if sched else "epoch",
        scheduler_monitor=sched.get("monitor", "val/score") if sched else "val/score",
        net_config=cast(dict[str, Any], OmegaConf.to_container(cfg.model, resolve=True)),
        tile_options={"mean": cfg.data.mean, "std": cfg.data.std, "channels": cfg.data.channels},
        **cast(dict[str, Any], OmegaConf.to_container(cfg.get("module") or {}, resolve=True)),
    )
