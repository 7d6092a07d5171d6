"""Training callbacks that Lightning does not provide in the form TGS training needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from torch.optim.swa_utils import AveragedModel, update_bn


class CycleSWA(Callback):
    """Stochastic weight averaging over the last epochs or snapshot cycles, BatchNorm recomputed.

    From epoch `start_epoch` on, the net's weights are added to an equal-weight average at the end
    of every `every_n_epochs`-th epoch (with cosine warm restarts, set it to the cycle length to
    average the cycle-end snapshots). Unlike Lightning's `StochasticWeightAveraging`, it leaves the
    learning-rate schedule alone, and validation and "best" checkpoints keep seeing the raw weights,
    so their scores stay comparable. At the end of training the BatchNorm statistics of the average
    are recomputed over the training data and it is saved as `dirpath/filename.ckpt`, a normal
    checkpoint whose `state_dict` holds the averaged weights. The average is part of the callback
    state, so a resumed run keeps it.
    """

    def __init__(
        self, dirpath: str, start_epoch: int = 0, every_n_epochs: int = 1, filename: str = "swa"
    ):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.dirpath = Path(dirpath)
        self.start_epoch = start_epoch
        self.every_n_epochs = every_n_epochs
        self.filename = filename
        self.average: AveragedModel | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    @property
    def n_averaged(self) -> int:
        return 0 if self.average is None else int(self.average.n_averaged)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.average is None:
            self.average = AveragedModel(pl_module.net, use_buffers=False)
            if self._pending_state is not None:
                self.average.load_state_dict(self._pending_state)
                self._pending_state = None

    def should_update(self, epoch: int) -> bool:
        return (
            epoch >= self.start_epoch and (epoch - self.start_epoch + 1) % self.every_n_epochs == 0
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.should_update(trainer.current_epoch):
            self.average.update_parameters(pl_module.net)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.n_averaged == 0:
            return
        averaged_net = self.average.module.to(pl_module.device)
        update_bn(trainer.datamodule.train_dataloader(), averaged_net, device=pl_module.device)
        raw_state = {k: v.detach().clone() for k, v in pl_module.net.state_dict().items()}
        pl_module.net.load_state_dict(averaged_net.state_dict())
        try:
            trainer.save_checkpoint(self.path, weights_only=True)
        finally:
            pl_module.net.load_state_dict(raw_state)

    def state_dict(self) -> dict[str, Any]:
        return {"average": None if self.average is None else self.average.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("average") is not None:
            if self.average is None:
                self._pending_state = state_dict["average"]
            else:
                self.average.load_state_dict(state_dict["average"])
