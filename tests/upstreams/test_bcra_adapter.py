"""BcraClient against the BCRA's recorded answers (a fake at the transport) and its simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest
import stamina

from app.sandbox.bcra import create_bcra_app
from app.upstreams.bcra import BASE_URL, SERIES, BcraClient, units
from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from app.upstreams.fixings import Fixing, RateSource
from app.upstreams.http import RetryPolicy

pytestmark = pytest.mark.anyio

SAMPLES = Path(__file__).parent / "samples"
TABLE_2026_03_19 = (SAMPLES / "bcra_cotizaciones_2026-03-19.json").read_text()
PREFIX = "/estadisticascambiarias/v1.0"

# The recorded rows, as the BCRA wrote them.
REF_ROW = (
    '{"codigoMoneda":"REF","descripcion":"DOLAR REFERENCIA COM 3500",'
    '"tipoPase":0.00000000,"tipoCotizacion":1395.51420000}'
)
VND_ROW = (
    '{"codigoMoneda":"VND","descripcion":"DONG VIETNAM (C/1.000 UNIDADES)",'
    '"tipoPase":0.03803600,"tipoCotizacion":53.04096500}'
)
REF_0320_ROW = (
    '{"codigoMoneda":"REF","descripcion":"DOLAR REFERENCIA COM 3500",'
    '"tipoPase":0.00000000,"tipoCotizacion":1393.43800000}'
)
HOLIDAY_TABLE = '{"status":200,"results":{"fecha":null,"detalle":[]}}'

Handler = Callable[[httpx2.Request], httpx2.Response]


def at(text: str) -> Callable[[], datetime]:
    moment = datetime.fromisoformat(text)
    return lambda: moment


# Late on 2026-03-25 in Buenos Aires: every date of March 2026 is in the past.
LATE_MARCH = at("2026-03-25T20:00:00+00:00")


def day(fecha: str | None, *rows: str) -> str:
    return f'{{"fecha":{json.dumps(fecha)},"detalle":[{",".join(rows)}]}}'


def series(*days: str, count: int | None = None, offset: int = 0, limit: int = 10) -> str:
    total = len(days) if count is None else count
    return (
        f'{{"status":200,"metadata":{{"resultset":{{"count":{total},"offset":{offset},'
        f'"limit":{limit}}}}},"results":[{",".join(days)}]}}'
    )


def json_answer(text: str, status: int = 200) -> httpx2.Response:
    return httpx2.Response(
        status, content=text.encode(), headers={"content-type": "application/json; charset=utf-8"}
    )


class FakeBcra:
    """Answers every request with the next prepared answer, and keeps the requests."""

    def __init__(self, *answers: httpx2.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def make(
    handler: Handler,
    *,
    clock: Callable[[], datetime] = LATE_MARCH,
    retries: RetryPolicy | None = None,
) -> BcraClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler), base_url=BASE_URL)
    if retries is None:
        return BcraClient(http, clock=clock)
    return BcraClient(http, retries=retries, clock=clock)


def ref_fixing(published: str, on: date) -> Fixing:
    return Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal(published), 1, on)


async def fixing(
    client: BcraClient, code: str, on_or_before: str, not_before: str
) -> Fixing | None:
    return await client.fixing(
        code,
        on_or_before=date.fromisoformat(on_or_before),
        not_before=date.fromisoformat(not_before),
    )


# --- the recorded answers ----------------------------------------------------------------------


async def test_the_recorded_table_reads_to_exact_fixings_without_the_zero_rows() -> None:
    fake = FakeBcra(json_answer(TABLE_2026_03_19))

    fixings = await make(fake).fixings_on(date(2026, 3, 19))

    on = date(2026, 3, 19)
    assert fixings == [
        Fixing("bcra", "BCRA:BRL", "BRL", "ARS", Decimal("266.06502300"), 1, on),
        Fixing("bcra", "BCRA:EUR", "EUR", "ARS", Decimal("1612.04200000"), 1, on),
        Fixing("bcra", "BCRA:JPY", "JPY", "ARS", Decimal("8.83489600"), 1, on),
        Fixing("bcra", "BCRA:REF", "USD", "ARS", Decimal("1395.51420000"), 1, on),
        Fixing("bcra", "BCRA:USD", "USD", "ARS", Decimal("1394.50000000"), 1, on),
        Fixing("bcra", "BCRA:VND", "VND", "ARS", Decimal("53.04096500"), 1000, on),
        Fixing("bcra", "BCRA:XDR", "XDR", "ARS", Decimal("1894.56770000"), 1, on),
    ]
    # Exactly as written: the 8 decimals survive, no float on the way.
    assert str(fixings[3].published) == "1395.51420000"
    assert fake.requests[0].url.path == f"{PREFIX}/Cotizaciones"
    assert fake.requests[0].url.params["fecha"] == "2026-03-19"


async def test_ref_comes_from_one_series_call_over_the_window() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW))))

    found = await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")

    assert found == ref_fixing("1395.51420000", date(2026, 3, 19))
    assert len(fake.requests) == 1
    sent = fake.requests[0].url
    assert sent.path == f"{PREFIX}/Cotizaciones/REF"
    assert dict(sent.params) == {
        "fechaDesde": "2026-03-12",
        "fechaHasta": "2026-03-19",
        "limit": "10",
        "offset": "0",
    }


async def test_the_client_is_a_rate_source_labelled_bcra() -> None:
    client: RateSource = make(FakeBcra())
    assert client.source == "bcra"
    assert {"REF", "USD", "EUR", "MXN", "VND"} <= client.series()
    assert not {"ARS", "XAU", "XAG", "VEB", "MXP"} & client.series()
    assert SERIES["REF"].label.startswith("BCRA Comunicación A 3500")
    assert SERIES["USD"].label == "BCRA cotización USD"


# --- days without a fixing --------------------------------------------------------------------


async def test_a_holiday_is_walked_back_to_the_last_fixing_in_the_same_call() -> None:
    # Tuesday 24 March 2026 and Monday 23 are holidays; the weekend has nothing either.
    fake = FakeBcra(
        json_answer(
            series(
                day("2026-03-24"),
                day("2026-03-23"),
                day("2026-03-20", REF_0320_ROW),
                day("2026-03-19", REF_ROW),
            )
        )
    )

    found = await fixing(make(fake), "REF", "2026-03-24", "2026-03-17")

    assert found == ref_fixing("1393.43800000", date(2026, 3, 20))
    assert len(fake.requests) == 1


async def test_the_per_day_table_of_a_holiday_has_no_fixings() -> None:
    fake = FakeBcra(json_answer(HOLIDAY_TABLE))

    assert await make(fake).fixings_on(date(2026, 3, 24)) == []


async def test_no_fixing_within_the_window_is_none() -> None:
    fake = FakeBcra(json_answer(series()))

    assert await fixing(make(fake), "REF", "2026-03-24", "2026-03-21") is None


async def test_a_fixing_older_than_the_window_is_not_taken() -> None:
    # A server that ignored fechaDesde: the older date is outside what was asked.
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW))))

    assert await fixing(make(fake), "REF", "2026-03-24", "2026-03-21") is None


async def test_a_window_that_ends_before_it_starts_asks_nothing() -> None:
    fake = FakeBcra()

    assert await fixing(make(fake), "REF", "2026-03-19", "2026-03-20") is None
    assert fake.requests == []


async def test_the_newest_date_wins_whatever_the_order() -> None:
    fake = FakeBcra(
        json_answer(series(day("2026-03-19", REF_ROW), day("2026-03-20", REF_0320_ROW)))
    )

    found = await fixing(make(fake), "REF", "2026-03-20", "2026-03-13")

    assert found is not None
    assert found.rate_date == date(2026, 3, 20)


async def test_a_page_without_a_fixing_is_followed_by_the_next() -> None:
    # The server pages by 10 whatever was asked; the first ten dates have no quotes.
    empty_days = [day(f"2024-01-{n:02d}") for n in range(10, 0, -1)]
    fake = FakeBcra(
        json_answer(series(*empty_days, count=12, limit=10)),
        json_answer(series(day("2023-12-29", REF_ROW), count=12, offset=10, limit=10)),
    )

    found = await fixing(make(fake), "REF", "2024-01-10", "2023-12-01")

    assert found == ref_fixing("1395.51420000", date(2023, 12, 29))
    assert [r.url.params["offset"] for r in fake.requests] == ["0", "10"]
    assert [r.url.params["limit"] for r in fake.requests] == ["41", "41"]


async def test_a_window_longer_than_a_thousand_days_asks_a_thousand_at_a_time() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW), count=1500, limit=1000)))

    await fixing(make(fake), "REF", "2026-03-19", "2020-01-01")

    assert fake.requests[0].url.params["limit"] == "1000"


# --- units and codes --------------------------------------------------------------------------


async def test_a_rate_per_thousand_units_says_so() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", VND_ROW))))

    found = await fixing(make(fake), "VND", "2026-03-19", "2026-03-12")

    assert found == Fixing(
        "bcra", "BCRA:VND", "VND", "ARS", Decimal("53.04096500"), 1000, date(2026, 3, 19)
    )


@pytest.mark.parametrize(
    ("description", "count"),
    [
        ("DONG VIETNAM (C/1.000 UNIDADES)", 1000),
        ("RUPIA INDONESIA (C/10.000 UNIDADES)", 10000),
        ("GUARANI (C/100 UNIDADES)", 100),
        ("EURO", 1),
        ("ORO FINO (1 ONZA)", 1),
    ],
)
def test_units_are_read_from_the_description_with_spanish_thousands(
    description: str, count: int
) -> None:
    assert units(description) == count


def test_a_description_naming_units_it_cannot_read_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponseError):
        units("DONG (C/1,5 UNIDADES)")


async def test_mexican_pesos_are_asked_for_under_the_legacy_code() -> None:
    row = (
        '{"codigoMoneda":"MXP","descripcion":"PESO MEXICANO",'
        '"tipoPase":0.0558,"tipoCotizacion":77.81}'
    )
    fake = FakeBcra(json_answer(series(day("2026-03-19", row))))

    found = await fixing(make(fake), "MXN", "2026-03-19", "2026-03-12")

    assert fake.requests[0].url.path == f"{PREFIX}/Cotizaciones/MXP"
    assert found == Fixing("bcra", "BCRA:MXP", "MXN", "ARS", Decimal("77.81"), 1, date(2026, 3, 19))


async def test_an_unknown_series_is_not_found_without_asking() -> None:
    fake = FakeBcra()

    with pytest.raises(UpstreamNotFoundError):
        await fixing(make(fake), "XAU", "2026-03-19", "2026-03-12")
    assert fake.requests == []


# --- nonsense ---------------------------------------------------------------------------------


def ref_row(figure: str) -> str:
    return (
        '{"codigoMoneda":"REF","descripcion":"DOLAR REFERENCIA COM 3500",'
        f'"tipoPase":0.00000000,"tipoCotizacion":{figure}}}'
    )


@pytest.mark.parametrize("figure", ["0.00000000", "-1395.51420000", "1E+15", '"1395,5142"'])
async def test_a_rate_that_is_no_price_is_a_bad_response(figure: str) -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", ref_row(figure)))))

    with pytest.raises(UpstreamBadResponseError) as raised:
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")
    assert raised.value.code == "bad_response"


async def test_the_same_currency_twice_on_a_date_with_different_figures_is_a_bad_response() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW, ref_row("1396.00000000")))))

    with pytest.raises(UpstreamBadResponseError, match="twice"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_the_same_date_twice_with_different_figures_is_a_bad_response() -> None:
    fake = FakeBcra(
        json_answer(series(day("2026-03-19", REF_ROW), day("2026-03-19", ref_row("1396.00000000"))))
    )

    with pytest.raises(UpstreamBadResponseError, match="twice"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_the_same_currency_twice_with_the_same_figure_is_one_fixing() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW, REF_ROW))))

    found = await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")

    assert found == ref_fixing("1395.51420000", date(2026, 3, 19))


async def test_a_table_with_a_currency_twice_fails_whole() -> None:
    doubled = TABLE_2026_03_19.replace(
        '"tipoCotizacion":1612.04200000}',
        '"tipoCotizacion":1612.04200000},\n'
        '{"codigoMoneda":"EUR","descripcion":"EURO","tipoPase":1.157,"tipoCotizacion":1613.4}',
    )
    fake = FakeBcra(json_answer(doubled))

    with pytest.raises(UpstreamBadResponseError, match="EUR twice on 2026-03-19"):
        await make(fake).fixings_on(date(2026, 3, 19))


async def test_a_fixing_dated_after_the_day_asked_for_is_a_bad_response() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-20", REF_0320_ROW))))

    with pytest.raises(UpstreamBadResponseError, match="2026-03-20 for 2026-03-19"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_a_table_dated_after_the_day_asked_for_is_a_bad_response() -> None:
    fake = FakeBcra(json_answer(TABLE_2026_03_19))

    with pytest.raises(UpstreamBadResponseError):
        await make(fake).fixings_on(date(2026, 3, 18))


@pytest.mark.parametrize(
    "broken",
    [
        '{"fecha":"2026-03-19","detalle":"REF"}',
        '{"fecha":"2026-03-19"}',
        '{"fecha":"ayer","detalle":[]}',
    ],
)
async def test_a_date_that_cannot_be_read_is_a_bad_response_not_a_day_off(broken: str) -> None:
    fake = FakeBcra(json_answer(series(broken, day("2026-03-18", REF_ROW))))

    with pytest.raises(UpstreamBadResponseError):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_another_currency_in_the_series_is_a_bad_response() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", VND_ROW))))

    with pytest.raises(UpstreamBadResponseError, match="other currencies"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_html_with_status_200_is_a_bad_response() -> None:
    page = "<html><head><title>Request Rejected</title></head><body>Rejected</body></html>"
    fake = FakeBcra(httpx2.Response(200, text=page, headers={"content-type": "text/html"}))

    with pytest.raises(UpstreamBadResponseError, match="not valid JSON"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_a_table_whose_results_are_a_list_is_a_bad_response() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW))))

    with pytest.raises(UpstreamBadResponseError, match="quote table"):
        await make(fake).fixings_on(date(2026, 3, 19))


# --- today in Buenos Aires --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "today"),
    [
        ("2026-03-20T01:30:00+00:00", date(2026, 3, 19)),  # 22:30 on the 19th in Buenos Aires
        ("2026-03-20T02:59:59+00:00", date(2026, 3, 19)),
        ("2026-03-20T03:00:00+00:00", date(2026, 3, 20)),
        ("2026-03-20T01:30:00", date(2026, 3, 19)),  # naive is UTC
        ("2026-03-19T23:30:00-03:00", date(2026, 3, 19)),
    ],
)
def test_today_is_the_date_in_buenos_aires(now: str, today: date) -> None:
    assert make(FakeBcra()).today(datetime.fromisoformat(now)) == today


async def test_a_later_date_is_clamped_to_today_in_buenos_aires_near_midnight_utc() -> None:
    fake = FakeBcra(json_answer(series(day("2026-03-19", REF_ROW))))
    client = make(fake, clock=at("2026-03-20T01:30:00+00:00"))

    found = await fixing(client, "REF", "2026-03-20", "2026-03-13")

    assert found == ref_fixing("1395.51420000", date(2026, 3, 19))
    assert fake.requests[0].url.params["fechaHasta"] == "2026-03-19"


# --- errors -----------------------------------------------------------------------------------


def error_body(status: int, message: str) -> httpx2.Response:
    return json_answer(json.dumps({"status": status, "errorMessages": [message]}), status)


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        (
            error_body(400, "La fecha no puede ser mayor al día actual."),
            UpstreamRejectedError,
            "rejected",
        ),
        (error_body(404, "No se encontró la moneda."), UpstreamNotFoundError, "not_found"),
        (error_body(500, "Error interno."), UpstreamUnavailableError, "upstream_error"),
        (
            httpx2.Response(503, text="Service Unavailable"),
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
        await fixing(make(FakeBcra(answer)), "REF", "2026-03-19", "2026-03-12")
    assert raised.value.code == code
    assert raised.value.upstream == "bcra"


async def test_a_rejection_says_what_the_bcra_said() -> None:
    fake = FakeBcra(error_body(400, "La fecha no puede ser mayor al día actual."))

    with pytest.raises(UpstreamRejectedError, match="mayor al día actual"):
        await fixing(make(fake), "REF", "2026-03-19", "2026-03-12")


async def test_a_dropped_connection_is_transient() -> None:
    def drop(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError("Connection reset by peer", request=request)

    with pytest.raises(UpstreamUnavailableError) as raised:
        await fixing(make(drop), "REF", "2026-03-19", "2026-03-12")
    assert raised.value.transient


async def test_a_5xx_is_tried_again_with_a_retry_policy() -> None:
    fake = FakeBcra(
        error_body(500, "Error interno."), json_answer(series(day("2026-03-19", REF_ROW)))
    )
    retries = RetryPolicy(attempts=2, wait_initial_seconds=0.0, wait_max_seconds=0.0)

    # stamina's testing switch (one try by default in tests) allows the policy's two here.
    with stamina.set_testing(True, attempts=2):
        found = await fixing(make(fake, retries=retries), "REF", "2026-03-19", "2026-03-12")

    assert found == ref_fixing("1395.51420000", date(2026, 3, 19))
    assert len(fake.requests) == 2


# --- against the simulator --------------------------------------------------------------------


def on_simulator(
    today: date, clock: Callable[[], datetime]
) -> tuple[BcraClient, httpx2.AsyncClient]:
    app = create_bcra_app(today=lambda: today)
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE_URL)
    return BcraClient(http, clock=clock), http


async def test_over_a_holiday_and_a_weekend_the_simulator_answers_the_last_fixing() -> None:
    client, http = on_simulator(date(2026, 3, 25), LATE_MARCH)
    async with http:
        # Tuesday 24 (holiday), Monday 23 (bridge holiday), Sunday 22, Saturday 21.
        for asked in ("2026-03-24", "2026-03-23", "2026-03-22", "2026-03-21"):
            found = await fixing(client, "REF", asked, "2026-03-14")
            assert found == ref_fixing("1393.43800000", date(2026, 3, 20)), asked
        assert await client.fixings_on(date(2026, 3, 24)) == []
        assert await client.fixings_on(date(2026, 3, 22)) == []


async def test_a_date_after_the_simulators_today_is_clamped_before_it_is_sent() -> None:
    # The simulator refuses a date after its today; the adapter never sends one.
    client, http = on_simulator(date(2026, 3, 19), at("2026-03-20T01:30:00+00:00"))
    async with http:
        found = await fixing(client, "REF", "2026-03-21", "2026-03-14")
    assert found == ref_fixing("1395.51420000", date(2026, 3, 19))


async def test_every_series_the_adapter_offers_is_published_by_the_simulator() -> None:
    client, http = on_simulator(date(2026, 3, 25), LATE_MARCH)
    async with http:
        table = await client.fixings_on(date(2026, 3, 19))
        for code in sorted(SERIES):
            found = await fixing(client, code, "2026-03-19", "2026-03-19")
            assert found is not None, code
            assert found.series == f"BCRA:{SERIES[code].wire}"
    assert {f.series for f in table} == {f"BCRA:{s.wire}" for s in SERIES.values()}
    recorded = {f.series: (f.published, f.unit) for f in table}
    assert recorded["BCRA:REF"] == (Decimal("1395.51420000"), 1)
    assert recorded["BCRA:VND"] == (Decimal("53.04096500"), 1000)
    assert recorded["BCRA:EUR"] == (Decimal("1612.04200000"), 1)
