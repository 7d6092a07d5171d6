"""Segmentation criteria: BCE, soft Dice (smp), Lovász hinge, and the deep-supervision total."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from salt.core.errors import ConfigError
from salt.core.labels import CERTAIN, fully_labelled, ignore_unlabelled, split_target

LOVASZ_ACTIVATIONS = ("relu", "elu+1")


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing
    order, row by row (Alg. 1 of Berman et al., 2018)."""
    gt_sorted = gt_sorted.float()
    positives = gt_sorted.sum(dim=1, keepdim=True)
    intersection = positives - gt_sorted.cumsum(dim=1)
    union = positives + (1 - gt_sorted).cumsum(dim=1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)


def lovasz_hinge(
    logits: torch.Tensor,
    labels: torch.Tensor,
    per_image: bool = True,
    activation: str = "relu",
    reduction: str = "mean",
    labelled: torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary Lovász hinge loss (Berman, Triki, Blaschko: "The Lovász-Softmax loss", CVPR 2018).

    Vectorised over images. `activation="elu+1"` replaces relu(errors) by elu(errors) + 1, the
    smoother variant used by top TGS solutions. `reduction="none"` returns one loss per image
    (per_image only). `labelled` (the labels' shape, {0, 1}): the loss of the labelled pixels
    alone, exactly (the others sort after every labelled pixel, as negatives whose hinge is 0,
    as the paper's reference code drops its `ignore` pixels).
    """
    if activation not in LOVASZ_ACTIVATIONS:
        raise ValueError(f"activation must be one of {LOVASZ_ACTIVATIONS}, got {activation!r}")
    rows = len(logits) if per_image else 1
    logits, labels = logits.reshape(rows, -1).float(), labels.reshape(rows, -1).float()
    errors = 1.0 - logits * (2.0 * labels - 1.0)
    if labelled is not None:
        known = labelled.reshape(rows, -1) > 0
        labels = labels * known
        errors = torch.where(known, errors, torch.full_like(errors, -CERTAIN))
    errors_sorted, order = torch.sort(errors, dim=1, descending=True)
    grad = lovasz_grad(labels.gather(1, order))
    hinge = F.relu(errors_sorted) if activation == "relu" else F.elu(errors_sorted) + 1
    losses = (hinge * grad).sum(dim=1)
    return losses if reduction == "none" else losses.mean()


class LovaszHinge(nn.Module):
    """The Lovász hinge, with a remedy for tiles without salt (`empty`).

    Per image, an empty truth gives the plain hinge one useful gradient: towards the single most
    confident pixel (its Jaccard loss is 0 or 1). 39% of the TGS tiles are empty, so:
      - "plain": as the paper;
      - "symmetric": the mean of the hinge on (logits, truth) and on (-logits, 1 - truth), so an
        empty tile is scored as the IoU of its background (the 1st-place TGS remedy);
      - "skip": the hinge over the tiles with salt only (weighted mean, no host sync); pair it
        with a pixel loss on every tile (conf/loss/lovasz_salt_bce.yaml).
    """

    EMPTY_REMEDIES = ("plain", "symmetric", "skip")
    takes_labelled = True  # forward's `labelled`: salt.core.labels.ignore_unlabelled

    def __init__(self, per_image: bool = True, activation: str = "relu", empty: str = "plain"):
        super().__init__()
        if activation not in LOVASZ_ACTIVATIONS:
            raise ValueError(f"activation must be one of {LOVASZ_ACTIVATIONS}, got {activation!r}")
        if empty not in self.EMPTY_REMEDIES:
            raise ValueError(f"empty must be one of {self.EMPTY_REMEDIES}, got {empty!r}")
        if empty == "skip" and not per_image:
            raise ValueError("empty='skip' needs per_image=true")
        self.per_image, self.activation, self.empty = per_image, activation, empty

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The hinge of `logits` against `target`, on the `labelled` pixels only when given."""
        if self.empty == "symmetric":
            return 0.5 * (
                lovasz_hinge(logits, target, self.per_image, self.activation, labelled=labelled)
                + lovasz_hinge(
                    -logits, 1.0 - target, self.per_image, self.activation, labelled=labelled
                )
            )
        if self.empty == "skip":
            per_image = lovasz_hinge(
                logits, target, True, self.activation, reduction="none", labelled=labelled
            )
            has_salt = (target.flatten(1).amax(dim=1) > 0).to(per_image.dtype)
            return (per_image * has_salt).sum() / has_salt.sum().clamp_min(1.0)
        return lovasz_hinge(logits, target, self.per_image, self.activation, labelled=labelled)


class WeightedSum(nn.Module):
    """sum_k weights[k] * terms[k](logits, target): e.g. BCE + Dice. `parts` gives each term's
    value (SaltLoss logs them one by one), `total` their weighted sum. With `labelled`, each term
    on the labelled pixels only (`salt.core.labels.ignore_unlabelled`)."""

    takes_labelled = True

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None):
        super().__init__()
        self.terms = nn.ModuleDict(dict(terms))
        weights = dict(weights or {})
        unknown = set(weights) - set(self.terms)
        if unknown:
            raise ValueError(f"weights for unknown loss terms: {sorted(unknown)}")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self.terms}

    def parts(
        self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {
            name: ignore_unlabelled(term, logits, target, labelled)
            for name, term in self.terms.items()
        }

    def total(self, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return cast(torch.Tensor, sum(self.weights[name] * parts[name] for name in self.terms))

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.total(self.parts(logits, target, labelled))


class SaltLoss(nn.Module):
    """The criterion on SaltNet's output dict, as the 4th-place TGS solution trained it.

    - "mask": `mask_loss` on the final logits;
    - "stages" (when the net returns "stage_masks"): `stage_loss` on each stage's map, over the
      images that have salt only, averaged over stages, times `stage_weight`;
    - "classifier" (when the net returns "salt_logit"): BCE against "has salt", times
      `classifier_weight`.
    Returns the components and their weighted sum, "loss"; a `WeightedSum` mask criterion's
    terms too, as "mask/<term>" (e.g. "mask/bce", "mask/dice"), so each is logged.

    A target of two channels, (salt, labelled) (`salt.core.labels`: tiles from painted lines),
    is learnt on its labelled pixels only, by every term: the mask and stage criteria see the
    labelled pixels alone (`ignore_unlabelled`), "has salt" means salt painted somewhere, and
    the classifier learns from the tiles labelled at every pixel only (a tile partly painted
    without salt may hold salt where it was not painted).

    A warm start: for the first `warm_start_epochs` epochs (a float: 0.5 is half the first
    epoch) of training, "mask" is `warm_start_mask_loss` instead (e.g. BCE + Dice before the
    Lovász hinge, which barely moves random logits). `epoch` is the fractional epoch the
    LightningModule passes; without it (inference, benchmarks) the main criterion applies.
    """

    def __init__(
        self,
        mask_loss: nn.Module,
        stage_loss: nn.Module | None = None,
        stage_weight: float = 0.1,
        classifier_weight: float = 0.05,
        warm_start_mask_loss: nn.Module | None = None,
        warm_start_epochs: float = 0.0,
    ):
        super().__init__()
        if warm_start_epochs < 0:
            raise ValueError(f"warm_start_epochs must be >= 0, got {warm_start_epochs}")
        if warm_start_epochs and warm_start_mask_loss is None:
            raise ConfigError(
                "loss.warm_start_epochs",
                f"{warm_start_epochs:g} epochs of warm start, but this loss needs a "
                "warm_start_mask_loss to warm up with: pass loss.warm_start_epochs=0",
            )
        if isinstance(mask_loss, LovaszHinge) and mask_loss.empty == "skip":
            raise ConfigError(
                "loss.mask_loss.empty",
                "skip alone leaves the tiles without salt with no mask loss; use "
                "loss=lovasz_salt_bce (the hinge over the tiles with salt, BCE over every tile) "
                "or empty=symmetric",
            )
        self.mask_loss = mask_loss
        self.stage_loss = stage_loss if stage_loss is not None else nn.BCEWithLogitsLoss()
        self.stage_weight, self.classifier_weight = stage_weight, classifier_weight
        self.warm_start_mask_loss = warm_start_mask_loss
        self.warm_start_epochs = float(warm_start_epochs)

    def mask_criterion(self, epoch: float | None = None) -> nn.Module:
        """The mask criterion in force at fractional `epoch` (None: after any warm start)."""
        if epoch is not None and epoch < self.warm_start_epochs:
            # set: __init__ requires it with warm_start_epochs > 0, and epochs are >= 0
            assert self.warm_start_mask_loss is not None
            return self.warm_start_mask_loss
        return self.mask_loss

    def forward(
        self, outputs: Mapping[str, torch.Tensor], target: torch.Tensor, epoch: float | None = None
    ) -> dict[str, torch.Tensor]:
        truth, labelled = split_target(target)
        criterion = self.mask_criterion(epoch)
        losses: dict[str, torch.Tensor] = {}
        if isinstance(criterion, WeightedSum):
            parts = criterion.parts(outputs["mask"], truth, labelled)
            losses.update((f"mask/{name}", value) for name, value in parts.items())
            losses["mask"] = criterion.total(parts)
        else:
            losses["mask"] = ignore_unlabelled(criterion, outputs["mask"], truth, labelled)
        total = losses["mask"]
        has_salt = truth.flatten(1).amax(dim=1)
        if "stage_masks" in outputs:
            stages = self._stage_term(outputs["stage_masks"], truth, has_salt > 0, labelled)
            losses["stages"] = stages
            total = total + self.stage_weight * stages
        if "salt_logit" in outputs:
            whole = fully_labelled(labelled, truth)
            per_image = F.binary_cross_entropy_with_logits(
                outputs["salt_logit"].reshape(-1).float(), has_salt.float(), reduction="none"
            )
            losses["classifier"] = (per_image * whole).sum() / whole.sum().clamp_min(1.0)
            total = total + self.classifier_weight * losses["classifier"]
        losses["loss"] = total
        return losses

    def _stage_term(
        self,
        stage_masks: torch.Tensor,
        target: torch.Tensor,
        non_empty: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if isinstance(self.stage_loss, nn.BCEWithLogitsLoss):
            return self._stage_bce(stage_masks, target, non_empty, labelled)
        # any other criterion sees the images with salt only: selecting them reads the mask
        # back to the host (a sync per step on a GPU)
        selected = stage_masks[non_empty]
        if selected.shape[0] == 0:
            return stage_masks.sum() * 0.0
        kept = target[non_empty]
        known = None if labelled is None else labelled[non_empty]
        per_stage = [
            ignore_unlabelled(self.stage_loss, selected[:, s : s + 1], kept, known)
            for s in range(selected.shape[1])
        ]
        return torch.stack(per_stage).mean()

    def _stage_bce(
        self,
        stage_masks: torch.Tensor,
        target: torch.Tensor,
        non_empty: torch.Tensor,
        labelled: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """BCE over the images with salt (and their labelled pixels), as a weighted mean over
        all images: no host sync."""
        bce = cast(nn.BCEWithLogitsLoss, self.stage_loss)  # _stage_term's isinstance check
        per_pixel = F.binary_cross_entropy_with_logits(
            stage_masks.float(),
            target.float().expand_as(stage_masks),
            weight=bce.weight,
            pos_weight=bce.pos_weight,
            reduction="none",
        )
        if labelled is None:
            per_image = per_pixel.mean(dim=(1, 2, 3))
        else:
            known = labelled.float().expand_as(stage_masks)
            per_image = (per_pixel * known).sum(dim=(1, 2, 3)) / known.sum(dim=(1, 2, 3)).clamp_min(
                1.0
            )
        weights = non_empty.to(per_image.dtype)
        return (per_image * weights).sum() / weights.sum().clamp_min(1.0)
