"""The rates service: which fixing each leg gets, through which cache, asked at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from app.cache import SnapshotCache
from app.domain.fx import BUILT_IN, NoRate, Rate
from app.domain.models import SourceStatus
from app.services.rates import Found, Rates
from app.upstreams.errors import UpstreamError, UpstreamUnavailableError
from app.upstreams.fixings import Fixing

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
TODAY = NOW.date()


class FakeSource:
    """A rate source that publishes `figure` for every series on every day up to `today`,
    counting what it is asked; it fails while `failing`, and waits on `gate` when set."""

    def __init__(
        self, source: str, codes: set[str], pair_of: Callable[[str], tuple[str, str]]
    ) -> None:
        self.source = source
        self.codes = frozenset(codes)
        self.pair_of = pair_of  # a series code's (base, quote), as the real adapter names them
        self.figure = Decimal("1.5")
        self.asked: list[tuple[str, date, date]] = []
        self.failing = False
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    def series(self) -> frozenset[str]:
        return self.codes

    def today(self, now: datetime) -> date:
        return now.date()

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        self.asked.append((code, on_or_before, not_before))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise UpstreamUnavailableError(self.source, "answered 500")
        base, quote = self.pair_of(code)
        return Fixing(
            self.source,
            f"{self.source.upper()}:{code}",
            base,
            quote,
            self.figure,
            1,
            on_or_before,
        )


def caches() -> tuple[SnapshotCache[Found], SnapshotCache[Found]]:
    latest = SnapshotCache[Found](
        ttl_seconds=60,
        stale_if_error_seconds=3600,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
    )
    past = SnapshotCache[Found](
        ttl_seconds=30 * 86400, stale_if_error_seconds=0, stale_on=UpstreamError, maxsize=128
    )
    return latest, past


def service(*sources: FakeSource, max_age_days: int = 7) -> Rates:
    latest, past = caches()
    return Rates(
        {source.source: source for source in sources},
        policies=BUILT_IN,
        default_policy="official",
        max_age_days=max_age_days,
        latest_cache=latest,
        past_cache=past,
        clock=lambda: NOW,
    )


def sources() -> tuple[FakeSource, FakeSource, FakeSource]:
    return (
        FakeSource("bcra", {"REF"}, lambda _: ("USD", "ARS")),
        FakeSource("ecb", {"USD", "RON", "HUF"}, lambda code: ("EUR", code)),
        FakeSource("bnr", {"USD", "EUR", "HUF"}, lambda code: (code, "RON")),
    )


async def test_every_source_a_question_needs_is_asked_at_once() -> None:
    bcra, ecb, bnr = sources()
    gate = asyncio.Event()
    bcra.gate = ecb.gate = bnr.gate = gate

    async def open_when_all_asked() -> None:
        # Asked one after the other, the first would wait here for ever: never all three.
        await asyncio.gather(bcra.started.wait(), ecb.started.wait(), bnr.started.wait())
        gate.set()

    rates = service(bcra, ecb, bnr)
    opener = asyncio.ensure_future(open_when_all_asked())
    found = await asyncio.wait_for(
        rates.lookup(BUILT_IN["official"], ["ARS", "EUR", "RON"], "USD", TODAY), timeout=5
    )
    await opener
    assert all(isinstance(rate, Rate) for rate in found.rates.values())
    assert [s.source for s in found.sources] == ["fx:bcra", "fx:ecb", "fx:bnr"]


async def test_a_past_fixing_is_asked_once_and_kept() -> None:
    bcra, ecb, bnr = sources()
    rates = service(bcra, ecb, bnr)
    day = TODAY - timedelta(days=10)
    for _ in range(3):
        found = await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", day)
    assert bcra.asked == [("REF", day, day - timedelta(days=7))]
    assert isinstance(found.rates["ARS"], Rate)
    assert found.rates["ARS"].legs[0].fixing.rate_date == day


async def test_the_latest_is_asked_as_of_the_sources_today() -> None:
    bcra, ecb, bnr = sources()
    rates = service(bcra, ecb, bnr, max_age_days=3)
    await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", TODAY)
    assert bcra.asked == [("REF", TODAY, TODAY - timedelta(days=3))]


async def test_only_the_sources_needed_are_asked_and_listed() -> None:
    bcra, ecb, bnr = sources()
    rates = service(bcra, ecb, bnr)
    found = await rates.lookup(BUILT_IN["official"], ["ARS", "USD"], "USD", TODAY)
    assert [s.source for s in found.sources] == ["fx:bcra"]
    assert ecb.asked == bnr.asked == []


async def test_a_source_down_with_nothing_kept_is_unavailable_and_its_legs_missing() -> None:
    bcra, ecb, bnr = sources()
    bcra.failing = True
    found = await service(bcra, ecb, bnr).lookup(BUILT_IN["official"], ["ARS", "EUR"], "USD", TODAY)
    (info,) = [s for s in found.sources if s.source == "fx:bcra"]
    assert info.status is SourceStatus.unavailable
    assert info.error is not None
    assert info.error.message == "answered 500"
    ars = found.rates["ARS"]
    assert isinstance(ars, NoRate)
    assert "nothing is kept" in ars.reason
    assert isinstance(found.rates["EUR"], Rate)


async def test_a_source_switched_off_is_never_asked_nor_listed() -> None:
    _, ecb, bnr = sources()
    found = await service(ecb, bnr).lookup(BUILT_IN["official"], ["ARS", "RON"], "USD", TODAY)
    assert [s.source for s in found.sources] == ["fx:bnr"]
    ars = found.rates["ARS"]
    assert isinstance(ars, NoRate)
    assert "switched off" in ars.reason
    assert ars.connection == "fx:bcra"


async def test_the_state_follows_the_fixings_and_when_they_were_fetched() -> None:
    bcra = sources()[0]
    latest, past = caches()
    rates = Rates(
        {"bcra": bcra},
        policies=BUILT_IN,
        default_policy="official",
        max_age_days=7,
        latest_cache=latest,
        past_cache=past,
        clock=lambda: NOW,
    )
    first = await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", TODAY)
    latest.invalidate("fx:bcra:REF:latest")
    same = await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", TODAY, refresh=True)
    assert len(bcra.asked) == 2
    # The same figures, fetched again: the answer shows the new `fetched_at`, a new state.
    assert same.rates == first.rates
    assert same.sources[0].fetched_at != first.sources[0].fetched_at
    assert same.state != first.state
    assert same.generated_at == same.sources[0].fetched_at
    bcra.figure = Decimal("1.6")
    latest.invalidate("fx:bcra:REF:latest")
    moved = await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", TODAY, refresh=True)
    assert moved.state != first.state


async def test_the_currencies_recent_questions_converted_are_asked_before_the_next_lookup() -> None:
    bcra, ecb, bnr = sources()
    rates = service(bcra, ecb, bnr)
    await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", TODAY - timedelta(days=20))
    day = TODAY - timedelta(days=10)
    # Started while the connections are asked, before the positions say what is needed.
    rates.warm(BUILT_IN["official"], "USD", day)
    for _ in range(20):  # a few turns of the loop: the load runs as its own task
        await asyncio.sleep(0)
    assert ("REF", day, day - timedelta(days=7)) in bcra.asked
    asked = len(bcra.asked)
    await rates.lookup(BUILT_IN["official"], ["ARS"], "USD", day)
    assert len(bcra.asked) == asked  # the lookup found the warmed fixing


async def test_a_lookup_asked_again_is_kept_while_its_fixings_are_fresh_and_ages() -> None:
    bcra = sources()[0]
    now = [1000.0]
    latest = SnapshotCache[Found](
        ttl_seconds=60,
        stale_if_error_seconds=3600,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        clock=lambda: now[0],
    )
    past = SnapshotCache[Found](
        ttl_seconds=30 * 86400, stale_if_error_seconds=0, clock=lambda: now[0]
    )
    rates = Rates(
        {"bcra": bcra},
        policies=BUILT_IN,
        default_policy="official",
        max_age_days=7,
        latest_cache=latest,
        past_cache=past,
        clock=lambda: NOW,
        monotonic=lambda: now[0],
    )
    official = BUILT_IN["official"]
    first = await rates.lookup(official, ["ARS"], "USD", TODAY)
    again = await rates.lookup(official, ["ARS"], "USD", TODAY)
    now[0] += 30
    later = await rates.lookup(official, ["ARS"], "USD", TODAY)
    assert len(bcra.asked) == 1
    assert first.state == again.state == later.state
    # Nothing counts time: the sources and the moment are the first answer's.
    assert later.sources == first.sources
    assert later.generated_at == first.generated_at == first.sources[0].fetched_at
    assert later.max_age_seconds == 30
    # Published again with another figure: once the kept fixing is past its lifetime, the
    # next answers are stale while it loads, then show the new figure and a new state.
    bcra.figure = Decimal("1.6")
    now[0] += 31
    stale = await rates.lookup(official, ["ARS"], "USD", TODAY)
    assert [s.status for s in stale.sources] == [SourceStatus.stale]
    assert stale.state != first.state  # the status is part of the state
    for _ in range(20):  # the refresh runs behind the stale answer, as its own task
        await asyncio.sleep(0)
    moved = await rates.lookup(official, ["ARS"], "USD", TODAY)
    assert len(bcra.asked) == 2
    assert [s.status for s in moved.sources] == [SourceStatus.ok]
    assert moved.state not in (first.state, stale.state)
    assert moved.rates["ARS"] != first.rates["ARS"]


async def test_a_kept_lookup_is_dropped_once_any_load_of_a_fixing_ends() -> None:
    bcra = sources()[0]
    rates = service(bcra)
    official = BUILT_IN["official"]
    first = await rates.lookup(official, ["ARS"], "USD", TODAY)
    assert (await rates.lookup(official, ["ARS"], "USD", TODAY)).state == first.state
    bcra.figure = Decimal("1.7")
    # Another question forces the latest fixing again; a question that does not force it
    # sees the fixing that load stored, not the lookup kept before it.
    forced = await rates.lookup(official, ["ARS", "USD"], "USD", TODAY, refresh=True)
    plain = await rates.lookup(official, ["ARS"], "USD", TODAY)
    assert len(bcra.asked) == 2
    assert plain.state != first.state
    assert plain.rates["ARS"] == forced.rates["ARS"] != first.rates["ARS"]
