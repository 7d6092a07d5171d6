"""Partly labelled tiles: masks that say where they know the truth.

Tiles cut from painted lines (`python -m salt.paint`) know salt and not-salt only where a person
painted. Such a tile's target carries a second channel beside the salt mask, "labelled" (1 where
the pixel was painted, 0 where it was not), from the data (`TileDataset`, `DeviceTileLoader`)
to the criterion and the metric, which read it with `split_target`:

- a target (B, 1, H, W) is labelled everywhere (the Kaggle tiles);
- a target (B, 2, H, W) is (salt, labelled); the salt channel is 0 where unlabelled.

The two channels travel as one mask, so every augmentation moves them together, and a pixel an
affine warp brings in from outside the tile comes in unlabelled. `ignore_unlabelled` makes any
criterion blind to the unlabelled pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# a logit beyond which sigmoid, softplus and exp are exactly 0 or 1 in float32
CERTAIN = 1.0e4


def stack_labelled(masks: np.ndarray, labelled: np.ndarray | None) -> np.ndarray:
    """Masks (N, H, W) {0, 1} and where they are labelled (N, H, W) {0, 1} (None: everywhere)
    as one (N, H, W, 2) uint8 array (the channels last, as albumentations and OpenCV take
    them); `masks` unchanged when `labelled` is None. Salt is kept only where labelled."""
    if labelled is None:
        return masks
    if labelled.shape != masks.shape:
        raise ValueError(f"labelled {labelled.shape} must have the masks' shape {masks.shape}")
    labelled = (labelled > 0).astype(np.uint8)
    return np.stack([(masks > 0).astype(np.uint8) * labelled, labelled], axis=-1)


def split_target(target: Tensor) -> tuple[Tensor, Tensor | None]:
    """(salt (B, 1, H, W), labelled (B, 1, H, W) or None: labelled everywhere) of a target."""
    if target.ndim != 4 or target.shape[1] not in (1, 2):
        raise ValueError(f"a target is (B, 1, H, W) or (B, 2, H, W), got {tuple(target.shape)}")
    if target.shape[1] == 1:
        return target, None
    labelled = target[:, 1:]
    return target[:, :1] * labelled, labelled


def fully_labelled(labelled: Tensor | None, like: Tensor) -> Tensor:
    """(B,) 1.0 for the images labelled at every pixel, 0.0 for the others."""
    if labelled is None:
        return torch.ones(len(like), dtype=torch.float32, device=like.device)
    return labelled.flatten(1).amin(dim=1).float()


def ignore_unlabelled(
    criterion: Callable[[Tensor, Tensor], Tensor],
    logits: Tensor,
    truth: Tensor,
    labelled: Tensor | None,
) -> Tensor:
    """`criterion(logits, truth)` on the labelled pixels only.

    Without `labelled`, the criterion itself. A criterion whose `takes_labelled` is true (the
    Lovász hinge) is given `labelled=` and does it itself. `nn.BCEWithLogitsLoss`: its mean over
    the labelled pixels (its `pos_weight` kept). Any other criterion sees every unlabelled pixel
    as a certain, correct "no salt" (logit -CERTAIN, truth 0) with no gradient: exact for the
    criteria that sum over pixels something a certain correct "no" adds nothing to (soft Dice,
    the plain Lovász hinge, focal loss summed); for a pixel mean, the labelled pixels' terms
    over all pixels.
    """
    if labelled is None:
        return criterion(logits, truth)
    if getattr(criterion, "takes_labelled", False):
        return criterion(logits, truth, labelled=labelled)  # type: ignore[call-arg]
    known = labelled > 0
    truth = truth.float() * known
    if isinstance(criterion, nn.BCEWithLogitsLoss) and criterion.weight is None:
        per_pixel = F.binary_cross_entropy_with_logits(
            logits.float(), truth, pos_weight=criterion.pos_weight, reduction="none"
        )
        if criterion.reduction == "none":
            return per_pixel * known
        total = (per_pixel * known).sum()
        return total if criterion.reduction == "sum" else total / known.sum().clamp_min(1)
    certain_no = torch.full_like(logits, -CERTAIN, dtype=torch.float32)
    return criterion(torch.where(known, logits.float(), certain_no), truth)
