"""ScheduleFittedToRun: a CosineCycles schedule planned from the run's steps, and re-planned once
per reading of the time budget's clock. (A budgeted run that ends annealed, end to end:
tests/training/test_schedules.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from salt.core.errors import SaltError
from salt.training.budget import (
    PLAN_AFTER_STEPS,
    BudgetReading,
    ScheduleFittedToRun,
    SharedClockTimer,
)
from salt.training.schedules import CosineCycles


def stub_trainer(most_steps: float, timer: SharedClockTimer | None = None, step: int = 0):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = CosineCycles(optimizer, 1, 0.0, 0, total_steps=1)
    return SimpleNamespace(
        lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)],
        callbacks=[] if timer is None else [timer],
        estimated_stepping_batches=most_steps,
        global_step=step,
    )


def test_the_schedule_is_planned_from_the_runs_steps_or_refused_without_an_end():
    trainer = stub_trainer(most_steps=240)
    ScheduleFittedToRun().on_train_start(trainer, None)
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 240
    with pytest.raises(SaltError, match="CosineCycles needs trainer.max_epochs"):
        ScheduleFittedToRun().on_train_start(stub_trainer(most_steps=float("inf")), None)
    budgeted = stub_trainer(float("inf"), SharedClockTimer("00:00:01:00"))
    ScheduleFittedToRun().on_train_start(budgeted, None)  # the budget will plan it


def test_a_budget_reading_replans_once_and_not_before_the_rate_is_measured():
    timer = SharedClockTimer("00:00:01:00")
    trainer = stub_trainer(most_steps=10_000, timer=timer, step=20)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    fit = ScheduleFittedToRun()
    scheduler.last_epoch = 20
    timer.reading = BudgetReading(step=20, elapsed=10.0, left=50.0)  # 2 steps/s
    fit.on_train_batch_end(trainer, None)
    assert scheduler.total_steps == 20 + 100

    timer.reading = BudgetReading(step=19, elapsed=10.0, left=5.0)  # an older reading
    fit.on_train_batch_end(trainer, None)
    assert scheduler.total_steps == 120

    scheduler.last_epoch = trainer.global_step = PLAN_AFTER_STEPS - 1
    timer.reading = BudgetReading(step=trainer.global_step, elapsed=1.0, left=5.0)
    fit.on_train_batch_end(trainer, None)
    assert scheduler.total_steps == 120  # too few steps to know the rate
