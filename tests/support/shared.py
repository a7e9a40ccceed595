"""An in-memory shared tier (app.cache.SharedSnapshots) for SnapshotCache tests: what Redis
holds for the fleet, with a count of every call, and a switch that makes it unreachable."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from app.cache import SharedSnapshot, SharedState

V = TypeVar("V")


class MemoryShared(Generic[V]):
    def __init__(self) -> None:
        self.snapshots: dict[str, SharedSnapshot[V]] = {}
        self.failures: dict[str, tuple[Exception, float]] = {}  # failure, until (wall clock)
        self.locks: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.unreachable = False
        self.wait_seconds = 2.0
        self.poll_seconds = 0.01

    async def read(self, key: str) -> SharedState:
        self.calls["read"] += 1
        snapshot = None if self.unreachable else self.snapshots.get(key)
        failure, until = self.failures.get(key, (None, 0.0))
        if self.unreachable or until <= time.time():
            failure = None
        return SharedState(
            loaded_at=None if snapshot is None else snapshot.loaded_at,
            version=None if snapshot is None else snapshot.version,
            failure=failure,
            failure_seconds=max(0.0, until - time.time()),
        )

    async def fetch(self, key: str) -> SharedSnapshot[V] | None:
        self.calls["fetch"] += 1
        return None if self.unreachable else self.snapshots.get(key)

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[bool]:
        self.calls["claim"] += 1
        if self.unreachable:
            yield True
            return
        if key in self.locks:
            yield False
            return
        self.locks.add(key)
        try:
            yield True
        finally:
            self.locks.discard(key)

    async def write(self, key: str, snapshot: SharedSnapshot[V], *, keep_seconds: float) -> None:
        self.calls["write"] += 1
        if not self.unreachable:
            self.snapshots[key] = snapshot
            self.failures.pop(key, None)

    async def fail(self, key: str, failure: Exception, *, seconds: float) -> None:
        self.calls["fail"] += 1
        if not self.unreachable:
            self.failures[key] = (failure, time.time() + seconds)
