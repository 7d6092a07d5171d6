"""Count what a DDP training step sends between processes, and what makes it wait for the device.

    python -m salt.bench.collectives [DATA_ROOT] [--steps 30] [--out DIR] [override ...]

Runs `python -m salt.train` as two CPU processes (gloo, Lightning's launcher) with the flagship
config (`experiment=resnet34`, random encoder weights, a time budget, snapshots and SWA) and
the `CollectiveCount` callback, which counts, for every training step (from one batch's start to
the next one's):
- DDP's gradient buckets (a communication hook on the DDP model: one all-reduce each), and its
  broadcast of rank 0's buffers (BatchNorm statistics) before every forward;
- every other collective of `torch.distributed` called from Python (Lightning's, torchmetrics',
  salt's: broadcast, all_reduce, all_gather, barrier, ...), by name;
- host syncs (`salt.bench.syncs.HostSyncCounter`: values read back, data-dependent shapes).
Steps are split into the plain ones and those where an epoch ends (validation, checkpoints).
It prints a table and writes `DIR/collectives.json` (rank 0's counts). SyncBatchNorm runs only
on CUDA: its cost is given from the net's BatchNorm layers (PyTorch's SyncBatchNorm gathers each
layer's statistics in the forward and all-reduces its gradient statistics in the backward: two
collectives per layer per step).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from salt.bench.syncs import HostSyncCounter, optimizer_step_counters
from salt.core.files import write_json

# the collectives of torch.distributed a Python caller can reach
COLLECTIVES = (
    "all_reduce",
    "broadcast",
    "all_gather",
    "all_gather_object",
    "all_gather_into_tensor",
    "broadcast_object_list",
    "barrier",
    "reduce",
    "gather",
    "gather_object",
    "scatter",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "all_to_all",
    "monitored_barrier",
    "_broadcast_coalesced",  # DDP's broadcast of the buffers (BatchNorm statistics) per forward
)
BUCKETS = "ddp gradient bucket (all_reduce)"
# what DDP itself sends each step: its gradient buckets and its broadcast of rank 0's buffers
DDP_COLLECTIVES = (BUCKETS, "_broadcast_coalesced")


class CollectiveCount(pl.Callback):
    """Counts collectives and host syncs per training step on this rank; rank 0 writes them to
    `out/collectives.json` when training ends: {"steps": [{"epoch_end": bool, "collectives":
    {name: n}, "host_syncs": n}, ...], "batchnorm_layers": n}."""

    def __init__(self, out: str):
        self.out = Path(out)
        self.steps: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self._syncs: HostSyncCounter | None = None
        self._originals: dict[str, Any] = {}

    def _patch(self) -> None:
        for name in COLLECTIVES:
            original = getattr(torch.distributed, name, None)
            if original is None:
                continue
            self._originals[name] = original

            def counted(*args, _name=name, _original=original, **kwargs):
                self._counts[_name] += 1
                return _original(*args, **kwargs)

            setattr(torch.distributed, name, counted)

    def _unpatch(self) -> None:
        for name, original in self._originals.items():
            setattr(torch.distributed, name, original)
        self._originals.clear()

    def on_train_start(self, trainer, pl_module) -> None:
        self._patch()
        model = trainer.strategy.model
        if isinstance(model, nn.parallel.DistributedDataParallel):
            all_reduce, world_size = self._originals["all_reduce"], trainer.world_size

            def counting_hook(state, bucket):  # DDP's default: the mean of the bucket, async
                self._counts[BUCKETS] += 1
                work = all_reduce(bucket.buffer().div_(world_size), async_op=True)
                return work.get_future().then(lambda future: future.value()[0])

            model.register_comm_hook(None, counting_hook)

    def _close_step(self, trainer) -> None:
        if self._syncs is None:
            return
        self._syncs.__exit__(None, None, None)
        epoch_end = bool(self.steps) and self.steps[-1].get("_last_batch", False)
        self.steps[-1] = {
            "epoch_end": epoch_end,
            "collectives": dict(self._counts),
            "host_syncs": self._syncs.total,
        }
        self._syncs = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._close_step(trainer)
        self._counts = Counter()
        last = batch_idx + 1 >= trainer.num_training_batches
        self.steps.append({"_last_batch": last})
        self._syncs = HostSyncCounter()
        self._syncs.ignore(optimizer_step_counters(trainer.optimizers))
        self._syncs.__enter__()

    def on_train_end(self, trainer, pl_module) -> None:
        self._close_step(trainer)
        self._unpatch()
        if trainer.is_global_zero:
            layers = sum(
                isinstance(m, nn.modules.batchnorm._BatchNorm) for m in pl_module.modules()
            )
            payload = {"world_size": trainer.world_size, "steps": self.steps}
            write_json(self.out / "collectives.json", {**payload, "batchnorm_layers": layers})


def summary(counts: dict) -> dict[str, Any]:
    """For the steps within an epoch, those that end an epoch, and the last (where training
    ends: SWA, the last checkpoint): the mean of each collective and of host syncs, how many
    steps sent more than DDP's own collectives, and the most they sent."""
    result: dict[str, Any] = {"batchnorm_layers": counts["batchnorm_layers"]}
    *steps_before, last = counts["steps"]
    for kind, steps in (
        ("within_epoch", [s for s in steps_before if not s["epoch_end"]]),
        ("epoch_end", [s for s in steps_before if s["epoch_end"]]),
        ("training_end", [last]),
    ):
        if not steps:
            continue
        total: Counter[str] = Counter()
        for step in steps:
            total.update(step["collectives"])
        others = [
            sum(n for k, n in s["collectives"].items() if k not in DDP_COLLECTIVES) for s in steps
        ]
        result[kind] = {
            "steps": len(steps),
            "per_step": {k: v / len(steps) for k, v in sorted(total.items())},
            "host_syncs_per_step": sum(s["host_syncs"] for s in steps) / len(steps),
            "steps_sending_more_than_ddp": sum(1 for n in others if n),
            "most_beyond_ddp": max(others),
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", nargs="?", type=Path, help="a Kaggle-layout folder")
    parser.add_argument("--steps", type=int, default=30, help="training steps to count")
    parser.add_argument(
        "--out", type=Path, help="where collectives.json goes (default: a temp dir)"
    )
    parser.add_argument("overrides", nargs="*", help="more salt.train overrides")
    args = parser.parse_intermixed_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="salt-collectives-"))
    data_root = args.data_root
    if data_root is None:
        from salt.data.synthetic import generate

        data_root = generate(out / "data", n_train=160, n_test=4, seed=0)
    command = [
        sys.executable,
        "-m",
        "salt.train",
        "experiment=resnet34",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.precision=32-true",
        "model.encoder_weights=null",
        f"data.root={data_root}",
        "data.batch_size=4",
        "data.num_workers=0",
        "data.persistent_workers=false",
        f"trainer.max_steps={args.steps}",
        "trainer.max_time=00:01:00:00",
        "callbacks.progress_bar=null",
        "logger.tensorboard=null",
        "oof=false",
        "plots=false",
        f"hydra.run.dir={out / 'run'}",
        "+callbacks.count._target_=salt.bench.collectives.CollectiveCount",
        f"+callbacks.count.out={out}",
        *args.overrides,
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"error: salt.train exited {done.returncode}")
    counts = json.loads((out / "collectives.json").read_text())
    result = summary(counts)
    print(json.dumps(result, indent=2))
    layers = result["batchnorm_layers"]
    print(
        f"trainer.sync_batchnorm=true would add {2 * layers} collectives per step "
        f"({layers} BatchNorm layers x 2)"
    )
    write_json(out / "summary.json", result)
    print(f"wrote {out / 'collectives.json'} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
