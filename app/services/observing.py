"""Observing on a schedule: while history is on, each connection is read at least every
`TESORO_OBSERVE_FINSYNC_SECONDS` (FinSync) or `TESORO_OBSERVE_FINQWARE_SECONDS` (each bank)
even when nobody asks, so history has no hole at night. A load a caller caused counts: a
connection read recently is not read again. With Redis, one replica observes for the fleet,
holding a lease it renews; when it stops or dies the lease expires and another takes over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.services.shared import RedisTier, SharedDataError, SharedTierUnavailableError

if TYPE_CHECKING:
    from redis.asyncio.lock import Lock
from app.services.treasury import Connection
from app.upstreams.errors import UpstreamError

logger = logging.getLogger(__name__)


class Lease:
    """The fleet's one observer: redis-py's lock on one key, with a lifetime its holder
    renews (`reacquire`: only while it still holds it)."""

    def __init__(self, tier: RedisTier, *, seconds: float) -> None:
        self._tier = tier
        self._lock = tier.new_lock(tier.key("history", "observer"), seconds)
        self.held = False

    async def hold(self) -> bool:
        """Whether this replica observes now: the lease renewed or taken. Redis unreachable,
        the holder goes on holding (until Redis says otherwise) and nobody else takes it."""
        lock = self._lock
        try:
            if self.held:
                self.held = await self._tier.run(lambda _redis: _renewed(lock))
            if not self.held:
                self.held = bool(await self._tier.run(lambda _redis: lock.acquire(blocking=False)))
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
        lock = self._lock
        with contextlib.suppress(SharedTierUnavailableError, SharedDataError):
            await self._tier.run(lambda _redis: _released(lock))


async def _renewed(lock: Lock) -> bool:
    """The lease's full lifetime again, if this replica still holds it (else it expired, and
    maybe another replica took it)."""
    from redis.exceptions import LockError  # the redis extra: a Lease exists only with it

    try:
        return bool(await lock.reacquire())
    except LockError:  # not owned any more (LockNotOwnedError), or never taken
        return False


async def _released(lock: Lock) -> None:
    from redis.exceptions import LockError

    with contextlib.suppress(LockError):  # expired meanwhile: maybe another's now, left alone
        await lock.release()


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
