"""SaltNet: a U-Net on any smp encoder with SCSE, hypercolumn, deep supervision, salt classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from segmentation_models_pytorch.base import initialization as init
from segmentation_models_pytorch.base.heads import ClassificationHead, SegmentationHead
from segmentation_models_pytorch.base.modules import Conv2dReLU
from torch import nn

from salt.models.base import SaltModel
from salt.models.blocks import Hypercolumn, ImageContext, upsample_to
from salt.models.decoder import StagedUnetDecoder
from salt.models.encoders import build_encoder


class SaltNet(SaltModel):
    """The TGS model family: an smp `SegmentationModel` (salt.models.base.SaltModel).

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
    of inference), and a 1x1 convolution. An input of another size raises an `InputShapeError`.
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
        self.decoder = StagedUnetDecoder(encoder_channels, decoder_channels, scse, center)
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
        self.initialize()

    def initialize(self) -> None:
        """smp's initialisation, over salt's parts too: what lies between the encoder and the
        outputs (decoder, hypercolumn, image context, the head's 3x3 conv-BN-ReLU) as smp's
        decoders (He uniform convolutions, Xavier linear layers, unit BatchNorm), the output layers
        (the mask's and every stage's 1x1 convolution, the classifier) as smp's heads (Xavier);
        the encoder keeps its own (or pretrained) weights."""
        super().initialize()  # decoder; segmentation and classification heads as outputs
        for part in (self.hypercolumn, self.image_context, self.segmentation_head[0]):
            if part is not None:
                init.initialize_decoder(part)
        if self.stage_heads is not None:
            init.initialize_head(self.stage_heads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input_shape_eagerly(x)
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
