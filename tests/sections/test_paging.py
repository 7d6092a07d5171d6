"""Resident memory handed back (salt.sections.paging)."""

from __future__ import annotations

import sys

import pytest

from salt.sections.paging import return_freed_memory


def resident_mib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim, /proc")
def test_freed_heap_memory_leaves_the_resident_set():
    blocks = [bytearray(1000) for _ in range(200_000)]  # 200 MB in malloc's heap, not mmap
    keep = bytearray(1000)  # allocated after them: the heap's top stays in use, no auto-trim
    del blocks
    before = resident_mib()
    assert return_freed_memory()
    assert before - resident_mib() > 100
    assert len(keep) == 1000
