"""Learning-rate schedules that fit the run they are in: its planned steps or its time budget."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.optim.lr_scheduler import LRScheduler

if TYPE_CHECKING:
    import pytorch_lightning as pl


class CosineCycles(LRScheduler):
    """Cosine annealing from each group's learning rate to `eta_min` over `cycles` equal cycles
    of the run, restarting at each cycle end; stepped every optimizer step (interval: step).

    The cycles divide `total_steps`, the run's planned optimizer steps. It is set by the
    LightningModule when training starts (from max_epochs/max_steps) and, with
    `trainer.max_time`, re-planned as training goes (`plan_for_time`), so a run cut by its time
    budget still ends annealed, at the end of its last cycle, instead of mid-cycle at a high
    learning rate. `warmup_steps` rise linearly from `eta_min` first.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cycles: int = 1,
        eta_min: float = 1.0e-5,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        last_epoch: int = -1,
    ):
        if cycles < 1:
            raise ValueError(f"cycles must be >= 1, got {cycles}")
        self.cycles, self.eta_min, self.warmup_steps = cycles, eta_min, warmup_steps
        self.total_steps = total_steps
        super().__init__(optimizer, last_epoch)

    def progress(self, step: int | None = None) -> float:
        """The fraction of the planned steps done at `step` (default: now), in [0, 1]."""
        step = self.last_epoch if step is None else step
        if not self.total_steps:
            return 0.0
        return min(1.0, max(0, step) / self.total_steps)

    def completed_cycles(self, step: int | None = None) -> int:
        """How many cycles have ended by `step` (default: now)."""
        return min(self.cycles, math.floor(self.progress(step) * self.cycles + 1e-9))

    def factor(self, step: int) -> float:
        """Where in [0, 1] between eta_min and the base rate the rate is at `step`."""
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        position = self.progress(step) * self.cycles
        in_cycle = 1.0 if position >= self.cycles else position - math.floor(position)
        return 0.5 * (1.0 + math.cos(math.pi * in_cycle))

    def get_lr(self) -> list[float | torch.Tensor]:
        factor = self.factor(self.last_epoch)
        return [
            self.eta_min + (base - self.eta_min) * factor if base > self.eta_min else base
            for base in self.base_lrs
        ]

    def plan_for_time(
        self, steps_done: int, seconds_elapsed: float, seconds_left: float, most_steps: float
    ) -> None:
        """Plan as many steps as the time left allows at the rate so far (validation included),
        never more than `most_steps` (what max_epochs/max_steps allow)."""
        if steps_done <= 0 or seconds_elapsed <= 0:
            return
        rate = steps_done / seconds_elapsed
        self.total_steps = max(1, int(min(most_steps, steps_done + seconds_left * rate)))


def cosine_cycles(trainer: pl.Trainer) -> CosineCycles | None:
    """The trainer's CosineCycles schedule, if it has one."""
    return next(
        (
            c.scheduler
            for c in trainer.lr_scheduler_configs
            if isinstance(c.scheduler, CosineCycles)
        ),
        None,
    )
