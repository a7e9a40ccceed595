"""The shared tier: one Redis behind every replica's own caches, locks and idempotency records.

redis-py's asyncio client is used directly rather than cashews (which the `redis` extra also
installs): every caller here must know when Redis failed, to fall back to this process's own
behaviour, report it (`/readyz`, `tesoro_redis_up`) and log the change once, whereas cashews
either raises its own wrappers or, with `suppress`, turns a failure into a miss nobody sees;
its values go through its pickle-based serializer, while the snapshots here are our own
compressed JSON bytes. Locks are redis-py's own `Lock`.

Redis trouble is never an outage. Each call gets `timeout_seconds` (connect and socket, no
retries); a failure marks Redis down for `retry_seconds`, during which it is not asked at all
(no request pays the time-out again), then the next call tries it again, through a new
connection. Keys carry the schema version and never a secret (a caller's Idempotency-Key is
hashed).

Bad data is per key, never an outage: Redis answering with an error about one key (a value of
another type, WRONGTYPE) or a value tesoro cannot read is a miss for that key, logged,
counted (`tesoro_redis_bad_values_total`) and deleted (or overwritten by the next write),
while Redis still counts as up and every other key and lock keeps working. A lock key without
a lifetime is not a lock of tesoro's (each is taken with one): it is replaced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from app.cache import SharedSnapshot, SharedState
from app.services.codec import SCHEMA_VERSION
from app.upstreams.errors import UpstreamError, UpstreamUnavailableError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline, PubSub
    from redis.asyncio.lock import Lock

logger = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

PREFIX = f"tesoro:v{SCHEMA_VERSION}"
# How long a request waits for a lock another request (on any replica) holds, before a 503
# with Retry-After: a holder that died keeps it for the lock's whole lifetime.
LOCK_WAIT_SECONDS = 5.0
# Values this big are (de)compressed in a worker thread, not on the event loop.
_THREAD_BYTES = 256 * 1024


# What a value in Redis that is not ours (or is corrupt) raises when read: it is ignored.
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError)


class SharedTierUnavailableError(Exception):
    """Redis could not be reached (or is being skipped after a failure)."""


class SharedDataError(Exception):
    """Redis answered with an error about this call's key (a value of another type): the key
    is bad, Redis is not down."""


class LockBusyError(Exception):
    """Another request (on this replica or another, alive or dead) held the lock for longer
    than this one would wait; it is free at the latest after `retry_after_seconds`."""

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class RedisTier:
    """This replica's Redis client and what it knows of Redis's health."""

    def __init__(
        self,
        url: str,
        *,
        shown_as: str,
        timeout_seconds: float = 0.5,
        retry_seconds: float = 2.0,
        on_change: Callable[[bool], None] | None = None,
        on_bad_value: Callable[[str], None] | None = None,
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.shown_as = shown_as
        self.timeout_seconds = timeout_seconds
        self._retry_seconds = retry_seconds
        self._on_change = on_change
        # Told the kind of key (snapshot, failure, lock, ...) of each bad value found.
        self._on_bad_value = on_bad_value
        self._redis: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        self.up: bool | None = None  # unknown until the first call
        self._skip_until = 0.0
        self._closed = False

    def key(self, *parts: str) -> str:
        return ":".join((PREFIX, *parts))

    async def run(self, call: Callable[[Redis], Awaitable[T]]) -> T:
        """One call to Redis, bounded; SharedTierUnavailableError when it fails or is skipped."""
        if self._closed or (self.up is False and time.monotonic() < self._skip_until):
            # Closed: a load finishing after shutdown must not open a new connection.
            raise SharedTierUnavailableError(self.shown_as)
        try:
            # The socket time-out bounds each read; this bounds the whole call.
            result = await asyncio.wait_for(call(self._redis), 3 * self.timeout_seconds)
        except _response_error() as exc:
            # Redis answered: the trouble is this call's key, not the tier.
            self._changed(True)
            raise SharedDataError(str(exc)) from exc
        except (OSError, TimeoutError, _redis_errors()) as exc:
            self._skip_until = time.monotonic() + self._retry_seconds
            self._changed(False, exc)
            raise SharedTierUnavailableError(self.shown_as) from exc
        self._changed(True)
        return result

    def _changed(self, up: bool, exc: BaseException | None = None) -> None:
        if self.up is up:
            return
        self.up = up
        if up:
            logger.info("Redis %s reachable: the shared tier is on", self.shown_as)
        else:
            logger.warning(
                "Redis %s unavailable (%s); serving from this replica's own cache and "
                "upstreams until it answers again (tried every %g s)",
                self.shown_as,
                type(exc).__name__,
                self._retry_seconds,
            )
        if self._on_change is not None:
            self._on_change(up)

    async def ping(self) -> bool:
        try:
            await self.run(lambda redis: redis.ping())
        except SharedTierUnavailableError:
            return False
        except SharedDataError:
            return True  # it answered
        return True

    async def bad_value(self, name: str, expected: str, seen: bytes | str | None, why: str) -> None:
        """A key holding what tesoro cannot use (`why`): logged, counted, and deleted unless
        it was rewritten since (`expected` is its type, `seen` what was read from it)."""
        kind = name.split(":")[2] if name.count(":") >= 2 else "other"
        # The key's name only (a digest for caller-given keys): never the value.
        logger.warning("Redis key %s holds %s; treated as a miss and deleted", name, why)
        if self._on_bad_value is not None:
            self._on_bad_value(kind)
        held_bytes = seen.encode() if isinstance(seen, str) else seen

        async def discard_if_still_bad(pipe: Pipeline) -> None:
            # Under WATCH: a good value written since the check makes the delete a no-op.
            answer = await pipe.type(name)
            held_type = answer.decode() if isinstance(answer, bytes) else str(answer)
            if held_type == "none":
                return
            if held_type == expected:
                if held_bytes is None:
                    return
                held = await (pipe.hget(name, "meta") if held_type == "hash" else pipe.get(name))
                if held != held_bytes:
                    return
            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
            pipe.delete(name)

        with suppress(SharedTierUnavailableError, SharedDataError):
            await self.run(lambda redis: redis.transaction(discard_if_still_bad, name))

    async def _acquire(self, name: str, seconds: float) -> tuple[Lock | None, float]:
        """The lock if taken (None when another holds it), and the seconds the other holder
        keeps it at most."""
        # One call to Redis per attempt, each through `run` (bounded, and Redis down is
        # noticed): the waiting between attempts is `lock`'s, not redis-py's blocking acquire.
        lock = self._redis.lock(name, timeout=max(0.001, seconds), thread_local=False)
        for _ in range(3):
            if await self.run(lambda _redis: lock.acquire(blocking=False)):
                return lock, 0.0
            # redis-py's Lock cannot say how long the holder keeps it (the Retry-After of a
            # LockBusyError) nor tell a stray value from a lock: its PTTL does.
            left_ms = int(await self.run(lambda redis: redis.pttl(name)))
            if left_ms >= 0:
                return None, left_ms / 1000
            if left_ms == -1:
                # No lifetime: never a lock of ours (each is taken with one), whatever its
                # type; a stray value would hold the lock forever. Deleted if it still has
                # none (under WATCH: never a lock another replica took meanwhile).
                async def discard_stray(pipe: Pipeline) -> None:
                    if await pipe.pttl(name) == -1:
                        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
                        pipe.delete(name)

                deleted = await self.run(lambda redis: redis.transaction(discard_stray, name))
                if deleted:  # by this replica (EXEC's replies), counted once for the fleet
                    kind = name.split(":")[2] if name.count(":") >= 2 else "other"
                    logger.warning(
                        "Redis key %s held a value with no lifetime; replaced by a lock", name
                    )
                    if self._on_bad_value is not None:
                        self._on_bad_value(kind)
            # Else (-2) freed between the two calls: tried again at once.
        return None, 0.0

    async def try_lock(self, name: str, seconds: float) -> Lock | None:
        """The lock if taken, None when another holder has it."""
        try:
            lock, _ = await self._acquire(name, seconds)
        except SharedDataError:
            return None  # Redis refused (it is up): as if held, never a lock for two
        return lock

    async def unlock(self, lock: Lock) -> None:
        """Released if still held by its taker (else it expired, maybe taken by another since,
        whose lock stays); Redis unreachable, it expires by itself."""
        from redis.exceptions import LockNotOwnedError

        async def release(_redis: Redis) -> None:
            with suppress(LockNotOwnedError):
                await lock.release()

        with suppress(SharedTierUnavailableError, SharedDataError):
            await self.run(release)

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        *,
        seconds: float,
        wait_seconds: float = LOCK_WAIT_SECONDS,
        poll_seconds: float = 0.05,
        busy: str = "another request holds this lock",
    ) -> AsyncIterator[bool]:
        """Held fleet-wide (True), or Redis could not be reached (False: the caller's own
        process guard is all there is). Waits at most `wait_seconds` for another holder,
        alive or dead (LockBusyError after, saying `busy`)."""
        lock: Lock | None = None
        waited_until = time.monotonic() + wait_seconds
        try:
            while lock is None:
                try:
                    lock, left_seconds = await self._acquire(name, seconds)
                except SharedTierUnavailableError:
                    break
                except SharedDataError:
                    lock, left_seconds = None, seconds  # refused while up: never shared
                if lock is None:
                    now = time.monotonic()
                    if now >= waited_until:
                        raise LockBusyError(busy, left_seconds)
                    await asyncio.sleep(min(poll_seconds, waited_until - now))
            yield lock is not None
        finally:
            if lock is not None:
                await self.unlock(lock)

    def pubsub(self) -> PubSub:
        """A publish/subscribe session on its own connection (the events' channel): its reads
        wait on messages, so they are not bounded like `run`'s calls."""
        return self._redis.pubsub()

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()


def _redis_errors() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


def _response_error() -> type[Exception]:
    from redis.exceptions import ResponseError

    return ResponseError


def _upstream_errors() -> dict[str, type[UpstreamError]]:
    found: dict[str, type[UpstreamError]] = {}
    pending: list[type[UpstreamError]] = [UpstreamError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


class RedisSnapshots(Generic[V]):
    """A SnapshotCache's shared tier (app.cache.SharedSnapshots) in Redis.

    Per key: a hash `snapshot:<key>` with `meta` (load time, fetch time, version: small, read
    by every replica on a local miss) and `value` (the encoded snapshot, read only when it
    will be used), kept for the TTL plus the stale window; `lock:<key>`, held by the replica
    loading it; `failure:<key>`, the last load's failure, kept for its back-off.
    """

    def __init__(
        self,
        tier: RedisTier,
        *,
        encode: Callable[[V], bytes],
        decode: Callable[[bytes], V],
        lock_seconds: float,
        poll_seconds: float = 0.05,
    ) -> None:
        self._tier = tier
        self._encode = encode
        self._decode = decode
        self._lock_seconds = lock_seconds
        self.wait_seconds = lock_seconds + 1.0
        self.poll_seconds = poll_seconds
        self._errors = _upstream_errors()

    async def read(self, key: str) -> SharedState:
        tier = self._tier
        snapshot_name, failure_name = tier.key("snapshot", key), tier.key("failure", key)

        async def call(redis: Redis) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hget(snapshot_name, "meta")
                pipe.get(failure_name)
                pipe.pttl(failure_name)
                # A key of another type answers its command's error, not the others'.
                return await pipe.execute(raise_on_error=False)

        try:
            meta, failure, failure_ms = await tier.run(call)
        except (SharedTierUnavailableError, SharedDataError):
            return SharedState()
        loaded_at = version = None
        if isinstance(meta, Exception):
            await tier.bad_value(snapshot_name, "hash", None, "a value of another type")
        elif meta is not None:
            try:
                loaded_at, version = _meta(meta)
            except _UNREADABLE:
                await tier.bad_value(snapshot_name, "hash", meta, "an unreadable snapshot")
        error: UpstreamError | None = None
        if isinstance(failure, Exception):
            await tier.bad_value(failure_name, "string", None, "a value of another type")
        elif failure is not None:
            try:
                error = self._failure(failure)
            except _UNREADABLE:
                await tier.bad_value(failure_name, "string", failure, "an unreadable failure")
        return SharedState(
            loaded_at=loaded_at,
            version=version,
            failure=error,
            failure_seconds=max(0.0, failure_ms / 1000) if isinstance(failure_ms, int) else 0.0,
        )

    async def fetch(self, key: str) -> SharedSnapshot[V] | None:
        tier = self._tier
        name = tier.key("snapshot", key)
        try:
            meta, data = await tier.run(lambda redis: redis.hmget(name, ["meta", "value"]))
        except SharedTierUnavailableError:
            return None
        except SharedDataError:
            await tier.bad_value(name, "hash", None, "a value of another type")
            return None
        if meta is None or data is None:
            return None
        try:
            loaded_at, version = _meta(meta)
            fetched_at = datetime.fromisoformat(json.loads(meta)["fetched_at"])
            if fetched_at.tzinfo is None:
                raise ValueError("fetched_at without a UTC offset")
            return SharedSnapshot(
                value=await _maybe_in_thread(self._decode, data),
                loaded_at=loaded_at,
                fetched_at=fetched_at,
                version=version,
            )
        except _UNREADABLE:
            await tier.bad_value(name, "hash", meta, "a snapshot that cannot be read")
            return None

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[bool]:
        name = self._tier.key("lock", key)
        try:
            lock = await self._tier.try_lock(name, self._lock_seconds)
        except SharedTierUnavailableError:
            yield True  # nobody to share with: this replica loads
            return
        try:
            yield lock is not None
        finally:
            if lock is not None:
                await self._tier.unlock(lock)

    async def write(self, key: str, snapshot: SharedSnapshot[V], *, keep_seconds: float) -> None:
        data = await _maybe_in_thread(self._encode, snapshot.value)
        meta = json.dumps(
            {
                "loaded_at": snapshot.loaded_at,
                "fetched_at": snapshot.fetched_at.isoformat(),
                "version": snapshot.version,
                "bytes": len(data),
            }
        )
        name = self._tier.key("snapshot", key)
        failure = self._tier.key("failure", key)

        async def call(redis: Redis) -> None:
            async with redis.pipeline(transaction=True) as pipe:
                # Whatever the key held (of any type) is replaced, never merged into.
                pipe.delete(name)
                pipe.hset(name, mapping={"meta": meta, "value": data})
                pipe.pexpire(name, max(1, int(keep_seconds * 1000)))
                pipe.delete(failure)
                await pipe.execute()

        with suppress(SharedTierUnavailableError, SharedDataError):
            await self._tier.run(call)

    async def fail(self, key: str, failure: Exception, *, seconds: float) -> None:
        if not isinstance(failure, UpstreamError) or seconds <= 0:
            return
        data = json.dumps(
            {
                "type": type(failure).__name__,
                "upstream": failure.upstream,
                "message": failure.message,
            }
        )
        name = self._tier.key("failure", key)
        with suppress(SharedTierUnavailableError, SharedDataError):
            await self._tier.run(
                lambda redis: redis.set(name, data, px=max(1, int(seconds * 1000)))
            )

    def _failure(self, data: bytes) -> UpstreamError:
        fields = json.loads(data)
        cls = self._errors.get(str(fields.get("type")), UpstreamUnavailableError)
        return cls(str(fields.get("upstream", "")), str(fields.get("message", "")))


def _meta(meta: bytes | str) -> tuple[float, int]:
    """A snapshot's load time and version, from its meta; ValueError and kin when unreadable."""
    fields = json.loads(meta)
    loaded_at = float(fields["loaded_at"])
    if not math.isfinite(loaded_at):
        raise ValueError("loaded_at is not a finite number")
    return loaded_at, int(fields["version"])


async def _maybe_in_thread(convert: Callable[[Any], T], data: Any) -> T:
    if isinstance(data, bytes) and len(data) < _THREAD_BYTES:
        return convert(data)
    return await asyncio.to_thread(convert, data)
