"""Counterparty look-up by id and safe creation of external counterparties in FinSync."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from cachetools import TTLCache

from app.domain.ids import finsync_id, parse_counterparty_id
from app.domain.interpret import interpret_finsync_client
from app.domain.models import SourceStatus
from app.domain.names import name_key, same_name
from app.domain.snapshot import Counterparty
from app.flight import Flights
from app.services.locks import KeyedLocks
from app.services.shared import LOCK_WAIT_SECONDS, RedisTier
from app.services.treasury import (
    Gathered,
    Treasury,
    utcnow,
)
from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamNotFoundError,
    UpstreamOutcomeUnknownError,
    UpstreamUnavailableError,
)
from app.upstreams.finsync import FinsyncClient, FinsyncClientRecord
from app.upstreams.reading import Parsed

logger = logging.getLogger(__name__)


class UnknownCounterpartyError(Exception):
    """No counterparty has that id (or the id is malformed)."""

    def __init__(self, counterparty_id: str) -> None:
        super().__init__(f"no counterparty has the id {counterparty_id[:200]!r}")
        self.counterparty_id = counterparty_id


class DuplicateCounterpartyError(Exception):
    def __init__(self, existing_id: str, existing_name: str) -> None:
        super().__init__(f"a counterparty named {existing_name!r} exists: {existing_id}")
        self.existing_id = existing_id
        self.existing_name = existing_name


class SourceNotConfiguredError(Exception):
    """The write needs an upstream this deployment does not have."""


class CreateNotConfirmedError(Exception):
    """The create's outcome was unknown and the check found it did not land."""


@dataclass(frozen=True)
class Found:
    counterparty: Counterparty
    gathered: Gathered


# A FinSync id its (stale) list does not have, found missing by FinSync itself, is not asked
# again for this long; at most this many ids are remembered.
MISS_MEMORY_SECONDS = 30.0
MISS_MEMORY_SIZE = 10_000
# Look-ups by id in flight at once: they can never take FinSync's whole connection pool, and
# one more fails at once rather than queueing behind a stalled upstream.
DETAIL_CALLS = 4


# How long a create of one name holds the fleet's lock at most (it expires by itself if the
# replica holding it dies). Another create of that name waits LOCK_WAIT_SECONDS for it, then
# answers 503 with Retry-After (LockBusyError).
CREATE_LOCK_SECONDS = 60.0
# A create's read of FinSync's list waits this long for other creates to join it.
LIST_READ_GATHER_SECONDS = 0.02


@dataclass(eq=False)
class _ListRead:
    """One read of FinSync's list for creates (its own key among the reads under way)."""

    started: float | None = None  # monotonic, once the list is asked for


class Directory:
    def __init__(
        self,
        treasury: Treasury,
        finsync: FinsyncClient | None,
        *,
        shared: RedisTier | None = None,
        lock_seconds: float = CREATE_LOCK_SECONDS,
        lock_wait_seconds: float = LOCK_WAIT_SECONDS,
    ) -> None:
        self._treasury = treasury
        self._finsync = finsync
        # FinSync's create is not idempotent: creates of one name (names that would be taken
        # for one another take one lock) run one at a time, in this process and, with Redis,
        # in the fleet, so two concurrent requests cannot both pass the duplicate check.
        # Creates of different names run side by side.
        self._name_locks = KeyedLocks()
        self._shared = shared
        self._lock_seconds = lock_seconds
        self._lock_wait_seconds = lock_wait_seconds
        # The last read of FinSync's list for a create, and the reads under way.
        self._list_read: _ListRead | None = None
        self._list_reads = Flights[_ListRead, Parsed[FinsyncClientRecord]]()
        self._misses: TTLCache[int, bool] = TTLCache(
            maxsize=MISS_MEMORY_SIZE, ttl=MISS_MEMORY_SECONDS
        )
        self._lookups = Flights[int, FinsyncClientRecord | None]()

    async def get(self, counterparty_id: str, *, refresh: bool = False) -> Found:
        """One counterparty from its own connection only; unknown or malformed → error.

        A bank connection is found even when it cannot be read (its placeholder, with the
        connection's state); a FinSync id needs FinSync or its cached list.
        """
        connection = self._treasury.connection_of(counterparty_id)
        if connection is None:
            raise UnknownCounterpartyError(counterparty_id)
        gathered = await self._treasury.gather(
            refresh=refresh,
            connections=[connection],
            require_one=connection.placeholder() is None,
        )
        for counterparty in gathered.counterparties:
            if counterparty.id == counterparty_id:
                return Found(counterparty, gathered)
        ref = parse_counterparty_id(counterparty_id)
        client_id = None if ref is None else ref.finsync_client
        fresh = all(info.status is SourceStatus.ok for info in gathered.sources)
        # A fresh list answers for itself; a stale one may miss a client created since, so
        # FinSync is asked, once per id at a time, and a miss is remembered.
        if client_id is not None and not fresh and client_id not in self._misses:
            record = await self._look_up(client_id)
            if record is None:
                raise UnknownCounterpartyError(counterparty_id)
            interpreted = interpret_finsync_client(record, fetched_at=utcnow())
            if interpreted.counterparties:
                found = Gathered(
                    sources=gathered.sources,
                    complete=gathered.complete,
                    max_age_seconds=0,
                    parts=((interpreted.counterparties, None),),
                    warning_parts=(interpreted.warnings,),
                )
                return Found(interpreted.counterparties[0], found)
        raise UnknownCounterpartyError(counterparty_id)

    async def _look_up(self, client_id: int) -> FinsyncClientRecord | None:
        finsync = self._finsync
        if finsync is None:
            return None
        if client_id not in self._lookups and len(self._lookups) >= DETAIL_CALLS:
            raise UpstreamUnavailableError(
                "finsync", "too many look-ups by id in flight; try again shortly"
            )
        return await self._lookups.run(client_id, lambda: self._ask(finsync, client_id))

    async def _ask(self, finsync: FinsyncClient, client_id: int) -> FinsyncClientRecord | None:
        try:
            return await finsync.get_client(client_id)
        except UpstreamNotFoundError:
            self._misses[client_id] = True
            return None

    async def create(self, name: str, description: str | None) -> Counterparty:
        """Create an external counterparty unless one with the same name exists.

        FinSync's create is not idempotent, so a create whose outcome is unknown is
        never resent blindly: the client list is read again to see whether it landed.
        """
        if self._finsync is None:
            raise SourceNotConfiguredError("FinSync is not configured")
        # The lock's name is a digest: names are data of the company, not for Redis keys.
        lock_key = hashlib.sha256(name_key(name).encode()).hexdigest()[:32]
        async with self._name_locks.hold(lock_key), self._fleet_lock(lock_key):
            return await self._create(self._finsync, name, description, time.monotonic())

    @asynccontextmanager
    async def _fleet_lock(self, lock_key: str) -> AsyncIterator[None]:
        if self._shared is None:
            yield
            return
        async with self._shared.lock(
            self._shared.key("create-lock", lock_key),
            seconds=self._lock_seconds,
            wait_seconds=self._lock_wait_seconds,
            busy="another create of the same name is still running; try again later",
        ) as fleet_wide:
            if not fleet_wide:
                logger.warning(
                    "Redis unavailable: this create is guarded by this process's lock only"
                )
            yield

    async def _clients(self, finsync: FinsyncClient, since: float) -> list[FinsyncClientRecord]:
        """FinSync's list as it stands after `since`: a read started since then is joined
        (concurrent creates of different names ask once), an older one is not joined."""
        read = self._list_read
        if (
            read is None
            # Over (it started before this ask, `since` being now), or asked too early.
            or read not in self._list_reads
            or (read.started is not None and read.started < since)
        ):
            read = self._list_read = _ListRead()
        return (await self._list_reads.run(read, lambda: self._read_list(finsync, read))).records

    @staticmethod
    async def _read_list(finsync: FinsyncClient, read: _ListRead) -> Parsed[FinsyncClientRecord]:
        # Creates arriving together (their locks taken within this pause) join the read.
        await asyncio.sleep(LIST_READ_GATHER_SECONDS)
        read.started = time.monotonic()
        return await finsync.list_clients()

    async def _create(
        self, finsync: FinsyncClient, name: str, description: str | None, since: float
    ) -> Counterparty:
        # FinSync's own list, read live (after this name's lock was taken): a client created
        # elsewhere a second ago counts. Only FinSync clients count: a bank connection's name
        # does not block creating the same bank as an external counterparty (a lender, say).
        existing = _by_name(await self._clients(finsync, since), name)
        if existing is not None:
            raise DuplicateCounterpartyError(finsync_id(existing.id), existing.name or name)
        try:
            created = await finsync.create_client(name, description)
        except UpstreamOutcomeUnknownError:
            logger.warning("FinSync create outcome unknown; checking whether it landed")
            landed = _by_name(await self._clients(finsync, time.monotonic()), name)
            if landed is None:
                raise CreateNotConfirmedError(name) from None
            created = landed
        connection = self._treasury.connection("finsync")
        if connection is not None:
            connection.invalidate()
        self._misses.pop(created.id, None)
        interpreted = interpret_finsync_client(created, fetched_at=utcnow())
        if not interpreted.counterparties:
            raise UpstreamBadResponseError("finsync", "the created client could not be interpreted")
        return interpreted.counterparties[0]


def _by_name(clients: list[FinsyncClientRecord], name: str) -> FinsyncClientRecord | None:
    for client in clients:
        if client.name is not None and same_name(client.name, name):
            return client
    return None
