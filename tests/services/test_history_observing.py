"""Observing on a schedule: connections are read while nobody asks, a caller's recent read
counts, and with Redis one replica observes for the fleet, handing over when it dies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from app.services.history import HistoryRecorder
from app.services.observing import Observer
from app.services.shared import PREFIX
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.redis import running_redis
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

EARLY = datetime(2000, 1, 1, tzinfo=UTC)


@asynccontextmanager
async def serving(
    simulators: Simulators, database: Path, **overrides: Any
) -> AsyncIterator[tuple[httpx2.AsyncClient, FastAPI]]:
    app: FastAPI = sandbox_app(
        simulators, history_enabled=True, database_url=f"sqlite:///{database}", **overrides
    )
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        yield client, app


async def eventually(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


async def test_every_connection_is_observed_on_its_schedule_while_nobody_asks(
    tmp_path: Path,
) -> None:
    simulators = Simulators.fresh()
    async with serving(
        simulators,
        tmp_path / "h.db",
        observe_finsync_seconds=0.2,
        observe_finqware_seconds=0.4,
        min_refresh_interval_seconds=0,
    ) as (client, app):
        recorder: HistoryRecorder = app.state.history
        keys = (await client.get("/readyz")).json()["connections"]

        async def observed() -> bool:
            await recorder.flush()
            firsts = await recorder.store.first_at(keys)
            finsync = await recorder.store.observed_between("finsync", EARLY, datetime.now(UTC))
            return set(firsts) == set(keys) and len(finsync) >= 3

        await eventually(observed)
    assert simulators.finsync_calls() >= 3


async def test_a_connection_read_recently_is_not_read_again(tmp_path: Path) -> None:
    simulators = Simulators.fresh()
    async with serving(
        simulators, tmp_path / "h.db", observe_finsync_seconds=3, observe_finqware_seconds=3
    ) as (client, app):
        observer: Observer = app.state.observer
        assert observer.tick_seconds < 1
        await client.get("/positions")
        calls = simulators.finsync_calls()
        await asyncio.sleep(2 * observer.tick_seconds + 0.5)
        assert simulators.finsync_calls() == calls


async def test_one_replica_observes_for_the_fleet_and_another_takes_over_when_it_dies(
    tmp_path: Path,
) -> None:
    simulators = Simulators.fresh()
    with running_redis() as redis:
        lease = f"{PREFIX}:history:observer"
        # A replica that died holding the lease: nobody observes until it expires.
        redis.command("SET", lease, "dead-replica", "PX", "1500")
        settings = {
            "redis_url": redis.url,
            "observe_finsync_seconds": 0.2,
            "observe_finqware_seconds": 0.2,
        }
        async with (
            serving(simulators, tmp_path / "h.db", **settings) as (_, one),
            serving(simulators, tmp_path / "h.db", **settings) as (_, other),
        ):
            observers: list[Observer] = [one.state.observer, other.state.observer]
            await asyncio.sleep(0.5)
            assert [o.lease.held for o in observers if o.lease] == [False, False]
            assert redis.command("GET", lease).endswith(b"dead-replica\r\n")

            async def one_leads() -> bool:
                return sum(bool(o.lease and o.lease.held) for o in observers) == 1

            await eventually(one_leads)
            await asyncio.sleep(0.5)
            assert await one_leads()
            assert simulators.finsync_calls() >= 1
