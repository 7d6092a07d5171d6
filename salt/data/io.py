"""Read (and validate) data laid out as Kaggle shipped the TGS Salt Identification Challenge.

    ROOT/train/images/<id>.png   3-channel PNG with equal channels (read as one channel)
    ROOT/train/masks/<id>.png    16-bit 0/65535 PNG, or 8-bit when empty (read as {0, 1})
    ROOT/train/labelled/<id>.png optional, salt's own: where the mask is known (0/255; tiles cut
                                 from painted lines, `python -m salt.paint`); without the
                                 folder every pixel is labelled
    ROOT/train.csv               id,rle_mask
    ROOT/depths.csv              id,z
    ROOT/test/images/<id>.png
    ROOT/sample_submission.csv   id,rle_mask

Every problem is a `DataError` naming the file and what is wrong with it.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from salt.core.errors import DataError
from salt.data.padding import TILE, TILE_SHAPE
from salt.data.rle import rle_decode

MASK_FOREGROUND_VALUES = (1, 255, 65535)


@dataclass
class TileSet:
    """Tiles held in memory: `images` (N, 101, 101) uint8; `masks` (N, 101, 101) {0, 1} or None;
    `labelled` (N, 101, 101) {0, 1} where the masks are known, or None: everywhere."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray | None = None
    depths: np.ndarray | None = None
    labelled: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def truth(self) -> np.ndarray:
        """`masks`, for tiles that have them (training tiles); a ValueError for test tiles."""
        if self.masks is None:
            raise ValueError("these tiles have no masks (test tiles)")
        return self.masks

    def subset(self, indices) -> TileSet:
        indices = np.asarray(indices)
        return TileSet(
            ids=[self.ids[i] for i in indices],
            images=self.images[indices],
            masks=None if self.masks is None else self.masks[indices],
            depths=None if self.depths is None else self.depths[indices],
            labelled=None if self.labelled is None else self.labelled[indices],
        )


def _read_png(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(path, "file not found")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(path, "cannot be decoded as an image (corrupt or not a PNG)")
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[..., :3]
        if array.shape[2] == 1 or (array == array[..., :1]).all():
            array = array[..., 0]
        else:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
    if array.shape != TILE_SHAPE:
        raise DataError(
            path, f"expected a {TILE}x{TILE} tile, got {array.shape[1]}x{array.shape[0]}"
        )
    return array


def read_tile_image(path) -> np.ndarray:
    """A 101x101 uint8 grayscale tile (16-bit images reduced to 8 bits)."""
    array = _read_png(Path(path))
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise DataError(path, f"unsupported pixel type {array.dtype}")
    return array


def read_mask(path) -> np.ndarray:
    """A 101x101 {0, 1} uint8 mask from an 8- or 16-bit PNG holding 0 and one foreground value."""
    array = _read_png(Path(path))
    values = np.unique(array)
    foreground = values[values != 0]
    if len(foreground) > 1 or (
        len(foreground) == 1 and foreground[0] not in MASK_FOREGROUND_VALUES
    ):
        shown = ", ".join(str(v) for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise DataError(path, f"mask is not binary (values {shown})")
    return (array != 0).astype(np.uint8)


def read_id_csv(path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV keyed by a unique `id` column, with the given columns; cells read as strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(path, f"not a readable CSV ({str(error).splitlines()[0]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            path, f"missing column(s) {', '.join(missing)} (has {', '.join(frame.columns)})"
        )
    duplicated = frame["id"][frame["id"].duplicated()]
    if len(duplicated):
        raise DataError(path, f"duplicated id {duplicated.iloc[0]!r}")
    if (frame["id"].str.strip() == "").any():
        raise DataError(
            path, f"empty id on row {int(np.flatnonzero(frame['id'].str.strip() == '')[0]) + 2}"
        )
    return frame[list(columns)]


def read_depths(root) -> dict[str, float]:
    path = Path(root) / "depths.csv"
    frame = read_id_csv(path, ("id", "z"))
    try:
        return dict(zip(frame["id"], frame["z"].astype(float)))
    except ValueError:
        raise DataError(path, "column z holds a value that is not a number") from None


def _read_images(folder: Path, ids: list[str], listed_in: Path) -> np.ndarray:
    if not folder.is_dir():
        raise DataError(folder, "image folder not found")
    if ids and not any(folder.glob("*.png")):
        raise DataError(
            folder, f"image folder is empty (expected <id>.png for the ids of {listed_in})"
        )
    images = np.empty((len(ids), *TILE_SHAPE), dtype=np.uint8)
    for i, tile_id in enumerate(ids):
        path = folder / f"{tile_id}.png"
        if not path.is_file():
            raise DataError(listed_in, f"id {tile_id!r} has no image {path}")
        images[i] = read_tile_image(path)
    return images


def _depth_column(root: Path, ids: list[str]) -> np.ndarray | None:
    if not (root / "depths.csv").is_file():
        return None
    depths = read_depths(root)
    return np.array([depths.get(tile_id, np.nan) for tile_id in ids], dtype=np.float32)


def check_root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data root not found (pass data.root=DIR with the Kaggle layout)")
    return root


def load_train(root, check_masks: bool = True) -> TileSet:
    """Images and masks of every id in train.csv.

    Masks come from train/masks when that folder exists (each checked against its RLE row when
    `check_masks`), otherwise from the RLE in train.csv. Where train/labelled exists, every id
    has its labelled mask there (`TileSet.labelled`).
    """
    root = check_root(root)
    csv_path = root / "train.csv"
    table = read_id_csv(csv_path, ("id", "rle_mask"))
    if table.empty:
        raise DataError(csv_path, "lists no ids")
    ids = table["id"].tolist()
    images = _read_images(root / "train" / "images", ids, csv_path)
    masks = np.empty_like(images)
    mask_folder = root / "train" / "masks"
    for i, (tile_id, rle) in enumerate(zip(ids, table["rle_mask"])):
        from_rle = rle_decode(rle, source=f"{csv_path} (id {tile_id})")
        mask_path = mask_folder / f"{tile_id}.png"
        if mask_folder.is_dir():
            if not mask_path.is_file():
                raise DataError(csv_path, f"id {tile_id!r} has no mask {mask_path}")
            masks[i] = read_mask(mask_path)
            if check_masks and not np.array_equal(masks[i], from_rle):
                raise DataError(mask_path, f"mask disagrees with its rle_mask in {csv_path}")
        else:
            masks[i] = from_rle
    labelled = None
    labelled_folder = root / "train" / "labelled"
    if labelled_folder.is_dir():
        labelled = np.empty_like(images)
        for i, tile_id in enumerate(ids):
            path = labelled_folder / f"{tile_id}.png"
            if not path.is_file():
                raise DataError(csv_path, f"id {tile_id!r} has no labelled mask {path}")
            labelled[i] = read_mask(path)
    return TileSet(
        ids=ids, images=images, masks=masks, depths=_depth_column(root, ids), labelled=labelled
    )


def load_test(root) -> TileSet:
    """Images of every id in sample_submission.csv, in its order."""
    root = check_root(root)
    csv_path = root / "sample_submission.csv"
    ids = read_id_csv(csv_path, ("id",))["id"].tolist()
    folder = root / "test" / "images"
    if not folder.is_dir() or not any(folder.glob("*.png")):
        raise DataError(folder, "no test images (expected test/images/<id>.png)")
    if not ids:
        raise DataError(csv_path, "lists no ids")
    images = _read_images(folder, ids, csv_path)
    return TileSet(ids=ids, images=images, depths=_depth_column(root, ids))


def write_png(path, array: np.ndarray) -> None:
    """cv2.imwrite of a PNG (8- or 16-bit, gray or BGR) that raises where OpenCV returns False."""
    if not cv2.imwrite(str(path), array):
        raise OSError(errno.EIO, "OpenCV could not write the image", str(path))
