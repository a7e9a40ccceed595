"""The ECB simulator answers like the ECB Data Portal's SDMX API: csvdata rows, the TARGET
calendar, the last observation on or before endPeriod, and its traps (empty 200, 404
problem+json, 400 HTML, a future endPeriod answering the latest); and EcbClient reads it
in-process over Easter, a weekend and New Year."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox.ecb import DECIMALS, EXR, create_ecb_app, ecb_rate
from app.sandbox.faults import Faults
from app.sandbox.fxmarket import target_day
from app.upstreams.ecb import BASE_URL, EcbClient
from app.upstreams.errors import (
    TransientUpstreamError,
    UpstreamBadResponseError,
    UpstreamNotFoundError,
)

pytestmark = pytest.mark.anyio

HEADER = "KEY,FREQ,CURRENCY,CURRENCY_DENOM,EXR_TYPE,EXR_SUFFIX,TIME_PERIOD,OBS_VALUE"
PATH = "/service/data/EXR/D.{}.EUR.SP00.A"


def fixed(day: date) -> Callable[[], date]:
    return lambda: day


async def get(app: Starlette, path: str, **params: str) -> httpx2.Response:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=BASE_URL
    ) as http:
        return await http.get(path, params={"format": "csvdata", **params})


def rows(response: httpx2.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


@pytest.fixture
def ecb() -> Starlette:
    return create_ecb_app(today=fixed(date(2026, 8, 14)))


# ---------------------------------------------------------------------- answers


async def test_answers_the_last_fixing_on_or_before_end_period_like_the_recorded_one(
    ecb: Starlette,
) -> None:
    response = await get(
        ecb, PATH.format("PLN"), endPeriod="2026-08-08", lastNObservations="1", detail="dataonly"
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    header, line = response.text.splitlines()
    assert header == HEADER
    assert (
        line
        == f"EXR.D.PLN.EUR.SP00.A,D,PLN,EUR,SP00,A,2026-08-07,{ecb_rate('PLN', date(2026, 8, 7))}"
    )


def test_fixings_are_the_real_ones_on_the_recorded_days() -> None:
    assert str(ecb_rate("RON", date(2026, 3, 19))) == "5.0972"
    assert str(ecb_rate("USD", date(2026, 3, 19))) == "1.1489"
    assert str(ecb_rate("PLN", date(2026, 8, 7))) == "4.2983"
    assert str(ecb_rate("GBP", date(2026, 10, 30))) == "0.83380"  # trailing zero kept
    assert str(ecb_rate("ISK", date(2026, 10, 30))) == "136.00"


async def test_each_currency_has_its_fixed_decimals_all_year() -> None:
    app = create_ecb_app(today=fixed(date(2026, 12, 31)))
    response = await get(app, "/service/data/EXR/D.USD+JPY+GBP+HUF+RON.EUR.SP00.A")

    found = rows(response)
    assert {row["CURRENCY"] for row in found} == {"USD", "JPY", "GBP", "HUF", "RON"}
    assert len(found) > 5 * 250
    for row in found:
        whole, _, fraction = row["OBS_VALUE"].partition(".")
        assert whole.isdigit()
        assert len(fraction) == DECIMALS[row["CURRENCY"]]
    assert DECIMALS["USD"] == 4
    assert DECIMALS["JPY"] == 2
    assert DECIMALS["GBP"] == 5
    assert DECIMALS["HUF"] == 2
    assert DECIMALS["RON"] == 4


async def test_series_follow_the_target_calendar() -> None:
    response = await get(
        create_ecb_app(today=fixed(date(2026, 12, 31))),
        PATH.format("USD"),
        startPeriod="2026-01-01",
    )

    days = {date.fromisoformat(row["TIME_PERIOD"]) for row in rows(response)}
    closed = {date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1)}
    closed |= {date(2026, 12, 25), date(2026, 12, 26)}
    assert not days & closed
    assert all(day.weekday() < 5 for day in days)
    assert date(2026, 4, 10) in days  # the Orthodox Good Friday is a TARGET day
    assert days == {
        d for d in (date(2026, 1, 1) + timedelta(n) for n in range(365)) if target_day(d)
    }


async def test_last_n_observations_are_ascending(ecb: Starlette) -> None:
    response = await get(ecb, PATH.format("USD"), endPeriod="2026-08-14", lastNObservations="3")
    assert [row["TIME_PERIOD"] for row in rows(response)] == [
        "2026-08-12",
        "2026-08-13",
        "2026-08-14",
    ]


async def test_a_future_end_period_silently_answers_the_latest_fixing(ecb: Starlette) -> None:
    response = await get(ecb, PATH.format("USD"), endPeriod="2027-06-30", lastNObservations="1")

    assert response.status_code == 200
    assert [row["TIME_PERIOD"] for row in rows(response)] == ["2026-08-14"]


# ---------------------------------------------------------------------- traps


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-04-03", "2026-04-06"),  # Good Friday to Easter Monday
        ("2026-08-08", "2026-08-09"),  # a weekend
        ("2025-01-01", "2025-01-31"),  # before the simulator's year
    ],
)
async def test_no_data_is_200_with_a_zero_byte_body(ecb: Starlette, start: str, end: str) -> None:
    response = await get(ecb, PATH.format("USD"), startPeriod=start, endPeriod=end)

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


@pytest.mark.parametrize("currency", ["ARS", "EUR", "BGN", "XAU"])
async def test_a_series_that_does_not_exist_is_404_problem_json(
    ecb: Starlette, currency: str
) -> None:
    response = await get(ecb, PATH.format(currency), lastNObservations="1")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/service/data/EXR/D.USD.EUR.SP00", {}),  # four dimensions
        ("/service/data/EXR/D.usd.EUR.SP00.A", {}),
        (PATH.format("USD"), {"endPeriod": "08/08/2026"}),
        (PATH.format("USD"), {"startPeriod": "2026-02-30"}),
        (PATH.format("USD"), {"lastNObservations": "0"}),
        (PATH.format("USD"), {"lastNObservations": "one"}),
    ],
)
async def test_a_malformed_request_is_400_with_an_html_page(
    ecb: Starlette, path: str, params: dict[str, str]
) -> None:
    response = await get(ecb, path, **params)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert len(response.content) > 10_000


async def test_include_history_adds_the_phantom_row(ecb: Starlette) -> None:
    response = await get(
        ecb,
        PATH.format("USD"),
        endPeriod="2026-08-14",
        lastNObservations="1",
        includeHistory="true",
    )

    found = rows(response)
    assert len(found) == 2
    assert found[0]["TIME_PERIOD"] == "2026-08-14"
    assert found[1]["OBS_VALUE"] == ""


async def test_another_format_is_not_acceptable(ecb: Starlette) -> None:
    assert (await get(ecb, PATH.format("USD"), format="jsondata")).status_code == 406


async def test_faults_switch_and_count(ecb: Starlette) -> None:
    ecb.state.faults.replace(Faults(mode="error", remaining=1))
    failed = await get(ecb, PATH.format("USD"))
    served = await get(ecb, PATH.format("USD"))
    assert (failed.status_code, served.status_code) == (500, 200)
    assert ecb.state.calls[EXR] == 2


# ---------------------------------------------------------------------- the adapter against it


def adapter(app: Starlette, today: date) -> tuple[EcbClient, httpx2.AsyncClient]:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE_URL)
    noon = datetime(today.year, today.month, today.day, 10, tzinfo=UTC)
    return EcbClient(http, clock=lambda: noon), http


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        (date(2026, 4, 3), date(2026, 4, 2)),  # Good Friday
        (date(2026, 4, 6), date(2026, 4, 2)),  # Easter Monday
        (date(2026, 8, 9), date(2026, 8, 7)),  # a Sunday
        (date(2026, 1, 1), date(2025, 12, 31)),  # New Year's Day, across the year
        (date(2025, 12, 28), date(2025, 12, 24)),  # Christmas and a weekend
        (date(2026, 3, 19), date(2026, 3, 19)),
    ],
)
async def test_adapter_reads_the_fixing_in_force_over_closing_days(asked: date, used: date) -> None:
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    ecb, http = adapter(app, date(2026, 8, 14))
    async with http:
        fixing = await ecb.fixing("RON", on_or_before=asked, not_before=asked - timedelta(days=7))

    assert fixing is not None
    assert fixing.rate_date == used
    assert fixing.published == ecb_rate("RON", used)
    assert app.state.calls[EXR] == 1


async def test_adapter_clamps_a_future_day_to_today() -> None:
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    ecb, http = adapter(app, date(2026, 8, 14))
    async with http:
        fixing = await ecb.fixing(
            "USD", on_or_before=date(2026, 12, 1), not_before=date(2026, 8, 7)
        )

    assert fixing is not None
    assert fixing.rate_date == date(2026, 8, 14)


async def test_adapter_refuses_the_stale_fixing_answered_past_the_data() -> None:
    # The ECB has published nothing since the 14th; asked for the 30th, the API answers
    # the 14th with status 200, which is older than the window.
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    ecb, http = adapter(app, date(2026, 9, 30))
    async with http:
        fixing = await ecb.fixing(
            "USD", on_or_before=date(2026, 9, 30), not_before=date(2026, 9, 23)
        )

    assert fixing is None
    assert app.state.calls[EXR] == 1


async def test_adapter_before_the_data_is_none() -> None:
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    ecb, http = adapter(app, date(2026, 8, 14))
    async with http:
        fixing = await ecb.fixing(
            "USD", on_or_before=date(2025, 1, 10), not_before=date(2025, 1, 3)
        )
    assert fixing is None


async def test_adapter_sees_an_unsupported_currency_as_not_found() -> None:
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    ecb, http = adapter(app, date(2026, 8, 14))
    async with http:
        with pytest.raises(UpstreamNotFoundError):
            await ecb.fixing("ARS", on_or_before=date(2026, 8, 14), not_before=date(2026, 8, 7))


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("error", TransientUpstreamError),
        ("html", TransientUpstreamError),
        ("rate_limited", TransientUpstreamError),
        ("truncated", UpstreamBadResponseError),
    ],
)
async def test_adapter_maps_the_simulators_faults(mode: str, error: type[Exception]) -> None:
    app = create_ecb_app(today=fixed(date(2026, 8, 14)))
    app.state.faults.mode = mode
    ecb, http = adapter(app, date(2026, 8, 14))
    async with http:
        with pytest.raises(error):
            await ecb.fixing("USD", on_or_before=date(2026, 8, 14), not_before=date(2026, 8, 7))


def test_ecb_and_bnr_agree_on_eur_ron_within_a_tenth_of_a_percent_on_the_recorded_day() -> None:
    from app.sandbox.bnr import bnr_rate

    ecb, bnr = ecb_rate("RON", date(2026, 8, 19)), bnr_rate("EUR", date(2026, 8, 19))
    assert ecb == Decimal("5.2464")
    assert abs(bnr - ecb) / ecb < Decimal("0.001")
