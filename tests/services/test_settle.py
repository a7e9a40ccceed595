"""A connection settles the heap after each load of its snapshot, and only then."""

from __future__ import annotations

import httpx2
import pytest
from pydantic import SecretStr

from app.cache import SnapshotCache
from app.domain.interpret import Interpreted
from app.heap import HeapPolicy
from app.sandbox import FINSYNC_API_KEY, create_finsync_app
from app.services.treasury import FinsyncConnection
from app.upstreams.finsync import FinsyncClient

pytestmark = pytest.mark.anyio


async def test_the_heap_is_settled_once_per_load_not_per_read() -> None:
    settled: list[int] = []
    http = httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_finsync_app()), base_url="http://finsync"
    )
    cache: SnapshotCache[Interpreted] = SnapshotCache(ttl_seconds=60, stale_if_error_seconds=0)
    connection = FinsyncConnection(
        client=FinsyncClient(http, api_key=SecretStr(FINSYNC_API_KEY)),
        cache=cache,
        heap=HeapPolicy(settle=lambda: settled.append(1)),
    )
    async with http:
        first = await connection.snapshot(refresh=False)
        await connection.snapshot(refresh=False)
        assert len(settled) == 1
        connection.invalidate()
        await connection.snapshot(refresh=False)

    assert first.value.counterparties
    assert len(settled) == 2
