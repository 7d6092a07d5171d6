"""CosineCycles: its shape, its cycles, and a run that fits it to a time budget."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import timer as timer_module

from salt.train import train
from salt.training.schedules import CosineCycles


def schedule(cycles=1, total=100, warmup=0, lr=1.0, eta_min=0.0):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    return CosineCycles(optimizer, cycles, eta_min, warmup, total_steps=total)


def rates(scheduler, steps):
    values = []
    for _ in range(steps):
        values.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return values


def test_one_cycle_anneals_from_the_base_rate_to_eta_min():
    values = rates(schedule(total=100, lr=0.1, eta_min=0.001), 101)
    assert values[0] == pytest.approx(0.1)
    assert values[50] == pytest.approx(0.001 + 0.099 * 0.5)
    assert values[100] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_cycles_restart_and_are_counted():
    scheduler = schedule(cycles=4, total=100)
    values = rates(scheduler, 100)
    restarts = [i for i in range(1, 100) if values[i] > values[i - 1]]
    assert restarts == [25, 50, 75]
    assert scheduler.completed_cycles(24) == 0 and scheduler.completed_cycles(25) == 1
    assert scheduler.completed_cycles(100) == 4 and scheduler.completed_cycles(1000) == 4


def test_warmup_rises_linearly():
    values = rates(schedule(total=100, warmup=4), 5)
    assert values[:4] == pytest.approx([0.2, 0.4, 0.6, 0.8])


def test_time_plan_fits_the_steps_left_at_the_rate_so_far_capped_by_the_epochs():
    scheduler = schedule(total=1000)
    scheduler.plan_for_time(steps_done=50, seconds_elapsed=10, seconds_left=20, most_steps=1000)
    assert scheduler.total_steps == 150
    scheduler.plan_for_time(steps_done=50, seconds_elapsed=10, seconds_left=900, most_steps=1000)
    assert scheduler.total_steps == 1000
    with pytest.raises(ValueError, match="cycles must be >= 1"):
        schedule(cycles=0)


class StepClock(pl.Callback):
    """A clock for Lightning's Timer that advances one second per training step, so a time
    budget is a number of steps whatever the machine's load."""

    now = 0.0

    @classmethod
    def monotonic(cls) -> float:
        return cls.now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        StepClock.now += 1.0


def test_a_time_budgeted_run_ends_annealed_at_its_last_cycle_end(
    train_config, tmp_path, monkeypatch
):
    """A 40 s budget at 1 s a step and 1,000 epochs allowed: the budget stops the run after 40
    steps (12 an epoch), the schedule has been re-planned to end with it (the rate at the last
    step is near eta_min, one restart halfway), and the snapshot and SWA of the second cycle
    were taken at its end."""
    StepClock.now = 0.0
    monkeypatch.setattr(timer_module, "time", SimpleNamespace(monotonic=StepClock.monotonic))
    cfg = train_config(
        "sched=cosine_cycles",
        "sched.cycles=2",
        "callbacks=snapshots",
        "+callbacks.clock._target_=tests.training.test_schedules.StepClock",
        "callbacks.lr_monitor.logging_interval=step",
        "trainer.max_epochs=1000",
        "trainer.max_time=00:00:00:40",
        "trainer.limit_val_batches=1",
        "data.batch_size=4",
        "optim.lr=0.01",
        "oof=false",
        "plots=false",
    )
    metrics = train(cfg)[0]
    assert metrics["steps"] == 40
    log = pd.read_csv(tmp_path / "run" / "csv" / "metrics.csv")
    lr = log.dropna(subset=["lr-Adam"])["lr-Adam"].to_numpy()
    assert len(lr) == 40 and lr[0] == pytest.approx(0.01)
    assert lr[-1] < 0.0005, lr[-10:]
    restarts = [i for i in range(1, len(lr)) if lr[i] > lr[i - 1]]
    assert restarts == [20], lr
    snapshots = sorted(p.name for p in (tmp_path / "run" / "checkpoints" / "snapshots").iterdir())
    assert snapshots == ["cycle-001.ckpt"]
    assert (tmp_path / "run" / "checkpoints" / "swa.ckpt").is_file()
    assert "swa_val_score" in metrics
