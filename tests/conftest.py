"""Shared fixtures: generated data in the Kaggle layout and the real Hydra config, shrunk."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from salt.data.synthetic import generate
from salt.train import CONFIG_DIR, train


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small generated data set (60 train, 10 test tiles), shared read-only by the tests."""
    return generate(tmp_path_factory.mktemp("tgs"), n_train=60, n_test=10, seed=0)


REPO_ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def train_config(tmp_path, synthetic_root) -> Callable[..., DictConfig]:
    """`train_config(*overrides)`: the smoke experiment on `synthetic_root`, writing into tmp_path."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        quiet = (
            [] if any(o.startswith("logger") for o in overrides) else ["logger.tensorboard=null"]
        )
        return smoke_config(synthetic_root, output_dir or tmp_path / "run", *quiet, *overrides)

    return make


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, synthetic_root) -> Path:
    """A run directory of the smoke experiment (1 epoch, CSV logger) trained once per session,
    plots included; read-only for the tests that share it."""
    run = tmp_path_factory.mktemp("smoke-run") / "run"
    train_smoke(synthetic_root, run, "trainer.max_epochs=1")
    return run
