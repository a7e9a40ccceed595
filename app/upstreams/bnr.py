"""BNR adapter: the National Bank of Romania's reference rates (RON per unit), from its XML files.

The BNR publishes once per Romanian banking day, around 13:00 Bucharest time, as three static
files on https://curs.bnr.ro (the feeds moved there from www.bnr.ro in August 2026):

* ``/nbrfxrates.xml``: the latest fixing (kept over weekends and holidays);
* ``/nbrfxrates10days.xml``: the last ten fixings;
* ``/files/xml/years/nbrfxratesYYYY.xml``: every fixing of one year, ascending.

``DataSet/Body/Cube@date/Rate@currency[@multiplier]`` holds RON per ``multiplier`` units of
the currency (absent: 1), always written with 4 decimals: ``<Rate currency="HUF"
multiplier="100">1.4430</Rate>`` is `Fixing(series="BNR:HUF", base="HUF", quote="RON",
published=Decimal("1.4430"), unit=100)`.

Read defensively:
* XML through `defusedxml` only (no DTD, no entities: an entity bomb is a bad response);
* elements matched by LOCAL name: the default namespace changed from ``http://www.bnr.ro/xsd``
  to ``https://www.bnr.ro/xsd`` with the move, and the new ``xsi`` binding is bogus;
* a 200 that is not the rates XML (the old host answers its homepage as ``text/html``) is a
  bad response, judged by the Content-Type and the root element, never read as data;
* nonsense about the series asked for (a rate of zero or below, an unreadable number or
  multiplier, the currency twice on one date with different values) and a Cube dated after
  today in Bucharest are bad responses: such a fixing is never returned.

Which fixing: the rule "in force on D" (D's fixing if published, else the latest before it),
never the fiscal "communicated before D" rule; the `Fixing.rate_date` says which day it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from zoneinfo import ZoneInfo

import httpx2
from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamUnauthorizedError,
)
from app.upstreams.fixings import Fixing, FixingClient
from app.upstreams.http import generic_status_error, send_raw
from app.upstreams.reading import decimal_text, integer_text, quote

UPSTREAM = "bnr"
BASE_URL = "https://curs.bnr.ro"
TIME_ZONE = ZoneInfo("Europe/Bucharest")

LATEST_PATH = "/nbrfxrates.xml"
TEN_DAYS_PATH = "/nbrfxrates10days.xml"
YEAR_PATH = "/files/xml/years/nbrfxrates{year}.xml"

CURRENCIES = frozenset({
    "AED", "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EGP", "EUR", "GBP", "HKD",
    "HUF", "IDR", "ILS", "INR", "ISK", "JPY", "KRW", "MDL", "MXN", "MYR", "NOK", "NZD",
    "PHP", "PLN", "RSD", "RUB", "SEK", "SGD", "THB", "TRY", "UAH", "USD", "XAU", "XDR",
    "ZAR",
})  # fmt: skip
"""The 37 currencies the BNR quotes in 2026 (XAU in RON per gram). No ARS; BGN is gone."""

TEN_DAYS_REACH = timedelta(days=11)
"""How far back from today the ten-day file is read first. Ten weekdays always straddle a
whole weekend, so its oldest fixing is at least 11 days before its newest (more with
holidays), and its newest is at most today: a day within this reach is always in it, and a
~15 KB file answers instead of the year's ~300 KB. Should it not reach (a server that
disagrees), the yearly file follows."""

_ACCEPT = "text/xml, application/xml"
_MAX_MULTIPLIER = 1_000_000


def _local(tag: str) -> str:
    # "{https://www.bnr.ro/xsd}Cube" and "{http://www.bnr.ro/xsd}Cube" are both a Cube.
    return tag.rpartition("}")[2]


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local(child.tag) == name)


@dataclass(frozen=True)
class _Rate:
    published: Decimal
    unit: int


@dataclass(frozen=True)
class _File:
    """What one file says about one currency: its rate on each date it was quoted, and the
    first day from which the file holds every fixing up to its newest."""

    rates: dict[date, _Rate]
    complete_from: date | None  # None: the file holds no fixing at all


def _bad(message: str) -> UpstreamBadResponseError:
    return UpstreamBadResponseError(UPSTREAM, message)


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    if 300 <= status < 400:
        # The old host sends its history to the homepage: never a rates file.
        location = quote(response.headers.get("location", ""))
        return _bad(f"answered {status}, a redirect to {location}, not the rates XML")
    if status == 404:
        return UpstreamNotFoundError(UPSTREAM, f"{response.request.url.path} was not found")
    if status == 401:
        return UpstreamUnauthorizedError(UPSTREAM, "access was refused (401)")
    if status in (403, 408, 429) or status >= 500:
        return generic_status_error(UPSTREAM, response)
    return _bad(f"unexpected status {status}")


def _root(response: httpx2.Response) -> Element:
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if "html" in media_type:
        raise _bad(f"answered {response.status_code} with an HTML page, not the rates XML")
    try:
        root: Element = SafeElementTree.fromstring(response.content, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise _bad(f"answer {response.status_code} is not readable XML") from exc
    if _local(root.tag) != "DataSet":
        raise _bad(f"answer's root is {quote(_local(root.tag))}, not the rates' DataSet")
    return root


def _cubes(root: Element) -> Iterator[Element]:
    for body in _children(root, "Body"):
        for origin in _children(body, "OrigCurrency"):
            if (origin.text or "").strip() != "RON":
                raise _bad(f"rates are against {quote(origin.text)}, not RON")
        yield from _children(body, "Cube")


def _read_rate(rate: Element, code: str, day: date) -> _Rate:
    where = f"{code} on {day.isoformat()}"
    try:
        published = decimal_text(rate.text or "")
    except ValueError as exc:
        raise _bad(f"{where}: unreadable rate {quote(rate.text)}") from exc
    if published <= 0:
        raise _bad(f"{where}: rate {published} is not above zero")
    written = rate.get("multiplier")
    try:
        unit = 1 if written is None else integer_text(written)
    except ValueError as exc:
        raise _bad(f"{where}: unreadable multiplier {quote(written)}") from exc
    if not 1 <= unit <= _MAX_MULTIPLIER:
        raise _bad(f"{where}: multiplier {unit} is not a positive count of units")
    return _Rate(published, unit)


def _read_file(response: httpx2.Response, code: str, *, today: date) -> _File:
    """One BNR file's fixings of currency `code`, checked (see the module's rules)."""
    root = _root(response)
    rates: dict[date, _Rate] = {}
    oldest: date | None = None
    for cube in _cubes(root):
        written = cube.get("date")
        try:
            day = date.fromisoformat((written or "").strip())
        except ValueError as exc:
            raise _bad(f"a Cube has an unreadable date {quote(written)}") from exc
        if day > today:
            raise _bad(f"a Cube is dated {day.isoformat()}, after today in Bucharest")
        oldest = day if oldest is None else min(oldest, day)
        for rate in _children(cube, "Rate"):
            if rate.get("currency") != code:
                continue
            read = _read_rate(rate, code, day)
            known = rates.setdefault(day, read)
            if known != read:
                raise _bad(
                    f"{code} twice on {day.isoformat()} with different values: "
                    f"{known.published} per {known.unit} and {read.published} per {read.unit}"
                )
    return _File(rates, oldest)


class BnrClient(FixingClient):
    """The BNR's reference rates over an injected ``httpx2.AsyncClient`` whose base URL is
    the BNR's (`BASE_URL`). Series codes are the currencies (`CURRENCIES`)."""

    source = UPSTREAM
    codes = CURRENCIES
    time_zone = TIME_ZONE

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        """The BNR's fixing of `code` in force on `on_or_before` (clamped to today in
        Bucharest), or None when none was published from `not_before` to that day.

        The fewest files are read, newest first, each only when the one before cannot
        answer: the latest file when the day is today; the ten-day file when the day is
        within `TEN_DAYS_REACH`; else (or when those do not reach back far enough) the
        day's yearly file, and the year before's only when the window crosses New Year
        and the day's year has no fixing of `code` up to it."""
        if code not in CURRENCIES:
            raise UpstreamNotFoundError(UPSTREAM, f"the BNR publishes no rate for {quote(code)}")
        today = self.today(self._clock())
        day = min(on_or_before, today)
        if not_before > day:
            return None
        for path, year_start in self._plan(day, not_before, today):
            read = await self._read(path, code, today, year_start)
            found = max((d for d in read.rates if d <= day), default=None)
            if found is not None:
                if found < not_before:
                    return None
                rate = read.rates[found]
                return Fixing(
                    source=UPSTREAM,
                    series=f"BNR:{code}",
                    base=code,
                    quote="RON",
                    published=rate.published,
                    unit=rate.unit,
                    rate_date=found,
                )
            complete_from = year_start or read.complete_from
            if complete_from is not None and complete_from <= not_before:
                return None  # the file holds every fixing of the window: none of `code`
        return None

    def _plan(self, day: date, not_before: date, today: date) -> Iterator[tuple[str, date | None]]:
        """The files that may hold the answer, in the order they are worth reading, each
        with the first day it holds every fixing from (a yearly file: 1 January)."""
        if day == today:
            yield LATEST_PATH, None
        if today - day <= TEN_DAYS_REACH:
            yield TEN_DAYS_PATH, None
        yield YEAR_PATH.format(year=day.year), date(day.year, 1, 1)
        if not_before.year < day.year:
            last_year = day.year - 1
            yield YEAR_PATH.format(year=last_year), date(last_year, 1, 1)

    async def _read(self, path: str, code: str, today: date, year_start: date | None) -> _File:
        try:
            response = await send_raw(
                self._http,
                UPSTREAM,
                path,
                map_error=_map_error,
                accept=_ACCEPT,
                retries=self._retries,
            )
        except UpstreamNotFoundError:
            # This year's file appears with its first fixing: before that (the first days
            # of January) there is simply nothing in it. Any other missing file is an error.
            if year_start is not None and year_start.year == today.year:
                return _File({}, None)
            raise
        return _read_file(response, code, today=today)
