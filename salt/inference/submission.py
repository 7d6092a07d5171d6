"""Kaggle submission files: validated before writing, written atomically; their message."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from salt.core.errors import DataError, SaltError
from salt.core.files import write_text
from salt.core.rundir import RunDir, run_entries
from salt.data.padding import TILE_SHAPE
from salt.data.rle import rle_decode, rle_encode


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
    return write_text(path, text)


def submission_message(runs: Sequence[str | Path]) -> str:
    """A Kaggle submission message naming the experiments and their out-of-fold score; `runs`
    as `runs=` takes them (a multirun's folder is its runs)."""
    directories = [RunDir.of(entry) for entry in run_entries("runs", list(runs))]
    metrics = [m for m in (d.read_metrics() for d in directories) if m is not None]
    experiments = "+".join(sorted({str(m.get("experiment")) for m in metrics})) or "unknown"
    tuned = directories[0].read_postprocess()
    if tuned is not None:
        score = tuned["oof_score_after"]
    else:
        scores = [m["oof_best_score"] for m in metrics if m.get("oof_best_score") is not None]
        score = sum(scores) / len(scores) if scores else float("nan")
    return f"salt {experiments}: {len(directories)} run(s), OOF score {score:.4f}"
