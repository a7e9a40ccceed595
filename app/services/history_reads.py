"""Reading history: the positions as tesoro last observed them at an instant, totals at the
end of each hour, day or week with the gaps in between, and what changed between two
instants; all rebuilt from the store's observations (app.store.history)."""

from __future__ import annotations

import itertools
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

from app.domain.counterparties import normalize_text
from app.domain.models import (
    CurrencyTotal,
    Kind,
    Meaning,
    Position,
    ReportedFigure,
    ResponseWarning,
    Side,
    Source,
    SourceError,
    SourceErrorCode,
    SourceInfo,
    SourceStatus,
)
from app.domain.money import sum_exact
from app.domain.observations import AccountFigures
from app.domain.positions import totals
from app.services.history import LOADED_AT, moment_json
from app.store.history import (
    AccountKey,
    ChangedRow,
    HeldAccount,
    HistoryStore,
    Listed,
    StoredObservation,
)

Interval = Literal["hour", "day", "week"]
MAX_POINTS = 10_000
# How long after a run's last heartbeat it still counts as running (the beat is every minute).
RUN_GRACE = timedelta(minutes=3)

Filter = Callable[[Sequence[Position]], list[Position]]


class HistoryNotAvailableError(Exception):
    """The instant asked is before history starts for the connections the question needs."""

    def __init__(self, history_starts_at: datetime | None) -> None:
        when = (
            "no observation yet"
            if history_starts_at is None
            else (f"history starts at {history_starts_at.isoformat().replace('+00:00', 'Z')}")
        )
        super().__init__(f"tesoro has not observed these connections that far back ({when})")
        self.history_starts_at = history_starts_at


class HistoryUnavailableError(Exception):
    """History is off, or its store cannot be read now."""


@dataclass(frozen=True, slots=True)
class PastConnection:
    """One connection as last observed at or before an instant."""

    key: str
    info: SourceInfo
    warnings: list[ResponseWarning]
    at: datetime | None  # the moment of the observation used


@dataclass(frozen=True, slots=True)
class PastPositions:
    """Every position of some connections as last observed, in listing order, read lightly:
    each carries only what filters, totals and the order read (`full` reads the served
    positions of a page). Kept as read (see `_Kept`): the same state is never read twice."""

    positions: list[Position]
    # id of a light position: its row (observation seq, account key), its load time's JSON.
    rows: dict[int, tuple[int, AccountKey, str]]

    async def full(self, store: HistoryStore, page: Sequence[Position]) -> list[Position]:
        """The positions as served, for the few of a page (read from the store)."""
        wanted = [self.rows[id(light)] for light in page]
        records = await store.records_of([(seq, key) for seq, key, _ in wanted])
        return [
            Position.model_validate_json(records[seq, key].replace(LOADED_AT_JSON, loaded))
            for seq, key, loaded in wanted
        ]


@dataclass(frozen=True, slots=True)
class PastAnswer:
    connections: list[PastConnection]
    positions: PastPositions


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    totals: list[CurrencyTotal]


@dataclass(frozen=True, slots=True)
class GapFound:
    source: str | None  # None: tesoro itself was not running
    started_at: datetime
    ended_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Change:
    counterparty_id: str
    account_id: str
    currency: str
    before: Decimal | None
    after: Decimal | None
    delta: Decimal
    changed_at: datetime


def listing_order(position: Position) -> tuple[str, str, str, str, str]:
    """The order of every positions listing (app.domain.positions.positions_of)."""
    return (
        normalize_text(position.counterparty_name),
        position.counterparty_id,
        normalize_text(position.account_name),
        position.account_id,
        position.currency,
    )


def _error(observation: StoredObservation) -> SourceError | None:
    if observation.error_code is None:
        return None
    try:
        code = SourceErrorCode(observation.error_code)
    except ValueError:
        code = SourceErrorCode.upstream_error
    return SourceError(code=code, message=observation.error_message or str(code))


def _moment(value: datetime | None) -> str:
    return "never" if value is None else value.isoformat().replace("+00:00", "Z")


def interval_ends(
    start: datetime, end: datetime, interval: Interval, zone: ZoneInfo
) -> list[datetime]:
    """Each end of an interval after `start` and before `end` (local hours, midnights or
    Monday midnights in `zone`), then `end` itself."""
    ends: list[datetime] = []
    local = start.astimezone(zone)
    if interval == "hour":
        boundary = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        moment = boundary.astimezone(UTC)
        while moment < end:
            ends.append(moment)
            moment += timedelta(hours=1)
    else:
        day: date = local.date() + timedelta(days=1)
        if interval == "week":
            day += timedelta(days=(7 - day.weekday()) % 7)
        step = timedelta(days=1 if interval == "day" else 7)
        while True:
            moment = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
            if moment >= end:
                break
            if moment > start:
                ends.append(moment)
            day += step
    ends.append(end.astimezone(UTC))
    return ends


def count_points(start: datetime, end: datetime, interval: Interval) -> int:
    """An upper bound of the points a window holds (checked before any is built)."""
    length = {"hour": 3600, "day": 86400, "week": 7 * 86400}[interval]
    return int((end - start).total_seconds() // length) + 2


LOADED_AT_JSON = json.dumps(LOADED_AT)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNREAD = ReportedFigure(amount=Decimal(0))
_FIELDS = frozenset(Position.model_fields)
_KINDS = {kind.value: kind for kind in Kind}
_SIDES = {side.value: side for side in Side}
_MEANINGS = {meaning.value: meaning for meaning in Meaning}
_SOURCES = {source.value: source for source in Source}


def _bare(values: dict[str, object]) -> Position:
    """A position from trusted values, without pydantic's validation or model_construct's
    defaults lookup (each costs more than the rest of a read of 50,000 together): only for
    filtering, totals and ordering, never served."""
    position = Position.__new__(Position)
    object.__setattr__(position, "__dict__", values)
    object.__setattr__(position, "__pydantic_fields_set__", _FIELDS)
    object.__setattr__(position, "__pydantic_extra__", None)
    object.__setattr__(position, "__pydantic_private__", None)
    return position


def _light(
    *,
    counterparty_id: str,
    counterparty_name: str,
    kind: str,
    source: str,
    account_id: str,
    account_name: str,
    currency: str,
    amount: Decimal,
    side: str,
    meaning: str,
) -> Position:
    return _bare(
        {
            "counterparty_id": counterparty_id,
            "counterparty_name": counterparty_name,
            "kind": _KINDS[kind],
            "source": _SOURCES[source],
            "account_id": account_id,
            "account_name": account_name,
            "currency": currency,
            "amount": amount,
            "side": _SIDES[side],
            "meaning": _MEANINGS[meaning],
            "available": None,
            "available_with_credit_line": None,
            "balance_type": None,
            "balance_type_fallback": False,
            "balances": [],
            "credit_line": None,
            "reported": _UNREAD,
            "as_of": None,
            "fetched_at": _EPOCH,
        }
    )


def _light_position(key: str, figures: AccountFigures, kind: str) -> Position:
    """The few fields filters and totals read, from an account's figures."""
    return _light(
        counterparty_id=figures.counterparty_id,
        counterparty_name="",
        kind=kind,
        source="finsync" if key == "finsync" else "finqware",
        account_id=figures.account_id,
        account_name="",
        currency=figures.currency,
        amount=figures.amount,
        side=figures.side,
        meaning=figures.meaning,
    )


# `kind` is a top-level key written before any object nests, and a quote inside a string is
# escaped, so the first match is the field.
_KIND = re.compile(r'"kind":"([^"]*)"')


def _kind(record: str) -> str:
    found = _KIND.search(record)
    if found is None:
        kind: str = json.loads(record)["kind"]
        return kind
    return found.group(1)


def _listed_position(source: Source, row: Listed) -> Position:
    """The light position (see `_bare`) of an account as listed by the store."""
    return _light(
        counterparty_id=row.counterparty_id,
        counterparty_name=row.counterparty_name,
        kind=row.kind,
        source=source.value,
        account_id=row.account_id,
        account_name=row.account_name,
        currency=row.currency,
        amount=Decimal(row.amount),
        side=row.side,
        meaning=row.meaning,
    )


class _Kept:
    """The latest past states read, per store: an `as_of` asked again (a page after another,
    another filter) is answered from memory, as fast as a live answer. A state is the same
    forever once its observations are written (a key names them), so nothing goes stale."""

    SIZE = 2

    def __init__(self) -> None:
        self.found: OrderedDict[tuple[object, ...], PastPositions] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> PastPositions | None:
        found = self.found.get(key)
        if found is not None:
            self.found.move_to_end(key)
        return found

    def put(self, key: tuple[object, ...], positions: PastPositions) -> None:
        self.found[key] = positions
        while len(self.found) > self.SIZE:
            self.found.popitem(last=False)


_KEPT: WeakKeyDictionary[HistoryStore, _Kept] = WeakKeyDictionary()


class HistoryReader:
    """Answers about the past from the store; raises the store's errors as they are."""

    def __init__(self, store: HistoryStore, *, observe_seconds: Callable[[str], float]) -> None:
        self.store = store
        # How often each connection is observed on the schedule: longer than twice that
        # without an observation is a gap.
        self._observe_seconds = observe_seconds

    async def _observed_by_then(self, keys: Sequence[str], states: Iterable[object]) -> None:
        if keys and all(state is None for state in states):
            starts = await self.store.first_at(keys)
            raise HistoryNotAvailableError(min(starts.values()) if starts else None)

    async def sources_at(self, keys: Sequence[str], instant: datetime) -> list[PastConnection]:
        """Each connection's status as last observed at or before `instant` (its positions
        not read); HistoryNotAvailableError when none of them was observed by then."""
        marks = {key: await self.store.marks_at(key, instant) for key in keys}
        await self._observed_by_then(keys, marks.values())
        return await self._connections(marks, instant)

    async def positions_at(self, keys: Sequence[str], instant: datetime) -> PastAnswer:
        """Each connection as last observed at or before `instant`, and their positions;
        HistoryNotAvailableError when none of them was observed by then."""
        marks = {key: await self.store.marks_at(key, instant) for key in keys}
        await self._observed_by_then(keys, marks.values())
        connections = await self._connections(marks, instant)
        data = {key: None if mark is None else mark[1] for key, mark in marks.items()}
        kept = _KEPT.setdefault(self.store, _Kept())
        state = tuple((key, None if found is None else found.seq) for key, found in data.items())
        positions = kept.get(state)
        if positions is None:
            light: list[Position] = []
            rows: dict[int, tuple[int, AccountKey, str]] = {}
            for key, found in data.items():
                if found is None or found.fetched_at is None:
                    continue
                loaded = json.dumps(moment_json(found.fetched_at))
                source = Source.finsync if key == "finsync" else Source.finqware
                for row in await self.store.listed_as_of(key, found.seq):
                    position = _listed_position(source, row)
                    light.append(position)
                    rows[id(position)] = (
                        row.seq,
                        (row.counterparty_id, row.account_id, row.currency),
                        loaded,
                    )
            light.sort(key=listing_order)
            positions = PastPositions(light, rows)
            kept.put(state, positions)
        return PastAnswer(connections, positions)

    async def _connections(
        self,
        marks: dict[str, tuple[StoredObservation, StoredObservation | None] | None],
        instant: datetime,
    ) -> list[PastConnection]:
        starts: dict[str, datetime] | None = None
        found: list[PastConnection] = []
        for key, mark in marks.items():
            if mark is None:
                if starts is None:
                    starts = await self.store.first_at(list(marks))
                found.append(
                    PastConnection(
                        key,
                        SourceInfo(
                            source=key,
                            status=SourceStatus.unavailable,
                            fetched_at=None,
                            error=SourceError(
                                code=SourceErrorCode.not_found,
                                message="not observed by then: its history starts "
                                f"{_moment(starts.get(key))}",
                            ),
                        ),
                        [],
                        None,
                    )
                )
                continue
            found.append(self._past(key, *mark, instant))
        return found

    @staticmethod
    def _past(
        key: str, last: StoredObservation, data: StoredObservation | None, instant: datetime
    ) -> PastConnection:
        fetched_at = None if data is None else data.fetched_at
        info = SourceInfo(
            source=key,
            status=SourceStatus(last.status),
            fetched_at=fetched_at,
            error=_error(last),
        )
        warnings = (
            []
            if data is None or not data.warnings
            else [ResponseWarning.model_validate(item) for item in json.loads(data.warnings)]
        )
        return PastConnection(key, info, warnings, last.at)

    async def changes(
        self,
        keys: Sequence[str],
        since: datetime,
        until: datetime,
        matching: Filter,
    ) -> list[Change]:
        """Every account whose figures differ between `since` and `until` (among those the
        filter keeps, before or after), largest change first."""
        marks = {key: await self.store.marks_at(key, since) for key in keys}
        await self._observed_by_then(keys, marks.values())
        found: list[Change] = []
        for key in keys:
            mark = marks[key]
            after_seq = None if mark is None or mark[1] is None else mark[1].seq
            # Only the accounts with a row since then can differ: the others are not read.
            candidates: list[tuple[Position, ChangedRow]] = []
            source = "finsync" if key == "finsync" else "finqware"
            for row in await self.store.changed_between(key, after_seq, until):
                light = _light(
                    counterparty_id=row.key[0],
                    counterparty_name="",
                    kind=row.kind,
                    source=source,
                    account_id=row.key[1],
                    account_name="",
                    currency=row.key[2],
                    amount=row.after if row.after is not None else row.before or Decimal(0),
                    side=row.side,
                    meaning=row.meaning,
                )
                candidates.append((light, row))
            # One call of the filter for them all (it keeps the very positions it is given).
            kept = {id(position) for position in matching([item[0] for item in candidates])}
            for light, row in candidates:
                if id(light) not in kept:
                    continue
                found.append(
                    Change(
                        counterparty_id=row.key[0],
                        account_id=row.key[1],
                        currency=row.key[2],
                        before=row.before,
                        after=row.after,
                        delta=sum_exact(
                            [row.after or Decimal(0), (row.before or Decimal(0)).copy_negate()],
                            row.key[2],
                        ),
                        changed_at=row.changed_at,
                    )
                )
        found.sort(
            key=lambda change: (
                -abs(change.delta),
                change.counterparty_id,
                change.account_id,
                change.currency,
            )
        )
        return found

    async def points(
        self,
        keys: Sequence[str],
        start: datetime,
        ends: Sequence[datetime],
        matching: Filter,
    ) -> list[Point]:
        """Totals as last observed at or before each end (those before history starts are
        left out)."""
        end = ends[-1]
        firsts = await self.store.first_at(keys)
        if not firsts:
            return []
        history_starts = min(firsts.values())
        held: dict[tuple[str, AccountKey], Position] = {}
        timeline: list[tuple[datetime, str, AccountKey, HeldAccount | None]] = []
        for key in keys:
            state = await self.store.state_at(key, start)
            after_seq = None
            if state is not None and state.data is not None:
                after_seq = state.data.seq
                for account, found in state.accounts.items():
                    held[key, account] = _light_position(key, found.figures, _kind(found.position))
            timeline.extend(
                (row.at, key, row.key, row.held)
                for row in await self.store.rows_between(key, after_seq, end)
            )
        timeline.sort(key=lambda item: item[0])
        points: list[Point] = []
        position = 0
        last_totals: list[CurrencyTotal] | None = None
        for moment in ends:
            moved = False
            while position < len(timeline) and timeline[position][0] <= moment:
                _, key, account, row = timeline[position]
                if row is None:
                    held.pop((key, account), None)
                else:
                    held[key, account] = _light_position(key, row.figures, _kind(row.position))
                position += 1
                moved = True
            if moment < history_starts:
                continue
            if last_totals is None or moved:
                last_totals = totals(matching(list(held.values())))
            points.append(Point(moment, last_totals))
        return points

    async def points_from_totals(
        self,
        keys: Sequence[str],
        start: datetime,
        ends: Sequence[datetime],
        currencies: Collection[str] = (),
    ) -> list[Point]:
        """As `points`, for a question no finer than connections and currencies: from the
        totals written with the observations (a few rows per observation, not one per
        account), summed over the connections exactly as the positions' totals are."""
        end = ends[-1]
        wanted = {code.strip().upper() for code in currencies}
        firsts = await self.store.first_at(keys)
        if not firsts:
            return []
        history_starts = min(firsts.values())
        # Only the totals a point shows are read: each connection's latest at each end.
        shown: dict[str, list[int | None]] = {}
        for key in keys:
            written = await self.store.totals_moments(key, start, end)
            position, latest, picks = 0, None, []
            for moment in ends:
                while position < len(written) and written[position][0] <= moment:
                    latest = written[position][1]
                    position += 1
                picks.append(latest)
            shown[key] = picks
        found = await self.store.totals_of(
            {seq for picks in shown.values() for seq in picks if seq is not None}
        )
        points: list[Point] = []
        for index, moment in enumerate(ends):
            if moment < history_starts:
                continue
            held = [found[seq] for picks in shown.values() if (seq := picks[index]) is not None]
            points.append(Point(moment, _summed(held, wanted)))
        return points

    async def gaps(
        self, keys: Sequence[str], start: datetime, end: datetime, now: datetime
    ) -> list[GapFound]:
        """When a connection went unobserved for longer than twice its observe interval,
        history knows it missed observations, or tesoro was not running."""
        end = min(end, now)
        firsts = await self.store.first_at(keys)
        found: list[GapFound] = []
        for key in keys:
            first = firsts.get(key)
            if first is None or first >= end:
                continue
            allowed = timedelta(seconds=2 * self._observe_seconds(key))
            before = await self.store.marks_at(key, start)
            moments = [] if before is None else [before[0].at]
            moments += await self.store.observed_between(key, max(start, first), end)
            moments.append(end)
            for earlier, later in itertools.pairwise(moments):
                if later - earlier > allowed:
                    found.append(GapFound(key, max(earlier, start), later, "unobserved"))
        found += [
            GapFound(gap.source, max(gap.started_at, start), min(gap.ended_at, end), gap.reason)
            for gap in await self.store.gaps_between(keys, start, end)
        ]
        if firsts:
            found += _not_running(
                await self.store.runs_between(start - RUN_GRACE, end),
                max(start, min(firsts.values())),
                end,
            )
        found.sort(key=lambda gap: (gap.started_at, gap.source or ""))
        return found


_TOTAL_FIELDS = ("assets", "liabilities", "net", "cash", "overdraft", "receivable", "payable")


def _summed(parts: Iterable[list[CurrencyTotal]], wanted: set[str]) -> list[CurrencyTotal]:
    """Connections' totals added up per currency (exactly, as over their positions)."""
    by_currency: dict[str, list[CurrencyTotal]] = {}
    for part in parts:
        for total in part:
            if not wanted or total.currency.upper() in wanted:
                by_currency.setdefault(total.currency, []).append(total)
    summed = []
    for currency in sorted(by_currency):
        found = by_currency[currency]
        if len(found) == 1:
            summed.append(found[0])
            continue
        values = {
            name: sum_exact([getattr(total, name) for total in found], currency)
            for name in _TOTAL_FIELDS
        }
        summed.append(CurrencyTotal(currency=currency, **values))
    return summed


def _same_figures(a: AccountFigures | None, b: AccountFigures | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.amount, a.available, a.credit_line) == (b.amount, b.available, b.credit_line)


def _not_running(
    runs: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[GapFound]:
    """The stretches of [start, end] no run covers."""
    found: list[GapFound] = []
    covered_until = start
    for started_at, last_seen_at in sorted(runs):
        if started_at > covered_until:
            found.append(GapFound(None, covered_until, min(started_at, end), "not_running"))
        covered_until = max(covered_until, last_seen_at + RUN_GRACE)
        if covered_until >= end:
            break
    if covered_until < end:
        found.append(GapFound(None, covered_until, end, "not_running"))
    return [gap for gap in found if gap.ended_at > gap.started_at]
