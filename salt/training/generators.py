"""Every process of a run draws its own random numbers, and a resumed run draws what an
uninterrupted one would have drawn."""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

# the checkpoint keys (kept from the checkpoints salt wrote before this callback owned them)
STATES_KEY = "salt_rng_states"
STATES_BY_RANK_KEY = "salt_rng_states_by_rank"


class RankGenerators(Callback):
    """The global generators (torch, CUDA, Python, numpy) of a fit, rank by rank.

    - Under DDP every rank draws its own random numbers (dropout): the generators are re-seeded
      per rank when fitting starts (the weights were initialised before, the same on every rank).
    - Lightning does not keep the global generators, so a resumed run would draw other dropout
      masks than an uninterrupted one: every checkpoint keeps their states, every rank's under
      DDP, and a resumed run sets them, each on its own rank, when its first epoch starts (that
      is when an uninterrupted run is in the saved state: Lightning draws from the generator
      before it). States saved by another number of processes are not restored (rank 0's would
      give every rank the same masks); the per-rank seeds of the new fit stay.

    `SaltModule` brings it (`configure_callbacks`).
    """

    def __init__(self) -> None:
        self._states_to_restore: dict[str, Any] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            seed_this_rank(trainer.global_rank)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = rng_states()
        checkpoint[STATES_KEY] = states
        if trainer.world_size > 1:  # called on every rank
            by_rank: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(by_rank, states)
            checkpoint[STATES_BY_RANK_KEY] = by_rank

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._states_to_restore = checkpoint.get(STATES_KEY)
        by_rank = checkpoint.get(STATES_BY_RANK_KEY)
        if by_rank is not None and len(by_rank) == trainer.world_size:
            self._states_to_restore = by_rank[trainer.global_rank]
        elif trainer.world_size > 1:
            self._states_to_restore = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        states, self._states_to_restore = self._states_to_restore, None
        if states:
            set_rng_states(states)


def rng_states() -> dict[str, Any]:
    """The global generators' states (torch, CUDA, Python, numpy), in plain types only (so a
    checkpoint holding them loads with weights_only)."""
    # the legacy tuple (the default); numpy's stubs type a bare call as legacy=False's dict
    numpy_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [numpy_state[1].tolist(), *numpy_state[2:]],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Set the global generators to `rng_states()`'s `states` (CUDA's where the number of
    devices is the same)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])
    random.setstate(states["python"])
    keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state(("MT19937", np.array(keys, dtype=np.uint32), position, has_gauss, cached))


def seed_this_rank(rank: int) -> None:
    """Re-seed the global generators (torch, Python, numpy) from the run's seed and `rank`, so
    that the processes of a DDP run draw different dropout masks (the weights were initialised
    before, from the run's seed, the same on every rank)."""
    seed = int(np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(1)[0])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
