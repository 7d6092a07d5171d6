import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from salt.core.errors import ConfigError, DataError, salt_error_in
from salt.data.datamodule import TGSDataModule
from salt.data.dataset import TileDataset
from salt.data.padding import PAD_BEFORE, crop_tile, pad_tile, pad_tiles


def test_padding_reflects_and_crop_inverts_it():
    tile = np.arange(101 * 101, dtype=np.float32).reshape(101, 101)
    padded = pad_tile(tile)
    assert padded.shape == (128, 128)
    assert np.array_equal(crop_tile(padded), tile)
    inner = slice(PAD_BEFORE, PAD_BEFORE + 101)
    assert np.array_equal(padded[PAD_BEFORE - 1, inner], tile[1])  # reflection, edge not repeated
    assert np.array_equal(padded[-1, inner], tile[-15])
    assert np.array_equal(padded[inner, 0], tile[:, PAD_BEFORE])
    assert torch.equal(
        crop_tile(torch.from_numpy(padded)[None, None]), torch.from_numpy(tile)[None, None]
    )
    with pytest.raises(ValueError, match="expected a 128x128"):
        crop_tile(np.zeros((64, 64)))


def test_dataset_items_are_normalised_padded_tensors():
    images = np.full((2, 101, 101), 255, dtype=np.uint8)
    masks = np.zeros((2, 101, 101), dtype=np.uint8)
    masks[1, :10] = 1
    dataset = TileDataset(images, masks, mean=0.5, std=0.25, channels=3)
    image, mask = dataset[1]
    assert image.shape == (3, 128, 128) and mask.shape == (1, 128, 128)
    assert torch.allclose(image, torch.full_like(image, 2.0))
    assert crop_tile(mask).sum() == 10 * 101
    assert TileDataset(images)[0][0].shape == (1, 128, 128) and len(TileDataset(images)[0]) == 1


def test_transforms_see_the_tile_before_it_is_padded():
    """A flip of the 101x101 tile, then the padding: the tile stays where crop_tile looks for it
    (a flip of the padded tile would move it one pixel, as the padding is 13 before, 14 after)."""
    import albumentations as A

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (1, 101, 101), dtype=np.uint8)
    masks = (images > 128).astype(np.uint8)
    seen: list[tuple] = []

    def flip(image, mask):
        seen.append(image.shape)
        return A.HorizontalFlip(p=1)(image=image, mask=mask)

    image, mask = TileDataset(images, masks, flip, mean=0.0, std=1.0)[0]
    assert seen == [(101, 101)]
    assert np.array_equal(crop_tile(mask[0]).numpy(), masks[0, :, ::-1])
    assert np.allclose(crop_tile(image[0]).numpy() * 255, images[0, :, ::-1], atol=1e-3)


def test_datamodule_splits_one_fold_and_augments_only_training(train_config, tmp_path):
    cfg = train_config("data.fold=1")
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    train_ids, val_ids = set(datamodule.train_tiles.ids), set(datamodule.val_tiles.ids)
    assert not train_ids & val_ids and len(train_ids | val_ids) == 60
    assert (tmp_path / "run" / "folds.csv").is_file()

    images, masks = next(iter(datamodule.train_dataloader()))
    assert images.shape == (cfg.data.batch_size, 1, 128, 128) and masks.shape[1:] == (1, 128, 128)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}

    val_a = torch.cat([b[0] for b in datamodule.val_dataloader()])
    val_b = torch.cat([b[0] for b in datamodule.val_dataloader()])
    assert torch.equal(val_a, val_b)  # no augmentation for validation
    torch.manual_seed(0)
    train_a = [datamodule.train_set[i][0] for i in range(8)]
    plain = [
        datamodule.val_set.to_tensor(pad_tile(datamodule.train_set.images[i])) for i in range(8)
    ]
    assert any(not torch.equal(a, p) for a, p in zip(train_a, plain))


def test_datamodule_rejects_a_fold_out_of_range(synthetic_root):
    with pytest.raises(
        ConfigError, match=r"data.fold: must be in 0\.\.4 \(data.n_folds=5\), got 5"
    ):
        TGSDataModule(root=str(synthetic_root), fold=5)


def test_data_generated_with_another_style_is_not_trained_on(synthetic_root):
    """synthetic_root is generated with the default (seismic) style: data.synthetic asking for
    the same settings trains on it, asking for speckle tiles is refused naming the folder and
    the key, before any tile is read."""
    same = {"n_train": 60, "n_test": 10, "seed": 0}
    module = TGSDataModule(root=str(synthetic_root), synthetic=same)
    module.setup()
    assert len(module.train_tiles) + len(module.val_tiles) == 60
    other = TGSDataModule(root=str(synthetic_root), synthetic={**same, "style": "speckle"})
    with pytest.raises(
        DataError,
        match=r"generated with style=seismic \(synthetic.json\), but "
        r"data.synthetic asks for style=speckle: ",
    ) as error:
        other.setup()
    assert str(error.value).startswith(f"{synthetic_root}: ")
    assert other.train_tiles is None


def test_tensor_padding_matches_array_padding():
    tiles = np.random.default_rng(0).random((2, 101, 101)).astype(np.float32)
    padded = pad_tiles(torch.from_numpy(tiles)[:, None])
    assert torch.equal(padded[:, 0], torch.from_numpy(np.stack([pad_tile(t) for t in tiles])))


def test_a_training_fraction_keeps_the_validation_fold_and_the_coverage_spread(train_config):
    whole: TGSDataModule = instantiate(train_config().data)
    whole.setup("fit")
    quarter: TGSDataModule = instantiate(train_config("data.train_fraction=0.25", "seed=7").data)
    quarter.setup("fit")
    assert quarter.val_tiles.ids == whole.val_tiles.ids
    assert len(quarter.train_tiles) == round(0.25 * len(whole.train_tiles))
    assert set(quarter.train_tiles.ids) <= set(whole.train_tiles.ids)

    def coverage(tiles):
        return tiles.truth.reshape(len(tiles), -1).mean(axis=1)

    assert (
        abs(np.median(coverage(quarter.train_tiles)) - np.median(coverage(whole.train_tiles))) < 0.1
    )
    again: TGSDataModule = instantiate(train_config("data.train_fraction=0.25").data)
    again.setup("fit")
    assert again.train_tiles.ids == quarter.train_tiles.ids  # whatever the run's seed
    for bad in (0, 1.5):
        with pytest.raises(Exception) as raised:  # Hydra's InstantiationException around it
            instantiate(train_config(f"data.train_fraction={bad}").data)
        error = salt_error_in(raised.value)
        assert str(error) == f"data.train_fraction: must be in (0, 1], got {bad}"
