"""Building runs and configs for the tests: the real Hydra config, shrunk, and the commands
run as a user runs them."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from salt.core.config import CONFIG_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """benchmarks/NAME.py as a module: the scripts there are not a package."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


def smoke_config(synthetic_root: Path, output_dir: Path, *overrides: str) -> DictConfig:
    """The smoke experiment on `synthetic_root`, writing into `output_dir`, as a task sees it."""
    cfg = compose_config(
        "train",
        ["experiment=smoke", f"data.root={synthetic_root}", "data.synthetic=null", *overrides],
    )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg["hydra"]  # a task sees no `hydra` node, as under @hydra.main
    return cfg


def train_smoke(synthetic_root: Path, output_dir: Path, *overrides: str) -> dict:
    """Train the smoke experiment (CSV logger only) into `output_dir`; its metrics."""
    cfg = smoke_config(synthetic_root, output_dir, "logger.tensorboard=null", *overrides)
    from salt.train import train

    metrics, _ = train(cfg)
    return metrics


def run_module(module: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` from the repository root, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_main(main: Callable, argv: Sequence, capsys) -> tuple[int, str, str]:
    """An argparse `main(argv)` in this process: (exit status, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        status = 0
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def free_port() -> int:
    """A TCP port nothing listens on now, on the loopback address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
