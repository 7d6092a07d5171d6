"""Draw what the augmentation spec of a training config does to a few training tiles:

    python -m salt.augmentations [OVERRIDE ...] [--out augmentations.png] [--tiles 4] [--draws 4]

(`salt-augmentations`). OVERRIDEs compose the training config as `salt.train` does
(`experiment=resnet34_cpu`, `data.root=DIR`, `data.train_transform.transforms.1.rotate=[-30,30]`
...). Each row is one training tile with salt: the tile as the net gets it without augmentation,
`--draws` draws of the CPU path (albumentations on the 101x101 tile, then the padding), and as
many of the on-device path (`data.on_device=true`: the same spec run batch-wise by
`BatchAugment`), or a note of why the device cannot run the spec. docs/augmentations.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from salt.analysis.augmentations import augmentation_grid, cpu_draws, device_draws
from salt.analysis.plots import save_figure
from salt.core.config import CONFIG_DIR
from salt.core.errors import ConfigError, exit_on_salt_error, run_hydra_main
from salt.data.device_augment import from_albumentations
from salt.data.io import load_train


def tiles_with_salt(masks: np.ndarray, count: int) -> list[int]:
    """`count` tiles spread over the salt coverages (10% to 90% of the tile), in id order."""
    coverage = masks.reshape(len(masks), -1).mean(axis=1)
    candidates = np.flatnonzero((coverage >= 0.1) & (coverage <= 0.9))
    if len(candidates) == 0:
        candidates = np.arange(len(masks))
    ordered = candidates[np.argsort(coverage[candidates], kind="stable")]
    picks = np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round().astype(int)
    return sorted(int(ordered[i]) for i in picks)


@exit_on_salt_error
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m salt.augmentations",
        description="Draw the training augmentation (data.train_transform) on a few tiles.",
    )
    parser.add_argument("overrides", nargs="*", help="salt.train overrides (key=value)")
    parser.add_argument("--out", type=Path, default=Path("augmentations.png"))
    parser.add_argument("--tiles", type=int, default=4, help="tiles (rows)")
    parser.add_argument("--draws", type=int, default=4, help="draws of each path per tile")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_intermixed_args(argv)
    for name in ("tiles", "draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    with initialize_config_dir(version_base="1.3", config_dir=CONFIG_DIR):
        cfg = compose("train", overrides=["paths.output_dir=.", *args.overrides])
    data = instantiate(cfg.data, folds_csv=None, on_device=False)
    data.prepare_data()  # generated data where the config asks for it
    spec = data.train_transform
    try:
        augment = None if spec is None else from_albumentations(spec)
        refused = None
    except ConfigError as error:
        augment, refused = None, str(error)
    tiles = load_train(data.root)
    seeds = [int(s) for s in np.random.SeedSequence(args.seed).generate_state(args.draws)]
    rows = []
    for index in tiles_with_salt(tiles.truth, args.tiles):
        image, mask = tiles.images[index], tiles.truth[index]
        cells = [("input", cpu_draws(image, mask, None, [0])[0])]
        if spec is not None:
            cells += [
                (f"cpu {k + 1}", d) for k, d in enumerate(cpu_draws(image, mask, spec, seeds))
            ]
        if augment is not None:
            draws = device_draws(image, mask, augment, seeds)
            cells += [(f"device {k + 1}", d) for k, d in enumerate(draws)]
        rows.append((tiles.ids[index], cells))
    print(save_figure(augmentation_grid(rows), args.out))
    if spec is None:
        print("data.train_transform is null: training tiles are not augmented")
    elif refused:
        print(f"on-device path: {refused}", file=sys.stderr)


def run() -> None:
    """The console script: a bad override is one line, as for the Hydra commands."""
    run_hydra_main(main)


if __name__ == "__main__":
    run()
