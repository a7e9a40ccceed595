"""EcbClient against a fake ECB Data Portal at the transport: the recorded csvdata answer,
the exact query, and the API's traps (empty 200, 404 problem+json, 400 HTML, a future
endPeriod answering an old fixing)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest

from app.upstreams.ecb import BASE_URL, EcbClient
from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamNotFoundError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from app.upstreams.fixings import Fixing, RateSource

pytestmark = pytest.mark.anyio

PLN_SAMPLE = (Path(__file__).parent / "samples" / "ecb_pln_endperiod_2026-08-08.csv").read_bytes()
CSV = {"content-type": "text/csv"}
HEADER = "KEY,FREQ,CURRENCY,CURRENCY_DENOM,EXR_TYPE,EXR_SUFFIX,TIME_PERIOD,OBS_VALUE\n"


def row(code: str, day: str, value: str) -> str:
    return f"EXR.D.{code}.EUR.SP00.A,D,{code},EUR,SP00,A,{day},{value}\n"


class FakeEcb:
    """Answers every request with one response; keeps the requests."""

    def __init__(
        self, status: int = 200, content: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.content = content
        self.headers = CSV if headers is None else headers
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        return httpx2.Response(self.status, content=self.content, headers=self.headers)


def at(moment: str) -> Callable[[], datetime]:
    instant = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return lambda: instant


def client(fake: FakeEcb, now: str = "2026-08-14T12:00:00") -> EcbClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(fake), base_url=BASE_URL)
    return EcbClient(http, clock=at(now))


async def ask(
    fake: FakeEcb,
    code: str = "PLN",
    day: date = date(2026, 8, 8),
    *,
    not_before: date = date(2026, 8, 1),
    now: str = "2026-08-14T12:00:00",
) -> Fixing | None:
    return await client(fake, now).fixing(code, on_or_before=day, not_before=not_before)


# ---------------------------------------------------------------------- the recorded answer


async def test_reads_the_recorded_pln_answer_to_an_exact_fixing() -> None:
    fake = FakeEcb(content=PLN_SAMPLE)

    fixing = await ask(fake)

    assert fixing == Fixing(
        source="ecb",
        series="ECB:PLN",
        base="EUR",
        quote="PLN",
        published=Decimal("4.2983"),
        unit=1,
        rate_date=date(2026, 8, 7),  # Saturday the 8th asked: Friday's fixing
    )


async def test_sends_the_documented_query_for_the_day_asked_and_never_include_history() -> None:
    fake = FakeEcb(content=PLN_SAMPLE)

    await ask(fake)

    (request,) = fake.requests
    assert request.url.path == "/service/data/EXR/D.PLN.EUR.SP00.A"
    assert dict(request.url.params) == {
        "endPeriod": "2026-08-08",
        "lastNObservations": "1",
        "format": "csvdata",
        "detail": "dataonly",
    }
    assert "csv" in request.headers["accept"]


async def test_keeps_the_decimal_string_exactly_with_trailing_zeros() -> None:
    fake = FakeEcb(content=(HEADER + row("GBP", "2026-10-30", "0.83380")).encode())

    fixing = await ask(
        fake, "GBP", date(2026, 10, 30), not_before=date(2026, 10, 23), now="2026-11-02T12:00:00"
    )

    assert fixing is not None
    assert str(fixing.published) == "0.83380"


async def test_reads_columns_by_name_whatever_their_order_and_number() -> None:
    full = (
        "TIME_PERIOD,OBS_VALUE,OBS_STATUS,KEY,CURRENCY,CURRENCY_DENOM,TITLE\n"
        '2026-08-07,4.2983,A,EXR.D.PLN.EUR.SP00.A,PLN,EUR,"Polish zloty/Euro, 2:15 pm"\n'
    )
    fixing = await ask(FakeEcb(content=full.encode()))
    assert fixing is not None
    assert (fixing.published, fixing.rate_date) == (
        Decimal("4.2983"),
        date(2026, 8, 7),
    )


def test_is_a_rate_source_quoting_29_currencies_without_ars_or_eur() -> None:
    ecb: RateSource = EcbClient(httpx2.AsyncClient())
    assert ecb.source == "ecb"
    assert len(ecb.series()) == 29
    assert {"USD", "RON", "HUF", "JPY", "GBP"} <= ecb.series()
    assert not {"ARS", "EUR", "BGN"} & ecb.series()


@pytest.mark.parametrize(
    ("now", "today"),
    [
        (datetime(2026, 8, 14, 21, 59, tzinfo=UTC), date(2026, 8, 14)),  # 23:59 CEST
        (datetime(2026, 8, 14, 22, 0, tzinfo=UTC), date(2026, 8, 15)),
        (datetime(2026, 12, 31, 23, 0), date(2027, 1, 1)),  # naive is UTC; 00:00 CET
    ],
)
def test_today_is_the_date_in_frankfurt(now: datetime, today: date) -> None:
    assert EcbClient(httpx2.AsyncClient()).today(now) == today


# ---------------------------------------------------------------------- traps


async def test_a_zero_byte_200_means_no_data() -> None:
    assert await ask(FakeEcb(content=b"")) is None


async def test_a_future_day_is_clamped_to_today_in_frankfurt() -> None:
    fake = FakeEcb(content=(HEADER + row("USD", "2026-08-14", "1.1600")).encode())

    # 22:30 UTC on the 14th is already the 15th in Frankfurt.
    fixing = await ask(
        fake, "USD", date(2026, 9, 30), not_before=date(2026, 8, 8), now="2026-08-14T22:30:00"
    )

    assert fake.requests[0].url.params["endPeriod"] == "2026-08-15"
    assert fixing is not None
    assert fixing.rate_date == date(2026, 8, 14)


async def test_an_old_fixing_answered_for_a_later_day_is_none_past_not_before() -> None:
    # The API answers the latest observation it has, however old, with status 200.
    fake = FakeEcb(content=(HEADER + row("USD", "2026-07-31", "1.1500")).encode())

    fixing = await ask(fake, "USD", date(2026, 8, 14), not_before=date(2026, 8, 7))

    assert fixing is None


async def test_a_window_entirely_after_today_asks_nothing() -> None:
    fake = FakeEcb(content=PLN_SAMPLE)

    fixing = await ask(fake, day=date(2026, 9, 30), not_before=date(2026, 9, 1))

    assert fixing is None
    assert fake.requests == []


async def test_an_unknown_series_404_is_not_found_and_not_transient() -> None:
    problem = b'{"title": "No results found", "status": 404}'
    fake = FakeEcb(404, problem, {"content-type": "application/problem+json"})

    with pytest.raises(UpstreamNotFoundError) as caught:
        await ask(fake, "ARS")

    assert not caught.value.transient
    assert "No results found" in caught.value.message


async def test_a_400_html_page_is_a_rejected_request() -> None:
    fake = FakeEcb(
        400, b"<!DOCTYPE html><html>" + b" " * 12_000 + b"</html>", {"content-type": "text/html"}
    )
    with pytest.raises(UpstreamRejectedError) as caught:
        await ask(fake)
    assert caught.value.code == "rejected"


async def test_a_server_error_is_transient() -> None:
    fake = FakeEcb(503, b"<html>down</html>", {"content-type": "text/html"})
    with pytest.raises(UpstreamUnavailableError):
        await ask(fake)


@pytest.mark.parametrize("code", ["EUR", "usd", "USD+RON", "", "US", "D..EUR"])
async def test_eur_and_codes_that_would_change_the_key_are_a_callers_bug(code: str) -> None:
    fake = FakeEcb(content=PLN_SAMPLE)
    with pytest.raises(ValueError, match=r"EUR|currency code"):
        await ask(fake, code)
    assert fake.requests == []


async def test_an_html_page_with_status_200_is_a_bad_response() -> None:
    fake = FakeEcb(
        content=b"<html><body>Maintenance</body></html>", headers={"content-type": "text/html"}
    )
    with pytest.raises(UpstreamBadResponseError):
        await ask(fake)


async def test_an_html_page_labelled_csv_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponseError):
        await ask(FakeEcb(content=b"<!DOCTYPE html><html></html>"))


async def test_csv_without_the_value_columns_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponseError, match="OBS_VALUE"):
        await ask(FakeEcb(content=b"KEY,TIME_PERIOD\nEXR.D.PLN.EUR.SP00.A,2026-08-07\n"))


@pytest.mark.parametrize("value", ["0", "-4.2983", "NaN", "4,2983", "Infinity", "\u0664.2983"])
async def test_a_value_that_is_not_a_positive_ascii_decimal_is_a_bad_response(value: str) -> None:
    with pytest.raises(UpstreamBadResponseError):
        await ask(FakeEcb(content=(HEADER + row("PLN", "2026-08-07", value)).encode()))


async def test_a_fixing_dated_after_the_day_asked_is_a_bad_response() -> None:
    content = (HEADER + row("PLN", "2026-08-10", "4.2983")).encode()
    with pytest.raises(UpstreamBadResponseError, match="after"):
        await ask(FakeEcb(content=content))


async def test_another_series_than_the_one_asked_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponseError, match="answered"):
        await ask(FakeEcb(content=(HEADER + row("HUF", "2026-08-07", "390.10")).encode()))


async def test_one_date_twice_with_different_values_is_a_bad_response() -> None:
    content = HEADER + row("PLN", "2026-08-07", "4.2983") + row("PLN", "2026-08-07", "4.3000")
    with pytest.raises(UpstreamBadResponseError, match="twice"):
        await ask(FakeEcb(content=content.encode()))


async def test_the_phantom_row_of_include_history_is_skipped() -> None:
    content = HEADER + row("PLN", "2026-08-07", "4.2983") + row("PLN", "2025-07-07", "")
    fixing = await ask(FakeEcb(content=content.encode()))
    assert fixing is not None
    assert fixing.rate_date == date(2026, 8, 7)


async def test_an_unreadable_date_is_a_bad_response() -> None:
    with pytest.raises(UpstreamBadResponseError):
        await ask(FakeEcb(content=(HEADER + row("PLN", "07/08/2026", "4.2983")).encode()))
