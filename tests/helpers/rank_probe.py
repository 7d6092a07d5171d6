"""A callback the multi-process tests add to a real `python -m salt.train` run
(`+callbacks.probe._target_=tests.helpers.rank_probe.RankProbe +callbacks.probe.out=DIR`): each
rank writes what it did to DIR/rank<N>.json when training ends.

    weights        sha256 of the net's state dict (every tensor's bytes, in key order)
    lrs            the learning rate of every optimizer step
    rng            sha256 of the torch generator's state at the first training batch (the draws
                   of dropout: they must differ between ranks)
    swa            sha256 of the SWA average (BatchNorm recomputed), or null without one
    steps, world_size

`seconds_per_step` puts the time budget's clock (`SharedClockTimer`, `trainer.max_time`) on the
steps: it reads that many seconds per optimizer step done, so a budget ends at a known step
whatever the machine's load; `skew_seconds` makes rank 1's clock read that much more than rank
0's (a process that started later). `freeze_batchnorm` keeps BatchNorm in eval mode (fixed
statistics, for equivalence checks).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from salt.training.budget import SharedClockTimer
from salt.training.callbacks import CycleSWA


def state_hash(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class RankProbe(pl.Callback):
    def __init__(
        self,
        out: str,
        seconds_per_step: float | None = None,
        skew_seconds: float = 0.0,
        freeze_batchnorm: bool = False,
    ):
        self.out = Path(out)
        self.seconds_per_step = seconds_per_step
        self.skew_seconds = skew_seconds
        self.freeze_batchnorm = freeze_batchnorm
        self.lrs: list[float] = []
        self.rng: str | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if self.seconds_per_step is None:
            return
        timer = next(c for c in trainer.callbacks if isinstance(c, SharedClockTimer))
        skew = self.skew_seconds if trainer.global_rank == 1 else 0.0

        def clock(stage=None) -> float:
            return trainer.global_step * self.seconds_per_step + skew

        timer.time_elapsed = clock  # what the budget reads, on this rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.rng is None:
            self.rng = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        if self.freeze_batchnorm:
            for module in pl_module.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        swa = next((c for c in trainer.callbacks if isinstance(c, CycleSWA)), None)
        averaged = swa.averaged_weights() if swa is not None else None
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "steps": trainer.global_step,
            "weights": state_hash(pl_module.net.state_dict()),
            "lrs": self.lrs,
            "rng": self.rng,
            "swa": state_hash(averaged) if averaged is not None else None,
        }
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
