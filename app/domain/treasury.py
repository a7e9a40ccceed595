"""Fan-out to every upstream connection through its cache, and the partial-failure policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from app.cache import Cached, SnapshotCache
from app.domain.interpret import (
    ACCOUNT_DETAILS_UNAVAILABLE,
    BalanceOrders,
    Interpreted,
    interpret_finqware,
    interpret_finsync,
)
from app.domain.models import (
    Counterparty,
    ResponseWarning,
    Source,
    SourceError,
    SourceErrorCode,
    SourceInfo,
    SourceStatus,
)
from app.settings import ConsentSettings
from app.upstreams.errors import UpstreamBadResponseError, UpstreamError
from app.upstreams.finqware import ConsentCredentials, FinqwareAccount, FinqwareClient
from app.upstreams.finsync import FinsyncClient

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Connection(Protocol):
    """One upstream connection: FinSync, or one Finqware consent."""

    @property
    def key(self) -> str: ...

    @property
    def source(self) -> Source: ...

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]: ...

    def invalidate(self) -> None:
        """The next snapshot loads again (the old one stays for stale-if-error)."""


def _contract_break(key: str, exc: Exception) -> UpstreamBadResponseError:
    # Data that passed the wire models but still cannot be interpreted is a contract break
    # of the upstream, not a server error of ours: the connection is reported, not the request.
    logger.exception("could not interpret data from %s", key, exc_info=exc)
    return UpstreamBadResponseError(key, "the answer could not be interpreted")


@dataclass
class FinsyncConnection:
    client: FinsyncClient
    cache: SnapshotCache[Interpreted]
    key: str = "finsync"
    source: Source = Source.finsync

    async def load(self) -> Interpreted:
        clients = await self.client.list_clients()
        try:
            return interpret_finsync(clients, utcnow())
        except Exception as exc:
            raise _contract_break(self.key, exc) from exc

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        return await self.cache.get(self.key, self.load, refresh=refresh)

    def invalidate(self) -> None:
        self.cache.invalidate(self.key)


@dataclass
class FinqwareConnection:
    consent: ConsentSettings
    client: FinqwareClient
    cache: SnapshotCache[Interpreted]
    accounts_cache: SnapshotCache[list[FinqwareAccount]]
    orders: BalanceOrders
    source: Source = Source.finqware
    credentials: ConsentCredentials = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = ConsentCredentials(
            credentials_id=self.consent.credentials_id,
            access_token=self.consent.access_token,
            tenant_user_id=self.consent.tenant_user_id,
        )

    @property
    def key(self) -> str:
        return f"finqware:{self.consent.key}"

    async def _accounts(self) -> list[FinqwareAccount]:
        return await self.client.get_accounts(self.credentials)

    async def _accounts_or_error(self) -> list[FinqwareAccount] | UpstreamError:
        try:
            return (await self.accounts_cache.get(self.key, self._accounts)).value
        except UpstreamError as exc:
            return exc

    async def load(self) -> Interpreted:
        # Accounts (names, IBANs) change rarely and have their own, longer-lived cache.
        accounts, balances = await asyncio.gather(
            self._accounts_or_error(), self.client.get_balances(self.credentials)
        )
        try:
            interpreted = interpret_finqware(
                self.consent.key,
                self.consent.label,
                [] if isinstance(accounts, UpstreamError) else accounts,
                balances,
                utcnow(),
                self.orders,
            )
        except Exception as exc:
            raise _contract_break(self.key, exc) from exc
        if isinstance(accounts, UpstreamError):
            # The balances are what matter: without the account list they are still served,
            # each account named by its id, and the next load asks for the names again.
            return interpreted.with_warning(
                ResponseWarning(
                    code=ACCOUNT_DETAILS_UNAVAILABLE,
                    message="Finqware did not give the account names "
                    f"({accounts.code}: {accounts.message}); accounts are named by their id",
                    source=self.key,
                    counterparty_id=self.key,
                )
            )
        return interpreted

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        return await self.cache.get(self.key, self.load, refresh=refresh)

    def invalidate(self) -> None:
        self.cache.invalidate(self.key)


@dataclass(frozen=True)
class Gathered:
    """Everything the connections gave, with the state of each."""

    counterparties: list[Counterparty]
    warnings: list[ResponseWarning]
    sources: list[SourceInfo]
    complete: bool
    max_age_seconds: int


class AllSourcesUnavailableError(Exception):
    """Every connection failed and nothing was cached for any of them."""

    def __init__(self, sources: list[SourceInfo]) -> None:
        super().__init__("every upstream connection is unavailable")
        self.sources = sources


def _source_error(exc: UpstreamError) -> SourceError:
    return SourceError(code=SourceErrorCode(exc.code), message=exc.message)


def _info(key: str, outcome: Cached[Interpreted] | UpstreamError) -> SourceInfo:
    if isinstance(outcome, UpstreamError):
        return SourceInfo(
            source=key,
            status=SourceStatus.unavailable,
            fetched_at=None,
            age_seconds=None,
            error=_source_error(outcome),
        )
    return SourceInfo(
        source=key,
        status=SourceStatus.ok if outcome.status == "fresh" else SourceStatus.stale,
        fetched_at=outcome.fetched_at,
        age_seconds=int(outcome.age_seconds),
        error=None if outcome.error is None else _source_error(outcome.error),
    )


class Treasury:
    """Asks every connection at once and merges what comes back."""

    def __init__(self, connections: Sequence[Connection]) -> None:
        self.connections = list(connections)

    def connection(self, key: str) -> Connection | None:
        for connection in self.connections:
            if connection.key == key:
                return connection
        return None

    async def gather(
        self, *, refresh: bool = False, connections: Sequence[Connection] | None = None
    ) -> Gathered:
        chosen = self.connections if connections is None else list(connections)
        outcomes = await asyncio.gather(*(self._one(c, refresh) for c in chosen))
        sources = [_info(c.key, outcome) for c, outcome in zip(chosen, outcomes, strict=True)]
        answered = [o for o in outcomes if not isinstance(o, UpstreamError)]
        if chosen and not answered:
            raise AllSourcesUnavailableError(sources)
        counterparties = [cp for o in answered for cp in o.value.counterparties]
        warnings = [w for o in answered for w in o.value.warnings]
        fresh_ttls = [o.expires_in_seconds for o in answered if o.status == "fresh"]
        return Gathered(
            counterparties=counterparties,
            warnings=warnings,
            sources=sources,
            complete=all(s.status != SourceStatus.unavailable for s in sources),
            max_age_seconds=int(min(fresh_ttls)) if len(fresh_ttls) == len(answered) else 0,
        )

    @staticmethod
    async def _one(connection: Connection, refresh: bool) -> Cached[Interpreted] | UpstreamError:
        try:
            return await connection.snapshot(refresh=refresh)
        except UpstreamError as exc:
            # The failed call itself was logged once by the cache; this is per request.
            logger.debug("upstream %s unavailable: %s (%s)", connection.key, exc.message, exc.code)
            return exc
