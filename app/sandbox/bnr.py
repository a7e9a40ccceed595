"""BNR simulator: an ASGI app serving the National Bank of Romania's XML files as curs.bnr.ro does.

Routes (no auth, as on the real host):

* ``GET /nbrfxrates.xml``: the latest fixing (kept over weekends and holidays);
* ``GET /nbrfxrates10days.xml``: the last ten fixings, ascending;
* ``GET /files/xml/years/nbrfxratesYYYY.xml``: every fixing of that year up to today,
  ascending, for the years the simulator's window touches; any other year, or a year with no
  fixing yet, is a 404 HTML page, as is any other path.

The files are as recorded in 2026: ``text/xml``, the XML declaration on its own line, then one
line; the default namespace ``https://www.bnr.ro/xsd`` with the ``xsi`` prefix bound to the
bogus ``https://www.w3.org/2001/XMLSchema-instance`` (``legacy_namespace=True``, or
``app.state.legacy_namespace``, serves the pre-2026 ``http://`` root instead);
``Header/{Publisher, PublishingDate, MessageType=DR}``, ``Body/{Subject, OrigCurrency=RON,
Cube@date/Rate@currency[@multiplier]}``; 37 currencies in alphabetical order (no ARS, no BGN),
``multiplier="100"`` on HUF, IDR, ISK, JPY and KRW, XAU in RON per gram, and always 4
decimals. ``Cache-Control: no-cache`` on every answer.

Fixings: one per Romanian banking day (weekdays that are not Romanian public holidays in the
`holidays` package: 1-2 Jan, 6-7 Jan, 24 Jan, Orthodox Good Friday and Easter Monday, ...)
over the 365 days up to `today` (and every day since 2026-01-01), today's included: the
simulator has no clock of day, so today's fixing is out at once, not at 13:00. Values come
from `app.sandbox.fxmarket`, the EUR within 0.05% of the ECB simulator's EUR/RON.

Faults (``GET``/``PUT /_sandbox/faults``, see `app.sandbox.faults`): ``error`` (a 500 HTML
page), ``timeout``, ``html`` (a proxy's 502), ``truncated``, ``rate_limited`` (429),
``unauthorized`` (the firewall's 403 page), and ``old_host_html``: the BNR's old host, whose
``/nbrfxrates.xml`` answers its homepage (``text/html``, status 200) and whose yearly files
redirect to it (302), as www.bnr.ro has since August 2026.

``app.state.faults`` is the `Faults`, ``app.state.calls`` a ``Counter`` of requests per route
(``"GET /nbrfxrates.xml"``, ``"GET /nbrfxrates10days.xml"``, ``"GET /files/xml/years"``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from app.sandbox.faults import (
    Faults,
    VendorFaults,
    fault_control_route,
)
from app.sandbox.fxmarket import (
    first_fixing_day,
    per_euro,
    publishing_days,
    romanian_banking_day,
)

TIME_ZONE = ZoneInfo("Europe/Bucharest")
WINDOW = timedelta(days=364)
"""The first day with fixings is `today` less this (365 days in all), or 2026-01-01 if earlier."""

CURRENCIES: tuple[str, ...] = (
    "AED", "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EGP", "EUR", "GBP", "HKD",
    "HUF", "IDR", "ILS", "INR", "ISK", "JPY", "KRW", "MDL", "MXN", "MYR", "NOK", "NZD",
    "PHP", "PLN", "RSD", "RUB", "SEK", "SGD", "THB", "TRY", "UAH", "USD", "XAU", "XDR",
    "ZAR",
)  # fmt: skip
MULTIPLIERS: dict[str, int] = {"HUF": 100, "IDR": 100, "ISK": 100, "JPY": 100, "KRW": 100}
TEN_DAYS = 10

LATEST = "GET /nbrfxrates.xml"
TEN_DAYS_FILE = "GET /nbrfxrates10days.xml"
YEAR_FILE = "GET /files/xml/years"

_ROOTS = {
    False: (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<DataSet xmlns="https://www.bnr.ro/xsd" '
        'xmlns:xsi="https://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="https://curs.bnr.ro/xsd/nbrfxrates.xsd">'
    ),
    True: (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<DataSet xmlns="http://www.bnr.ro/xsd" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.bnr.ro/xsd nbrfxrates.xsd">'
    ),
}

HOMEPAGE_HTML = (
    '<!DOCTYPE html>\r\n<html lang="ro">\r\n<head>\r\n<meta charset="utf-8">\r\n'
    "<title>Banca Națională a României</title>\r\n</head>\r\n<body>\r\n"
    "<h1>Banca Națională a României</h1>\r\n"
    '<p><a href="https://www.bnr.ro/Cursurile-pietei-valutare-118.aspx">'
    "Cursurile pieței valutare</a></p>\r\n</body>\r\n</html>\r\n"
)
HOMEPAGE_URL = "https://www.bnr.ro/Home.aspx"

_FOUR_PLACES = Decimal("0.0001")
_FAULTS = VendorFaults(
    error=lambda: _page(500, "500 - Internal Server Error"),
    rate_limited=lambda: _page(429, "429 - Too Many Requests"),
    unauthorized=lambda: _page(403, "The requested URL was rejected"),
)


def bnr_today() -> date:
    """Today in Bucharest."""
    return datetime.now(TIME_ZONE).date()


def bnr_rate(currency: str, day: date) -> Decimal:
    """The simulator's BNR rate: RON per `MULTIPLIERS` (else 1) units of `currency` on
    `day`, to 4 decimals. The BNR's EUR is the market's EUR/RON within +-0.04% (the BNR
    fixes from its own quotes at 13:00, the ECB at 14:10 CET)."""
    deviation = random.Random(f"tesoro-bnr:{day.isoformat()}").randint(-4, 4)
    ron_per_euro = per_euro("RON", day) * (1 + Decimal(deviation) * _FOUR_PLACES)
    if currency == "EUR":
        value = ron_per_euro
    else:
        value = ron_per_euro / per_euro(currency, day) * MULTIPLIERS.get(currency, 1)
    return value.quantize(_FOUR_PLACES)


def _rate_xml(currency: str, day: date) -> str:
    multiplier = MULTIPLIERS.get(currency)
    attribute = "" if multiplier is None else f' multiplier="{multiplier}"'
    return f'<Rate currency="{currency}"{attribute}>{bnr_rate(currency, day):f}</Rate>'


@lru_cache(maxsize=1024)
def _cube_xml(day: date) -> str:
    rates = "".join(_rate_xml(currency, day) for currency in CURRENCIES)
    return f'<Cube date="{day.isoformat()}">{rates}</Cube>'


def bnr_xml(days: list[date], *, published: date, legacy_namespace: bool = False) -> str:
    """A BNR file holding the fixings of `days` (ascending), as curs.bnr.ro writes it."""
    return (
        f"{_ROOTS[legacy_namespace]}<Header><Publisher>National Bank of Romania</Publisher>"
        f"<PublishingDate>{published.isoformat()}</PublishingDate>"
        "<MessageType>DR</MessageType></Header><Body><Subject>Reference rates</Subject>"
        "<OrigCurrency>RON</OrigCurrency>"
        f"{''.join(_cube_xml(day) for day in days)}</Body></DataSet>"
    )


def _page(status: int, title: str) -> Response:
    body = (
        f"<!DOCTYPE html>\r\n<html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1></body></html>\r\n"
    )
    return Response(body, status, media_type="text/html", headers={"cache-control": "no-cache"})


def create_bnr_app(
    faults: Faults | None = None,
    *,
    today: Callable[[], date] | None = None,
    legacy_namespace: bool = False,
) -> Starlette:
    """A fresh BNR simulator; `today` (default `bnr_today`) says which day it is in
    Bucharest, asked on every request."""
    simulator = _BnrSimulator(Faults() if faults is None else faults, today or bnr_today)
    app = Starlette(
        routes=[
            Route("/nbrfxrates.xml", simulator.latest, methods=["GET"]),
            Route("/nbrfxrates10days.xml", simulator.ten_days, methods=["GET"]),
            Route("/files/xml/years/{name}", simulator.year, methods=["GET"]),
            fault_control_route(simulator.faults),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed},
    )
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    app.state.legacy_namespace = legacy_namespace
    return app


async def _not_found(request: Request, exc: Exception) -> Response:
    return _page(404, "404 - Pagina nu a fost găsită")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return _page(405, "405 - Method Not Allowed")


class _BnrSimulator:
    def __init__(self, faults: Faults, today: Callable[[], date]) -> None:
        self.faults = faults
        self.today = today
        self.calls: Counter[str] = Counter()

    def _fixing_days(self) -> list[date]:
        today = self.today()
        return publishing_days(first_fixing_day(today, WINDOW), today, romanian_banking_day)

    async def _serve(
        self, request: Request, key: str, answer: Callable[[], Response], *, yearly: bool
    ) -> Response:
        self.calls[key] += 1

        def old_host() -> Response:
            if yearly:
                return RedirectResponse(HOMEPAGE_URL, status_code=302)
            return Response(HOMEPAGE_HTML, 200, media_type="text/html")

        async def answered() -> Response:
            return answer()

        return await _FAULTS.serve(request, self.faults, answered, own={"old_host_html": old_host})

    def _xml(self, request: Request, days: list[date], published: date) -> Response:
        legacy = bool(getattr(request.app.state, "legacy_namespace", False))
        body = bnr_xml(days, published=published, legacy_namespace=legacy)
        return Response(
            body.encode(), 200, media_type="text/xml", headers={"cache-control": "no-cache"}
        )

    async def latest(self, request: Request) -> Response:
        def answer() -> Response:
            days = self._fixing_days()[-1:]
            return self._xml(request, days, days[-1])

        return await self._serve(request, LATEST, answer, yearly=False)

    async def ten_days(self, request: Request) -> Response:
        def answer() -> Response:
            days = self._fixing_days()[-TEN_DAYS:]
            return self._xml(request, days, days[-1])

        return await self._serve(request, TEN_DAYS_FILE, answer, yearly=False)

    async def year(self, request: Request) -> Response:
        name = request.path_params["name"]

        def answer() -> Response:
            year = name.removeprefix("nbrfxrates").removesuffix(".xml")
            days = [d for d in self._fixing_days() if str(d.year) == year]
            if not days or f"nbrfxrates{year}.xml" != name:
                return _page(404, "404 - Pagina nu a fost găsită")
            # A year's PublishingDate is its last update.
            return self._xml(request, days, days[-1])

        return await self._serve(request, YEAR_FILE, answer, yearly=True)
