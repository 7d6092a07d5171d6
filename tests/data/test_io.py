"""Reading the Kaggle layout, and a one-line error naming the file for each kind of bad input."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from salt.core.errors import DataError
from salt.data.io import load_test, load_train, read_mask, read_tile_image
from salt.data.rle import rle_encode

TRAIN_IDS = ["a000000001", "a000000002", "a000000003", "a000000004"]
TEST_IDS = ["b000000001", "b000000002"]


def write_tile(path: Path, value_seed: int) -> np.ndarray:
    gray = np.random.default_rng(value_seed).integers(0, 256, (101, 101), dtype=np.uint8)
    cv2.imwrite(str(path), np.repeat(gray[..., None], 3, axis=2))
    return gray


def write_mask(path: Path, mask: np.ndarray) -> None:
    # as Kaggle ships them: 16-bit 0/65535, 8-bit when empty
    cv2.imwrite(str(path), mask.astype(np.uint16) * 65535 if mask.any() else mask.astype(np.uint8))


@pytest.fixture
def root(tmp_path) -> Path:
    for folder in ("train/images", "train/masks", "test/images"):
        (tmp_path / folder).mkdir(parents=True)
    rows = ["id,rle_mask"]
    for i, tile_id in enumerate(TRAIN_IDS):
        write_tile(tmp_path / "train/images" / f"{tile_id}.png", i)
        mask = np.zeros((101, 101), dtype=np.uint8)
        mask[50 + i * 10 :, : 20 * i] = 1
        write_mask(tmp_path / "train/masks" / f"{tile_id}.png", mask)
        rows.append(f"{tile_id},{rle_encode(mask)}")
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    for i, tile_id in enumerate(TEST_IDS):
        write_tile(tmp_path / "test/images" / f"{tile_id}.png", 100 + i)
    (tmp_path / "sample_submission.csv").write_text(
        "id,rle_mask\n" + "".join(f"{t},1 1\n" for t in TEST_IDS)
    )
    (tmp_path / "depths.csv").write_text(
        "id,z\n" + "".join(f"{t},{100 + i}\n" for i, t in enumerate(TRAIN_IDS + TEST_IDS))
    )
    return tmp_path


def assert_one_line_error(call, path_part: str, problem: str):
    with pytest.raises(DataError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    assert path_part in message, message
    assert problem in message, message


def test_reads_the_layout(root):
    train = load_train(root)
    assert train.ids == TRAIN_IDS
    assert train.images.shape == (4, 101, 101) and train.images.dtype == np.uint8
    assert np.array_equal(train.images[2], write_tile(root / "x.png", 2))
    assert set(np.unique(train.masks)) == {0, 1}
    assert train.masks[0].sum() == 0 and train.masks[3].sum() == 21 * 60
    assert train.depths.tolist() == [100, 101, 102, 103]
    test = load_test(root)
    assert test.ids == TEST_IDS and test.masks is None


def test_masks_from_rle_when_no_mask_folder(root):
    expected = load_train(root).masks
    for path in (root / "train/masks").iterdir():
        path.unlink()
    (root / "train/masks").rmdir()
    assert np.array_equal(load_train(root).masks, expected)


def test_mask_reader_accepts_8_and_16_bit(tmp_path):
    mask = np.zeros((101, 101), dtype=np.uint8)
    mask[10:20, 30:40] = 1
    for dtype, value in ((np.uint8, 255), (np.uint16, 65535), (np.uint8, 1)):
        cv2.imwrite(str(tmp_path / "m.png"), mask.astype(dtype) * value)
        assert np.array_equal(read_mask(tmp_path / "m.png"), mask)


def test_corrupt_png(root):
    path = root / "train/images" / f"{TRAIN_IDS[1]}.png"
    path.write_bytes(path.read_bytes()[:40])
    assert_one_line_error(lambda: load_train(root), str(path), "cannot be decoded")


def test_wrong_image_size(root):
    path = root / "train/images" / f"{TRAIN_IDS[0]}.png"
    cv2.imwrite(str(path), np.zeros((100, 101, 3), dtype=np.uint8))
    assert_one_line_error(
        lambda: load_train(root), str(path), "expected a 101x101 tile, got 101x100"
    )
    assert_one_line_error(lambda: read_tile_image(path), str(path), "101x100")


def test_non_binary_mask(root):
    path = root / "train/masks" / f"{TRAIN_IDS[2]}.png"
    cv2.imwrite(str(path), np.arange(101 * 101, dtype=np.uint16).reshape(101, 101))
    assert_one_line_error(lambda: load_train(root), str(path), "mask is not binary")


def rewrite_row(root: Path, index: int, rle: str) -> None:
    lines = (root / "train.csv").read_text().splitlines()
    lines[index + 1] = f"{TRAIN_IDS[index]},{rle}"
    (root / "train.csv").write_text("\n".join(lines) + "\n")


def test_odd_rle_tokens(root):
    rewrite_row(root, 1, "5 3 9")
    assert_one_line_error(lambda: load_train(root), "train.csv", "odd number of RLE tokens")


def test_rle_past_last_pixel(root):
    rewrite_row(root, 1, "10190 20")
    assert_one_line_error(lambda: load_train(root), "train.csv", "ends past pixel 10201")


def test_mask_disagreeing_with_its_rle(root):
    rewrite_row(root, 3, "1 5")
    assert_one_line_error(
        lambda: load_train(root), f"{TRAIN_IDS[3]}.png", "mask disagrees with its rle_mask"
    )


def test_duplicated_id(root):
    with open(root / "train.csv", "a") as csv:
        csv.write(f"{TRAIN_IDS[0]},\n")
    assert_one_line_error(lambda: load_train(root), "train.csv", f"duplicated id '{TRAIN_IDS[0]}'")


def test_id_without_image(root):
    (root / "train/images" / f"{TRAIN_IDS[2]}.png").unlink()
    assert_one_line_error(
        lambda: load_train(root), "train.csv", f"id '{TRAIN_IDS[2]}' has no image"
    )
    (root / "test/images" / f"{TEST_IDS[1]}.png").unlink()
    assert_one_line_error(
        lambda: load_test(root), "sample_submission.csv", f"id '{TEST_IDS[1]}' has no image"
    )


@pytest.mark.parametrize("name", ["train.csv", "sample_submission.csv"])
def test_missing_csv(root, name):
    (root / name).unlink()
    loader = load_train if name == "train.csv" else load_test
    assert_one_line_error(lambda: loader(root), name, "file not found")


def test_csv_without_its_columns(root):
    (root / "depths.csv").write_text("name,depth\nx,1\n")
    assert_one_line_error(lambda: load_train(root), "depths.csv", "missing column(s) id, z")


def test_missing_root_and_empty_test_folder(root, tmp_path):
    assert_one_line_error(
        lambda: load_train(tmp_path / "nowhere"), "nowhere", "data root not found"
    )
    for path in (root / "test/images").iterdir():
        path.unlink()
    assert_one_line_error(lambda: load_test(root), "test/images", "no test images")
