"""One clock: replicas whose wall clocks disagree, on one real Redis. A snapshot stamped in the
reader's future (a replica whose clock runs ahead, or a crafted value) is never taken."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx2
import pytest

from app.cache import SnapshotCache
from app.services.shared import PREFIX, RedisSnapshots, RedisTier
from app.upstreams.errors import UpstreamError, UpstreamTimeoutError
from tests.support.redis import RedisServer, replicas
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

AHEAD_SECONDS = 600.0


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = False

    async def __call__(self) -> str:
        self.calls += 1
        if self.failing:
            raise UpstreamTimeoutError("finsync", "timed out")
        return f"value-{self.calls}"


@asynccontextmanager
async def redis_replica(
    url: str, *, ahead_seconds: float = 0.0
) -> AsyncIterator[SnapshotCache[str]]:
    """A replica's cache over the real Redis, its wall clock `ahead_seconds` ahead."""
    tier = RedisTier(url, shown_as="test")
    try:
        yield SnapshotCache[str](
            ttl_seconds=30,
            stale_if_error_seconds=300,
            min_refresh_interval_seconds=10,
            stale_on=UpstreamError,
            stale_while_revalidate=True,
            wall_clock=lambda: time.time() + ahead_seconds,
            shared=RedisSnapshots[str](
                tier, encode=str.encode, decode=bytes.decode, lock_seconds=5
            ),
        )
    finally:
        await tier.close()


async def test_a_snapshot_from_a_replica_whose_clock_runs_ahead_is_never_taken(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    load = Loader()
    async with (
        redis_replica(redis_server.url, ahead_seconds=AHEAD_SECONDS) as ahead,
        redis_replica(redis_server.url) as reader,
    ):
        assert (await ahead.get("finsync", load)).value == "value-1"
        load.failing = True
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                # Not even as stale data: nothing this replica could show is older than now.
                with pytest.raises(UpstreamTimeoutError):
                    await reader.get("finsync", load)
        assert caplog.text.count("in this replica's future") == 1  # once per snapshot
        load.failing = False
        answer = await reader.get("finsync", load)
        assert (answer.value, answer.status) == ("value-5", "fresh")  # loaded here
        assert answer.fetched_at <= datetime.now(UTC)
    # Another replica ahead finds the reader's snapshot 10 minutes old: never fresher.
    async with redis_replica(redis_server.url, ahead_seconds=AHEAD_SECONDS) as cold:
        assert (await cold.get("finsync", load)).value == "value-6"


def _meta(redis_server: RedisServer, name: str) -> dict[str, object]:
    reply = redis_server.command("HGET", name, "meta")
    assert reply.startswith(b"$"), reply
    assert not reply.startswith(b"$-1"), reply
    fields: dict[str, object] = json.loads(reply.split(b"\r\n", 2)[1])
    return fields


def _stamp_ahead(redis_server: RedisServer, name: str) -> None:
    """Rewrite a snapshot's stamps as a replica whose clock runs 10 minutes ahead would."""
    fields = _meta(redis_server, name)
    fields["loaded_at"] = float(str(fields["loaded_at"])) + AHEAD_SECONDS
    fetched = datetime.fromisoformat(str(fields["fetched_at"])).timestamp() + AHEAD_SECONDS
    fields["fetched_at"] = datetime.fromtimestamp(fetched, UTC).isoformat()
    assert redis_server.command("HSET", name, "meta", json.dumps(fields)).startswith(b":")


def _no_future_stamps(answer: httpx2.Response) -> None:
    now = datetime.now(UTC)
    body = answer.json()
    stamps = [info["fetched_at"] for info in body["sources"]]
    stamps += [position["fetched_at"] for position in body["positions"]]
    assert stamps
    assert all(datetime.fromisoformat(stamp) <= now for stamp in stamps)


async def test_replicas_never_take_a_snapshot_stamped_in_their_future(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    name = f"{PREFIX}:snapshot:finsync"
    async with replicas(
        simulators, redis_url=redis_server.url, min_refresh_interval_seconds=0.3
    ) as [first, second]:
        assert (await first.get("/positions?source=finsync")).status_code == 200
        loaded = simulators.finsync_calls()
        _stamp_ahead(redis_server, name)
        # A cold replica does not take it as fresh: it asks FinSync itself.
        answer = await second.get("/positions?source=finsync")
        assert answer.status_code == 200
        _no_future_stamps(answer)
        assert simulators.finsync_calls() == 2 * loaded
        # A forced refresh past the refresh floor refetches, whatever Redis claims.
        _stamp_ahead(redis_server, name)
        await asyncio.sleep(0.4)
        refreshed = await first.get(
            "/positions?source=finsync", headers={"Cache-Control": "no-cache"}
        )
        assert refreshed.status_code == 200
        _no_future_stamps(refreshed)
        assert simulators.finsync_calls() == 3 * loaded
