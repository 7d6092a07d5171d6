import errno
import re

import numpy as np
import pandas as pd
import pytest

from salt.core.errors import DataError, SaltError
from salt.data.rle import rle_decode
from salt.inference.postprocess import PostProcess, fill_holes, remove_small_components
from salt.inference.submission import check_submission_rows, write_submission

IDS = ["c1", "c2", "c3"]


def masks(n=3):
    out = np.zeros((max(n, 3), 101, 101), dtype=np.uint8)
    out[1, 10:20, 10:30] = 1
    out[2] = 1
    return out[:n]


def test_written_in_sample_order_and_decodes_back(tmp_path):
    path = write_submission(tmp_path / "s.csv", IDS[::-1], masks()[::-1], IDS)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert table["id"].tolist() == IDS
    assert table["rle_mask"].iloc[0] == "" and table["rle_mask"].iloc[2] == "1 10201"
    decoded = np.stack([rle_decode(r) for r in table["rle_mask"]])
    assert np.array_equal(decoded, masks())
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]  # no temporary file left


@pytest.mark.parametrize(
    "ids, problem",
    [
        (["c1", "c2"], "1 id(s) of sample_submission.csv missing, e.g. 'c3'"),
        (["c1", "c2", "c2"], "id 'c2' appears more than once"),
        (["c1", "c2", "c3", "c4"], "id 'c4' is not in sample_submission.csv"),
    ],
)
def test_refuses_missing_repeated_or_unknown_ids_and_writes_nothing(tmp_path, ids, problem):
    with pytest.raises(DataError, match=re.escape(problem)):
        write_submission(tmp_path / "s.csv", ids, masks(len(ids)), IDS)
    assert list(tmp_path.iterdir()) == []


def test_refuses_bad_rle(tmp_path):
    with pytest.raises(DataError, match="ends past pixel 10201"):
        check_submission_rows(tmp_path / "s.csv", IDS, ["", "10200 5", ""], IDS)
    with pytest.raises(DataError, match="odd number of RLE tokens"):
        check_submission_rows(tmp_path / "s.csv", IDS, ["1", "", ""], IDS)


def test_missing_folder_or_full_disk_is_one_line_error_and_keeps_the_old_file(
    tmp_path, monkeypatch
):
    with pytest.raises(SaltError, match="does not exist"):
        write_submission(tmp_path / "missing" / "s.csv", IDS, masks(), IDS)
    target = tmp_path / "s.csv"
    target.write_text("previous\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("salt.core.files.os.fsync", full_disk)
    with pytest.raises(
        SaltError, match="s.csv: could not be written \\(No space left on device\\)"
    ):
        write_submission(target, IDS, masks(), IDS)
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


def test_remove_small_components_and_fill_holes():
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[1:3, 1:3] = 1  # 4 px
    mask[5:15, 5:15] = 1  # 100 px with a 4 px hole
    mask[9:11, 9:11] = 0
    kept = remove_small_components(mask, 5)
    assert kept[1:3, 1:3].sum() == 0 and kept.sum() == 96
    filled = fill_holes(kept)
    assert filled.sum() == 100
    edge = np.zeros((20, 20), dtype=np.uint8)
    edge[:, 5] = 1  # the background left of the line touches the border: not a hole
    assert fill_holes(edge).sum() == 20


def test_postprocess_gates():
    probabilities = np.zeros((3, 101, 101), dtype=np.float32)
    probabilities[0, :2, :2] = 0.9  # 4 px
    probabilities[1, :20, :20] = 0.9  # 400 px
    probabilities[2, :20, :20] = 0.6
    area = PostProcess(gate="area", min_area=10)(probabilities)
    assert area.reshape(3, -1).sum(1).tolist() == [0, 400, 400]
    by_classifier = PostProcess(gate="classifier", salt_threshold=0.5)(
        probabilities, np.array([0.9, 0.2, 0.9])
    )
    assert by_classifier.reshape(3, -1).sum(1).tolist() == [4, 0, 400]
    assert PostProcess(threshold=0.7)(probabilities).reshape(3, -1).sum(1).tolist() == [4, 400, 0]
    with pytest.raises(ValueError, match="classifier head"):
        PostProcess(gate="classifier")(probabilities)
