"""Training callbacks that Lightning does not provide in the form TGS training needs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from salt.models.checkpoints import weights_loaded
from salt.training.distributed import broadcast
from salt.training.lightning_private import ModelCheckpointBase
from salt.training.schedules import cosine_cycles

# a run stopped (by its time budget) this far into its last cycle counts that cycle as ended
CYCLE_END_TOLERANCE = 0.9


def segmentation_net(pl_module: pl.LightningModule) -> nn.Module:
    """The net a SaltModule trains (to mypy, `pl_module.net` is any `Tensor | Module` attribute)."""
    return cast(nn.Module, pl_module.net)


def average_batchnorm_statistics(trainer: pl.Trainer, net: nn.Module) -> None:
    """Every BatchNorm layer's running mean and variance replaced by their mean over the ranks, in
    one collective (nothing to do in one process)."""
    if trainer.world_size == 1:
        return
    statistics = [
        buffer
        for module in net.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for buffer in (module.running_mean, module.running_var)
        if buffer is not None
    ]
    if not statistics:
        return
    flat = torch.cat([buffer.detach().flatten().float() for buffer in statistics])
    flat = trainer.strategy.reduce(flat, reduce_op="mean")
    for buffer, mean in zip(statistics, flat.split([b.numel() for b in statistics])):
        buffer.copy_(mean.view_as(buffer))


class CycleEndCallback(Callback):
    """Acts at the end of every learning-rate cycle from cycle `start_cycle` (0-based) on.

    With a `CosineCycles` schedule the cycles are the schedule's (seen at optimizer steps, also
    when a time budget re-plans them; a run stopped within the last tenth of a cycle counts it as
    ended); with any other schedule, a cycle is `every_n_epochs` epochs. Subclasses implement
    `on_cycle_end`. The cycles seen are part of the callback state, so a resumed run acts once.
    """

    def __init__(self, start_cycle: int = 1, every_n_epochs: int = 1):
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if start_cycle < 0:
            raise ValueError(f"start_cycle must be >= 0, got {start_cycle}")
        self.start_cycle = start_cycle
        self.every_n_epochs = every_n_epochs
        self.cycles_seen = 0

    def on_cycle_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, cycle: int):
        raise NotImplementedError

    def _ended(self, trainer, pl_module, completed: int) -> None:
        if completed > self.cycles_seen:
            self.cycles_seen = completed
            if completed - 1 >= self.start_cycle:
                self.on_cycle_end(trainer, pl_module, completed - 1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        schedule = cosine_cycles(trainer)
        if schedule is not None:
            self._ended(trainer, pl_module, schedule.completed_cycles())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if cosine_cycles(trainer) is None:
            self._ended(trainer, pl_module, (trainer.current_epoch + 1) // self.every_n_epochs)

    def on_train_end(self, trainer, pl_module) -> None:
        schedule = cosine_cycles(trainer)
        if schedule is None:
            return
        # A time budget re-plans the steps after this callback's last batch hook (the module's
        # hook runs later), so the last cycle can end with no batch hook left to see it.
        completed = schedule.completed_cycles()
        position = schedule.progress() * schedule.cycles
        if completed < schedule.cycles and position - int(position) >= CYCLE_END_TOLERANCE:
            completed = int(position) + 1
        self._ended(trainer, pl_module, completed)

    def state_dict(self) -> dict[str, Any]:
        return {"cycles_seen": self.cycles_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.cycles_seen = state_dict.get("cycles_seen", 0)


class CycleSnapshots(CycleEndCallback):
    """The weights at every cycle end (a snapshot ensemble), as `dirpath/cycle-NNN.ckpt`."""

    def __init__(self, dirpath: str, start_cycle: int = 1, every_n_epochs: int = 1):
        super().__init__(start_cycle, every_n_epochs)
        self.dirpath = Path(dirpath)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.dirpath = Path(broadcast(trainer, str(self.dirpath)))  # rank 0's run directory

    def on_cycle_end(self, trainer, pl_module, cycle: int) -> None:
        trainer.save_checkpoint(self.dirpath / f"cycle-{cycle:03d}.ckpt", weights_only=True)


class CycleSWA(CycleEndCallback):
    """Stochastic weight averaging of the cycle-end weights, BatchNorm recomputed.

    From cycle `start_cycle` on (the second by default: the first cycle's weights are the
    least trained), the net's weights at every cycle end are added to an equal-weight average.
    Unlike Lightning's `StochasticWeightAveraging`, it leaves the learning-rate schedule alone,
    and validation and "best" checkpoints keep seeing the raw weights, so their scores stay
    comparable. At the end of training the BatchNorm statistics of the average are recomputed
    over the training data and it is saved as `dirpath/filename.ckpt`, a normal checkpoint whose
    `state_dict` holds the averaged weights. The average is part of the callback state, so a
    resumed run keeps it.

    Under DDP every rank averages the same weights; each recomputes the BatchNorm statistics on
    its share of the training data, then the shares' statistics are averaged across ranks (the
    shares have equal batch counts, so this is the mean over all the ranks' batches, as one
    process would average them), and every rank holds the same averaged net (`averaged_weights`).
    """

    def __init__(
        self, dirpath: str, start_cycle: int = 1, every_n_epochs: int = 1, filename: str = "swa"
    ):
        super().__init__(start_cycle, every_n_epochs)
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.average: AveragedModel | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / f"{self.filename}.ckpt"

    @property
    def n_averaged(self) -> int:
        return 0 if self.average is None else int(self.average.n_averaged)

    def averaged_weights(self) -> dict[str, Any] | None:
        """The averaged net's state dict (BatchNorm recomputed once training has ended), or None
        before the first cycle end."""
        if self.n_averaged == 0:
            return None
        assert self.average is not None  # n_averaged is 0 without one
        return self.average.module.state_dict()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.dirpath = Path(broadcast(trainer, str(self.dirpath)))  # rank 0's run directory
        if stage == "fit" and self.average is None:
            self.average = AveragedModel(segmentation_net(pl_module), use_buffers=False)
            if self._pending_state is not None:
                self.average.load_state_dict(self._pending_state)
                self._pending_state = None

    def on_cycle_end(self, trainer, pl_module, cycle: int) -> None:
        assert self.average is not None  # made by setup("fit"), before any cycle ends
        self.average.update_parameters(pl_module.net)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.n_averaged == 0:
            return
        assert self.average is not None  # n_averaged is 0 without one
        net = segmentation_net(pl_module)
        averaged_net = self.average.module.to(pl_module.device)
        # Lightning sets trainer.datamodule at run time; Trainer does not declare it
        train_batches = trainer.datamodule.train_dataloader()  # type: ignore[attr-defined]
        update_bn(train_batches, averaged_net, device=pl_module.device)
        average_batchnorm_statistics(trainer, averaged_net)
        with weights_loaded(net, averaged_net.state_dict()):
            trainer.save_checkpoint(self.path, weights_only=True)

    def state_dict(self) -> dict[str, Any]:
        average = None if self.average is None else self.average.state_dict()
        return {**super().state_dict(), "average": average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("average") is not None:
            if self.average is None:
                self._pending_state = state_dict["average"]
            else:
                self.average.load_state_dict(state_dict["average"])


class LastCheckpoint(ModelCheckpointBase):
    """`dirpath/filename.ckpt`: the whole training state, what `resume=RUN_DIR` continues from,
    written when validation ends (the moment Lightning resumes exactly from; at the epoch's end
    in an epoch without validation), at most once every
    `min_interval_seconds` of rank 0's clock, and once more when training ends if the last write
    was before the final step (so `checkpoints=[last]` and `oof_weights=last` read the weights
    training ended with).

    With weights, optimizer state and the SWA average a ResNet34's is about 300 MB, written and
    synced: at 0 (every epoch) a GPU whose epochs take seconds spends a large share of its time
    writing it. `ModelCheckpoint`'s own `train_time_interval` saves mid-epoch, not when
    validation ends.
    """

    def __init__(self, dirpath: str, filename: str = "last", min_interval_seconds: float = 0.0):
        if min_interval_seconds < 0:
            raise ValueError(f"min_interval_seconds must be >= 0, got {min_interval_seconds}")
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=None,
            save_top_k=1,
            every_n_epochs=1,
            save_on_train_epoch_end=False,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        self.min_interval_seconds = min_interval_seconds
        self._written_at: float | None = None

    def _due(self, trainer: pl.Trainer) -> bool:
        now = time.monotonic()
        due = self._written_at is None or now - self._written_at >= self.min_interval_seconds
        return bool(broadcast(trainer, due)) if self.min_interval_seconds > 0 else True

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.skips_saving(trainer) or not self._due(trainer):
            return
        super().on_validation_end(trainer, pl_module)
        self._written_at = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # an epoch without validation (a time budget's validate_last): saved at its end, where
        # Lightning resumes from then (an epoch that validated was saved at this step already)
        if self.skips_saving(trainer) or not self._due(trainer):
            return
        self.save_now(trainer)
        self._written_at = time.monotonic()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self._written_at is not None and not self.skips_saving(trainer):
            self.save_now(trainer)
