"""Check a Kaggle-layout data root: `python -m salt.data.check DATA_ROOT`.

Reads every training tile and mask, checks each mask PNG against its train.csv row (decoding the
RLE must give the PNG, and encoding the PNG must give back the same string), reads depths.csv, and
reads the test tiles listed in sample_submission.csv. The first problem found is a one-line error
and exit 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from salt.core.errors import DataError, exit_on_salt_error
from salt.data.io import load_test, load_train, read_depths, read_id_csv
from salt.data.rle import rle_encode


def check_rle_round_trip(root: Path, masks: np.ndarray) -> int:
    """Every train.csv string re-encodes from its mask to the same string; returns the count."""
    csv_path = root / "train.csv"
    table = read_id_csv(csv_path, ("id", "rle_mask"))
    for (tile_id, rle), mask in zip(zip(table["id"], table["rle_mask"]), masks):
        if rle_encode(mask) != rle.strip():
            raise DataError(csv_path, f"id {tile_id!r}: re-encoding its mask gives a different RLE")
    return len(table)


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder in the Kaggle TGS layout")
    args = parser.parse_args(argv)
    train = load_train(args.root)
    print(f"train: {len(train)} tiles; masks match train.csv")
    print(f"train.csv: {check_rle_round_trip(args.root, train.truth)} RLE strings round-trip")
    empty = int((train.truth.reshape(len(train), -1).max(axis=1) == 0).sum())
    blank = int((train.images.reshape(len(train), -1).std(axis=1) == 0).sum())
    print(f"train: {empty} empty masks ({empty / len(train):.1%}), {blank} blank images")
    # training does not read depths; the layout has them, and a check says when they are missing
    print(f"depths.csv: {len(read_depths(args.root))} depths")
    if (args.root / "sample_submission.csv").exists():
        print(f"test: {len(load_test(args.root))} tiles listed in sample_submission.csv, all read")
    print("ok")


if __name__ == "__main__":
    main()
