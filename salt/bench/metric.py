"""Speed of the vectorised TGS metric against the per-image loop of the Kaggle kernels.

    python -m salt.bench.metric DATA_ROOT [--n 4000] [--repeats 5] [--seed 0]

The truth masks of DATA_ROOT (repeated to reach --n) are scored against predictions derived from
them: shifted, eroded, dilated, some emptied, false positives on some empty truths, so the
scores spread over the thresholds as a real model's do. Everything runs on the CPU at 101x101;
each time is the median of --repeats runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import TypeVar

import cv2
import numpy as np
import torch

from salt.core.errors import exit_on_salt_error
from salt.core.metrics import DEFAULT_SWEEP_THRESHOLDS, sweep_thresholds, tgs_score
from salt.data.io import load_train

T = TypeVar("T")


def load_masks(root, n: int) -> tuple[np.ndarray, int]:
    """(n truth masks, how many distinct ones the data holds), repeating the data if needed."""
    masks = load_train(root).truth
    repeats = -(-n // len(masks))
    return np.tile(masks, (repeats, 1, 1))[:n], len(masks)


def degrade(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible prediction of `mask`: kept, shifted, eroded, dilated or emptied."""
    kernel = np.ones((3, 3), np.uint8)
    choice = rng.random()
    if not mask.any():
        if choice < 0.2:  # a false positive on an empty tile
            mask = mask.copy()
            row, col = rng.integers(0, 90, size=2)
            mask[row : row + 8, col : col + 8] = 1
        return mask
    if choice < 0.1:
        return np.zeros_like(mask)
    if choice < 0.4:
        return np.roll(mask, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
    if choice < 0.7:
        return cv2.erode(mask, kernel, iterations=int(rng.integers(1, 4)))
    if choice < 0.9:
        return cv2.dilate(mask, kernel, iterations=int(rng.integers(1, 4)))
    return mask


def make_predictions(truths: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([degrade(mask, rng) for mask in truths])


def make_probabilities(predictions: np.ndarray, seed: int) -> np.ndarray:
    """Soft float32 maps whose 0.5 level set is roughly the prediction, with noise."""
    rng = np.random.default_rng(seed)
    blurred = np.stack([cv2.GaussianBlur(p.astype(np.float32), (7, 7), 2.0) for p in predictions])
    noise = rng.normal(0.0, 0.08, size=predictions.shape).astype(np.float32)
    return np.clip(blurred + noise, 0.0, 1.0)


def naive_kaggle_score(truths: np.ndarray, predictions: np.ndarray) -> float:
    """The per-image loop of the usual Kaggle kernel, float64 IoU against np.arange thresholds."""
    thresholds = np.arange(0.5, 1.0, 0.05)
    scores = []
    for truth, prediction in zip(truths, predictions, strict=True):
        truth, prediction = truth > 0, prediction > 0
        union = np.logical_or(truth, prediction).sum()
        if not truth.any():
            scores.append(float(not prediction.any()))
            continue
        iou = np.logical_and(truth, prediction).sum() / union
        scores.append(np.mean([iou > t for t in thresholds]))
    return float(np.mean(scores))


def naive_kaggle_sweep(
    truths: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """The loop above once per probability threshold."""
    return np.array([naive_kaggle_score(truths, probabilities > t) for t in thresholds])


def median_seconds(run: Callable[[], T], repeats: int) -> tuple[float, T]:
    """(median wall time of `repeats` runs after one warm-up run, the last result)."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m salt.bench.metric", description=__doc__)
    parser.add_argument("data_root", help="folder with the Kaggle layout (train.csv, train/masks)")
    parser.add_argument("--n", type=int, default=4000, help="number of masks scored")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeats < 1:
        parser.error("--n and --repeats must be at least 1")
    return args


def print_row(name: str, seconds: float, n: int, result: str) -> None:
    print(f"{name:<58} {seconds * 1000:>9.1f} {n / seconds:>12,.0f}  {result}")


def agreement(ours, reference) -> str:
    difference = float(np.max(np.abs(np.asarray(ours) - np.asarray(reference))))
    return "agree" if difference < 1e-6 else f"DISAGREE by {difference:.2e}"


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    truths, distinct = load_masks(args.data_root, args.n)
    predictions = make_predictions(truths, args.seed)
    probabilities = make_probabilities(predictions, args.seed)
    thresholds = DEFAULT_SWEEP_THRESHOLDS.numpy()
    n, repeats = len(truths), args.repeats

    naive_s, naive = median_seconds(lambda: naive_kaggle_score(truths, predictions), repeats)
    ours_s, ours = median_seconds(lambda: float(tgs_score(predictions, truths)), repeats)
    naive_sweep_s, naive_sweep = median_seconds(
        lambda: naive_kaggle_sweep(truths, probabilities, thresholds), repeats
    )
    sweep_s, (best_threshold, best_score, sweep_scores) = median_seconds(
        lambda: sweep_thresholds(probabilities, truths), repeats
    )

    print(
        f"TGS metric, {n} masks 101x101 ({distinct} distinct from {args.data_root}), CPU "
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    print(f"median of {repeats} runs after a warm-up\n")
    print(f"{'method':<58} {'ms':>9} {'masks/s':>12}  result")
    print_row("naive per-image numpy loop (Kaggle kernel)", naive_s, n, f"score {naive:.6f}")
    print_row("salt.core.metrics.tgs_score (vectorised)", ours_s, n, f"score {ours:.6f}")
    sweep_label = f"{len(thresholds)} thresholds {thresholds[0]:.2f}..{thresholds[-1]:.2f}"
    best = f"best {best_threshold:.2f}, score {best_score:.6f}"
    naive_best = int(np.argmax(naive_sweep))
    naive_best_text = f"best {thresholds[naive_best]:.2f}, score {naive_sweep[naive_best]:.6f}"
    print_row(f"naive loop per threshold, {sweep_label}", naive_sweep_s, n, naive_best_text)
    print_row(f"salt.core.metrics.sweep_thresholds, {sweep_label}", sweep_s, n, best)
    print(
        f"\nspeed-up over the loop: tgs_score {naive_s / ours_s:.1f}x "
        f"(scores {agreement(ours, naive)}), "
        f"sweep {naive_sweep_s / sweep_s:.1f}x (scores {agreement(sweep_scores, naive_sweep)})"
    )


if __name__ == "__main__":
    main()
