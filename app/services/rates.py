"""The rates a conversion needs: each leg's fixing picked through the cache, sources asked at
once, and what the answer says of them (`sources`, its data state, how long it stays fresh).

Which fixing: the source's newest on or before the date asked (clamped to the source's own
today), not older than `max_age_days` before it. A published fixing never changes, so a fixing
for a day the source has closed is kept long (`past_cache`); the latest (the date asked is the
source's today, or after) is refreshed like any upstream and served stale on failure
(`latest_cache`). A source switched off is never asked and never listed; a source down with
nothing kept is `unavailable` in `sources`, and what it would convert is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cachetools import LRUCache

from app.cache import Cached, SnapshotCache
from app.domain.fx import NoRate, Policy, Quote, Rate, needed_quotes, resolve
from app.domain.models import SourceError, SourceErrorCode, SourceInfo, SourceStatus
from app.services.moments import Moments
from app.services.treasury import NO_BREAKERS, Breakers
from app.upstreams.errors import UpstreamError, UpstreamTimeoutError
from app.upstreams.fixings import Fixing, RateSource

logger = logging.getLogger(__name__)

# How often one question's legs are warmed at most (see `Rates.warm`).
WARM_INTERVAL = timedelta(seconds=1)

# What a fixing lookup gives: the fixing, or None when the source published none in the window.
Found = Fixing | None


def utcnow() -> datetime:
    return datetime.now(UTC)


class RateUnavailableError(LookupError):
    """A leg's fixing cannot be had: its source is off, does not publish the series, or
    failed with nothing kept. The message says which, for the `fx_rate_missing` warning."""


@dataclass(frozen=True)
class FxGathered:
    """The rates of the currencies asked, and what the answer says of their sources."""

    rates: dict[str, Rate | NoRate]
    sources: list[SourceInfo]
    # One entry per rate source asked: the fixings used (their figures, not their load
    # versions: a refresh that finds the same fixing keeps the answer's ETag), its status.
    state: tuple[Hashable, ...]
    max_age_seconds: int | None  # None: nothing fetched (every rate is the policy's own)
    # When that state came to be: the latest of the sources' moments (None: no source).
    generated_at: datetime | None = None


@dataclass(frozen=True)
class _Ask:
    quote: Quote
    client: RateSource
    key: str
    latest: bool
    day: date


@dataclass
class _Planned:
    """The fixings one question asks, and the sources' days they were worked out on (a
    source's day turning makes its latest a past day's fixing)."""

    asks: list[_Ask]
    clients: tuple[RateSource, ...]
    todays: tuple[date, ...]
    # A day turns at midnight in a time zone, which is a whole minute in UTC: until the next
    # whole minute after the days were read, they are the same.
    same_until: datetime


@dataclass
class _Worked:
    """What one question's fixings gave. Kept while every fixing it read is fresh and no load
    of any fixing has ended since: asked again, its rates, sources and state are a look-up,
    and only the answer's lifetime moves with the clock."""

    planned: _Planned
    rates: dict[str, Rate | NoRate]
    state: tuple[Hashable, ...]
    sources: list[SourceInfo]
    generated_at: datetime | None = None
    generation: int = -1
    read_at: float = 0.0  # monotonic seconds, the caches' clock
    fresh_for: float = 0.0  # seconds from `read_at` the freshest-expiring fixing stays fresh


class Rates:
    """Picks fixings for the policies' legs from the rate sources that are on."""

    def __init__(
        self,
        sources: Mapping[str, RateSource],
        *,
        policies: Mapping[str, Policy],
        default_policy: str,
        max_age_days: int,
        latest_cache: SnapshotCache[Found],
        past_cache: SnapshotCache[Found],
        breakers: Breakers = NO_BREAKERS,
        deadline_seconds: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sources = dict(sources)
        self.policies = dict(policies)
        self.default_policy = default_policy
        self.max_age_days = max_age_days
        self._latest = latest_cache
        self._past = past_cache
        self._breakers = breakers
        self._deadline_seconds = deadline_seconds
        self._clock = clock
        # The caches' clock: how long a kept lookup's fixings stay fresh is theirs.
        self._monotonic = monotonic
        # One more every time a load of a fixing ends (stored or failed): a kept lookup is
        # kept only while no load has ended since it read the caches.
        self._generation = 0
        self._moments = Moments(clock)
        # When an answer that needs no rate source says its (empty) data state began.
        self.started = self._moments.started
        # The currencies recent questions converted: their fixings are asked at once with the
        # upstream connections on the next question, before its positions say which it needs.
        self._recent: dict[str, None] = {}
        self._warming: set[asyncio.Task[object]] = set()
        # What each source publishes, asked once (an adapter builds its set on every call).
        self._series = {name: client.series() for name, client in self.sources.items()}
        # The rates last worked out from the same fixings for the same question: a kept
        # answer's question costs look-ups, not arithmetic.
        self._worked_out: LRUCache[Hashable, dict[str, Rate | NoRate]] = LRUCache(maxsize=256)
        # The currencies each recent data state holds (the positions' own, sorted).
        self._held: LRUCache[Hashable, list[str]] = LRUCache(maxsize=64)
        # Per question (policy, currencies, report currency, day): the fixings it asks, and
        # what they gave while the same loads answer fresh. A consolidated answer asked
        # again costs the cache reads and a look-up, not the planning and the arithmetic.
        self._planned: LRUCache[Hashable, _Planned] = LRUCache(maxsize=256)
        self._warmed: LRUCache[Hashable, datetime] = LRUCache(maxsize=256)
        self._worked: LRUCache[Hashable, _Worked] = LRUCache(maxsize=256)

    def currencies_held(self, state: Hashable) -> list[str] | None:
        """The currencies a data state holds, if a question about it said so already."""
        return self._held.get(state)

    def remember_currencies(self, state: Hashable, currencies: list[str]) -> None:
        self._held[state] = currencies

    def today(self) -> date:
        """Today in UTC: the default date of a question."""
        return self._clock().astimezone(UTC).date()

    def _plan(self, policy: Policy, currencies: Sequence[str], report: str, day: date) -> _Planned:
        """The asks of a question, worked out again only when a source's day has turned."""
        key = (policy.name, tuple(currencies), report, day)
        planned = self._planned.get(key)
        now = self._clock()
        if planned is not None:
            if now < planned.same_until:
                return planned
            if all(
                client.today(now) == today
                for client, today in zip(planned.clients, planned.todays, strict=True)
            ):
                planned.same_until = _next_minute(now)
                return planned
        asks = self._asks(policy, currencies, report, day, now)
        clients = tuple({id(ask.client): ask.client for ask in asks}.values())
        planned = self._planned[key] = _Planned(
            asks, clients, tuple(client.today(now) for client in clients), _next_minute(now)
        )
        return planned

    def _asks(
        self, policy: Policy, currencies: Iterable[str], report: str, day: date, now: datetime
    ) -> list[_Ask]:
        asks = []
        for quote in needed_quotes(policy, currencies, report):
            client = self.sources.get(quote.source)
            if client is None or quote.code not in self._series[quote.source]:
                continue
            source_today = client.today(now)
            latest = day >= source_today
            on_or_before = source_today if latest else day
            key = f"fx:{quote.source}:{quote.code}:" + (
                "latest" if latest else on_or_before.isoformat()
            )
            asks.append(_Ask(quote, client, key, latest, on_or_before))
        return asks

    def _loaded(self, _: object) -> None:
        self._generation += 1

    def _load(self, ask: _Ask) -> Callable[[], Awaitable[Found]]:
        async def load() -> Found:
            # The cache's own task runs this load and stores (or fails) it before it ends:
            # the kept lookups are dropped once it has.
            running = asyncio.current_task()
            if running is not None:
                running.add_done_callback(self._loaded)
            # The latest is asked as of the load, not of the question that started it.
            day = ask.client.today(self._clock()) if ask.latest else ask.day
            async with self._breakers.guard(ask.quote.connection):
                return await ask.client.fixing(
                    ask.quote.code,
                    on_or_before=day,
                    not_before=day - timedelta(days=self.max_age_days),
                )

        return load

    def _cache(self, ask: _Ask) -> SnapshotCache[Found]:
        return self._latest if ask.latest else self._past

    async def _one(self, ask: _Ask, refresh: bool) -> Cached[Found] | UpstreamError:
        try:
            return await self._cache(ask).get(
                ask.key, self._load(ask), refresh=refresh and ask.latest
            )
        except UpstreamError as exc:
            logger.debug("rate source %s unavailable: %s", ask.quote.connection, exc.message)
            return exc

    def warm(self, policy: Policy, report: str, day: date) -> None:
        """Start the loads the recent currencies' rates need, without waiting for them."""
        # Once a second per question at most: a warm only saves time (the lookup asks what
        # is missing all the same), and reading every leg's cache on every request would
        # cost a consolidated answer what it costs to look the rates up.
        now = self._clock()
        warmed = (policy.name, report, day)
        last = self._warmed.get(warmed)
        if last is not None and timedelta(0) <= now - last < WARM_INTERVAL:
            return
        self._warmed[warmed] = now
        for ask in self._plan(policy, list(self._recent), report, day).asks:
            if not self._cache(ask).answers_at_once(ask.key):
                task = asyncio.ensure_future(self._one(ask, False))
                self._warming.add(task)
                task.add_done_callback(self._warming.discard)

    async def _within_deadline(
        self, asks: Sequence[_Ask], refresh: bool
    ) -> list[Cached[Found] | UpstreamError]:
        if all(self._cache(a).answers_at_once(a.key, refresh=refresh and a.latest) for a in asks):
            return [await self._one(ask, refresh) for ask in asks]
        tasks = [asyncio.ensure_future(self._one(ask, refresh)) for ask in asks]
        _, pending = await asyncio.wait(tasks, timeout=self._deadline_seconds)
        outcomes: list[Cached[Found] | UpstreamError] = []
        for ask, task in zip(asks, tasks, strict=True):
            if task not in pending:
                outcomes.append(task.result())
                continue
            task.add_done_callback(lambda done: done.cancelled() or done.exception())
            late = UpstreamTimeoutError(
                ask.quote.connection,
                "still fetching at the answer's deadline; the cache fills behind",
            )
            held = self._cache(ask).peek(ask.key)
            outcomes.append(
                late
                if held is None
                else dataclasses.replace(held, status="stale", expires_in_seconds=0.0, error=late)
            )
        return outcomes

    async def lookup(
        self,
        policy: Policy,
        currencies: Sequence[str],
        report: str,
        day: date,
        *,
        refresh: bool = False,
    ) -> FxGathered:
        """The rate of each currency into `report` on `day`, with the sources asked."""
        for currency in currencies:
            self._recent.pop(currency, None)
            self._recent[currency] = None
        while len(self._recent) > 64:
            del self._recent[next(iter(self._recent))]
        planned = self._plan(policy, currencies, report, day)
        key = (policy.name, tuple(currencies), report, day)
        worked = self._worked.get(key)
        if (
            worked is not None
            and not refresh
            and worked.planned is planned
            and worked.generation == self._generation
        ):
            elapsed = self._monotonic() - worked.read_at
            if 0 <= elapsed < worked.fresh_for:
                return self._answer(worked, worked.fresh_for - elapsed)
        generation = self._generation
        outcomes = await self._within_deadline(planned.asks, refresh)
        read_at = self._monotonic()
        worked = self._work_out(policy, currencies, report, day, planned, outcomes)
        fresh = [o for o in outcomes if not isinstance(o, UpstreamError) and o.status == "fresh"]
        fresh_for = min((o.expires_in_seconds for o in fresh), default=math.inf)
        if len(fresh) == len(outcomes) and generation == self._generation:
            worked.generation, worked.read_at, worked.fresh_for = generation, read_at, fresh_for
            self._worked[key] = worked
        else:
            self._worked.pop(key, None)
        return self._answer(worked, fresh_for if len(fresh) == len(outcomes) else 0.0)

    def _answer(self, worked: _Worked, fresh_for: float) -> FxGathered:
        sources = worked.sources
        return FxGathered(
            rates=worked.rates,
            sources=sources,
            state=worked.state,
            max_age_seconds=None if fresh_for == math.inf else int(fresh_for),
            generated_at=worked.generated_at,
        )

    def _work_out(
        self,
        policy: Policy,
        currencies: Sequence[str],
        report: str,
        day: date,
        planned: _Planned,
        outcomes: Sequence[Cached[Found] | UpstreamError],
    ) -> _Worked:
        """The rates, sources and data state the fixings read give."""
        asks = planned.asks
        found: dict[tuple[str, str], Fixing | Exception | None] = {}
        by_source: dict[str, list[int]] = {}
        for index, (ask, outcome) in enumerate(zip(asks, outcomes, strict=True)):
            by_source.setdefault(ask.quote.source, []).append(index)
            found[ask.quote.source, ask.quote.code] = (
                RateUnavailableError(
                    f"{ask.quote.connection} is unavailable and nothing is kept: "
                    f"{outcome.message} ({outcome.code})"
                )
                if isinstance(outcome, UpstreamError)
                else outcome.value
            )
        for quote in needed_quotes(policy, currencies, report):
            if (quote.source, quote.code) in found:
                continue
            client = self.sources.get(quote.source)
            found[quote.source, quote.code] = RateUnavailableError(
                f"the rate source {quote.connection} is switched off (TESORO_FX_SOURCES)"
                if client is None
                else f"{quote.connection} does not publish {quote.code}"
            )
        worked_out = (
            policy.name,
            tuple(currencies),
            report,
            day,
            tuple(
                (key, value if not isinstance(value, Exception) else str(value))
                for key, value in found.items()
            ),
        )
        rates = self._worked_out.get(worked_out)
        if rates is None:
            rates = self._worked_out[worked_out] = {
                currency: resolve(
                    policy, currency, report, found, requested=day, max_age_days=self.max_age_days
                )
                for currency in currencies
            }
        sources: list[SourceInfo] = []
        state: list[Hashable] = []
        moments: list[datetime] = []
        for source, indices in by_source.items():
            outcomes_of = [outcomes[i] for i in indices]
            info = _info(f"fx:{source}", outcomes_of)
            sources.append(info)
            condition = (
                info.status,
                None if info.error is None else (info.error.code, info.error.message),
            )
            # Per set of fixings: two questions asking one source different fixings see
            # it in different conditions.
            fixings = " ".join(asks[i].key for i in indices)
            moment = self._moments.of(fixings, condition, info.fetched_at)
            moments.append(moment)
            state.append(
                (
                    info.source,
                    tuple(
                        None
                        if isinstance(o, UpstreamError) or o.value is None
                        else _figure(o.value)
                        for o in outcomes_of
                    ),
                    # The answer shows when its fixings were fetched: a refresh that finds
                    # the same figures is a new state all the same.
                    info.fetched_at,
                    *condition,
                    moment,
                )
            )

        return _Worked(
            planned=planned,
            generated_at=max(moments, default=None),
            rates=rates,
            # One digest of it: the answer's ETag and kept-answer key read this on every
            # request, and the figures' text costs more to write out than to look up.
            state=(("fx", _digest(("fx", policy.name, report, day.isoformat(), *state))),),
            sources=sources,
        )


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _digest(state: tuple[Hashable, ...]) -> str:
    return hashlib.sha256(repr(state).encode()).hexdigest()[:32]


def _figure(fixing: Fixing) -> tuple[str, str, str, int, str]:
    return (
        fixing.series,
        fixing.base,
        format(fixing.published, "f"),
        fixing.unit,
        fixing.rate_date.isoformat(),
    )


def _info(connection: str, outcomes: Sequence[Cached[Found] | UpstreamError]) -> SourceInfo:
    """One rate source's state over the fixings it gave this answer: its worst."""
    failed = [o for o in outcomes if isinstance(o, UpstreamError)]
    held = [o for o in outcomes if not isinstance(o, UpstreamError)]
    stale = [o for o in held if o.status == "stale"]
    error: SourceError | None = None
    if failed:
        error = SourceError(code=SourceErrorCode(failed[0].code), message=failed[0].message)
    else:
        for o in stale:
            if isinstance(o.error, UpstreamError):
                error = SourceError(code=SourceErrorCode(o.error.code), message=o.error.message)
                break
    status = (
        SourceStatus.unavailable if failed else SourceStatus.stale if stale else SourceStatus.ok
    )
    return SourceInfo(
        source=connection,
        status=status,
        fetched_at=min((o.fetched_at for o in held), default=None),
        error=error,
    )
