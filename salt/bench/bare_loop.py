"""The baseline of the quality benchmark: a bare PyTorch loop, as a newcomer would write it.

    python -m salt.bench.bare_loop DATA_ROOT OUT_DIR --minutes 40 [--fold 0] [--precision 32-true]

`smp.Unet("resnet34")` from random weights, BCE, horizontal flips, Adam 1e-3, batch 16, no
schedule and no validation, trained on the training folds of salt's split for a wall-clock
budget, then the validation fold predicted with flip TTA. `--precision bf16-mixed` wraps the
forward pass and the loss in bf16 autocast (training and prediction; float32 on a CPU without
bf16 units), as a newcomer would add it: NCHW, no other change. Writes OUT_DIR/oof.npz (ids,
probabilities, masks, as salt.train writes it) and OUT_DIR/metrics.json (steps, epochs,
training seconds and images/s).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import albumentations as A
import numpy as np
import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader

from salt.core.rundir import RunDir
from salt.data.dataset import TileDataset
from salt.data.folds import make_folds
from salt.data.io import load_train
from salt.inference.tiles import autocast_for, predict_tiles

BATCH_SIZE = 16
LEARNING_RATE = 1e-3
# salt's data config: the same input normalisation, fold count and fold seed
MEAN, STD, N_FOLDS, FOLD_SEED = 0.47, 0.16, 5, 42


class MaskOutput(nn.Module):
    """A bare net's logits as the {"mask": logits} dict salt's inference reads."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mask": self.net(images)}


def split(data_root: Path, fold: int):
    tiles = load_train(data_root)
    folds = make_folds(tiles.ids, tiles.truth, N_FOLDS, FOLD_SEED)["fold"].to_numpy()
    return tiles.subset(np.flatnonzero(folds != fold)), tiles.subset(np.flatnonzero(folds == fold))


def train_for(
    net: nn.Module, loader: DataLoader, n_images: int, seconds: float, precision: str = "32-true"
) -> dict[str, float]:
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    criterion = nn.BCEWithLogitsLoss()
    net.train()
    steps = images_seen = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for images, masks in loader:
            optimizer.zero_grad()
            with autocast_for(torch.device("cpu"), precision):
                loss = criterion(net(images), masks)
            loss.backward()
            optimizer.step()
            steps += 1
            images_seen += len(images)
            if time.monotonic() - started >= seconds:
                break
    elapsed = time.monotonic() - started
    return {
        "steps": steps,
        "images": images_seen,
        "epochs": images_seen / n_images,
        "train_seconds": round(elapsed, 1),
        "images_per_second": images_seen / elapsed,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    train_tiles, val_tiles = split(args.data_root, args.fold)
    flips = A.Compose([A.HorizontalFlip(p=0.5)])
    train_set = TileDataset(train_tiles.images, train_tiles.masks, flips, MEAN, STD)
    generator = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, generator=generator)
    net = smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=1)
    metrics = train_for(net, loader, len(train_set), args.minutes * 60, args.precision)
    val_set = TileDataset(val_tiles.images, val_tiles.masks, mean=MEAN, std=STD)
    probabilities = predict_tiles(
        MaskOutput(net), val_set, tta=["none", "hflip"], precision=args.precision
    ).masks
    args.out_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(args.out_dir)  # what bench.quality reads of a salt.train run
    run.write_oof(val_tiles.ids, probabilities, val_tiles.masks)
    run.write_metrics({**metrics, "precision": args.precision})


if __name__ == "__main__":
    main()
