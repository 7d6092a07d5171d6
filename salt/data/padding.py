"""The one place that knows how 101x101 tiles sit inside the 128x128 network input."""

from __future__ import annotations

import cv2
import numpy as np

TILE = 101  # the competition's tiles are TILE x TILE
TILE_SHAPE = (TILE, TILE)
PADDED = 128  # the network input
PAD_BEFORE = 13
PAD_AFTER = PADDED - TILE - PAD_BEFORE  # 14


def pad_tile(array: np.ndarray) -> np.ndarray:
    """Reflect-pad a 2-D (H, W) tile from 101x101 to 128x128 (13 px before, 14 after)."""
    return cv2.copyMakeBorder(
        array, PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER, borderType=cv2.BORDER_REFLECT_101
    )


def crop_tile(x):
    """Crop the last two axes from 128 to the original 101 (torch tensor or numpy array)."""
    if x.shape[-1] == TILE and x.shape[-2] == TILE:
        return x
    if x.shape[-1] != PADDED or x.shape[-2] != PADDED:
        raise ValueError(f"expected a {PADDED}x{PADDED} or {TILE}x{TILE} map, got {tuple(x.shape)}")
    window = slice(PAD_BEFORE, PAD_BEFORE + TILE)
    return x[..., window, window]


def pad_tiles(x):
    """Reflect-pad a (N, C, 101, 101) tensor to 128x128 exactly as `pad_tile` does one array."""
    import torch.nn.functional as F

    return F.pad(x, (PAD_BEFORE, PAD_AFTER, PAD_BEFORE, PAD_AFTER), mode="reflect")
