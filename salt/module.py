"""The LightningModule: a segmentation net, its criterion, optimiser and schedule from config."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from salt.data.padding import crop_tile
from salt.errors import NonFiniteLossError
from salt.metrics import TGSScore, TGSScoreSweep


class SaltModule(pl.LightningModule):
    """Trains `net` (a SaltNet-like module returning a dict with "mask" logits) with `loss`.

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) completed in
    `configure_optimizers`. `net_config` (the net's Hydra config) and `tile_options` (the input
    normalisation, see `TileDataset`) are kept in every checkpoint, so inference can rebuild the
    net and its inputs without the training config.
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
        net_config: Mapping | None = None,
        tile_options: Mapping | None = None,
    ):
        super().__init__()
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_score = TGSScore(threshold=threshold)
        self.val_sweep = TGSScoreSweep()
        self._rng_states_to_restore: dict | None = None

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def on_fit_start(self) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, masks = batch
        losses = self.loss(self(images), masks)
        self._check_finite(losses["loss"], batch_idx)
        self.log(
            "train/loss",
            losses["loss"],
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(images),
        )
        components = {f"train/{k}": v for k, v in losses.items() if k != "loss"}
        self.log_dict(components, on_step=False, on_epoch=True, batch_size=len(images))
        return losses["loss"]

    def _check_finite(self, loss: torch.Tensor, batch_idx: int) -> None:
        """Stop before a NaN or infinite loss reaches the weights (and so any checkpoint)."""
        finite = bool(torch.isfinite(loss.detach()))
        if self._trainer is not None and self.trainer.world_size > 1:
            # every rank stops together, or the others would wait for it in the gradient sync
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}"
            )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning does not keep the global generators: a resumed run would draw other dropout
        # masks than an uninterrupted one. Plain types only (weights_only loading).
        numpy_state = np.random.get_state()
        checkpoint["salt_rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [numpy_state[1].tolist(), *numpy_state[2:]],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # set when the first epoch after the checkpoint starts: that is when an uninterrupted run
        # is in the saved state (a resumed Lightning run draws from the generator before it)
        self._rng_states_to_restore = checkpoint.get("salt_rng_states")

    def on_train_epoch_start(self) -> None:
        states = self._rng_states_to_restore
        if not states:
            return
        self._rng_states_to_restore = None
        torch.set_rng_state(states["torch"])
        if states["cuda"] and len(states["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states["cuda"])
        random.setstate(states["python"])
        keys, position, has_gauss, cached = states["numpy"]
        np.random.set_state(
            ("MT19937", np.array(keys, dtype=np.uint32), position, has_gauss, cached)
        )

    def validation_step(self, batch, batch_idx: int) -> None:
        images, masks = batch
        outputs = self(images)
        losses = self.loss(outputs, masks)
        self.log(
            "val/loss",
            losses["loss"],
            on_epoch=True,
            sync_dist=True,
            prog_bar=True,
            batch_size=len(images),
        )
        probabilities = crop_tile(torch.sigmoid(outputs["mask"].float()))
        truth = crop_tile(masks)
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
                "interval": self.hparams.scheduler_interval,
                "monitor": self.hparams.scheduler_monitor,
            },
        }
