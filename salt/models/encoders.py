"""Encoders from segmentation_models_pytorch, with random, downloaded or local-file weights."""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from segmentation_models_pytorch.encoders import encoders as SMP_ENCODERS
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from salt.core.errors import ConfigError, SaltError

OFFLINE_HINT = "pass model.encoder_weights=null (random init) or a local weights file"
LOCAL_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".bin")
ENCODER_LIST = (
    "choose one of smp's encoders (https://smp.readthedocs.io/en/latest/encoders.html) or a timm "
    "model as tu-NAME (timm.list_models())"
)


def check_encoder_name(name: object, key: str = "model.encoder_name") -> None:
    """A ConfigError naming `key` unless `name` is one of smp's encoders or `tu-` and a timm
    model (smp's own KeyError lists every encoder on one huge line; timm's is a traceback)."""
    if isinstance(name, str) and name.startswith("tu-"):
        import timm

        if timm.is_model(name[3:]):
            return
        near = difflib.get_close_matches(name[3:], timm.list_models(), n=3)
        near = [f"tu-{model}" for model in near]
    elif isinstance(name, str) and name in SMP_ENCODERS:
        return
    else:
        near = difflib.get_close_matches(str(name), list(SMP_ENCODERS), n=3)
    maybe = f" (did you mean {', '.join(near)}?)" if near else ""
    raise ConfigError(key, f"unknown encoder {name!r}{maybe}: {ENCODER_LIST}")


def build_encoder(name: str, weights: str | None, in_channels: int, depth: int) -> nn.Module:
    """`weights`: None, a pretrained name smp knows for `name` (e.g. "imagenet"), or a file."""
    check_encoder_name(name)
    if weights is None:
        return get_encoder(name, in_channels=in_channels, depth=depth, weights=None)
    if Path(str(weights)).suffix in LOCAL_SUFFIXES or os.sep in str(weights):
        return _encoder_from_file(name, Path(weights), in_channels, depth)
    return _pretrained_encoder(name, str(weights), in_channels, depth)


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _pretrained_encoder(name: str, weights: str, in_channels: int, depth: int) -> nn.Module:
    settings = SMP_ENCODERS.get(name, {}).get("pretrained_settings", {}).get(weights)
    if settings is not None:
        from huggingface_hub import try_to_load_from_cache
        from safetensors.torch import load_file

        cached = try_to_load_from_cache(
            settings["repo_id"], "model.safetensors", revision=settings["revision"]
        )
        if isinstance(cached, str):  # downloaded before: no network needed
            encoder = get_encoder(name, in_channels=3, depth=depth, weights=None)
            encoder.load_state_dict(load_file(cached, device="cpu"))
            encoder.set_in_channels(in_channels, pretrained=True)
            return encoder
    if not _hub_reachable():
        raise SaltError(
            f"cannot download {weights} weights for encoder {name}: the weights "
            f"hub is unreachable; {OFFLINE_HINT}"
        )
    try:
        return get_encoder(name, in_channels=in_channels, depth=depth, weights=weights)
    except KeyError as error:
        raise SaltError(str(error).strip("'\"")) from None


def _state_dict_from_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise SaltError(f"{path}: encoder weights file not found ({OFFLINE_HINT.split(' or ')[0]})")
    state: dict[str, Any]  # a bare state dict, or a checkpoint holding one as "state_dict"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # many formats, many error types
        raise SaltError(f"{path}: not a readable weights file ({type(error).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    for prefix in ("net.encoder.", "encoder."):
        if any(key.startswith(prefix) for key in state):
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _encoder_from_file(name: str, path: Path, in_channels: int, depth: int) -> nn.Module:
    state = _state_dict_from_file(path)
    encoder = get_encoder(name, in_channels=in_channels, depth=depth, weights=None)
    try:
        encoder.load_state_dict(state)
        return encoder
    except RuntimeError:
        pass
    # e.g. 3-channel ImageNet weights for a 1-channel encoder: adapt the first convolution
    encoder = get_encoder(name, in_channels=3, depth=depth, weights=None)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).splitlines()[-1].strip()[:160]
        raise SaltError(f"{path}: weights do not fit encoder {name} ({detail})") from None
    encoder.set_in_channels(in_channels, pretrained=True)
    return encoder
