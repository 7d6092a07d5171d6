import numpy as np
import pytest

from salt.core.errors import DataError
from salt.data.rle import rle_decode, rle_encode


def test_encode_is_one_indexed_and_column_major():
    mask = np.zeros((3, 3), dtype=np.uint8)
    mask[0, 0] = 1  # pixel 1
    mask[1:, 1] = 1  # pixels 5, 6 (second column, rows 1-2)
    mask[0, 2] = 1  # pixel 7
    assert rle_encode(mask) == "1 1 5 3"


def test_run_crossing_columns_and_last_pixel():
    mask = np.zeros((101, 101), dtype=np.uint8)
    mask[-1, 0] = 1
    mask[0, 1] = 1
    mask[-1, -1] = 1
    assert rle_encode(mask) == "101 2 10201 1"
    assert np.array_equal(rle_decode("101 2 10201 1"), mask)


def test_empty_mask_is_empty_string_and_back():
    assert rle_encode(np.zeros((101, 101))) == ""
    for empty in ("", None, float("nan"), "   "):
        assert rle_decode(empty).sum() == 0


def test_full_mask():
    assert rle_encode(np.ones((101, 101))) == "1 10201"
    assert rle_decode("1 10201").all()


def test_round_trip_random_masks():
    rng = np.random.default_rng(0)
    for density in (0.01, 0.3, 0.9):
        mask = (rng.random((101, 101)) < density).astype(np.uint8)
        assert np.array_equal(rle_decode(rle_encode(mask)), mask)


@pytest.mark.parametrize(
    "rle, problem",
    [
        ("1 2 3", "odd number of RLE tokens"),
        ("10200 3", "ends past pixel 10201"),
        ("0 4", "start >= 1"),
        ("5 0", "length >= 1"),
        ("1 a", "not an integer"),
        ("10 5 12 2", "overlaps or is out of order"),
    ],
)
def test_bad_rle_names_source_and_problem(rle, problem):
    with pytest.raises(DataError, match=problem) as error:
        rle_decode(rle, source="train.csv (id abc)")
    assert str(error.value).startswith("train.csv (id abc): ")
    assert "\n" not in str(error.value)
