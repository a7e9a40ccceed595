"""DolarapiClient against dolarapi's recorded answer (a fake at the transport) and its simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from app.sandbox.bcra import ArgentineMarket
from app.sandbox.dolarapi import create_dolarapi_app
from app.upstreams.dolarapi import BASE_URL, LABEL, DolarapiClient
from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamUnavailableError,
)
from app.upstreams.fixings import Fixing, RateSource

pytestmark = pytest.mark.anyio

SAMPLES = Path(__file__).parent / "samples"
DOLARES_2026_08_22 = (SAMPLES / "dolarapi_dolares_2026-08-22.json").read_text()
# The `bolsa` (MEP) object of the recorded array, exactly as written.
BOLSA = next(
    line.strip().rstrip(",") for line in DOLARES_2026_08_22.splitlines() if '"casa":"bolsa"' in line
)
# When the array was committed: Saturday 2026-08-22, 15:01 in Buenos Aires.
RECORDED_AT = "2026-08-22T18:01:00+00:00"

Handler = Callable[[httpx2.Request], httpx2.Response]


def at(text: str) -> Callable[[], datetime]:
    moment = datetime.fromisoformat(text)
    return lambda: moment


class FakeDolarapi:
    def __init__(self, answer: httpx2.Response) -> None:
        self.answer = answer
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answer


def json_answer(text: str, status: int = 200) -> httpx2.Response:
    return httpx2.Response(
        status, content=text.encode(), headers={"content-type": "application/json"}
    )


def bolsa(**changes: object) -> str:
    quote = json.loads(BOLSA)
    quote.update(changes)
    return json.dumps({key: value for key, value in quote.items() if value is not None})


def make(handler: Handler, *, now: str = RECORDED_AT) -> DolarapiClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url=BASE_URL)
    return DolarapiClient(http, clock=at(now))


async def mep(client: DolarapiClient, on_or_before: str, not_before: str) -> Fixing | None:
    return await client.fixing(
        "MEP",
        on_or_before=date.fromisoformat(on_or_before),
        not_before=date.fromisoformat(not_before),
    )


def mep_fixing(published: str, on: date) -> Fixing:
    return Fixing("dolarapi", "DOLARAPI:MEP", "USD", "ARS", Decimal(published), 1, on)


async def test_the_recorded_mep_reads_to_its_venta_on_the_scrape_day() -> None:
    fake = FakeDolarapi(json_answer(BOLSA))

    found = await mep(make(fake), "2026-08-22", "2026-08-15")

    assert found == mep_fixing("1545.3", date(2026, 8, 22))
    assert str(found.published) == "1545.3"
    assert fake.requests[0].url.path == "/v1/dolares/bolsa"


async def test_the_client_is_a_rate_source_labelled_a_market_reference() -> None:
    client: RateSource = make(FakeDolarapi(json_answer(BOLSA)))
    assert client.source == "dolarapi"
    assert client.series() == frozenset({"MEP"})
    assert "market reference" in LABEL


async def test_a_day_before_the_current_value_has_no_fixing() -> None:
    # dolarapi keeps no history: Friday's MEP is not to be had on Saturday.
    fake = FakeDolarapi(json_answer(BOLSA))

    assert await mep(make(fake), "2026-08-21", "2026-08-14") is None


async def test_a_value_older_than_the_window_is_none() -> None:
    fake = FakeDolarapi(json_answer(bolsa(fechaActualizacion="2026-08-10T17:58:00.000Z")))

    assert await mep(make(fake), "2026-08-22", "2026-08-15") is None


async def test_the_scrape_day_is_the_date_in_buenos_aires() -> None:
    # 01:30 UTC on the 23rd is 22:30 on the 22nd in Buenos Aires.
    fake = FakeDolarapi(json_answer(bolsa(fechaActualizacion="2026-08-23T01:30:00.000Z")))

    found = await mep(make(fake, now="2026-08-23T02:00:00+00:00"), "2026-08-23", "2026-08-16")

    assert found == mep_fixing("1545.3", date(2026, 8, 22))


async def test_a_later_date_is_clamped_to_today_in_buenos_aires() -> None:
    fake = FakeDolarapi(json_answer(BOLSA))

    found = await mep(make(fake), "2026-12-31", "2026-08-22")

    assert found == mep_fixing("1545.3", date(2026, 8, 22))


def test_today_is_the_date_in_buenos_aires_near_midnight_utc() -> None:
    client = make(FakeDolarapi(json_answer(BOLSA)))
    assert client.today(datetime.fromisoformat("2026-08-23T02:59:00+00:00")) == date(2026, 8, 22)
    assert client.today(datetime.fromisoformat("2026-08-23T03:00:00+00:00")) == date(2026, 8, 23)


async def test_a_quote_without_compra_is_read() -> None:
    fake = FakeDolarapi(json_answer(bolsa(compra=None)))

    assert await mep(make(fake), "2026-08-22", "2026-08-15") == mep_fixing(
        "1545.3", date(2026, 8, 22)
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (bolsa(compra=1560, venta=1545.3), "inverted"),
        (bolsa(venta=0), "venta is 0"),
        (bolsa(venta=-1545.3), "venta is -1545.3"),
        (bolsa(compra=-1), "compra is -1"),
        (bolsa(venta=1e15), "venta is"),
        (bolsa(venta="1.545,3"), "unexpected"),
        (bolsa(compra="mil"), "compra is unreadable"),
        (bolsa(casa="blue"), "answered USD blue"),
        (bolsa(moneda="EUR"), "answered EUR"),
        (bolsa(fechaActualizacion="2026-08-22T19:30:00.000Z"), "in the future"),
        (bolsa(fechaActualizacion="ayer"), "unexpected"),
        (f"[{BOLSA}]", "not an object"),
    ],
)
async def test_nonsense_is_a_bad_response(answer: str, reason: str) -> None:
    fake = FakeDolarapi(json_answer(answer))

    with pytest.raises(UpstreamBadResponseError, match=reason) as raised:
        await mep(make(fake), "2026-08-22", "2026-08-15")
    assert raised.value.code == "bad_response"


async def test_html_with_status_200_is_a_bad_response() -> None:
    page = "<!DOCTYPE html><html><body>DolarApi</body></html>"
    fake = FakeDolarapi(httpx2.Response(200, text=page, headers={"content-type": "text/html"}))

    with pytest.raises(UpstreamBadResponseError, match="not valid JSON"):
        await mep(make(fake), "2026-08-22", "2026-08-15")


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (httpx2.Response(404, text="<h1>404: NOT_FOUND</h1>"), UpstreamNotFoundError, "not_found"),
        (
            httpx2.Response(500, text="Internal Server Error"),
            UpstreamUnavailableError,
            "upstream_error",
        ),
        (
            httpx2.Response(502, text="<html>Bad Gateway</html>"),
            UpstreamUnavailableError,
            "upstream_error",
        ),
        (httpx2.Response(429, text="Too Many Requests"), UpstreamRateLimitedError, "rate_limited"),
    ],
)
async def test_error_answers_map_to_the_error_hierarchy(
    answer: httpx2.Response, kind: type[UpstreamError], code: str
) -> None:
    with pytest.raises(kind) as raised:
        await mep(make(FakeDolarapi(answer)), "2026-08-22", "2026-08-15")
    assert raised.value.code == code
    assert raised.value.upstream == "dolarapi"


async def test_an_unknown_series_is_not_found_without_asking() -> None:
    fake = FakeDolarapi(json_answer(BOLSA))

    with pytest.raises(UpstreamNotFoundError):
        await make(fake).fixing(
            "BLUE", on_or_before=date(2026, 8, 22), not_before=date(2026, 8, 15)
        )
    assert fake.requests == []


# --- against the simulator --------------------------------------------------------------------


def on_simulator(now: str) -> tuple[DolarapiClient, httpx2.AsyncClient]:
    app = create_dolarapi_app(now=at(now))
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE_URL)
    return DolarapiClient(http, clock=at(now)), http


async def test_the_simulator_serves_the_recorded_mep_on_its_day() -> None:
    client, http = on_simulator(RECORDED_AT)
    async with http:
        assert await mep(client, "2026-08-22", "2026-08-15") == mep_fixing(
            "1545.3", date(2026, 8, 22)
        )


async def test_over_a_weekend_the_value_stands_still_and_its_date_moves() -> None:
    seen = []
    for now in ("2026-08-22T18:01:00+00:00", "2026-08-23T15:10:00+00:00"):
        client, http = on_simulator(now)
        async with http:
            seen.append(await mep(client, now[:10], "2026-08-15"))
    assert seen == [
        mep_fixing("1545.3", date(2026, 8, 22)),
        mep_fixing("1545.3", date(2026, 8, 23)),
    ]


async def test_over_a_holiday_friday_is_served_and_an_earlier_day_is_none() -> None:
    # Monday 2026-08-17 is a holiday in Argentina: Friday's close, scraped on Monday.
    client, http = on_simulator("2026-08-17T16:30:00+00:00")
    async with http:
        on_holiday = await mep(client, "2026-08-17", "2026-08-10")
        friday = await mep(client, "2026-08-14", "2026-08-07")
    market = ArgentineMarket()
    assert on_holiday is not None
    assert on_holiday.rate_date == date(2026, 8, 17)
    assert friday is None
    # A market reference a little above the BCRA simulator's A 3500 of that Friday.
    premium = on_holiday.published / market.reference(date(2026, 8, 14))
    assert Decimal("1.01") < premium < Decimal("1.05")
