"""The Treasury tells its listener when a connection's state changes, not on every answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.cache import Cached
from app.domain.interpret import Interpreted
from app.domain.models import Counterparty, ResponseWarning, Source, SourceStatus
from app.services.treasury import Treasury
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
