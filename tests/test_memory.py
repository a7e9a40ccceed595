"""Free memory given back to the system (glibc's malloc_trim), where the C library can."""

from __future__ import annotations

import os

import pytest

from app import memory
from app.memory import release_free_memory

PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE


@pytest.mark.skipif(memory._TRIM is None, reason="the C library has no malloc_trim")
def test_memory_freed_in_the_middle_of_a_heap_goes_back_to_the_system() -> None:
    # 48 MiB in 1 KiB objects (past Python's small-object allocator: malloc's), then one more
    # kept after them, so freeing them leaves the space inside the heap, not at its top.
    freed = [bytes(1024) for _ in range(48 * 1024)]
    kept = bytes(1024)
    before = _resident_bytes()
    del freed
    still = _resident_bytes()
    assert release_free_memory()
    after = _resident_bytes()
    assert before - still < 16 * 2**20  # freeing alone kept most of it resident
    assert still - after > 32 * 2**20  # released, it left
    assert kept == bytes(1024)
