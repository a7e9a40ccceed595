"""The Treasury tells its listener when a connection's state changes, not on every answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.cache import Cached, Lease
from app.domain.interpret import Interpreted
from app.domain.models import ResponseWarning, Source, SourceStatus
from app.domain.snapshot import Counterparty
from app.services.treasury import Treasury, still_true
from app.upstreams.errors import UpstreamTimeoutError

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 25, tzinfo=UTC)


class FakeConnection:
    """A connection whose next snapshot the test decides: fresh data, a failure, or a wait
    on `gate`; `held` is the data it already has."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.source = Source.finsync
        self.failing = False
        self.gate: asyncio.Event | None = None
        self.held: Cached[Interpreted] | None = None
        self.fetched = 0

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise UpstreamTimeoutError(self.key, "slow")
        self.fetched += 1
        return Cached(Interpreted((), ()), "fresh", NOW, 0.0, 30.0, version=1)

    def last(self) -> Cached[Interpreted] | None:
        return self.held

    def answers_at_once(self, *, refresh: bool) -> bool:
        return self.gate is None

    def invalidate(self) -> None:
        pass

    def placeholder(self) -> Counterparty | None:
        return None

    def notices(self, now: datetime) -> list[ResponseWarning]:
        return []

    def notices_until(self, now: datetime) -> datetime | None:
        return None

    def lease(self) -> Lease | None:
        return None  # it cannot say: every read is gathered


async def test_an_answer_leaves_at_its_deadline_with_what_is_in_hand() -> None:
    fast, slow_cold, slow_warm = FakeConnection("a"), FakeConnection("b"), FakeConnection("c")
    slow_cold.gate, slow_warm.gate = asyncio.Event(), asyncio.Event()
    slow_warm.held = Cached(Interpreted((), ()), "fresh", NOW, 10.0, 20.0, version=7)
    treasury = Treasury([fast, slow_cold, slow_warm], deadline_seconds=0.05)
    gathered = await treasury.gather()
    states = {s.source: (s.status, s.error.code if s.error else None) for s in gathered.sources}
    assert states == {
        "a": (SourceStatus.ok, None),
        "b": (SourceStatus.unavailable, "timeout"),
        "c": (SourceStatus.stale, "timeout"),
    }
    assert gathered.complete is False
    assert gathered.max_age_seconds == 0
    # The fetches left behind go on and finish by themselves.
    slow_cold.gate.set()
    slow_warm.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert (slow_cold.fetched, slow_warm.fetched) == (1, 1)


async def test_generated_at_is_the_latest_fetch_or_change_of_state_and_part_of_it() -> None:
    a, b = FakeConnection("a"), FakeConnection("b")
    treasury = Treasury([a, b])
    first = await treasury.gather()
    assert first.generated_at == NOW  # both fetched then, both ok as first seen
    again = await treasury.gather()
    assert (again.state, again.generated_at) == (first.state, first.generated_at)
    b.failing = True
    failed = await treasury.gather()
    # b's status changed when it was seen failing: after its data, a new data state.
    assert failed.generated_at is not None
    assert failed.generated_at > NOW
    assert failed.state != first.state
    later = await treasury.gather()
    assert (later.state, later.generated_at) == (failed.state, failed.generated_at)
    # Only the data, not its state, names what positions are built from.
    assert [key for key, _ in failed.data] == ["a", "b"]
    assert failed.data[0] == first.data[0]


def entry(key: str, version: int | None, status: SourceStatus) -> tuple[object, ...]:
    return (key, version, status, None, (), NOW)


@pytest.mark.parametrize(
    ("before", "after", "true"),
    [
        # Unchanged: still true.
        ((entry("a", 1, SourceStatus.ok),), (entry("a", 1, SourceStatus.ok),), True),
        # What changed was shown stale (or unavailable): it says how old it is.
        ((entry("a", 1, SourceStatus.stale),), (entry("a", 2, SourceStatus.ok),), True),
        ((entry("a", None, SourceStatus.unavailable),), (entry("a", 2, SourceStatus.ok),), True),
        (
            (entry("a", 1, SourceStatus.stale), entry("b", 5, SourceStatus.ok)),
            (entry("a", 2, SourceStatus.ok), entry("b", 5, SourceStatus.ok)),
            True,
        ),
        # Shown ok, changed since (new data, or past its TTL): no longer true.
        ((entry("a", 1, SourceStatus.ok),), (entry("a", 2, SourceStatus.ok),), False),
        ((entry("a", 1, SourceStatus.ok),), (entry("a", 1, SourceStatus.stale),), False),
        (
            (entry("a", 1, SourceStatus.stale), entry("b", 5, SourceStatus.ok)),
            (entry("a", 2, SourceStatus.ok), entry("b", 6, SourceStatus.ok)),
            False,
        ),
        # A change of status or error alone (the refresh it said was running has failed).
        (
            (entry("a", 1, SourceStatus.stale),),
            (("a", 1, SourceStatus.stale, ("timeout", "slow"), (), NOW),),
            False,
        ),
        # Other connections, or a rate source's entry that changed.
        ((entry("a", 1, SourceStatus.stale),), (entry("b", 1, SourceStatus.ok),), False),
        ((entry("a", 1, SourceStatus.stale),), (), False),
        ((("fx", "one"),), (("fx", "two"),), False),
    ],
)
def test_an_answer_for_a_previous_state_is_still_true_only_where_it_said_so(
    before: tuple[object, ...], after: tuple[object, ...], true: bool
) -> None:
    assert still_true(before, after) is true
