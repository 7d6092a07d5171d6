"""SaltNet: a U-Net on any smp encoder with SCSE, hypercolumn, deep supervision, salt classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from segmentation_models_pytorch.base.heads import ClassificationHead, SegmentationHead
from segmentation_models_pytorch.base.modules import Conv2dReLU
from torch import nn

from salt.models.blocks import upsample_to
from salt.models.decoder import UnetDecoder
from salt.models.encoders import build_encoder


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


class SaltNet(nn.Module):
    """The TGS model family.

    `forward(x)` with x (N, in_channels, H, W), H and W divisible by 2**encoder_depth, returns a
    dict of logits:
      - "mask": (N, 1, H, W), always;
      - "stage_masks": (N, S, H, W), one map per decoder stage, when `deep_supervision`;
      - "salt_logit": (N, 1), image-level "has salt", when `classifier`.
    With `hypercolumn`, every decoder stage is upsampled and concatenated before the head
    (`hypercolumn_channels` per stage after a 1x1 reduction, or every channel when null); without
    it the head sees the last stage only. With `image_context` channels, the pooled deepest
    features (what the classifier sees) are broadcast and concatenated too. The head is a 3x3
    conv-BN-ReLU to `head_channels`, dropout (after the BatchNorm, so its statistics are those
    of inference), and a 1x1 convolution.
    """

    def __init__(
        self,
        encoder_name: str = "resnet34",
        encoder_weights: str | None = None,
        in_channels: int = 1,
        encoder_depth: int = 5,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        scse: bool = True,
        hypercolumn: bool = True,
        hypercolumn_channels: int | None = 16,
        center: bool = False,
        dropout: float = 0.0,
        deep_supervision: bool = False,
        classifier: bool = False,
        image_context: int = 0,
        head_channels: int = 32,
    ):
        super().__init__()
        decoder_channels = list(decoder_channels)
        self.encoder = build_encoder(encoder_name, encoder_weights, in_channels, encoder_depth)
        # an smp encoder: its out_channels are the widths of its stages
        encoder_channels = cast(Sequence[int], self.encoder.out_channels)
        self.decoder = UnetDecoder(encoder_channels, decoder_channels, scse, center)
        self.hypercolumn = (
            Hypercolumn(decoder_channels, hypercolumn_channels) if hypercolumn else None
        )
        fused_channels = self.hypercolumn.out_channels if self.hypercolumn else decoder_channels[-1]
        self.image_context = (
            ImageContext(encoder_channels[-1], image_context) if image_context else None
        )
        if self.image_context is not None:
            fused_channels += self.image_context.out_channels
        self.segmentation_head = nn.Sequential(
            Conv2dReLU(fused_channels, head_channels, 3, padding=1),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
            SegmentationHead(head_channels, 1, kernel_size=1),
        )
        self.stage_heads = (
            nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in decoder_channels)
            if deep_supervision
            else None
        )
        self.classification_head = (
            ClassificationHead(encoder_channels[-1], 1, dropout=dropout) if classifier else None
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        features = self.encoder(x)
        stages = self.decoder(features)
        fused = (
            self.hypercolumn(stages, size) if self.hypercolumn else upsample_to(stages[-1], size)
        )
        if self.image_context is not None:
            fused = torch.cat([fused, self.image_context(features[-1], size)], dim=1)
        outputs = {"mask": self.segmentation_head(fused)}
        if self.stage_heads is not None:
            outputs["stage_masks"] = torch.cat(
                [upsample_to(head(stage), size) for head, stage in zip(self.stage_heads, stages)],
                dim=1,
            )
        if self.classification_head is not None:
            outputs["salt_logit"] = self.classification_head(features[-1])
        return outputs
