"""Per-connection snapshot cache: TTL freshness, request coalescing, stale-if-error.

cachetools' ``TTLCache`` is the storage; entries live for ``ttl + stale window``
so the last good value can still be served when the upstream fails. Loads run
as their own tasks, so every concurrent caller shares one upstream call and a
caller that goes away does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, TypeVar

from cachetools import TLRUCache, TTLCache

V = TypeVar("V")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    loaded_at: float  # monotonic seconds
    fetched_at: datetime
    version: int  # a new number for every load: what was built from a value can be kept by it


@dataclass(frozen=True)
class Cached(Generic[V]):
    """What a cache read returns: the value and how it stands."""

    value: V
    status: Literal["fresh", "stale"]
    fetched_at: datetime
    age_seconds: float
    expires_in_seconds: float
    version: int
    error: Exception | None = None


class SnapshotCache(Generic[V]):
    """One value per key (per upstream connection), loaded by the given coroutine."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        stale_if_error_seconds: float,
        min_refresh_interval_seconds: float = 0.0,
        failure_backoff_seconds: float | Callable[[Exception], float] = 0.0,
        maxsize: int = 64,
        stale_on: type[Exception] | tuple[type[Exception], ...] = (),
        stale_while_revalidate: bool = False,
        clock: Callable[[], float] = time.monotonic,
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        # Told (key, outcome) of every read: hit, miss, coalesced_wait, stale_served, and
        # background_refresh for a load started behind a stale answer (metrics listen).
        self._observe = observe
        # Past the TTL, serve the value at once (as stale) while one load runs behind it,
        # instead of making the caller wait for the upstream.
        self._stale_while_revalidate = stale_while_revalidate
        # Keys whose next read must wait for a load (invalidated: the value is known old).
        self._must_load: set[str] = set()
        # Only these failures of a load are covered by stale data and remembered for the
        # back-off; anything else (a bug) propagates as it is.
        self._stale_on = stale_on
        self._versions = itertools.count(1)
        self.ttl_seconds = ttl_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        self.min_refresh_interval_seconds = min_refresh_interval_seconds
        self._clock = clock
        self._store: TTLCache[str, _Entry[V]] = TTLCache(
            maxsize=maxsize, ttl=ttl_seconds + stale_if_error_seconds, timer=clock
        )
        self._inflight: dict[str, asyncio.Task[_Entry[V]]] = {}
        # A failed load is remembered briefly so a down upstream is not called on every request.
        # How long a failure is not tried again: a number, or one per kind of failure (an
        # expired consent can wait an hour; a time-out, seconds).
        self._backoff: Callable[[Exception], float]
        if callable(failure_backoff_seconds):
            self._backoff = failure_backoff_seconds
        else:
            fixed_seconds = failure_backoff_seconds
            self._backoff = lambda _exc: fixed_seconds
        self._failures: TLRUCache[str, Exception] = TLRUCache(
            maxsize=maxsize, ttu=self._failure_expires_at, timer=clock
        )

    def _failure_expires_at(self, key: str, failure: Exception, now: float) -> float:
        return now + self._backoff(failure)

    def _cached(self, entry: _Entry[V], error: Exception | None = None) -> Cached[V]:
        age = max(0.0, self._clock() - entry.loaded_at)
        fresh = age < self.ttl_seconds and error is None
        return Cached(
            value=entry.value,
            status="fresh" if fresh else "stale",
            fetched_at=entry.fetched_at,
            age_seconds=age,
            expires_in_seconds=max(0.0, self.ttl_seconds - age) if fresh else 0.0,
            version=entry.version,
            error=error,
        )

    def peek(self, key: str) -> Cached[V] | None:
        """The value held, fresh or stale, without loading."""
        entry = self._store.get(key)
        return None if entry is None else self._cached(entry)

    def invalidate(self, key: str) -> None:
        """Make the next read load again, but keep the value for stale-if-error."""
        self._must_load.add(key)
        entry = self._store.get(key)
        if entry is not None:
            expired_at = self._clock() - self.ttl_seconds
            self._store[key] = _Entry(
                entry.value, min(entry.loaded_at, expired_at), entry.fetched_at, entry.version
            )

    async def get(
        self, key: str, load: Callable[[], Awaitable[V]], *, refresh: bool = False
    ) -> Cached[V]:
        """Fresh value from the cache, else one (shared) load; stale on upstream error, and,
        with stale-while-revalidate, stale at once past the TTL while one load runs."""
        observe = self._observe
        entry = self._store.get(key)
        if entry is not None:
            age = self._clock() - entry.loaded_at
            if (age < self.ttl_seconds and not refresh) or (
                # Forced refreshes are rate-limited per connection: banks count every call.
                refresh and age < self.min_refresh_interval_seconds
            ):
                if observe is not None:
                    observe(key, "hit")
                return self._cached(entry)
            if self._stale_while_revalidate and not refresh and key not in self._must_load:
                if key not in self._failures:  # a failed load waits out its back-off
                    if observe is not None and key not in self._inflight:
                        observe(key, "background_refresh")
                    self._load(key, load)
                if observe is not None:
                    observe(key, "stale_served")
                return self._cached(entry)
        recent_failure = self._failures.get(key)
        try:
            if recent_failure is not None:
                raise recent_failure.with_traceback(None)
            if observe is not None:
                observe(key, "coalesced_wait" if key in self._inflight else "miss")
            entry = await asyncio.shield(self._load(key, load))
        except self._stale_on as exc:
            entry = self._store.get(key)
            if entry is None:
                raise
            if observe is not None:
                observe(key, "stale_served")
            return self._cached(entry, exc)
        return self._cached(entry)

    def _load(self, key: str, load: Callable[[], Awaitable[V]]) -> asyncio.Task[_Entry[V]]:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._run(key, load))
            # Every caller may have gone away: read the outcome so asyncio never logs it as lost.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._inflight[key] = task
        return task

    async def _run(self, key: str, load: Callable[[], Awaitable[V]]) -> _Entry[V]:
        try:
            entry = _Entry(await load(), self._clock(), datetime.now(UTC), next(self._versions))
        except self._stale_on as exc:
            # Logged here, once per real load, not once per request it fails.
            logger.warning(
                "%s failed: %s",
                key,
                exc,
                extra={"connection": key, "code": getattr(exc, "code", type(exc).__name__)},
            )
            if self._backoff(exc) > 0:
                self._failures[key] = exc
            raise
        else:
            self._store[key] = entry
            self._failures.pop(key, None)
            self._must_load.discard(key)
            return entry
        finally:
            self._inflight.pop(key, None)
