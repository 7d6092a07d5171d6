"""A U-Net decoder that returns every stage, for hypercolumns and deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from salt.models.blocks import CenterBlock, DecoderBlock


class UnetDecoder(nn.Module):
    """Decoder blocks from the deepest encoder features up to the input resolution.

    `encoder_channels` is `encoder.out_channels` (input first, deepest last); there is one block
    per entry of `decoder_channels`, the last without a skip connection.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        scse: bool = True,
        center: bool = False,
    ):
        super().__init__()
        features = list(encoder_channels[1:])[::-1]  # deepest first, input dropped
        if len(decoder_channels) != len(features):
            raise ValueError(
                f"decoder_channels needs {len(features)} entries (one per encoder "
                f"stage), got {len(decoder_channels)}"
            )
        in_channels = [features[0], *decoder_channels[:-1]]
        skip_channels = [*features[1:], 0]
        self.center = CenterBlock(features[0]) if center else nn.Identity()
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o, scse)
            for i, s, o in zip(in_channels, skip_channels, decoder_channels)
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        deepest, *skips = list(features[1:])[::-1]
        x = self.center(deepest)
        stages = []
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
            stages.append(x)
        return stages
