"""Checkpoint files: written atomically; read back into a net without the training config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import nn

from salt.core.errors import SaltError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a temporary file next to it, syncs it, then renames it into place.

    A kill at any moment leaves either the previous file or the new one, never a truncated one.
    (Lightning's own writer stages the file in the system temporary folder and moves it: a copy,
    not an atomic rename, when that folder is on another file system, and it does not sync.)
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise SaltError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None


def check_weights_fit(path, state: dict, model: nn.Module) -> None:
    """A one-line error when `state` is not a state dict of `model`'s architecture."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if not (missing or unexpected or reshaped):
        return
    if reshaped:
        key = reshaped[0]
        example = f"{key} is {tuple(state[key].shape)} there, {tuple(expected[key].shape)} here"
    else:
        example = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
    counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped"
    raise SaltError(
        f"{path}: a checkpoint of another architecture than this run's ({counts}; e.g. {example})"
    )


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
