"""A picture of what the augmentation spec (`data.train_transform`) does to training tiles, on
the CPU path (albumentations, per tile) and on the on-device path (`BatchAugment`), side by
side, as the net receives them (padded to 128, the tile's square outlined)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from salt.analysis.plots import new_figure, overlay
from salt.data.dataset import TileDataset
from salt.data.device_augment import BatchAugment
from salt.data.device_loader import DeviceTileLoader, tiles_to_tensor
from salt.data.padding import PAD_BEFORE, TILE

Draw = tuple[np.ndarray, np.ndarray]  # a 128x128 uint8 image and its {0, 1} mask


def cpu_draws(image: np.ndarray, mask: np.ndarray, transform: Callable | None, seeds: list[int]):
    """The padded (image, mask) the CPU path makes of one tile, once per augmentation seed."""
    dataset = TileDataset(image[None], mask[None], transform, mean=0.0, std=1.0)
    return [_as_uint8(dataset[(0, seed)]) for seed in seeds]


def device_draws(image: np.ndarray, mask: np.ndarray, augment: BatchAugment, seeds: list[int]):
    """The same on the on-device path: one batch of copies of the tile, through the loader."""
    copies = len(seeds)
    loader = DeviceTileLoader(
        tiles_to_tensor(np.repeat(image[None], copies, 0)),
        tiles_to_tensor(np.repeat(mask[None], copies, 0)),
        [(0, seed) for seed in seeds],
        batch_size=copies,
        augment=augment,
        mean=0.0,
        std=1.0,
    )
    images, masks = next(iter(loader))
    return [_as_uint8((i, m)) for i, m in zip(images, masks, strict=True)]


def _as_uint8(item: tuple[torch.Tensor, torch.Tensor]) -> Draw:
    image, mask = item
    pixels = (image[0].numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return pixels, mask[0].numpy().astype(np.uint8)


def augmentation_grid(rows: list[tuple[str, list[tuple[str, Draw]]]]) -> Figure:
    """One row per tile: (row title, [(column title, draw), ...]); salt outlined in green, the
    101x101 tile's square in white (the rest is the reflected padding)."""
    columns = max(len(cells) for _, cells in rows)
    figure = new_figure(1.6 * columns, 1.75 * len(rows))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row, (title, cells) in enumerate(rows):
        for column in range(columns):
            ax = axes[row][column]
            ax.set_axis_off()
            if column >= len(cells):
                continue
            name, (image, mask) = cells[column]
            ax.imshow(overlay(image, mask), interpolation="nearest")
            square = Rectangle((PAD_BEFORE - 0.5, PAD_BEFORE - 0.5), TILE, TILE, fill=False)
            ax.add_patch(square)
            square.set(edgecolor="white", linewidth=0.6, linestyle=":")
            ax.set_title(f"{title}: {name}" if column == 0 else name, fontsize=7)
    return figure
