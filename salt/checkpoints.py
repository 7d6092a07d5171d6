"""Rebuild a trained net from a checkpoint without the training config."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from salt.errors import SaltError


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise SaltError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None


def load_net(path, checkpoint: dict | None = None) -> nn.Module:
    """The net saved in a salt checkpoint, with its weights, in eval mode on the CPU."""
    checkpoint = checkpoint or read_checkpoint(path)
    net_config = checkpoint.get("hyper_parameters", {}).get("net_config")
    if not net_config:
        raise SaltError(f"{path}: not a salt checkpoint (no net_config in its hyper-parameters)")
    # the checkpoint holds every weight; never download or read pretrained encoder weights here
    net = instantiate({**net_config, "encoder_weights": None})
    prefix = "net."
    state = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    try:
        net.load_state_dict(state)
    except RuntimeError as error:
        first_line = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise SaltError(
            f"{path}: weights do not fit the architecture ({first_line[:200]})"
        ) from None
    return net.eval()


def tile_options(path, checkpoint: dict) -> dict:
    """The input normalisation the net was trained with (`TileDataset` keyword arguments)."""
    options = checkpoint.get("hyper_parameters", {}).get("tile_options")
    if not options:
        raise SaltError(f"{path}: not a salt checkpoint (no tile_options in its hyper-parameters)")
    return dict(options)
