"""Score a submission CSV against truth masks with the Kaggle TGS metric.

    python -m salt.evaluate SUBMISSION.csv MASKS_DIR [--subset]

Every id of the submission must have a truth mask MASKS_DIR/<id>.png, and every truth mask's id
must be in the submission, as Kaggle requires (`--subset`: score only the submission's ids, e.g.
one fold's predictions against every training mask). Prints the number of images scored and, as
the last line, `score 0.xxxx`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from salt.core.errors import DataError, exit_on_salt_error
from salt.core.metrics import tgs_score
from salt.data.io import read_id_csv, read_mask
from salt.data.rle import rle_decode


def read_submission_masks(submission_path) -> tuple[list[str], np.ndarray]:
    """Ids and decoded (N, 101, 101) {0, 1} masks of a submission CSV (id, rle_mask)."""
    submission_path = Path(submission_path)
    table = read_id_csv(submission_path, ("id", "rle_mask"))
    if table.empty:
        raise DataError(submission_path, "lists no ids")
    ids = table["id"].tolist()
    masks = [
        rle_decode(rle, source=f"{submission_path} (id {tile_id})")
        for tile_id, rle in zip(ids, table["rle_mask"], strict=True)
    ]
    return ids, np.stack(masks)


def check_ids(submission_path, ids: list[str], masks_dir, subset: bool = False) -> None:
    """Every id of the submission has a truth mask and, unless `subset`, every truth mask has
    its id in the submission (Kaggle refuses a submission without all of its ids)."""
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(masks_dir, "masks folder not found")
    truth_ids = {path.stem for path in masks_dir.glob("*.png")}
    extra = [tile_id for tile_id in ids if tile_id not in truth_ids]
    if extra:
        raise DataError(
            submission_path,
            f"{len(extra)} id(s) without a truth mask in {masks_dir}, e.g. {extra[0]!r} "
            f"(no {masks_dir / f'{extra[0]}.png'})",
        )
    if subset:
        return
    submitted = set(ids)
    missing = sorted(truth_ids - submitted)
    if missing:
        raise DataError(
            submission_path,
            f"{len(missing)} of the {len(truth_ids)} ids of {masks_dir} missing, e.g. "
            f"{missing[0]!r} (a submission holds every id; --subset scores only the ones it has)",
        )


def read_truth_masks(masks_dir, ids: list[str], submission_path) -> np.ndarray:
    """The (N, 101, 101) truth masks MASKS_DIR/<id>.png of `ids`, in order."""
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(masks_dir, "masks folder not found")
    masks = []
    for tile_id in ids:
        mask_path = masks_dir / f"{tile_id}.png"
        if not mask_path.is_file():
            raise DataError(submission_path, f"id {tile_id!r} has no truth mask {mask_path}")
        masks.append(read_mask(mask_path))
    return np.stack(masks)


def score_submission(submission_path, masks_dir, subset: bool = False) -> tuple[float, int]:
    """(mean TGS score, number of images scored) of a submission against truth masks: every
    truth mask's id must be in the submission, or with `subset` only those it has."""
    ids, predictions = read_submission_masks(submission_path)
    check_ids(submission_path, ids, masks_dir, subset)
    truths = read_truth_masks(masks_dir, ids, submission_path)
    return float(tgs_score(predictions, truths)), len(ids)


def evaluate_submission(submission_path, masks_dir, subset: bool = False) -> float:
    """The mean TGS score of a submission CSV against MASKS_DIR/<id>.png truth masks."""
    return score_submission(submission_path, masks_dir, subset)[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m salt.evaluate",
        description="Score a submission CSV (id,rle_mask) against truth masks with the TGS metric.",
    )
    parser.add_argument("submission", type=Path, help="submission CSV with columns id,rle_mask")
    parser.add_argument("masks_dir", type=Path, help="folder of truth masks <id>.png")
    parser.add_argument(
        "--subset",
        action="store_true",
        help="score only the submission's ids (e.g. one fold against every training mask); "
        "without it every truth mask's id must be in the submission",
    )
    return parser.parse_args(argv)


@exit_on_salt_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    score, n_images = score_submission(args.submission, args.masks_dir, args.subset)
    print(f"images scored {n_images}")
    print(f"score {score:.4f}")


if __name__ == "__main__":
    main()
