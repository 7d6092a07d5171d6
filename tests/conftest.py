"""Shared fixtures: generated data in the Kaggle layout and the real Hydra config, shrunk."""

from __future__ import annotations

from collections.abc import Callable
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


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        return compose(config_name=name, overrides=overrides, return_hydra_config=True)


@pytest.fixture
def train_config(tmp_path, synthetic_root) -> Callable[..., DictConfig]:
    """`train_config(*overrides)`: the smoke experiment on `synthetic_root`, writing into tmp_path."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        quiet = (
            [] if any(o.startswith("logger") for o in overrides) else ["logger.tensorboard=null"]
        )
        cfg = compose_config(
            "train",
            [
                "experiment=smoke",
                f"data.root={synthetic_root}",
                "data.synthetic=null",
                *quiet,
                *overrides,
            ],
        )
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir or tmp_path / "run")
            del cfg["hydra"]  # a task sees no `hydra` node, as under @hydra.main
        return cfg

    return make


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, synthetic_root) -> Path:
    """A run directory of the smoke experiment (1 epoch, CSV logger) trained once per session,
    plots included; read-only for the tests that share it."""
    run = tmp_path_factory.mktemp("smoke-run") / "run"
    cfg = compose_config(
        "train",
        [
            "experiment=smoke",
            f"data.root={synthetic_root}",
            "data.synthetic=null",
            "logger.tensorboard=null",
            "trainer.max_epochs=1",
        ],
    )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run)
        del cfg["hydra"]
    train(cfg)
    return run
