"""History routes: positions as of an instant (`GET /positions?as_of=`, answered here for the
positions route), totals over time (`GET /positions/history`) and what changed
(`GET /positions/changes`)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from app.api.caching import cached_json
from app.api.deps import RatesDep, Reader, SettingsDep, TreasuryDep
from app.api.errors import NotReadyError, problem_responses
from app.api.routes.rates import (
    DATE_PATTERN,
    DATE_SCHEMA,
    POLICY_DESCRIPTION,
    RATE_DATE_DESCRIPTION,
    REPORT_CURRENCY_DESCRIPTION,
    FxQuestion,
    fx_options,
)
from app.domain.counterparties import paginate
from app.domain.fx import convert_totals
from app.domain.models import (
    CURRENCY_QUERY_PATTERN,
    ChangesResponse,
    CurrencyDelta,
    HistoryGap,
    HistoryPoint,
    HistoryResponse,
    Kind,
    Meaning,
    Position,
    PositionChange,
    PositionsResponse,
    ResponseWarning,
    Side,
    Source,
    SourceInfo,
    SourceStatus,
)
from app.domain.money import sum_exact
from app.domain.positions import filter_positions, totals
from app.services.history import STORE_ERRORS
from app.services.history_reads import (
    MAX_POINTS,
    Filter,
    HistoryReader,
    HistoryUnavailableError,
    Interval,
    Point,
    count_points,
    interval_ends,
)
from app.services.rates import Rates
from app.services.treasury import Connection, Treasury
from app.settings import Settings

router = APIRouter(tags=["positions"])

# Instants are read by the route itself (an offset required, never in the future: a 422 that
# names the parameter); the schema says what they look like.
INSTANT: dict[str, Any] = {"format": "date-time"}

# Past answers change only if a late observation lands before the instant: kept briefly.
PAST_MAX_AGE_SECONDS = 60


def _invalid(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


def parse_instant(name: str, raw: str, now: datetime) -> datetime:
    """An RFC 3339 instant with its offset, not in the future; else a 422 naming `name`."""
    try:
        instant = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _invalid(name, "not an RFC 3339 date-time (e.g. 2026-11-30T18:00:00-03:00)") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise _invalid(name, "needs its UTC offset (Z or ±hh:mm): an instant is one moment")
    try:
        in_utc = instant.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+00:01 is a valid text whose instant falls before year 1 in UTC.
        raise _invalid(name, "is out of range once in UTC") from None
    if in_utc > now:
        raise _invalid(name, "is in the future: history holds only what was observed")
    return in_utc


def _reader(request: Request, settings: Settings) -> HistoryReader:
    services = getattr(request.state, "services", None)
    if services is None:
        raise NotReadyError("the service is starting or stopping")
    recorder = services.history
    if recorder is None:
        raise HistoryUnavailableError("history is off (TESORO_HISTORY_ENABLED is false)")

    def observe_seconds(key: str) -> float:
        if key == "finsync":
            return settings.observe_finsync_seconds
        return settings.observe_finqware_seconds

    return HistoryReader(recorder.store, observe_seconds=observe_seconds)


@contextmanager
def _store_read() -> Iterator[None]:
    """The store's errors as the 503 every history read answers with."""
    try:
        yield
    except STORE_ERRORS as exc:
        raise HistoryUnavailableError("the history store cannot be read now") from exc


@dataclass(frozen=True, slots=True)
class Window:
    """Two instants a history question spans (the second defaulting to now), read once."""

    start: datetime
    end: datetime
    now: datetime


def _window(start_name: str, start: str, end_name: str, end: str | None) -> Window:
    now = datetime.now(UTC)
    started = parse_instant(start_name, start, now)
    ended = now if end is None else parse_instant(end_name, end, now)
    if started > ended:
        raise _invalid(start_name, f"is after `{end_name}`")
    return Window(started, ended, now)


def _matching(
    *,
    currencies: Collection[str] = (),
    kind: Kind | None = None,
    source: Source | None = None,
    side: Side | None = None,
    meanings: Collection[Meaning] = (),
    counterparty_id: str | None = None,
    include_zero: bool = False,
) -> Filter:
    def matching(positions: Sequence[Position]) -> list[Position]:
        return filter_positions(
            positions,
            currencies=currencies,
            kind=kind,
            source=source,
            side=side,
            meanings=meanings,
            counterparty_id=counterparty_id,
            include_zero=include_zero,
        )

    return matching


async def answer_as_of(
    request: Request,
    settings: Settings,
    scope: Sequence[Connection],
    as_of: str,
    *,
    filters: dict[str, Any],
    page: int,
    page_size: int,
    rates: Rates | None = None,
    fx: FxQuestion | None = None,
    rate_date_given: bool = False,
) -> Response:
    """`GET /positions?as_of=`: the live answer's shape, rebuilt from the observations; with
    a reporting currency, its totals converted at the rates of the instant's UTC day (or of
    the `rate_date` given), as the live answer's are at today's."""
    instant = parse_instant("as_of", as_of, datetime.now(UTC))
    reader = _reader(request, settings)
    with _store_read():
        found = await reader.positions_at([c.key for c in scope], instant)
        # Read lightly, in listing order already: only the page's positions are read whole.
        matching = _matching(**filters)(found.positions.positions)
        shown = await found.positions.full(reader.store, paginate(matching, page, page_size))
    past = found.connections
    moments = [c.at for c in past if c.at is not None]
    per_currency = totals(matching)
    extra: dict[str, Any] = {}
    sources = [c.info for c in past]
    warnings = [w for c in past for w in c.warnings]
    if fx is not None and rates is not None:
        day = fx.day if rate_date_given else min(instant.date(), rates.today())
        looked_up = await rates.lookup(
            fx.policy, sorted({t.currency for t in per_currency}), fx.report, day
        )
        conversion = convert_totals(
            per_currency, looked_up.rates, report=fx.report, policy=fx.policy, requested=day
        )
        per_currency = conversion.totals
        extra["consolidated"] = conversion.consolidated
        sources += looked_up.sources
        warnings += conversion.warnings
    answer = PositionsResponse(
        sources=sources,
        positions=shown,
        totals=per_currency,
        total=len(matching),
        page=page,
        page_size=page_size,
        complete=all(c.info.status is not SourceStatus.unavailable for c in past),
        warnings=warnings,
        generated_at=max(moments) if moments else instant,
        **extra,
    )
    return cached_json(request, answer, max_age_seconds=PAST_MAX_AGE_SECONDS)


Currencies = Annotated[
    list[Annotated[str, Query(pattern=CURRENCY_QUERY_PATTERN)]] | None,
    Query(description="Only these currencies (repeatable, case-insensitive).", max_length=50),
]
Meanings = Annotated[
    list[Meaning] | None,
    Query(description="Only these meanings (repeatable).", max_length=5),
]
CounterpartyId = Annotated[
    str | None,
    Query(max_length=200, description="Only this counterparty (and its connection)."),
]


@dataclass(frozen=True, slots=True)
class HistoryFilters:
    """The `/positions` filters the history routes take: which connections a question reads
    and which of their positions count."""

    currencies: list[str]
    kind: Kind | None
    source: Source | None
    meanings: list[Meaning]
    counterparty_id: str | None

    def keys(self, treasury: Treasury) -> list[str]:
        scope = treasury.scope(
            source=self.source, kind=self.kind, counterparty_id=self.counterparty_id
        )
        return [connection.key for connection in scope]

    def finer_than_connections(self) -> bool:
        return self.kind is not None or bool(self.meanings) or self.counterparty_id is not None

    def matching(self, *, include_zero: bool = False) -> Filter:
        return _matching(
            currencies=self.currencies,
            kind=self.kind,
            source=self.source,
            meanings=self.meanings,
            counterparty_id=self.counterparty_id,
            include_zero=include_zero,
        )


def history_filters(
    currency: Currencies = None,
    kind: Annotated[Kind | None, Query(description="Only this kind.")] = None,
    source: Annotated[Source | None, Query(description="Only this source.")] = None,
    meaning: Meanings = None,
    counterparty_id: CounterpartyId = None,
) -> HistoryFilters:
    return HistoryFilters(currency or [], kind, source, meaning or [], counterparty_id)


FiltersDep = Annotated[HistoryFilters, Depends(history_filters)]


@router.get(
    "/positions/history",
    name="get_positions_history",
    summary="Totals over time, as tesoro observed them",
    description="One point per interval end (`hour`, `day` or `week`, ending at local "
    "midnight, or Monday's, in `tz`) between `from` and `to`, the last one at `to` itself; "
    "each with the `totals` of the matching positions as last observed at or before it "
    "(exact decimals, as the live answer's). Points before history starts are left out. "
    "`gaps` lists the stretches a chart should show as unknown: a connection unobserved for "
    "longer than twice its observe interval, observations dropped while the store was "
    "down, or no tesoro running. At most 10,000 points.",
    response_model=HistoryResponse,
    response_description="The points and the gaps.",
    responses=problem_responses(401, 403, 422, 503),
)
async def get_positions_history(
    *,
    request: Request,
    caller: Reader,
    treasury: TreasuryDep,
    settings: SettingsDep,
    rates: RatesDep,
    from_: Annotated[
        str,
        Query(
            alias="from",
            description="The window's start: an RFC 3339 instant with its offset.",
            json_schema_extra=INSTANT,
        ),
    ],
    to: Annotated[
        str | None,
        Query(
            description="The window's end (default now): an RFC 3339 instant with offset.",
            json_schema_extra=INSTANT,
        ),
    ] = None,
    interval: Annotated[Interval, Query(description="The points' spacing.")] = "day",
    tz: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The IANA time zone in which days and weeks end (default "
            "TESORO_TIMEZONE, itself UTC by default).",
        ),
    ] = None,
    report_currency: Annotated[
        str | None,
        Query(
            pattern=CURRENCY_QUERY_PATTERN,
            description=f"{REPORT_CURRENCY_DESCRIPTION} Every point is converted at the "
            "rates of `rate_date`.",
        ),
    ] = None,
    policy: Annotated[
        str | None, Query(alias="rates", max_length=40, description=POLICY_DESCRIPTION)
    ] = None,
    rate_date: Annotated[
        str | None,
        Query(
            pattern=DATE_PATTERN,
            description=RATE_DATE_DESCRIPTION,
            json_schema_extra=DATE_SCHEMA,
        ),
    ] = None,
    filters: FiltersDep,
) -> Response:
    window = _window("from", from_, "to", to)
    start, end = window.start, window.end
    fx_asked = fx_options(rates, report_currency, policy, rate_date)
    zone_name = tz or settings.timezone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _invalid(
            "tz", "not an IANA time zone (e.g. America/Argentina/Buenos_Aires)"
        ) from None
    too_many = f"the window from `from` to `to` holds more than {MAX_POINTS} {interval} points"
    if count_points(start, end, interval) > MAX_POINTS + 1:
        raise _invalid("from", f"{too_many}: narrow it, or ask for a longer interval")
    ends = interval_ends(start, end, interval, zone)
    if len(ends) > MAX_POINTS:
        raise _invalid("from", f"{too_many}: narrow it, or ask for a longer interval")
    keys = filters.keys(treasury)
    reader = _reader(request, settings)
    with _store_read():
        if filters.finer_than_connections():
            points = await reader.points(keys, start, ends, filters.matching())
        else:
            # No finer than connections and currencies: the totals written with the
            # observations answer (a few rows each), not every account's.
            points = await reader.points_from_totals(keys, start, ends, filters.currencies)
        gaps = await reader.gaps(keys, start, end, window.now)
        latest = await reader.sources_at(keys, end) if points else []
    shown = [HistoryPoint(at=point.at, totals=point.totals) for point in points]
    fx_sources: list[SourceInfo] = []
    fx_warnings: list[ResponseWarning] = []
    if fx_asked is not None:
        shown, fx_sources, fx_warnings = await _converted(rates, fx_asked, points)
    answer = HistoryResponse(
        sources=[*(c.info for c in latest), *fx_sources],
        complete=all(c.info.status is not SourceStatus.unavailable for c in latest),
        warnings=fx_warnings,
        points=shown,
        gaps=[
            HistoryGap(
                source=gap.source,
                started_at=gap.started_at,
                ended_at=gap.ended_at,
                reason=gap.reason,
            )
            for gap in gaps
        ],
        interval=interval,
        tz=zone_name,
        starts_at=start,
        ends_at=end,
    )
    return cached_json(request, answer, max_age_seconds=PAST_MAX_AGE_SECONDS)


async def _converted(
    rates: Rates, asked: FxQuestion, points: Sequence[Point]
) -> tuple[list[HistoryPoint], list[SourceInfo], list[ResponseWarning]]:
    """Each point with its totals converted at the rates of the day asked (`rate_date`,
    default today in UTC: each source's latest fixing, as for every question but `as_of`,
    which converts at its instant's day), so a chart shows the movements of the positions,
    not of the rates; the rate sources asked and the conversions' warnings, once each."""
    currencies = sorted({total.currency for point in points for total in point.totals})
    fx = await rates.lookup(asked.policy, currencies, asked.report, asked.day)
    warnings: dict[str, ResponseWarning] = {}
    shown = []
    for point in points:
        conversion = convert_totals(
            point.totals, fx.rates, report=asked.report, policy=asked.policy, requested=asked.day
        )
        for warning in conversion.warnings:
            warnings.setdefault(warning.model_dump_json(), warning)
        shown.append(
            HistoryPoint(
                at=point.at, totals=conversion.totals, consolidated=conversion.consolidated
            )
        )
    return shown, fx.sources, list(warnings.values())


@router.get(
    "/positions/changes",
    name="list_position_changes",
    summary="What changed between two instants",
    description="Every matching account whose figure differs between `since` and `until` "
    "(default now), as tesoro observed them: `before` (null if it did not exist), `after` "
    "(null if it is gone), `delta` and `changed_at` (its last change in the window), "
    "ordered by the size of the change; and `totals_delta`, the change of the net per "
    "currency. `since` before history starts is a 404 `history-not-available`.",
    response_model=ChangesResponse,
    response_description="The changes, largest first.",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def list_position_changes(
    *,
    request: Request,
    caller: Reader,
    treasury: TreasuryDep,
    settings: SettingsDep,
    since: Annotated[
        str, Query(description="An RFC 3339 instant with its offset.", json_schema_extra=INSTANT)
    ],
    until: Annotated[
        str | None,
        Query(
            description="An RFC 3339 instant with its offset (default now).",
            json_schema_extra=INSTANT,
        ),
    ] = None,
    filters: FiltersDep,
) -> Response:
    window = _window("since", since, "until", until)
    start, end = window.start, window.end
    keys = filters.keys(treasury)
    reader = _reader(request, settings)
    with _store_read():
        changes = await reader.changes(keys, start, end, filters.matching(include_zero=True))
        latest = await reader.sources_at(keys, end)
    deltas: dict[str, list[Decimal]] = {}
    for change in changes:
        deltas.setdefault(change.currency, []).append(change.delta)
    answer = ChangesResponse(
        sources=[c.info for c in latest],
        complete=all(c.info.status is not SourceStatus.unavailable for c in latest),
        warnings=[],
        changes=[
            PositionChange(
                counterparty_id=change.counterparty_id,
                account_id=change.account_id,
                currency=change.currency,
                before=change.before,
                after=change.after,
                delta=change.delta,
                changed_at=change.changed_at,
            )
            for change in changes
        ],
        totals_delta=[
            CurrencyDelta(currency=code, delta=sum_exact(deltas[code], code))
            for code in sorted(deltas)
        ],
        since=start,
        until=end,
    )
    return cached_json(request, answer, max_age_seconds=PAST_MAX_AGE_SECONDS)
