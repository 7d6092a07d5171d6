"""Batches gathered from tiles that sit on the training device, augmented there.

The TGS train set is small enough (~3,200 uint8 tiles, ~33 MB) to live in GPU memory, so
a batch is one `index_select` and a vectorised `BatchAugment` on the device instead of
per-sample albumentations in CPU workers. `DeviceTileLoader` yields what a `DataLoader` over a
`TileDataset` yields for the same tiles (bit for bit without augmentation), on the device.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sized

import numpy as np
import torch

from salt.data.device_augment import BatchAugment
from salt.data.padding import pad_tiles


def tiles_to_tensor(tiles: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W) uint8 tiles (101x101, unpadded) as an (N, 1, H, W) uint8 tensor on `device`;
    (N, H, W, C) ones (masks with their labelled channel) as (N, C, H, W)."""
    tensor = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.uint8))
    tensor = tensor[:, None] if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2).contiguous()
    return tensor.to(device)


def batch_seed(keys: list, batch: int, rank: int = 0) -> int:
    """The augmentation seed of one batch: a function of its samples' seeds (`(index, seed)` keys
    from `SeededSampler`; plain index keys stand for themselves), its number and the rank."""
    seeds = [key[1] if isinstance(key, tuple) else key for key in keys]
    return int(np.random.SeedSequence([rank, batch, *seeds]).generate_state(1)[0])


class DeviceTileLoader:
    """An iterable of `(images, masks)` batches drawn from tiles held as tensors on one device.

    `images`: (N, 1, 101, 101) uint8 tiles; `masks`: (N, 1, 101, 101) {0, 1} (any dtype), or
    (N, 2, 101, 101) with their labelled channel (`salt.core.labels`), or None, on the same
    device. A batch is the sampler's next `batch_size` keys (indices, or
    `(index, seed)` from `SeededSampler`), gathered with one `index_select`, scaled to 0..1,
    augmented by `augment` (if any; its generator is seeded by `batch_seed`, so an epoch's batches
    depend only on what the sampler yields: with `SeededSampler`, on (seed, epoch, rank)),
    reflect-padded to 128 (`pad_tiles`), normalised `(x - mean) / std` and expanded to
    `channels`, exactly as `TileDataset` does (augmentation before padding). Yields float32
    `(images (B, channels, 128, 128), masks (B, 1 or 2, 128, 128))`, or `(images,)` without
    masks.
    `sampler` is kept as an attribute, so Lightning calls its `set_epoch` every epoch.
    """

    batch_sampler = None  # Lightning reads `batch_sampler` of anything that has a `sampler`

    def __init__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None,
        sampler: Iterable,
        batch_size: int,
        drop_last: bool = False,
        augment: BatchAugment | None = None,
        mean: float = 0.5,
        std: float = 0.25,
        channels: int = 1,
    ):
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"expected uint8 images (N, 1, H, W), got {images.dtype} {images.shape}"
            )
        if masks is not None and (
            masks.ndim != 4
            or masks.shape[1] not in (1, 2)
            or (masks.shape[0], *masks.shape[2:]) != (images.shape[0], *images.shape[2:])
            or masks.device != images.device
        ):
            raise ValueError("masks must be the images' tiles, 1 or 2 channels, on their device")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.images, self.masks = images, masks
        self.sampler = sampler
        self.batch_size, self.drop_last = batch_size, drop_last
        self.augment = augment
        self.mean, self.std, self.channels = mean, std, channels
        self._generator: torch.Generator | None = None

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> DeviceTileLoader:
        """The same loader (sampler shared) over tiles copied to `device`."""
        device = torch.device(device)
        return DeviceTileLoader(
            self.images.to(device),
            None if self.masks is None else self.masks.to(device),
            self.sampler,
            self.batch_size,
            self.drop_last,
            self.augment,
            self.mean,
            self.std,
            self.channels,
        )

    def __len__(self) -> int:
        n = len(self.sampler) if isinstance(self.sampler, Sized) else len(self.images)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _epoch_indices(self, keys: list) -> torch.Tensor:
        """The epoch's indices on the device: one (non-blocking, pinned on CUDA) copy."""
        indices = torch.tensor(
            [key[0] if isinstance(key, tuple) else key for key in keys], dtype=torch.long
        )
        if self.device.type == "cuda":
            indices = indices.pin_memory()
        return indices.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        keys = list(self.sampler)
        size = self.batch_size
        n_batches = len(keys) // size if self.drop_last else math.ceil(len(keys) / size)
        if n_batches == 0:
            return
        indices = self._epoch_indices(keys)
        rank = getattr(self.sampler, "rank", 0)
        for batch in range(n_batches):
            start, stop = batch * size, (batch + 1) * size
            generator = None
            if self.augment is not None:
                generator = self._seeded_generator(batch_seed(keys[start:stop], batch, rank))
            yield self._batch(indices[start:stop], generator)

    def _seeded_generator(self, seed: int) -> torch.Generator:
        if self._generator is None or self._generator.device != self.device:
            self._generator = torch.Generator(device=self.device)
        return self._generator.manual_seed(seed)

    def _batch(self, index: torch.Tensor, generator: torch.Generator | None):
        images = self.images.index_select(0, index).float() / 255
        masks = None if self.masks is None else self.masks.index_select(0, index).float()
        if self.augment is not None:
            images, masks = self.augment(images, masks, generator=generator)
        images = pad_tiles(images)
        masks = None if masks is None else pad_tiles(masks)
        images = ((images - self.mean) / self.std).expand(-1, self.channels, -1, -1).contiguous()
        return (images,) if masks is None else (images, masks)
