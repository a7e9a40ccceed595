"""Free memory handed back to the system after a large value is let go.

glibc keeps what a process frees inside its heaps (one per thread that allocated, up to eight
a core) and returns it only from the top of a heap: a snapshot, an answer or the history
recorder's rows of 50,000 clients freed in the middle stay resident. `malloc_trim(0)` gives
every whole free page of every heap back. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return None  # not glibc
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the heaps' free pages to the system; whether any was (False where the C library
    cannot). Takes milliseconds for hundreds of megabytes and holds each heap's lock in turn,
    never the interpreter: call it off the event loop, after something large was freed."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))
