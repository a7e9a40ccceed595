"""Idempotency-Key support for creates: a retry gets the first answer instead of a second create."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache


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


class IdempotencyStore:
    """Remembers final answers by key; concurrent requests with one key run once."""

    def __init__(self, *, ttl_seconds: float = 86400, maxsize: int = 10_000) -> None:
        self._answers: TTLCache[str, tuple[str, StoredAnswer]] = TTLCache(
            maxsize=maxsize, ttl=ttl_seconds
        )
        self._locks: dict[str, asyncio.Lock] = {}

    async def run(
        self,
        key: str,
        request_fingerprint: str,
        produce: Callable[[], Awaitable[StoredAnswer]],
        *,
        keep: Callable[[StoredAnswer], bool],
    ) -> tuple[StoredAnswer, bool]:
        """The stored answer for `key` (replayed=True), else produce, keep if final, return."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                stored = self._answers.get(key)
                if stored is not None:
                    if stored[0] != request_fingerprint:
                        raise IdempotencyKeyReusedError(key)
                    return stored[1], True
                answer = await produce()
                if keep(answer):
                    self._answers[key] = (request_fingerprint, answer)
                return answer, False
        finally:
            if not lock.locked() and self._locks.get(key) is lock:
                del self._locks[key]
