"""Reading history over HTTP, on real SQLite and real PostgreSQL: `GET /positions?as_of=` is
the live answer as it was, `/positions/changes` and `/positions/history` give exact figures,
and every bad question is a 404 or a 422 saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from fastapi import FastAPI

from app.services.history import HistoryRecorder
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.postgres import PostgresServer, history_database, running_postgres
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

REFRESH = {"Cache-Control": "no-cache"}
# What a live answer says of the moment it is read, which a past answer says of its instant.
VOLATILE = ("generated_at",)


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


@asynccontextmanager
async def serving(
    simulators: Simulators, database_url: str, **overrides: Any
) -> AsyncIterator[tuple[httpx2.AsyncClient, HistoryRecorder]]:
    app: FastAPI = sandbox_app(
        simulators,
        history_enabled=True,
        database_url=database_url,
        min_refresh_interval_seconds=0,
        **overrides,
    )
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        yield client, app.state.history


def at(moment: str | datetime) -> str:
    text = moment if isinstance(moment, str) else moment.isoformat()
    return quote(text, safe="")


def without_moment(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without the moment it was generated (an as_of answer names its instant)."""
    return {name: value for name, value in body.items() if name not in VOLATILE}


def moments(body: dict[str, Any]) -> list[datetime]:
    """When each connection of an answer was fetched, earliest first."""
    return sorted(
        datetime.fromisoformat(s["fetched_at"]) for s in body["sources"] if s["fetched_at"]
    )


def fetched_at(body: dict[str, Any], source: str = "finsync") -> str:
    found: str = next(s["fetched_at"] for s in body["sources"] if s["source"] == source)
    return found


async def test_an_as_of_answer_is_the_live_answer_as_it_was(
    simulators: Simulators, database_url: str
) -> None:
    questions = [
        "source=finsync",
        "source=finsync&currency=usd&page_size=2&page=1",
        "source=finsync&include_zero=true&page_size=3&page=2",
        "source=finsync&kind=external&meaning=payable",
        # Converted as the live answer is: at the rates of the day asked (or of the instant's).
        "source=finsync&report_currency=EUR&rate_date=2026-03-19",
        "source=finsync&report_currency=USD",
    ]
    async with serving(simulators, database_url) as (client, recorder):
        live = {q: (await client.get(f"/positions?{q}")).json() for q in questions}
        then = fetched_at(live[questions[0]])
        await recorder.flush()
        simulators.finsync.state.store.set_balance(901, "99.99")
        changed = (await client.get("/positions?source=finsync", headers=REFRESH)).json()
        await recorder.flush()
        for question, answer in live.items():
            past = await client.get(f"/positions?{question}&as_of={at(then)}")
            assert past.status_code == 200, past.text
            assert past.headers["content-type"] == "application/json"
            assert without_moment(past.json()) == without_moment(answer)
            assert past.json()["generated_at"] == then
        latest = await client.get(f"/positions?source=finsync&as_of={at(datetime.now(UTC))}")
    assert without_moment(latest.json()) == without_moment(changed)
    caja = next(p for p in latest.json()["positions"] if p["account_id"] == "finsync:901")
    assert caja["amount"] == "99.99"


async def test_an_as_of_answer_over_every_connection_says_how_each_stood(
    simulators: Simulators, database_url: str
) -> None:
    async with serving(simulators, database_url) as (client, recorder):
        live = (await client.get("/positions")).json()
        await recorder.flush()
        moment = max(s["fetched_at"] for s in live["sources"] if s["fetched_at"])
        past = (await client.get(f"/positions?as_of={at(moment)}")).json()
    assert [(s["source"], s["status"], s["error"]) for s in past["sources"]] == [
        (s["source"], s["status"], s["error"]) for s in live["sources"]
    ]
    assert past["positions"] == live["positions"]
    assert past["totals"] == live["totals"]
    assert past["complete"] == live["complete"]


async def test_before_history_starts_is_a_404_saying_when_it_starts(
    simulators: Simulators, database_url: str
) -> None:
    async with serving(simulators, database_url) as (client, recorder):
        live = (await client.get("/positions?source=finsync")).json()
        await recorder.flush()
        start = datetime.fromisoformat(fetched_at(live))
        early = (start - timedelta(seconds=1)).isoformat()
        missing = await client.get(f"/positions?source=finsync&as_of={at(early)}")
        changes = await client.get(f"/positions/changes?source=finsync&since={at(early)}")
    for answer in (missing, changes):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["type"] == "/problems/history-not-available"
        assert datetime.fromisoformat(problem["history_starts_at"]) == start


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2026-11-30T18:00:00", "offset"),
        ("2999-01-01T00:00:00Z", "future"),
        ("yesterday", "RFC 3339"),
        ("2026-13-45T00:00:00Z", "RFC 3339"),
        ("0001-01-01T00:00:00+00:01", "out of range"),
    ],
)
async def test_an_instant_without_offset_in_the_future_or_unreadable_is_a_422(
    simulators: Simulators, database_url: str, value: str, says: str
) -> None:
    async with serving(simulators, database_url) as (client, _):
        for path, name in (
            ("/positions?as_of=", "as_of"),
            ("/positions/changes?since=", "since"),
            ("/positions/history?from=", "from"),
        ):
            answer = await client.get(path + at(value))
            assert answer.status_code == 422, (path, answer.text)
            [error] = answer.json()["errors"]
            assert error["location"] == ["query", name]
            assert says in error["message"]


async def test_changes_list_what_moved_largest_first_with_exact_deltas(
    simulators: Simulators, database_url: str
) -> None:
    async with serving(simulators, database_url) as (client, recorder):
        before = (await client.get("/positions?source=finsync")).json()
        await recorder.flush()
        since = fetched_at(before)
        store = simulators.finsync.state.store
        store.set_balance(901, "1520.51")  # +0.01 ARS
        store.set_balance(904, "2345000.9")  # -678 ARS
        store.set_balance(902, "4800.01")  # +0.01 USD
        await client.get("/positions?source=finsync", headers=REFRESH)
        await recorder.flush()
        answer = await client.get(f"/positions/changes?since={at(since)}")
        only_usd = await client.get(f"/positions/changes?since={at(since)}&currency=USD")
        nothing_yet = await client.get(f"/positions/changes?since={at(since)}&until={at(since)}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(c["account_id"], c["before"], c["after"], c["delta"]) for c in body["changes"]] == [
        ("finsync:904", "2345678.90", "2345000.90", "-678.00"),
        ("finsync:901", "1520.50", "1520.51", "0.01"),
        ("finsync:902", "4800.00", "4800.01", "0.01"),
    ]
    assert body["totals_delta"] == [
        {"currency": "ARS", "delta": "-677.99"},
        {"currency": "USD", "delta": "0.01"},
    ]
    assert [c["account_id"] for c in only_usd.json()["changes"]] == ["finsync:902"]
    assert nothing_yet.json()["changes"] == []


@pytest.mark.parametrize(
    "question",
    [
        "source=finsync&currency=ARS",  # from the totals written with the observations
        "source=finsync&currency=ARS&kind=internal",  # from the accounts' own rows
        "",  # every connection, from their totals
        "meaning=cash",  # every connection, from the accounts' rows
    ],
)
async def test_history_points_carry_the_totals_last_observed_at_each_end(
    simulators: Simulators, database_url: str, question: str
) -> None:
    async with serving(simulators, database_url) as (client, recorder):
        first = (await client.get(f"/positions?{question}")).json()
        await recorder.flush()
        simulators.finsync.state.store.set_balance(901, "1620.5")
        second = (await client.get(f"/positions?{question}", headers=REFRESH)).json()
        await recorder.flush()
        start, first_end = moments(first)[0], moments(first)[-1]
        end = moments(second)[-1]
        points = await client.get(
            f"/positions/history?{question}&interval=hour"
            f"&from={at(start - timedelta(hours=3))}&to={at(end)}"
        )
        between = await client.get(
            f"/positions/history?{question}&interval=day"
            f"&from={at(start - timedelta(days=2))}&to={at(first_end)}"
            "&tz=America/Argentina/Buenos_Aires"
        )
    assert points.status_code == 200, points.text
    body = points.json()
    # The points before history starts are left out; the last one is at `to`.
    assert datetime.fromisoformat(body["points"][-1]["at"]) == end
    assert body["points"][-1]["totals"] == second["totals"]
    assert first["totals"] != second["totals"]
    assert between.json()["points"][-1]["totals"] == first["totals"]
    assert between.json()["tz"] == "America/Argentina/Buenos_Aires"


async def test_history_points_in_a_reporting_currency_are_consolidated_at_the_days_rates(
    simulators: Simulators, database_url: str
) -> None:
    async with serving(simulators, database_url) as (client, recorder):
        live = (await client.get("/positions?report_currency=USD")).json()
        await recorder.flush()
        end = moments(live)[-1]
        window = f"interval=hour&from={at(end - timedelta(hours=2))}&to={at(end)}"
        today = await client.get(f"/positions/history?{window}&report_currency=usd")
        fixed = await client.get(
            f"/positions/history?{window}&report_currency=EUR&rate_date=2026-03-19"
        )
        plain = await client.get(f"/positions/history?{window}")
        unknown = await client.get(f"/positions/history?{window}&report_currency=USD&rates=x")
    assert today.status_code == 200, today.text
    last = today.json()["points"][-1]
    # Every point at today's rates (the default): the last one is the live answer's.
    assert last["totals"] == live["totals"]
    assert last["consolidated"] == live["consolidated"]
    assert all(p["consolidated"]["currency"] == "USD" for p in today.json()["points"])
    assert {"fx:bcra", "fx:ecb"} <= {source["source"] for source in today.json()["sources"]}
    for point in fixed.json()["points"]:
        assert point["consolidated"]["currency"] == "EUR"
        assert point["consolidated"]["rate_date"] == "2026-03-19"
        assert all("converted" in total for total in point["totals"])
    # Without a reporting currency, nothing is converted.
    assert all("consolidated" not in point for point in plain.json()["points"])
    assert all("converted" not in t for p in plain.json()["points"] for t in p["totals"])
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["location"] == ["query", "rates"]


@pytest.mark.parametrize(
    ("query", "name", "says"),
    [
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from", "after"),
        ("from=2026-11-01T00:00:00Z&interval=minute", "interval", ""),
        ("from=2026-11-01T00:00:00Z&tz=Mars/Olympus_Mons", "tz", "IANA"),
        ("from=2020-01-01T00:00:00Z&to=2026-11-01T00:00:00Z&interval=hour", "from", "10000"),
    ],
)
async def test_a_history_window_tesoro_cannot_chart_is_a_422_saying_which(
    simulators: Simulators, database_url: str, query: str, name: str, says: str
) -> None:
    async with serving(simulators, database_url) as (client, _):
        answer = await client.get(f"/positions/history?{query}")
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["location"] == ["query", name]
    assert says in error["message"]


async def test_history_reads_are_a_503_when_history_is_off(simulators: Simulators) -> None:
    app = sandbox_app(simulators, history_enabled=False)
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as client,
    ):
        answer = await client.get(f"/positions?as_of={at(datetime.now(UTC))}")
        ready = (await client.get("/readyz")).json()
    assert answer.status_code == 503
    assert answer.json()["type"] == "/problems/history-unavailable"
    assert ready["history"] == "off"
