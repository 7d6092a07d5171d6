"""Which process of a launch this is, and the run directory's time every process agrees on.

Processes of one run come from Lightning's own launcher (`trainer=ddp`: rank 0 composes the
config, then starts the other ranks with its run directory on their command line), or from an
external launcher (`torchrun`, `srun`), where every process composes its own config: a
`${now:...}` in the run directory could then differ between them by a second.
`${salt.launch_time:FMT}` (what `hydra.run.dir` uses) is rank 0's clock on every rank: rank 0
publishes it in a key-value store at the launch's main address and the others read it there,
before Hydra makes any directory. These resolvers are registered on import (salt.core.config
imports this module).
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

import torch
from omegaconf import OmegaConf

# how long the other ranks wait for rank 0's launch time (rank 0 may still be importing)
AGREEMENT_TIMEOUT = datetime.timedelta(minutes=10)
LAUNCH_TIME_KEY = "salt/launch_time"
READ_KEY = "salt/launch_time_read"


def environment_rank() -> int:
    """This process's rank as its launcher set it (RANK, LOCAL_RANK, SLURM_PROCID), 0 if none:
    Lightning's own rule (`rank_zero_only.rank`), readable before anything is initialised."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None:
            return int(value)
    return 0


def external_launch():
    """The Lightning cluster environment of a process that `torchrun` or `srun` started as one of
    several (world size > 1), or None (one process, or Lightning's own launcher)."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    environment: Any
    if TorchElasticEnvironment.detect():
        environment = TorchElasticEnvironment()
    elif SLURMEnvironment.detect():
        environment = SLURMEnvironment()
    else:
        return None
    return environment if environment.world_size() > 1 else None


def _launch_store(environment) -> tuple[torch.distributed.Store, bool]:
    """A key-value store every process of the launch reaches, and whether this process hosts it.

    torchrun's agent already serves one at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE);
    elsewhere rank 0 serves one at the main port + 1 (the main port is the process group's)."""
    rank, world = environment.global_rank(), environment.world_size()
    address, port = environment.main_address, environment.main_port
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        store = torch.distributed.TCPStore(address, port, timeout=AGREEMENT_TIMEOUT)
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        return torch.distributed.PrefixStore(f"salt/{restart}", store), False
    hosts = rank == 0
    store = torch.distributed.TCPStore(
        address, port + 1, world, is_master=hosts, timeout=AGREEMENT_TIMEOUT
    )
    return store, hosts


def agree_with_rank_zero(value: str, environment) -> str:
    """Rank 0's `value` on every process of an external launch (this one's own on rank 0)."""
    store, hosts = _launch_store(environment)
    if environment.global_rank() == 0:
        store.set(LAUNCH_TIME_KEY, value)
    else:
        value = store.get(LAUNCH_TIME_KEY).decode()
        store.add(READ_KEY, 1)
    if hosts:  # the store goes with this process: wait until every other rank has read
        deadline = time.monotonic() + AGREEMENT_TIMEOUT.total_seconds()
        while store.add(READ_KEY, 0) < environment.world_size() - 1:
            if time.monotonic() > deadline:
                raise TimeoutError("the other ranks did not read the launch time")
            time.sleep(0.05)
    return value


_launch_times: dict[str, str] = {}


def launch_time(pattern: str) -> str:
    """`${salt.launch_time:%Y-%m-%d_%H-%M-%S}`: the time now (as Hydra's `${now:...}`), except in
    a process of an external multi-process launch, where it is rank 0's. Fixed per process."""
    if pattern not in _launch_times:
        now = datetime.datetime.now().strftime(pattern)
        environment = external_launch()
        _launch_times[pattern] = (
            now if environment is None else agree_with_rank_zero(now, environment)
        )
    return _launch_times[pattern]


def on_rank_zero(value: Any) -> Any:
    """`${salt.on_rank_zero:VALUE}`: VALUE on rank 0, null on the others (e.g. Hydra's
    `output_subdir`: only rank 0 saves the composed config)."""
    return value if environment_rank() == 0 else None


def rank_suffix() -> str:
    """`${salt.rank_suffix:}`: empty on rank 0, `_rank<N>` on the others (their log file names)."""
    rank = environment_rank()
    return "" if rank == 0 else f"_rank{rank}"


for _name, _resolver in (
    ("salt.launch_time", launch_time),
    ("salt.on_rank_zero", on_rank_zero),
    ("salt.rank_suffix", rank_suffix),
):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)
