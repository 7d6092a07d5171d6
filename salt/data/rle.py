"""Run-length encoding exactly as Kaggle defines it for TGS.

Pixels are numbered from 1, top to bottom then left to right (column-major);
the string is space-separated `start length` pairs; an empty mask is "".
"""

from __future__ import annotations

import numpy as np

from salt.core.errors import DataError
from salt.data.padding import TILE_SHAPE


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary 2-D mask (any nonzero value is salt)."""
    pixels = (np.asarray(mask) != 0).T.reshape(-1).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], pixels, [0])))) + 1
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{start} {length}" for start, length in zip(starts, ends - starts))


def rle_decode(
    rle: str | float | None, shape: tuple[int, int] = TILE_SHAPE, source="rle"
) -> np.ndarray:
    """Decode an RLE string into a uint8 {0, 1} mask of `shape`.

    `source` names where the string came from (e.g. "train.csv, id 3f2a..") for errors.
    NaN/None (pandas' reading of an empty cell) is an empty mask.
    """
    height, width = shape
    mask = np.zeros(height * width, dtype=np.uint8)
    if rle is None or (isinstance(rle, float) and np.isnan(rle)):
        return mask.reshape(width, height).T
    tokens = str(rle).split()
    if len(tokens) % 2:
        raise DataError(source, f"odd number of RLE tokens ({len(tokens)})")
    try:
        numbers = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    except ValueError:
        raise DataError(
            source, f"RLE holds a token that is not an integer: {str(rle)[:40]!r}"
        ) from None
    previous_end = 1
    for start, length in numbers:
        if start < 1 or length < 1:
            raise DataError(
                source, f"RLE run '{start} {length}' must have start >= 1 and length >= 1"
            )
        if start + length - 1 > height * width:
            raise DataError(source, f"RLE run '{start} {length}' ends past pixel {height * width}")
        if start < previous_end:
            raise DataError(source, f"RLE run '{start} {length}' overlaps or is out of order")
        mask[start - 1 : start - 1 + length] = 1
        previous_end = start + length
    return mask.reshape(width, height).T.copy()
