"""The LightningDataModule: every tile in memory, augmented on the fly, reflect-padded to 128."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler, SequentialSampler

from salt.core.checks import positive_number, whole_number
from salt.core.errors import ConfigError
from salt.core.labels import stack_labelled
from salt.data.dataset import TileDataset
from salt.data.device_augment import BatchAugment, from_albumentations
from salt.data.device_loader import DeviceTileLoader, tiles_to_tensor
from salt.data.folds import load_or_make_folds, make_folds
from salt.data.io import TileSet, load_train
from salt.data.lineage import split_fingerprint
from salt.data.pseudo import PseudoFolder
from salt.data.samplers import MixedSampler, SeededSampler
from salt.data.synthetic_seismic import STYLES

# SeededSampler moved to salt.data.samplers; importers of it from here keep working
__all__ = ["MixedSampler", "SeededSampler", "TGSDataModule"]


SYNTHETIC_OPTIONS = ("n_train", "n_test", "seed", "style")


def check_settings(
    fold: Any,
    n_folds: Any,
    batch_size: Any,
    val_batch_size: Any,
    num_workers: Any,
    std: Any,
    synthetic: Any,
    pseudo: Any = None,
    pseudo_ratio: Any = 0.5,
    train_fraction: Any = 1.0,
) -> None:
    """The data keys that would otherwise fail deep inside a loader or the split, by name."""
    whole_number("data.n_folds", n_folds, 2)
    if not (
        isinstance(train_fraction, int | float)
        and not isinstance(train_fraction, bool)
        and 0 < train_fraction <= 1
    ):
        raise ConfigError("data.train_fraction", f"must be in (0, 1], got {train_fraction!r}")
    if not (isinstance(fold, int) and not isinstance(fold, bool) and 0 <= fold < n_folds):
        raise ConfigError(
            "data.fold", f"must be in 0..{n_folds - 1} (data.n_folds={n_folds}), got {fold!r}"
        )
    whole_number("data.batch_size", batch_size, 1)
    whole_number("data.val_batch_size", val_batch_size, 1, also=(None,))
    whole_number("data.num_workers", num_workers, 0)
    positive_number("data.std", std)
    if pseudo:
        positive_number("data.pseudo_ratio", pseudo_ratio)
    if synthetic:
        if not hasattr(synthetic, "items"):
            raise ConfigError(
                "data.synthetic", f"expected {{n_train: N, n_test: M, seed: S}}, got {synthetic!r}"
            )
        for key, value in synthetic.items():
            if key not in SYNTHETIC_OPTIONS:
                raise ConfigError(
                    "data.synthetic",
                    f"unknown option {key!r} (choose from {', '.join(SYNTHETIC_OPTIONS)})",
                )
            if key == "style":
                if value not in STYLES:
                    raise ConfigError(
                        "data.synthetic.style",
                        f"choose from {', '.join(STYLES)}, got {value!r}",
                    )
                continue
            whole_number(f"data.synthetic.{key}", value, 0 if key != "n_train" else 1)


def spread_over_coverage(masks: np.ndarray, fraction: float, indices: np.ndarray) -> np.ndarray:
    """`fraction` of `indices` (at least one), spread evenly over the salt coverage of their
    `masks`: the same subset for every run of a split, whatever its seed, with the share of
    empty tiles and the spread of coverage of the whole."""
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    ordered = indices[np.argsort(coverage, kind="stable")]
    count = max(1, round(fraction * len(indices)))
    return np.sort(ordered[np.linspace(0, len(ordered) - 1, count).round().astype(int)])


class TGSDataModule(pl.LightningDataModule):
    """Train/validation split of one fold of a Kaggle-layout data root, and its test tiles.

    `batch_size` is per device. The fold file (`folds_csv`) is written on first use and reused,
    so every fold of a run sees the same split. `seed` fixes the order and the augmentations of
    every training epoch (see `SeededSampler`).

    `pseudo`: a pseudo-label folder (`python -m salt.pseudo`) whose tiles join the training set
    only (never the validation fold, so never the OOF nor `salt.tune`), `pseudo_ratio` pseudo
    tiles per labelled tile in every batch (`MixedSampler`); clean labels only when no net
    behind them trained on this split's fold (`PseudoFolder.check_honest`).

    Tiles that know their masks in part (a train/labelled folder: tiles from painted lines)
    carry a second mask channel, where they are labelled (`salt.core.labels`), to the loss and
    the metric, which learn and score on the labelled pixels only.

    `train_fraction` < 1 trains on that share of the training folds, spread over salt coverage
    (the same tiles whatever the seed; the validation fold stays whole): learning curves.
    `train_on_validation`: the validation fold trains too (its score is then a training score):
    for a few painted lines, where no tile can be spared and neighbouring tiles overlap anyway.

    `train_transform` is the one augmentation spec, an albumentations pipeline applied to the
    101x101 tile before it is padded. `on_device`: the train/validation tiles are copied once to
    the trainer's root device and batches are gathered and augmented there (`DeviceTileLoader`),
    by the same spec run batch-wise (`from_albumentations`: a transform it cannot run is refused
    here, in one line); for a GPU and a small data set like this one. `pin_memory=None` pins
    host batches exactly when the root device is CUDA.
    """

    def __init__(
        self,
        root: str,
        fold: int = 0,
        n_folds: int = 5,
        fold_seed: int = 42,
        folds_csv: str | None = None,
        batch_size: int = 32,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool = False,
        train_transform: Callable | None = None,
        mean: float = 0.5,
        std: float = 0.25,
        channels: int = 1,
        synthetic: dict | None = None,
        seed: int = 0,
        on_device: bool = False,
        pseudo: str | None = None,
        pseudo_ratio: float = 0.5,
        train_fraction: float = 1.0,
        train_on_validation: bool = False,
    ):
        super().__init__()
        check_settings(
            fold,
            n_folds,
            batch_size,
            val_batch_size,
            num_workers,
            std,
            synthetic,
            pseudo,
            pseudo_ratio,
            train_fraction,
        )
        self.train_fraction = float(train_fraction)
        self.train_on_validation = bool(train_on_validation)
        self.root = Path(root)
        self.fold, self.n_folds, self.fold_seed = fold, n_folds, fold_seed
        self.folds_csv = Path(folds_csv) if folds_csv else None
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.loader_options = dict(
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers and num_workers > 0,
        )
        self.train_transform = train_transform
        self.on_device = on_device
        self.device_transform: BatchAugment | None = None
        if on_device and train_transform is not None:
            self.device_transform = from_albumentations(train_transform, "data.train_transform")
        self._device_tiles: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.tile_options: dict[str, Any] = dict(mean=mean, std=std, channels=channels)
        self.synthetic = synthetic
        self.seed = seed
        self.pseudo = PseudoFolder(pseudo) if pseudo else None
        self.pseudo_ratio = pseudo_ratio
        self.pseudo_tiles: TileSet | None = None
        self.train_tiles: TileSet | None = None
        self.val_tiles: TileSet | None = None

    def prepare_data(self) -> None:
        if self.synthetic:  # generated on first use; a set generated with other settings: refused
            from salt.data.synthetic import generate_into_new_folder

            generate_into_new_folder(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if self.train_tiles is not None:
            return
        if self.synthetic:
            self.prepare_data()  # a process that skipped prepare_data (e.g. a test calling setup)
        tiles = load_train(self.root)
        if len(tiles.ids) < self.n_folds:
            raise ConfigError(
                "data.n_folds",
                f"cannot split the {len(tiles.ids)} images of {self.root} into {self.n_folds} folds",
            )
        if self.folds_csv is None:
            folds = make_folds(tiles.ids, tiles.truth, self.n_folds, self.fold_seed)
        else:
            folds = load_or_make_folds(
                self.folds_csv, tiles.ids, tiles.truth, self.n_folds, self.fold_seed
            )
        in_val = folds["fold"].to_numpy() == self.fold
        training = np.arange(len(in_val)) if self.train_on_validation else np.flatnonzero(~in_val)
        if self.train_fraction < 1:
            training = spread_over_coverage(tiles.truth[training], self.train_fraction, training)
        self.train_tiles = tiles.subset(training)
        self.val_tiles = tiles.subset(np.flatnonzero(in_val))
        images, masks = self.train_tiles.images, self.train_tiles.truth
        labelled = self.train_tiles.labelled
        if self.pseudo is not None:
            split = split_fingerprint(folds["id"], folds["fold"])
            self.pseudo_tiles = self.pseudo.load(self.fold, tiles.ids, split)
            images = np.concatenate([images, self.pseudo_tiles.images])
            masks = np.concatenate([masks, self.pseudo_tiles.truth])
            if labelled is not None:  # a pseudo tile is labelled everywhere
                labelled = np.concatenate([labelled, np.ones_like(self.pseudo_tiles.truth)])
        self.train_set = TileDataset(
            images, stack_labelled(masks, labelled), self.train_transform, **self.tile_options
        )
        val_masks = stack_labelled(self.val_tiles.truth, self.val_tiles.labelled)
        self.val_set = TileDataset(self.val_tiles.images, val_masks, **self.tile_options)

    @property
    def root_device(self) -> torch.device:
        """The trainer's root device; the CPU without a trainer."""
        if self.trainer is None:
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    def _loader_options(self) -> dict:
        options = dict(self.loader_options)
        if options["pin_memory"] is None:
            options["pin_memory"] = self.root_device.type == "cuda"
        return options

    def device_tiles(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, masks) of the "train" or "val" set as (N, 1, 101, 101) uint8 tensors (masks
        (N, 2, 101, 101) with their labelled channel) on the root device, copied there once and
        cached."""
        device = self.root_device
        cached = self._device_tiles.get(split)
        if cached is None or cached[0].device != device:
            dataset = {"train": self.train_set, "val": self.val_set}[split]
            if dataset.masks is None:
                raise ValueError(f"the {split} set has no masks")
            cached = (
                tiles_to_tensor(dataset.images, device),
                tiles_to_tensor(dataset.masks, device),
            )
            self._device_tiles[split] = cached
        return cached

    def _device_loader(self, split, sampler, batch_size, drop_last, augment) -> DeviceTileLoader:
        images, masks = self.device_tiles(split)
        return DeviceTileLoader(
            images, masks, sampler, batch_size, drop_last, augment, **self.tile_options
        )

    def train_dataloader(self) -> DataLoader | DeviceTileLoader:
        trainer = self.trainer
        ranks = dict(
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        sampler: SeededSampler
        if self.pseudo_tiles is not None:
            assert self.train_tiles is not None  # set up with the pseudo tiles
            labelled = len(self.train_tiles)
            sampler = MixedSampler(
                self.train_set, labelled, self.pseudo_ratio, seed=self.seed, **ranks
            )
        else:
            sampler = SeededSampler(self.train_set, seed=self.seed, **ranks)
        sampler.set_epoch(trainer.current_epoch if trainer else 0)
        drop_last = len(sampler) > self.batch_size
        if self.on_device:
            return self._device_loader(
                "train", sampler, self.batch_size, drop_last, self.device_transform
            )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=drop_last,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader | DeviceTileLoader:
        sampler: Sampler | None = None
        if self.trainer is not None and self.trainer.world_size > 1:
            # Lightning's default sampler repeats samples to even out the ranks, which would
            # count some validation images twice in the score.
            sampler = UnrepeatedDistributedSampler(
                self.val_set,
                num_replicas=self.trainer.world_size,
                rank=self.trainer.global_rank,
                shuffle=False,
            )
        if self.on_device:
            if sampler is None:
                sampler = SequentialSampler(self.val_set)
            return self._device_loader("val", sampler, self.val_batch_size, False, None)
        return DataLoader(
            self.val_set, batch_size=self.val_batch_size, sampler=sampler, **self._loader_options()
        )
