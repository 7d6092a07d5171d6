"""The network salt grew from: a residual U-Net trained from scratch (top 13% in TGS).

Four max-pooling stages of two residual blocks each (16, 32, 64, 128 filters from 16), a
256-filter middle, transposed-convolution upsampling, dropout after every pooling and
concatenation, swish (SiLU) activations, and a 1x1 convolution to the mask logits.
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch.base import initialization as init
from torch import nn

from salt.core.errors import SaltError
from salt.models.base import SaltModel


def bn_act(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.SiLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + conv(act(bn(conv(act(bn(x)))))), pre-activated; `activate` ends with BN + swish."""

    def __init__(self, channels: int, activate: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            bn_act(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            bn_act(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.out = bn_act(channels) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(x + self.body(x))


def residual_stage(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        ResidualBlock(channels),
        ResidualBlock(channels, activate=True),
    )


class SeedEncoder(nn.Module):
    """The contracting path: `depth` residual stages, each followed by max pooling and dropout,
    then the middle stage. Returns every stage's output, full resolution first, as smp's
    encoders (less their input), and has their `out_channels` and `output_stride`."""

    def __init__(self, in_channels: int, widths: list[int], dropout: float):
        super().__init__()
        self.stages = nn.ModuleList()
        for width in widths:
            self.stages.append(residual_stage(in_channels, width))
            in_channels = width
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.middle = residual_stage(widths[-1], widths[-1] * 2)
        self.out_channels = [*widths, widths[-1] * 2]
        self.output_stride = 2 ** len(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
            x = self.dropout(self.pool(x))
        return [*features, self.middle(x)]


class SeedDecoder(nn.Module):
    """The expanding path: per stage, a transposed convolution up, the skip concatenated,
    dropout, and a residual stage."""

    def __init__(self, widths: list[int], dropout: float):
        super().__init__()
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(width * 2, width, 3, stride=2, padding=1, output_padding=1)
            for width in reversed(widths)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.merge = nn.ModuleList(residual_stage(width * 2, width) for width in reversed(widths))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        *skips, x = features
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(self.dropout(torch.cat([up(x), skip], dim=1)))
        return x


class SeedUNet(SaltModel):
    """An smp `SegmentationModel` (salt.models.base.SaltModel): `encoder`, `decoder` and
    `segmentation_head` (a 1x1 convolution), no classifier.

    `forward(x)` with x (N, in_channels, H, W), H and W divisible by 2**depth (else an
    `InputShapeError`), returns {"mask": (N, 1, H, W) logits}. `encoder_weights` exists for the
    model config's contract and must be null: this net always starts from random weights."""

    def __init__(
        self,
        in_channels: int = 1,
        base_filters: int = 16,
        depth: int = 4,
        dropout: float = 0.5,
        encoder_weights: str | None = None,
    ):
        super().__init__()
        if encoder_weights is not None:
            raise SaltError(
                f"model.encoder_weights={encoder_weights}: the seed network has no pretrained "
                "weights; pass model.encoder_weights=null"
            )
        widths = [base_filters * 2**level for level in range(depth)]
        self.encoder = SeedEncoder(in_channels, widths, dropout / 2)
        self.decoder = SeedDecoder(widths, dropout)
        self.segmentation_head = nn.Conv2d(widths[0], 1, kernel_size=1)
        self.classification_head = None
        self.initialize()

    def initialize(self) -> None:
        """smp's (decoder convolutions He uniform, BatchNorm unit, the head Xavier) over the
        encoder too, as it is trained from scratch; the transposed convolutions, which smp's
        initialisation skips, get PyTorch's default again."""
        init.initialize_decoder(self.encoder)
        super().initialize()
        for module in self.decoder.modules():
            if isinstance(module, nn.ConvTranspose2d):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # smp's forward: the input-shape check, encoder, decoder, segmentation head
        return {"mask": super().forward(x)}
