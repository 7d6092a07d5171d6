"""Which process of a launch this is, and the run directory's time every process agrees on.

Processes of one run come from Lightning's own launcher (`trainer=ddp`: rank 0 composes the
config, then starts the other ranks with its run directory on their command line), or from an
external launcher (`torchrun`, `srun`), where every process composes its own config: a
`${now:...}` in the run directory could then differ between them by a second.
`${salt.launch_time:FMT}` (what `hydra.run.dir` uses) is rank 0's clock on every rank: rank 0
publishes it in a key-value store at the launch's main address and the others read it there,
before Hydra makes any directory, one key per format. The store is the one the process group
uses later, at the same port: torchrun's agent's, or else the one rank 0 serves at the main
port, kept until the process ends and shared with the process group (torch's multi-tenant
TCPStore). No other port is taken: under SLURM, Lightning's main port is 15000 plus the job
id's last 4 digits, so a second port (main + 1) would be the main port of the job with the next
id on the same node. These resolvers are registered on import (salt.core.config imports this
module).
"""

from __future__ import annotations

import atexit
import datetime
import os
import time
from typing import Any

import torch
from omegaconf import OmegaConf

# how long the other ranks wait for rank 0's launch time (rank 0 may still be importing), and
# how long rank 0, exiting, waits for them to have read it
AGREEMENT_TIMEOUT = datetime.timedelta(minutes=10)
KEY_PREFIX = "salt/launch_time/"
READ_PREFIX = "salt/launch_time_read/"


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


class LaunchStore:
    """The launch's key-value store, opened once per process.

    torchrun's agent serves one at MASTER_ADDR:MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE); else
    rank 0 serves it at the main port, multi-tenant, so that the process group's store (which
    torch makes multi-tenant at that port too) is served by the same server. Rank 0 keeps it
    until its process ends, and then waits for every other rank to have read what it published:
    a rank that has not read yet would wait for a server that is gone."""

    def __init__(self, environment) -> None:
        self.rank, self.world = environment.global_rank(), environment.world_size()
        address, port = environment.main_address, environment.main_port
        self.hosted = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
        self.store: torch.distributed.Store
        if self.hosted:
            self.store = torch.distributed.TCPStore(
                address,
                port,
                self.world,
                is_master=self.rank == 0,
                timeout=AGREEMENT_TIMEOUT,
                multi_tenant=True,
            )
        else:
            agent = torch.distributed.TCPStore(address, port, timeout=AGREEMENT_TIMEOUT)
            restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            self.store = torch.distributed.PrefixStore(f"salt/{restart}", agent)
        self.published: list[str] = []
        if self.hosted and self.rank == 0:
            atexit.register(self.wait_for_readers)

    def agree(self, name: str, value: str) -> str:
        """Rank 0's `value` of `name` (this process's own on rank 0)."""
        if self.rank == 0:
            self.store.set(KEY_PREFIX + name, value)
            self.published.append(name)
            return value
        agreed = self.store.get(KEY_PREFIX + name).decode()
        self.store.add(READ_PREFIX + name, 1)
        return agreed

    def wait_for_readers(self) -> None:
        deadline = time.monotonic() + AGREEMENT_TIMEOUT.total_seconds()
        for name in self.published:
            while self.store.add(READ_PREFIX + name, 0) < self.world - 1:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)


_store: LaunchStore | None = None


def agree_with_rank_zero(name: str, value: str, environment) -> str:
    """Rank 0's `value` of `name` on every process of an external launch."""
    global _store
    if _store is None:
        _store = LaunchStore(environment)
    return _store.agree(name, value)


_launch_times: dict[str, str] = {}


def launch_time(pattern: str) -> str:
    """`${salt.launch_time:%Y-%m-%d_%H-%M-%S}`: the time now (as Hydra's `${now:...}`), except in
    a process of an external multi-process launch, where it is rank 0's. Fixed per process and
    format."""
    if pattern not in _launch_times:
        now = datetime.datetime.now().strftime(pattern)
        environment = external_launch()
        _launch_times[pattern] = (
            now if environment is None else agree_with_rank_zero(pattern, now, environment)
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
