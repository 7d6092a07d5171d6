"""The minimal custom net of docs/customizing.md ("The net contract"), as the docs print it."""

import torch
from torch import nn


class MinimalNet(nn.Module):
    """Two 3x3 convolutions and a 1x1 mask head: the smallest net salt trains, predicts,
    tunes and exports."""

    def __init__(self, in_channels: int = 1, width: int = 8, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.mask = nn.Conv2d(width, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": self.mask(self.body(x))}
