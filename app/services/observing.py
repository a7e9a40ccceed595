"""Observing on a schedule: while history is on, each connection is read at least every
`TESORO_OBSERVE_FINSYNC_SECONDS` (FinSync) or `TESORO_OBSERVE_FINQWARE_SECONDS` (each bank)
even when nobody asks, so history has no hole at night. A load a caller caused counts: a
connection read recently is not read again. With Redis, one replica observes for the fleet,
holding a lease it renews; when it stops or dies the lease expires and another takes over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from app.services.shared import RedisTier, SharedDataError, SharedTierUnavailableError
from app.services.treasury import Connection
from app.upstreams.errors import UpstreamError

logger = logging.getLogger(__name__)

# Renewed only by its holder (compare and extend, in one step).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    """The fleet's one observer: a Redis key set if absent, with a lifetime its holder renews."""

    def __init__(self, tier: RedisTier, *, seconds: float) -> None:
        self._tier = tier
        self._name = tier.key("history", "observer")
        self._token = secrets.token_hex(16)
        self._ms = max(1, int(seconds * 1000))
        self.held = False

    async def hold(self) -> bool:
        """Whether this replica observes now: the lease renewed or taken. Redis unreachable,
        the holder goes on holding (until Redis says otherwise) and nobody else takes it."""
        token, ms = self._token, self._ms
        try:
            if self.held:
                renewed = await self._tier.run(
                    lambda redis: redis.eval(_RENEW, 1, self._name, token, ms)
                )
                self.held = bool(int(renewed))
            if not self.held:
                taken = await self._tier.run(
                    lambda redis: redis.set(self._name, token, nx=True, px=ms)
                )
                self.held = bool(taken)
                if self.held:
                    logger.info("history: this replica observes the connections for the fleet")
        except SharedTierUnavailableError:
            pass
        except SharedDataError:
            self.held = False
        return self.held

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False
        token = self._token
        with contextlib.suppress(SharedTierUnavailableError, SharedDataError):
            await self._tier.run(lambda redis: redis.eval(_RELEASE, 1, self._name, token))


class Observer:
    """Reads every connection whose data is older than its observe interval."""

    def __init__(
        self,
        connections: Sequence[Connection],
        *,
        interval_of: Callable[[Connection], float],
        lease: Lease | None = None,
        last_observed: Callable[[str], Awaitable[datetime | None]] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._connections = list(connections)
        # When history last observed a connection this process has not read yet (after a
        # restart): a bank read an hour ago is not read again at start.
        self._last_observed = last_observed
        self._clock = clock
        self._interval_of = interval_of
        self.lease = lease
        shortest = min((interval_of(c) for c in self._connections), default=60.0)
        # Often enough to keep each interval within a few percent, never busy.
        self.tick_seconds = max(0.05, min(30.0, shortest / 4))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.lease is not None:
            await self.lease.release()

    async def _forever(self) -> None:
        while True:
            # A tick first: a replica just started lets callers (and other replicas) go first.
            await asyncio.sleep(self.tick_seconds)
            try:
                if self.lease is None or await self.lease.hold():
                    await self.observe_due()
            except Exception:
                # A bug must not end observing for good: said loudly, tried again next tick.
                logger.exception("history: observing the connections failed")

    async def _due(self, connection: Connection) -> bool:
        interval = self._interval_of(connection)
        held = connection.last()
        if held is not None:
            return held.age_seconds >= interval
        if self._last_observed is None:
            return True
        last = await self._last_observed(connection.key)
        return last is None or (self._clock() - last).total_seconds() >= interval

    async def observe_due(self) -> None:
        """Read each connection not read within its interval (here or, with Redis, by any
        replica); the cache records what it gets (and history with it)."""
        due = [c for c in self._connections if await self._due(c)]
        await asyncio.gather(*(self._observe(c) for c in due))

    async def _observe(self, connection: Connection) -> None:
        try:
            if connection.last() is None:
                # Nothing here yet: another replica's recent snapshot (Redis) may do.
                await connection.snapshot(refresh=False)
                held = connection.last()
                if held is not None and held.age_seconds < self._interval_of(connection):
                    return
            await connection.snapshot(refresh=True)
        except UpstreamError:
            pass  # recorded as the connection's status by the cache's hook
