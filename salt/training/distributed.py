"""How the processes of a multi-process fit agree: rank 0 decides, the others are told.

Every decision taken from files or clocks, which may differ between processes (whether SWA was
saved, how much of a time budget is left), is rank 0's, carried to the others by `broadcast`.
Where the processes' run directories come from is salt.core.launch's part.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from salt.core.errors import ConfigError
from salt.core.launch import external_launch

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
