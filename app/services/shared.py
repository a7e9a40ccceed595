"""The shared tier: one Redis behind every replica's own caches, locks and idempotency records.

redis-py's asyncio client is used directly rather than cashews (which the `redis` extra also
installs): every caller here must know when Redis failed, to fall back to this process's own
behaviour, report it (`/readyz`, `tesoro_redis_up`) and log the change once, whereas cashews
either raises its own wrappers or, with `suppress`, turns a failure into a miss nobody sees;
its values go through its pickle-based serializer, while the snapshots here are our own
compressed JSON bytes; and its lock would still need the compare-and-delete release below.

Redis trouble is never an outage. Each call gets `timeout_seconds` (connect and socket, no
retries); a failure marks Redis down for `retry_seconds`, during which it is not asked at all
(no request pays the time-out again), then the next call tries it again, through a new
connection. Keys carry the schema version and never a secret (a caller's Idempotency-Key is
hashed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
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

logger = logging.getLogger(__name__)

T = TypeVar("T")
V = TypeVar("V")

PREFIX = f"tesoro:v{SCHEMA_VERSION}"
# Compare-and-delete: a lock is released only by its holder, never after it expired and
# another replica took it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
# Values this big are (de)compressed in a worker thread, not on the event loop.
_THREAD_BYTES = 256 * 1024


# What a value in Redis that is not ours (or is corrupt) raises when read: it is ignored.
_UNREADABLE = (ValueError, KeyError, TypeError, AttributeError)


class SharedTierUnavailableError(Exception):
    """Redis could not be reached (or is being skipped after a failure)."""


class LockBusyError(Exception):
    """Another replica held the lock for longer than this one would wait."""


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
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.shown_as = shown_as
        self.timeout_seconds = timeout_seconds
        self._retry_seconds = retry_seconds
        self._on_change = on_change
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
        return True

    async def try_lock(self, name: str, seconds: float) -> str | None:
        """The lock's token if taken, None when another holder has it."""
        token = secrets.token_hex(16)
        taken = await self.run(
            lambda redis: redis.set(name, token, nx=True, px=max(1, int(seconds * 1000)))
        )
        return token if taken else None

    async def unlock(self, name: str, token: str) -> None:
        with suppress(SharedTierUnavailableError):  # else it expires by itself
            await self.run(lambda redis: redis.eval(_RELEASE, 1, name, token))

    @asynccontextmanager
    async def lock(
        self,
        name: str,
        *,
        seconds: float,
        wait_seconds: float,
        poll_seconds: float = 0.05,
    ) -> AsyncIterator[bool]:
        """Held fleet-wide (True), or Redis could not be reached (False: the caller's own
        process guard is all there is). Waits at most `wait_seconds` for another holder
        (LockBusyError after)."""
        token: str | None = None
        waited_until = time.monotonic() + wait_seconds
        try:
            while token is None:
                try:
                    token = await self.try_lock(name, seconds)
                except SharedTierUnavailableError:
                    break
                if token is None:
                    if time.monotonic() >= waited_until:
                        raise LockBusyError(name)
                    await asyncio.sleep(poll_seconds)
            yield token is not None
        finally:
            if token is not None:
                await self.unlock(name, token)

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()


def _redis_errors() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


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

        async def call(redis: Redis) -> list[Any]:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.hget(tier.key("snapshot", key), "meta")
                pipe.get(tier.key("failure", key))
                pipe.pttl(tier.key("failure", key))
                return await pipe.execute()

        try:
            meta, failure, failure_ms = await tier.run(call)
        except SharedTierUnavailableError:
            return SharedState()
        try:
            loaded_at = version = None
            if meta is not None:
                fields = json.loads(meta)
                loaded_at, version = float(fields["loaded_at"]), int(fields["version"])
            return SharedState(
                loaded_at=loaded_at,
                version=version,
                failure=None if failure is None else self._failure(failure),
                failure_seconds=max(0.0, int(failure_ms) / 1000),
            )
        except _UNREADABLE:
            logger.warning("%s: what Redis holds for it is unreadable; ignored", key)
            return SharedState()

    async def fetch(self, key: str) -> SharedSnapshot[V] | None:
        name = self._tier.key("snapshot", key)
        try:
            meta, data = await self._tier.run(lambda redis: redis.hmget(name, ["meta", "value"]))
        except SharedTierUnavailableError:
            return None
        if meta is None or data is None:
            return None
        try:
            fields = json.loads(meta)
            return SharedSnapshot(
                value=await _maybe_in_thread(self._decode, data),
                loaded_at=float(fields["loaded_at"]),
                fetched_at=datetime.fromisoformat(fields["fetched_at"]),
                version=int(fields["version"]),
            )
        except _UNREADABLE:
            logger.warning("%s: the shared snapshot could not be read; loading again", key)
            return None

    @asynccontextmanager
    async def claim(self, key: str) -> AsyncIterator[bool]:
        name = self._tier.key("lock", key)
        try:
            token = await self._tier.try_lock(name, self._lock_seconds)
        except SharedTierUnavailableError:
            yield True  # nobody to share with: this replica loads
            return
        try:
            yield token is not None
        finally:
            if token is not None:
                await self._tier.unlock(name, token)

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
                pipe.hset(name, mapping={"meta": meta, "value": data})
                pipe.pexpire(name, max(1, int(keep_seconds * 1000)))
                pipe.delete(failure)
                await pipe.execute()

        with suppress(SharedTierUnavailableError):
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
        with suppress(SharedTierUnavailableError):
            await self._tier.run(
                lambda redis: redis.set(name, data, px=max(1, int(seconds * 1000)))
            )

    def _failure(self, data: bytes) -> UpstreamError:
        fields = json.loads(data)
        cls = self._errors.get(str(fields.get("type")), UpstreamUnavailableError)
        return cls(str(fields.get("upstream", "")), str(fields.get("message", "")))


async def _maybe_in_thread(convert: Callable[[Any], T], data: Any) -> T:
    if isinstance(data, bytes) and len(data) < _THREAD_BYTES:
        return convert(data)
    return await asyncio.to_thread(convert, data)
