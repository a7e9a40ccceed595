"""Per-connection snapshot cache: TTL freshness, request coalescing, stale-if-error.

cachetools' ``TTLCache`` is the storage; entries live for ``ttl + stale window``
so the last good value can still be served when the upstream fails. Loads run
as their own tasks, so every concurrent caller shares one upstream call and a
caller that goes away does not cancel it for the others.

With a shared tier (several replicas, `SharedSnapshots`), a local miss asks it before the
upstream: a snapshot another replica loaded is taken with its load time (ages, TTLs and the
refresh floor hold fleet-wide), one replica at a time loads a key while the others wait for
its snapshot, and a failure's back-off is shared. A fresh local hit never asks it.

One clock: ages are measured on this replica's monotonic clock. A shared snapshot's wall-clock
load time is read once, against this replica's wall clock; one stamped in the future (another
replica's clock runs ahead, or a crafted value) is never trusted: it is not taken at all (this
replica loads for itself), so it never extends freshness and no answer shows its stamp.

A stale answer carries the failure of the last load behind it until a load succeeds; it has
no error only while its first refresh is still running.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, Literal, Protocol, TypeVar

from cachetools import TLRUCache, TTLCache

from app.flight import Flights
from app.memory import release_free_memory

V = TypeVar("V")

logger = logging.getLogger(__name__)

# A shared snapshot stamped up to this far in the future counts as loaded now (clocks kept by
# NTP differ by milliseconds); further ahead, it is not taken at all.
CLOCK_SKEW_TOLERANCE_SECONDS = 1.0

# How a connection stands after what its cache just learnt (metrics listen):
# loaded: a load succeeded (here, or on another replica through the shared tier);
# refreshing: data past its TTL is served while a refresh runs behind it, no load having
# failed since the last success; failed_serving_stale: the last load failed and older data
# is served; failed: the last load failed and nothing is held.
LoadState = Literal["loaded", "refreshing", "failed_serving_stale", "failed"]


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


@dataclass(frozen=True, slots=True)
class Lease:
    """What a read of one key of `cache` answers now, and for how long reading it again
    answers the same (its age aside), while the cache's `changes` is still `changes`:

    - a fresh entry (`version`, `loaded_at`): until `cache.expires_in(loaded_at)` is None;
    - nothing held and a recent failure in its back-off (`failure`, raised again by every
      read): until `failed_until`, on the cache's clock."""

    cache: SnapshotCache[Any]
    key: str
    changes: int
    version: int | None = None
    loaded_at: float | None = None
    failure: Exception | None = None
    failed_until: float | None = None


@dataclass(frozen=True)
class SharedSnapshot(Generic[V]):
    """A value as the shared tier holds it for every replica."""

    value: V
    loaded_at: float  # wall-clock seconds (time.time()) of the load: one clock for the fleet
    fetched_at: datetime
    version: int


@dataclass(frozen=True)
class SharedState:
    """What the shared tier knows of a key, without its (large) value."""

    loaded_at: float | None = None  # of the snapshot held, if any
    version: int | None = None
    failure: Exception | None = None  # a load that failed, still in its back-off
    failure_seconds: float = 0.0  # how much longer that back-off lasts


class SharedSnapshots(Protocol[V]):
    """A tier behind the cache that replicas share (Redis). It never raises: when it cannot be
    reached, reads find nothing, `claim` lets this replica load, and writes are dropped."""

    wait_seconds: float  # how long a replica waits for another's load before loading itself
    poll_seconds: float

    async def read(self, key: str) -> SharedState: ...

    async def fetch(self, key: str) -> SharedSnapshot[V] | None: ...

    def claim(self, key: str) -> AbstractAsyncContextManager[bool]:
        """True while this replica is the one to load `key` (or the tier is unreachable)."""
        ...

    async def write(
        self, key: str, snapshot: SharedSnapshot[V], *, keep_seconds: float
    ) -> None: ...

    async def fail(self, key: str, failure: Exception, *, seconds: float) -> None: ...


# How long the thread holds a released value before letting go: the caller (synchronous code
# on the loop) has dropped its own references long before.
_LET_GO_AFTER_SECONDS = 0.1


def _no_count() -> None:
    """A hit counted by nobody (a cache without an observer)."""


def let_go_elsewhere(value: object) -> None:
    """`value`'s reference let go in a short-lived thread, not here: when it is the last one,
    freeing a large snapshot is one C call that holds the interpreter (about 65 ms for 50,000
    clients of Structs) and would stall the event loop. The caller drops its own reference
    right after; whoever else holds the value keeps it alive as usual. The memory freed is
    then given back to the system (`release_free_memory`)."""
    threading.Thread(target=_drop, args=([value],), name="tesoro-let-go", daemon=True).start()


def _drop(held: list[object]) -> None:
    time.sleep(_LET_GO_AFTER_SECONDS)
    held.clear()  # the thread's reference, the last one unless someone else still holds it
    release_free_memory()


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
        wall_clock: Callable[[], float] = time.time,
        observe: Callable[[str, str], None] | None = None,
        on_state: Callable[[str, LoadState], None] | None = None,
        on_value: Callable[[str, Cached[V] | None, Exception | None], None] | None = None,
        stamp: Callable[[V], datetime | None] | None = None,
        shared: SharedSnapshots[V] | None = None,
        log_failures: bool = True,
    ) -> None:
        self._shared = shared
        # False for a cache whose loads are part of another's (that one's line says it).
        self._log_failures = log_failures
        # Back-offs learnt from the shared tier keep the time they have left there.
        self._failure_seconds: dict[str, float] = {}
        # When each key's last failure remembered for its back-off ends (clock seconds).
        self._failed_until: dict[str, float] = {}
        # Told (key, outcome) of every read: hit, miss, coalesced_wait, stale_served, and
        # background_refresh for a load started behind a stale answer (metrics listen).
        self._observe = observe
        # Told (key, state) when what the cache knows of a key's loads changes (metrics).
        self._on_state = on_state
        # Told (key, value held, None) of every value stored, however it came (a load here,
        # another replica's snapshot), and (key, value held or None, failure) of every failed
        # load: history records each new data state and status from here.
        self._on_value = on_value
        # When the value says it was received (its own stamp), that moment is the entry's
        # fetched_at, so the value's parts and the snapshot name one moment.
        self._stamp = stamp
        # Past the TTL, serve the value at once (as stale) while one load runs behind it,
        # instead of making the caller wait for the upstream.
        self._stale_while_revalidate = stale_while_revalidate
        # Keys whose next read must wait for a load (invalidated: the value is known old), and
        # when (wall clock): a shared snapshot from before then is old too.
        self._must_load: dict[str, float] = {}
        # Only these failures of a load are covered by stale data and remembered for the
        # back-off; anything else (a bug) propagates as it is.
        self._stale_on = stale_on
        self._versions = itertools.count(1)
        self.ttl_seconds = ttl_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        self.min_refresh_interval_seconds = min_refresh_interval_seconds
        self._clock = clock
        # Wall-clock time: stamps (fetched_at) and the shared tier's load times only; every
        # age held here is measured on the monotonic `clock`.
        self._wall = wall_clock
        self._store: TTLCache[str, _Entry[V]] = TTLCache(
            maxsize=maxsize, ttl=ttl_seconds + stale_if_error_seconds, timer=clock
        )
        self._inflight = Flights[str, _Entry[V]]()
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
        # The failure of the last load of each key, kept until a load succeeds (after its
        # back-off too): every stale answer says why it is stale.
        self._last_failure: dict[str, Exception] = {}
        # The shared snapshot version last warned about as stamped in the future, per key.
        self._future_warned: dict[str, int] = {}
        # Counts every change of what a read may answer other than by time passing: a value
        # stored (a load here, another replica's snapshot), a failure learnt, an
        # invalidation. A fresh read is answered from this replica alone (the shared tier is
        # asked only past the TTL), so while `changes` stands and the TTL lasts, reading a
        # fresh key again gives the same value, version and stamp (`Lease`).
        self.changes = 0

    def _failure_expires_at(self, key: str, failure: Exception, now: float) -> float:
        seconds = self._failure_seconds.pop(key, None)
        expires = now + (self._backoff(failure) if seconds is None else seconds)
        # Held while `now < expires` (the TLRU cache's rule): a `Lease` of it says until when.
        self._failed_until[key] = expires
        return expires

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._wall(), UTC)

    def _cached(self, key: str, entry: _Entry[V], error: Exception | None = None) -> Cached[V]:
        age = max(0.0, self._clock() - entry.loaded_at)
        if age >= self.ttl_seconds and error is None:
            # Stale because its refresh failed (until a load succeeds), not merely old.
            error = self._last_failure.get(key)
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

    def _tell(self, key: str, state: LoadState) -> None:
        if self._on_state is not None:
            self._on_state(key, state)

    def _failed(self, key: str, failure: Exception) -> None:
        """A load of `key` failed (here, or on another replica, told by the shared tier)."""
        self.changes += 1
        self._last_failure[key] = failure
        held = self._store.get(key)
        self._tell(key, "failed" if held is None else "failed_serving_stale")
        if self._on_value is not None:
            self._on_value(key, None if held is None else self._cached(key, held, failure), failure)

    def _refreshing(self, key: str) -> None:
        """A load was started behind a stale answer."""
        if key not in self._last_failure:
            self._tell(key, "refreshing")

    def peek(self, key: str) -> Cached[V] | None:
        """The value held, fresh or stale, without loading."""
        entry = self._store.get(key)
        return None if entry is None else self._cached(key, entry)

    def invalidate(self, key: str) -> None:
        """Make the next read load again, but keep the value for stale-if-error."""
        self.changes += 1
        self._must_load[key] = self._wall()
        entry = self._store.get(key)
        if entry is not None:
            expired_at = self._clock() - self.ttl_seconds
            self._store[key] = _Entry(
                entry.value, min(entry.loaded_at, expired_at), entry.fetched_at, entry.version
            )

    def _held_answers(
        self, key: str, entry: _Entry[V], refresh: bool
    ) -> Literal["hit", "stale"] | None:
        """How a held entry answers a read without waiting for a load: as it is (fresh, or a
        forced refresh inside the refresh floor), as stale while a load runs behind it, or
        not at all."""
        age = self._clock() - entry.loaded_at
        if (age < self.ttl_seconds and not refresh) or (
            # Forced refreshes are rate-limited per connection: banks count every call.
            refresh and age < self.min_refresh_interval_seconds
        ):
            return "hit"
        return "stale" if self._may_serve_stale(key, refresh) else None

    def _may_serve_stale(self, key: str, refresh: bool) -> bool:
        # Stale-while-revalidate, unless the caller forces a refresh or the value is known old.
        return self._stale_while_revalidate and not refresh and key not in self._must_load

    def lease(self, key: str) -> Lease | None:
        """What a read of `key` answers now as a `Lease`, when it is a fresh entry or a
        recent failure with nothing held; else None (a stale answer may start a load)."""
        entry = self._store.get(key)
        if entry is not None:
            if self._clock() - entry.loaded_at >= self.ttl_seconds:
                return None
            return Lease(self, key, self.changes, entry.version, entry.loaded_at)
        failure = self._failures.get(key)
        until = self._failed_until.get(key)
        if failure is None or until is None:
            return None
        return Lease(self, key, self.changes, failure=failure, failed_until=until)

    def clock(self) -> float:
        """The cache's own (monotonic) clock, which its ages and back-offs are counted on."""
        return self._clock()

    def expires_in(self, loaded_at: float) -> float | None:
        """What a read of an entry loaded at `loaded_at` says of it now: the seconds it stays
        fresh (`Cached.expires_in_seconds`, the same arithmetic), None when it is not fresh."""
        age = max(0.0, self._clock() - loaded_at)
        return max(0.0, self.ttl_seconds - age) if age < self.ttl_seconds else None

    def hit(self, key: str) -> None:
        """Count a fresh read of `key` answered from a `Lease` (as `get` counts one)."""
        if self._observe is not None:
            self._observe(key, "hit")

    def hit_counter(self, key: str) -> Callable[[], None]:
        """`hit(key)` as one call, to count the same key's fresh reads again and again: the
        observer's own counter of them when it offers one (`Observer.counter`, e.g. the
        metrics' bound child), so a count is an increment, not a look-up."""
        observe = self._observe
        if observe is None:
            return _no_count
        counter = getattr(observe, "counter", None)
        if counter is not None:
            bound: Callable[[], None] = counter(key, "hit")
            return bound
        return partial(observe, key, "hit")

    def answers_at_once(self, key: str, *, refresh: bool = False) -> bool:
        """Whether `get` would answer without waiting for a load (held data it may serve, or
        a recent failure it re-raises): the caller can then skip a task of its own."""
        entry = self._store.get(key)
        if entry is not None and self._held_answers(key, entry, refresh) is not None:
            return True
        return key in self._failures

    async def get(
        self, key: str, load: Callable[[], Awaitable[V]], *, refresh: bool = False
    ) -> Cached[V]:
        """Fresh value from the cache, else one (shared) load; stale on upstream error, and,
        with stale-while-revalidate, stale at once past the TTL while one load runs."""
        observe = self._observe
        entry = self._store.get(key)
        held = None if entry is None else self._held_answers(key, entry, refresh)
        if entry is not None and held is not None:
            if held == "hit":
                if observe is not None:
                    observe(key, "hit")
                return self._cached(key, entry)
            if key not in self._failures:  # a failed load waits out its back-off
                if key not in self._inflight:
                    if observe is not None:
                        observe(key, "background_refresh")
                    self._refreshing(key)
                self._load(key, load)
            if observe is not None:
                observe(key, "stale_served")
            return self._cached(key, entry)
        recent_failure = self._failures.get(key)
        try:
            if recent_failure is not None:
                raise recent_failure.with_traceback(None)
            if observe is not None:
                observe(key, "coalesced_wait" if key in self._inflight else "miss")
            entry = await self._inflight.run(key, lambda: self._run(key, load, refresh))
        except self._stale_on as exc:
            entry = self._store.get(key)
            if entry is None:
                raise
            if observe is not None:
                observe(key, "stale_served")
            return self._cached(key, entry, exc)
        return self._cached(key, entry)

    def _load(self, key: str, load: Callable[[], Awaitable[V]]) -> None:
        """The load of `key` under way, else a new one, left to run behind a stale answer."""
        self._inflight.join(key, lambda: self._run(key, load))

    def _start(self, key: str, load: Callable[[], Awaitable[V]], refresh: bool) -> None:
        """A new load of `key`, the one every read of it now waits for."""
        self._inflight.start(key, lambda: self._run(key, load, refresh))

    async def _run(
        self, key: str, load: Callable[[], Awaitable[V]], refresh: bool = False
    ) -> _Entry[V]:
        if self._shared is not None:
            return await self._through_shared(self._shared, key, load, refresh)
        return await self._load_upstream(key, load)

    async def _load_upstream(self, key: str, load: Callable[[], Awaitable[V]]) -> _Entry[V]:
        try:
            value = await load()
        except self._stale_on as exc:
            # Logged here, once per real load, not once per request it fails.
            if self._log_failures:
                logger.warning(
                    "%s failed: %s",
                    key,
                    exc,
                    extra={"connection": key, "code": getattr(exc, "code", type(exc).__name__)},
                )
            self._failed(key, exc)
            backoff = self._backoff(exc)
            if backoff > 0:
                self.changes += 1
                self._failures[key] = exc
                if self._shared is not None:
                    await self._shared.fail(key, exc, seconds=backoff)
            raise
        loaded_at, wall = self._clock(), self._wall()
        fetched_at = self._fetched_at(value, datetime.fromtimestamp(wall, UTC))
        if self._shared is None:
            return self._keep(key, _Entry(value, loaded_at, fetched_at, next(self._versions)))
        # One number for this load on every replica, so their answers' ETags agree.
        entry = _Entry(value, loaded_at, fetched_at, random.getrandbits(62))
        snapshot = SharedSnapshot(value, wall, entry.fetched_at, entry.version)
        keep_seconds = self.ttl_seconds + self.stale_if_error_seconds
        await self._shared.write(key, snapshot, keep_seconds=keep_seconds)
        return self._keep(key, entry)

    def _fetched_at(self, value: V, now: datetime) -> datetime:
        """The value's own stamp when it has one (never later than now), else now."""
        stamped = None if self._stamp is None else self._stamp(value)
        return now if stamped is None or stamped > now else stamped

    def _keep(self, key: str, entry: _Entry[V]) -> _Entry[V]:
        self._put(key, entry)  # (a change counted)
        self._failures.pop(key, None)
        self._must_load.pop(key, None)
        self._last_failure.pop(key, None)
        self._tell(key, "loaded")
        return entry

    def _put(self, key: str, entry: _Entry[V]) -> None:
        """Store a newly loaded (or fetched) value for `key`."""
        self.changes += 1
        replaced = self._store.get(key)
        self._store[key] = entry
        if self._on_value is not None and (replaced is None or replaced.version != entry.version):
            self._on_value(key, self._cached(key, entry), None)
        if replaced is not None and replaced.value is not entry.value:
            let_go_elsewhere(replaced.value)
            del replaced

    # The shared tier: asked on a local miss or expiry only.

    async def _through_shared(
        self,
        shared: SharedSnapshots[V],
        key: str,
        load: Callable[[], Awaitable[V]],
        refresh: bool,
    ) -> _Entry[V]:
        """Another replica's snapshot when it will do; else this replica loads under the
        fleet's lock for `key`, or waits (bounded) for the replica holding it."""
        waited_until = self._clock() + shared.wait_seconds
        # Cold here: a stale snapshot found in the shared tier may answer at once.
        first = key not in self._store
        while True:
            found = await self._from_shared(shared, key, refresh, await shared.read(key))
            if found is not None:
                return found
            if first:
                first = False
                stale = self._store.get(key)
                if stale is not None and self._may_serve_stale(key, refresh):
                    # A stale snapshot (from the shared tier) answers at once; one load
                    # goes on behind it (replacing this one as the key's load), as
                    # stale-while-revalidate does locally.
                    self._refreshing(key)
                    self._start(key, load, refresh)
                    return stale
            async with shared.claim(key) as mine:
                if mine:
                    # What the replica before us wrote just before letting go counts.
                    found = await self._from_shared(shared, key, refresh, await shared.read(key))
                    return found if found is not None else await self._load_upstream(key, load)
            if self._clock() >= waited_until:
                logger.warning("%s: no snapshot from the replica loading it; loading here", key)
                return await self._load_upstream(key, load)
            await asyncio.sleep(shared.poll_seconds)

    def _shared_age(self, key: str, loaded_at: float, version: int) -> float | None:
        """A shared snapshot's age on this replica's clock; None when it is stamped in the
        future beyond the tolerance (another replica's clock runs ahead, or the value is
        crafted): such a snapshot is not taken at all, warned about once per snapshot."""
        age = self._wall() - loaded_at
        if age >= -CLOCK_SKEW_TOLERANCE_SECONDS:
            return max(0.0, age)
        if self._future_warned.get(key) != version:
            self._future_warned[key] = version
            logger.warning(
                "%s: the shared snapshot is stamped %.0f s in this replica's future (a "
                "replica's clock runs ahead?); not taken, loaded here instead",
                key,
                -age,
                extra={"connection": key},
            )
        return None

    async def _from_shared(
        self, shared: SharedSnapshots[V], key: str, refresh: bool, state: SharedState
    ) -> _Entry[V] | None:
        """The shared snapshot as this replica's entry when it is recent enough; raises the
        shared failure while its back-off lasts; keeps an older snapshot for stale-if-error."""
        if state.loaded_at is not None and state.version is not None:
            age = self._shared_age(key, state.loaded_at, state.version)
            entry = (
                None
                if age is None
                else await self._entry_from_shared(
                    shared, key, refresh, state.loaded_at, state.version, age
                )
            )
            if entry is not None:
                return entry
        if state.failure is not None:
            self.changes += 1
            self._failure_seconds[key] = state.failure_seconds
            self._failures[key] = state.failure
            self._failed(key, state.failure)
            raise state.failure
        return None

    async def _entry_from_shared(
        self,
        shared: SharedSnapshots[V],
        key: str,
        refresh: bool,
        loaded_at: float,
        version: int,
        age: float,
    ) -> _Entry[V] | None:
        """The entry to answer with when the shared snapshot (`version`, `loaded_at`, `age`
        old here) is recent enough; else None, having kept it locally when it is newer than
        what is held (stale-if-error)."""
        invalidated = self._must_load.get(key)
        usable = (invalidated is None or loaded_at > invalidated) and (
            age < (self.min_refresh_interval_seconds if refresh else self.ttl_seconds)
        )
        local = self._store.get(key)
        if local is not None and local.version == version:
            entry = _Entry(local.value, self._clock() - age, local.fetched_at, local.version)
        elif usable or (local is None and age < self.ttl_seconds + self.stale_if_error_seconds):
            snapshot = await shared.fetch(key)
            if snapshot is None:
                return None
            fetched_age = self._shared_age(key, snapshot.loaded_at, snapshot.version)
            if fetched_age is None:
                return None
            entry = _Entry(
                snapshot.value,
                self._clock() - fetched_age,
                # Never shown as received later than now (clocks a moment apart).
                min(snapshot.fetched_at, self._now()),
                snapshot.version,
            )
        else:
            return None
        if usable:
            return self._keep(key, entry)
        if local is None or local.loaded_at < entry.loaded_at:
            self._put(key, entry)  # stale: served if the load fails
        return None
