"""The fast path: no host syncs in the training step, opt-in torch.compile with a fallback,
validation every N epochs."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import salt.train
from salt.bench.syncs import HostSyncCounter
from salt.train import train
from salt.training.compile import CompiledOrEager

TRAIN_BATCHES = 6


class CountSyncs(pl.Callback):
    """Host syncs from the start of training batch 1 to the start of the last batch: whole
    steps, the progress bar and logging between them included."""

    def __init__(self):
        self.counter = HostSyncCounter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 1:
            self.counter.__enter__()
        if batch_idx == trainer.num_training_batches - 1:
            self.counter.__exit__(None, None, None)


@pytest.mark.parametrize("check_every, expected", [(100, 0), (2, 2)])
def test_training_steps_do_not_wait_for_the_device(
    check_every, expected, train_config, monkeypatch
):
    """Batches 1..4 are counted: with a NaN check every 2 steps, it runs after batches 1 and 3
    (one read each); otherwise nothing reads a value back, even with the deep-supervision loss,
    the rich progress bar (updated every step) and SGD (Adam reads its step counter, a host scalar)."""
    counter = CountSyncs()
    cfg = train_config(
        "loss=deep_supervision",
        "model.deep_supervision=true",
        "model.classifier=true",
        "optim=sgd",
        "callbacks.progress_bar={_target_: pytorch_lightning.callbacks.RichProgressBar}",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={TRAIN_BATCHES}",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=50",
        f"module.finite_check_every_n_steps={check_every}",
        "data.batch_size=4",
        "oof=false",
        "plots=false",
    )
    original = salt.train.instantiate

    def instantiate(config, *args, **kwargs):
        if config is cfg.trainer:
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), counter]
        return original(config, *args, **kwargs)

    monkeypatch.setattr(salt.train, "instantiate", instantiate)
    train(cfg)
    assert counter.counter.total == expected, dict(counter.counter.by_kind)


def test_the_sync_counter_sees_what_would_stall_a_gpu():
    x = torch.randn(8, 3)
    with HostSyncCounter() as syncs:
        x.sum().item()
        bool(x.max() > 0)
        x[x > 0]
        torch.nonzero(x)
        x[:, :2] * 2  # no sync: shapes known
    assert dict(syncs.by_kind) == {
        "read a value (.item(), bool(), float())": 2,
        "boolean-mask indexing": 1,
        "nonzero": 1,
    }


def test_a_compiled_net_trains_and_keeps_its_checkpoint_keys(train_config, tmp_path):
    """`module.compile` through torch.compile's graph capture (the `aot_eager` backend: no C++
    build, so fast); the checkpoint loads into an uncompiled net."""
    run = tmp_path / "run"
    metrics, objects = train(
        train_config("trainer.max_epochs=1", "module.compile={backend: aot_eager}", output_dir=run)
    )
    net_call = objects["module"]._net_call
    assert isinstance(net_call, CompiledOrEager) and net_call.active
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert set(state) == {f"net.{k}" for k in objects["module"].net.state_dict()}
    assert metrics["best_val_score"] is not None


def test_validation_every_second_epoch(train_config, tmp_path):
    """`trainer.check_val_every_n_epoch=2`: one validation in two epochs, and the schedule that
    monitors the validation score (plateau) waits for it."""
    run = tmp_path / "run"
    metrics, _ = train(
        train_config(
            "sched=plateau",
            "trainer.max_epochs=2",
            "trainer.check_val_every_n_epoch=2",
            "trainer.limit_train_batches=2",
            output_dir=run,
        )
    )
    rows = (run / "csv" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    scored = [r.split(",") for r in rows[1:] if r.split(",")[header.index("val/score")]]
    assert [r[header.index("epoch")] for r in scored] == ["1"]
    assert metrics["best_val_score"] is not None
