"""What SaltNet adds to smp's U-Net: the hypercolumn and the image-level context."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base.modules import Conv2dReLU
from torch import nn


class Hypercolumn(nn.Module):
    """Every decoder stage upsampled to the input size and concatenated.

    With `channels`, each stage is first reduced to that many channels by a 1x1 conv-BN-ReLU at
    its own resolution, so the head convolves `len(stages) * channels` channels instead of the sum
    of the decoder's widths (the wide form is 69% of a ResNet34 SaltNet's FLOPs).
    """

    def __init__(self, stage_channels: Sequence[int], channels: int | None = None):
        super().__init__()
        self.reducers = (
            nn.ModuleList(Conv2dReLU(c, channels, kernel_size=1) for c in stage_channels)
            if channels
            else None
        )
        self.out_channels = channels * len(stage_channels) if channels else sum(stage_channels)

    def forward(self, stages: Sequence[torch.Tensor], size: torch.Size) -> torch.Tensor:
        if self.reducers is not None:
            stages = [reduce(stage) for reduce, stage in zip(self.reducers, stages)]
        return torch.cat([upsample_to(stage, size) for stage in stages], dim=1)


class ImageContext(nn.Module):
    """The classifier's pooled deepest features, reduced and broadcast over the image: the
    image-level "is there salt" evidence fed to the mask head (as the 4th-place TGS solution)."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.reduce = nn.Sequential(nn.Linear(in_channels, channels), nn.ReLU(inplace=True))
        self.out_channels = channels

    def forward(self, deepest: torch.Tensor, size: torch.Size) -> torch.Tensor:
        pooled = self.reduce(deepest.mean(dim=(2, 3)))
        return pooled[:, :, None, None].expand(-1, -1, *size)


def upsample_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
