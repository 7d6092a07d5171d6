"""The TGS metric: hand-computed cases, a naive Kaggle-style reference, and metric states."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from salt.core.metrics import (
    DEFAULT_SWEEP_THRESHOLDS,
    IOU_THRESHOLD_STEPS,
    TGSScore,
    TGSScoreSweep,
    _intersection_union_packed,
    _intersection_union_torch,
    scores_from_counts,
    sweep_thresholds,
    tgs_score,
    tgs_scores,
)

SHAPE = (101, 101)


def naive_image_score(truth: np.ndarray, pred: np.ndarray) -> float:
    """One image scored the way the Kaggle kernels do it: float64 IoU against np.arange."""
    truth, pred = truth.astype(bool), pred.astype(bool)
    if not truth.any():
        return 1.0 if not pred.any() else 0.0
    iou = np.logical_and(truth, pred).sum() / np.logical_or(truth, pred).sum()
    return float(np.mean([iou > t for t in np.arange(0.5, 1.0, 0.05)]))


def naive_score(truths: np.ndarray, preds: np.ndarray) -> float:
    return float(np.mean([naive_image_score(t, p) for t, p in zip(truths, preds, strict=True)]))


def masks_with_iou(intersection: int, union: int, shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """(truth, pred): truth holds the first `union` pixels, pred the first `intersection`."""
    truth, pred = np.zeros(shape[0] * shape[1], np.uint8), np.zeros(shape[0] * shape[1], np.uint8)
    truth[:union], pred[:intersection] = 1, 1
    return truth.reshape(shape), pred.reshape(shape)


def score_of(truth: np.ndarray, pred: np.ndarray) -> float:
    return float(tgs_scores(torch.from_numpy(pred[None]), torch.from_numpy(truth[None]))[0])


def random_blob(rng: np.random.Generator, shape=SHAPE) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    centre_row, centre_col = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
    radius_row, radius_col = rng.uniform(3, 60, size=2)
    inside = ((rows - centre_row) / radius_row) ** 2 + ((cols - centre_col) / radius_col) ** 2 < 1
    return inside.astype(np.uint8)


def random_pair(rng: np.random.Generator, kind: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, pred) of one of several kinds, so every branch of the metric is exercised."""
    empty, full = np.zeros(SHAPE, np.uint8), np.ones(SHAPE, np.uint8)
    if kind == 0:
        return empty, empty
    if kind == 1:
        return empty, random_blob(rng)
    if kind == 2:
        return random_blob(rng), empty
    if kind == 3:
        return full, random_blob(rng) | (rng.random(SHAPE) < 0.5)
    if kind == 4:
        return full, full
    if kind == 5:
        return random_blob(rng), (rng.random(SHAPE) < 0.3).astype(np.uint8)
    truth = random_blob(rng)
    shifted = np.roll(truth, tuple(rng.integers(-4, 5, size=2)), axis=(0, 1))
    return truth, shifted  # IoUs spread over the thresholds


def random_masks(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pairs = [random_pair(rng, kind=i % 10) for i in range(n)]
    return np.stack([t for t, _ in pairs]), np.stack([p for _, p in pairs])


def random_probs(truths: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities in steps of 0.01, so some equal a sweep threshold exactly."""
    rng = np.random.default_rng(seed)
    noisy = 0.35 * truths + 0.6 * rng.random(truths.shape)
    return (np.clip(np.round(noisy * 100), 0, 100) / 100).astype(np.float32)


def test_iou_thresholds_are_the_ten_kaggle_thresholds():
    expected = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert (IOU_THRESHOLD_STEPS.double() / 20).tolist() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("truth_kind", "pred_kind", "expected"),
    [
        ("empty", "empty", 1.0),
        ("empty", "blob", 0.0),
        ("blob", "empty", 0.0),
        ("full", "full", 1.0),
        ("empty", "full", 0.0),
        ("full", "empty", 0.0),
    ],
)
def test_empty_and_full_masks(truth_kind, pred_kind, expected):
    blob = np.zeros(SHAPE, np.uint8)
    blob[10:20, 30:45] = 1
    masks = {"empty": np.zeros(SHAPE, np.uint8), "full": np.ones(SHAPE, np.uint8), "blob": blob}
    assert score_of(masks[truth_kind], masks[pred_kind]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("intersection", "union", "expected"),
    [
        (6, 10, 0.2),  # IoU 0.6 passes 0.50 and 0.55
        (96, 100, 1.0),  # 0.96 passes every threshold
        (1, 1, 1.0),
        (5, 10, 0.0),  # exactly 0.5 does not pass 0.50: the comparison is strict
        (5100, 10200, 0.0),
        (11, 20, 0.1),  # exactly 0.55 passes 0.50 only
        (5555, 10100, 0.1),
        (56, 100, 0.2),
        (54, 100, 0.1),
        (3, 4, 0.5),  # exactly 0.75 passes 0.50 .. 0.70
        (13, 20, 0.3),  # exactly 0.65, which float32 0.05 * 3 + 0.5 rounds below, fails 0.65
        (9090, 10100, 0.8),  # exactly 0.9 (float32 rounds that threshold below too)
        (19, 20, 0.9),  # exactly 0.95 fails 0.95 only
        (9999, 10201, 1.0),
        (0, 10201, 0.0),
    ],
)
def test_known_iou_values(intersection, union, expected):
    truth, pred = masks_with_iou(intersection, union)
    assert score_of(truth, pred) == pytest.approx(expected, abs=1e-7)


def test_exact_ties_and_their_neighbours_agree_with_float64_reference():
    # Every IoU that equals a threshold exactly, with up to 10201 pixels, and one pixel either side.
    unions = torch.arange(20, 10202, 20)
    steps = torch.arange(10, 20)
    tied = (unions[:, None] * steps // 20).flatten()
    union = unions.repeat_interleave(len(steps))
    intersection = torch.cat([tied - 1, tied, tied + 1])
    union = torch.cat([union, union, union])
    ours = scores_from_counts(intersection, union).numpy()
    iou = intersection.numpy()[:, None] / union.numpy()[:, None]
    reference = (iou > np.arange(0.5, 1.0, 0.05)).mean(1)
    np.testing.assert_allclose(ours, reference, atol=1e-7)


def test_agrees_with_naive_reference_on_random_masks():
    truths, preds = random_masks(200, seed=1)
    scores = tgs_scores(torch.from_numpy(preds), torch.from_numpy(truths)).numpy()
    reference = [naive_image_score(t, p) for t, p in zip(truths, preds, strict=True)]
    np.testing.assert_allclose(scores, reference, atol=1e-6)
    assert len(set(reference)) >= 6, "the random cases should cover many score values"
    assert float(tgs_score(preds, truths)) == pytest.approx(np.mean(reference), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float32])
def test_bit_packed_cpu_counts_equal_torch_counts(dtype):
    # The torch path is the one used on the GPU; both must give the same counts.
    truths, preds = random_masks(30, seed=9)
    preds, truths = torch.from_numpy(preds[:, :, :97]), torch.from_numpy(truths[:, :, :97])
    preds, truths = preds.reshape(30, -1).to(dtype), (truths.reshape(30, -1) * 255).to(dtype)
    if dtype == torch.bool:
        truths = truths != 0
    packed = _intersection_union_packed(preds, truths)
    reference = _intersection_union_torch(preds, truths)
    for ours, expected in zip(packed, reference, strict=True):
        torch.testing.assert_close(ours, expected)
    assert int(reference[1].max()) > 0


def test_accepts_channel_axis_bool_uint8_and_float_masks():
    truths, preds = random_masks(20, seed=2)
    expected = tgs_scores(torch.from_numpy(preds), torch.from_numpy(truths))
    as_bool = tgs_scores(torch.from_numpy(preds[:, None]).bool(), torch.from_numpy(truths).bool())
    as_float = tgs_scores(
        torch.from_numpy(preds).float(), torch.from_numpy(truths[:, None]).float()
    )
    torch.testing.assert_close(as_bool, expected)
    torch.testing.assert_close(as_float, expected)


def test_rejects_probabilities_and_mismatched_shapes():
    truths, preds = random_masks(4, seed=3)
    with pytest.raises(ValueError, match="only 0 and 1"):
        tgs_scores(torch.full((4, *SHAPE), 0.7), torch.from_numpy(truths))
    with pytest.raises(ValueError, match="differ in shape"):
        tgs_scores(torch.from_numpy(preds[:, :50]), torch.from_numpy(truths))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        tgs_scores(torch.from_numpy(preds[0]), torch.from_numpy(truths[0]))


def test_any_image_size_is_accepted():
    truth, pred = masks_with_iou(6, 10, shape=(128, 128))
    assert score_of(truth, pred) == pytest.approx(0.2)


def probability_batches(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (N, 1, H, W) float32, target (N, 1, H, W) int64) from the random masks."""
    truths, _ = random_masks(n, seed=seed)
    probs = random_probs(truths, seed=seed)
    return torch.from_numpy(probs[:, None]), torch.from_numpy(truths[:, None]).long()


def test_tgs_score_metric_over_updates_equals_functional_score_on_all_data():
    probs, target = probability_batches(50, seed=4)
    metric = TGSScore(threshold=0.5)
    for batch in torch.split(torch.arange(50), [7, 20, 1, 22]):
        metric.update(probs[batch], target[batch])
    expected = tgs_score(probs > 0.5, target)
    assert float(metric.compute()) == pytest.approx(float(expected), abs=1e-6)
    assert int(metric.count) == 50


def test_tgs_score_metric_binarises_with_strict_threshold():
    probs = torch.full((1, 1, 8, 8), 0.5)
    target = torch.ones(1, 1, 8, 8)
    assert float(TGSScore(threshold=0.5)(probs, target)) == 0.0  # 0.5 is not > 0.5
    assert float(TGSScore(threshold=0.49)(probs, target)) == 1.0


def compute_as_if_synced_with(metric, other):
    """`metric.compute()` through torchmetrics' DDP sync, `other` playing the second process."""
    other_states = iter([getattr(other, name) for name in other._reductions])

    def all_gather(tensor, group=None):
        return [tensor, next(other_states)]

    metric.dist_sync_fn = all_gather
    metric.distributed_available_fn = lambda: True
    return metric.compute()


@pytest.mark.parametrize("combine", ["merge_state", "sync"])
@pytest.mark.parametrize("metric_class", [TGSScore, TGSScoreSweep])
def test_two_processes_on_disjoint_halves_give_the_whole_data_score(combine, metric_class):
    probs, target = probability_batches(30, seed=5)
    whole, first, second = metric_class(), metric_class(), metric_class()
    whole.update(probs, target)
    first.update(probs[:7], target[:7])  # uneven halves: a mean of means would differ
    second.update(probs[7:], target[7:])
    half_means = [copy.deepcopy(first).compute(), copy.deepcopy(second).compute()]
    if combine == "merge_state":
        first.merge_state(second)
        combined = first.compute()
    else:
        combined = compute_as_if_synced_with(first, second)
    expected = whole.compute()
    if metric_class is TGSScoreSweep:
        combined, expected = combined["scores"], expected["scores"]
        half_means = [m["scores"] for m in half_means]
    torch.testing.assert_close(combined, expected)
    assert not torch.allclose((half_means[0] + half_means[1]) / 2, expected)
    if combine == "merge_state":
        assert int(first.count) == 30


def test_sweep_agrees_with_tgs_score_at_each_threshold():
    probs, target = probability_batches(40, seed=6)
    sweep = TGSScoreSweep()
    sweep.update(probs[:15], target[:15])
    sweep.update(probs[15:], target[15:])
    result = sweep.compute()
    per_threshold = torch.stack([tgs_score(probs > t, target) for t in DEFAULT_SWEEP_THRESHOLDS])
    torch.testing.assert_close(result["scores"], per_threshold)
    best = int(torch.argmax(per_threshold))
    assert float(result["threshold"]) == pytest.approx(float(DEFAULT_SWEEP_THRESHOLDS[best]))
    assert float(result["score"]) == pytest.approx(float(per_threshold[best]))
    assert len(set(per_threshold.tolist())) > 3, "the sweep should see different scores"


def test_sweep_thresholds_function_agrees_with_metric_and_chunks(monkeypatch):
    probs, target = probability_batches(40, seed=7)
    thresholds = [0.2, 0.35, 0.5, 0.62, 0.8]
    sweep = TGSScoreSweep(thresholds)
    sweep.update(probs, target)
    expected = sweep.compute()
    monkeypatch.setattr(
        "salt.core.metrics.SWEEP_CHUNK_PIXELS", 3 * 101 * 101
    )  # chunks inside update
    best_threshold, best_score, scores = sweep_thresholds(
        probs[:, 0].numpy(), target.numpy().astype(bool), thresholds, images_per_chunk=9
    )
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=1e-6)
    assert best_threshold == pytest.approx(float(expected["threshold"]))
    assert best_score == pytest.approx(float(expected["score"]))
    naive = [naive_score(target[:, 0].numpy(), (probs[:, 0] > t).numpy()) for t in thresholds]
    np.testing.assert_allclose(scores, naive, atol=1e-6)


def test_sweep_thresholds_default_thresholds_and_float16_probabilities():
    probs, target = probability_batches(12, seed=8)
    best_threshold, _, scores = sweep_thresholds(probs.half().numpy(), target.numpy())
    assert scores.shape == (len(DEFAULT_SWEEP_THRESHOLDS),)
    assert best_threshold in [round(float(t), 6) for t in DEFAULT_SWEEP_THRESHOLDS]


def test_sweep_rejects_unordered_thresholds():
    with pytest.raises(ValueError, match="increasing"):
        TGSScoreSweep([0.5, 0.4])


def test_pooled_iou_counts_every_pixel_together_and_empty_against_empty_is_one():
    from salt.core.metrics import pooled_iou

    truth = np.zeros((2, 4, 4), np.uint8)
    prediction = np.zeros((2, 4, 4), np.uint8)
    truth[0, :2] = 1  # 8 pixels
    prediction[0, :1] = 1  # 4 of them
    prediction[1, :1] = 1  # 4 more, where there is none
    assert pooled_iou(prediction, truth) == 4 / 12
    assert pooled_iou(np.zeros(3), np.zeros(3)) == 1.0
