"""The on-device data path: `BatchAugment`, `DeviceTileLoader` and `TGSDataModule(on_device=True)`."""

from __future__ import annotations

import math
from types import SimpleNamespace

import albumentations as A
import cv2
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, SequentialSampler

from salt.bench.syncs import HostSyncCounter
from salt.bench.throughput import time_epoch
from salt.core.errors import ConfigError, salt_error_in
from salt.data import device_loader
from salt.data.datamodule import SeededSampler, TGSDataModule
from salt.data.dataset import TileDataset
from salt.data.device_augment import BatchAugment, from_albumentations
from salt.data.device_loader import DeviceTileLoader, tiles_to_tensor
from tests.helpers.runs import train_smoke

NO_AUGMENT = dict(hflip_p=0, affine_p=0, brightness_contrast_p=0)


def blob_masks(n: int, size: int = 128, seed: int = 0) -> np.ndarray:
    """(n, size, size) uint8 {0, 1} masks: an off-centre disc and a bar each, all different."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for mask in masks:
        cy, cx = rng.integers(20, size - 20, 2)
        mask[(y - cy) ** 2 + (x - cx) ** 2 < rng.integers(10, 25) ** 2] = 1
        mask[rng.integers(0, size - 10) :][:8, : rng.integers(30, size)] = 1
    return masks


def smooth_images(n: int, size: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = (rng.random((n, size, size)) * 255).astype(np.uint8)
    return np.stack([cv2.GaussianBlur(image, (9, 9), 3) for image in noise])


def index_tiles(n: int) -> torch.Tensor:
    """(n, 1, 101, 101) uint8 tiles whose every pixel is the tile's index."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 101, 101).contiguous()


def decoded_indices(loader: DeviceTileLoader) -> list[int]:
    """The tile indices of a loader over `index_tiles` with mean 0, std 1 and no augmentation."""
    return [int(v) for images, _ in loader for v in (images[:, 0, 0, 0] * 255).round().long()]


def seeded_loader(epoch: int, seed: int = 3, one_tile: bool = False, **options):
    """An augmented loader over 12 tiles (12 copies of one tile: only the augmentation varies)."""
    masks = torch.from_numpy(blob_masks(1 if one_tile else 12, size=101))[:, None]
    images = tiles_to_tensor(smooth_images(1 if one_tile else 12, size=101))
    masks, images = masks.expand(12, -1, -1, -1), images.expand(12, -1, -1, -1)
    sampler = SeededSampler(range(12), seed=seed)
    sampler.set_epoch(epoch)
    return DeviceTileLoader(images, masks, sampler, batch_size=5, augment=BatchAugment(), **options)


# --- BatchAugment -------------------------------------------------------------------------------


def test_augment_keeps_masks_binary_and_aligned_with_the_images():
    masks = torch.from_numpy(blob_masks(16))[:, None].float()
    images = masks.clone()  # an image that is its mask times 255, scaled to 0..1
    generator = torch.Generator().manual_seed(0)
    augment = BatchAugment(affine_p=1.0, brightness_contrast_p=1.0)
    out_images, out_masks = augment(images, masks, generator=generator)

    assert out_masks.dtype == masks.dtype and set(out_masks.unique().tolist()) == {0.0, 1.0}
    changed = (out_masks != masks).flatten(1).float().mean(1)
    assert (changed > 0.001).all()  # every sample moved (affine p=1)
    agreement = ((out_images >= 0.5).float() == out_masks).float().mean()
    assert agreement > 0.995
    assert out_images.min() >= 0 and out_images.max() <= 1


def test_hflip_alone_is_an_exact_flip_and_nothing_is_the_identity():
    images = torch.from_numpy(smooth_images(4)).float()[:, None] / 255
    masks = torch.from_numpy(blob_masks(4))[:, None]
    flipped, flipped_masks = BatchAugment(**{**NO_AUGMENT, "hflip_p": 1.0})(images, masks)
    assert torch.equal(flipped, images.flip(-1)) and torch.equal(flipped_masks, masks.flip(-1))
    same, same_masks = BatchAugment(**NO_AUGMENT)(images, masks)
    assert torch.equal(same, images) and torch.equal(same_masks, masks)


def test_affine_matches_albumentations_and_brightness_contrast_its_formula():
    image = smooth_images(1)[0]
    fixed = dict(translate_percent=(0.0625, 0.0625), scale=(1.1, 1.1), rotate=(10, 10))
    augment = BatchAugment(hflip_p=0, affine_p=1, brightness_contrast_p=0, **fixed)
    ours = augment(torch.from_numpy(image).float()[None, None] / 255)[0][0, 0].numpy()
    reference = A.Affine(
        translate_percent={"x": fixed["translate_percent"], "y": fixed["translate_percent"]},
        scale=fixed["scale"],
        rotate=fixed["rotate"],
        border_mode=cv2.BORDER_REFLECT_101,
        p=1,
    )(image=image)["image"]
    difference = np.abs(ours - reference.astype(np.float32) / 255)
    assert difference.max() <= 1.5 / 255  # uint8 rounding of albumentations' output, borders too
    mirrored = BatchAugment(hflip_p=0, affine_p=1, brightness_contrast_p=0, rotate=(-10, -10))
    other_way = mirrored(torch.from_numpy(image).float()[None, None] / 255)[0][0, 0].numpy()
    assert np.abs(other_way - reference.astype(np.float32) / 255).mean() > 10 * difference.mean()

    x = torch.linspace(0, 1, 101).view(1, 1, 1, 101)
    adjusted, _ = BatchAugment(
        hflip_p=0,
        affine_p=0,
        brightness_contrast_p=1,
        brightness_limit=(0.1, 0.1),
        contrast_limit=(0.2, 0.2),
    )(x)
    assert torch.allclose(adjusted, (x * 1.2 + 0.1).clamp(0, 1), atol=1e-6)


def test_augment_draws_only_from_its_generator():
    images = torch.from_numpy(smooth_images(8)).float()[:, None] / 255
    augment = BatchAugment()
    torch.manual_seed(1)
    a = augment(images, generator=torch.Generator().manual_seed(5))[0]
    torch.manual_seed(2)
    b = augment(images, generator=torch.Generator().manual_seed(5))[0]
    c = augment(images, generator=torch.Generator().manual_seed(6))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- DeviceTileLoader ---------------------------------------------------------------------------


def test_loader_epochs_replay_from_seed_and_epoch_only():
    torch.manual_seed(0)
    first = list(seeded_loader(epoch=1))
    torch.manual_seed(123)  # the global RNG plays no part
    again = list(seeded_loader(epoch=1))
    assert len(first) == 3
    for (images_a, masks_a), (images_b, masks_b) in zip(first, again, strict=True):
        assert torch.equal(images_a, images_b) and torch.equal(masks_a, masks_b)
    other = list(seeded_loader(epoch=2))
    assert not torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in other]))
    reseeded = list(seeded_loader(epoch=1, seed=4))
    assert not torch.equal(first[0][0], reseeded[0][0])

    # one tile in every slot: batches differ by their augmentation only, sample by sample too
    epoch_1, epoch_2 = (next(iter(seeded_loader(e, one_tile=True)))[0] for e in (1, 2))
    assert not torch.equal(epoch_1, epoch_2)
    assert len({tuple(image.flatten()[:4000:97].tolist()) for image in epoch_1}) >= 3


def test_loader_without_augmentation_matches_the_cpu_dataset_exactly():
    images, masks = smooth_images(7, size=101), blob_masks(7, size=101, seed=1)
    dataset = TileDataset(images, masks, mean=0.47, std=0.16, channels=3)
    expected = list(DataLoader(dataset, batch_size=3))
    loader = DeviceTileLoader(
        tiles_to_tensor(dataset.images),
        tiles_to_tensor(dataset.masks),
        SequentialSampler(dataset),
        batch_size=3,
        mean=0.47,
        std=0.16,
        channels=3,
    )
    got = list(loader)
    assert len(got) == len(loader) == 3
    for (image, mask), (want_image, want_mask) in zip(got, expected, strict=True):
        assert image.dtype == mask.dtype == torch.float32
        assert image.shape == want_image.shape and mask.shape == want_mask.shape
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask)


def test_loader_length_follows_drop_last():
    tiles = index_tiles(10)
    options = dict(mean=0.0, std=1.0)
    kept = DeviceTileLoader(tiles, tiles, SequentialSampler(range(10)), 3, **options)
    dropped = DeviceTileLoader(tiles, tiles, SequentialSampler(range(10)), 3, True, **options)
    assert len(kept) == 4 and [len(b[0]) for b in kept] == [3, 3, 3, 1]
    assert len(dropped) == 3 and decoded_indices(dropped) == list(range(9))


def test_two_ranks_share_out_the_tiles_without_overlap():
    tiles = index_tiles(10)
    train = [
        decoded_indices(
            DeviceTileLoader(tiles, tiles, SeededSampler(range(10), 0, 2, rank), 2, mean=0, std=1)
        )
        for rank in (0, 1)
    ]
    assert len(train[0]) == len(train[1]) == 5
    assert not set(train[0]) & set(train[1]) and set(train[0]) | set(train[1]) == set(range(10))

    val_tiles = index_tiles(9)
    val = [
        decoded_indices(
            DeviceTileLoader(
                val_tiles,
                val_tiles,
                UnrepeatedDistributedSampler(range(9), num_replicas=2, rank=rank, shuffle=False),
                4,
                mean=0,
                std=1,
            )
        )
        for rank in (0, 1)
    ]
    assert sorted(val[0] + val[1]) == list(range(9))  # every tile once, none repeated


def test_an_augmented_epoch_never_waits_on_the_host():
    loader = seeded_loader(epoch=0)
    with HostSyncCounter() as syncs:
        batches = list(loader)
    assert len(batches) == 3 and syncs.total == 0, dict(syncs.by_kind)


def test_time_epoch_counts_the_timed_images():
    loader = seeded_loader(epoch=0)
    assert time_epoch(loader, warmup_batches=1) > 0
    with pytest.raises(ValueError, match="warmup_batches"):
        time_epoch(loader, warmup_batches=3)


# --- TGSDataModule ------------------------------------------------------------------------------


def test_datamodule_on_device_yields_the_cpu_batches_and_uploads_once(train_config):
    cfg = train_config("data.on_device=true", "data.batch_size=10", "data.val_batch_size=5")
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert isinstance(datamodule.device_transform, BatchAugment)
    cpu: TGSDataModule = instantiate(cfg.data, on_device=False)
    cpu.setup("fit")

    val, cpu_val = datamodule.val_dataloader(), cpu.val_dataloader()
    assert isinstance(val, DeviceTileLoader) and val.device == torch.device("cpu")
    assert len(val) == len(cpu_val) == math.ceil(len(datamodule.val_set) / 5)
    for (image, mask), (want_image, want_mask) in zip(val, cpu_val, strict=True):
        assert torch.equal(image, want_image) and torch.equal(mask, want_mask)

    train = datamodule.train_dataloader()
    assert isinstance(train.sampler, SeededSampler) and train.drop_last
    assert len(train) == len(cpu.train_dataloader()) == len(datamodule.train_set) // 10
    images, masks = next(iter(train))
    assert images.shape == (10, 1, 128, 128) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert datamodule.train_dataloader().images is train.images  # cached, not re-uploaded

    datamodule.batch_size = len(datamodule.train_set)  # the sampler no longer exceeds a batch
    assert len(datamodule.train_dataloader()) == 1 and not datamodule.train_dataloader().drop_last


def test_datamodule_on_device_without_transform_serves_plain_training_tiles(train_config):
    cfg = train_config("data.on_device=true", "data.train_transform=null")
    datamodule: TGSDataModule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.device_transform is None
    loader = datamodule.train_dataloader()
    order = [index for index, _ in loader.sampler]
    plain = torch.stack([datamodule.train_set[i][0] for i in order])
    assert torch.equal(torch.cat([b[0] for b in loader]), plain[: len(loader) * loader.batch_size])


def test_the_device_runs_the_one_augmentation_spec_and_follows_a_change_to_it(train_config):
    """No second spec: the device's augmentation is read from data.train_transform, so an
    override of the albumentations pipeline reaches it, a dropped transform is switched off."""
    datamodule: TGSDataModule = instantiate(train_config("data.on_device=true").data)
    _, affine, brightness = datamodule.train_transform.transforms
    ours = datamodule.device_transform
    assert isinstance(ours, BatchAugment)
    assert (ours.hflip_p, ours.affine_p, ours.brightness_contrast_p) == (0.5, 0.5, 0.5)
    assert ours.translate == affine.translate_percent["x"] and ours.rotate == affine.rotate
    assert ours.scale == affine.scale["x"] and ours.scale_y == affine.scale["y"]
    assert not ours.keep_ratio  # albumentations' Affine draws x and y scales apart
    assert ours.brightness == brightness.brightness_limit
    assert ours.contrast == brightness.contrast_limit

    changed = train_config(
        "data.on_device=true",
        "data.train_transform.transforms=[{_target_: albumentations.Affine, rotate: [-30, 30], "
        "border_mode: 4, p: 0.7}]",
    ).data
    ours = instantiate(changed).device_transform
    assert ours.rotate == (-30.0, 30.0) and ours.affine_p == 0.7
    assert ours.hflip_p == ours.brightness_contrast_p == 0.0  # not in the spec: not run


@pytest.mark.parametrize(
    "transform, refused",
    [
        ("{_target_: albumentations.GaussNoise}", "GaussNoise cannot run on the device"),
        (
            "{_target_: albumentations.Affine, shear: 5, border_mode: 4}",
            "Affine(shear=",
        ),
        ("{_target_: albumentations.Affine, border_mode: 0}", "Affine(border_mode=0)"),
    ],
)
def test_a_spec_the_device_cannot_run_is_refused_in_one_line(train_config, transform, refused):
    cfg = train_config("data.on_device=true", f"data.train_transform.transforms=[{transform}]")
    with pytest.raises(Exception) as raised:  # Hydra's InstantiationException around it
        instantiate(cfg.data)
    error = salt_error_in(raised.value)
    assert isinstance(error, ConfigError), raised.value
    assert str(error).startswith("data.train_transform: ") and "\n" not in str(error)
    assert refused in str(error)
    instantiate(cfg.data, on_device=False)  # the CPU path runs any albumentations pipeline


def fixed_affine(scale_x: float, scale_y: float) -> A.Affine:
    """albumentations' Affine with every parameter drawn from a range of one value."""
    return A.Affine(
        translate_percent={"x": (0.05, 0.05), "y": (0.05, 0.05)},
        scale={"x": (scale_x, scale_x), "y": (scale_y, scale_y)},
        rotate=(7, 7),
        border_mode=cv2.BORDER_REFLECT_101,
        p=1,
    )


def test_anisotropic_affine_from_the_spec_matches_albumentations():
    """albumentations' Affine draws the x and y scales apart (keep_ratio=False, its default):
    the device's warp with fixed factors 1.15 and 0.9 lands where albumentations' does."""
    image = smooth_images(1, size=101)[0]
    spec = A.Compose([fixed_affine(1.15, 0.9)])
    reference = spec(image=image)["image"].astype(np.float32) / 255
    ours = from_albumentations(spec)(torch.from_numpy(image).float()[None, None] / 255)[0]
    difference = np.abs(ours[0, 0].numpy() - reference)
    assert difference.max() <= 1.5 / 255
    swapped = fixed_affine(0.9, 1.15)(image=image)["image"].astype(np.float32) / 255
    assert np.abs(ours[0, 0].numpy() - swapped).mean() > 10 * difference.mean()


def test_pin_memory_auto_follows_the_root_device(synthetic_root):
    def loader(pin_memory, device: str | None) -> DataLoader:
        datamodule = TGSDataModule(root=str(synthetic_root), pin_memory=pin_memory)
        datamodule.setup("fit")
        if device == "cpu":
            datamodule.trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False)
        elif device is not None:  # a stand-in trainer: nothing is pinned until iterated
            datamodule.trainer = SimpleNamespace(
                strategy=SimpleNamespace(root_device=torch.device(device)),
                world_size=1,
                global_rank=0,
                current_epoch=0,
            )
        return datamodule.train_dataloader()

    assert loader(None, "cpu").pin_memory is False
    assert loader(None, None).pin_memory is False
    assert loader(None, "cuda").pin_memory is True
    assert loader(True, "cpu").pin_memory is True
    assert loader(False, "cuda").pin_memory is False


def test_smoke_training_on_device(synthetic_root, tmp_path, monkeypatch):
    batches = []
    original = device_loader.DeviceTileLoader._batch

    def counting(self, index, generator):
        batches.append(self.augment is not None)
        return original(self, index, generator)

    monkeypatch.setattr(device_loader.DeviceTileLoader, "_batch", counting)
    metrics = train_smoke(
        synthetic_root, tmp_path / "run", "data.on_device=true", "trainer.max_epochs=1"
    )
    assert metrics["best_val_score"] is not None and math.isfinite(metrics["best_val_score"])
    assert any(batches) and not all(batches)  # augmented training and plain validation batches
