"""A salt checkpoint read back: its weights, and its net rebuilt without the training config.

A checkpoint (Lightning's, written by `salt.training.checkpoint_io.AtomicCheckpointIO`) holds
the SaltModule's `state_dict`, the net's weights under `net.`, and its hyper-parameters: the
net's Hydra config (`net_config`) and the input normalisation (`tile_options`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.utils import instantiate
from torch import nn

from salt.core.errors import SaltError

NET_PREFIX = "net."  # SaltModule.net


def read_checkpoint(path) -> dict:
    """A checkpoint's content on the CPU (tensors and plain types only: weights_only).

    Its tensors are memory-mapped from the file, so that only those used (the net's weights, not
    the optimizer's state) are ever read into memory."""
    path = Path(path)
    if not path.is_file():
        raise SaltError(f"{path}: checkpoint not found")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # the legacy format
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise SaltError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None


def net_weights(checkpoint: dict) -> dict:
    """The net's weights in a checkpoint (the module's `net.` entries, without the prefix)."""
    state = checkpoint["state_dict"]
    return {k.removeprefix(NET_PREFIX): v for k, v in state.items() if k.startswith(NET_PREFIX)}


@contextmanager
def weights_loaded(net: nn.Module, weights: Mapping[str, torch.Tensor]) -> Iterator[nn.Module]:
    """`net` holding `weights` inside the block; its own weights (copied first) put back after,
    also when the block raises."""
    own = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(weights)
    try:
        yield net
    finally:
        net.load_state_dict(own)


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
    """The net saved in a salt checkpoint, with its weights, in eval mode on the CPU.

    The net is built on the meta device (no memory, no random initialisation) and takes the
    checkpoint's tensors as its own (`assign`): with a memory-mapped checkpoint its weights are
    the file's pages, read in when first used and never copied (a module the net never runs,
    such as an encoder's stages beyond `encoder_depth`, is never read), and writing to them
    changes the net only, never the file (a private mapping)."""
    checkpoint = checkpoint or read_checkpoint(path)
    net_config = checkpoint.get("hyper_parameters", {}).get("net_config")
    if not net_config:
        raise SaltError(f"{path}: not a salt checkpoint (no net_config in its hyper-parameters)")
    # the checkpoint holds every weight; never download or read pretrained encoder weights here
    # (a net without pretrained weights has no such argument)
    offline = {"encoder_weights": None} if "encoder_weights" in net_config else {}
    with torch.device("meta"):
        net = instantiate({**net_config, **offline})
    try:
        net.load_state_dict(net_weights(checkpoint), assign=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise SaltError(
            f"{path}: weights do not fit the architecture ({first_line[:200]})"
        ) from None
    tensors = itertools.chain(net.named_parameters(), net.named_buffers())
    unloaded = [name for name, tensor in tensors if tensor.is_meta]
    if unloaded:  # a tensor outside the state dict (a non-persistent buffer) has no value
        raise SaltError(f"{path}: the net has tensors its checkpoint cannot hold ({unloaded[0]})")
    return net.eval()


def tile_options(path, checkpoint: dict) -> dict:
    """The input normalisation the net was trained with (`TileDataset` keyword arguments)."""
    options = checkpoint.get("hyper_parameters", {}).get("tile_options")
    if not options:
        raise SaltError(f"{path}: not a salt checkpoint (no tile_options in its hyper-parameters)")
    return dict(options)
