"""Small decoder building blocks on top of segmentation_models_pytorch's modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.base.modules import Attention, Conv2dReLU
from torch import nn


class DecoderBlock(nn.Module):
    """Upsample x2 (to the skip's size), concatenate the skip, two 3x3 conv-BN-ReLU, SCSE."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, scse: bool):
        super().__init__()
        self.conv1 = Conv2dReLU(in_channels + skip_channels, out_channels, 3, padding=1)
        self.conv2 = Conv2dReLU(out_channels, out_channels, 3, padding=1)
        # keep at least 4 squeeze channels on the narrow last stages
        reduction = max(1, min(16, out_channels // 4))
        attention = {"in_channels": out_channels, "reduction": reduction} if scse else {}
        self.attention = Attention("scse" if scse else None, **attention)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1)
        return self.attention(self.conv2(self.conv1(x)))


class CenterBlock(nn.Sequential):
    """Two 3x3 conv-BN-ReLU on the deepest encoder features."""

    def __init__(self, channels: int):
        super().__init__(
            Conv2dReLU(channels, channels, 3, padding=1),
            Conv2dReLU(channels, channels, 3, padding=1),
        )


def upsample_to(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
