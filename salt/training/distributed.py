"""How the processes of a multi-process fit agree: rank 0 decides, the others are told.

Every decision taken from files or clocks, which may differ between processes (whether SWA was
saved, how much of a time budget is left), is rank 0's, carried to the others by `broadcast`.
Work rank 0 does alone (the end of a fit: OOF, metrics.json, plots) runs in `rank_zero_does`,
which tells the others whether it failed, so that a failure stops every rank at once.
Where the processes' run directories come from is salt.core.launch's part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from salt.core.errors import ConfigError, SaltError, salt_error_in
from salt.core.launch import external_launch
from salt.training.lightning_private import check_sigterm_every

# how often the ranks talk outside the gradient sync: rank 0's clock (the time budget), the NaN
# watch and Lightning's SIGTERM flag, every this many optimizer steps
CHECK_EVERY_N_STEPS = 10

T = TypeVar("T")


def broadcast(trainer, value: T) -> T:
    """Rank 0's `value` on every rank (a collective: every rank must call it); `value` itself
    in a single process."""
    return trainer.strategy.broadcast(value, src=0)


def is_multi_process(trainer_config, cuda_devices: int | None = None) -> bool:
    """Whether a trainer config asks for more than one process (devices or nodes) on a machine
    with `cuda_devices` GPUs (by default: this one's)."""
    if cuda_devices is None:
        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    devices = trainer_config.get("devices", 1)
    nodes = trainer_config.get("num_nodes", 1) or 1
    if str(devices) == "auto":  # every GPU, or one CPU process
        several = trainer_config.get("accelerator") != "cpu" and cuda_devices > 1
    elif isinstance(devices, int | str):
        several = (
            str(devices) == "-1" or int(str(devices).split(",")[0] or 1) > 1 or "," in str(devices)
        )
    else:  # a list of device indices
        several = len(devices) > 1
    return several or nodes > 1


def check_launch_mode(trainer_config, multirun: bool) -> None:
    """Refuse Hydra's multirun with several processes per job: Lightning's launcher re-runs the
    command line, `-m` and the whole sweep included, in every other rank."""
    if multirun and is_multi_process(trainer_config) and external_launch() is None:
        raise ConfigError(
            "trainer.devices",
            "a multirun (-m) cannot start several processes per job: run one fold per command "
            "(python -m salt.train data.fold=K trainer=ddp ...), or keep -m and add "
            "hydra/launcher=parallel (each job its own command)",
        )


class RankZeroFailed(SaltError):
    """Rank 0 failed in work it does alone: the other ranks stop too, with this one line."""


def _described(error: BaseException) -> str:
    salt_error = salt_error_in(error)
    if salt_error is not None:
        return str(salt_error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def rank_zero_does(trainer, work: Callable[[], T]) -> T:
    """`work()` on rank 0 alone; its result on every rank (a collective: every rank calls it).

    When `work` raises on rank 0, every rank raises at once: rank 0 its own error, the others a
    RankZeroFailed naming it. Without this the others would wait in their next collective for a
    rank that has left, holding their GPUs until the process group's timeout (30 minutes)."""
    if trainer.world_size == 1:
        return work()
    result: Any = None
    failure: str | None = None
    raised: BaseException | None = None
    if trainer.is_global_zero:
        try:
            result = work()
        except BaseException as error:  # an interrupt too: the others must not wait for it
            raised, failure = error, _described(error)
    failure, result = broadcast(trainer, (failure, result))
    if raised is not None:
        raise raised
    if failure is not None:
        raise RankZeroFailed(f"rank 0 failed, so rank {trainer.global_rank} stops too: {failure}")
    return result


class SigtermCheckEveryNSteps(Callback):
    """Under DDP, Lightning's SIGTERM flag is sent every `every_n_steps` optimizer steps instead
    of every step (`check_sigterm_every`: what that changes, and what it does not).
    `SaltModule` brings it (`configure_callbacks`)."""

    def __init__(self, every_n_steps: int = CHECK_EVERY_N_STEPS):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            check_sigterm_every(trainer, self.every_n_steps)
