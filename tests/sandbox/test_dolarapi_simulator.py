"""The dolarapi simulator answers as dolarapi.com does: the casas, the scrape time, faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox.bcra import ArgentineMarket
from app.sandbox.dolarapi import create_dolarapi_app, last_scrape
from app.sandbox.faults import FaultMode, Faults
from app.upstreams.http import decode_json

pytestmark = pytest.mark.anyio

RECORDED = Path(__file__).parents[1] / "upstreams" / "samples" / "dolarapi_dolares_2026-08-22.json"
RECORDED_AT = "2026-08-22T18:01:00+00:00"
MARKET_STAMPED = {"oficial", "mayorista", "tarjeta"}


def at(text: str) -> Callable[[], datetime]:
    moment = datetime.fromisoformat(text)
    return lambda: moment


async def get(
    path: str, *, now: str = RECORDED_AT, app: Starlette | None = None
) -> httpx2.Response:
    app = app or create_dolarapi_app(now=at(now))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://dolarapi.com"
    ) as client:
        return await client.get(path)


def body(response: httpx2.Response) -> Any:
    return decode_json(response.content)


async def test_the_recorded_values_are_served_on_their_day() -> None:
    served = body(await get("/v1/dolares"))
    recorded = decode_json(RECORDED.read_bytes())

    def figures(quotes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(q["moneda"], q["casa"], q["nombre"], q["compra"], q["venta"]) for q in quotes]

    assert figures(served) == figures(recorded)
    # The casas scraped from Ámbito keep the market's time, exactly as recorded.
    for mine, theirs in zip(served, recorded, strict=True):
        if mine["casa"] in MARKET_STAMPED:
            assert mine["fechaActualizacion"] == theirs["fechaActualizacion"]


async def test_numbers_are_written_as_dolarapi_writes_them() -> None:
    text = (await get("/v1/dolares/bolsa")).text

    assert '"compra":1531.7,"venta":1545.3' in text
    assert '"fechaActualizacion":"2026-08-22T17:59:00.000Z"' in text


async def test_one_casa_is_one_object() -> None:
    quote = body(await get("/v1/dolares/bolsa"))

    assert set(quote) == {"moneda", "casa", "nombre", "compra", "venta", "fechaActualizacion"}
    assert quote["casa"] == "bolsa"


async def test_an_unknown_casa_is_a_404_page() -> None:
    response = await get("/v1/dolares/solidario")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_the_status_route_answers_available() -> None:
    status = body(await get("/v1/estado"))

    assert status["estado"] == "Disponible"
    assert isinstance(status["aleatorio"], int)


async def test_the_scrape_time_advances_while_the_value_stands_still() -> None:
    saturday = body(await get("/v1/dolares/bolsa", now="2026-08-22T12:30:00+00:00"))
    later = body(await get("/v1/dolares/bolsa", now="2026-08-23T21:10:00+00:00"))

    assert (saturday["compra"], saturday["venta"]) == (later["compra"], later["venta"])
    assert saturday["fechaActualizacion"] == "2026-08-22T11:59:00.000Z"
    assert later["fechaActualizacion"] == "2026-08-23T20:59:00.000Z"


@pytest.mark.parametrize(
    ("now", "scrape"),
    [
        ("2026-08-21T19:59:30+00:00", "2026-08-21T19:59:00+00:00"),  # Friday, hourly
        ("2026-08-21T19:58:00+00:00", "2026-08-21T18:59:00+00:00"),
        ("2026-08-21T23:30:00+00:00", "2026-08-21T21:59:00+00:00"),  # after the last run
        ("2026-08-24T03:00:00+00:00", "2026-08-23T23:59:00+00:00"),  # Monday night: Sunday's
        ("2026-08-24T05:00:00+00:00", "2026-08-24T04:59:00+00:00"),
    ],
)
def test_scrapes_follow_the_crons_schedule(now: str, scrape: str) -> None:
    assert last_scrape(datetime.fromisoformat(now)) == datetime.fromisoformat(scrape)


@pytest.mark.parametrize("now", ["2026-03-19T20:30:00+00:00", "2026-11-24T16:00:00+00:00"])
async def test_the_casas_sit_plausibly_over_the_bcra_reference(now: str) -> None:
    quotes = {q["casa"]: q for q in body(await get("/v1/dolares", now=now))}
    # The market day: the 19th after its close; on the 24th before the close, the day before
    # (Monday 23 November 2026 is a holiday in Argentina, so Friday the 20th).
    day = date(2026, 3, 19) if now.startswith("2026-03") else date(2026, 11, 20)
    ref = ArgentineMarket().reference(day)

    for quote in quotes.values():
        assert 0 < quote["compra"] <= quote["venta"], quote["casa"]
    mep = quotes["bolsa"]["venta"] / ref
    assert Decimal("1.01") < mep < Decimal("1.05")
    assert abs(quotes["mayorista"]["venta"] / ref - 1) < Decimal("0.01")
    assert quotes["tarjeta"]["venta"] == quotes["oficial"]["venta"] * Decimal("1.30")
    assert quotes["oficial"]["fechaActualizacion"] == f"{day.isoformat()}T18:55:00.000Z"


async def test_the_figures_depend_on_the_time_alone() -> None:
    first = (await get("/v1/dolares", now="2026-10-07T20:00:00+00:00")).text
    second = (await get("/v1/dolares", now="2026-10-07T20:00:00+00:00")).text

    assert first == second


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status", "media"),
    [
        ("error", 500, "text/plain"),
        ("html", 502, "text/html"),
        ("rate_limited", 429, "text/plain"),
    ],
)
async def test_faults_answer_as_the_host_would(mode: FaultMode, status: int, media: str) -> None:
    app = create_dolarapi_app(Faults(mode=mode, remaining=1), now=at(RECORDED_AT))

    faulted = await get("/v1/dolares/bolsa", app=app)
    served = await get("/v1/dolares/bolsa", app=app)

    assert faulted.status_code == status
    assert faulted.headers["content-type"].startswith(media)
    assert served.status_code == 200
    assert app.state.calls["GET /v1/dolares/{casa}"] == 2


async def test_a_truncated_fault_cuts_the_body() -> None:
    app = create_dolarapi_app(Faults(mode="truncated"), now=at(RECORDED_AT))

    response = await get("/v1/dolares", app=app)

    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(response.content)


async def test_faults_are_switched_over_http() -> None:
    app = create_dolarapi_app(now=at(RECORDED_AT))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://dolarapi.com"
    ) as client:
        await client.put("/_sandbox/faults", json={"mode": "error"})
        assert (await client.get("/v1/estado")).status_code == 500
        await client.put("/_sandbox/faults", json={})
        assert (await client.get("/v1/estado")).status_code == 200
