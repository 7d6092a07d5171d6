"""Training with pseudo-labels (`data.pseudo`): they join the training batches only, never the
validation fold, its OOF or salt.tune; and the fine-tune stage (`finetune_from`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from salt.core.errors import ConfigError, SaltError
from salt.core.rundir import RunDir
from salt.data.datamodule import TGSDataModule
from salt.data.dataset import TileDataset
from salt.data.io import load_train
from salt.models.checkpoints import net_weights, read_checkpoint
from salt.pseudo import pseudo_label
from salt.train import compose, train
from tests.pseudo.test_pseudo_command import pseudo_config


class BatchRecorder(pl.Callback):
    """The images of every batch the module trains and validates on (added to a real run by
    `+callbacks.batches._target_=tests.pseudo.test_training.BatchRecorder`)."""

    def __init__(self) -> None:
        self.train: list[torch.Tensor] = []
        self.validation: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.train.append(batch[0].detach().cpu().clone())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, *_) -> None:
        self.validation.append(batch[0].detach().cpu().clone())


def tile_keys(images: np.ndarray, data) -> list[bytes]:
    """Each 101x101 tile as a batch of the `data` config holds it without augmentation."""
    dataset = TileDataset(images, mean=data.mean, std=data.std)
    return [dataset[index][0].numpy().tobytes() for index in range(len(dataset))]


def test_pseudo_tiles_train_but_never_validate(smoke_run, synthetic_root, tmp_path, train_config):
    """Without augmentation a batch holds the tiles themselves: each training batch holds the
    labelled tiles of the other folds and, at ratio 1, as many pseudo tiles; validation only
    the tiles of the run's fold, read from the data root and the labels on disk, not from the
    DataModule under test."""
    labels = pseudo_label(
        pseudo_config(
            smoke_run, synthetic_root, tmp_path / "labels", "pseudo.select=all", "tta=[none]"
        )
    )
    cfg = train_config(
        f"data.pseudo={labels}",
        "data.pseudo_ratio=1",
        "data.train_transform=null",
        "+callbacks.batches._target_=tests.pseudo.test_training.BatchRecorder",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",  # then the epoch's validation
        "plots=false",
    )
    metrics, objects = train(cfg)
    recorder = next(c for c in objects["trainer"].callbacks if isinstance(c, BatchRecorder))
    tiles = load_train(synthetic_root)
    folds = pd.read_csv(RunDir(smoke_run).path / "folds.csv", dtype={"id": str})
    fold_of = folds.set_index("id")["fold"]
    pseudo = load_train(labels / "fold_0")
    # which tile a batch image is: "val:ID", "train:ID" (the other folds) or "pseudo:ID"
    names = [f"{'val' if fold_of[i] == 0 else 'train'}:{i}" for i in tiles.ids]
    names += [f"pseudo:{i}" for i in pseudo.ids]
    tile_of = dict(zip(tile_keys(np.concatenate([tiles.images, pseudo.images]), cfg.data), names))
    assert len(tile_of) == 60 + 10

    def kinds(batch: torch.Tensor) -> list[str]:
        return [tile_of.get(image.numpy().tobytes(), "?:unknown") for image in batch]

    half = cfg.data.batch_size // 2
    assert len(recorder.train) == metrics["steps"] == 2
    for batch in map(kinds, recorder.train):
        counts = Counter(name.split(":")[0] for name in batch)
        assert counts == {"train": half, "pseudo": half}, batch  # ratio 1: half of every batch
    validated = sorted(name for batch in recorder.validation for name in kinds(batch))
    assert validated == sorted(name for name in names if name.startswith("val:"))
    oof_ids = set(RunDir(cfg.paths.output_dir).read_oof()["ids"])
    assert oof_ids == set(folds["id"][folds["fold"] == 0])
    assert RunDir(cfg.paths.output_dir).read_config()["data"]["pseudo"] == str(labels)


def test_finetune_starts_from_the_weights_of_a_run(smoke_run, train_config):
    module, *_ = compose(train_config(f"finetune_from={smoke_run}"))
    source = RunDir(smoke_run).checkpoint_files()[0]
    expected = net_weights(read_checkpoint(source))
    assert all(torch.equal(value, expected[key]) for key, value in module.net.state_dict().items())
    fresh, *_ = compose(train_config(output_dir=smoke_run.parent / "fresh"))
    assert not all(
        np.array_equal(value, expected[key]) for key, value in fresh.net.state_dict().items()
    )


def test_finetune_with_a_resumed_checkpoint_is_refused(smoke_run, train_config):
    checkpoint = smoke_run / "checkpoints" / "last.ckpt"
    with pytest.raises(SaltError, match="^finetune_from starts a new run from weights only"):
        compose(train_config(f"finetune_from={smoke_run}", f"ckpt_path={checkpoint}"))


@pytest.mark.parametrize("ratio", [0, -1, "half"])
def test_a_bad_pseudo_ratio_is_refused_by_name(synthetic_root, ratio):
    with pytest.raises(ConfigError, match="^data.pseudo_ratio: must be a number above 0"):
        TGSDataModule(str(synthetic_root), pseudo="labels", pseudo_ratio=ratio)
