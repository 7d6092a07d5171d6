"""Tiles labelled in part (train/labelled, from painted lines): read, carried beside the masks
through both data paths and their augmentations, and trained on."""

import shutil

import cv2
import numpy as np
import pytest
import torch

from salt.core.errors import DataError
from salt.core.rundir import RunDir
from salt.data.datamodule import TGSDataModule
from salt.data.io import load_train
from salt.data.padding import crop_tile
from tests.helpers.runs import train_smoke

LABELLED_COLUMNS = 60  # the left 60 columns of every tile are labelled, the rest not


@pytest.fixture(scope="module")
def painted_root(tmp_path_factory, synthetic_root):
    """The synthetic tiles, each labelled on its left 60 columns only."""
    root = tmp_path_factory.mktemp("painted") / "data"
    shutil.copytree(synthetic_root, root)
    folder = root / "train" / "labelled"
    folder.mkdir()
    labelled = np.zeros((101, 101), np.uint8)
    labelled[:, :LABELLED_COLUMNS] = 255
    for image in (root / "train" / "images").glob("*.png"):
        cv2.imwrite(str(folder / image.name), labelled)
    return root


def test_the_labelled_masks_are_read_beside_the_masks(painted_root, synthetic_root):
    tiles = load_train(painted_root)
    assert tiles.labelled is not None and tiles.labelled.shape == tiles.images.shape
    assert (tiles.labelled[:, :, :LABELLED_COLUMNS] == 1).all()
    assert (tiles.labelled[:, :, LABELLED_COLUMNS:] == 0).all()
    assert load_train(synthetic_root).labelled is None
    assert tiles.subset([2, 0]).labelled.shape == (2, 101, 101)


def test_a_tile_without_its_labelled_mask_is_refused_naming_it(painted_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(painted_root, root)
    missing = sorted((root / "train" / "labelled").glob("*.png"))[3]
    missing.unlink()
    with pytest.raises(DataError, match=rf"id '{missing.stem}' has no labelled mask"):
        load_train(root)


@pytest.mark.parametrize("on_device", [False, True])
def test_both_data_paths_carry_the_labelled_channel_through_the_augmentations(
    painted_root, train_config, on_device
):
    from hydra.utils import instantiate

    cfg = train_config(f"data.root={painted_root}", f"data.on_device={on_device}")
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    train_batch = next(iter(datamodule.train_dataloader()))
    val_batch = next(iter(datamodule.val_dataloader()))
    for images, masks in (train_batch, val_batch):
        assert masks.shape == (len(images), 2, 128, 128)
        salt, labelled = masks[:, :1], masks[:, 1:]
        assert set(torch.unique(labelled).tolist()) <= {0.0, 1.0}
        assert (salt <= labelled).all()  # the channels moved together
    val_labelled = crop_tile(val_batch[1][:, 1])
    assert (val_labelled[:, :, :LABELLED_COLUMNS] == 1).all()
    assert (val_labelled[:, :, LABELLED_COLUMNS:] == 0).all()
    # the augmentations moved some tile's labelled part away from where it was
    train_labelled = crop_tile(train_batch[1][:, 1])
    assert (train_labelled[:, :, :LABELLED_COLUMNS] == 0).any()


def test_a_run_on_partly_labelled_tiles_trains_and_scores_the_labelled_pixels(
    painted_root, tmp_path
):
    metrics = train_smoke(painted_root, tmp_path / "run")
    assert np.isfinite(metrics["train_loss"])
    oof = RunDir(tmp_path / "run").read_oof()
    assert (oof["probabilities"][:, :, LABELLED_COLUMNS:] == 0).all()
    assert (oof["probabilities"][:, :, :LABELLED_COLUMNS] > 0).any()
