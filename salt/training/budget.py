"""A time budget (`trainer.max_time`) read on one clock for every process of a run."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, NamedTuple

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.utilities import rank_zero_info

from salt.core.errors import ConfigError, SaltError
from salt.training.distributed import CHECK_EVERY_N_STEPS, broadcast
from salt.training.lightning_private import TimerBase
from salt.training.schedules import cosine_cycles

# steps before a time-budgeted schedule is planned from the measured rate
PLAN_AFTER_STEPS = 5
# check_val_every_n_epoch for an epoch without validation
NEVER = 2**31 - 1


class BudgetReading(NamedTuple):
    """One reading of a time budget, the same on every rank."""

    step: int  # the global step it was read at
    elapsed: float  # rank 0's seconds of training then
    left: float  # the budget's seconds left then (negative once over)


class SharedClockTimer(TimerBase):
    """Lightning's Timer (`trainer.max_time`), read on rank 0's clock: under DDP every
    `check_every_n_steps` optimizer steps and at every epoch end, in one process at every step.

    Lightning's own Timer reads each process's clock and broadcasts its stop decision at every
    step. Here rank 0's elapsed time is broadcast at the steps it is read (global_step a multiple
    of `check_every_n_steps`, the same steps on every rank), so every rank stops at the same step
    and plans a time-budgeted schedule from the same reading (`reading`), and the steps between
    send nothing. `salt.train` puts it in place of the Timer `trainer.max_time` would make.
    """

    def __init__(
        self,
        duration: Any,
        check_every_n_steps: int = CHECK_EVERY_N_STEPS,
        validate_last: float = 1.0,
        **kwargs,
    ):
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        if not 0 < validate_last <= 1:
            raise ConfigError(
                "validate_last", f"a share of the budget in (0, 1], got {validate_last}"
            )
        super().__init__(duration=duration, interval="step", **kwargs)
        self.check_every_n_steps = check_every_n_steps
        self.validate_last = validate_last
        self.reading: BudgetReading | None = None
        """The latest reading, or None before the first."""
        self._validation_every: int | None = None  # the Trainer's check_val_every_n_epoch

    def on_train_epoch_start(self, trainer, *args: Any, **kwargs: Any) -> None:
        """With `validate_last` < 1, the epochs that end before the budget's last
        `validate_last` share skip validation (the schedule fitted to the budget anneals in its
        last part, where the best weights are), unless the next epoch could not end within the
        budget. The epoch the budget ends in validates (`check_time_remaining`)."""
        if self.duration is None or self.validate_last >= 1:
            return
        if self._validation_every is None:
            self._validation_every = trainer.check_val_every_n_epoch
        trainer.check_val_every_n_epoch = (
            self._validation_every if self._validates_this_epoch(trainer) else NEVER
        )

    def _validates_this_epoch(self, trainer) -> bool:
        duration = self.duration
        assert duration is not None  # checked by the caller
        epochs_done = trainer.current_epoch  # of the run, a resumed one's included
        if epochs_done == 0:
            return False  # no epoch timed yet; the budget's end validates
        elapsed = float(broadcast(trainer, self.time_elapsed()))  # the same on every rank
        epoch_seconds = elapsed / epochs_done
        ends = elapsed + epoch_seconds
        return ends >= min((1 - self.validate_last) * duration, duration - epoch_seconds)

    def on_train_batch_end(self, trainer, *args: Any, **kwargs: Any) -> None:
        every = self.check_every_n_steps if trainer.world_size > 1 else 1
        if self.duration is None or trainer.global_step % every:
            return
        self.check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer, *args: Any, **kwargs: Any) -> None:
        if self.duration is not None:  # an epoch of slow steps overshoots by less than an epoch
            self.check_time_remaining(trainer)

    def check_time_remaining(self, trainer) -> None:
        duration = self.duration
        assert duration is not None  # checked by the callers (Lightning's on_fit_start too)
        elapsed = float(broadcast(trainer, self.time_elapsed()))
        self.reading = BudgetReading(trainer.global_step, elapsed, duration - elapsed)
        if elapsed >= duration:
            trainer.should_stop = True
            if self._validation_every is not None:  # the last epoch validates
                trainer.check_val_every_n_epoch = self._validation_every
            if self.verbose:
                rank_zero_info(f"Time limit reached after {timedelta(seconds=round(elapsed))}.")


class ScheduleFittedToRun(Callback):
    """Fits a `CosineCycles` schedule to the run: its steps are planned from max_epochs/max_steps
    when training starts and, under `trainer.max_time`, re-planned at every reading of the
    budget's clock (`SharedClockTimer`: every step in one process, every `CHECK_EVERY_N_STEPS`
    under DDP, rank 0's clock, so the same steps on every rank) from the rate so far, from the
    `PLAN_AFTER_STEPS`th step on. A run stopped by its time budget so ends annealed, and every
    rank follows the same schedule. Any other schedule is left alone.

    `SaltModule` brings it (`configure_callbacks`); it must come after the timer in the trainer's
    callbacks, which Lightning's order (the Trainer's, then the module's) gives.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        scheduler = cosine_cycles(trainer)
        if scheduler is None:
            return
        most_steps = trainer.estimated_stepping_batches
        if math.isfinite(most_steps):
            scheduler.total_steps = int(most_steps)
        elif budget_timer(trainer) is None:
            raise SaltError(
                "sched: CosineCycles needs trainer.max_epochs, trainer.max_steps or "
                "trainer.max_time to plan its cycles"
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        scheduler = cosine_cycles(trainer)
        timer = budget_timer(trainer)
        if scheduler is None or timer is None or timer.reading is None:
            return
        reading = timer.reading
        if reading.step != trainer.global_step or scheduler.last_epoch < PLAN_AFTER_STEPS:
            return  # once per reading
        scheduler.plan_for_time(
            scheduler.last_epoch, reading.elapsed, reading.left, trainer.estimated_stepping_batches
        )


def budget_timer(trainer: pl.Trainer) -> SharedClockTimer | None:
    """The trainer's time budget, if it has one."""
    # Lightning sets trainer.callbacks at run time; Trainer does not declare it
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    return next((c for c in callbacks if isinstance(c, SharedClockTimer)), None)
