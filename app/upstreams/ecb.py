"""ECB adapter: the euro foreign exchange reference rates (units of a currency per 1 EUR),
from the ECB Data Portal's SDMX API.

One request per fixing asked::

    GET /service/data/EXR/D.{CUR}.EUR.SP00.A
        ?endPeriod=D&lastNObservations=1&format=csvdata&detail=dataonly

answers the last observation on or before D (the API walks back over weekends and TARGET
closing days itself), e.g.::

    KEY,FREQ,CURRENCY,CURRENCY_DENOM,EXR_TYPE,EXR_SUFFIX,TIME_PERIOD,OBS_VALUE
    EXR.D.PLN.EUR.SP00.A,D,PLN,EUR,SP00,A,2026-08-07,4.2983

read by column NAME with the csv module into `Fixing(series="ECB:PLN", base="EUR",
quote="PLN", published=Decimal("4.2983"), unit=1, rate_date=2026-08-07)`; the value is kept
exactly as written (trailing zeros too).

The API's traps, each handled here:
* 200 with a zero-byte body means no data: None, not an error;
* 404 (problem+json) means the series does not exist: an unsupported currency is
  `UpstreamNotFoundError`, permanent, never retried as if the ECB were down;
* 400 answers a ~12 KB HTML page: `UpstreamRejectedError` (our request was malformed);
* a future ``endPeriod`` silently answers the latest (old) fixing with 200: D is clamped to
  today in Frankfurt (CET/CEST) and the fixing's date is checked against ``not_before``;
* ``includeHistory`` adds a phantom row with an empty value: never sent, and an empty
  ``OBS_VALUE`` is skipped should one come;
* there is no EUR/EUR series: asking for EUR is a caller's bug (ValueError); the domain
  never asks it, since EUR is the ECB's base.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx2

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRejectedError,
)
from app.upstreams.fixings import Fixing, FixingClient
from app.upstreams.http import generic_status_error, send_raw
from app.upstreams.reading import decimal_text, quote

UPSTREAM = "ecb"
BASE_URL = "https://data-api.ecb.europa.eu"
TIME_ZONE = ZoneInfo("Europe/Berlin")

SERIES_PATH = "/service/data/EXR/D.{currency}.EUR.SP00.A"

CURRENCIES = frozenset({
    "USD", "JPY", "CZK", "DKK", "GBP", "HUF", "PLN", "RON", "SEK", "CHF", "ISK", "NOK",
    "TRY", "AUD", "BRL", "CAD", "CNY", "HKD", "IDR", "ILS", "INR", "KRW", "MXN", "MYR",
    "NZD", "PHP", "SGD", "THB", "ZAR",
})  # fmt: skip
"""The 29 currencies the ECB quotes in 2026. No ARS; BGN ended when Bulgaria adopted the
euro (2026-01-01). Others may still be asked: the API says whether a series exists."""

_ACCEPT = "text/csv"
_CODE = re.compile(r"[A-Z]{3}")
# The columns read; the rest of the answer (32 columns with detail=full) is ignored.
_DATE = "TIME_PERIOD"
_VALUE = "OBS_VALUE"
_CURRENCY = "CURRENCY"
_DENOMINATOR = "CURRENCY_DENOM"
_EXTRA = "\x00extra"  # where csv puts the fields of a row beyond its header


def _bad(message: str) -> UpstreamBadResponseError:
    return UpstreamBadResponseError(UPSTREAM, message)


def _problem_detail(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("detail", "title"):
            text = body.get(key)
            if isinstance(text, str) and text.strip():
                return text.strip()[:200]
    return None


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    if status == 404:
        detail = _problem_detail(body)
        return UpstreamNotFoundError(UPSTREAM, "no such series" + (f": {detail}" if detail else ""))
    if status in (400, 406):
        # A malformed key or query (400, an HTML page) or an unacceptable Accept (406):
        # our request's fault, so asking again will not help.
        return UpstreamRejectedError(UPSTREAM, f"rejected the request ({status})")
    return generic_status_error(UPSTREAM, response)


def read_csv(response: httpx2.Response, code: str, *, day: date) -> tuple[date, Decimal] | None:
    """The newest observation of `code` in an SDMX csvdata answer, checked: None for an
    empty body (no data); a bad response for anything that is not the series' CSV or holds
    nonsense (a value of zero or below or unreadable, a date after `day`, one date twice
    with different values)."""
    if not response.content.strip():
        return None
    media_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if "html" in media_type or response.content.lstrip().startswith(b"<"):
        raise _bad(f"answered {response.status_code} with a page ({quote(media_type)}), not CSV")
    try:
        text = response.content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad("the CSV is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA)
    observed: dict[date, Decimal] = {}
    try:
        missing = {_DATE, _VALUE} - set(reader.fieldnames or ())
        if missing:
            raise _bad(f"the CSV has no {', '.join(sorted(missing))} column")
        for row in reader:
            if _EXTRA in row or None in row.values():
                # A value with a comma ("4,2983") shifts every column after it.
                raise _bad(f"line {reader.line_num} of the CSV does not match its header")
            found = _observation(row, code, day)
            if found is None:
                continue
            when, value = found
            known = observed.setdefault(when, value)
            if known != value:
                raise _bad(f"{code} twice on {when.isoformat()}: {known} and {value}")
    except csv.Error as exc:
        raise _bad("the CSV cannot be read") from exc
    if not observed:
        return None
    newest = max(observed)
    return newest, observed[newest]


def _observation(row: Mapping[str, Any], code: str, day: date) -> tuple[date, Decimal] | None:
    currency = row.get(_CURRENCY)
    if currency is not None and currency != code:
        raise _bad(f"asked for {code}, answered {quote(currency)}")
    denominator = row.get(_DENOMINATOR)
    if denominator is not None and denominator != "EUR":
        raise _bad(f"{code} is quoted against {quote(denominator)}, not EUR")
    written_value = row.get(_VALUE)
    if not isinstance(written_value, str) or not written_value.strip():
        return None  # a missing observation (the phantom row `includeHistory` adds)
    written_date = row.get(_DATE)
    try:
        when = date.fromisoformat(str(written_date).strip())
    except ValueError as exc:
        raise _bad(f"{code}: unreadable {_DATE} {quote(written_date)}") from exc
    if when > day:
        raise _bad(f"{code}: a fixing dated {when.isoformat()}, after {day.isoformat()}")
    try:
        value = decimal_text(written_value)
    except ValueError as exc:
        raise _bad(
            f"{code} on {when.isoformat()}: unreadable value {quote(written_value)}"
        ) from exc
    if value <= 0:
        raise _bad(f"{code} on {when.isoformat()}: rate {value} is not above zero")
    return when, value


class EcbClient(FixingClient):
    """The ECB's euro reference rates over an injected ``httpx2.AsyncClient`` whose base URL
    is the ECB Data Portal's (`BASE_URL`). Series codes are the quoted currencies."""

    source = UPSTREAM
    codes = CURRENCIES
    time_zone = TIME_ZONE

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        """The ECB's newest fixing of EUR in `code` on or before `on_or_before` (clamped to
        today in Frankfurt) and not before `not_before`; None when there is none.

        Raises ValueError for EUR (there is no EUR/EUR series) and for a code that is not
        three capital letters (it would change the SDMX key)."""
        if not _CODE.fullmatch(code):
            raise ValueError(f"an ECB series is a currency code, not {code!r}")
        if code == "EUR":
            raise ValueError("the ECB quotes every currency against EUR: there is no EUR/EUR")
        day = min(on_or_before, self.today(self._clock()))
        if not_before > day:
            return None
        response = await send_raw(
            self._http,
            UPSTREAM,
            SERIES_PATH.format(currency=code),
            map_error=_map_error,
            accept=_ACCEPT,
            params={
                "endPeriod": day.isoformat(),
                "lastNObservations": 1,
                "format": "csvdata",
                "detail": "dataonly",
            },
            retries=self._retries,
        )
        found = read_csv(response, code, day=day)
        if found is None:
            return None
        rate_date, published = found
        if rate_date < not_before:
            # Older than the window: for a day past the data, the API answers the latest
            # fixing, however old, and says nothing.
            return None
        return Fixing(
            source=UPSTREAM,
            series=f"ECB:{code}",
            base="EUR",
            quote=code,
            published=published,
            unit=1,
            rate_date=rate_date,
        )
