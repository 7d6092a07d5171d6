"""bf16 on the CPU: the check (salt.core.cpu) and prediction's autocast (salt.inference.tiles)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import salt.inference.tiles as tiles
from salt.core.cpu import cpu_has_bf16
from salt.data.dataset import TileDataset

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").exists(),
    reason="reads the x86 CPU flags of Linux's /proc/cpuinfo",
)
def test_the_check_agrees_with_the_cpus_bf16_flags():
    """oneDNN runs bf16 natively on x86 with AVX512-BF16 or AMX: the check says so exactly there."""
    assert cpu_has_bf16() == bool(cpu_flags() & BF16_FLAGS)


class DtypeProbe(nn.Module):
    """A 1x1 convolution that records the dtype its output was computed in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.seen: list[torch.dtype] = []

    def forward(self, x):
        mask = self.conv(x)
        self.seen.append(mask.dtype)
        return {"mask": mask}


@pytest.mark.parametrize(
    ("precision", "has_bf16", "computed_in"),
    [
        ("bf16-mixed", True, torch.bfloat16),
        ("bf16-mixed", False, torch.float32),  # emulated bf16 is slower than float32
        ("16-mixed", True, torch.float32),  # no float16 autocast on the CPU
        ("32-true", True, torch.float32),
    ],
)
def test_prediction_on_the_cpu_runs_at_bf16_where_the_cpu_has_bf16_units(
    monkeypatch, precision, has_bf16, computed_in
):
    monkeypatch.setattr(tiles, "cpu_has_bf16", lambda: has_bf16)
    net = DtypeProbe()
    dataset = TileDataset(np.zeros((2, 101, 101), np.uint8))
    predicted = tiles.predict_tiles(net, dataset, batch_size=2, device="cpu", precision=precision)
    assert net.seen == [computed_in]
    assert predicted.masks.dtype == np.float32
