"""A CSV logger that continues the metrics file of a resumed run instead of deleting it, and the
run's settings (the resolved config, flattened) for every logger: TensorBoard's HPARAMS tab,
MLflow's params and W&B's config show the encoder, learning rate, fold, loss, ..."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from salt.training.lightning_private import CSVLoggerBase, ExperimentWriterBase


class AppendingWriter(ExperimentWriterBase):
    def check_log_dir(self) -> None:
        # Lightning deletes an existing metrics.csv here; keep it and continue with its columns
        if self.filesystem.isfile(self.metrics_file_path):
            with self.filesystem.open(self.metrics_file_path, "r", newline="") as handle:
                self.metrics_keys = list(csv.DictReader(handle).fieldnames or [])


class AppendingCSVLogger(CSVLoggerBase):
    """`CSVLogger` whose `metrics.csv` is appended to when it exists (see `salt.training.resume`)."""

    writer_class = AppendingWriter


# the validation metrics TensorBoard's HPARAMS tab shows beside each run's settings
HPARAMS_METRICS = ("val/score", "val/best_score", "val/loss")


def flat_config(cfg: DictConfig | Mapping) -> dict[str, Any]:
    """The resolved config as {"model.encoder_name": "resnet34", "optim.lr": 0.01, ...}: plain
    values; lists, None and other values as their text."""
    tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, Any] = {}

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                visit(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, bool | int | float | str):
            flat[prefix] = node
        else:
            flat[prefix] = str(node)

    visit(tree, "")
    return flat


def log_config(loggers: Iterable[Logger], cfg: DictConfig) -> dict[str, Any]:
    """Log the flattened resolved config to every logger (each logs on rank zero only)."""
    params = flat_config(cfg)
    for logger in loggers:
        logger.log_hyperparams(params)
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, params)
    return params


@rank_zero_only
def _tensorboard_hparams(logger: TensorBoardLogger, params: dict[str, Any]) -> None:
    """The HPARAMS tab's summaries. Lightning writes them only with a metric value to log now
    (`default_hp_metric`, a placeholder -1); here the tab reads the run's own validation
    metrics instead, and no placeholder is logged."""
    from torch.utils.tensorboard.summary import hparams

    # hparams() takes only the metrics' names from the dict: the values come from the scalars
    summaries = hparams(params, dict.fromkeys(HPARAMS_METRICS, 0.0))
    writer = logger.experiment._get_file_writer()
    for summary in summaries:
        writer.add_summary(summary)
    writer.flush()
