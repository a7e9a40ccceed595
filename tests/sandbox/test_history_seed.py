"""The sandbox's past and its moving balances: an empty sandbox store starts with 90 days of
history ending at the live figures (once, and never outside the sandbox), and the simulators'
balances move so changes reach history while tesoro runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.sandbox.data import FINSYNC_COMPANY_ID, SANDBOX_CONSENTS
from app.sandbox.moves import BalanceMoves
from app.services.history import HistoryRecorder
from app.settings import Settings
from app.store.history import HistoryStore
from tests.support.apps import sandbox_app, upstream_settings
from tests.support.asgi import started
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

REFRESH = {"Cache-Control": "no-cache"}


def at(moment: datetime) -> str:
    return quote(moment.isoformat(), safe="")


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[tuple[httpx2.AsyncClient, HistoryRecorder]]:
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        yield client, app.state.history


def seeded_sandbox(simulators: Simulators, database: Path, **overrides: Any) -> FastAPI:
    """The sandbox seeding its past; FinSync observed every 6 hours, as the banks are, so the
    past is seeded in fewer observations (the default, every 15 minutes, takes seconds)."""
    return sandbox_app(
        simulators,
        history_enabled=True,
        database_url=f"sqlite:///{database}",
        sandbox_history_days=90,
        min_refresh_interval_seconds=0,
        **{"observe_finsync_seconds": 21600, **overrides},
    )


async def observations(database: Path) -> int:
    store = HistoryStore.open(f"sqlite:///{database}")
    try:
        return await store.latest_seq() or 0
    finally:
        await store.close()


async def test_an_empty_sandbox_store_starts_with_90_days_ending_at_the_live_totals(
    tmp_path: Path,
) -> None:
    database = tmp_path / "sandbox.db"
    now = datetime.now(UTC)
    async with serving(seeded_sandbox(Simulators.fresh(), database)) as (client, recorder):
        live = (await client.get("/positions")).json()
        await recorder.flush()
        first = await recorder.store.first_at(["finsync"])
        history = await client.get(
            f"/positions/history?interval=day&from={at(now - timedelta(days=90))}"
            f"&to={at(datetime.now(UTC))}"
        )
    assert abs(first["finsync"] - (now - timedelta(days=90))) < timedelta(minutes=5)
    assert history.status_code == 200, history.text
    body = history.json()
    assert 88 <= len(body["points"]) <= 91
    assert body["points"][-1]["totals"] == live["totals"]
    # The past moved: not every day had today's totals.
    assert len({str(point["totals"]) for point in body["points"]}) > 10
    # Observed on schedule throughout, but for one bank left unobserved for two days.
    [gap] = body["gaps"]
    assert gap["source"].startswith("finqware:")
    assert gap["reason"] == "unobserved"
    unseen = datetime.fromisoformat(gap["ended_at"]) - datetime.fromisoformat(gap["started_at"])
    assert timedelta(days=2) <= unseen < timedelta(days=3)


async def test_the_seeded_past_is_deterministic_and_joins_today_without_a_jump(
    tmp_path: Path,
) -> None:
    answers = []
    for name in ("one.db", "two.db"):
        async with serving(seeded_sandbox(Simulators.fresh(), tmp_path / name)) as (client, rec):
            await rec.flush()
            since = datetime.now(UTC) - timedelta(days=89)
            answers.append((await client.get(f"/positions/changes?since={at(since)}")).json())
    one, two = answers
    assert [c["delta"] for c in one["changes"]] == [c["delta"] for c in two["changes"]]
    # From 90 days ago to now the moved accounts changed; the day before today's figures
    # already were today's, so the live observation moved no amount.
    assert one["changes"]


async def test_a_second_start_does_not_seed_again(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    async with serving(seeded_sandbox(Simulators.fresh(), database)) as (_, recorder):
        await recorder.flush()
    seeded = await observations(database)
    async with serving(seeded_sandbox(Simulators.fresh(), database)) as (_, recorder):
        await recorder.flush()
        first = await recorder.store.first_at(["finsync"])
    assert seeded > 90
    # The second start observed the present only: a handful more, never 90 days again.
    assert await observations(database) - seeded < 10
    assert datetime.now(UTC) - first["finsync"] > timedelta(days=89)


async def test_outside_the_sandbox_nothing_is_seeded(tmp_path: Path) -> None:
    database = tmp_path / "real.db"
    settings = upstream_settings(
        "http://finsync.sandbox",
        "http://finqware.sandbox/v1",
        history_enabled=True,
        database_url=f"sqlite:///{database}",
        sandbox_history_days=90,
        auth_disabled=True,
    )
    app = create_app(settings, transport=Simulators.fresh().transport())
    async with serving(app) as (client, recorder):
        await client.get("/positions")
        await recorder.flush()
        first = await recorder.store.first_at(["finsync"])
    assert datetime.now(UTC) - first["finsync"] < timedelta(minutes=5)


def figures(simulators: Simulators) -> dict[str, str]:
    finsync = {
        f"finsync:{account.id}": account.balance
        for client in simulators.finsync.state.store.clients(FINSYNC_COMPANY_ID)
        for account in client.accounts
    }
    banks = {
        f"{account.id}:{balance.id}": balance.amount
        for consent in (c.key for c in SANDBOX_CONSENTS)
        for account in simulators.finqware.state.store.accounts(consent)
        for balance in account.balances
    }
    return finsync | banks


def test_a_move_changes_a_few_finsync_accounts_and_a_bank_without_crossing_zero() -> None:
    simulators = Simulators.fresh()
    moves = BalanceMoves(simulators.finsync.state.store, simulators.finqware.state.store)
    before = figures(simulators)
    moves.step()
    after = figures(simulators)
    moved = {key for key in before if before[key] != after[key]}
    assert 3 <= len(moved) <= 8
    assert any(key.startswith("finsync:") for key in moved)
    assert any(not key.startswith("finsync:") for key in moved)
    for key in moved:
        assert Decimal(before[key]).is_signed() == Decimal(after[key]).is_signed()
    # The same step moves the same way on every run.
    again = Simulators.fresh()
    BalanceMoves(again.finsync.state.store, again.finqware.state.store).step()
    assert figures(again) == after


async def test_moving_balances_reach_the_changes(tmp_path: Path) -> None:
    simulators = Simulators.fresh()
    moves = BalanceMoves(simulators.finsync.state.store, simulators.finqware.state.store)
    app = sandbox_app(
        simulators,
        history_enabled=True,
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}",
        min_refresh_interval_seconds=0,
    )
    async with serving(app) as (client, recorder):
        before = await client.get("/positions?source=finsync")
        await recorder.flush()
        since = datetime.fromisoformat(before.json()["sources"][0]["fetched_at"])
        moves.step()
        await client.get("/positions?source=finsync", headers=REFRESH)
        await recorder.flush()
        changes = await client.get(f"/positions/changes?since={at(since)}")
    assert changes.status_code == 200, changes.text
    assert changes.json()["changes"]


async def test_the_sandbox_moves_its_balances_while_serving_when_asked() -> None:
    settings = Settings(
        _env_file=None, sandbox=True, sandbox_moves_seconds=0.05, min_refresh_interval_seconds=0
    )
    app = create_app(settings)
    async with serving(app) as (client, _):
        first = (await client.get("/positions?source=finsync")).json()["totals"]
        for _ in range(100):
            await anyio.sleep(0.05)
            later = (await client.get("/positions?source=finsync", headers=REFRESH)).json()
            if later["totals"] != first:
                break
    assert later["totals"] != first
