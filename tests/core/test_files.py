"""salt.core.files: a file is written whole or not at all, and a failure leaves nothing behind."""

import errno
import json
import os
import stat

import cv2
import numpy as np
import pytest

from salt.core.errors import SaltError, WriteError
from salt.core.files import (
    FILE_MODE,
    atomic_folder,
    atomic_open,
    atomic_path,
    write_bytes,
    write_json,
    write_npz,
    write_text,
)


def test_helpers_write_whole_files_with_the_usual_mode(tmp_path):
    write_text(tmp_path / "a.txt", "ä\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_json(tmp_path / "c.json", {"b": 1, "a": [1.5]}, sort_keys=True)
    write_npz(tmp_path / "d.npz", {"ids": np.array(["x"]), "values": np.arange(3)})
    with atomic_path(tmp_path / "e.png") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".tmp.png") and tmp.is_file()
        assert cv2.imwrite(str(tmp), np.zeros((4, 4), np.uint8))
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "ä\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "c.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    with np.load(tmp_path / "d.npz") as data:
        assert data["ids"].tolist() == ["x"] and data["values"].tolist() == [0, 1, 2]
    assert cv2.imread(str(tmp_path / "e.png"), cv2.IMREAD_UNCHANGED).shape == (4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.txt",
        "b.bin",
        "c.json",
        "d.npz",
        "e.png",
    ]
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {FILE_MODE}


def test_a_failure_half_way_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"score": 1})

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), atomic_open(target) as handle:
        handle.write('{"score": ')
        handle.flush()
        raise Interrupted
    assert json.loads(target.read_text()) == {"score": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "s.csv"
    target.write_text("previous\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("salt.core.files.os.fsync", full_disk)
    with pytest.raises(WriteError) as error:
        write_text(target, "new\n")
    assert str(error.value) == f"{target}: could not be written (No space left on device)"
    assert isinstance(error.value, SaltError) and isinstance(error.value, OSError)
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["s.csv"]


def test_a_library_failing_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "p.npz"
    write_npz(target, {"probabilities": np.ones(2)})
    with pytest.raises(WriteError, match="p.npz: could not be written \\(disk quota exceeded\\)"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.EDQUOT, "disk quota exceeded")
    with np.load(target) as data:
        assert data["probabilities"].tolist() == [1.0, 1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]


def test_a_folder_that_refuses_files_is_named(tmp_path):
    missing = tmp_path / "missing" / "x.json"
    with pytest.raises(WriteError, match=f"x.json: cannot write in {tmp_path / 'missing'} \\("):
        write_json(missing, {})
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(WriteError, match="Permission denied"):
            write_text(locked / "x.txt", "x")
        assert list(locked.iterdir()) == []


def test_a_folder_is_written_whole_or_not_at_all(tmp_path):
    """atomic_folder: built in a hidden folder beside the target and renamed onto it (a folder
    there replaced); a failure inside the block leaves the old folder as it was, nothing beside."""
    target = tmp_path / "data"
    with atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".data.")
        umask = 0o666 & ~FILE_MODE  # its read and write bits
        assert stat.S_IMODE(staging.stat().st_mode) == 0o777 & ~umask  # a folder's usual mode
        (staging / "a.txt").write_text("first")
        assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    with pytest.raises(
        WriteError, match="data: could not be written \\(No space left on device\\)"
    ):
        with atomic_folder(target) as staging:
            (staging / "b.txt").write_text("second")
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KeyError):
        with atomic_folder(target):
            raise KeyError("not an OSError: raised as it is")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    with atomic_folder(target) as staging:
        (staging / "b.txt").write_text("second")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # the old one gone
    assert [p.name for p in target.iterdir()] == ["b.txt"]
