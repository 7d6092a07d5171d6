"""The TGS Salt Identification Challenge metric, vectorised over a batch of images.

Per image, with I and U the intersection and union pixel counts of prediction and truth:

    score = mean over t in {0.50, 0.55, ..., 0.95} of [I / U > t]

and an image whose truth and prediction are both empty (U == 0) scores 1. An empty truth with a
non-empty prediction, and a non-empty truth with an empty prediction, both have I == 0 < U and so
score 0. The dataset score is the mean over images.

Threshold boundaries: the comparison is strict (`iou > t`), as in Kaggle's description ("an IoU
above the threshold") and its reference kernels, and it is decided exactly, in integers, as
`20 * I > (10 + k) * U` for t = (10 + k) / 20. So an IoU of exactly 0.75 passes 0.50..0.70 and
not 0.75 (score 0.5), and an IoU of exactly 0.5 scores 0. Floating-point thresholds
(0.05 * k + 0.5 rounds to slightly above or below the nominal value depending on k and dtype)
would decide such ties arbitrarily; the integer form matches the float64 reference
`iou > np.arange(0.5, 1.0, 0.05)`, whose values all round up.

Masks are bool or {0, 1} tensors; any nonzero value is salt. Callers crop 128 -> 101 themselves
(`salt.data.padding.crop_tile`); any H, W is accepted.
"""

from __future__ import annotations

import numpy as np
import torch
import torchmetrics
from torch import Tensor

# IoU thresholds in twentieths: t = step / 20 for step in 10..19, i.e. 0.50, 0.55, ..., 0.95.
IOU_THRESHOLD_STEPS = torch.arange(10, 20)

DEFAULT_SWEEP_THRESHOLDS = torch.arange(15, 36) / 50  # probability thresholds 0.30, 0.32, ..., 0.70

# Pixels per chunk in the threshold sweep; its working memory is about 8 bytes per pixel.
SWEEP_CHUNK_PIXELS = 1 << 22


def _as_tensor(array) -> Tensor:
    """A tensor sharing memory with `array` where it can (read-only numpy arrays are copied)."""
    if isinstance(array, Tensor):
        return array
    array = np.ascontiguousarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _flat(array, name: str) -> Tensor:
    """(N, H, W) or (N, 1, H, W) as an (N, H*W) tensor of the same dtype."""
    array = _as_tensor(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W), got {tuple(array.shape)}")
    return array.reshape(len(array), -1)


def _flat_masks(masks, name: str) -> Tensor:
    """(N, H, W) or (N, 1, H, W) masks as an (N, H*W) bool tensor (nonzero is salt)."""
    masks = _flat(masks, name)
    return masks if masks.dtype == torch.bool else masks != 0


def _flat_probs(probs, name: str) -> Tensor:
    """(N, H, W) or (N, 1, H, W) probabilities as (N, H*W) float32 (all comparisons in float32)."""
    return _flat(probs, name).float()


def _check_same_shape(pred: Tensor, truth: Tensor) -> None:
    if pred.shape != truth.shape:
        raise ValueError(
            f"prediction and truth differ in shape: {tuple(pred.shape)} vs {tuple(truth.shape)} "
            "(flattened per image)"
        )


def _check_binary(masks: Tensor, name: str) -> None:
    # Probabilities passed by mistake would otherwise count as all-salt masks.
    if masks.is_floating_point() and ((masks != 0) & (masks != 1)).any():
        raise ValueError(f"{name} must hold only 0 and 1 (threshold probabilities first)")


def scores_from_counts(intersection: Tensor, union: Tensor) -> Tensor:
    """Per-image scores (float32, same shape) from integer intersection and union pixel counts."""
    steps = IOU_THRESHOLD_STEPS.to(intersection.device)
    hits = (20 * intersection[..., None] > steps * union[..., None]).sum(-1)
    return torch.where(union == 0, 1.0, hits.float() / len(steps))


def _intersection_union(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image intersection and union pixel counts (int64) of (N, P) masks; nonzero is salt."""
    if pred.device.type == "cpu" and truth.device.type == "cpu":
        return _intersection_union_packed(pred, truth)
    return _intersection_union_torch(pred, truth)


def _intersection_union_torch(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    pred = pred if pred.dtype == torch.bool else pred != 0
    truth = truth if truth.dtype == torch.bool else truth != 0
    # int32 sums are several times faster than the default int64 ones
    intersection = (pred & truth).sum(1, dtype=torch.int32).long()
    union = (pred | truth).sum(1, dtype=torch.int32).long()
    return intersection, union


def _intersection_union_packed(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """CPU counts from masks packed 8 pixels a byte, whose set bits are then counted.

    On the CPU torch's row sums are slower than even numpy's per-image loop; bit packing makes
    the counts several times faster than that loop.
    """
    pred_bits, truth_bits = _packed_rows(pred), _packed_rows(truth)
    intersection = _bit_counts(pred_bits & truth_bits).sum(1, dtype=np.int64)
    union = _bit_counts(pred_bits | truth_bits).sum(1, dtype=np.int64)
    return torch.from_numpy(intersection), torch.from_numpy(union)


def _packed_rows(masks: Tensor) -> np.ndarray:
    if masks.is_floating_point():  # np.packbits takes integers and bools only
        masks = masks != 0
    return np.packbits(masks.detach().numpy(), axis=1)  # nonzero -> bit 1


_BITS_IN_BYTE = np.array([bin(byte).count("1") for byte in range(256)], dtype=np.uint8)


def _bit_counts(packed: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(packed)
    return _BITS_IN_BYTE[packed]


def tgs_scores(pred, truth) -> Tensor:
    """Per-image TGS scores, shape (N,), of binary masks shaped (N, H, W) or (N, 1, H, W)."""
    pred, truth = _as_tensor(pred), _as_tensor(truth)
    _check_binary(pred, "pred")
    _check_binary(truth, "truth")
    pred, truth = _flat(pred, "pred"), _flat(truth, "truth")
    _check_same_shape(pred, truth)
    return scores_from_counts(*_intersection_union(pred, truth))


def tgs_score(pred, truth) -> Tensor:
    """The dataset score: mean of `tgs_scores` (a scalar tensor)."""
    return tgs_scores(pred, truth).mean()


class TGSScore(torchmetrics.Metric):
    """Mean TGS score of probabilities binarised at `threshold` (`probs > threshold`).

    States are sums (score_sum, count), so DDP processes combine exactly, each image counted once.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    score_sum: Tensor
    count: Tensor

    def __init__(self, threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.add_state("score_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        pred = _flat_probs(probs, "probs") > self.threshold
        truth = _flat_masks(target, "target")
        _check_same_shape(pred, truth)
        scores = scores_from_counts(*_intersection_union(pred, truth))
        self.score_sum += scores.sum(dtype=torch.float64)
        self.count += len(scores)

    def compute(self) -> Tensor:
        return (self.score_sum / self.count).float()


def _sweep_intersection_union(
    probs: Tensor, truth: Tensor, thresholds: Tensor
) -> tuple[Tensor, Tensor]:
    """(n, K) intersection and union counts of `probs > thresholds[k]` for every threshold k.

    Each pixel falls in bucket b = #{k: thresholds[k] < prob}, so it is predicted exactly at the
    thresholds k < b. A per-image histogram of (bucket, truth) pairs and a reverse cumulative sum
    then give all K counts at once, in memory independent of K.
    """
    n, k = len(probs), len(thresholds)
    n_bins = 2 * n * (k + 1)
    small = n_bins < 2**31  # int32 indices halve the memory traffic of the passes below
    buckets = torch.searchsorted(thresholds, probs.contiguous(), out_int32=small)
    image_offsets = torch.arange(n, device=probs.device, dtype=buckets.dtype)[:, None] * (k + 1)
    bins = buckets.add_(image_offsets).mul_(2).add_(truth)  # in place: no int temporaries
    histogram = torch.bincount(bins.flatten(), minlength=n_bins).view(n, k + 1, 2)
    # counts[:, j] = pixels in buckets > j, i.e. predicted at threshold j
    counts = histogram.flip(1).cumsum(1).flip(1)[:, 1:]
    pred_count, intersection = counts.sum(2), counts[..., 1]
    truth_count = histogram[..., 1].sum(1)
    return intersection, pred_count + truth_count[:, None] - intersection


def _checked_thresholds(thresholds) -> Tensor:
    if thresholds is None:
        return DEFAULT_SWEEP_THRESHOLDS.clone()
    thresholds = torch.as_tensor(thresholds, dtype=torch.float32).cpu().reshape(-1)
    if len(thresholds) == 0 or (thresholds[1:] <= thresholds[:-1]).any():
        raise ValueError(f"thresholds must be non-empty and increasing, got {thresholds.tolist()}")
    return thresholds


class TGSScoreSweep(torchmetrics.Metric):
    """Mean TGS score at each of several probability thresholds (increasing), and the best one.

    `compute()` returns {"threshold": best, "score": its score, "scores": (K,) per threshold};
    the first of tied best thresholds wins.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    score_sum: Tensor
    count: Tensor
    thresholds: Tensor

    def __init__(self, thresholds=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("thresholds", _checked_thresholds(thresholds), persistent=False)
        zeros = torch.zeros(len(self.thresholds), dtype=torch.float64)
        self.add_state("score_sum", zeros, dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        probs, truth = _flat_probs(probs, "probs"), _flat_masks(target, "target")
        _check_same_shape(probs, truth)
        images_per_chunk = max(1, SWEEP_CHUNK_PIXELS // max(1, probs.shape[1]))
        for start in range(0, len(probs), images_per_chunk):
            chunk = slice(start, start + images_per_chunk)
            counts = _sweep_intersection_union(probs[chunk], truth[chunk], self.thresholds)
            self.score_sum += scores_from_counts(*counts).sum(0, dtype=torch.float64)
        self.count += len(probs)

    def compute(self) -> dict[str, Tensor]:
        scores = (self.score_sum / self.count).float()
        best = torch.argmax(scores)
        return {"threshold": self.thresholds[best], "score": scores[best], "scores": scores}


def sweep_thresholds(
    probs, truth, thresholds=None, images_per_chunk: int = 512
) -> tuple[float, float, np.ndarray]:
    """(best threshold, its mean TGS score, scores per threshold) of probabilities `probs > t`.

    `probs` and `truth` are numpy arrays or tensors shaped (N, H, W) or (N, 1, H, W); they are
    converted a chunk of images at a time, so memory stays bounded for many thousands of images.
    The score is of these images alone: no other process of a distributed run takes part (one
    rank can call it while the others wait elsewhere).
    """
    if len(probs) != len(truth):
        raise ValueError(f"probs and truth differ in length: {len(probs)} vs {len(truth)}")
    sweep = TGSScoreSweep(thresholds, sync_on_compute=False)
    for start in range(0, len(probs), images_per_chunk):
        stop = start + images_per_chunk
        sweep.update(_as_tensor(probs[start:stop]), _as_tensor(truth[start:stop]))
    result = sweep.compute()
    # Rounding shows 0.3 rather than 0.30000001; it converts back to the same float32 threshold.
    best_threshold = round(float(result["threshold"]), 6)
    return best_threshold, float(result["score"]), result["scores"].double().numpy()


def pooled_iou(prediction, truth) -> float:
    """Intersection over union of all the salt pixels of `prediction` and `truth` together (any
    shape; nonzero is salt), 1.0 when neither has any: a section's, a cube's or a set of tiles'
    IoU, unlike the per-image score above."""
    prediction, truth = np.asarray(prediction).astype(bool), np.asarray(truth).astype(bool)
    union = np.logical_or(prediction, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(prediction, truth).sum() / union)
