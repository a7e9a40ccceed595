"""Idempotency-Key support for creates: a retry gets the first answer instead of a second create.

With the shared tier, the records live in Redis too (a retry that lands on another replica
replays) and a Redis lock per key makes concurrent requests with one key on two replicas run
once: the later one waits and replays. Without Redis, or while it is down, each process keeps
its own records and lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from app.services.locks import KeyedLocks
from app.services.shared import (
    LOCK_WAIT_SECONDS,
    RedisTier,
    SharedDataError,
    SharedTierUnavailableError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAnswer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class IdempotencyKeyReusedError(Exception):
    """The key was first used with a different request body."""


def fingerprint(payload: Any) -> str:
    """A stable digest of a request body, independent of key order and spacing."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


Record = tuple[str, StoredAnswer]


class IdempotencyStore:
    """Remembers final answers by key; concurrent requests with one key run once."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 86400,
        maxsize: int = 10_000,
        shared: RedisTier | None = None,
        lock_seconds: float = 60.0,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
        poll_seconds: float = 0.05,
    ) -> None:
        self._ttl_seconds = ttl_seconds
        self._answers: TTLCache[str, Record] = TTLCache(maxsize=maxsize, ttl=ttl_seconds)
        self._locks = KeyedLocks()
        self._shared = shared
        self._lock_seconds = lock_seconds
        self._lock_wait_seconds = lock_wait_seconds
        self._poll_seconds = poll_seconds

    async def run(
        self,
        key: str,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[StoredAnswer]],
        *,
        keep: Callable[[StoredAnswer], bool],
    ) -> tuple[StoredAnswer, bool]:
        """The stored answer for `key` (replayed=True), else produce, keep if final, return."""
        async with self._locks.hold(key):
            stored = self._answers.get(key)
            if stored is not None:
                return _replay(key, stored, request_fingerprint)
            if self._shared is not None:
                return await self._run_shared(self._shared, key, request_fingerprint, produce, keep)
            answer = await produce()
            if keep(answer):
                self._answers[key] = (request_fingerprint, answer)
            return answer, False

    async def _run_shared(
        self,
        tier: RedisTier,
        key: str,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[StoredAnswer]],
        keep: Callable[[StoredAnswer], bool],
    ) -> tuple[StoredAnswer, bool]:
        # Keys name callers' own values: only their digest goes to Redis.
        digest = hashlib.sha256(key.encode()).hexdigest()
        record_name = tier.key("idempotency", digest)

        async def replayed() -> tuple[StoredAnswer, bool] | None:
            found = await self._read(tier, record_name)
            if found is None:
                return None
            self._answers[key] = found
            return _replay(key, found, request_fingerprint)

        if (replay := await replayed()) is not None:  # a retry: replayed without the lock
            return replay
        # A request with this key running on another replica holds the lock: this one waits
        # for it (bounded: the holder may have died), then replays its answer; else
        # LockBusyError, a 503 with Retry-After.
        async with tier.lock(
            tier.key("idempotency-lock", digest),
            seconds=self._lock_seconds,
            wait_seconds=self._lock_wait_seconds,
            poll_seconds=self._poll_seconds,
            busy="a request with this Idempotency-Key is still running; retry later",
        ) as fleet_wide:
            if fleet_wide and (replay := await replayed()) is not None:
                return replay
            if not fleet_wide:
                logger.warning(
                    "Redis unavailable: this Idempotency-Key is guarded by this process only"
                )
            answer = await produce()
            if keep(answer):
                self._answers[key] = (request_fingerprint, answer)
                await self._write(tier, record_name, (request_fingerprint, answer))
            return answer, False

    @staticmethod
    async def _read(tier: RedisTier, name: str) -> Record | None:
        try:
            data = await tier.run(lambda redis: redis.get(name))
        except SharedTierUnavailableError:
            return None  # Redis unreachable: nothing to replay from it
        except SharedDataError:
            await tier.bad_value(name, "string", None, "a value of another type")
            return None
        if data is None:
            return None
        try:
            fields = json.loads(data)
            answer = StoredAnswer(
                status=int(fields["status"]),
                body=base64.b64decode(fields["body"], validate=True),
                headers={str(k): str(v) for k, v in fields["headers"].items()},
            )
            return str(fields["fingerprint"]), answer
        except (ValueError, KeyError, TypeError, AttributeError):
            await tier.bad_value(name, "string", data, "an unreadable idempotency record")
            return None

    async def _write(self, tier: RedisTier, name: str, record: Record) -> None:
        request_fingerprint, answer = record
        data = json.dumps(
            {
                "fingerprint": request_fingerprint,
                "status": answer.status,
                "body": base64.b64encode(answer.body).decode(),
                "headers": answer.headers,
            }
        )
        ms = max(1, int(self._ttl_seconds * 1000))
        try:
            await tier.run(lambda redis: redis.set(name, data, px=ms))
        except (SharedTierUnavailableError, SharedDataError):
            logger.warning("Redis unavailable: an idempotent answer is kept by this process only")


def _replay(key: str, stored: Record, request_fingerprint: str) -> tuple[StoredAnswer, bool]:
    if stored[0] != request_fingerprint:
        raise IdempotencyKeyReusedError(key)
    return stored[1], True
