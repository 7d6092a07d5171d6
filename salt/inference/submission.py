"""Kaggle submission files: validated before writing, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from salt.core.errors import DataError, SaltError
from salt.data.rle import TILE_SHAPE, rle_decode, rle_encode


def check_submission_rows(
    path, ids: Sequence[str], rles: Sequence[str], expected_ids: Sequence[str]
) -> None:
    """Every expected id exactly once, in order, and every RLE valid for a 101x101 tile."""
    seen: set[str] = set()
    for tile_id in ids:
        if tile_id in seen:
            raise DataError(path, f"id {tile_id!r} appears more than once")
        seen.add(tile_id)
    missing = [tile_id for tile_id in expected_ids if tile_id not in seen]
    if missing:
        raise DataError(
            path, f"{len(missing)} id(s) of sample_submission.csv missing, e.g. {missing[0]!r}"
        )
    extra = [tile_id for tile_id in ids if tile_id not in set(expected_ids)]
    if extra:
        raise DataError(path, f"id {extra[0]!r} is not in sample_submission.csv")
    for tile_id, rle in zip(ids, rles):
        rle_decode(rle, TILE_SHAPE, source=f"{path} (id {tile_id})")


def write_submission(
    path, ids: Sequence[str], masks: np.ndarray, expected_ids: Sequence[str]
) -> Path:
    """Write `id,rle_mask` rows in the order of `expected_ids`; nothing is left on failure."""
    path = Path(path)
    if len(ids) != len(masks):
        raise ValueError(f"{len(ids)} ids but {len(masks)} masks")
    rles = [rle_encode(mask) for mask in masks]
    check_submission_rows(path, list(ids), rles, expected_ids)
    rle_of = dict(zip(ids, rles))
    if not path.parent.is_dir():
        raise SaltError(f"{path}: output folder {path.parent} does not exist")
    text = "id,rle_mask\n" + "".join(f"{i},{rle_of[i]}\n" for i in expected_ids)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise SaltError(f"{path}: cannot write in {path.parent} ({error.strerror})") from None
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as error:
        Path(tmp_name).unlink(missing_ok=True)
        raise SaltError(f"{path}: could not be written ({error.strerror})") from None
    return path
