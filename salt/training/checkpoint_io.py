"""How the Trainer writes checkpoints: whole or not at all (conf/trainer/default.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from salt.core.files import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint through `salt.core.files`: a temporary file next to it, synced, then
    renamed into place.

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
        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)
