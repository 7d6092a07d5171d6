"""validate_last: under a time budget, validation where it can pick the weights a run keeps."""

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from salt.core.errors import ConfigError
from salt.train import train
from salt.training.budget import SharedClockTimer


class LastCheckpointSteps(pl.Callback):
    """The global step of last.ckpt at every epoch's start (None before there is one)."""

    seen: list = []

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        held = None
        if self.path.is_file():
            held = torch.load(self.path, weights_only=True, mmap=True)["global_step"]
        LastCheckpointSteps.seen.append(held)


def validated_epochs(run: Path) -> list[int]:
    with open(run / "csv" / "metrics.csv") as file:
        return sorted({int(row["epoch"]) for row in csv.DictReader(file) if row["val/score"]})


def budgeted_run(train_config, tmp_path, validate_last: float) -> Path:
    """The smoke net, 6 steps of 2 tiles an epoch, on a clock reading 1 s per step: a 40 s
    budget ends in the 7th epoch (epoch 6), 4 steps in, whatever the machine's load."""
    run = tmp_path / f"run-{validate_last}"
    cfg = train_config(
        "trainer.max_time=00:00:00:40",
        "trainer.max_epochs=100",
        "data.batch_size=2",  # the clock counts steps: small ones keep the test quick
        "trainer.limit_train_batches=6",
        f"validate_last={validate_last}",
        "+callbacks.probe._target_=tests.helpers.rank_probe.RankProbe",
        f"+callbacks.probe.out={tmp_path / 'probe'}",
        "+callbacks.probe.seconds_per_step=1",
        "+callbacks.last_steps._target_=tests.training.test_budget_validation.LastCheckpointSteps",
        f"+callbacks.last_steps.path={run / 'checkpoints' / 'last.ckpt'}",
        "oof=false",
        "plots=false",
        output_dir=run,
    )
    train(cfg)
    return run


@pytest.mark.slow
def test_a_budget_validates_its_last_share_and_the_epoch_it_ends_in(train_config, tmp_path):
    """validate_last=0.5 of 40 s: epochs 0-2 (ending at 6, 12, 18 s) train only, 3-5 (24, 30,
    36 s) validate, and epoch 6, cut by the budget at 40 s, validates. Every epoch, validated
    or not, leaves a last.ckpt to resume from."""
    LastCheckpointSteps.seen = []
    every = budgeted_run(train_config, tmp_path, 1.0)
    assert validated_epochs(every) == [0, 1, 2, 3, 4, 5, 6]
    LastCheckpointSteps.seen = []
    late = budgeted_run(train_config, tmp_path, 0.5)
    assert validated_epochs(late) == [3, 4, 5, 6]
    assert LastCheckpointSteps.seen == [None, 6, 12, 18, 24, 30, 36]
    last = torch.load(late / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)
    assert last["global_step"] == 40


def test_validate_last_out_of_range_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"^validate_last: a share of the budget in \(0, 1\]"):
        SharedClockTimer("00:00:01:00", validate_last=0)
