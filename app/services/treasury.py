"""The connections (FinSync, one per Finqware consent), the fan-out to those an answer needs
through their caches, and the partial-failure policy."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, Protocol, TypeVar

import msgspec
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import OpenedState

from app.cache import Cached, Lease, SnapshotCache
from app.domain import snapshot
from app.domain.duplicates import Counted, count_once
from app.domain.ids import finqware_id, parse_counterparty_id
from app.domain.interpret import (
    ACCOUNT_DETAILS_UNAVAILABLE,
    CONSENT_EXPIRING,
    BalanceOrders,
    FinsyncPages,
    Interpreted,
    finqware_placeholder,
    interpret_finqware,
)
from app.domain.models import (
    Kind,
    ResponseWarning,
    Source,
    SourceError,
    SourceErrorCode,
    SourceInfo,
    SourceStatus,
)
from app.domain.snapshot import Counterparty
from app.services.moments import Moments
from app.settings import ConsentSettings
from app.upstreams.errors import (
    PermanentUpstreamError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from app.upstreams.finqware import ConsentCredentials, FinqwareAccount, FinqwareClient
from app.upstreams.finsync import FinsyncClient
from app.upstreams.http import CURRENT_CONNECTION
from app.upstreams.reading import Parsed

logger = logging.getLogger(__name__)

# A consent about to end is announced this long before: time to onboard again.
CONSENT_EXPIRY_NOTICE = timedelta(days=14)


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

    def last(self) -> Cached[Interpreted] | None:
        """The last data held, fresh or stale, without asking the upstream."""

    def answers_at_once(self, *, refresh: bool) -> bool:
        """Whether `snapshot` would answer without waiting on the upstream."""

    def placeholder(self) -> Counterparty | None:
        """What stands for the connection in listings when it cannot be read, if anything."""

    def notices(self, now: datetime) -> list[ResponseWarning]:
        """Warnings about the connection itself (a consent about to expire), as of `now`."""

    def notices_until(self, now: datetime) -> datetime | None:
        """The first instant after `now` at which `notices` may say something else (None:
        never): until then, `notices` says what it says at `now`."""

    def lease(self) -> Lease | None:
        """The fresh data `snapshot` (no refetch) would answer with now, as a `Lease` that
        says for how long it still would; None when it would not answer fresh data (or the
        connection cannot say)."""


class Breakers:
    """One circuit breaker per connection (purgatory, in memory): `failures` transient
    failures in a row open it; while open, a load fails at once without calling the upstream
    (the connection is served stale, or reported unavailable); after `open_seconds` one
    probe goes through, and its success closes it. Permanent failures do not count: they
    have their own, hourly, back-off."""

    def __init__(
        self,
        *,
        failures: int = 5,
        open_seconds: float = 30.0,
        on_state: Callable[[str, str], None] | None = None,
    ) -> None:
        self.open_seconds = open_seconds
        self._factory = AsyncCircuitBreakerFactory(
            default_threshold=failures,
            default_ttl=open_seconds,
            exclude=[PermanentUpstreamError],
        )
        if on_state is not None:
            # Told (connection, "closed" | "opened" | "half-opened") on every change
            # (metrics listen); a new breaker starts closed.
            def hook(name: str, event_name: str, event: object) -> None:
                if event_name == "circuit_breaker_created":
                    on_state(name, "closed")
                elif isinstance(event, ContextChanged):
                    on_state(name, event.state)
                    if event.state == "opened":
                        logger.warning(
                            "%s: circuit opened after repeated failures",
                            name,
                            extra={"connection": name},
                        )

            self._factory.add_listener(hook)

    @asynccontextmanager
    async def guard(self, key: str) -> AsyncIterator[None]:
        breaker = await self._factory.get_breaker(key)
        # Every upstream call made inside is this connection's (spans and logs name it).
        token = CURRENT_CONNECTION.set(key)
        try:
            async with breaker:
                yield
        except OpenedState as exc:
            raise UpstreamUnavailableError(
                key,
                "circuit open after repeated failures: not asked again for up to "
                f"{self.open_seconds:g} s",
            ) from exc
        finally:
            CURRENT_CONNECTION.reset(token)


NO_BREAKERS = Breakers(failures=1_000_000_000)


class _CachedConnection:
    """What every connection does through its cache; each one says how it `load`s."""

    cache: SnapshotCache[Interpreted]

    @property
    def key(self) -> str:
        raise NotImplementedError

    async def load(self) -> Interpreted:
        raise NotImplementedError

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        return await self.cache.get(self.key, self.load, refresh=refresh)

    def invalidate(self) -> None:
        self.cache.invalidate(self.key)

    def last(self) -> Cached[Interpreted] | None:
        return self.cache.peek(self.key)

    def answers_at_once(self, *, refresh: bool) -> bool:
        return self.cache.answers_at_once(self.key, refresh=refresh)

    def lease(self) -> Lease | None:
        return self.cache.lease(self.key)


@dataclass
class FinsyncConnection(_CachedConnection):
    client: FinsyncClient
    cache: SnapshotCache[Interpreted]
    key: str = "finsync"
    source: Source = Source.finsync
    breakers: Breakers = NO_BREAKERS

    def placeholder(self) -> Counterparty | None:
        return None  # FinSync's clients are not known without FinSync

    def notices(self, now: datetime) -> list[ResponseWarning]:
        return []

    def notices_until(self, now: datetime) -> datetime | None:
        return None

    async def load(self) -> Interpreted:
        # Each page is interpreted as it lands, while the next ones are on the wire. The reader
        # made every record interpretable: an exception here is a bug of tesoro's, a logged
        # 500, never blamed on FinSync as a bad response and hidden behind stale data. A read
        # whose pages disagree is started again into new pages: nothing of it is kept.
        async with self.breakers.guard(self.key):
            pages = await self.client.each_page(lambda: FinsyncPages(fetched_at=utcnow()))
        # Putting the pages together (each client once, each account counted once) is about
        # 65 ms of the interpreter at 50,000 clients: in a worker thread, off the event loop
        # (nothing else holds these pages now).
        return await asyncio.to_thread(pages.done)


@dataclass
class FinqwareConnection(_CachedConnection):
    consent: ConsentSettings
    client: FinqwareClient
    cache: SnapshotCache[Interpreted]
    accounts_cache: SnapshotCache[Parsed[FinqwareAccount]]
    orders: BalanceOrders
    source: Source = Source.finqware
    breakers: Breakers = NO_BREAKERS
    credentials: ConsentCredentials = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = ConsentCredentials(
            credentials_id=self.consent.credentials_id,
            access_token=self.consent.access_token,
            tenant_user_id=self.consent.tenant_user_id,
        )

    @property
    def key(self) -> str:
        return finqware_id(self.consent.key)

    def placeholder(self) -> Counterparty | None:
        return finqware_placeholder(self.consent.key, self.consent.label)

    def notices(self, now: datetime) -> list[ResponseWarning]:
        expires_at = self.consent.expires_at
        if expires_at is None or now < expires_at - CONSENT_EXPIRY_NOTICE:
            return []
        when = expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        verb = "expired" if now >= expires_at else "expires"
        return [
            ResponseWarning(
                code=CONSENT_EXPIRING,
                message=f"the consent of {self.key} {verb} at {when}; a new onboarding at "
                "the bank is needed to keep reading it",
                source=self.key,
                counterparty_id=self.key,
            )
        ]

    def notices_until(self, now: datetime) -> datetime | None:
        # `notices` changes where the notice begins, and where "expires" becomes "expired".
        expires_at = self.consent.expires_at
        if expires_at is None:
            return None
        return next(
            (edge for edge in (expires_at - CONSENT_EXPIRY_NOTICE, expires_at) if now < edge),
            None,
        )

    async def _accounts(self) -> Parsed[FinqwareAccount]:
        return await self.client.get_accounts(self.credentials)

    async def _accounts_or_error(self) -> Parsed[FinqwareAccount] | UpstreamError:
        try:
            return (await self.accounts_cache.get(self.key, self._accounts)).value
        except UpstreamError as exc:
            return exc

    async def load(self) -> Interpreted:
        # Accounts (names, IBANs) change rarely and have their own, longer-lived cache.
        async with self.breakers.guard(self.key):
            accounts, balances = await asyncio.gather(
                self._accounts_or_error(), self.client.get_balances(self.credentials)
            )
        listed = (
            Parsed[FinqwareAccount]([], []) if isinstance(accounts, UpstreamError) else accounts
        )
        interpreted = interpret_finqware(
            key=self.consent.key,
            label=self.consent.label,
            accounts=listed.records,
            balances=balances.records,
            fetched_at=utcnow(),
            orders=self.orders,
            rejected_accounts=listed.rejected,
            rejected_balances=balances.rejected,
        )
        if isinstance(accounts, UpstreamError):
            # The balances are what matter: without the account list they are still served,
            # each account named by its id, and the next load asks for the names again.
            logger.warning(
                "%s: account names failed, balances served: %s",
                self.key,
                accounts,
                extra={"connection": self.key, "code": accounts.code},
            )
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


@dataclass(frozen=True)
class Gathered:
    """Everything the connections gave, with the state of each."""

    sources: list[SourceInfo]
    complete: bool
    max_age_seconds: int
    # What the answer depends on: each connection's data version, status, error, the notices
    # of the day and the moment that state came to be. Anything built from the same state is
    # the same, byte for byte.
    state: tuple[Hashable, ...] = ()
    # When that data state came to be: the latest of its connections' moments.
    generated_at: datetime | None = None
    # Each connection's data alone (its key and load version, None when it has none):
    # what positions and the counterparty index are built from, so a change of status alone
    # (a TTL lapse) reuses them.
    data: tuple[tuple[str, int | None], ...] = ()
    # Each connection's counterparties as held, with the state to mark them with (None: as
    # they are), and its warnings: joined only when an answer is built, once per state, so
    # a request costs the same at 50,000 counterparties as at 50.
    parts: tuple[tuple[Sequence[Counterparty], SourceInfo | None], ...] = ()
    warning_parts: tuple[Sequence[ResponseWarning], ...] = ()
    # The IBAN of each bank account that has one: (connection, account id, IBAN).
    ibans: tuple[tuple[str, str, str], ...] = ()

    @cached_property
    def _counted(self) -> Counted:
        # One bank account reached through two consents counts once (app/domain/duplicates);
        # only the Finqware parts are compared, so FinSync's thousands cost nothing here.
        ibans = {(connection, account): iban for connection, account, iban in self.ibans}
        return count_once([held for held, _ in self.parts], ibans)

    @cached_property
    def counterparties(self) -> list[Counterparty]:
        return [
            counterparty
            for held, (_, info) in zip(self._counted.parts, self.parts, strict=True)
            for counterparty in (held if info is None else _with_state(held, info))
        ]

    @cached_property
    def held_counterparties(self) -> list[Counterparty]:
        """Every connection's counterparties as held, not marked with its state (`marked`
        does that for the few an answer shows): a function of `data` alone."""
        return [counterparty for held in self._counted.parts for counterparty in held]

    def marked(self, counterparties: Sequence[Counterparty]) -> list[Counterparty]:
        """`counterparties` (from `held_counterparties`), each marked with the state of the
        connection it comes from when that is not ok."""
        infos = {info.source: info for _, info in self.parts if info is not None}
        marked = []
        for counterparty in counterparties:
            ref = parse_counterparty_id(counterparty.id)
            info = None if ref is None else infos.get(ref.connection)
            marked.extend([counterparty] if info is None else _with_state([counterparty], info))
        return marked

    @cached_property
    def warnings(self) -> list[ResponseWarning]:
        joined = [warning for part in self.warning_parts for warning in part]
        return joined + self._counted.warnings


_T = TypeVar("_T", float, datetime)


def _earliest(held: _T | None, seen: _T | None) -> _T | None:
    if held is None:
        return seen
    return held if seen is None or held <= seen else seen


def _with_max_age(gathered: Gathered, max_age_seconds: int) -> Gathered:
    """`gathered` with another `max_age_seconds`, keeping what it worked out already (none
    of it depends on the max-age)."""
    counted = dataclasses.replace(gathered, max_age_seconds=max_age_seconds)
    counted.__dict__.update(
        (name, value)
        for name, value in gathered.__dict__.items()
        if name not in {field.name for field in dataclasses.fields(Gathered)}
    )
    return counted


def still_true(previous: tuple[Hashable, ...], current: tuple[Hashable, ...]) -> bool:
    """Whether an answer built for data state `previous` still says only what is true now
    that the state is `current`: the same connections, each unchanged, or reloaded since
    (new data) while the answer shows it `stale` or `unavailable` (with its `fetched_at`: it
    says how old it is, and a null error says a refresh was running, which it was).

    A connection it shows `ok` that changed since (new data, or past its TTL) makes it
    false; so does a change of status or error alone (a refresh that failed must be said at
    once, and such an answer is cheap to build: its data is the same), and any other entry
    that changed (a rate source's)."""
    if len(previous) != len(current):
        return False
    for before, now in zip(previous, current, strict=True):
        if before == now:
            continue
        if not (
            isinstance(before, tuple)
            and isinstance(now, tuple)
            and len(before) == len(now) == _STATE_ENTRY_LENGTH
            and before[0] == now[0]
            and before[1] != now[1]
            and before[2] in (SourceStatus.stale, SourceStatus.unavailable)
        ):
            return False
    return True


# A connection's entry in `Gathered.state`: key, version, status, error, notices, moment.
_STATE_ENTRY_LENGTH = 6


def data_of(state: tuple[Hashable, ...]) -> tuple[tuple[str, int | None], ...]:
    """The connections' data in a data state (`Gathered.data` of the answer built for it);
    entries of other kinds (a rate source's) are left out."""
    return tuple(
        (entry[0], entry[1])
        for entry in state
        if isinstance(entry, tuple) and len(entry) == _STATE_ENTRY_LENGTH
    )


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
            error=_source_error(outcome),
        )
    return SourceInfo(
        source=key,
        status=SourceStatus.ok if outcome.status == "fresh" else SourceStatus.stale,
        fetched_at=outcome.fetched_at,
        error=_source_error(outcome.error) if isinstance(outcome.error, UpstreamError) else None,
    )


def snapshot_moment(value: Interpreted) -> datetime | None:
    """The moment a connection's snapshot was received, as its positions carry it (one per
    snapshot), so `sources[].fetched_at` names that moment too; None when it has none."""
    for counterparty in value.counterparties:
        for account in counterparty.accounts:
            if account.position is not None:
                return account.position.fetched_at
    return None


def _with_state(counterparties: Sequence[Counterparty], info: SourceInfo) -> list[Counterparty]:
    """The counterparties of one connection, marked with its state when it is not ok."""
    if info.status is SourceStatus.ok:
        return list(counterparties)
    error = info.error
    why = None if error is None else snapshot.SourceError(code=error.code, message=error.message)
    return [
        msgspec.structs.replace(counterparty, status=info.status, error=why)
        for counterparty in counterparties
    ]


@dataclass(slots=True)
class _Held:
    """The last gather of a set of connections whose every read can say how long it stays
    the same (`Lease`), and what it stays true for (`Treasury.unchanged`)."""

    gathered: Gathered
    # Per cache read: the cache, its `changes` then, the earliest load time of a fresh entry
    # read from it (the first past its TTL, and the shortest `expires_in`) and the earliest
    # end of a failure's back-off read from it (None: none of that kind).
    watched: tuple[tuple[SnapshotCache[Any], int, float | None, float | None], ...]
    # Each fresh read, counted as a hit again: its cache's counter of hits on its key.
    hits: tuple[Callable[[], None], ...]
    moments: int  # `Moments.changes` after the gather
    notices_until: datetime | None
    # A connection read no data (then every gather says max-age 0).
    failed: bool


class Treasury:
    """Asks the connections an answer needs at once and merges what comes back."""

    def __init__(
        self,
        connections: Sequence[Connection],
        *,
        deadline_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.connections = list(connections)
        # An answer leaves by then with what is in hand; slower fetches go on behind it.
        self._deadline_seconds = deadline_seconds
        # The wall clock the notices are read against (and the moments kept by).
        self._clock = clock
        self._moments = Moments(clock)
        # The last gather of each set of connections (by their keys) that read fresh data
        # from every one of them.
        self._held: dict[tuple[str, ...], _Held] = {}

    def unchanged(self, keys: tuple[str, ...]) -> Gathered | None:
        """What a gather of the connections named `keys` (in that order, no refetch) would
        give now, without asking them, when that is known in O(1): the last such gather
        read from each either fresh data or a failure still in its back-off with nothing
        held, and nothing it depends on has changed since (no cache stored, failed or
        invalidated a value; no entry passed its TTL, no back-off ended; no connection's
        condition moved; the notices still say the same), with `max_age_seconds` counted
        down as a gather now would. None otherwise (then gather).

        Each fresh read is counted as a hit, as the gather would count it."""
        held = self._held.get(keys)
        if held is None or held.moments != self._moments.changes:
            return None
        if held.notices_until is not None and not self._clock() < held.notices_until:
            return None
        soonest: float | None = None
        for cache, changes, loaded_at, failed_until in held.watched:
            if cache.changes != changes:
                return None
            if failed_until is not None and not cache.clock() < failed_until:
                return None
            if loaded_at is not None:
                left = cache.expires_in(loaded_at)
                if left is None:
                    return None
                if soonest is None or left < soonest:
                    soonest = left
        for hit in held.hits:
            hit()
        max_age_seconds = 0 if held.failed or soonest is None else int(soonest)
        gathered = held.gathered
        if gathered.max_age_seconds != max_age_seconds:
            gathered = held.gathered = _with_max_age(gathered, max_age_seconds)
        return gathered

    def _hold(
        self,
        chosen: Sequence[Connection],
        outcomes: Sequence[Cached[Interpreted] | UpstreamError],
        gathered: Gathered,
        now: datetime,
    ) -> None:
        """Remember `gathered` for `Treasury.unchanged` when every connection's read is
        still what its `Lease` says (else forget what was held for these connections)."""
        keys = tuple(connection.key for connection in chosen)
        self._held.pop(keys, None)
        # What no longer stands goes now: it would hold a replaced snapshot in memory until
        # its own connections are gathered again.
        for other, was in list(self._held.items()):
            if was.moments != self._moments.changes or any(
                cache.changes != changes for cache, changes, _, _ in was.watched
            ):
                del self._held[other]
        watched: dict[int, tuple[SnapshotCache[Any], int, float | None, float | None]] = {}
        hits: list[Callable[[], None]] = []
        notices_until: datetime | None = None
        for connection, outcome in zip(chosen, outcomes, strict=True):
            lease = connection.lease()
            if lease is None:
                return
            if isinstance(outcome, UpstreamError):
                if lease.failure is not outcome:
                    return
            elif (
                outcome.status != "fresh"
                or outcome.error is not None
                or lease.version != outcome.version
            ):
                return
            else:
                hits.append(lease.cache.hit_counter(lease.key))
            seen = watched.get(id(lease.cache), (lease.cache, lease.changes, None, None))
            watched[id(lease.cache)] = (
                lease.cache,
                lease.changes,
                _earliest(seen[2], lease.loaded_at),
                _earliest(seen[3], lease.failed_until),
            )
            until = connection.notices_until(now)
            notices_until = _earliest(notices_until, until)
        self._held[keys] = _Held(
            gathered,
            tuple(watched.values()),
            tuple(hits),
            self._moments.changes,
            notices_until,
            failed=any(isinstance(outcome, UpstreamError) for outcome in outcomes),
        )

    def connection(self, key: str) -> Connection | None:
        for connection in self.connections:
            if connection.key == key:
                return connection
        return None

    def connection_of(self, counterparty_id: str) -> Connection | None:
        """The connection a well-formed counterparty id belongs to (matched whole), if any."""
        ref = parse_counterparty_id(counterparty_id)
        return None if ref is None else self.connection(ref.connection)

    def scope(
        self,
        *,
        source: Source | None = None,
        kind: Kind | None = None,
        counterparty_id: str | None = None,
    ) -> list[Connection]:
        """The connections whose data can answer a question with these filters: a bank
        connection only holds internal counterparties, and an id names its connection."""
        chosen = [
            connection
            for connection in self.connections
            if (source is None or connection.source is source)
            and not (kind is Kind.external and connection.source is Source.finqware)
        ]
        if counterparty_id is not None:
            owner = self.connection_of(counterparty_id)
            chosen = [connection for connection in chosen if connection is owner]
        return chosen

    async def gather(
        self,
        *,
        refresh: bool = False,
        connections: Sequence[Connection] | None = None,
        require_one: bool = True,
    ) -> Gathered:
        """What the chosen connections (all by default) give; a connection that cannot be
        read still lists its placeholder. Raises AllSourcesUnavailableError when every chosen
        connection failed with nothing cached, unless `require_one` is false."""
        chosen = self.connections if connections is None else list(connections)
        outcomes = await self._within_deadline(chosen, refresh)
        sources = [_info(c.key, outcome) for c, outcome in zip(chosen, outcomes, strict=True)]
        if require_one and chosen and all(isinstance(o, UpstreamError) for o in outcomes):
            raise AllSourcesUnavailableError(sources)
        now = self._clock()
        parts: list[tuple[Sequence[Counterparty], SourceInfo | None]] = []
        warnings: list[Sequence[ResponseWarning]] = []
        fresh_ttls: list[float] = []
        ibans: list[tuple[str, str, str]] = []
        state: list[Hashable] = []
        moments: list[datetime] = []
        data: list[tuple[str, int | None]] = []
        for connection, outcome, info in zip(chosen, outcomes, sources, strict=True):
            notices = connection.notices(now)
            warnings.append(notices)
            version = None if isinstance(outcome, UpstreamError) else outcome.version
            condition = (
                info.status,
                None if info.error is None else (info.error.code, info.error.message),
                tuple(notice.message for notice in notices),
            )
            moment = self._moments.of(connection.key, condition, info.fetched_at)
            if moment is not None:
                moments.append(moment)
            data.append((connection.key, version))
            state.append((connection.key, version, *condition, moment))
            if isinstance(outcome, UpstreamError):
                placeholder = connection.placeholder()
                if placeholder is not None:
                    parts.append(((placeholder,), info))
                fresh_ttls.append(0)
                continue
            parts.append((outcome.value.counterparties, info))
            warnings.append(outcome.value.warnings)
            ibans.extend((connection.key, account, iban) for account, iban in outcome.value.ibans)
            fresh_ttls.append(outcome.expires_in_seconds if outcome.status == "fresh" else 0)
        gathered = Gathered(
            sources=sources,
            complete=all(s.status != SourceStatus.unavailable for s in sources),
            max_age_seconds=int(min(fresh_ttls)) if fresh_ttls else 0,
            state=tuple(state),
            generated_at=max(moments, default=self._moments.started),
            data=tuple(data),
            parts=tuple(parts),
            warning_parts=tuple(warnings),
            ibans=tuple(ibans),
        )
        if not refresh and chosen:
            self._hold(chosen, outcomes, gathered, now)
        return gathered

    async def _within_deadline(
        self, chosen: Sequence[Connection], refresh: bool
    ) -> list[Cached[Interpreted] | UpstreamError]:
        """Each connection's outcome; one still fetching at the deadline answers with its last
        data (stale) or as timed out, and its fetch goes on to fill the cache."""
        if all(c.answers_at_once(refresh=refresh) for c in chosen):
            # Every answer is in hand: read without a task each (the common case).
            return [await self._one(c, refresh) for c in chosen]
        tasks = [asyncio.ensure_future(self._one(c, refresh)) for c in chosen]
        _, pending = await asyncio.wait(tasks, timeout=self._deadline_seconds)
        outcomes: list[Cached[Interpreted] | UpstreamError] = []
        for connection, task in zip(chosen, tasks, strict=True):
            if task not in pending:
                outcomes.append(task.result())
                continue
            # Nobody awaits it now: read its outcome when it ends, so nothing is lost unseen.
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            late = UpstreamTimeoutError(
                connection.key, "still fetching at the answer's deadline; the cache fills behind"
            )
            held = connection.last()
            outcomes.append(
                late
                if held is None
                else dataclasses.replace(held, status="stale", expires_in_seconds=0.0, error=late)
            )
        return outcomes

    @staticmethod
    async def _one(connection: Connection, refresh: bool) -> Cached[Interpreted] | UpstreamError:
        try:
            return await connection.snapshot(refresh=refresh)
        except UpstreamError as exc:
            # The failed call itself was logged once by the cache; this is per request.
            logger.debug("upstream %s unavailable: %s (%s)", connection.key, exc.message, exc.code)
            return exc
