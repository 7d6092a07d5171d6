"""A NaN or infinite training loss stops the run, without a host sync at every step."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from salt.core.errors import NonFiniteLossError


class NonFiniteLossStop(Callback):
    """Raises `NonFiniteLossError` once a training loss was NaN or infinite, on any rank.

    The training step never waits for the device: each step's loss is recorded on the device
    (`NonFiniteWatch`), and read back every `every_n_steps` batches, after the epoch's last batch
    (so validation, SWA and checkpoints never see a bad step) and before every checkpoint is
    written (so no checkpoint holds bad weights). Under DDP every rank stops together, or the
    others would wait for it in the gradient sync.

    `SaltModule` brings it (`configure_callbacks`, `module.finite_check_every_n_steps`).
    """

    def __init__(self, every_n_steps: int = 10):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.watch = NonFiniteWatch()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.watch.record(loss, batch_idx)
        last = batch_idx + 1 >= trainer.num_training_batches
        if last or (batch_idx + 1) % self.every_n_steps == 0:
            self.stop_if_nonfinite(trainer)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.stop_if_nonfinite(trainer)  # before anything is written

    def stop_if_nonfinite(self, trainer: pl.Trainer) -> None:
        """Raise NonFiniteLossError if a loss so far was NaN or infinite, here or on any rank."""
        first = self.watch.first()
        stop = first is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        if first is None:
            raise NonFiniteLossError("training loss is not finite on another process")
        loss, batch_idx = first
        raise NonFiniteLossError(
            f"training loss is {loss} at epoch {trainer.current_epoch}, batch {batch_idx}"
        )


class NonFiniteWatch:
    """Remembers, on the device, the first NaN or infinite loss and its batch.

    Recording costs no host sync; `first()` reads it back (one sync), so the training step can
    run ahead of the device and the check happens every few steps.
    """

    def __init__(self) -> None:
        self._loss: torch.Tensor | None = None
        self._batch: torch.Tensor | None = None

    def record(self, loss: torch.Tensor, batch_idx: int) -> None:
        loss = loss.detach().float()
        if self._loss is None:
            self._loss = torch.zeros_like(loss)
            self._batch = torch.full_like(loss, -1, dtype=torch.long)
        assert self._batch is not None  # set with _loss
        new = ~torch.isfinite(loss) & (self._batch < 0)
        self._loss = torch.where(new, loss, self._loss)
        self._batch = torch.where(new, batch_idx, self._batch)

    def first(self) -> tuple[float, int] | None:
        """(loss, batch index) of the first non-finite loss recorded, or None."""
        if self._batch is None:
            return None
        assert self._loss is not None  # set with _batch
        batch = int(self._batch)
        return None if batch < 0 else (float(self._loss), batch)
