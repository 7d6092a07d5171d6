"""Tiles as a torch Dataset: padded to the network input, normalised, augmented on the fly.

Used for training (by `salt.data.datamodule`) and for prediction (`salt.inference.tiles`), which
so needs no Lightning.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from salt.data.padding import pad_tile


def _seed_transform(transform: Callable, seed: int) -> None:
    if hasattr(transform, "set_random_seed"):  # albumentations >= 2 keeps its own generators
        transform.set_random_seed(seed)
    else:  # older albumentations draw from the global generators
        random.seed(seed)
        np.random.seed(seed)


class TileDataset(Dataset):
    """(image, mask) pairs of float32 tensors shaped (C, 128, 128) and (1, 128, 128), or
    (2, 128, 128) for masks (N, 101, 101, 2) of (salt, labelled) (`salt.core.labels`).

    `transform` is an albumentations pipeline applied to the 101x101 uint8 image and mask, before
    they are reflect-padded to 128 (so a geometric transform fills its borders from the tile
    itself, and the padding stays a mirror of the tile it sees). Without masks (test tiles) items
    are 1-tuples `(image,)`. An item is asked for by index, or by `(index, seed)` (from
    `SeededSampler`) to seed its augmentation.
    """

    def __init__(
        self,
        images: np.ndarray,
        masks: np.ndarray | None = None,
        transform: Callable | None = None,
        mean: float = 0.5,
        std: float = 0.25,
        channels: int = 1,
    ):
        self.images = images
        self.masks = masks
        self.transform = transform
        self.mean, self.std, self.channels = mean, std, channels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple[int, int]):
        index, seed = key if isinstance(key, tuple) else (key, None)
        image = self.images[index]
        mask = None if self.masks is None else self.masks[index]
        if self.transform is not None:
            if seed is not None:
                _seed_transform(self.transform, seed)
            augmented = self.transform(image=image, mask=image if mask is None else mask)
            image, mask = augmented["image"], (None if mask is None else augmented["mask"])
        image_tensor = self.to_tensor(pad_tile(np.ascontiguousarray(image)))
        if mask is None:
            return (image_tensor,)
        padded = torch.from_numpy(pad_tile(np.ascontiguousarray(mask)).astype(np.float32))
        return image_tensor, padded[None] if padded.ndim == 2 else padded.permute(2, 0, 1)

    def to_tensor(self, image: np.ndarray) -> torch.Tensor:
        scaled = (
            torch.from_numpy(np.ascontiguousarray(image)).float() / 255 - self.mean
        ) / self.std
        return scaled[None].expand(self.channels, -1, -1).contiguous()
