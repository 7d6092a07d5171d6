"""SaltNet: a U-Net on any smp encoder with SCSE, hypercolumn, deep supervision, salt classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from segmentation_models_pytorch.base.heads import ClassificationHead, SegmentationHead
from segmentation_models_pytorch.base.modules import Conv2dReLU
from torch import nn

from salt.models.blocks import upsample_to
from salt.models.decoder import UnetDecoder
from salt.models.encoders import build_encoder


class SaltNet(nn.Module):
    """The TGS model family.

    `forward(x)` with x (N, in_channels, H, W), H and W divisible by 2**encoder_depth, returns a
    dict of logits:
      - "mask": (N, 1, H, W), always;
      - "stage_masks": (N, S, H, W), one map per decoder stage, when `deep_supervision`;
      - "salt_logit": (N, 1), image-level "has salt", when `classifier`.
    With `hypercolumn`, every decoder stage is upsampled and concatenated before the head;
    without it the head sees the last stage only.
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
        center: bool = False,
        dropout: float = 0.0,
        deep_supervision: bool = False,
        classifier: bool = False,
        head_channels: int = 64,
    ):
        super().__init__()
        decoder_channels = list(decoder_channels)
        self.hypercolumn = hypercolumn
        self.encoder = build_encoder(encoder_name, encoder_weights, in_channels, encoder_depth)
        self.decoder = UnetDecoder(self.encoder.out_channels, decoder_channels, scse, center)
        fused_channels = sum(decoder_channels) if hypercolumn else decoder_channels[-1]
        self.segmentation_head = nn.Sequential(
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
            Conv2dReLU(fused_channels, head_channels, 3, padding=1),
            SegmentationHead(head_channels, 1, kernel_size=1),
        )
        self.stage_heads = (
            nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1) for c in decoder_channels)
            if deep_supervision
            else None
        )
        self.classification_head = (
            ClassificationHead(self.encoder.out_channels[-1], 1, dropout=dropout)
            if classifier
            else None
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        features = self.encoder(x)
        stages = self.decoder(features)
        if self.hypercolumn:
            fused = torch.cat([upsample_to(stage, size) for stage in stages], dim=1)
        else:
            fused = upsample_to(stages[-1], size)
        outputs = {"mask": self.segmentation_head(fused)}
        if self.stage_heads is not None:
            outputs["stage_masks"] = torch.cat(
                [upsample_to(head(stage), size) for head, stage in zip(self.stage_heads, stages)],
                dim=1,
            )
        if self.classification_head is not None:
            outputs["salt_logit"] = self.classification_head(features[-1])
        return outputs
