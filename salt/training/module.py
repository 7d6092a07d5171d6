"""The LightningModule: a segmentation net, its criterion, optimiser and schedule from config."""

from __future__ import annotations

import inspect
import math
import random
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from salt.core.errors import NonFiniteLossError, SaltError
from salt.core.metrics import TGSScore, TGSScoreSweep
from salt.data.padding import crop_tile
from salt.training.budget import CHECK_EVERY_N_STEPS, SharedClockTimer
from salt.training.compile import CompiledOrEager, compile_options
from salt.training.lightning_private import attached_trainer, check_sigterm_every
from salt.training.schedules import cosine_cycles

# steps before a time-budgeted schedule is planned from the measured rate
PLAN_AFTER_STEPS = 5


class SaltModule(pl.LightningModule):
    """Trains `net` (a SaltNet-like module returning a dict with "mask" logits) with `loss`.

    `optimizer` and `scheduler` are partials (Hydra `_partial_: true`) completed in
    `configure_optimizers`. `net_config` (the net's Hydra config) and `tile_options` (the input
    normalisation, see `TileDataset`) are kept in every checkpoint, so inference can rebuild the
    net and its inputs without the training config.

    The training step never waits for the device: a NaN or infinite loss is recorded on the
    device and checked every `finite_check_every_n_steps` steps, at the end of every epoch and
    before every checkpoint, so bad weights are never validated, averaged or saved. `compile`
    (true, or `torch.compile` options) compiles the net for training, with a fallback to eager.

    A `CosineCycles` schedule is fitted to the run: its steps are planned from
    max_epochs/max_steps when training starts and, under `trainer.max_time`, re-planned at every
    reading of the budget's clock (`SharedClockTimer`: rank 0's clock, the same steps on every
    rank) from the rate so far, so a run stopped by its time budget ends annealed, and every
    rank follows the same schedule. The loss is given the fractional epoch, for its warm start
    (see `SaltLoss`).

    Under DDP every rank draws its own random numbers (dropout): the global generators are
    re-seeded per rank when fitting starts, and checkpoints keep every rank's generator states,
    each restored on its own rank.
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
        self._rng_states_to_restore: dict | None = None
        self._nonfinite = NonFiniteWatch()
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
        if self.trainer.world_size > 1:
            seed_this_rank(self.global_rank)
            check_sigterm_every(self.trainer, CHECK_EVERY_N_STEPS)

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
        self._nonfinite.record(losses["loss"], batch_idx)
        # not on the progress bar: a bar that shows a step value reads it back every step
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, batch_size=len(images))
        components = {f"train/{k}": v for k, v in losses.items() if k != "loss"}
        self.log_dict(components, on_step=False, on_epoch=True, batch_size=len(images))
        return losses["loss"]

    def on_train_start(self) -> None:
        scheduler = cosine_cycles(self.trainer)
        if scheduler is None:
            return
        most_steps = self.trainer.estimated_stepping_batches
        if math.isfinite(most_steps):
            scheduler.total_steps = int(most_steps)
        elif self._budget_timer() is None:
            raise SaltError(
                "sched: CosineCycles needs trainer.max_epochs, trainer.max_steps or "
                "trainer.max_time to plan its cycles"
            )

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # the epoch's last batch too: validation, SWA and checkpoints must not see a bad step
        last = batch_idx + 1 >= self.trainer.num_training_batches
        if last or (batch_idx + 1) % self.hparams["finite_check_every_n_steps"] == 0:
            self._stop_if_nonfinite()
        self._plan_for_time()

    def _budget_timer(self) -> SharedClockTimer | None:
        # Lightning sets trainer.callbacks at run time; Trainer does not declare it
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]
        return next((c for c in callbacks if isinstance(c, SharedClockTimer)), None)

    def _plan_for_time(self) -> None:
        """Re-plan a CosineCycles schedule from the budget's latest reading, once per reading:
        the same steps and the same clock on every rank."""
        scheduler = cosine_cycles(self.trainer)
        timer = self._budget_timer()
        if scheduler is None or timer is None or timer.reading is None:
            return
        reading = timer.reading
        if reading.step != self.trainer.global_step or scheduler.last_epoch < PLAN_AFTER_STEPS:
            return
        scheduler.plan_for_time(
            scheduler.last_epoch,
            reading.elapsed,
            reading.left,
            self.trainer.estimated_stepping_batches,
        )

    def _stop_if_nonfinite(self) -> None:
        """Raise NonFiniteLossError if a loss so far was NaN or infinite, here or on any rank."""
        first = self._nonfinite.first()
        stop = first is not None
        if attached_trainer(self) is not None and self.trainer.world_size > 1:
            # every rank stops together, or the others would wait for it in the gradient sync
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        if first is None:
            raise NonFiniteLossError("training loss is not finite on another process")
        loss, batch_idx = first
        raise NonFiniteLossError(
            f"training loss is {loss} at epoch {self.current_epoch}, batch {batch_idx}"
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._stop_if_nonfinite()  # before anything is written: no checkpoint of bad weights
        # Lightning does not keep the global generators: a resumed run would draw other dropout
        # masks than an uninterrupted one.
        states = rng_states()
        checkpoint["salt_rng_states"] = states
        if attached_trainer(self) is not None and self.trainer.world_size > 1:
            # every rank's, each restored on its own rank (called on every rank)
            by_rank: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(by_rank, states)
            checkpoint["salt_rng_states_by_rank"] = by_rank

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # set when the first epoch after the checkpoint starts: that is when an uninterrupted run
        # is in the saved state (a resumed Lightning run draws from the generator before it)
        self._rng_states_to_restore = checkpoint.get("salt_rng_states")
        by_rank = checkpoint.get("salt_rng_states_by_rank")
        world_size = self.trainer.world_size if attached_trainer(self) is not None else 1
        if by_rank is not None and len(by_rank) == world_size:
            self._rng_states_to_restore = by_rank[self.global_rank]
        elif world_size > 1:  # saved by another number of processes: rank 0's states would
            # give every rank the same dropout masks; the per-rank seeds of this fit stay
            self._rng_states_to_restore = None

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
        losses = self._criterion(outputs, masks, float(self.current_epoch))
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


def rng_states() -> dict[str, Any]:
    """The global generators' states (torch, CUDA, Python, numpy), in plain types only (so a
    checkpoint holding them loads with weights_only)."""
    # the legacy tuple (the default); numpy's stubs type a bare call as legacy=False's dict
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [numpy_state[1].tolist(), *numpy_state[2:]],
    }


def seed_this_rank(rank: int) -> None:
    """Re-seed the global generators (torch, Python, numpy) from the run's seed and `rank`, so
    that the processes of a DDP run draw different dropout masks (the weights were initialised
    before, from the run's seed, the same on every rank)."""
    seed = int(np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(1)[0])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


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
