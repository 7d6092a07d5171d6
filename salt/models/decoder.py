"""smp's U-Net decoder, returning every stage for the hypercolumn and deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from segmentation_models_pytorch.base.modules import Attention
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

from salt.core.errors import SaltError


def scse_reduction(channels: int) -> int:
    """SCSE's channel squeeze: 16x, keeping at least 4 squeeze channels on narrow stages."""
    return max(1, min(16, channels // 4))


class StagedUnetDecoder(UnetDecoder):
    """smp's `UnetDecoder` (its blocks, center block and channel bookkeeping), whose `forward`
    returns the output of every block, deepest first, instead of the last one only.

    `encoder_channels` is `encoder.out_channels` (input first, deepest last); there is one block
    per encoder stage, so `decoder_channels` needs one entry per stage. With `scse`, each block
    ends with an SCSE module (in smp's `attention2` slot). Not smp's `attention_type="scse"`,
    which also puts one on every concatenation and squeezes every stage 16x (an 8-channel stage
    would keep no squeeze channel): salt keeps its single SCSE per block, as trained so far.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        scse: bool = True,
        center: bool = False,
    ):
        stages = len(encoder_channels) - 1
        if len(decoder_channels) != stages:
            raise SaltError(
                f"model.decoder_channels needs {stages} entries, one per encoder stage "
                f"(model.encoder_depth), got {len(decoder_channels)}: {list(decoder_channels)}"
            )
        super().__init__(
            list(encoder_channels),
            list(decoder_channels),
            n_blocks=stages,
            attention_type=None,
            add_center_block=center,
        )
        if scse:
            for block, channels in zip(self.blocks, decoder_channels):
                block.attention2 = Attention(
                    "scse", in_channels=channels, reduction=scse_reduction(channels)
                )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        # smp's UnetDecoder.forward, keeping every block's output
        sizes = [feature.shape[2:] for feature in features][::-1]
        deepest, *skips = list(features[1:])[::-1]
        x = self.center(deepest)
        stages = []
        for i, block in enumerate(self.blocks):
            height, width = sizes[i + 1]
            x = block(x, height, width, skip_connection=skips[i] if i < len(skips) else None)
            stages.append(x)
        return stages
