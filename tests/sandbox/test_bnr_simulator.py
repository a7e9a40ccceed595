"""The BNR simulator serves curs.bnr.ro's files as recorded: namespace, currencies,
multipliers, 4 decimals, the Romanian banking calendar, the old host's HTML; and
BnrClient reads it in-process over holidays, weekends and New Year."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox.bnr import CURRENCIES, LATEST, TEN_DAYS_FILE, YEAR_FILE, bnr_rate, create_bnr_app
from app.sandbox.ecb import ecb_rate
from app.sandbox.faults import Faults
from app.sandbox.fxmarket import romanian_banking_day
from app.upstreams.bnr import BASE_URL, BnrClient
from app.upstreams.errors import TransientUpstreamError, UpstreamBadResponseError

pytestmark = pytest.mark.anyio

NEW_ROOT = (
    '<?xml version="1.0" encoding="utf-8"?>\n<DataSet xmlns="https://www.bnr.ro/xsd" '
    'xmlns:xsi="https://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="https://curs.bnr.ro/xsd/nbrfxrates.xsd"><Header>'
)
OLD_ROOT = (
    '<?xml version="1.0" encoding="utf-8"?><DataSet xmlns="http://www.bnr.ro/xsd" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="http://www.bnr.ro/xsd nbrfxrates.xsd"><Header>'
)
RATE = re.compile(r'<Rate currency="([A-Z]{3})"( multiplier="(\d+)")?>([^<]*)</Rate>')
CUBE_DATE = re.compile(r'<Cube date="([0-9-]+)">')


def fixed(day: date) -> Callable[[], date]:
    return lambda: day


def simulator(today: date, *, legacy_namespace: bool = False) -> Starlette:
    return create_bnr_app(today=fixed(today), legacy_namespace=legacy_namespace)


async def get(app: Starlette, path: str) -> httpx2.Response:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=BASE_URL
    ) as http:
        return await http.get(path)


@pytest.fixture
async def april() -> AsyncIterator[tuple[Starlette, BnrClient]]:
    """The simulator and an adapter both on Monday 2026-04-20, a week after Orthodox Easter."""
    async with connected(date(2026, 4, 20)) as pair:
        yield pair


@asynccontextmanager
async def connected(today: date) -> AsyncIterator[tuple[Starlette, BnrClient]]:
    """A simulator on `today` and an adapter whose clock says noon that day, in-process."""
    app = simulator(today)
    noon = datetime(today.year, today.month, today.day, 10, tzinfo=UTC)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=BASE_URL
    ) as http:
        yield app, BnrClient(http, clock=lambda: noon)


# ---------------------------------------------------------------------- the files' form


async def test_latest_file_is_as_recorded_on_the_new_host() -> None:
    response = await get(simulator(date(2026, 8, 28)), "/nbrfxrates.xml")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.startswith(NEW_ROOT)
    assert "<PublishingDate>2026-08-28</PublishingDate><MessageType>DR</MessageType>" in (
        response.text
    )
    assert "<OrigCurrency>RON</OrigCurrency>" in response.text
    assert CUBE_DATE.findall(response.text) == ["2026-08-28"]


async def test_legacy_namespace_switch_serves_the_old_root() -> None:
    response = await get(simulator(date(2026, 8, 28), legacy_namespace=True), "/nbrfxrates.xml")
    assert response.text.startswith(OLD_ROOT)


async def test_37_currencies_in_order_multiplier_100_on_five_and_always_4_decimals() -> None:
    response = await get(simulator(date(2026, 8, 28)), "/files/xml/years/nbrfxrates2026.xml")

    cubes = response.text.split("<Cube ")[1:]
    assert len(cubes) > 150
    for cube in cubes:
        rates = RATE.findall(cube)
        assert [code for code, *_ in rates] == sorted(CURRENCIES)
        assert len(rates) == 37
        assert {code for code, _, multiplier, _ in rates if multiplier} == {
            "HUF",
            "IDR",
            "ISK",
            "JPY",
            "KRW",
        }
        assert {multiplier for _, _, multiplier, _ in rates if multiplier} == {"100"}
        assert all(re.fullmatch(r"[0-9]+\.[0-9]{4}", value) for *_, value in rates)
    assert "ARS" not in response.text
    assert "BGN" not in response.text


async def test_ten_day_file_holds_the_last_ten_banking_days_ascending() -> None:
    response = await get(simulator(date(2026, 4, 20)), "/nbrfxrates10days.xml")

    days = [date.fromisoformat(d) for d in CUBE_DATE.findall(response.text)]
    # 10 Apr is the Orthodox Good Friday and 13 Apr its Easter Monday; 6 Apr (the Western
    # Easter Monday) is a Romanian banking day.
    assert days == [
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 4, 7),
        date(2026, 4, 8),
        date(2026, 4, 9),
        date(2026, 4, 14),
        date(2026, 4, 15),
        date(2026, 4, 16),
        date(2026, 4, 17),
        date(2026, 4, 20),
    ]


async def test_yearly_file_follows_the_romanian_calendar() -> None:
    response = await get(simulator(date(2026, 12, 31)), "/files/xml/years/nbrfxrates2026.xml")

    days = {date.fromisoformat(d) for d in CUBE_DATE.findall(response.text)}
    # The recorded jump: 5 Jan, then 8 Jan (6 and 7 Jan are holidays; 1-2 Jan too).
    assert sorted(d for d in days if d.month == 1)[:2] == [date(2026, 1, 5), date(2026, 1, 8)]
    for holiday in (date(2026, 1, 1), date(2026, 1, 2), date(2026, 4, 10), date(2026, 4, 13)):
        assert holiday not in days
    assert all(d.weekday() < 5 for d in days)
    assert date(2026, 4, 3) in days  # the Western Good Friday is a Romanian banking day


async def test_yearly_files_exist_only_for_the_years_of_the_window() -> None:
    app = simulator(date(2026, 3, 1))
    assert (await get(app, "/files/xml/years/nbrfxrates2025.xml")).status_code == 200
    assert (await get(app, "/files/xml/years/nbrfxrates2026.xml")).status_code == 200
    missing = await get(app, "/files/xml/years/nbrfxrates2024.xml")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert (await get(app, "/files/xml/years/nbrfxrates2027.xml")).status_code == 404


async def test_a_weekend_keeps_fridays_fixing_in_the_latest_file() -> None:
    response = await get(simulator(date(2026, 8, 30)), "/nbrfxrates.xml")  # a Sunday
    assert CUBE_DATE.findall(response.text) == ["2026-08-28"]


async def test_a_days_cube_is_the_same_whichever_today_serves_it() -> None:
    early = await get(simulator(date(2026, 3, 20)), "/files/xml/years/nbrfxrates2026.xml")
    late = await get(simulator(date(2026, 9, 1)), "/files/xml/years/nbrfxrates2026.xml")
    cube = re.compile(r'<Cube date="2026-03-19">.*?</Cube>')
    found_early, found_late = cube.search(early.text), cube.search(late.text)
    assert found_early is not None
    assert found_late is not None
    assert found_early.group() == found_late.group()


def test_bnr_eur_stays_within_a_tenth_of_a_percent_of_the_ecbs_eur_ron() -> None:
    day = date(2025, 12, 1)
    checked = 0
    while day <= date(2026, 12, 31):
        if romanian_banking_day(day):
            bnr, ecb = bnr_rate("EUR", day), ecb_rate("RON", day)
            assert abs(bnr - ecb) / ecb < Decimal("0.001"), day
            checked += 1
        day += timedelta(days=1)
    assert checked > 250


def test_plausible_values_around_the_recorded_ones() -> None:
    # Real 2026-08-19: EUR 5.2452, USD 4.5190; 2026-08-28: HUF 1.4430 per 100, AED 1.2299.
    assert abs(bnr_rate("EUR", date(2026, 8, 19)) - Decimal("5.2452")) < Decimal("0.01")
    assert abs(bnr_rate("USD", date(2026, 8, 19)) - Decimal("4.5190")) < Decimal("0.05")
    assert Decimal("1.3") < bnr_rate("HUF", date(2026, 8, 28)) < Decimal("1.6")
    assert abs(bnr_rate("AED", date(2026, 8, 28)) - Decimal("1.2299")) < Decimal("0.05")


# ---------------------------------------------------------------------- faults


async def test_old_host_fault_answers_the_homepage_with_200_and_redirects_yearly_files() -> None:
    app = create_bnr_app(Faults(mode="old_host_html"), today=fixed(date(2026, 8, 28)))

    latest = await get(app, "/nbrfxrates.xml")
    yearly = await get(app, "/files/xml/years/nbrfxrates2026.xml")

    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("text/html")
    assert "<html" in latest.text
    assert yearly.status_code == 302
    assert yearly.headers["location"].startswith("https://www.bnr.ro/")


async def test_faults_switch_over_the_control_route_and_count_down() -> None:
    app = simulator(date(2026, 8, 28))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=BASE_URL
    ) as http:
        switched = await http.put("/_sandbox/faults", json={"mode": "error", "remaining": 1})
        failed = await http.get("/nbrfxrates.xml")
        served = await http.get("/nbrfxrates.xml")

    assert switched.json()["mode"] == "error"
    assert failed.status_code == 500
    assert served.status_code == 200
    assert app.state.calls[LATEST] == 2


# ---------------------------------------------------------------------- the adapter against it


async def test_adapter_over_epiphany_reads_the_fixing_of_5_january() -> None:
    async with connected(date(2026, 1, 20)) as (app, bnr):
        fixing = await bnr.fixing(
            "EUR", on_or_before=date(2026, 1, 7), not_before=date(2025, 12, 31)
        )

    assert fixing is not None
    assert fixing.rate_date == date(2026, 1, 5)
    assert fixing.published == bnr_rate("EUR", date(2026, 1, 5))
    assert dict(app.state.calls) == {YEAR_FILE: 1}


async def test_adapter_over_orthodox_easter_reads_thursdays_fixing_from_the_ten_day_file(
    april: tuple[Starlette, BnrClient],
) -> None:
    app, bnr = april

    monday = await bnr.fixing("HUF", on_or_before=date(2026, 4, 13), not_before=date(2026, 4, 6))

    assert monday is not None
    assert (monday.rate_date, monday.unit) == (date(2026, 4, 9), 100)
    assert monday.published == bnr_rate("HUF", date(2026, 4, 9))
    assert dict(app.state.calls) == {TEN_DAYS_FILE: 1}


async def test_adapter_on_a_sunday_reads_fridays_fixing_from_the_latest_file() -> None:
    async with connected(date(2026, 8, 30)) as (app, bnr):
        fixing = await bnr.fixing(
            "USD", on_or_before=date(2026, 8, 30), not_before=date(2026, 8, 23)
        )

    assert fixing is not None
    assert fixing.rate_date == date(2026, 8, 28)
    assert dict(app.state.calls) == {LATEST: 1}


async def test_adapter_across_new_year_reads_both_yearly_files() -> None:
    async with connected(date(2026, 3, 2)) as (app, bnr):
        fixing = await bnr.fixing(
            "EUR", on_or_before=date(2026, 1, 2), not_before=date(2025, 12, 26)
        )

    assert fixing is not None
    assert fixing.rate_date == date(2025, 12, 31)
    assert app.state.calls[YEAR_FILE] == 2


async def test_adapter_across_new_year_early_in_january_needs_only_the_ten_day_file() -> None:
    async with connected(date(2026, 1, 5)) as (app, bnr):
        fixing = await bnr.fixing(
            "EUR", on_or_before=date(2026, 1, 2), not_before=date(2025, 12, 26)
        )

    assert fixing is not None
    assert fixing.rate_date == date(2025, 12, 31)
    assert dict(app.state.calls) == {TEN_DAYS_FILE: 1}


async def test_adapter_reads_the_legacy_namespace_from_the_simulator_too() -> None:
    async with connected(date(2026, 8, 28)) as (app, bnr):
        app.state.legacy_namespace = True
        fixing = await bnr.fixing(
            "JPY", on_or_before=date(2026, 8, 28), not_before=date(2026, 8, 28)
        )

    assert fixing is not None
    assert fixing.unit == 100


@pytest.mark.parametrize("mode", ["old_host_html", "truncated"])
async def test_adapter_refuses_the_old_hosts_pages_and_cut_files(mode: str) -> None:
    async with connected(date(2026, 8, 28)) as (app, bnr):
        app.state.faults.mode = mode
        with pytest.raises(UpstreamBadResponseError):
            await bnr.fixing("EUR", on_or_before=date(2026, 8, 28), not_before=date(2026, 8, 21))
        with pytest.raises(UpstreamBadResponseError):  # a yearly file: redirected or cut
            await bnr.fixing("EUR", on_or_before=date(2026, 3, 2), not_before=date(2026, 2, 23))


@pytest.mark.parametrize("mode", ["error", "html", "rate_limited"])
async def test_adapter_sees_the_simulators_outages_as_transient(mode: str) -> None:
    async with connected(date(2026, 8, 28)) as (app, bnr):
        app.state.faults.mode = mode
        with pytest.raises(TransientUpstreamError):
            await bnr.fixing("EUR", on_or_before=date(2026, 8, 28), not_before=date(2026, 8, 21))
