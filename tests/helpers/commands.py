"""salt's commands (`python -m salt.X ARGS`) run one after the other in one Python process, from
a given folder: what a user types, through the same entry points (`run_hydra_main` for the Hydra
commands, `main(argv)` for the others), with one start of Python and torch for all of them."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from salt.core.config import HYDRA_COMMANDS
from tests.helpers.runs import REPO_ROOT

HYDRA_MODULES = tuple(HYDRA_COMMANDS.values())  # salt.train, salt.predict, salt.tune, ...

RUNNER = """
import importlib, json, sys, time
from hydra.core.global_hydra import GlobalHydra
from salt.core.errors import run_hydra_main

for module_name, *args in json.loads(sys.argv[1]):
    module = importlib.import_module(module_name)
    started = time.perf_counter()
    status = 0
    try:
        if module_name in HYDRA_MODULES:
            GlobalHydra.instance().clear()
            sys.argv = [module_name, *args]
            run_hydra_main(module.main)
        else:
            module.main(list(args))
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
    print(json.dumps({"command": [module_name, *args], "status": status,
                      "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    if status:
        break
"""


def run_commands(
    commands: Sequence[Sequence[str]], cwd: Path, timeout: float = 600
) -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run `commands` (each `[module, *args]`) in order from `cwd`, stopping at the first that
    fails; (one result per command run: command, status, seconds; the process)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"HYDRA_MODULES = {HYDRA_MODULES!r}\n{RUNNER}",
            json.dumps([list(c) for c in commands]),
        ],
        cwd=cwd,
        # one thread: two of torch's threads on a core shared with other tests spin and wait
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    results = [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"command"')
    ]
    return results, result


def stamp() -> str:
    """The install stamp make would rebuild (.venv older than pyproject.toml): kept as it is."""
    found = sorted((REPO_ROOT / ".venv").glob(".installed-torch-*"))
    return str(found[0] if found else REPO_ROOT / ".venv" / ".installed-torch-cuda")


def make_python_runs(args: Sequence[str]) -> list[list[str]]:
    """The arguments of each command of .venv's Python that `make ARGS` would run, read from
    `make -n` (the install step kept as it is); a CalledProcessError where make refuses."""
    dry = subprocess.run(
        ["make", "-n", "-o", stamp(), f"VENV={REPO_ROOT / '.venv'}", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        shlex.split(line)[1:]
        for line in dry.stdout.splitlines()
        if re.match(r"[\w./-]*/python ", line)  # not `x=$(.venv/bin/python -c ...)`
    ]
