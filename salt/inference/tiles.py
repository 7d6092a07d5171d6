"""Probabilities from one net or an ensemble over in-memory tiles, with flip TTA."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from torch import nn
from torch.utils.data import DataLoader

from salt.core.checks import choices
from salt.core.cpu import cpu_has_bf16
from salt.core.errors import ConfigError
from salt.data.dataset import TileDataset
from salt.data.padding import crop_tile, pad_tiles
from salt.models.checkpoints import load_net, read_checkpoint, tile_options

TTA_TRANSFORMS = ("none", "hflip")


@dataclass
class TilePredictions:
    """`masks`: (N, 101, 101) float32 salt probabilities, or (N, V, 101, 101) those of each view
    (`views=True`); `salt`: (N,) "has salt" ones or None."""

    masks: np.ndarray
    salt: np.ndarray | None = None


def check_tta(tta: Sequence[str], key: str = "tta") -> list[str]:
    """The TTA names of config key `key`: a non-empty list of TTA_TRANSFORMS (a ConfigError)."""
    return choices(key, tta, TTA_TRANSFORMS)


def tta_views(net: nn.Module, images: torch.Tensor, tta: Sequence[str]):
    """The probabilities of each TTA view, on the 101x101 tiles: yields, view by view, (mask
    probabilities (N, 1, 101, 101), flipped back, has-salt (N,) or None).

    `images` are padded (N, C, 128, 128) tiles. A flip is applied to the 101x101 tile before
    padding (the padding is asymmetric, 13 + 14 px), which makes flip TTA exactly
    flip-equivariant."""
    if not tta:
        raise ValueError("tta names no view: give at least 'none'")
    tiles = crop_tile(images)
    for name in tta:
        flipped = name == "hflip"
        outputs = net(pad_tiles(tiles.flip(-1)) if flipped else images)
        probabilities = crop_tile(torch.sigmoid(outputs["mask"].float()))
        salt = None
        if "salt_logit" in outputs:
            salt = torch.sigmoid(outputs["salt_logit"].float()).reshape(-1)
        yield (probabilities.flip(-1) if flipped else probabilities), salt


def tta_forward(net: nn.Module, images: torch.Tensor, tta: Sequence[str], views: bool = False):
    """Mean probabilities over the TTA transforms (`tta_views`), on the 101x101 tiles.

    Returns (mask probabilities (N, 1, 101, 101), has-salt (N,) or None); with `views`, the
    mask probabilities of every view instead of their mean: (N, len(tta), 101, 101).
    """
    masks: torch.Tensor | float = 0.0
    salt: torch.Tensor | float = 0.0
    each = []
    for probabilities, view_salt in tta_views(net, images, tta):
        masks = masks + probabilities
        if views:
            each.append(probabilities)
        if view_salt is not None:
            salt = salt + view_salt
    has_salt = None if isinstance(salt, float) else salt / len(tta)
    if views:
        return torch.cat(each, dim=1), has_salt
    return masks / len(tta), has_salt


def resolve_device(name: str, key: str = "device") -> str:
    """`auto` is cuda when a GPU is available, else cpu; any other name is kept. A CUDA device
    this machine does not have is a ConfigError naming `key`."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(key, f"unknown device {name!r} (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ConfigError(
                key, f"{name} asked for, but this machine has no CUDA GPU: pass {key}=auto or cpu"
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(key, f"{name} asked for, but this machine has {count} CUDA GPU(s)")
    return name


def autocast_for(device: torch.device, precision: str | None):
    """The autocast that `precision` means on `device`: bf16 or float16 on a GPU; on the CPU
    bf16 where the CPU has bf16 units (else float32: emulated bf16 is slower), never float16."""
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get((precision or "").split("-")[0])
    if device.type == "cpu" and (dtype is not torch.bfloat16 or not cpu_has_bf16()):
        return nullcontext()
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@torch.inference_mode()
def predict_tiles(
    net: nn.Module,
    dataset: TileDataset,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    tta: Sequence[str] = ("none",),
    precision: str | None = None,
    progress: str | None = None,
    views: bool = False,
) -> TilePredictions:
    """Probabilities for every tile of `dataset`, in order, cropped to 101x101.

    `progress`: show a progress bar over the batches under this description (none when None).
    `views`: the masks of every TTA view, (N, len(tta), 101, 101), instead of their mean.
    """
    tta = check_tta(tta)
    device = torch.device(device)
    parameter = next(net.parameters(), None)
    if parameter is not None and parameter.device != device:  # .to() walks every module
        net = net.to(device)
    if net.training:
        net.eval()
    masks, salt = [], []
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda"
    )
    with autocast_for(device, precision):
        for batch in track(loader, description=progress or "", disable=progress is None):
            mask_probabilities, salt_probabilities = tta_forward(
                net, batch[0].to(device, non_blocking=True), tta, views=views
            )
            masks.append((mask_probabilities if views else mask_probabilities[:, 0]).cpu())
            if salt_probabilities is not None:
                salt.append(salt_probabilities.float().cpu())
    return TilePredictions(
        masks=torch.cat(masks).numpy(), salt=torch.cat(salt).numpy() if salt else None
    )


def load_model(path: Path) -> tuple[nn.Module, dict]:
    """The net of a checkpoint and the tile options (input normalisation) it was trained with."""
    checkpoint = read_checkpoint(path)
    return load_net(path, checkpoint), tile_options(path, checkpoint)


def predict_ensemble(
    checkpoints: Sequence[Path | tuple[nn.Module, dict]],
    images: np.ndarray,
    progress: bool = False,
    views: bool = False,
    **options,
) -> TilePredictions:
    """The mean of `predict_tiles` over checkpoints, each loaded once, on (N, 101, 101) tiles.

    Entries may also be `load_model` results, for callers that predict many batches of tiles.
    With `views=True` the masks are not averaged: (N, checkpoints x TTA views, 101, 101), every
    view of the first checkpoint, then of the next (their mean over axis 1 is the ensemble's).
    """
    total_masks, total_salt, with_salt = None, None, 0
    every_view: list[np.ndarray] = []
    datasets: dict[tuple, TileDataset] = {}
    for index, path in enumerate(checkpoints, 1):
        if progress:
            options["progress"] = f"checkpoint {index}/{len(checkpoints)}"
        net, inputs = path if isinstance(path, tuple) else load_model(path)
        key = tuple(sorted(inputs.items()))
        if key not in datasets:
            datasets[key] = TileDataset(images, **inputs)
        predictions = predict_tiles(net, datasets[key], views=views, **options)
        if views:
            every_view.append(predictions.masks)
        else:
            total_masks = (
                predictions.masks if total_masks is None else total_masks + predictions.masks
            )
        if predictions.salt is not None:
            total_salt = predictions.salt if total_salt is None else total_salt + predictions.salt
            with_salt += 1
    if views and every_view:
        masks = np.concatenate(every_view, axis=1)
    elif total_masks is not None:
        masks = total_masks / len(checkpoints)
    else:
        raise ValueError("no checkpoints to predict with")
    return TilePredictions(
        masks=masks,
        salt=None if total_salt is None else total_salt / with_salt,
    )
