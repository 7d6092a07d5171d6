"""The private Lightning names salt relies on (salt/training/lightning_private.py), against the
installed Lightning: each method there with the parameters salt uses, each attribute set, and
how they behave where that is cheap; a missing or changed one refused by name, not ignored."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, Timer
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loops import _TrainingEpochLoop
from pytorch_lightning.trainer.states import TrainerFn

from salt.training.lightning_private import (
    ATTRIBUTES,
    METHODS,
    LightningPrivateError,
    Method,
    ModelCheckpointBase,
    TimerBase,
    attached_trainer,
    check_methods,
    check_sigterm_every,
    private,
)


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.owner.__name__}.{m.name}")
def test_every_private_method_is_there_with_the_parameters_salt_uses(method):
    assert method.problem() is None, method.problem()


def test_a_missing_or_changed_private_method_is_refused_by_name(monkeypatch):
    """What importing lightning_private runs (check_methods): a Lightning without the method, or
    with other parameters, stops salt naming it; a method newer than the installed Lightning is
    absent as expected."""
    monkeypatch.delattr(ModelCheckpoint, "_save_topk_checkpoint")
    with pytest.raises(LightningPrivateError) as error:
        check_methods()
    assert str(error.value) == (
        "salt relies on Lightning's private ModelCheckpoint._save_topk_checkpoint(self, trainer, "
        f"monitor_candidates), which pytorch-lightning {pl.__version__} does not have: install "
        "pytorch-lightning>=2.5,<2.7 (pyproject.toml)"
    )
    monkeypatch.undo()
    monkeypatch.setattr(Timer, "_check_time_remaining", lambda self, trainer, stage: None)
    with pytest.raises(LightningPrivateError, match=r"other parameters \(self, trainer, stage\)"):
        check_methods()
    newer = Method(SimpleNamespace, "_not_yet", ("self",), since="2.5.2")
    assert newer.problem("2.5.1") is None
    assert newer.problem("2.6.6") == "does not have"


def test_every_private_attribute_is_set_by_its_owner(tmp_path):
    owners = {
        Timer: Timer(duration="00:00:00:10"),
        ExperimentWriter: ExperimentWriter(log_dir=str(tmp_path / "writer")),
        CSVLogger: CSVLogger(save_dir=tmp_path, name="csv"),
        pl.LightningModule: pl.LightningModule(),
    }
    assert set(owners) == set(ATTRIBUTES)
    for owner, names in ATTRIBUTES.items():
        for name in names:
            private(owners[owner], name)  # raises where the constructor set none
    with pytest.raises(LightningPrivateError, match=r"SimpleNamespace\._duration, which "):
        private(SimpleNamespace(), "_duration")


def test_sigterm_flag_is_broadcast_every_n_steps_where_lightning_broadcasts_it_every_step():
    # Lightning's epoch loop calls the method salt replaces before every training step
    assert "self._broadcast_sigterm_tensor()" in inspect.getsource(_TrainingEpochLoop.advance)
    sent: list[int] = []
    trainer = SimpleNamespace(global_step=0)
    loop = SimpleNamespace(_broadcast_sigterm_tensor=lambda: sent.append(trainer.global_step))
    trainer.fit_loop = SimpleNamespace(epoch_loop=loop)
    check_sigterm_every(trainer, 3)
    check_sigterm_every(trainer, 3)  # a second fit: wrapped once
    for step in range(8):
        trainer.global_step = step
        loop._broadcast_sigterm_tensor()
    assert sent == [0, 3, 6]


def test_checkpoint_steps_behave_as_the_callbacks_hooks_use_them():
    callback = ModelCheckpointBase(monitor=None)
    trainer = SimpleNamespace(
        fast_dev_run=False,
        state=SimpleNamespace(fn=TrainerFn.FITTING),
        sanity_checking=False,
        global_step=7,
        current_epoch=2,
        callback_metrics={},
    )
    assert callback.skips_saving(trainer) is False
    trainer.sanity_checking = True
    assert callback.skips_saving(trainer) is True
    candidates = callback._monitor_candidates(trainer)
    assert (int(candidates["epoch"]), int(candidates["step"])) == (2, 7)


def test_lightnings_timer_hooks_reach_the_public_time_check():
    checked: list[object] = []

    class Recording(TimerBase):
        def check_time_remaining(self, trainer) -> None:
            checked.append(trainer)

    timer = Recording(duration="00:00:00:10", verbose=False)
    assert (timer.duration, timer.verbose) == (10.0, False)
    trainer = SimpleNamespace()
    timer.on_fit_start(trainer)  # Lightning's hook, not overridden by salt
    assert checked == [trainer]


def test_an_attached_trainer_is_read_without_raising():
    module = pl.LightningModule()
    assert attached_trainer(module) is None
    trainer = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu"
    )
    module.trainer = trainer
    assert attached_trainer(module) is trainer
