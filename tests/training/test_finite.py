"""NonFiniteLossStop: a NaN or infinite loss stops the run at the next check, naming its batch,
and before any checkpoint is written."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import salt.train
from salt.core.errors import NonFiniteLossError
from salt.train import train
from salt.training.finite import NonFiniteLossStop
from salt.training.module import build_module


def stub_trainer(batches: int = 10) -> SimpleNamespace:
    return SimpleNamespace(num_training_batches=batches, world_size=1, current_epoch=3)


def feed(stop: NonFiniteLossStop, trainer, losses: list[float]) -> list[int]:
    """The batches after which the stop was checked and passed, until it raises."""
    checked = []
    for batch, loss in enumerate(losses):
        stop.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, batch)
        checked.append(batch)
    return checked


def test_a_nan_is_read_back_at_the_next_check_and_names_the_first_bad_batch():
    stop = NonFiniteLossStop(every_n_steps=3)
    with pytest.raises(NonFiniteLossError, match="loss is nan at epoch 3, batch 1"):
        feed(stop, stub_trainer(), [1.0, float("nan"), float("inf"), 2.0])
    # batches 0 and 1 passed (no check yet), batch 2 (the third step) raised
    stop = NonFiniteLossStop(every_n_steps=3)
    assert feed(stop, stub_trainer(), [1.0, float("nan")]) == [0, 1]


def test_the_epochs_last_batch_and_every_checkpoint_are_checked():
    stop = NonFiniteLossStop(every_n_steps=100)
    with pytest.raises(NonFiniteLossError, match="inf at epoch 3, batch 1"):
        feed(stop, stub_trainer(batches=2), [1.0, float("inf")])
    stop = NonFiniteLossStop(every_n_steps=100)
    feed(stop, stub_trainer(), [float("nan")])
    with pytest.raises(NonFiniteLossError, match="batch 0"):
        stop.on_save_checkpoint(stub_trainer(), None, {})
    clean = NonFiniteLossStop(every_n_steps=1)
    feed(clean, stub_trainer(), [1.0, 2.0])
    clean.on_save_checkpoint(stub_trainer(), None, {})  # finite: nothing raised


def test_every_n_steps_below_one_is_refused():
    with pytest.raises(ValueError, match="every_n_steps must be >= 1, got 0"):
        NonFiniteLossStop(every_n_steps=0)


def test_a_nan_in_a_run_stops_it_before_any_checkpoint(train_config, monkeypatch, tmp_path):
    """Through salt.train (the module brings the callback): the loss of batch 1 is NaN, the
    check runs every 3 steps: training stops after batch 2, the message names batch 1, and
    nothing is saved."""
    seen = []

    class NanAtBatchOne(nn.Module):
        def __init__(self, loss: nn.Module, owner: list):
            super().__init__()
            self.loss, self.owner = loss, owner  # the module in a list: not a submodule

        def forward(self, outputs, masks):
            losses = self.loss(outputs, masks)
            batch = self.owner[0].trainer.fit_loop.epoch_loop.batch_idx
            seen.append(batch)
            if batch == 1:
                losses["loss"] = losses["loss"] * float("nan")
            return losses

    def poisoned(cfg):
        module = build_module(cfg)
        module.loss = NanAtBatchOne(module.loss, [module])
        return module

    monkeypatch.setattr(salt.train, "build_module", poisoned)
    run = tmp_path / "run"
    cfg = train_config(
        "trainer.limit_train_batches=5",
        "module.finite_check_every_n_steps=3",
        "data.batch_size=4",
        output_dir=run,
    )
    with pytest.raises(salt.train.SaltError, match="training loss is nan at epoch 0, batch 1"):
        train(cfg)
    assert seen == [0, 1, 2]
    assert not (run / "checkpoints").exists()
