"""Reading history: the positions as tesoro last observed them at an instant, totals at the
end of each hour, day or week with the gaps in between, and what changed between two
instants; all rebuilt from the store's observations (app.store.history)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal
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
    HeldAccount,
    HistoryStore,
    PastRecords,
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
    positions: list[Position]
    warnings: list[ResponseWarning]
    at: datetime | None  # the moment of the observation used


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


def _light_position(key: str, figures: AccountFigures, kind: str) -> Position:
    """The few fields filters and totals read, without validating a whole position."""
    return Position.model_construct(
        counterparty_id=figures.counterparty_id,
        account_id=figures.account_id,
        currency=figures.currency,
        amount=figures.amount,
        side=Side(figures.side),
        meaning=Meaning(figures.meaning),
        kind=Kind(kind),
        source=Source.finsync if key == "finsync" else Source.finqware,
        counterparty_name="",
        account_name="",
        reported=_UNREAD,
        fetched_at=_EPOCH,
        # Every field given: pydantic then looks up no default (that costs more than the rest).
        available=figures.available,
        available_with_credit_line=None,
        balance_type=None,
        balance_type_fallback=False,
        balances=[],
        credit_line=figures.credit_line,
        as_of=figures.as_of,
    )


# A stored position is pydantic's JSON of it: `kind` is a top-level key written before any
# object nests, and a quote inside a string is escaped, so the first match is the field.
_KIND = re.compile(r'"kind":"([^"]*)"')


def _positions_from_records(records: Iterable[str], fetched_at: datetime) -> list[Position]:
    """As `position_from_record` for each, the load time's JSON worked out once."""
    loaded = json.dumps(moment_json(fetched_at))
    return [
        Position.model_validate_json(record.replace(LOADED_AT_JSON, loaded)) for record in records
    ]


def _kind(record: str) -> str:
    found = _KIND.search(record)
    if found is None:
        kind: str = json.loads(record)["kind"]
        return kind
    return found.group(1)


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

    async def positions_at(self, keys: Sequence[str], instant: datetime) -> list[PastConnection]:
        """Each connection as last observed at or before `instant`; HistoryNotAvailableError
        when none of them was observed by then."""
        states = {key: await self.store.records_at(key, instant) for key in keys}
        await self._observed_by_then(keys, states.values())
        starts: dict[str, datetime] | None = None
        found: list[PastConnection] = []
        for key in keys:
            state = states[key]
            if state is None:
                if starts is None:
                    starts = await self.store.first_at(keys)
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
                        [],
                        None,
                    )
                )
                continue
            found.append(self._past(key, state, instant))
        return found

    @staticmethod
    def _past(key: str, state: PastRecords, instant: datetime) -> PastConnection:
        last, data = state.last, state.data
        fetched_at = None if data is None else data.fetched_at
        info = SourceInfo(
            source=key,
            status=SourceStatus(last.status),
            fetched_at=fetched_at,
            error=_error(last),
        )
        positions = [] if fetched_at is None else _positions_from_records(state.records, fetched_at)
        positions.sort(key=listing_order)
        warnings = (
            []
            if data is None or not data.warnings
            else [ResponseWarning.model_validate(item) for item in json.loads(data.warnings)]
        )
        return PastConnection(key, info, positions, warnings, last.at)

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
            before = (
                {} if after_seq is None else await self.store.touched_before(key, after_seq, until)
            )
            after = dict(before)
            changed_at: dict[AccountKey, datetime] = {}
            for row in await self.store.rows_between(key, after_seq, until):
                if row.held is None:
                    after.pop(row.key, None)
                else:
                    after[row.key] = row.held
                changed_at[row.key] = row.at
            candidates: list[tuple[Position, AccountKey, HeldAccount | None, HeldAccount | None]]
            candidates = []
            for account in changed_at:
                old, new = before.get(account), after.get(account)
                if _same_figures(old, new):
                    continue
                either = new or old
                assert either is not None
                light = _light_position(key, either.figures, _kind(either.position))
                candidates.append((light, account, old, new))
            # One call of the filter for them all (it keeps the very positions it is given).
            kept = {id(position) for position in matching([item[0] for item in candidates])}
            for light, account, old, new in candidates:
                if id(light) not in kept:
                    continue
                old_amount = None if old is None else old.figures.amount
                new_amount = None if new is None else new.figures.amount
                found.append(
                    Change(
                        counterparty_id=account[0],
                        account_id=account[1],
                        currency=account[2],
                        before=old_amount,
                        after=new_amount,
                        delta=sum_exact(
                            [new_amount or Decimal(0), (old_amount or Decimal(0)).copy_negate()],
                            account[2],
                        ),
                        changed_at=changed_at[account],
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
        series = {key: await self.store.totals_between(key, start, end) for key in keys}
        positions = dict.fromkeys(keys, 0)
        held: dict[str, list[CurrencyTotal]] = {}
        points: list[Point] = []
        for moment in ends:
            for key, written in series.items():
                while positions[key] < len(written) and written[positions[key]][0] <= moment:
                    held[key] = written[positions[key]][1]
                    positions[key] += 1
            if moment < history_starts:
                continue
            points.append(Point(moment, _summed(held.values(), wanted)))
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
            before = await self.store.state_at(key, start)
            moments = [] if before is None else [before.last.at]
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


def _same_figures(old: HeldAccount | None, new: HeldAccount | None) -> bool:
    if old is None or new is None:
        return old is new
    a, b = old.figures, new.figures
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
