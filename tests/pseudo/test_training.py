"""Training with pseudo-labels (`data.pseudo`): they join the training batches only, never the
validation fold, its OOF or salt.tune; and the fine-tune stage (`finetune_from`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from salt.core.errors import ConfigError, SaltError
from salt.core.rundir import RunDir
from salt.data.datamodule import TGSDataModule
from salt.data.samplers import MixedSampler
from salt.models.checkpoints import net_weights, read_checkpoint
from salt.pseudo import pseudo_label
from salt.train import compose, train
from tests.pseudo.test_pseudo_command import pseudo_config


def test_pseudo_tiles_train_but_never_validate(smoke_run, synthetic_root, tmp_path, train_config):
    labels = pseudo_label(
        pseudo_config(smoke_run, synthetic_root, tmp_path / "labels", "pseudo.select=all")
    )
    cfg = train_config(
        f"data.pseudo={labels}", "data.pseudo_ratio=1", "trainer.max_steps=2", "plots=false"
    )
    metrics, objects = train(cfg)
    datamodule = objects["datamodule"]
    pseudo_ids = set(datamodule.pseudo_tiles.ids)
    assert len(pseudo_ids) == 10 and len(datamodule.train_set) == 48 + 10
    sampler = datamodule.train_dataloader().sampler
    assert isinstance(sampler, MixedSampler) and len(sampler) == 2 * 48
    batch = [index for index, _ in list(sampler)[: cfg.data.batch_size]]
    assert sum(index >= 48 for index in batch) == cfg.data.batch_size // 2
    run = RunDir(cfg.paths.output_dir)
    oof_ids = set(run.read_oof()["ids"])
    folds = pd.read_csv(run.path / "folds.csv", dtype={"id": str})
    assert oof_ids == set(folds["id"][folds["fold"] == 0]) and not oof_ids & pseudo_ids
    assert set(datamodule.val_tiles.ids) == oof_ids
    assert metrics["steps"] == 2 and run.read_config()["data"]["pseudo"] == str(labels)


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
