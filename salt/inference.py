"""Probabilities from a net over in-memory tiles, with flip test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from salt.data.datamodule import TileDataset
from salt.data.padding import crop_tile

TTA_TRANSFORMS = ("none", "hflip")


def _check_tta(tta: Sequence[str]) -> None:
    unknown = [name for name in tta if name not in TTA_TRANSFORMS]
    if unknown or not tta:
        raise ValueError(f"tta must be a non-empty list of {TTA_TRANSFORMS}, got {list(tta)}")


def tta_probabilities(net: nn.Module, images: torch.Tensor, tta: Sequence[str]) -> torch.Tensor:
    """Mean sigmoid probability over the TTA transforms, mapped back to the input frame."""
    total = None
    for name in tta:
        flipped = name == "hflip"
        batch = images.flip(-1) if flipped else images
        probabilities = torch.sigmoid(net(batch)["mask"].float())
        probabilities = probabilities.flip(-1) if flipped else probabilities
        total = probabilities if total is None else total + probabilities
    return total / len(tta)


@torch.inference_mode()
def predict_tiles(
    net: nn.Module,
    dataset: TileDataset,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    tta: Sequence[str] = ("none",),
) -> np.ndarray:
    """(N, 101, 101) float32 probabilities for every tile of `dataset`, in order."""
    _check_tta(tta)
    net = net.to(device).eval()
    outputs = []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images = batch[0].to(device, non_blocking=True)
        outputs.append(crop_tile(tta_probabilities(net, images, tta))[:, 0].cpu())
    return torch.cat(outputs).numpy()
