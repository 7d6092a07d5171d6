"""The network salt grew from: a residual U-Net trained from scratch (top 13% in TGS).

Four max-pooling stages of two residual blocks each (16, 32, 64, 128 filters from 16), a
256-filter middle, transposed-convolution upsampling, dropout after every pooling and
concatenation, swish (SiLU) activations, and a 1x1 convolution to the mask logits.
"""

from __future__ import annotations

import torch
from torch import nn

from salt.core.errors import SaltError


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


class SeedUNet(nn.Module):
    """`forward(x)` with x (N, in_channels, H, W), H and W divisible by 2**depth, returns
    {"mask": (N, 1, H, W) logits}. `encoder_weights` exists for the model config's contract and
    must be null: this net always starts from random weights."""

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
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(residual_stage(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(2)
        self.pool_dropout = nn.Dropout2d(dropout / 2)
        self.middle = residual_stage(previous, previous * 2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(width * 2, width, 3, stride=2, padding=1, output_padding=1)
            for width in reversed(widths)
        )
        self.merge_dropout = nn.Dropout2d(dropout)
        self.merge = nn.ModuleList(residual_stage(width * 2, width) for width in reversed(widths))
        self.head = nn.Conv2d(widths[0], 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
            x = self.pool_dropout(self.pool(x))
        x = self.middle(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(self.merge_dropout(torch.cat([up(x), skip], dim=1)))
        return {"mask": self.head(x)}
