"""The post-processing search on out-of-fold probabilities (what `python -m salt.tune` runs; the
benchmarks score their arms with it too).

One setting at a time, each kept only if it raises the OOF score: the probability threshold,
the minimum component size, empty-mask gating (by predicted area, or by the classifier head when
the runs have one), then hole filling.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from salt.core.errors import SaltError
from salt.core.metrics import sweep_thresholds, tgs_score
from salt.core.rundir import OOF_ARRAYS, RunDir
from salt.inference.postprocess import PostProcess


def load_out_of_fold(runs: list[Path]) -> dict[str, np.ndarray]:
    """The runs' oof.npz files concatenated (e.g. the five folds of a multirun)."""
    parts = [RunDir(run).read_oof() for run in runs]
    with_salt = all("salt" in part for part in parts)
    merged = {key: np.concatenate([p[key] for p in parts]) for key in OOF_ARRAYS}
    if with_salt:
        merged["salt"] = np.concatenate([p["salt"] for p in parts])
    refuse_overlapping_ids(runs, [part["ids"] for part in parts])
    return merged


def refuse_overlapping_ids(runs: list[Path], ids: list[np.ndarray]) -> None:
    """A SaltError naming every two runs (`ids[i]` are run i's) that share out-of-fold ids, with
    the first few of those ids (runs of the same fold, or one run given twice), and a run that
    holds an id twice."""

    def some(shared: list) -> str:
        examples = ", ".join(map(repr, shared[:3])) + (", ..." if len(shared) > 3 else "")
        return f"{len(shared)} out-of-fold {'id' if len(shared) == 1 else 'ids'} ({examples})"

    problems = []
    for i, j in combinations(range(len(runs)), 2):
        shared = sorted(set(ids[i].tolist()) & set(ids[j].tolist()))
        if shared:
            problems.append(f"{runs[i]} and {runs[j]} share {some(shared)}")
    if problems:
        problems.append("pass runs of different folds")
    for run, run_ids in zip(runs, ids):
        values, counts = np.unique(run_ids, return_counts=True)
        if (counts > 1).any():
            problems.append(f"{run}/oof.npz holds {some(values[counts > 1].tolist())} twice")
    if problems:
        raise SaltError(f"out-of-fold ids overlap: {'; '.join(problems)}")


def oof_score(postprocess: PostProcess, oof: dict[str, np.ndarray]) -> float:
    masks = postprocess(oof["probabilities"], oof.get("salt"))
    return float(tgs_score(masks, oof["masks"]))


def best_of(
    candidates: list[PostProcess], oof: dict[str, np.ndarray], current: tuple[PostProcess, float]
):
    best, best_score = current
    for candidate in candidates:
        score = oof_score(candidate, oof)
        if score > best_score + 1e-9:
            best, best_score = candidate, score
    return best, best_score


def tune(oof: dict[str, np.ndarray], cfg: DictConfig) -> tuple[PostProcess, float, float]:
    """(best post-processing, OOF score before (threshold 0.5, nothing else), OOF score after)."""
    before = oof_score(PostProcess(), oof)
    # the swept threshold too is kept only if it raises the score (its argmax picks the lowest of
    # tied thresholds, which would move the threshold from 0.5 for nothing)
    threshold, _, _ = sweep_thresholds(oof["probabilities"], oof["masks"])
    current = best_of([PostProcess(threshold=threshold)], oof, (PostProcess(), before))
    base = current[0]
    current = best_of([replace(base, min_size=s) for s in cfg.min_sizes if s], oof, current)
    base = current[0]
    gates = [replace(base, gate="area", min_area=a) for a in cfg.min_areas]
    if "salt" in oof:
        gates += [replace(base, gate="classifier", salt_threshold=t) for t in cfg.salt_thresholds]
    current = best_of(gates, oof, current)
    current = best_of([replace(current[0], fill_holes=True)], oof, current)
    return current[0], before, current[1]


def save_tuned(
    runs: list[Path], postprocess: PostProcess, before: float, after: float, n: int
) -> None:
    payload = {
        "postprocess": postprocess.as_dict(),
        "oof_score_before": before,
        "oof_score_after": after,
        "oof_images": n,
        "runs": [str(r) for r in runs],
    }
    for run in runs:
        RunDir(run).write_postprocess(payload)
