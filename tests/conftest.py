"""Shared fixtures: generated data in the Kaggle layout and the real Hydra config, shrunk."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from salt.data.synthetic import generate
from tests.helpers.runs import smoke_config, train_smoke


def pytest_configure(config) -> None:
    """Under pytest-xdist (`make test`: a worker per core) each worker and the processes its
    tests start use one CPU thread: two workers of two threads each would contend for two cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items) -> None:
    """The tests marked slow first (in their order): under `--dist worksteal` they start at once,
    and the run does not end with one long test on one worker while the other has nothing left."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small generated data set (60 train, 10 test tiles), shared read-only by the tests."""
    return generate(tmp_path_factory.mktemp("tgs"), n_train=60, n_test=10, seed=0)


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


@pytest.fixture(autouse=True)
def log_handlers_on_open_streams():
    """A StreamHandler made while a test captured stderr (Lightning makes its own when first
    imported) keeps that test's stream after it is closed: every later test in the same worker
    would then print a "Logging error" traceback on its stderr. Such handlers write to this
    test's stderr instead."""
    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it flushes the closed one
    yield
