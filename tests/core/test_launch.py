"""The run directory's time that every process of a torchrun or srun launch agrees on."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from salt.core import launch
from tests.helpers.runs import REPO_ROOT, free_port

PRINT_LAUNCH_TIME = (
    "from salt.core.launch import launch_time; print(launch_time('%H-%M-%S.%f'), flush=True)"
)


def torchrun_environment(rank: int, port: int) -> dict[str, str]:
    """What torchrun sets for each of 2 local processes (its agent's store not reused)."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "GROUP_RANK": "0",
        "LOCAL_WORLD_SIZE": "2",
        "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TORCHELASTIC_RUN_ID": "salt-test",
        "TORCHELASTIC_USE_AGENT_STORE": "False",
    }


@pytest.mark.multiprocess
def test_ranks_started_a_second_apart_get_rank_zeros_launch_time():
    """Each process composes its own config: rank 1, started 1.5 s after rank 0, still gets rank
    0's time (to the microsecond), so both resolve one `hydra.run.dir`."""
    port = free_port()
    processes = []
    try:
        for rank in (0, 1):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", PRINT_LAUNCH_TIME],
                    env=torchrun_environment(rank, port),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            time.sleep(1.5)
        outputs = [p.communicate(timeout=60) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    first, second = (out.strip() for out, _ in outputs)
    assert first == second and first


def test_one_process_gets_its_own_time_and_keeps_it(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(launch, "_launch_times", {})
    stamp = launch.launch_time("%H-%M-%S.%f")
    time.sleep(0.01)
    assert launch.launch_time("%H-%M-%S.%f") == stamp  # resolved once per process


@pytest.mark.parametrize(
    ("variables", "rank"),
    [
        ({}, 0),
        ({"LOCAL_RANK": "1"}, 1),
        ({"RANK": "3", "LOCAL_RANK": "1"}, 3),
        ({"SLURM_PROCID": "2"}, 2),
    ],
)
def test_the_rank_resolvers_read_the_launchers_variables(monkeypatch, variables, rank):
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    assert launch.environment_rank() == rank
    assert launch.on_rank_zero(".hydra") == (".hydra" if rank == 0 else None)
    assert launch.rank_suffix() == ("" if rank == 0 else f"_rank{rank}")
