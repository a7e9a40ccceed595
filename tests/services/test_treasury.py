"""The Treasury tells its listener when a connection's state changes, not on every answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from app.cache import Cached
from app.domain.interpret import Interpreted
from app.domain.models import Counterparty, ResponseWarning, Source, SourceInfo, SourceStatus
from app.services.treasury import Treasury
from app.upstreams.errors import UpstreamTimeoutError

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 25, tzinfo=UTC)


class FakeConnection:
    """A connection whose next snapshot the test decides: fresh data, or a failure."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.source = Source.finsync
        self.failing = False

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        if self.failing:
            raise UpstreamTimeoutError(self.key, "slow")
        return Cached(Interpreted((), ()), "fresh", NOW, 0.0, 30.0, version=1)

    def invalidate(self) -> None:
        pass

    def placeholder(self) -> Counterparty | None:
        return None

    def notices(self, now: datetime) -> list[ResponseWarning]:
        return []


async def test_the_listener_hears_each_change_of_state_once() -> None:
    heard: list[list[tuple[str, SourceStatus]]] = []

    def listen(sources: Sequence[SourceInfo]) -> None:
        heard.append([(s.source, s.status) for s in sources])

    a, b = FakeConnection("a"), FakeConnection("b")
    treasury = Treasury([a, b], on_sources=listen)
    for _ in range(5):
        await treasury.gather()
    b.failing = True
    for _ in range(5):
        await treasury.gather()
    assert heard == [
        [("a", SourceStatus.ok), ("b", SourceStatus.ok)],
        [("b", SourceStatus.unavailable)],
    ]
