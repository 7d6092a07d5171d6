"""Cycle ends as the snapshot and SWA callbacks see them, under a time-budget re-plan."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from salt.train import train
from salt.training.callbacks import CycleEndCallback, LastCheckpoint
from salt.training.schedules import CosineCycles


class RecordedCycleEnds(CycleEndCallback):
    def __init__(self, start_cycle: int = 0):
        super().__init__(start_cycle)
        self.ended: list[int] = []

    def on_cycle_end(self, trainer, pl_module, cycle: int) -> None:
        self.ended.append(cycle)


def budgeted_run(cycles: int, planned: int):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = CosineCycles(optimizer, cycles, total_steps=planned)
    trainer = SimpleNamespace(lr_scheduler_configs=[SimpleNamespace(scheduler=scheduler)])
    return scheduler, trainer


def take_steps(scheduler, callback, trainer, steps: int) -> None:
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        callback.on_train_batch_end(trainer, None, None, None, 0)


def test_the_last_cycle_ends_when_the_budget_replans_after_the_last_batch_hook():
    """What a `trainer.max_time` run does: at its last step the module's hook (after the
    callbacks') re-plans the run to end at that very step, so no batch hook sees the last cycle
    end; `on_train_end` must take its snapshot and SWA update."""
    scheduler, trainer = budgeted_run(cycles=2, planned=100)
    callback = RecordedCycleEnds()
    take_steps(scheduler, callback, trainer, 80)
    assert callback.ended == [0]
    scheduler.total_steps = 80  # the budget's re-plan at the last step
    callback.on_train_end(trainer, None)
    assert callback.ended == [0, 1]
    callback.on_train_end(trainer, None)  # seen once
    assert callback.ended == [0, 1]


def test_a_run_stopped_early_in_its_last_cycle_does_not_count_it():
    scheduler, trainer = budgeted_run(cycles=2, planned=100)
    callback = RecordedCycleEnds()
    take_steps(scheduler, callback, trainer, 80)
    callback.on_train_end(trainer, None)
    assert callback.ended == [0]
    scheduler, trainer = budgeted_run(cycles=2, planned=100)
    callback = RecordedCycleEnds()
    take_steps(scheduler, callback, trainer, 96)  # within the last tenth of cycle 1
    callback.on_train_end(trainer, None)
    assert callback.ended == [0, 1]


@pytest.mark.slow
@pytest.mark.parametrize(("interval", "saves"), [(0, 3), (3600, 2)])
def test_last_checkpoint_is_written_at_most_every_interval_and_at_the_end(
    train_config, tmp_path, monkeypatch, interval, saves
):
    """3 epochs: every validation end by default; with an interval, the first one and none
    until the interval has passed, then once more when training ends. Either way last.ckpt
    holds the step training ended at."""
    steps: list[int] = []
    original = LastCheckpoint._save_topk_checkpoint

    def spy(self, trainer, candidates):
        steps.append(trainer.global_step)
        return original(self, trainer, candidates)

    monkeypatch.setattr(LastCheckpoint, "_save_topk_checkpoint", spy)
    cfg = train_config(
        "trainer.max_epochs=3",
        f"callbacks.last_checkpoint.min_interval_seconds={interval}",
        "oof=false",
        "plots=false",
    )
    metrics = train(cfg)[0]
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert len(steps) == saves and steps[-1] == last["global_step"] == metrics["steps"]
    assert steps == sorted(set(steps))
