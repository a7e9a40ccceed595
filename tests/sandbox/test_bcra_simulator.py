"""The BCRA simulator answers as api.bcra.gob.ar does: shapes, calendar, recorded day, faults."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import holidays
import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox.bcra import CODES, create_bcra_app
from app.sandbox.faults import ConnectionDroppedError, Faults
from app.upstreams.http import decode_json

pytestmark = pytest.mark.anyio

TODAY = date(2026, 3, 25)
PREFIX = "/estadisticascambiarias/v1.0"
RECORDED = Path(__file__).parents[1] / "upstreams" / "samples" / "bcra_cotizaciones_2026-03-19.json"
NULL_DAY = '{"status":200,"results":{"fecha":null,"detalle":[]}}'
EIGHT_DECIMALS = re.compile(r'"tipo(?:Pase|Cotizacion)":(-?[0-9]+(?:\.[0-9]+)?)')


@pytest.fixture
def app() -> Starlette:
    return create_bcra_app(today=lambda: TODAY)


@pytest.fixture
async def bcra(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://api.bcra.gob.ar" + PREFIX
    ) as client:
        yield client


def body(response: httpx2.Response) -> Any:
    return decode_json(response.content)


async def test_the_recorded_rows_of_2026_03_19_are_served_exactly(
    bcra: httpx2.AsyncClient,
) -> None:
    response = await bcra.get("/Cotizaciones", params={"fecha": "2026-03-19"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    for row in RECORDED.read_text().splitlines()[1:]:
        assert row.removesuffix("]}}").rstrip(",") in response.text
    table = body(response)["results"]
    assert table["fecha"] == "2026-03-19"
    assert [row["codigoMoneda"] for row in table["detalle"]] == list(CODES)
    assert len(CODES) == 39


async def test_every_figure_is_a_json_number_with_eight_decimals(bcra: httpx2.AsyncClient) -> None:
    response = await bcra.get("/Cotizaciones", params={"fecha": "2026-03-18"})

    figures = EIGHT_DECIMALS.findall(response.text)
    assert len(figures) == 2 * 39
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{8}", figure) for figure in figures)


async def test_the_trap_rows_are_there_every_day(bcra: httpx2.AsyncClient) -> None:
    rows = {
        row["codigoMoneda"]: row
        for row in body(await bcra.get("/Cotizaciones", params={"fecha": "2026-03-18"}))["results"][
            "detalle"
        ]
    }
    assert rows["VND"]["descripcion"] == "DONG VIETNAM (C/1.000 UNIDADES)"
    for code in ("ARS", "XAU", "XAG", "VEB"):
        assert rows[code]["tipoCotizacion"] == 0
    assert "MXP" in rows
    assert "MXN" not in rows
    assert rows["REF"]["tipoCotizacion"] != rows["USD"]["tipoCotizacion"]
    # EUR is derived from the USD row, as the BCRA derives it.
    assert rows["EUR"]["tipoCotizacion"] == rows["EUR"]["tipoPase"] * rows["USD"]["tipoCotizacion"]


async def test_the_next_recorded_day_has_its_recorded_ref_and_usd(
    bcra: httpx2.AsyncClient,
) -> None:
    rows = body(await bcra.get("/Cotizaciones", params={"fecha": "2026-03-20"}))["results"][
        "detalle"
    ]
    figures = {row["codigoMoneda"]: row["tipoCotizacion"] for row in rows}
    assert figures["REF"] == Decimal("1393.43800000")
    assert figures["USD"] == Decimal("1390.50000000")


@pytest.mark.parametrize("fecha", ["2026-03-24", "2026-03-23", "2026-03-22", "2026-03-21"])
async def test_holidays_and_weekends_answer_200_with_a_null_date(
    bcra: httpx2.AsyncClient, fecha: str
) -> None:
    response = await bcra.get("/Cotizaciones", params={"fecha": fecha})

    assert response.status_code == 200
    assert response.text == NULL_DAY


async def test_a_day_before_the_year_of_data_has_no_fixing(bcra: httpx2.AsyncClient) -> None:
    response = await bcra.get("/Cotizaciones", params={"fecha": "2025-03-25"})

    assert response.text == NULL_DAY


async def test_without_a_date_the_latest_day_is_served(bcra: httpx2.AsyncClient) -> None:
    table = body(await bcra.get("/Cotizaciones"))["results"]

    assert table["fecha"] == TODAY.isoformat()


async def test_a_date_after_today_is_a_400_in_the_error_shape(bcra: httpx2.AsyncClient) -> None:
    response = await bcra.get("/Cotizaciones", params={"fecha": "2026-03-26"})

    assert response.status_code == 400
    error = body(response)
    assert error["status"] == 400
    assert isinstance(error["errorMessages"], list)
    assert error["errorMessages"]


@pytest.mark.parametrize(
    "params",
    [
        {"fecha": "19/03/2026"},
        {"fecha": "2026-3-19"},
        {"fechaDesde": "2026-03-01", "fechaHasta": "2026-03-19"},
        {"fechadesde": "2026-03-01"},
    ],
)
async def test_a_bad_date_or_a_range_on_the_table_is_a_400(
    bcra: httpx2.AsyncClient, params: dict[str, str]
) -> None:
    response = await bcra.get("/Cotizaciones", params=params)

    assert response.status_code == 400
    assert body(response)["status"] == 400


async def test_a_series_is_newest_first_with_weekday_holidays_empty(
    bcra: httpx2.AsyncClient,
) -> None:
    response = await bcra.get(
        "/Cotizaciones/REF", params={"fechaDesde": "2026-03-18", "fechaHasta": "2026-03-25"}
    )

    answer = body(response)
    assert [(day["fecha"], len(day["detalle"])) for day in answer["results"]] == [
        ("2026-03-25", 1),
        ("2026-03-24", 0),
        ("2026-03-23", 0),
        ("2026-03-20", 1),
        ("2026-03-19", 1),
        ("2026-03-18", 1),
    ]
    assert answer["metadata"] == {"resultset": {"count": 6, "offset": 0, "limit": 1000}}
    assert answer["results"][4]["detalle"][0]["tipoCotizacion"] == Decimal("1395.51420000")


async def test_the_series_parameters_are_read_in_either_case(bcra: httpx2.AsyncClient) -> None:
    camel = await bcra.get(
        "/Cotizaciones/EUR", params={"fechaDesde": "2026-03-01", "fechaHasta": "2026-03-20"}
    )
    lower = await bcra.get(
        "/Cotizaciones/EUR", params={"fechadesde": "2026-03-01", "fechahasta": "2026-03-20"}
    )

    assert camel.status_code == 200
    assert camel.text == lower.text


async def test_a_series_pages_with_limit_and_offset(bcra: httpx2.AsyncClient) -> None:
    window = {"fechaDesde": "2026-01-01", "fechaHasta": "2026-03-25"}
    whole = body(await bcra.get("/Cotizaciones/USD", params=window))
    first = body(await bcra.get("/Cotizaciones/USD", params={**window, "limit": "10"}))
    second = body(
        await bcra.get("/Cotizaciones/USD", params={**window, "limit": "10", "offset": "10"})
    )

    count = whole["metadata"]["resultset"]["count"]
    assert count > 20
    assert first["metadata"]["resultset"] == {"count": count, "offset": 0, "limit": 10}
    assert first["results"] + second["results"] == whole["results"][:20]


@pytest.mark.parametrize("params", [{"limit": "9"}, {"limit": "1001"}, {"offset": "-1"}])
async def test_limit_and_offset_out_of_bounds_are_a_400(
    bcra: httpx2.AsyncClient, params: dict[str, str]
) -> None:
    response = await bcra.get("/Cotizaciones/USD", params=params)

    assert response.status_code == 400


async def test_a_series_without_dates_is_the_latest_quote(bcra: httpx2.AsyncClient) -> None:
    answer = body(await bcra.get("/Cotizaciones/REF"))

    assert [day["fecha"] for day in answer["results"]] == [TODAY.isoformat()]


async def test_a_series_up_to_a_date_after_today_is_a_400(bcra: httpx2.AsyncClient) -> None:
    response = await bcra.get("/Cotizaciones/REF", params={"fechaHasta": "2026-03-26"})

    assert response.status_code == 400
    assert body(response)["status"] == 400


async def test_an_unknown_currency_is_a_404_in_the_error_shape(bcra: httpx2.AsyncClient) -> None:
    response = await bcra.get("/Cotizaciones/MXN")

    assert response.status_code == 404
    assert body(response)["status"] == 404


async def test_the_currency_list_names_every_code(bcra: httpx2.AsyncClient) -> None:
    answer = body(await bcra.get("/Maestros/Divisas"))

    assert answer["status"] == 200
    assert [c["codigo"] for c in answer["results"]] == list(CODES)
    assert all(0 < len(c["denominacion"]) <= 50 for c in answer["results"])


async def test_a_year_of_fixings_on_the_argentine_calendar(bcra: httpx2.AsyncClient) -> None:
    start = TODAY - timedelta(days=364)
    answer = body(
        await bcra.get(
            "/Cotizaciones/REF",
            params={"fechaDesde": start.isoformat(), "fechaHasta": TODAY.isoformat()},
        )
    )

    argentina = holidays.country_holidays("AR")
    business = {
        start + timedelta(days=n)
        for n in range(365)
        if (start + timedelta(days=n)).weekday() < 5 and start + timedelta(days=n) not in argentina
    }
    quoted = {date.fromisoformat(day["fecha"]) for day in answer["results"] if day["detalle"]}
    assert quoted == business
    assert len(business) > 240
    # A plausible walk: the reference rate never jumps more than 2% from one fixing to the next.
    refs = [
        day["detalle"][0]["tipoCotizacion"] for day in reversed(answer["results"]) if day["detalle"]
    ]
    assert all(abs(b / a - 1) < Decimal("0.02") for a, b in itertools.pairwise(refs))
    assert all(Decimal(1000) < ref < Decimal(2000) for ref in refs)


async def test_the_figures_depend_on_the_date_alone() -> None:
    answers = []
    for _ in range(2):
        app = create_bcra_app(today=lambda: TODAY)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="https://api.bcra.gob.ar"
        ) as client:
            answers.append(
                (await client.get(f"{PREFIX}/Cotizaciones", params={"fecha": "2026-02-11"})).text
            )
    assert answers[0] == answers[1]
    assert json.loads(answers[0])["results"]["fecha"] == "2026-02-11"


# --- faults -----------------------------------------------------------------------------------


async def test_an_error_fault_is_a_500_in_the_error_shape(
    app: Starlette, bcra: httpx2.AsyncClient
) -> None:
    app.state.faults.mode = "error"

    response = await bcra.get("/Cotizaciones/REF")

    assert response.status_code == 500
    assert body(response)["status"] == 500


async def test_an_html_fault_is_a_proxy_page(app: Starlette, bcra: httpx2.AsyncClient) -> None:
    app.state.faults.mode = "html"

    response = await bcra.get("/Cotizaciones/REF")

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


async def test_a_truncated_fault_cuts_the_body(app: Starlette, bcra: httpx2.AsyncClient) -> None:
    app.state.faults.mode = "truncated"

    response = await bcra.get("/Cotizaciones", params={"fecha": "2026-03-19"})

    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        json.loads(response.content)


async def test_a_rate_limited_fault_resets_the_connection(
    app: Starlette, bcra: httpx2.AsyncClient
) -> None:
    app.state.faults.replace(Faults(mode="rate_limited", remaining=1))

    with pytest.raises(ConnectionDroppedError):
        await bcra.get("/Cotizaciones/REF")
    assert (await bcra.get("/Cotizaciones/REF")).status_code == 200
    assert app.state.calls["GET /Cotizaciones/{codMoneda}"] == 2


async def test_a_timeout_fault_holds_the_request(app: Starlette, bcra: httpx2.AsyncClient) -> None:
    app.state.faults.replace(Faults(mode="timeout", timeout_seconds=0.05))

    response = await bcra.get("/Cotizaciones/REF")

    assert response.status_code == 200  # after the hold


async def test_faults_that_are_not_the_bcras_pass_untouched(
    app: Starlette, bcra: httpx2.AsyncClient
) -> None:
    app.state.faults.replace(Faults(mode="unauthorized", remaining=1))

    assert (await bcra.get("/Cotizaciones/REF")).status_code == 200
    assert app.state.faults.remaining == 1


async def test_faults_are_switched_over_http(app: Starlette) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://api.bcra.gob.ar"
    ) as client:
        switched = await client.put("/_sandbox/faults", json={"mode": "error", "remaining": 1})
        failed = await client.get(f"{PREFIX}/Maestros/Divisas")
        served = await client.get(f"{PREFIX}/Maestros/Divisas")

    assert switched.json()["mode"] == "error"
    assert failed.status_code == 500
    assert served.status_code == 200
