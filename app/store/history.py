"""Writing and reading history: observations written once (insert-or-ignore on their
`source` and `version`), the state of a connection at any instant, the rows between two
instants, gaps and runs, and retention."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import (
    JSON,
    Row,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased

from app.domain.models import CurrencyTotal
from app.domain.observations import AccountChange, AccountFigures, Observation
from app.store.engine import open_engine
from app.store.migrate import upgrade
from app.store.tables import (
    checkpoint_accounts,
    checkpoints,
    gaps,
    observations,
    observed_accounts,
    observed_totals,
    runs,
)

logger = logging.getLogger(__name__)

AccountKey = tuple[str, str, str]  # counterparty id, account id, currency

# Account rows written per statement, and positions read per statement.
WRITE_BATCH = 1000
RECORDS_BATCH = 500

# pg_try_advisory_xact_lock's key for retention (the migrations' key plus one).
PRUNE_LOCK_KEY = 0x74_65_73_6F_72_6F + 1


class AccountRow(msgspec.Struct, frozen=True, gc=False):
    """One account in one observation: its figures and position JSON (None when it vanished),
    and the figures it replaced (None when it appeared).

    Untracked by the garbage collector (it holds only text, figures and a tuple of text): an
    observation holds one per account (70,000 at 50,000 clients) while it is made and
    written, and tracked they made each full collection of a reload scan them all."""

    counterparty_id: str
    account_id: str
    currency: str
    figures: AccountFigures | None
    position: str | None
    before: AccountFigures | None
    figures_changed: bool
    # The position's kind, counterparty name and account name (None when it vanished).
    listed: tuple[str, str, str] | None = None

    @property
    def key(self) -> AccountKey:
        return (self.counterparty_id, self.account_id, self.currency)


@dataclass(frozen=True, slots=True)
class NewObservation:
    """An observation as the recorder hands it to the store (its `seq` comes from the store)."""

    source: str
    version: str
    at: datetime
    fetched_at: datetime | None
    observed_at: datetime
    status: str
    error_code: str | None
    error_message: str | None
    data: bool  # a new data state (accounts and totals), not only a status change
    warnings: str | None  # the connection's warnings then, as JSON
    accounts: tuple[AccountRow, ...]
    totals: tuple[CurrencyTotal, ...] | None  # None: unchanged since the last written


@dataclass(frozen=True, slots=True)
class StoredObservation:
    """An observation row, without its accounts."""

    seq: int
    source: str
    version: str
    at: datetime
    fetched_at: datetime | None
    observed_at: datetime
    status: str
    error_code: str | None
    error_message: str | None
    data: bool
    warnings: str | None


class HeldAccount(msgspec.Struct, frozen=True, gc=False):
    """An account as last observed: its figures and position JSON, and the observation.
    Untracked by the garbage collector, as its figures are (one per account, held for as
    long as the process runs)."""

    seq: int
    figures: AccountFigures
    position: str


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """A connection as history holds it at some point: its latest observation (any kind), its
    latest data observation, and its accounts then."""

    last: StoredObservation
    data: StoredObservation | None
    accounts: dict[AccountKey, HeldAccount]


@dataclass(frozen=True, slots=True)
class PastRecords:
    """A connection as history holds it at some point, its accounts as their stored position
    JSON only (what an answer as of an instant is rebuilt from)."""

    last: StoredObservation
    data: StoredObservation | None
    records: list[str]


class Listed(NamedTuple):
    """An account as listed at some point: its row's seq, and what a listing reads."""

    seq: int
    counterparty_id: str
    counterparty_name: str
    kind: str
    account_id: str
    account_name: str
    currency: str
    amount: str
    side: str
    meaning: str


@dataclass(frozen=True, slots=True)
class ChangedRow:
    """An account whose figures differ between two observations: its amount before (None:
    it did not exist) and after (None: it vanished), the moment of its last row, and what a
    filter reads (as last listed)."""

    key: AccountKey
    before: Decimal | None
    after: Decimal | None
    changed_at: datetime
    kind: str
    meaning: str
    side: str


@dataclass(frozen=True, slots=True)
class TimedRow:
    """An account row with the moment of its observation (replayed in order)."""

    seq: int
    at: datetime
    key: AccountKey
    held: HeldAccount | None  # None: the account vanished


@dataclass(frozen=True, slots=True)
class Gap:
    source: str
    started_at: datetime
    ended_at: datetime
    reason: str


def _same_texts(
    before: tuple[str | None, ...] | None, after: tuple[str | None, ...] | None
) -> bool:
    """Whether two accounts' figures (amount, available, credit line as stored) are the same
    numbers (read as decimals only where the texts differ: `1.0` is `1.00`)."""
    if before is None or after is None:
        return before is after
    for was, now in zip(before, after, strict=True):
        if was == now:
            continue
        if was is None or now is None or Decimal(was) != Decimal(now):
            return False
    return True


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def figures_json(figures: AccountFigures) -> str:
    return json.dumps(
        {
            "counterparty_id": figures.counterparty_id,
            "account_id": figures.account_id,
            "currency": figures.currency,
            "amount": str(figures.amount),
            "available": _money(figures.available),
            "credit_line": _money(figures.credit_line),
            "meaning": figures.meaning,
            "side": figures.side,
            "as_of": None if figures.as_of is None else figures.as_of.isoformat(),
        },
        separators=(",", ":"),
    )


def figures_from_json(raw: str | None) -> AccountFigures | None:
    if raw is None:
        return None
    found: dict[str, Any] = json.loads(raw)
    amount = _decimal(found["amount"])
    assert amount is not None
    return AccountFigures(
        counterparty_id=found["counterparty_id"],
        account_id=found["account_id"],
        currency=found["currency"],
        amount=amount,
        available=_decimal(found["available"]),
        credit_line=_decimal(found["credit_line"]),
        meaning=found["meaning"],
        side=found["side"],
        as_of=None if found["as_of"] is None else datetime.fromisoformat(found["as_of"]),
    )


def _figures_of(row: Any) -> AccountFigures:
    amount = _decimal(row.amount)
    assert amount is not None
    return AccountFigures(
        counterparty_id=row.counterparty_id,
        account_id=row.account_id,
        currency=row.currency,
        amount=amount,
        available=_decimal(row.available),
        credit_line=_decimal(row.credit_line),
        meaning=row.meaning,
        side=row.side,
        as_of=row.as_of,
    )


def _stored(row: Row[Any]) -> StoredObservation:
    return StoredObservation(
        seq=row.seq,
        source=row.source,
        version=row.version,
        at=row.at,
        fetched_at=row.fetched_at,
        observed_at=row.observed_at,
        status=row.status,
        error_code=row.error_code,
        error_message=row.error_message,
        data=row.data,
        warnings=row.warnings,
    )


class HistoryStore:
    """The store behind history; every method may raise the driver's errors (the recorder
    and the routes decide what a failure means)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> HistoryStore:
        return cls(open_engine(url))

    async def close(self) -> None:
        await self.engine.dispose()

    async def upgrade(self) -> tuple[str | None, str | None]:
        return await upgrade(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def _insert_ignoring(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    # Writing

    async def write(self, observation: NewObservation) -> int | None:
        """Store one observation with its accounts and totals in one transaction; its seq, or
        None when another replica stored it already (same source and version)."""
        async with self.engine.begin() as connection:
            seq = (
                await connection.execute(
                    self._insert_ignoring(observations).returning(observations.c.seq),
                    {
                        "source": observation.source,
                        "version": observation.version,
                        "at": observation.at,
                        "fetched_at": observation.fetched_at,
                        "observed_at": observation.observed_at,
                        "status": observation.status,
                        "error_code": observation.error_code,
                        "error_message": observation.error_message,
                        "data": observation.data,
                        "has_totals": observation.totals is not None,
                        "warnings": observation.warnings,
                    },
                )
            ).scalar_one_or_none()
            if seq is None:
                return None
            # In batches, the event loop let go between them: the rows' parameters are made
            # on it, and 50,000 at once would hold every answer waiting (a /healthz too).
            for start in range(0, len(observation.accounts), WRITE_BATCH):
                batch = observation.accounts[start : start + WRITE_BATCH]
                await connection.execute(
                    insert(observed_accounts),
                    [_account_values(seq, observation.source, row) for row in batch],
                )
                await asyncio.sleep(0)
            if observation.totals:
                await connection.execute(
                    insert(observed_totals),
                    [{"seq": seq, **total.model_dump(mode="json")} for total in observation.totals],
                )
            if observation.data:
                await _checkpoint_if_new_day(connection, observation.source, seq, observation.at)
            return int(seq)

    async def record_gap(
        self, source: str, started_at: datetime, ended_at: datetime, reason: str, dropped: int
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                insert(gaps),
                {
                    "source": source,
                    "started_at": started_at,
                    "ended_at": ended_at,
                    "reason": reason,
                    "dropped": dropped,
                },
            )

    async def run_seen(self, run_id: str, started_at: datetime, now: datetime) -> None:
        """This process is running (its first call records its start)."""
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(runs).where(runs.c.id == run_id).values(last_seen_at=now)
            )
            if changed.rowcount == 0:
                await connection.execute(
                    insert(runs), {"id": run_id, "started_at": started_at, "last_seen_at": now}
                )

    async def run_stopped(self, run_id: str, now: datetime) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(runs).where(runs.c.id == run_id).values(last_seen_at=now, stopped_at=now)
            )

    # Reading what the recorder needs

    async def last_seq(self, source: str) -> int | None:
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(func.max(observations.c.seq)).where(observations.c.source == source)
            )
            return None if found is None else int(found)

    async def last_data_at(self, source: str) -> datetime | None:
        """When `source` last gave data (its latest data observation's moment)."""
        async with self.engine.connect() as connection:
            found: datetime | None = await connection.scalar(
                select(func.max(observations.c.at)).where(
                    observations.c.source == source, observations.c.data
                )
            )
            return found

    async def current(self, source: str) -> ConnectionState | None:
        """The connection as last recorded (None when never observed)."""
        async with self.engine.connect() as connection:
            return await _state(connection, source, None)

    # Reading for the events (replays) and the routes

    async def latest_seq(self) -> int | None:
        async with self.engine.connect() as connection:
            found = await connection.scalar(select(func.max(observations.c.seq)))
            return None if found is None else int(found)

    async def first_seq(self) -> int | None:
        async with self.engine.connect() as connection:
            found = await connection.scalar(select(func.min(observations.c.seq)))
            return None if found is None else int(found)

    async def observations_after(self, seq: int, *, limit: int) -> list[Observation]:
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(observations)
                    .where(observations.c.seq > seq)
                    .order_by(observations.c.seq)
                    .limit(limit)
                )
            ).all()
            if not rows:
                return []
            seqs = [row.seq for row in rows]
            accounts = (
                await connection.execute(
                    select(observed_accounts)
                    .where(
                        observed_accounts.c.seq.in_(seqs),
                        observed_accounts.c.figures_changed,
                    )
                    .order_by(
                        observed_accounts.c.seq,
                        observed_accounts.c.counterparty_id,
                        observed_accounts.c.account_id,
                        observed_accounts.c.currency,
                    )
                )
            ).all()
        changes: dict[int, list[AccountChange]] = {}
        for account in accounts:
            changes.setdefault(account.seq, []).append(
                AccountChange(
                    counterparty_id=account.counterparty_id,
                    account_id=account.account_id,
                    currency=account.currency,
                    before=figures_from_json(account.before),
                    after=_figures_of(account) if account.present else None,
                )
            )
        return [observation_of(_stored(row), tuple(changes.get(row.seq, ()))) for row in rows]

    async def totals_moments(
        self, source: str, started: datetime, ended: datetime
    ) -> list[tuple[datetime, int]]:
        """When the connection's totals were written up to `ended`, from the last written at
        or before `started` on, oldest first (moment, observation seq): a chart picks the
        few it shows and reads only their totals (`totals_of`)."""
        carrying = and_(
            observations.c.source == source, observations.c.has_totals, observations.c.data
        )
        async with self.engine.connect() as connection:
            anchor = await connection.scalar(
                select(func.max(observations.c.at)).where(carrying, observations.c.at <= started)
            )
            moments = select(observations.c.at, observations.c.seq).where(
                carrying, observations.c.at <= ended
            )
            if anchor is not None:
                moments = moments.where(observations.c.at >= anchor)
            found = await connection.execute(
                moments.order_by(observations.c.at, observations.c.seq)
            )
            return [(row[0], row[1]) for row in found]

    async def totals_of(self, seqs: Collection[int]) -> dict[int, list[CurrencyTotal]]:
        """The totals written with each of these observations (an empty list: none held)."""
        by_seq: dict[int, list[CurrencyTotal]] = {seq: [] for seq in seqs}
        if not by_seq:
            return by_seq
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(observed_totals)
                .where(observed_totals.c.seq.in_(list(by_seq)))
                .order_by(observed_totals.c.seq, observed_totals.c.currency)
            )
            for row in rows:
                values = {name: value for name, value in row._mapping.items() if name != "seq"}
                by_seq[row.seq].append(CurrencyTotal.model_validate(values))
        return by_seq

    async def first_at(self, sources: Sequence[str]) -> dict[str, datetime]:
        """When each connection's history starts (its first observation), if it has one."""
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(observations.c.source, func.min(observations.c.at))
                    .where(observations.c.source.in_(sources))
                    .group_by(observations.c.source)
                )
            ).all()
        return {row[0]: row[1] for row in rows}

    async def state_at(self, source: str, instant: datetime) -> ConnectionState | None:
        """The connection as last observed at or before `instant` (None: not yet observed)."""
        async with self.engine.connect() as connection:
            return await _state(connection, source, instant)

    async def records_at(self, source: str, instant: datetime) -> PastRecords | None:
        """As `state_at`, the accounts' position JSON only (no figures decoded)."""
        marks = await self.marks_at(source, instant)
        if marks is None:
            return None
        last, data = marks
        if data is None:
            return PastRecords(last, None, [])
        return PastRecords(last, data, await self.positions_as_of(source, data.seq))

    async def positions_as_of(self, source: str, seq: int) -> list[str]:
        """The position JSON of every account of `source` present as of observation `seq`."""
        async with self.engine.connect() as connection:
            latest = await _held_rows(connection, source, seq)
            found = await connection.scalars(_present_of(latest, observed_accounts.c.position))
            return list(found)

    async def listed_as_of(self, source: str, seq: int) -> list[Listed]:
        """What filters, totals and the listing order read of every account of `source`
        present as of observation `seq` (the names and kind read from its JSON by the
        database): the positions themselves are read for a page only (`records_of`)."""
        accounts = observed_accounts.c
        async with self.engine.connect() as connection:
            latest = await _held_rows(connection, source, seq)
            rows = await connection.execute(
                _present_of(
                    latest,
                    accounts.seq,
                    accounts.counterparty_id,
                    self._listed(accounts.counterparty_name, accounts.position),
                    self._listed(accounts.kind, accounts.position),
                    accounts.account_id,
                    self._listed(accounts.account_name, accounts.position),
                    accounts.currency,
                    accounts.amount,
                    accounts.side,
                    accounts.meaning,
                )
            )
            return [Listed(*row) for row in rows]

    async def records_of(
        self, rows: Sequence[tuple[int, AccountKey]]
    ) -> dict[tuple[int, AccountKey], str]:
        """The position JSON of the given account rows (observation seq and account key)."""
        accounts = observed_accounts.c
        records: dict[tuple[int, AccountKey], str] = {}
        async with self.engine.connect() as connection:
            # A few hundred rows a statement: a page of 10,000 in one IN list is past
            # PostgreSQL's stack depth.
            for start in range(0, len(rows), RECORDS_BATCH):
                batch = [(seq, *key) for seq, key in rows[start : start + RECORDS_BATCH]]
                found = await connection.execute(
                    select(
                        accounts.seq,
                        accounts.counterparty_id,
                        accounts.account_id,
                        accounts.currency,
                        accounts.position,
                    ).where(
                        tuple_(
                            accounts.seq,
                            accounts.counterparty_id,
                            accounts.account_id,
                            accounts.currency,
                        ).in_(batch)
                    )
                )
                records.update(((row[0], (row[1], row[2], row[3])), row[4]) for row in found)
        return records

    async def marks_at(
        self, source: str, instant: datetime
    ) -> tuple[StoredObservation, StoredObservation | None] | None:
        """The connection's latest observation at or before `instant` and its latest data
        observation (None: not yet observed)."""
        async with self.engine.connect() as connection:
            last = await _latest(connection, source, instant, data=False)
            if last is None:
                return None
            return last, last if last.data else await _latest(
                connection, source, instant, data=True
            )

    async def changed_between(
        self, source: str, after_seq: int | None, until: datetime
    ) -> list[ChangedRow]:
        """Each account of `source` with a row after observation `after_seq` (all when None)
        up to `until`: its figures before the first of them (the row before it) and after the
        last. Grouped and joined by the database: the accounts that did not change are never
        read, and no row's JSON is decoded."""
        accounts = observed_accounts.c
        # Through the observations (see `_held_rows`): only the window's rows are read.
        seqs = select(observations.c.seq).where(
            observations.c.source == source, observations.c.at <= until
        )
        if after_seq is not None:
            seqs = seqs.where(observations.c.seq > after_seq)
        grouped = (
            select(
                accounts.counterparty_id,
                accounts.account_id,
                accounts.currency,
                func.min(accounts.seq).label("first"),
                func.max(accounts.seq).label("last"),
            )
            .where(accounts.seq.in_(seqs))
            .group_by(accounts.counterparty_id, accounts.account_id, accounts.currency)
            .subquery()
        )
        earlier = aliased(observed_accounts)

        def before(seq: Any, *, present: bool = False) -> Any:
            """The seq of the account's latest row before `seq` (present, if asked)."""
            conditions = [
                earlier.c.source == source,
                earlier.c.counterparty_id == grouped.c.counterparty_id,
                earlier.c.account_id == grouped.c.account_id,
                earlier.c.currency == grouped.c.currency,
                earlier.c.seq < seq,
            ]
            if present:
                conditions.append(earlier.c.present)
            return select(func.max(earlier.c.seq)).where(*conditions).scalar_subquery()

        window = select(
            grouped,
            before(grouped.c.first).label("previous"),
        ).subquery()
        last, previous, kept = (aliased(observed_accounts) for _ in range(3))

        def same_key(row: Any, seq: Any) -> Any:
            return and_(
                row.c.counterparty_id == window.c.counterparty_id,
                row.c.account_id == window.c.account_id,
                row.c.currency == window.c.currency,
                row.c.seq == seq,
            )

        # A vanished account is listed as it was before it vanished.
        listed = aliased(observed_accounts)
        query = (
            select(
                window.c.counterparty_id,
                window.c.account_id,
                window.c.currency,
                previous.c.present.label("was"),
                previous.c.amount.label("was_amount"),
                previous.c.available.label("was_available"),
                previous.c.credit_line.label("was_credit_line"),
                last.c.present,
                last.c.amount,
                last.c.available,
                last.c.credit_line,
                window.c.last,
                func.coalesce(last.c.meaning, listed.c.meaning).label("meaning"),
                func.coalesce(last.c.side, listed.c.side).label("side"),
                self._listed(listed.c.kind, listed.c.position).label("kind"),
            )
            .select_from(window)
            .join(last, same_key(last, window.c.last))
            .outerjoin(previous, same_key(previous, window.c.previous))
            .join(
                listed,
                same_key(
                    listed,
                    func.coalesce(
                        case((last.c.present, window.c.last)),
                        select(func.max(kept.c.seq))
                        .where(
                            kept.c.source == source,
                            kept.c.counterparty_id == window.c.counterparty_id,
                            kept.c.account_id == window.c.account_id,
                            kept.c.currency == window.c.currency,
                            kept.c.seq <= window.c.last,
                            kept.c.present,
                        )
                        .scalar_subquery(),
                    ),
                ),
            )
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
            # The moments of the window's few observations, read once (not once per row).
            found_at = await connection.execute(
                select(observations.c.seq, observations.c.at).where(observations.c.seq.in_(seqs))
            )
            moments: dict[int, datetime] = {row[0]: row[1] for row in found_at}
        found = []
        for row in rows:
            before_figures = (
                (row.was_amount, row.was_available, row.was_credit_line) if row.was else None
            )
            after_figures = (row.amount, row.available, row.credit_line) if row.present else None
            if _same_texts(before_figures, after_figures):
                continue
            found.append(
                ChangedRow(
                    key=(row.counterparty_id, row.account_id, row.currency),
                    before=None if before_figures is None else Decimal(before_figures[0]),
                    after=None if after_figures is None else Decimal(after_figures[0]),
                    changed_at=moments[row.last],
                    kind=row.kind,
                    meaning=row.meaning,
                    side=row.side,
                )
            )
        return found

    def _listed(self, column: Any, document: Any) -> Any:
        """A listing's column, read from the row's JSON where it was written before it was
        kept beside it."""
        return func.coalesce(column, self._json_text(document, column.name))

    def _json_text(self, document: Any, name: str) -> Any:
        """A top-level string of a JSON text column, read by the database."""
        if self.engine.dialect.name == "postgresql":
            return cast(document, JSON)[name].as_string()
        return func.json_extract(document, f"$.{name}")

    async def rows_between(
        self, source: str, after_seq: int | None, until: datetime
    ) -> list[TimedRow]:
        """The account rows of `source` after observation `after_seq` (all when None) up to
        `until`, in the order they were observed."""
        conditions = [observed_accounts.c.source == source, observations.c.at <= until]
        if after_seq is not None:
            conditions.append(observed_accounts.c.seq > after_seq)
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(observed_accounts, observations.c.at)
                    .join(observations, observations.c.seq == observed_accounts.c.seq)
                    .where(*conditions)
                    .order_by(observations.c.at, observed_accounts.c.seq)
                )
            ).all()
        return [
            TimedRow(
                seq=row.seq,
                at=row.at,
                key=(row.counterparty_id, row.account_id, row.currency),
                held=HeldAccount(row.seq, _figures_of(row), row.position) if row.present else None,
            )
            for row in rows
        ]

    async def observed_between(
        self, source: str, started: datetime, ended: datetime
    ) -> list[datetime]:
        """When `source` was observed between two instants (each observation's moment)."""
        async with self.engine.connect() as connection:
            rows = await connection.scalars(
                select(observations.c.at)
                .where(
                    observations.c.source == source,
                    observations.c.at > started,
                    observations.c.at <= ended,
                )
                .order_by(observations.c.at)
            )
            return list(rows)

    async def gaps_between(
        self, sources: Sequence[str], started: datetime, ended: datetime
    ) -> list[Gap]:
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(gaps)
                    .where(
                        gaps.c.source.in_(sources),
                        gaps.c.ended_at > started,
                        gaps.c.started_at < ended,
                    )
                    .order_by(gaps.c.started_at)
                )
            ).all()
        return [Gap(row.source, row.started_at, row.ended_at, row.reason) for row in rows]

    async def runs_between(
        self, started: datetime, ended: datetime
    ) -> list[tuple[datetime, datetime]]:
        """When tesoro was running (any replica) between two instants: (start, last seen)."""
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(runs.c.started_at, runs.c.last_seen_at)
                    .where(runs.c.last_seen_at > started, runs.c.started_at < ended)
                    .order_by(runs.c.started_at)
                )
            ).all()
        return [(row[0], row[1]) for row in rows]

    # Retention

    async def prune(self, before: datetime) -> int:
        """Forget what was observed before `before`, keeping what is still needed to answer
        for later instants: each connection's state at the cut is moved onto its latest
        observation before the cut, which history then starts with. Returns the observations
        deleted."""
        deleted = 0
        async with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                # One replica prunes at a time; the others find the lock taken and skip.
                taken = await connection.scalar(
                    text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PRUNE_LOCK_KEY}
                )
                if not taken:
                    return 0
            sources = list(await connection.scalars(select(observations.c.source).distinct()))
            for source in sources:
                deleted += await _prune_source(connection, source, before)
            await connection.execute(delete(runs).where(runs.c.last_seen_at < before))
        return deleted


def _account_values(seq: int, source: str, row: AccountRow) -> dict[str, Any]:
    figures = row.figures
    return {
        "seq": seq,
        "counterparty_id": row.counterparty_id,
        "account_id": row.account_id,
        "currency": row.currency,
        "source": source,
        "present": figures is not None,
        "figures_changed": row.figures_changed,
        "amount": None if figures is None else str(figures.amount),
        "available": None if figures is None else _money(figures.available),
        "credit_line": None if figures is None else _money(figures.credit_line),
        "meaning": None if figures is None else figures.meaning,
        "side": None if figures is None else figures.side,
        "as_of": None if figures is None else figures.as_of,
        "position": row.position,
        "before": None if row.before is None else figures_json(row.before),
        "kind": None if row.listed is None else row.listed[0],
        "counterparty_name": None if row.listed is None else row.listed[1],
        "account_name": None if row.listed is None else row.listed[2],
    }


def observation_of(stored: StoredObservation, changes: tuple[AccountChange, ...]) -> Observation:
    """The public unit of history and events from a stored row and its figure changes."""
    deltas: dict[str, Decimal] = {}
    for change in changes:
        deltas[change.currency] = deltas.get(change.currency, Decimal(0)) + change.delta
    return Observation(
        seq=stored.seq,
        source=stored.source,
        version=stored.version,
        fetched_at=stored.fetched_at,
        observed_at=stored.observed_at,
        status=stored.status,
        error_code=stored.error_code,
        error_message=stored.error_message,
        changes=changes,
        totals_delta=tuple(sorted(deltas.items())),
    )


async def _latest(
    connection: AsyncConnection, source: str, instant: datetime | None, *, data: bool
) -> StoredObservation | None:
    query = select(observations).where(observations.c.source == source)
    if instant is not None:
        query = query.where(observations.c.at <= instant)
    if data:
        query = query.where(observations.c.data)
    row = (
        await connection.execute(
            query.order_by(observations.c.at.desc(), observations.c.seq.desc()).limit(1)
        )
    ).first()
    return None if row is None else _stored(row)


async def _state(
    connection: AsyncConnection, source: str, instant: datetime | None
) -> ConnectionState | None:
    last = await _latest(connection, source, instant, data=False)
    if last is None:
        return None
    data = last if last.data else await _latest(connection, source, instant, data=True)
    if data is None:
        return ConnectionState(last, None, {})
    return ConnectionState(last, data, await _accounts_at(connection, source, data.seq))


async def _checkpoint_of(connection: AsyncConnection, source: str, seq: int) -> int | None:
    """The latest checkpoint of `source` at or before observation `seq`."""
    found = await connection.scalar(
        select(func.max(checkpoints.c.seq)).where(
            checkpoints.c.source == source, checkpoints.c.seq <= seq
        )
    )
    return None if found is None else int(found)


async def _held_rows(connection: AsyncConnection, source: str, seq: int) -> Any:
    """Each account's latest row of `source` as of observation `seq` (its key and seq; a
    vanished account's included, callers keep the present): the latest of the latest
    checkpoint's rows and the rows written since (every row when there is no checkpoint
    yet)."""
    accounts = observed_accounts.c
    base = await _checkpoint_of(connection, source, seq)
    # The rows are found through their observations (the primary key's first column): a
    # condition on the account rows' `source` would have the database read every row kept.
    since = select(observations.c.seq).where(
        observations.c.source == source, observations.c.seq <= seq
    )
    if base is not None:
        since = since.where(observations.c.seq > base)
    recent = select(
        accounts.counterparty_id, accounts.account_id, accounts.currency, accounts.seq
    ).where(accounts.seq.in_(since))
    rows: Any = recent
    if base is not None:
        held = checkpoint_accounts.c
        kept = select(
            held.counterparty_id, held.account_id, held.currency, held.row_seq.label("seq")
        ).where(held.seq == base)
        if connection.dialect.name == "sqlite":
            # SQLite seeks each checkpoint row's key in the index (a third faster than
            # grouping them with the recent rows); PostgreSQL's planner, misled by stale
            # statistics after a day's writes, made the same anti-join quadratic.
            later = aliased(observed_accounts)
            kept = kept.where(
                ~exists().where(
                    later.c.source == source,
                    later.c.counterparty_id == held.counterparty_id,
                    later.c.account_id == held.account_id,
                    later.c.currency == held.currency,
                    later.c.seq > base,
                    later.c.seq <= seq,
                )
            )
        # A checkpoint's rows are older than any written since: the maximum is the latest.
        rows = union_all(kept, recent)
    every = rows.subquery()
    return (
        select(
            every.c.counterparty_id,
            every.c.account_id,
            every.c.currency,
            func.max(every.c.seq).label("seq"),
        )
        .group_by(every.c.counterparty_id, every.c.account_id, every.c.currency)
        .subquery()
    )


async def _checkpoint_if_new_day(
    connection: AsyncConnection, source: str, seq: int, at: datetime
) -> None:
    """Write the connection's state as of observation `seq` as a checkpoint when it is its
    first data observation of a UTC day (or it has none yet): done by the database itself,
    from the previous checkpoint and the rows since, so it costs the writer no Python work
    per account."""
    last_at: datetime | None = await connection.scalar(
        select(checkpoints.c.at)
        .where(checkpoints.c.source == source)
        .order_by(checkpoints.c.seq.desc())
        .limit(1)
    )
    if last_at is not None and at.astimezone(UTC).date() <= last_at.date():
        return
    latest = await _held_rows(connection, source, seq)
    await connection.execute(insert(checkpoints), {"seq": seq, "source": source, "at": at})
    await connection.execute(
        insert(checkpoint_accounts).from_select(
            ["seq", "counterparty_id", "account_id", "currency", "row_seq"],
            select(
                literal(seq, checkpoint_accounts.c.seq.type),
                latest.c.counterparty_id,
                latest.c.account_id,
                latest.c.currency,
                latest.c.seq,
            )
            .select_from(latest)
            .join(observed_accounts, _same_row_of(latest))
            .where(observed_accounts.c.present),
        )
    )


def _present_of(latest: Any, *columns: Any) -> Any:
    """`columns` of the present accounts among the rows `latest` names: each looked up by its
    primary key (the rows are of one connection already)."""
    return (
        select(*columns)
        .select_from(latest)
        .join(observed_accounts, _same_row_of(latest))
        .where(observed_accounts.c.present)
    )


def _same_row_of(latest: Any) -> Any:
    accounts = observed_accounts.c
    return and_(
        accounts.counterparty_id == latest.c.counterparty_id,
        accounts.account_id == latest.c.account_id,
        accounts.currency == latest.c.currency,
        accounts.seq == latest.c.seq,
    )


async def _accounts_at(
    connection: AsyncConnection, source: str, seq: int
) -> dict[AccountKey, HeldAccount]:
    """Every account of `source` present as of observation `seq`: the latest row of each."""
    accounts = observed_accounts.c
    latest = await _held_rows(connection, source, seq)
    rows = (
        await connection.execute(
            select(observed_accounts)
            .select_from(latest)
            .join(observed_accounts, _same_row_of(latest))
            .where(accounts.present)
        )
    ).all()
    return {
        (row.counterparty_id, row.account_id, row.currency): HeldAccount(
            row.seq, _figures_of(row), row.position
        )
        for row in rows
    }


async def _prune_source(connection: AsyncConnection, source: str, before: datetime) -> int:
    cut = await _latest(connection, source, before, data=True)
    if cut is None:
        return 0
    older = and_(observations.c.source == source, observations.c.seq < cut.seq)
    if not await connection.scalar(select(exists().where(older))):
        return 0
    held = await _accounts_at(connection, source, cut.seq)
    accounts = observed_accounts.c
    # The cut's observation becomes the first: every account present then is written on it.
    moved = [(key, account) for key, account in held.items() if account.seq != cut.seq]
    await connection.execute(
        delete(observed_accounts).where(accounts.seq == cut.seq, ~accounts.present)
    )
    await connection.execute(
        update(observed_accounts)
        .where(accounts.seq == cut.seq)
        .values(before=None, figures_changed=True)
    )
    for (counterparty_id, account_id, currency), account in moved:
        await connection.execute(
            update(observed_accounts)
            .where(
                accounts.seq == account.seq,
                accounts.counterparty_id == counterparty_id,
                accounts.account_id == account_id,
                accounts.currency == currency,
            )
            .values(seq=cut.seq, before=None, figures_changed=True)
        )
    # Accounts rows go with their observations (ON DELETE CASCADE needs SQLite's
    # foreign_keys pragma, which every connection sets; deleted here explicitly all the same).
    # Checkpoints after the cut point at the rows just moved onto it; older ones go.
    kept_checkpoints = select(checkpoints.c.seq).where(
        checkpoints.c.source == source, checkpoints.c.seq >= cut.seq
    )
    await connection.execute(
        update(checkpoint_accounts)
        .where(
            checkpoint_accounts.c.seq.in_(kept_checkpoints),
            checkpoint_accounts.c.row_seq < cut.seq,
        )
        .values(row_seq=cut.seq)
    )
    doomed = select(observations.c.seq).where(older)
    doomed_checkpoints = select(checkpoints.c.seq).where(checkpoints.c.seq.in_(doomed))
    await connection.execute(
        delete(checkpoint_accounts).where(checkpoint_accounts.c.seq.in_(doomed_checkpoints))
    )
    await connection.execute(delete(checkpoints).where(checkpoints.c.seq.in_(doomed)))
    await connection.execute(delete(observed_accounts).where(accounts.seq.in_(doomed)))
    await connection.execute(delete(observed_totals).where(observed_totals.c.seq.in_(doomed)))
    result = await connection.execute(delete(observations).where(older))
    await connection.execute(delete(gaps).where(gaps.c.source == source, gaps.c.ended_at < cut.at))
    return int(result.rowcount)
