"""BnrClient against a fake curs.bnr.ro at the transport: the recorded files in both
namespaces, which file is read for which day, and every kind of nonsense refused."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx2
import pytest
import stamina

from app.upstreams.bnr import BASE_URL, BnrClient
from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamNotFoundError,
    UpstreamUnavailableError,
)
from app.upstreams.fixings import Fixing, RateSource
from app.upstreams.http import RetryPolicy

pytestmark = pytest.mark.anyio

SAMPLES = Path(__file__).parent / "samples"
NEW_NAMESPACE = (SAMPLES / "bnr_nbrfxrates_2026-08-28.xml").read_bytes()
OLD_NAMESPACE = (SAMPLES / "bnr_nbrfxrates_2023-05-18_old_namespace.xml").read_bytes()

XML = {"content-type": "text/xml"}
Answer = tuple[int, bytes, Mapping[str, str]]


def at(moment: str) -> Callable[[], datetime]:
    instant = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return lambda: instant


def dataset(*cubes: tuple[str, str], origin: str = "RON") -> bytes:
    """A BNR file in the new namespace with the given (date, rates XML) Cubes."""
    body = "".join(f'<Cube date="{day}">{rates}</Cube>' for day, rates in cubes)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<DataSet xmlns="https://www.bnr.ro/xsd">'
        "<Header><Publisher>National Bank of Romania</Publisher></Header><Body>"
        f"<Subject>Reference rates</Subject><OrigCurrency>{origin}</OrigCurrency>{body}"
        "</Body></DataSet>"
    ).encode()


def eur(value: str) -> str:
    return f'<Rate currency="EUR">{value}</Rate>'


class FakeBnr:
    """Answers each path from a table; any other path is a 404 page. Keeps the requests."""

    def __init__(self, files: Mapping[str, Answer | bytes]) -> None:
        self.files = files
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        answer = self.files.get(request.url.path)
        if answer is None:
            return httpx2.Response(404, content=b"<html>not found</html>")
        if isinstance(answer, bytes):
            return httpx2.Response(200, content=answer, headers=XML)
        status, content, headers = answer
        return httpx2.Response(status, content=content, headers=dict(headers))

    @property
    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


def client(fake: FakeBnr, now: str) -> BnrClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(fake), base_url=BASE_URL)
    return BnrClient(http, clock=at(now))


async def ask(
    fake: FakeBnr, code: str, day: date, *, now: str, not_before: date | None = None
) -> Fixing | None:
    return await client(fake, now).fixing(
        code, on_or_before=day, not_before=not_before or date(day.year - 1, 12, 1)
    )


# ---------------------------------------------------------------------- the recorded files


@pytest.mark.parametrize(
    ("code", "published", "unit"),
    [("HUF", "1.4430", 100), ("EUR", "5.2584", 1), ("USD", "4.5171", 1), ("AED", "1.2299", 1)],
)
async def test_reads_the_new_namespace_file_to_exact_fixings(
    code: str, published: str, unit: int
) -> None:
    fake = FakeBnr({"/nbrfxrates.xml": NEW_NAMESPACE})

    fixing = await ask(fake, code, date(2026, 8, 28), now="2026-08-28T12:00:00")

    assert fixing == Fixing(
        source="bnr",
        series=f"BNR:{code}",
        base=code,
        quote="RON",
        published=Decimal(published),
        unit=unit,
        rate_date=date(2026, 8, 28),
    )
    assert str(fixing.published) == published  # trailing zeros as written


async def test_reads_the_old_namespace_file_alike() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": OLD_NAMESPACE})

    huf = await ask(fake, "HUF", date(2023, 5, 18), now="2023-05-18T12:00:00")
    eur_fixing = await ask(fake, "EUR", date(2023, 5, 18), now="2023-05-18T12:00:00")

    assert huf is not None
    assert (huf.published, huf.unit) == (Decimal("1.3335"), 100)
    assert eur_fixing is not None
    assert (eur_fixing.published, eur_fixing.unit) == (
        Decimal("4.9731"),
        1,
    )


async def test_asks_for_xml_on_the_latest_file_for_today() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": NEW_NAMESPACE})

    await ask(fake, "EUR", date(2026, 8, 28), now="2026-08-28T12:00:00")

    assert fake.paths == ["/nbrfxrates.xml"]
    assert "xml" in fake.requests[0].headers["accept"]


def test_is_a_rate_source_quoting_37_currencies_without_ars() -> None:
    bnr: RateSource = BnrClient(httpx2.AsyncClient())
    assert bnr.source == "bnr"
    assert len(bnr.series()) == 37
    assert {"EUR", "USD", "HUF", "XAU", "XDR"} <= bnr.series()
    assert "ARS" not in bnr.series()
    assert "BGN" not in bnr.series()


@pytest.mark.parametrize(
    ("now", "today"),
    [
        (datetime(2026, 8, 28, 21, 59, tzinfo=UTC), date(2026, 8, 29)),  # 00:59 EEST
        (datetime(2026, 12, 31, 21, 59, tzinfo=UTC), date(2026, 12, 31)),  # 23:59 EET
        (datetime(2026, 12, 31, 22, 0), date(2027, 1, 1)),  # naive is UTC
    ],
)
def test_today_is_the_date_in_bucharest(now: datetime, today: date) -> None:
    assert BnrClient(httpx2.AsyncClient()).today(now) == today


# ---------------------------------------------------------------------- which file, which day


async def test_a_day_in_the_future_is_clamped_to_today_and_read_from_the_latest_file() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": dataset(("2026-08-28", eur("5.2584")))})

    fixing = await ask(  # on a Saturday
        fake, "EUR", date(2099, 1, 1), not_before=date(2026, 8, 22), now="2026-08-29T09:00:00"
    )

    assert fixing is not None
    assert fixing.rate_date == date(2026, 8, 28)
    assert fake.paths == ["/nbrfxrates.xml"]


async def test_a_recent_day_is_read_from_the_ten_day_file_in_force_on_rule() -> None:
    ten_days = dataset(
        ("2026-08-20", eur("5.2500")),
        ("2026-08-21", eur("5.2510")),
        ("2026-08-24", eur("5.2520")),
        ("2026-08-25", eur("5.2530")),
    )
    fake = FakeBnr({"/nbrfxrates10days.xml": ten_days})

    # Sunday the 23rd: Friday's fixing is the one in force.
    fixing = await ask(fake, "EUR", date(2026, 8, 23), now="2026-08-25T12:00:00")

    assert fixing is not None
    assert (fixing.rate_date, fixing.published) == (date(2026, 8, 21), Decimal("5.2510"))
    assert fake.paths == ["/nbrfxrates10days.xml"]


async def test_an_older_day_is_read_from_its_yearly_file_alone() -> None:
    year = dataset(("2026-03-18", eur("5.0950")), ("2026-03-19", eur("5.0972")))
    fake = FakeBnr({"/files/xml/years/nbrfxrates2026.xml": year})

    fixing = await ask(fake, "EUR", date(2026, 3, 19), now="2026-08-25T12:00:00")

    assert fixing is not None
    assert fixing.published == Decimal("5.0972")
    assert fake.paths == ["/files/xml/years/nbrfxrates2026.xml"]


async def test_a_window_across_new_year_reads_the_previous_years_file_when_needed() -> None:
    fake = FakeBnr(
        {
            "/files/xml/years/nbrfxrates2026.xml": dataset(("2026-01-05", eur("5.0905"))),
            "/files/xml/years/nbrfxrates2025.xml": dataset(
                ("2025-12-30", eur("5.0900")), ("2025-12-31", eur("5.0910"))
            ),
        }
    )

    fixing = await ask(
        fake, "EUR", date(2026, 1, 2), not_before=date(2025, 12, 26), now="2026-03-01T12:00:00"
    )

    assert fixing is not None
    assert (fixing.rate_date, fixing.published) == (date(2025, 12, 31), Decimal("5.0910"))
    assert fake.paths == [
        "/files/xml/years/nbrfxrates2026.xml",
        "/files/xml/years/nbrfxrates2025.xml",
    ]


async def test_a_window_within_the_year_never_reads_the_previous_year() -> None:
    fake = FakeBnr({"/files/xml/years/nbrfxrates2026.xml": dataset(("2026-01-08", eur("5.09")))})

    fixing = await ask(
        fake, "EUR", date(2026, 1, 7), not_before=date(2026, 1, 1), now="2026-03-01T12:00:00"
    )

    assert fixing is None
    assert fake.paths == ["/files/xml/years/nbrfxrates2026.xml"]


async def test_ten_day_file_that_does_not_reach_back_falls_back_to_the_yearly_file() -> None:
    fake = FakeBnr(
        {
            "/nbrfxrates10days.xml": dataset(("2026-04-14", eur("5.10"))),
            "/files/xml/years/nbrfxrates2026.xml": dataset(
                ("2026-04-09", eur("5.0990")), ("2026-04-14", eur("5.1000"))
            ),
        }
    )

    fixing = await ask(fake, "EUR", date(2026, 4, 13), now="2026-04-14T12:00:00")

    assert fixing is not None
    assert fixing.rate_date == date(2026, 4, 9)
    assert fake.paths == ["/nbrfxrates10days.xml", "/files/xml/years/nbrfxrates2026.xml"]


async def test_a_fixing_older_than_the_window_is_none() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": dataset(("2026-08-14", eur("5.2")))})

    fixing = await ask(
        fake, "EUR", date(2026, 8, 28), not_before=date(2026, 8, 21), now="2026-08-28T12:00:00"
    )

    assert fixing is None
    assert fake.paths == ["/nbrfxrates.xml"]


async def test_a_window_after_today_asks_nothing() -> None:
    fake = FakeBnr({})

    fixing = await client(fake, "2026-08-28T12:00:00").fixing(
        "EUR", on_or_before=date(2026, 9, 5), not_before=date(2026, 9, 1)
    )

    assert fixing is None
    assert fake.requests == []


async def test_this_years_file_missing_early_in_january_means_no_fixing_yet() -> None:
    fake = FakeBnr({"/files/xml/years/nbrfxrates2027.xml": (404, b"<html/>", {})})

    fixing = await ask(
        fake, "EUR", date(2027, 1, 1), not_before=date(2027, 1, 1), now="2027-01-20T12:00:00"
    )

    assert fixing is None


async def test_a_past_years_file_missing_is_not_found() -> None:
    fake = FakeBnr({})

    with pytest.raises(UpstreamNotFoundError):
        await ask(fake, "EUR", date(2025, 6, 2), now="2026-08-28T12:00:00")


async def test_a_currency_the_bnr_does_not_quote_is_not_found_without_asking() -> None:
    fake = FakeBnr({})

    with pytest.raises(UpstreamNotFoundError, match="ARS"):
        await ask(fake, "ARS", date(2026, 8, 28), now="2026-08-28T12:00:00")
    assert fake.requests == []


async def test_a_currency_missing_from_the_files_of_the_window_is_none() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": dataset(("2026-08-28", eur("5.2584")))})

    fixing = await ask(
        fake, "RUB", date(2026, 8, 28), not_before=date(2026, 8, 28), now="2026-08-28T12:00:00"
    )

    assert fixing is None


# ---------------------------------------------------------------------- failures and nonsense


async def bad(answer: Answer | bytes, code: str = "EUR") -> UpstreamBadResponseError:
    fake = FakeBnr({"/nbrfxrates.xml": answer})
    with pytest.raises(UpstreamBadResponseError) as caught:
        await ask(fake, code, date(2026, 8, 28), now="2026-08-28T12:00:00")
    return caught.value


HOMEPAGE = b"<!DOCTYPE html><html><head><title>BNR</title></head><body>Acasa</body></html>"


async def test_the_old_hosts_homepage_with_status_200_is_a_bad_response() -> None:
    error = await bad((200, HOMEPAGE, {"content-type": "text/html; charset=utf-8"}))
    assert "HTML" in error.message


async def test_an_html_page_labelled_xml_is_refused_by_its_root_element() -> None:
    page = b"<html><head><title>BNR</title></head><body>Acasa</body></html>"
    error = await bad((200, page, XML))
    assert "html" in error.message


async def test_a_redirect_to_the_homepage_is_a_bad_response() -> None:
    error = await bad((302, b"", {"location": "https://www.bnr.ro/Home.aspx"}))
    assert "302" in error.message


async def test_an_xml_entity_bomb_is_refused_as_a_bad_response() -> None:
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b'<DataSet xmlns="https://www.bnr.ro/xsd"><Body><Cube date="2026-08-28">'
        b'<Rate currency="EUR">&lol3;</Rate></Cube></Body></DataSet>'
    )
    error = await bad(bomb)
    assert "XML" in error.message


async def test_an_external_entity_is_refused_as_a_bad_response() -> None:
    xxe = (
        b'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<DataSet xmlns="https://www.bnr.ro/xsd"><Body><Cube date="2026-08-28">'
        b'<Rate currency="EUR">&x;</Rate></Cube></Body></DataSet>'
    )
    await bad(xxe)


async def test_a_cut_file_is_a_bad_response() -> None:
    await bad(NEW_NAMESPACE[: len(NEW_NAMESPACE) // 2])


@pytest.mark.parametrize(
    "rate",
    [
        "0.0000",
        "-5.2584",
        "5,2584",  # a decimal comma
        "NaN",
        "\u0665.\u0662",  # Arabic-Indic digits
        "",
        "1_000",
    ],
)
async def test_a_rate_that_is_not_a_positive_ascii_decimal_is_a_bad_response(rate: str) -> None:
    await bad(dataset(("2026-08-28", eur(rate))))


@pytest.mark.parametrize("multiplier", ["0", "-100", "abc", "1e2"])
async def test_an_unreadable_multiplier_is_a_bad_response(multiplier: str) -> None:
    rate = f'<Rate currency="HUF" multiplier="{multiplier}">1.4430</Rate>'
    await bad(dataset(("2026-08-28", rate)), code="HUF")


async def test_a_cube_dated_after_today_is_a_bad_response() -> None:
    error = await bad(dataset(("2026-08-29", eur("5.2584"))))
    assert "2026-08-29" in error.message


async def test_a_currency_twice_in_one_cube_with_different_values_is_a_bad_response() -> None:
    error = await bad(dataset(("2026-08-28", eur("5.2584") + eur("5.2600"))))
    assert "twice" in error.message


async def test_one_date_in_two_cubes_with_different_values_is_a_bad_response() -> None:
    await bad(dataset(("2026-08-28", eur("5.2584")), ("2026-08-28", eur("5.3000"))))


async def test_a_currency_repeated_with_the_same_value_is_read() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": dataset(("2026-08-28", eur("5.2584") + eur("5.2584")))})
    fixing = await ask(fake, "EUR", date(2026, 8, 28), now="2026-08-28T12:00:00")
    assert fixing is not None
    assert fixing.published == Decimal("5.2584")


async def test_nonsense_about_another_currency_does_not_spoil_the_one_asked() -> None:
    cube = eur("5.2584") + '<Rate currency="XAU">0.0000</Rate>'
    fake = FakeBnr({"/nbrfxrates.xml": dataset(("2026-08-28", cube))})
    fixing = await ask(fake, "EUR", date(2026, 8, 28), now="2026-08-28T12:00:00")
    assert fixing is not None
    assert fixing.published == Decimal("5.2584")


async def test_an_unreadable_cube_date_is_a_bad_response() -> None:
    await bad(dataset(("28.08.2026", eur("5.2584"))))


async def test_rates_against_another_currency_than_ron_are_a_bad_response() -> None:
    await bad(dataset(("2026-08-28", eur("5.2584")), origin="EUR"))


async def test_a_server_error_is_transient() -> None:
    fake = FakeBnr({"/nbrfxrates.xml": (503, b"<html>down</html>", {"content-type": "text/html"})})
    with pytest.raises(UpstreamUnavailableError) as caught:
        await ask(fake, "EUR", date(2026, 8, 28), now="2026-08-28T12:00:00")
    assert caught.value.transient


async def test_a_transient_failure_is_tried_again_by_the_retry_policy() -> None:
    answers = iter(
        [
            httpx2.Response(
                502, content=b"<html>502</html>", headers={"content-type": "text/html"}
            ),
            httpx2.Response(200, content=NEW_NAMESPACE, headers=XML),
        ]
    )
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda request: next(answers)), base_url=BASE_URL
    )
    bnr = BnrClient(http, retries=RetryPolicy(attempts=3), clock=at("2026-08-28T12:00:00"))

    with stamina.set_testing(True, attempts=3):
        fixing = await bnr.fixing(
            "EUR", on_or_before=date(2026, 8, 28), not_before=date(2026, 8, 28)
        )

    assert fixing is not None
    assert fixing.published == Decimal("5.2584")
