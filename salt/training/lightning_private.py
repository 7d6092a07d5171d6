"""Every private name of Lightning (pytorch_lightning, lightning_fabric) salt relies on, and the
only module of salt that names them: the rest of salt reaches them through what this module
gives (`check_sigterm_every`, `attached_trainer` and the base classes below).

Lightning may rename, drop or re-sign a private name in any release, and an override of a method
Lightning no longer calls does nothing, silently. So each method below is checked when this
module is imported (that it exists, taking the parameters salt calls or overrides it with), each
attribute when it is read (one its constructor sets), and a missing or changed one is a
LightningPrivateError naming it and the versions salt is tested with (pyproject.toml pins
pytorch-lightning below 2.7; tested with 2.6.6, and 2.5.0 as the lower bound).
tests/training/test_lightning_private.py checks every name against the installed Lightning, and
how it behaves where that is cheap; tests/test_architecture.py fails a module of salt other than
this one that names one of them.

What salt relies on, name by name (methods: METHODS, attributes: ATTRIBUTES):

- `_TrainingEpochLoop` (pytorch_lightning.loops), the fit loop's epoch loop, and its
  `_broadcast_sigterm_tensor(self)`: from 2.5.2 on, called before every training step under DDP
  (it broadcasts rank 0's SIGTERM flag: a collective and a host sync). `check_sigterm_every`
  replaces it on one loop with a call every few steps. Before 2.5.2 it does not exist, and
  there is nothing to thin out.
- `ModelCheckpoint._should_skip_saving_checkpoint(self, trainer)`,
  `._save_topk_checkpoint(self, trainer, monitor_candidates)` and
  `._monitor_candidates(self, trainer)`: whether a checkpoint may be written now, and writing
  it as the callback's own hooks do. `ModelCheckpointBase.skips_saving`, `.save_now`
  (salt.training.callbacks.LastCheckpoint writes once more when training ends).
- `Timer._check_time_remaining(self, trainer)`, called by Timer's `on_fit_start` and its batch
  and epoch hooks; `Timer._duration` (the budget in seconds, or None) and `Timer._verbose`.
  `TimerBase.check_time_remaining` (overridden by salt.training.budget.SharedClockTimer to read
  rank 0's clock), `.duration`, `.verbose`.
- `ExperimentWriter._check_log_dir_exists(self)` (lightning_fabric's), called by the writer's
  constructor: it deletes an existing metrics.csv; `ExperimentWriter._fs`; `CSVLogger._fs` and
  `CSVLogger._experiment`, the logger's writer made on first use. `ExperimentWriterBase`,
  `CSVLoggerBase` (salt.training.loggers appends to a resumed run's metrics.csv).
- `LightningModule._trainer`: the Trainer, None when not attached (`.trainer` raises then).
  `attached_trainer`.

Relied on elsewhere, not gathered here:

- salt/sections/lines.py `StopOnSigterm` reads the public `trainer.received_sigterm`; it relies
  on Lightning's predict loop not stopping on it (the fit loop does), no private name.
- torch's private names (not Lightning's): `torch.nn.modules.batchnorm._BatchNorm`
  (salt.training.callbacks), `torch._dynamo.utils.counters` (salt.training.compile),
  TensorBoard's `SummaryWriter._get_file_writer` (salt.training.loggers),
  `torch.utils._python_dispatch` (salt.bench.syncs).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, Timer
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.loops import _TrainingEpochLoop

from salt.core.errors import SaltError

TESTED = "pytorch-lightning>=2.5,<2.7 (pyproject.toml)"


class LightningPrivateError(SaltError):
    """A private Lightning name salt relies on is missing or has changed."""

    def __init__(self, name: str, problem: str):
        super().__init__(
            f"salt relies on Lightning's private {name}, which pytorch-lightning "
            f"{pl.__version__} {problem}: install {TESTED}"
        )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@dataclass(frozen=True)
class Method:
    """A private method salt calls or overrides: its parameters as salt passes them."""

    owner: type
    name: str
    parameters: tuple[str, ...]
    since: str = "0"  # the first Lightning version that has it

    @property
    def title(self) -> str:
        return f"{self.owner.__name__}.{self.name}({', '.join(self.parameters)})"

    def problem(self, version: str = pl.__version__) -> str | None:
        """What is wrong with it in the installed Lightning, or None (also where `version` is
        older than `since`: absent there, as expected)."""
        found = getattr(self.owner, self.name, None)
        if found is None:
            return None if _version(version) < _version(self.since) else "does not have"
        if not callable(found):
            return "has, but not as a method"
        parameters = tuple(inspect.signature(found).parameters)
        if parameters != self.parameters:
            return f"has with other parameters ({', '.join(parameters)})"
        return None


METHODS = (
    Method(_TrainingEpochLoop, "_broadcast_sigterm_tensor", ("self",), since="2.5.2"),
    Method(ModelCheckpoint, "_should_skip_saving_checkpoint", ("self", "trainer")),
    Method(ModelCheckpoint, "_save_topk_checkpoint", ("self", "trainer", "monitor_candidates")),
    Method(ModelCheckpoint, "_monitor_candidates", ("self", "trainer")),
    Method(Timer, "_check_time_remaining", ("self", "trainer")),
    Method(ExperimentWriter, "_check_log_dir_exists", ("self",)),
)
# attributes set by the owners' constructors, read through `private`
ATTRIBUTES = {
    Timer: ("_duration", "_verbose"),
    ExperimentWriter: ("_fs",),
    CSVLogger: ("_fs", "_experiment"),
    pl.LightningModule: ("_trainer",),
}


def check_methods(methods: tuple[Method, ...] = METHODS) -> None:
    """A LightningPrivateError naming the first method the installed Lightning lacks or has
    with other parameters."""
    for method in methods:
        problem = method.problem()
        if problem is not None:
            raise LightningPrivateError(method.title, problem)


check_methods()


def private(owner: Any, name: str) -> Any:
    """The private attribute `name` of a Lightning object (one its constructor sets); a
    LightningPrivateError where it has none."""
    try:
        return vars(owner)[name]
    except KeyError:
        raise LightningPrivateError(
            f"{type(owner).__name__}.{name}", "does not set (an attribute)"
        ) from None


def attached_trainer(module: pl.LightningModule) -> pl.Trainer | None:
    """The Trainer `module` is attached to, or None (where `module.trainer` would raise)."""
    return private(module, "_trainer")


def check_sigterm_every(trainer: pl.Trainer, every_n_steps: int) -> None:
    """Lightning (from 2.5.2) broadcasts rank 0's SIGTERM flag before every training step under
    DDP and reads it back: a collective and a host sync each step. Make it every
    `every_n_steps` optimizer steps (the same steps on every rank). Before 2.5.2 Lightning sends
    no such flag, and nothing changes.

    It does not make the ranks stop together, and neither did Lightning's every step: a process
    that gets SIGTERM itself stops after the batch it is in (Lightning's own check, not this
    broadcast). The broadcast only tells the ranks that got no signal, at its next step (up to
    `every_n_steps` later); a rank that stopped first leaves the others waiting in their next
    collective until the process group's timeout or the launcher ends them. Where every process
    gets the signal (SLURM preempting a job signals every task; Lightning's own launcher passes
    rank 0's on to the processes it started) each stops after its own batch, which need not be
    the same batch."""
    loop = trainer.fit_loop.epoch_loop
    broadcast_flag: Callable[[], None] | None = getattr(loop, "_broadcast_sigterm_tensor", None)
    if broadcast_flag is None:  # before 2.5.2 (METHODS checked the rest at import)
        return
    if getattr(broadcast_flag, "every_n_steps", None):  # in place already (a second fit)
        return

    def every_few_steps() -> None:
        if trainer.global_step % every_n_steps == 0:
            broadcast_flag()

    every_few_steps.every_n_steps = every_n_steps  # type: ignore[attr-defined]
    loop._broadcast_sigterm_tensor = every_few_steps  # type: ignore[method-assign]


class ModelCheckpointBase(ModelCheckpoint):
    """Lightning's ModelCheckpoint with the private steps of its hooks as public methods."""

    def skips_saving(self, trainer: pl.Trainer) -> bool:
        """Whether no checkpoint may be written now (a sanity check, not fitting, the step
        already saved, ...)."""
        return self._should_skip_saving_checkpoint(trainer)

    def save_now(self, trainer: pl.Trainer) -> None:
        """Write the checkpoint as the callback's hooks do (its top-k rule decides)."""
        self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


class TimerBase(Timer):
    """Lightning's Timer whose time check, which its hooks call, is `check_time_remaining`."""

    @property
    def duration(self) -> float | None:
        """The budget in seconds, or None."""
        return private(self, "_duration")

    @property
    def verbose(self) -> bool:
        return private(self, "_verbose")

    def _check_time_remaining(self, trainer: pl.Trainer) -> None:
        self.check_time_remaining(trainer)

    def check_time_remaining(self, trainer: pl.Trainer) -> None:
        super()._check_time_remaining(trainer)


class ExperimentWriterBase(ExperimentWriter):
    """Lightning's CSV writer whose check of an existing log folder (the constructor's; it
    deletes an existing metrics.csv) is `check_log_dir`."""

    @property
    def filesystem(self) -> Any:
        return private(self, "_fs")

    def _check_log_dir_exists(self) -> None:
        self.check_log_dir()

    def check_log_dir(self) -> None:
        super()._check_log_dir_exists()


class CSVLoggerBase(CSVLogger):
    """Lightning's CSVLogger whose writer is a `writer_class`."""

    writer_class: type[ExperimentWriter] = ExperimentWriter

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        writer = private(self, "_experiment")
        if writer is None:
            private(self, "_fs").makedirs(self.root_dir, exist_ok=True)
            writer = self._experiment = self.writer_class(log_dir=self.log_dir)
        return writer
