"""dolarapi adapter: Argentina's MEP dollar (`bolsa`), a scraped market reference, not a fixing.

dolarapi.com is a community service that scrapes DolarHoy and Ámbito: convenient, with no
SLA and a record of stale or wrong values, so tesoro offers it only as a labelled market
reference (`LABEL`), never as an official rate.

Series (`SERIES`): `MEP` = ``GET /v1/dolares/bolsa``, ARS per USD, as
``Fixing(series="DOLARAPI:MEP", base="USD", quote="ARS")``. The figure is `venta` (the ask,
what buying one dollar costs), exactly as published: a mid would be a figure nobody
published, and `compra` is not even required in dolarapi's own schema.

`fechaActualizacion` is the time of the last scrape, not a market time (it keeps advancing
over a weekend while the value stands still), so the fixing's `rate_date` is that instant's
date in Buenos Aires. dolarapi keeps no history: a question about a day before its current
value's date has no answer (None), never the current value under the wrong date.

Never returned (raised as `UpstreamBadResponseError`): anything that is not JSON (an HTML
page with status 200 included), another casa or currency than asked, a zero, negative or
absurd figure, `compra` above `venta` (the pair inverted), a scrape time in the future.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
from pydantic import TypeAdapter

from app.upstreams.bcra import BUENOS_AIRES, buenos_aires_today
from app.upstreams.errors import UpstreamBadResponseError, UpstreamError, UpstreamNotFoundError
from app.upstreams.fixings import Fixing, FixingClient
from app.upstreams.http import generic_status_error, parse, send
from app.upstreams.reading import Text, Timestamp, TolerantModel, WireDecimal

UPSTREAM = "dolarapi"
SOURCE = "dolarapi"
BASE_URL = "https://dolarapi.com"
LABEL = "dolarapi (DolarHoy): market reference, not an official rate"

SERIES: dict[str, str] = {"MEP": "bolsa"}
"""tesoro's series codes for dolarapi, with the `casa` each is read from."""

# Clocks disagree by a little; a scrape time further ahead than this is a broken clock.
CLOCK_SKEW = timedelta(minutes=5)
ABSURD_RATE = Decimal("1E+12")


class DolarapiQuote(TolerantModel):
    """One `Cotizacion`: `venta` and the scrape time are what a fixing needs."""

    moneda: Text
    casa: Text
    venta: WireDecimal
    fechaActualizacion: Timestamp  # noqa: N815 (dolarapi's own name)
    # Optional in dolarapi's schema; when sent it must be readable, to check the pair.
    compra: WireDecimal | None = None


_QUOTE = TypeAdapter(DolarapiQuote)


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    if response.status_code == 404:
        return UpstreamNotFoundError(UPSTREAM, "not found")
    return generic_status_error(UPSTREAM, response)


def _bad(message: str) -> UpstreamBadResponseError:
    return UpstreamBadResponseError(UPSTREAM, message)


class DolarapiClient(FixingClient):
    """Reads dolarapi's current values over an injected ``httpx2.AsyncClient`` whose base URL
    is dolarapi's (`BASE_URL`). Implements `app.upstreams.fixings.RateSource`."""

    source = SOURCE
    codes = frozenset(SERIES)
    time_zone = BUENOS_AIRES

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        casa = SERIES.get(code)
        if casa is None:
            raise UpstreamNotFoundError(UPSTREAM, f"no dolarapi series {code!r}")
        now = self._clock()
        asked = min(on_or_before, self.today(now))
        if not_before > asked:
            return None
        body = await send(
            self._http,
            UPSTREAM,
            "GET",
            f"/v1/dolares/{casa}",
            map_error=_map_error,
            retries=self._retries,
        )
        if not isinstance(body, dict):
            raise _bad(f"the {casa} answer is not an object")
        quote = parse(UPSTREAM, _QUOTE, body, f"{casa} quote")
        _check(quote, casa, now)
        scraped_on = buenos_aires_today(quote.fechaActualizacion)
        if scraped_on > asked or scraped_on < not_before:
            return None  # no history before the current value; too old for the window
        return Fixing(
            source=SOURCE,
            series=f"DOLARAPI:{code}",
            base="USD",
            quote="ARS",
            published=quote.venta,
            unit=1,
            rate_date=scraped_on,
        )


def _check(quote: DolarapiQuote, casa: str, now: datetime) -> None:
    if quote.casa != casa or quote.moneda != "USD":
        raise _bad(f"asked for USD {casa}, answered {quote.moneda[:10]} {quote.casa[:20]}")
    if quote.unreadable:
        raise _bad(f"{casa} {quote.unreadable[0].field} is unreadable: {quote.unreadable[0].sent}")
    for name, figure in (("venta", quote.venta), ("compra", quote.compra)):
        if figure is not None and (not figure.is_finite() or figure <= 0 or figure >= ABSURD_RATE):
            raise _bad(f"{casa} {name} is {figure}")
    if quote.compra is not None and quote.compra > quote.venta:
        raise _bad(f"{casa} is inverted: compra {quote.compra} above venta {quote.venta}")
    aware_now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if quote.fechaActualizacion > aware_now + CLOCK_SKEW:
        raise _bad(f"{casa} was scraped in the future ({quote.fechaActualizacion.isoformat()})")
