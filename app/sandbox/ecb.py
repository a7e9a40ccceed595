"""ECB simulator: an ASGI app answering the ECB Data Portal's SDMX data API for the euro
reference rates (``EXR``), as data-api.ecb.europa.eu does.

Route (no auth, as on the real host)::

    GET /service/data/EXR/{FREQ}.{CURRENCY}.{CURRENCY_DENOM}.{EXR_TYPE}.{EXR_SUFFIX}
        ?startPeriod=&endPeriod=&lastNObservations=&firstNObservations=
        &format=csvdata&detail=dataonly&includeHistory=

* The key's dimensions take ``+`` lists and an empty wildcard (``D.USD+RON.EUR.SP00.A``,
  ``D..EUR.SP00.A``); the series that exist are ``D.{CUR}.EUR.SP00.A`` for the 29
  currencies the ECB quotes in 2026 (no ARS, no BGN, no EUR/EUR).
* Periods are ``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``. ``lastNObservations=N`` keeps each
  series' last N observations in the period, so ``endPeriod=D&lastNObservations=1`` is the
  fixing on or before D; a future ``endPeriod`` answers the latest fixing, silently, as the
  real API does.
* Answers ``csvdata`` (``format=csvdata``, or an ``Accept`` naming CSV), ``detail=dataonly``:
  ``KEY,FREQ,CURRENCY,CURRENCY_DENOM,EXR_TYPE,EXR_SUFFIX,TIME_PERIOD,OBS_VALUE``, one row
  per observation, series after series, dates ascending; values with each currency's fixed
  decimals, trailing zeros kept (USD 4, JPY 2, GBP 5, HUF 2, RON 4, ...). The simulator
  serves no other format (406) and no other detail (400), where the real API has more.
* No observation in the period: **200 with a zero-byte body**. A key no series matches:
  404 ``application/problem+json``. A malformed key or parameter: 400 with an HTML page.
  ``includeHistory=true`` adds the phantom row the real API adds (an empty ``OBS_VALUE``
  on an unrelated date).

Fixings: one per TARGET day (weekdays that are not TARGET closing days in the `holidays`
package's ``XECB`` calendar: 1 Jan, Good Friday, Easter Monday, 1 May, 25-26 Dec) over the
365 days up to `today` (and every day since 2026-01-01), today's included. Values come from
`app.sandbox.fxmarket` (EUR/RON 5.0972 and EUR/USD 1.1489 on 2026-03-19, as the ECB fixed).

Faults (``GET``/``PUT /_sandbox/faults``, see `app.sandbox.faults`): ``error`` (500),
``timeout``, ``html`` (a proxy's 502), ``truncated``, ``rate_limited`` (429),
``unauthorized`` (403). ``app.state.faults`` is the `Faults`, ``app.state.calls`` a
``Counter`` of requests per route (``"GET /service/data/EXR"``).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox.faults import (
    Faults,
    VendorFaults,
    fault_control_route,
)
from app.sandbox.fxmarket import first_fixing_day, per_euro, publishing_days, target_day

TIME_ZONE = ZoneInfo("Europe/Berlin")
WINDOW = timedelta(days=364)
"""The first day with fixings is `today` less this (365 days in all), or 2026-01-01 if earlier."""

DECIMALS: dict[str, int] = {
    "USD": 4, "JPY": 2, "CZK": 3, "DKK": 4, "GBP": 5, "HUF": 2, "PLN": 4, "RON": 4,
    "SEK": 4, "CHF": 4, "ISK": 2, "NOK": 4, "TRY": 4, "AUD": 4, "BRL": 4, "CAD": 4,
    "CNY": 4, "HKD": 4, "IDR": 2, "ILS": 4, "INR": 4, "KRW": 2, "MXN": 4, "MYR": 4,
    "NZD": 4, "PHP": 3, "SGD": 4, "THB": 3, "ZAR": 4,
}  # fmt: skip
"""The ECB's 29 currencies of 2026 in its own order, with the decimals it fixes them to."""

CSV_COLUMNS = (
    "KEY",
    "FREQ",
    "CURRENCY",
    "CURRENCY_DENOM",
    "EXR_TYPE",
    "EXR_SUFFIX",
    "TIME_PERIOD",
    "OBS_VALUE",
)
CSV_MEDIA_TYPE = "text/csv"
EXR = "GET /service/data/EXR"

_FAULTS = VendorFaults(
    error=lambda: _problem(500, "Internal Server Error", "An unexpected error occurred"),
    rate_limited=lambda: _problem(429, "Too Many Requests", "Rate limit exceeded"),
    unauthorized=lambda: Response(
        "<html><body>Access denied</body></html>", 403, media_type="text/html"
    ),
)
_DIMENSION = re.compile(r"[A-Z0-9]+")
_PERIOD = re.compile(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?")
_COUNT = re.compile(r"[1-9][0-9]{0,5}")
# The ~12 KB page the real API answers a bad request with, in short.
_BAD_REQUEST_HTML = (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    "<title>ECB Data Portal - Bad Request</title>\n</head>\n<body>\n"
    "<h1>400 - Bad Request</h1>\n<p>The request could not be understood by the server "
    "due to malformed syntax.</p>\n" + "<!-- padding -->\n" * 600 + "</body>\n</html>\n"
)


def ecb_today() -> date:
    """Today in Frankfurt."""
    return datetime.now(TIME_ZONE).date()


def ecb_rate(currency: str, day: date) -> Decimal:
    """The simulator's ECB reference rate: units of `currency` per 1 EUR on `day`, with the
    currency's fixed decimals (trailing zeros kept)."""
    return per_euro(currency, day).quantize(Decimal(1).scaleb(-DECIMALS[currency]))


class _BadRequestError(Exception):
    pass


def _period(text: str | None, *, end: bool) -> date | None:
    if text is None:
        return None
    match = _PERIOD.fullmatch(text)
    if match is None:
        raise _BadRequestError(text)
    year, month, day = match.groups()
    try:
        if day is not None:
            return date(int(year), int(month), int(day))
        if month is not None:
            first = date(int(year), int(month), 1)
            if not end:
                return first
            return (first + timedelta(days=31)).replace(day=1) - timedelta(days=1)
        return date(int(year), 12, 31) if end else date(int(year), 1, 1)
    except ValueError as exc:
        raise _BadRequestError(text) from exc


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    if not _COUNT.fullmatch(text):
        raise _BadRequestError(text)
    return int(text)


def _dimension(text: str) -> frozenset[str] | None:
    """One key dimension: None for the wildcard, else the values of its ``+`` list."""
    if text == "":
        return None
    values = text.split("+")
    if not all(_DIMENSION.fullmatch(value) for value in values):
        raise _BadRequestError(text)
    return frozenset(values)


def _matches(allowed: frozenset[str] | None, value: str) -> bool:
    return allowed is None or value in allowed


def _series(key: str) -> list[str]:
    """The currencies of the series a key names, in the order of their keys."""
    parts = key.split(".")
    if len(parts) != 5:
        raise _BadRequestError(key)
    freq, currency, denominator, kind, suffix = (_dimension(part) for part in parts)
    if not (
        _matches(freq, "D")
        and _matches(denominator, "EUR")
        and _matches(kind, "SP00")
        and _matches(suffix, "A")
    ):
        return []
    return sorted(code for code in DECIMALS if _matches(currency, code))


def _bad_request() -> Response:
    return Response(_BAD_REQUEST_HTML, 400, media_type="text/html")


def _problem(status: int, title: str, detail: str) -> Response:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    return Response(body, status, media_type="application/problem+json")


def _wants_csv(request: Request) -> bool:
    wanted = request.query_params.get("format")
    if wanted is not None:
        return wanted == "csvdata"
    accept = request.headers.get("accept", "").lower()
    return "csv" in accept


def create_ecb_app(
    faults: Faults | None = None, *, today: Callable[[], date] | None = None
) -> Starlette:
    """A fresh ECB simulator; `today` (default `ecb_today`) says which day it is in
    Frankfurt, asked on every request."""
    simulator = _EcbSimulator(Faults() if faults is None else faults, today or ecb_today)
    app = Starlette(
        routes=[
            Route("/service/data/{flow}/{key}", simulator.data, methods=["GET"]),
            fault_control_route(simulator.faults),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return _problem(404, "Not Found", "No resource at this path")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _problem(405, "Method Not Allowed", "Only GET is supported")


class _EcbSimulator:
    def __init__(self, faults: Faults, today: Callable[[], date]) -> None:
        self.faults = faults
        self.today = today
        self.calls: Counter[str] = Counter()

    async def data(self, request: Request) -> Response:
        self.calls[EXR] += 1

        async def answered() -> Response:
            return self._answer(request)

        return await _FAULTS.serve(request, self.faults, answered)

    def _answer(self, request: Request) -> Response:
        flow = request.path_params["flow"]
        key = request.path_params["key"]
        params = request.query_params
        try:
            currencies = _series(key)
            start = _period(params.get("startPeriod"), end=False)
            end = _period(params.get("endPeriod"), end=True)
            last = _count(params.get("lastNObservations"))
            first = _count(params.get("firstNObservations"))
            if params.get("detail", "dataonly") != "dataonly":
                raise _BadRequestError("detail")
        except _BadRequestError:
            return _bad_request()
        if not _wants_csv(request):
            return Response("Not Acceptable", 406, media_type="text/plain")
        if flow != "EXR" or not currencies:
            return _problem(404, "Not Found", f"No results found for {flow}/{key}")
        today = self.today()
        days = publishing_days(first_fixing_day(today, WINDOW), today, target_day)
        days = [d for d in days if (start is None or d >= start) and (end is None or d <= end)]
        if first is not None:
            days = days[:first]
        if last is not None:
            days = days[-last:]
        if not days:
            # The real API's "no data": status 200, Content-Length 0, in every format.
            return Response(b"", 200, media_type=CSV_MEDIA_TYPE)
        lines = [",".join(CSV_COLUMNS)]
        for code in currencies:
            for day in days:
                lines.append(_row(code, day.isoformat(), f"{ecb_rate(code, day):f}"))
            if params.get("includeHistory") == "true":
                phantom = days[0] - timedelta(days=397)
                lines.append(_row(code, phantom.isoformat(), ""))
        return Response(("\n".join(lines) + "\n").encode(), 200, media_type=CSV_MEDIA_TYPE)


def _row(code: str, period: str, value: str) -> str:
    return f"EXR.D.{code}.EUR.SP00.A,D,{code},EUR,SP00,A,{period},{value}"
