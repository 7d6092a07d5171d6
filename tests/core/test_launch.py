"""The run directory's time that every process of a torchrun or srun launch agrees on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from salt.core import launch
from tests.helpers.runs import REPO_ROOT, free_port

# each process resolves the formats given on its command line, in that order, prints them, then
# makes the process group as Lightning does (env://, at MASTER_ADDR:MASTER_PORT) and uses it
AGREE_THEN_FORM_THE_GROUP = """
import json, sys
import torch, torch.distributed as dist
from salt.core.launch import launch_time
rank, formats = int(sys.argv[1]), sys.argv[2:]
print(json.dumps({pattern: launch_time(pattern) for pattern in formats}), flush=True)
dist.init_process_group("gloo", rank=rank, world_size=2)
total = torch.ones(1)
dist.all_reduce(total)
assert total.item() == 2
dist.destroy_process_group()
"""
FORMATS = ("%H-%M-%S.%f", "%f")
# seconds the two processes may take (imports included) before the test counts a hang
AGREEMENT_TIMEOUT = 120


def srun_environment(rank: int, port: int) -> dict[str, str]:
    """What srun sets for each of 2 tasks on one node (MASTER_PORT as a batch script sets it)."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "salt",
        "SLURM_NODELIST": "localhost",
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }


def port_with_next_taken() -> tuple[int, socket.socket]:
    """A free port whose next port is in use (by the returned listening socket): under SLURM the
    main port of the job whose id is one more."""
    for _ in range(100):
        port = free_port()
        neighbour = socket.socket()
        try:
            neighbour.bind(("127.0.0.1", port + 1))
        except OSError:
            neighbour.close()
            continue
        neighbour.listen()
        return port, neighbour
    raise RuntimeError("no free port with a free next port")


@pytest.mark.multiprocess
def test_ranks_agree_on_every_launch_time_format_at_the_process_groups_own_port():
    """Two srun tasks, each composing its own config, get rank 0's time for every format (to the
    microsecond, so no two clocks agree by chance), whatever order they resolve the formats in;
    no port but the main one is taken (the next one, another job's, is in use), and the process
    group then forms at the main port."""
    port, neighbour = port_with_next_taken()
    processes = []
    try:
        for rank, formats in ((0, FORMATS), (1, FORMATS[::-1])):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", AGREE_THEN_FORM_THE_GROUP, str(rank), *formats],
                    env=srun_environment(rank, port),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + AGREEMENT_TIMEOUT
        outputs = []
        for process in processes:
            try:
                outputs.append(process.communicate(timeout=max(1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running after {AGREEMENT_TIMEOUT} s (a hang)")
    finally:
        neighbour.close()
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    first, second = (json.loads(out) for out, _ in outputs)
    assert first == second and set(first) == set(FORMATS)


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
