"""The server's heap policy: garbage collection tuned for large long-lived snapshots, and
letting go of them without stalling the event loop.

`tune_gc` (at start-up) and `settle_heap` (after each snapshot is stored) keep collections
from walking snapshots of a million objects again and again.

A FinSync snapshot of 50,000 clients is about a million objects. When its last reference
goes, CPython frees all of them in one cascade of C calls that holds the interpreter for
about 100 ms, on whichever thread happens to drop it: the event loop stalls. A `Reaper`
takes such a value instead and takes it apart in a worker thread, a few objects at a time,
between which the interpreter passes to the event loop as usual.

Only what nobody else can reach is taken apart: an object is emptied only when the reaper
holds the sole reference to it (its reference count says so), so a value still used by a
request, a build or a cache is left whole and simply dropped when the reaper is done with
what it could take.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
import time
from collections.abc import Callable

# An object held only by the reaper's own variable (and the call's argument).
_SOLE = 2
# How long a released value may stay held elsewhere before it is dropped whole.
_TRIES, _TRY_SECONDS = 20, 0.05


class Reaper:
    """A daemon thread that takes values apart gradually (see the module docstring)."""

    def __init__(self) -> None:
        self._values: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="tesoro-reaper", daemon=True)
        self._thread.start()

    def release(self, value: object) -> None:
        """Take `value` (the caller drops its own reference right after)."""
        self._idle.clear()
        self._values.put(value)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Whether everything released so far has been dealt with (tests, shutdown)."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            # Held in a box, never in a variable, so its count shows who else holds it.
            box = [self._values.get()]
            # The one who released it may still be dropping its own reference: wait a little.
            for _ in range(_TRIES):
                if sys.getrefcount(box[0]) <= _SOLE:
                    break
                time.sleep(_TRY_SECONDS)
            _take_apart(box.pop())
            if self._values.empty():
                self._idle.set()


def _take_apart(value: object) -> None:
    stack = [value]
    del value
    while stack:
        item = stack.pop()
        if sys.getrefcount(item) > _SOLE:
            continue  # someone else holds it: left whole, dropped here
        stack.extend(_contents(item))
        # `item` is dropped as the loop goes on: with its contents already out, that frees
        # one small object, not a tree.


def _contents(item: object) -> list[object]:
    """What `item` holds, taken out of it where it can be emptied."""
    if isinstance(item, list):
        held = item[:]
        item.clear()
        return held
    if isinstance(item, tuple | frozenset):
        return list(item)
    if isinstance(item, dict):
        held = [*item.keys(), *item.values()]
        item.clear()
        return held
    attributes = getattr(item, "__dict__", None)
    if isinstance(attributes, dict) and not isinstance(item, type | Callable):
        held = list(attributes.values())
        attributes.clear()
        return held
    return []


def _keep() -> None:
    """Nothing to do: the garbage collector as configured."""


def _drop(value: object) -> None:
    """Dropped where it is (the caller's reference goes right after)."""


class HeapPolicy:
    """What happens around a connection's load: `settle()` after it (the server freezes the
    heap there), and `release(old)` with the value it replaced (the server's `Reaper`)."""

    def __init__(
        self,
        *,
        settle: Callable[[], None] = _keep,
        release: Callable[[object], None] = _drop,
    ) -> None:
        self.settle = settle
        self.release = release


KEEP_HEAP = HeapPolicy()


# The server's policy: `tesoro serve` calls `tune_gc` and builds its app with `server_heap()`.

# Young objects collected every 10,000 allocations instead of 700: loading 50,000 clients
# allocates millions, and the default thresholds spent half of a cold load's CPU in the
# collector (in-process, 50,000 clients: 6.5 s -> 3.5 s of CPU).
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """The server's garbage-collection policy: what is alive at start-up (modules, settings,
    the app) is frozen out of every later collection, and young collections are rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def settle_heap() -> None:
    """After a snapshot is stored: freeze what is alive, the new snapshot first among it, so
    later full collections do not walk it (at 50,000 clients about a million objects, and a
    full collection over them stalled the event loop for about a second). Its objects are
    still freed by reference counting when the snapshot is replaced; tesoro's snapshots hold
    no reference cycles, which is what freezing would keep from being collected."""
    gc.freeze()


def server_heap() -> HeapPolicy:
    """What `tesoro serve` does around its snapshots: settle, and a reaper for the old."""
    return HeapPolicy(settle=settle_heap, release=Reaper().release)
