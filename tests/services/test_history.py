"""Recording history through the running app, on real SQLite and real PostgreSQL: one
observation per new data state (only what changed), status changes as such, restarts keep
history, replicas write once, and a store that is down never touches an answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest

from app.domain.observations import Observation
from app.services.history import HistoryRecorder
from app.store.history import HistoryStore
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.postgres import (
    PASSWORD,
    PostgresServer,
    history_database,
    running_postgres,
)
from tests.support.redis import running_redis
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

REFRESH = {"Cache-Control": "no-cache"}
EARLY = datetime(2000, 1, 1, tzinfo=UTC)
LATE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return history_database(request, tmp_path)


@pytest.fixture
def simulators() -> Simulators:
    return Simulators.fresh()


def history_app(simulators: Simulators, database_url: str, **overrides: Any) -> FastAPI:
    return sandbox_app(
        simulators,
        history_enabled=True,
        database_url=database_url,
        min_refresh_interval_seconds=0,
        **overrides,
    )


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[httpx2.AsyncClient, HistoryRecorder]]:
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        recorder: HistoryRecorder = app.state.history
        yield client, recorder


def set_balance(simulators: Simulators, account_id: int, balance: str) -> None:
    simulators.finsync.state.store.set_balance(account_id, balance)


async def test_each_new_data_state_is_one_observation_of_only_what_changed(
    simulators: Simulators, database_url: str
) -> None:
    told: list[Observation] = []
    async with serving(history_app(simulators, database_url)) as (client, recorder):
        recorder.add_listener(told.append)
        assert (await client.get("/positions")).status_code == 200
        await recorder.flush()
        first = await recorder.store.current("finsync")
        assert first is not None
        assert ("finsync:101", "finsync:901", "ARS") in first.accounts
        every = len(first.accounts)

        set_balance(simulators, 901, "2000.75")
        assert (await client.get("/positions?source=finsync", headers=REFRESH)).status_code == 200
        await recorder.flush()

    latest = told[-1]
    assert latest.source == "finsync"
    assert latest.status == "ok"
    assert [(c.account_id, c.before, c.after) for c in latest.changes] == [
        (
            "finsync:901",
            first.accounts["finsync:101", "finsync:901", "ARS"].figures,
            latest.changes[0].after,
        )
    ]
    change = latest.changes[0]
    assert change.after is not None
    assert change.after.amount == Decimal("2000.75")
    assert change.delta == Decimal("2000.75") - Decimal("1520.5")
    assert latest.totals_delta == (("ARS", Decimal("480.25")),)
    # The first observation of FinSync holds every account; the next one only what changed.
    assert [len(o.changes) for o in told if o.source == "finsync"] == [every, 1]
    store = HistoryStore.open(database_url)
    try:
        replayed = await store.observations_after(told[0].seq - 1, limit=100)
    finally:
        await store.close()
    assert [o.seq for o in replayed] == [o.seq for o in told]
    assert replayed[-1] == latest


async def test_a_failed_load_is_recorded_as_a_status_change_once(
    simulators: Simulators, database_url: str
) -> None:
    told: list[Observation] = []
    async with serving(history_app(simulators, database_url, failure_backoff_seconds=0)) as (
        client,
        recorder,
    ):
        recorder.add_listener(told.append)
        await client.get("/positions?source=finsync")
        simulators.finsync_faults.mode = "error"
        for _ in range(3):
            await client.get("/positions?source=finsync", headers=REFRESH)
        await recorder.flush()
        simulators.finsync_faults.mode = "none"
        await client.get("/positions?source=finsync", headers=REFRESH)
        await recorder.flush()

    assert [(o.status, o.error_code, bool(o.changes)) for o in told] == [
        ("ok", None, True),
        ("stale", "upstream_error", False),
        ("ok", None, False),
    ]


async def test_restarts_keep_history_and_carry_on_from_it(
    simulators: Simulators, database_url: str
) -> None:
    async with serving(history_app(simulators, database_url)) as (client, recorder):
        await client.get("/positions?source=finsync")
        await recorder.flush()
        before = await recorder.store.current("finsync")
    told: list[Observation] = []
    async with serving(history_app(simulators, database_url)) as (client, recorder):
        recorder.add_listener(told.append)
        await client.get("/positions?source=finsync")
        await recorder.flush()
        after = await recorder.store.current("finsync")
    assert before is not None
    assert after is not None
    # Loaded again after the restart, nothing changed: an observation without accounts.
    assert [len(o.changes) for o in told] == [0]
    assert after.last.seq > before.last.seq
    assert after.accounts == before.accounts


async def test_two_replicas_write_each_observation_once(
    simulators: Simulators, database_url: str
) -> None:
    with running_redis() as redis:
        apps = [history_app(simulators, database_url, redis_url=redis.url) for _ in range(2)]
        async with serving(apps[0]) as (first, one), serving(apps[1]) as (second, other):
            await first.get("/positions?source=finsync")
            await second.get("/positions?source=finsync")
            set_balance(simulators, 902, "4900")
            await first.get("/positions?source=finsync", headers=REFRESH)
            await second.get("/positions?source=finsync")
            await asyncio.gather(one.flush(), other.flush())
            replayed = await one.observations_after(0, limit=100)
    finsync = [o for o in replayed if o.source == "finsync"]
    assert len(finsync) == 2
    assert len({o.version for o in finsync}) == 2
    assert [c.account_id for c in finsync[1].changes] == ["finsync:902"]


async def test_a_store_that_is_down_never_touches_an_answer_and_the_gap_is_recorded(
    simulators: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_postgres() as server:
        app = history_app(simulators, server.url, history_queue_size=2)
        async with serving(app) as (client, recorder):
            live = await client.get("/positions?source=finsync")
            await recorder.flush()
            server.stop()
            for balance in ("1", "2", "3", "4", "5"):
                set_balance(simulators, 901, balance)
                answer = await client.get("/positions?source=finsync", headers=REFRESH)
                assert answer.status_code == 200
                assert answer.json()["positions"] != live.json()["positions"]
            ready = (await client.get("/readyz")).json()
            assert (ready["status"], ready["history"]) == ("ready", "unavailable")
            server.start()
            await asyncio.wait_for(recorder.flush(), 30)
            assert (await client.get("/readyz")).json()["history"] == "ok"
            gaps = await recorder.store.gaps_between(["finsync"], EARLY, LATE)
            latest = await recorder.store.current("finsync")
            exported = generate_latest(app.state.metrics.registry).decode()
    assert [(gap.reason, gap.started_at <= gap.ended_at) for gap in gaps] == [
        ("store_unavailable", True)
    ]
    assert latest is not None
    # The newest state was kept and written once the store was back.
    assert latest.accounts["finsync:101", "finsync:901", "ARS"].figures.amount == Decimal("5")
    assert 'tesoro_history_observations_total{outcome="dropped"} 3.0' in exported
    assert "tesoro_history_store_errors_total" in exported
    assert PASSWORD not in caplog.text
    assert "history store postgresql://tesoro:***@127.0.0.1" in caplog.text
