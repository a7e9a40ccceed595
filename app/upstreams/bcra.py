"""BCRA adapter: the central bank of Argentina's Estadísticas Cambiarias v1.0 (ARS per unit).

Series (`SERIES`): `REF`, the Comunicación A 3500 reference rate (ARS per USD, the official
wholesale rate a treasury names), the `USD` row ("BCRA cotización USD", a different quote
from REF), and every other currency the BCRA publishes with a rate. Codes are tesoro's: `MXN`
is asked for as the BCRA's legacy `MXP` and comes back as base MXN, series `BCRA:MXP` (the
series keeps the source's own code, so it can be found in BCRA data). `ARS`, `XAU`, `XAG` and
the defunct `VEB` have no rate (`tipoCotizacion` 0) and are no series.

Which call answers a question: the series endpoint,
``GET /estadisticascambiarias/v1.0/Cotizaciones/{code}?fechaDesde=N&fechaHasta=D``, newest
first, taking the newest date with a non-empty `detalle`. It is one call for every question,
a fixing day or not: the per-day table (``Cotizaciones?fecha=D``) answers a holiday or a
weekend with 200 ``{"fecha": null, "detalle": []}`` and never rolls back, so it would cost a
second call on every day without a fixing, and it carries 39 currencies when one is asked
(the rates service caches per series and date, not per table). The table is still read by
`fixings_on`, for a caller that wants every rate of one day at once.

What is never returned (raised as `UpstreamBadResponseError` instead): anything that is not
JSON (an HTML page with status 200 included), a rate of zero or below or absurdly large for
the series asked for, a fixing dated after the day asked for, a currency twice on one date
with different values, a per-N-units description that cannot be read.

Units: `tipoCotizacion` is ARS per one unit, except the currencies quoted per N units, which
say so only in `descripcion` ("DONG VIETNAM (C/1.000 UNIDADES)": 1,000 VND, with a Spanish
thousands dot).

Today: the BCRA refuses a date after today in Buenos Aires (UTC-3 all year), so every date
is clamped to `today`, read from the clock the client is given (UTC by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import httpx2
from pydantic import Field, TypeAdapter

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamRejectedError,
)
from app.upstreams.fixings import Fixing, FixingClient, day_in
from app.upstreams.http import generic_status_error, parse, send
from app.upstreams.reading import (
    LenientDate,
    Parsed,
    Text,
    TolerantModel,
    WireDecimal,
    WireInt,
    clean_text,
    each_of,
)

UPSTREAM = "bcra"
SOURCE = "bcra"
BASE_URL = "https://api.bcra.gob.ar"
PREFIX = "/estadisticascambiarias/v1.0"

# Argentina has kept UTC-3 without daylight saving since 2009; a fixed offset needs no tz
# database on the host.
BUENOS_AIRES = timezone(timedelta(hours=-3), "ART")

# The series endpoint's page size must be 10..1000 (wrappers and the official doc agree).
LIMIT_MIN = 10
LIMIT_MAX = 1000
# A window longer than this many pages of rows is not walked (no question needs 27 years).
MAX_PAGES = 10

# A rate this large (ARS per unit) is a broken figure, not a price: the ARS would have lost
# nine more orders of magnitude against the currency.
ABSURD_RATE = Decimal("1E+12")


@dataclass(frozen=True, slots=True)
class Series:
    """One series tesoro can ask the BCRA for."""

    wire: str  # the BCRA's `codigoMoneda`
    base: str  # the currency priced, as tesoro names it (ISO 4217)
    label: str  # how to name it to a person


def _plain(codes: str) -> dict[str, Series]:
    return {code: Series(code, code, f"BCRA cotización {code}") for code in codes.split()}


SERIES: dict[str, Series] = {
    "REF": Series("REF", "USD", "BCRA Comunicación A 3500 (tipo de cambio de referencia)"),
    **_plain(
        "USD AUD AWG BOB BRL CAD CHF CLP CNH CNY COP CZK DKK EUR GBP HKD ILS INR JPY NIO NOK "
        "NZD PEN PYG RSD RUB SEK SGD TRY UYU VND XDR ZAR"
    ),
    # Mexico's peso is published under its pre-1993 code.
    "MXN": Series("MXP", "MXN", "BCRA cotización MXN (MXP)"),
}
"""tesoro's series codes for the BCRA, with the code the BCRA publishes each under."""

_BY_WIRE = {series.wire: code for code, series in SERIES.items()}

# "(C/1.000 UNIDADES)": the count with Spanish thousands dots, or plain digits.
_PER_UNITS = re.compile(r"C/\s*([0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)\s*UNIDADES", re.IGNORECASE)


def buenos_aires_today(now: datetime) -> date:
    """The date in Buenos Aires at `now` (a naive `now` is UTC)."""
    return day_in(BUENOS_AIRES, now)


# --- wire models ----------------------------------------------------------------------------


class BcraQuote(TolerantModel):
    """One `detalle` item. `descripcion` is required: it alone says a rate is per N units."""

    code: Text = Field(validation_alias="codigoMoneda")
    description: Text = Field(validation_alias="descripcion")
    # ARS per unit (or per N units): JSON numbers with 8 decimals, decoded as Decimal.
    rate: WireDecimal = Field(validation_alias="tipoCotizacion")


class BcraDay(TolerantModel):
    """One date's quotes; the BCRA writes `fecha: null, detalle: []` on a day without any."""

    # Both required (null allowed): a `detalle` that is not a list must fail the date, never
    # read as a day without quotes, which would walk back to an older fixing.
    fecha: LenientDate | None
    detalle: Annotated[Parsed[BcraQuote], each_of(TypeAdapter(BcraQuote))]


class _ResultSet(TolerantModel):
    count: WireInt | None = None
    offset: WireInt | None = None
    limit: WireInt | None = None


class _Metadata(TolerantModel):
    resultset: _ResultSet | None = None


class _Table(TolerantModel):
    results: BcraDay


class _SeriesPage(TolerantModel):
    results: list[BcraDay]
    metadata: _Metadata | None = None


_TABLE = TypeAdapter(_Table)
_SERIES_PAGE = TypeAdapter(_SeriesPage)


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    detail = _error_text(body)
    if status == 404:
        return UpstreamNotFoundError(UPSTREAM, detail or "not found")
    if status == 400:
        # A date after today in Buenos Aires, a malformed date, a range where none is taken.
        return UpstreamRejectedError(UPSTREAM, f"rejected the request: {detail or 'status 400'}")
    return generic_status_error(UPSTREAM, response)


def _error_text(body: Any) -> str | None:
    # `{"status": 400, "errorMessages": ["..."]}` (ErrorResponse in the official schema).
    if isinstance(body, dict):
        messages = body.get("errorMessages")
        if isinstance(messages, list):
            texts = [clean_text(m) for m in messages if isinstance(m, str) and m.strip()]
            if texts:
                return "; ".join(texts)[:200]
    return None


# --- reading --------------------------------------------------------------------------------


def units(description: str) -> int:
    """How many units of the currency a BCRA rate is for, from its `descripcion`."""
    match = _PER_UNITS.search(description)
    if match is None:
        if "UNIDADES" in description.upper():
            raise UpstreamBadResponseError(
                UPSTREAM, f"cannot read the units of {description[:60]!r}"
            )
        return 1
    count = int(match.group(1).replace(".", ""))
    if count < 1:
        raise UpstreamBadResponseError(UPSTREAM, f"{description[:60]!r} is for no units")
    return count


def _checked_rate(code: str, day: date, rate: Decimal) -> Decimal:
    if not rate.is_finite() or rate <= 0 or rate >= ABSURD_RATE:
        raise UpstreamBadResponseError(UPSTREAM, f"{code} on {day.isoformat()} is {rate}")
    return rate


def _fixing(code: str, day: date, quote: BcraQuote) -> Fixing:
    series = SERIES[code]
    return Fixing(
        source=SOURCE,
        series=f"BCRA:{series.wire}",
        base=series.base,
        quote="ARS",
        published=_checked_rate(series.wire, day, quote.rate),
        unit=units(quote.description),
        rate_date=day,
    )


def _one_per_code(day: date, quotes: Parsed[BcraQuote]) -> dict[str, BcraQuote]:
    """A date's quotes by BCRA code; a code twice with different figures is nonsense."""
    found: dict[str, BcraQuote] = {}
    for quote in quotes:
        seen = found.get(quote.code)
        if seen is not None and (seen.rate, units(seen.description)) != (
            quote.rate,
            units(quote.description),
        ):
            raise UpstreamBadResponseError(
                UPSTREAM,
                f"{quote.code} twice on {day.isoformat()} ({seen.rate} and {quote.rate})",
            )
        found.setdefault(quote.code, quote)
    return found


class BcraClient(FixingClient):
    """Reads fixings from the BCRA over an injected ``httpx2.AsyncClient`` whose base URL is
    the BCRA's (`BASE_URL`). Implements `app.upstreams.fixings.RateSource`."""

    source = SOURCE
    codes = frozenset(SERIES)
    time_zone = BUENOS_AIRES

    async def _get(self, path: str, params: dict[str, str | int]) -> Any:
        return await send(
            self._http,
            UPSTREAM,
            "GET",
            PREFIX + path,
            params=params,
            map_error=_map_error,
            retries=self._retries,
        )

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        series = SERIES.get(code)
        if series is None:
            raise UpstreamNotFoundError(UPSTREAM, f"no BCRA series {code!r}")
        asked = min(on_or_before, self.today(self._clock()))
        if not_before > asked:
            return None
        window_days = (asked - not_before).days + 1
        limit = min(max(window_days, LIMIT_MIN), LIMIT_MAX)
        offset = 0
        for _ in range(MAX_PAGES):
            body = await self._get(
                f"/Cotizaciones/{series.wire}",
                {
                    "fechaDesde": not_before.isoformat(),
                    "fechaHasta": asked.isoformat(),
                    "limit": limit,
                    "offset": offset,
                },
            )
            read = parse(UPSTREAM, _SERIES_PAGE, body, f"{series.wire} series")
            found = _newest(code, read.results, asked=asked, not_before=not_before)
            if found is not None:
                return found
            # Newest first: a later page holds only older dates, read when this one had none.
            offset += len(read.results)
            if not _more_pages(read, offset, limit):
                return None
        return None

    async def fixings_on(self, day: date) -> list[Fixing]:
        """Every rate the BCRA published for `day` (clamped to `today`), in one call to the
        per-day table: [] on a day without fixings (the BCRA does not roll back). Rows
        without a rate (ARS, gold, silver: `tipoCotizacion` 0) and codes that are no series
        are left out; a negative or absurd rate, a table dated after `day` or a currency
        twice with different figures fails the whole table."""
        asked = min(day, self.today(self._clock()))
        body = await self._get("/Cotizaciones", {"fecha": asked.isoformat()})
        table = parse(UPSTREAM, _TABLE, body, "quote table").results
        if table.fecha is None or not (table.detalle or table.detalle.rejected):
            return []
        if table.detalle.rejected:
            first = table.detalle.rejected[0]
            raise UpstreamBadResponseError(
                UPSTREAM, f"unreadable quote {first.index} in the table: {first.reason}"
            )
        _not_after(table.fecha, asked)
        fixings: list[Fixing] = []
        for wire, quote in _one_per_code(table.fecha, table.detalle).items():
            code = _BY_WIRE.get(wire)
            if code is None or quote.rate == 0:
                continue
            fixings.append(_fixing(code, table.fecha, quote))
        return fixings


def _not_after(day: date, asked: date) -> None:
    if day > asked:
        raise UpstreamBadResponseError(
            UPSTREAM, f"answered a fixing of {day.isoformat()} for {asked.isoformat()}"
        )


def _newest(code: str, days: list[BcraDay], *, asked: date, not_before: date) -> Fixing | None:
    """The newest fixing of `code` among a series page's dates, within the window."""
    wire = SERIES[code].wire
    best: tuple[date, BcraDay] | None = None
    for day in days:
        if day.fecha is None or (not day.detalle and not day.detalle.rejected):
            continue  # a date without quotes (the BCRA lists some with `detalle: []`)
        _not_after(day.fecha, asked)
        if day.fecha < not_before:
            continue
        if best is None or day.fecha > best[0]:
            best = (day.fecha, day)
        elif day.fecha == best[0]:
            # The same date twice: its quotes must agree, or the date is nonsense.
            _one_per_code(day.fecha, Parsed([*best[1].detalle, *day.detalle], []))
    if best is None:
        return None
    fecha, chosen = best
    quote = _one_per_code(fecha, chosen.detalle).get(wire)
    if quote is None:
        what = "an unreadable quote" if chosen.detalle.rejected else "other currencies"
        raise UpstreamBadResponseError(
            UPSTREAM, f"the {wire} series held {what} on {fecha.isoformat()}"
        )
    return _fixing(code, fecha, quote)


def _more_pages(read: _SeriesPage, offset: int, limit: int) -> bool:
    """Whether rows after the first `offset` remain (the page size may be the server's own)."""
    if not read.results:
        return False
    resultset = read.metadata.resultset if read.metadata else None
    count = resultset.count if resultset else None
    if count is None:
        return len(read.results) >= limit
    return offset < count
