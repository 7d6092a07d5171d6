"""SWA from each start cycle, from one run's cycle snapshots: the SWA-start ablation at equal
compute.

    python -m salt.bench.swa_start RUN_DIR [--starts 0 1] [--tta none hflip] [--json FILE]

A run trained with `callbacks.snapshots.start_cycle=0` keeps the weights at the end of every
cycle (checkpoints/snapshots/cycle-NNN.ckpt). For each start cycle k, this averages the weights
of cycles k to the last with equal weight (what `CycleSWA(start_cycle=k)` computes online),
recomputes the BatchNorm statistics over the run's training tiles (as `CycleSWA` does), predicts
the validation fold and scores it: at threshold 0.5 and after `salt.tune` picks its
post-processing on the same fold. Callbacks do not change the training, so every start is the
same run, the same steps and the same time: only where the average starts differs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import update_bn

from salt.core.config import CONFIG_DIR
from salt.core.errors import SaltError, exit_on_salt_error
from salt.core.files import write_json
from salt.core.rundir import RunDir
from salt.inference.tiles import check_tta, predict_tiles
from salt.inference.tuning import tune
from salt.models.checkpoints import load_net, net_weights, read_checkpoint


def average_weights(snapshots: list[Path]) -> dict[str, torch.Tensor]:
    """The equal-weight mean of the snapshots' net weights (integer buffers: the last one's)."""
    states = [net_weights(read_checkpoint(path)) for path in snapshots]
    average = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            average[key] = torch.stack([state[key].float() for state in states]).mean(0)
        else:
            average[key] = last.clone()
    return average


def swa_net(net: nn.Module, snapshots: list[Path], train_batches) -> nn.Module:
    """`net` with the average of `snapshots` and BatchNorm recomputed over `train_batches`."""
    net.load_state_dict(average_weights(snapshots))
    update_bn(train_batches, net)
    return net.eval()


def run_datamodule(run: RunDir):
    """The run's DataModule, set up for fit, loading in this process."""
    cfg = run.read_config()
    if cfg is None:
        raise SaltError(f"{run.config}: not found (a salt run directory has its config)")
    data = {**cfg["data"], "num_workers": 0, "persistent_workers": False, "on_device": False}
    datamodule = instantiate(data)
    datamodule.setup("fit")
    return datamodule


def score_starts(run_dir: Path, starts: list[int], tta: list[str]) -> list[dict]:
    run = RunDir(run_dir)
    snapshots = run.snapshots()
    if not snapshots:
        raise SaltError(
            f"{run.path}: no cycle snapshots (train with callbacks=snapshots "
            "callbacks.snapshots.start_cycle=0)"
        )
    cycles = [int(path.stem.split("-")[-1]) for path in snapshots]
    datamodule = run_datamodule(run)
    val_tiles = datamodule.val_tiles
    assert val_tiles is not None and val_tiles.masks is not None  # set up for fit: training tiles
    masks = val_tiles.masks
    tune_cfg = cast(DictConfig, OmegaConf.load(Path(CONFIG_DIR) / "tune.yaml"))
    rows = []
    for start in starts:
        chosen = [path for path, cycle in zip(snapshots, cycles, strict=True) if cycle >= start]
        if not chosen:
            raise SaltError(f"{run.path}: no snapshot from cycle {start} on (cycles {cycles})")
        net = swa_net(load_net(chosen[0]), chosen, datamodule.train_dataloader())
        predictions = predict_tiles(net, datamodule.val_set, datamodule.val_batch_size, tta=tta)
        out_of_fold = {
            "ids": val_tiles.ids,
            "probabilities": predictions.masks,
            "masks": masks,
            **({"salt": predictions.salt} if predictions.salt is not None else {}),
        }
        postprocess, at_half, tuned = tune(out_of_fold, tune_cfg)  # at_half: threshold 0.5
        rows.append(
            {
                "start_cycle": start,
                "cycles_averaged": [c for c in cycles if c >= start],
                "score_at_0.5": round(at_half, 4),
                "score_tuned": round(tuned, 4),
                "tuned_postprocess": str(postprocess),
            }
        )
    return rows


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--starts", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--tta", nargs="+", default=["none", "hflip"])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    tta = check_tta(args.tta, key="--tta")
    rows = score_starts(args.run_dir, args.starts, tta)
    print(f"\nSWA by start cycle, {args.run_dir}, validation fold, TTA {' '.join(tta)}")
    print(f"{'start':>6}  {'cycles averaged':<18}{'score@0.5':>10}{'tuned':>8}")
    for row in rows:
        cycles = ",".join(str(c) for c in row["cycles_averaged"])
        print(
            f"{row['start_cycle']:>6}  {cycles:<18}{row['score_at_0.5']:>10.4f}"
            f"{row['score_tuned']:>8.4f}"
        )
    if args.json:
        write_json(args.json, {"run_dir": str(args.run_dir), "tta": tta, "starts": rows})


if __name__ == "__main__":
    main()
