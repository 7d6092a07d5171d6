"""A callback that stops training at a chosen batch, for the resume tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl


class Interrupted(RuntimeError):
    """Raised by `StopAt(action="raise")`: a crash in the middle of an epoch."""


class StopAt(pl.Callback):
    """Before batch `batch` of epoch `epoch`: touch `marker`, then raise, or sleep to be killed.

    It makes the moment of a kill deterministic: mid-epoch, after the epoch before was saved.
    """

    def __init__(self, epoch: int, batch: int, action: str = "raise", marker: str | None = None):
        self.epoch, self.batch, self.action, self.marker = epoch, batch, action, marker

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch != self.epoch or batch_idx != self.batch:
            return
        if self.marker:
            Path(self.marker).write_text(f"epoch {self.epoch} batch {self.batch}\n")
        if self.action == "raise":
            raise Interrupted(f"stopped at epoch {self.epoch}, batch {self.batch}")
        time.sleep(600)
