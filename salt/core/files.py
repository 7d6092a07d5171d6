"""The one way salt writes a file: whole or not at all.

Every writer goes through `atomic_path`: a temporary file in the target's own folder (so the
rename never crosses file systems), written, flushed and synced to disk, then renamed over the
target with `os.replace`. A kill at any moment leaves either the previous file or the new one,
never a truncated one, and a failure removes the temporary file. An OSError on the way (a full
disk, a read-only folder) becomes a `WriteError`, one line naming the target:

    PATH: cannot write in FOLDER (reason)     the temporary file could not be made
    PATH: could not be written (reason)       writing, syncing or renaming failed

Helpers: `atomic_open` (a file handle: text, CSV writers, `torch.save`), `write_text`,
`write_bytes`, `write_json`, `write_npz`; `atomic_path` itself for libraries that write to a
path (cv2.imwrite, PIL, pandas, numpy, torch.onnx/torch.export). The temporary file is named
`.NAME.XXXXXXXX.tmp` with the target's suffix after it (`.mask.png.1a2b3c4d.tmp.png`), as some of
those libraries choose the format, or add a suffix, by the name.

A whole folder of files the same way: `atomic_folder` (a hidden `.NAME.XXXXXXXX.partial`
folder beside it, renamed into place at the end, removed on a failure).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from salt.core.errors import SaltError, WriteError

TEMPORARY_SUFFIX = ".tmp"
# mkstemp makes its file readable by its owner only; the written file gets the usual mode
_UMASK = os.umask(0o022)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _sync(path: Path) -> None:
    """Flush what a library wrote to `path` to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends
    without an error, removed when it raises (the error raised again; an OSError as a
    `WriteError` naming `path`). The file exists, empty, when the block starts."""
    path = Path(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX + path.suffix, dir=path.parent
        )
    except OSError as error:
        raise WriteError(f"{path}: cannot write in {path.parent} ({_reason(error)})") from None
    temporary = Path(name)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        yield temporary
        _sync(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, SaltError):
            raise WriteError(f"{path}: could not be written ({_reason(error)})") from None
        raise


@contextmanager
def atomic_open(path, mode: str = "w", **options) -> Iterator[IO[Any]]:
    """`open(path, mode)` on a temporary file that replaces `path` when the block ends (see
    `atomic_path`). Text is UTF-8 unless `encoding` says otherwise."""
    if "b" not in mode:
        options.setdefault("encoding", "utf-8")
    with atomic_path(path) as temporary, open(temporary, mode, **options) as handle:
        yield handle


def write_bytes(path, data: bytes) -> Path:
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json(path, payload: Any, sort_keys: bool = False) -> Path:
    """`payload` as indented JSON with a final newline."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=sort_keys) + "\n")


def write_npz(path, arrays: Mapping[str, np.ndarray], compressed: bool = True) -> Path:
    """Named arrays in one .npz file (`np.savez_compressed`, or `np.savez` unless `compressed`)."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, "wb") as handle:
        save(handle, **arrays)  # type: ignore[arg-type]  # mypy cannot tell it holds no allow_pickle
    return Path(path)


PARTIAL_SUFFIX = ".partial"


@contextmanager
def atomic_folder(path) -> Iterator[Path]:
    """A new empty folder beside `path` to fill; renamed onto `path` when the block ends without
    an error (a folder already at `path` is replaced: moved aside, then removed), removed with
    everything in it when the block raises (the error raised again; an OSError as a
    `WriteError` naming `path`). The caller decides whether `path` may be replaced."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
        )
    except OSError as error:
        raise WriteError(f"{path}: cannot write in {path.parent} ({_reason(error)})") from None
    try:
        staging.chmod(0o777 & ~_UMASK)  # mkdtemp's folder is its owner's only
        yield staging
        if path.is_dir() and not path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            aside = old / path.name
            path.replace(aside)  # aside first: the rename below needs the name free
            try:
                staging.replace(path)
            except OSError:
                aside.replace(path)  # the old folder back where it was
                old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.replace(path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, SaltError):
            raise WriteError(f"{path}: could not be written ({_reason(error)})") from None
        raise
