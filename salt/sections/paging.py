"""Memory-mapped volumes whose resident memory stays a few slices, however large they are.

A process that reads or writes a memmap keeps every page it touched mapped, so its resident
memory grows to the size of the volumes it went through, although the kernel could drop those
pages at any time. Releasing them now and then (madvise MADV_DONTNEED: for a file mapping, the
data stays in the file and the page cache) keeps the resident memory of a pass over a survey at
a few slices. Memory freed on the heap is handed back the same way (`trim_heap`), so that the
peak of one line or stage is not carried into the next.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import mmap

import numpy as np

PAGE_RELEASE_EVERY = 8  # slices


def release_pages(volume: np.ndarray) -> None:
    """Unmap the pages of a memmap read or written so far: they stay in the file (and the page
    cache), but no longer count in this process's resident memory, which would otherwise grow
    to the size of every volume touched."""
    handle = getattr(volume, "_mmap", None)
    if isinstance(handle, mmap.mmap):
        handle.madvise(mmap.MADV_DONTNEED)


def trim_heap() -> bool:
    """Hand the heap's free memory back to the system (glibc's malloc_trim): memory that Python,
    numpy and torch freed otherwise stays resident in the process's heap, for the next
    allocation. Whether the C library could do it (False off glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def return_freed_memory() -> bool:
    """Collect garbage (objects in reference cycles), then `trim_heap`."""
    gc.collect()
    return trim_heap()


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


class Slices:
    """A memmapped [inline, crossline, sample] volume read and written one inline at a time
    (`volume[i]`, `volume[i] = plane`: what salt.sections.bodies takes), its pages released
    every `PAGE_RELEASE_EVERY` slices so that resident memory stays a few slices."""

    def __init__(self, volume: np.ndarray) -> None:
        self.volume, self.shape, self.dtype = volume, volume.shape, volume.dtype
        self.touched = 0

    def _touch(self) -> None:
        self.touched += 1
        if self.touched % PAGE_RELEASE_EVERY == 0:
            release_pages(self.volume)

    def __getitem__(self, index: int) -> np.ndarray:
        plane = np.array(self.volume[index])
        self._touch()
        return plane

    def __setitem__(self, index: int, plane: np.ndarray) -> None:
        self.volume[index] = plane
        self._touch()

    def __len__(self) -> int:
        return self.shape[0]

    def flush(self) -> None:
        """Write what is in memory to the file (np.memmap.flush)."""
        flush = getattr(self.volume, "flush", None)
        if flush is not None:
            flush()
