"""Overlapping 101x101 tiles over a large 2-D section, blended strip by strip.

Tiles start every `stride` pixels from the top-left corner; the last row and column of tiles
run past the section's bottom and right edges into its mirror image (reflect-101, as the tiles
are padded to 128), so every pixel is covered and a section of exactly 101x101 is one tile.
Each tile's probabilities are weighted by a separable Hann window sampled at pixel centres: the
centre counts most and the edge pixels very little (~0.001) but not zero, so where tiles overlap
the blend changes smoothly instead of showing a seam, and where only one tile covers a pixel (the
section's border) its value is that tile's. (A floor under the window, a constant weight at the
edges, would bring the seams back: the weight would jump where a tile starts.)

Only one strip (one row of tiles) is in memory at a time: a buffer of 101 rows accumulates the
weighted probabilities, and the rows that no later strip reaches are handed to `emit`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from salt.data.padding import TILE


def check_stride(stride: int) -> None:
    """A ValueError unless tiles `stride` pixels apart overlap or touch."""
    if not 1 <= stride <= TILE:
        raise ValueError(
            f"stride must be in 1..{TILE} so that tiles overlap or touch, got {stride}"
        )


def tile_origins(length: int, stride: int) -> np.ndarray:
    """Where tiles start along an axis of `length` pixels: 0, stride, ... until one reaches the end."""
    count = 1 if length <= TILE else math.ceil((length - TILE) / stride) + 1
    return np.arange(count) * stride


def window() -> np.ndarray:
    """The 1-D blending weights over a tile: ~0.001 at the edges, 1 in the centre (Hann)."""
    return (np.sin(np.pi * (np.arange(TILE) + 0.5) / TILE) ** 2).astype(np.float32)


def reflect_index(index: np.ndarray, length: int) -> np.ndarray:
    """Indices into an axis of `length`, mirrored (reflect-101) where they run past its end."""
    if length == 1:
        return np.zeros_like(index)
    period = 2 * (length - 1)
    index = np.mod(index, period)
    return np.where(index < length, index, period - index)


def axis_weights(length: int, origins: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = np.zeros(int(origins[-1]) + TILE, dtype=np.float64)
    for origin in origins:
        total[origin : origin + TILE] += weights
    return total[:length]


def stitch(
    section: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    emit: Callable[[int, np.ndarray, np.ndarray], None],
    stride: int = 50,
    to_uint8: Callable[[np.ndarray], np.ndarray] | None = None,
) -> int:
    """Predict `section` (H, W) tile by tile and blend the tiles.

    `predict` maps uint8 tiles (N, 101, 101) to probabilities (N, 101, 101), or to a stack of
    them per tile, (N, V, 101, 101) (each of V views, e.g. TTA views, blended on its own);
    `to_uint8` scales rows of the section to uint8 (the section must be uint8 without it).
    `emit(top, image, probabilities)` receives consecutive finished rows from `top` down: their
    uint8 image, (rows, W), and blended float32 probabilities, (rows, W) or (V, rows, W).
    Returns the number of tiles predicted.
    """
    check_stride(stride)
    height, width = section.shape
    to_uint8 = to_uint8 or (lambda rows: np.asarray(rows, dtype=np.uint8))
    rows, columns = tile_origins(height, stride), tile_origins(width, stride)
    padded_width = int(columns[-1]) + TILE
    column_index = reflect_index(np.arange(padded_width), width)
    weights = window()
    tile_weight = np.outer(weights, weights)
    row_total = axis_weights(height, rows, weights)
    column_total = axis_weights(width, columns, weights)
    buffer: np.ndarray | None = None  # (..., TILE, padded_width): the views of the strip
    for number, top in enumerate(rows):
        row_index = reflect_index(np.arange(top, top + TILE), height)
        strip = to_uint8(np.asarray(section[row_index])[:, column_index])
        tiles = np.stack([strip[:, left : left + TILE] for left in columns])
        probabilities = predict(tiles)
        if buffer is None:
            buffer = np.zeros((*probabilities.shape[1:-2], TILE, padded_width), dtype=np.float32)
        for left, tile in zip(columns, probabilities):
            buffer[..., left : left + TILE] += tile * tile_weight
        finished = int(rows[number + 1] - top) if number + 1 < len(rows) else TILE
        finished = min(finished, height - int(top))
        if finished > 0:
            total = row_total[top : top + finished, None] * column_total[None, :]
            emit(
                int(top),
                strip[:finished, :width],
                (buffer[..., :finished, :width] / total).astype(np.float32),
            )
        buffer = np.roll(buffer, -finished, axis=-2)
        buffer[..., TILE - finished :, :] = 0
    return len(rows) * len(columns)
