"""A salt checkpoint of a tiny, randomly initialised SaltNet: real files without training."""

from pathlib import Path

import torch

from salt.models import SaltNet

NET_CONFIG = {
    "_target_": "salt.models.SaltNet",
    "encoder_name": "resnet18",
    "encoder_weights": None,
    "in_channels": 1,
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 8],
    "scse": True,
    "hypercolumn": True,
    "classifier": True,
}


def write_checkpoint(
    path: Path, seed: int = 0, *, net_options: dict | None = None, **tile_options
) -> Path:
    """A checkpoint as salt.train writes it (the parts inference reads), in `path`.

    `net_options` change the net's config, e.g. `{"classifier": False}` (no "has salt" head).
    """
    torch.manual_seed(seed)
    net_config = {**NET_CONFIG, **(net_options or {})}
    net = SaltNet(**{k: v for k, v in net_config.items() if k != "_target_"}).eval()
    options = {"mean": 0.47, "std": 0.16, "channels": 1, **tile_options}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            "hyper_parameters": {"net_config": net_config, "tile_options": options},
        },
        path,
    )
    return path
