"""dolarapi simulator: an ASGI app answering ``/v1/dolares`` as dolarapi.com does.

Routes (no auth):

* ``GET /v1/dolares``: an array of the seven casas (``oficial``, ``blue``, ``bolsa`` = MEP,
  ``contadoconliqui``, ``mayorista``, ``cripto``, ``tarjeta``), each
  ``{moneda, casa, nombre, compra, venta, fechaActualizacion}``.
* ``GET /v1/dolares/{casa}``: one of them; an unknown casa is a 404 page (dolarapi serves
  static files [INF]).
* ``GET /v1/estado``: ``{"estado": "Disponible", "aleatorio": <int>}``.

Values follow the BCRA simulator's market (`app.sandbox.bcra.ArgentineMarket`): each casa is
a plausible premium over that day's REF (MEP a few percent above it), `tarjeta` is `oficial`
x 1.30 as dolarapi computes it, and when the market day is 2026-08-21 the values recorded on
2026-08-22 are served exactly. The market day is the latest Argentine business day whose
close (19:00 UTC) is before the last scrape.

`fechaActualizacion` is a scrape time, as on the real service: the scraped casas (blue,
bolsa, contadoconliqui, cripto) carry the time of the last scrape (hourly at :59 from 12:00
to 21:00 UTC on weekdays plus 04:59, every three hours at weekends), which keeps advancing
while the value stands still; `oficial` and `tarjeta` carry 18:55Z and `mayorista` 15:58Z of
the market day (scraped from Ámbito, which keeps the market time). Numbers are JSON numbers
with as many decimals as needed (0 to 2), never floats.

Faults (``GET``/``PUT /_sandbox/faults``, `app.sandbox.faults`): ``error`` a 500,
``timeout`` a held request, ``html`` a proxy's 502 page, ``truncated`` half a body,
``rate_limited`` a 429 [INF: no limit is documented]. Other modes do not apply here.

``app.state.faults`` is the `Faults`, ``app.state.calls`` a ``Counter`` of requests per
route (``"GET /v1/dolares"``, ``"GET /v1/dolares/{casa}"``, ``"GET /v1/estado"``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.sandbox.bcra import ArgentineMarket
from app.sandbox.faults import (
    Faults,
    VendorFaults,
    fault_control_route,
)

ALL = "GET /v1/dolares"
ONE = "GET /v1/dolares/{casa}"
STATUS = "GET /v1/estado"

CASAS: dict[str, str] = {
    "oficial": "Oficial",
    "blue": "Blue",
    "bolsa": "Bolsa",
    "contadoconliqui": "Contado con liquidación",
    "mayorista": "Mayorista",
    "cripto": "Cripto",
    "tarjeta": "Tarjeta",
}

SAMPLE_MARKET_DAY = date(2026, 8, 21)
# Recorded at 2026-08-22 18:01 UTC (enzonotario/dolarapi.com, datos/v1/dolares/index.json).
_SAMPLE: dict[str, tuple[str, str]] = {
    "oficial": ("1470", "1520"),
    "blue": ("1530", "1550"),
    "bolsa": ("1531.7", "1545.3"),
    "contadoconliqui": ("1588.3", "1589.7"),
    "mayorista": ("1490", "1499"),
    "cripto": ("1582.1", "1585.99"),
    "tarjeta": ("1911", "1976"),
}

MARKET_CLOSE = time(19, 0)  # UTC: the wholesale market closes at 15:00 in Buenos Aires
OFICIAL_TIME = time(18, 55)
MAYORISTA_TIME = time(15, 58)
WEEKDAY_SCRAPES = frozenset({4, *range(12, 22)})
WEEKEND_SCRAPES = frozenset(range(2, 24, 3))
TARJETA_FACTOR = Decimal("1.30")

_ONE = Decimal(1)
_TENTH = Decimal("0.1")
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Quote:
    """One casa as served: figures and the instant dolarapi stamps on them."""

    casa: str
    compra: Decimal
    venta: Decimal
    updated: datetime


def last_scrape(now: datetime) -> datetime:
    """The latest scrape at or before `now` (UTC)."""
    now = now.astimezone(UTC) if now.tzinfo is not None else now.replace(tzinfo=UTC)
    tick = now.replace(minute=59, second=0, microsecond=0)
    if tick > now:
        tick -= timedelta(hours=1)
    while tick.hour not in (WEEKDAY_SCRAPES if tick.weekday() < 5 else WEEKEND_SCRAPES):
        tick -= timedelta(hours=1)
    return tick


def _wobble(key: str, day: date, spread: str) -> Decimal:
    digest = hashlib.sha256(f"dolarapi:{key}:{day.isoformat()}".encode()).digest()
    fraction = Decimal(int.from_bytes(digest[:6], "big")) / Decimal(2**48)
    return 1 + (fraction * 2 - 1) * Decimal(spread)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=UTC)


class DolarMarket:
    """The simulated dolarapi's figures at any instant, from the BCRA simulator's market."""

    def __init__(self, market: ArgentineMarket | None = None) -> None:
        self.market = ArgentineMarket() if market is None else market

    def market_day(self, scrape: datetime) -> date:
        day = scrape.date()
        if scrape.time() < MARKET_CLOSE:
            day -= timedelta(days=1)
        return self.market.latest_fixing_day(day)

    def quotes(self, now: datetime) -> list[Quote]:
        scrape = last_scrape(now)
        day = self.market_day(scrape)
        figures = _SAMPLE_FIGURES if day == SAMPLE_MARKET_DAY else self._figures(day)
        stamps = {
            "oficial": _at(day, OFICIAL_TIME),
            "tarjeta": _at(day, OFICIAL_TIME),
            "mayorista": _at(day, MAYORISTA_TIME),
        }
        return [Quote(casa, *figures[casa], stamps.get(casa, scrape)) for casa in CASAS]

    def _figures(self, day: date) -> dict[str, tuple[Decimal, Decimal]]:
        ref = self.market.reference(day)
        with localcontext() as context:
            context.prec = 28

            def premium(casa: str, over: str, spread: str, step: Decimal) -> Decimal:
                factor = Decimal(over) * _wobble(casa, day, spread)
                return (ref * factor).quantize(step, ROUND_HALF_EVEN)

            mayorista = premium("mayorista", "1.004", "0.002", _ONE)
            oficial = premium("oficial", "1.018", "0.003", Decimal(5))
            bolsa = premium("bolsa", "1.028", "0.008", _TENTH)
            ccl = premium("contadoconliqui", "1.058", "0.008", _TENTH)
            blue = premium("blue", "1.035", "0.010", Decimal(5))
            cripto = premium("cripto", "1.056", "0.008", _CENT)
            figures = {
                "mayorista": (mayorista - 9, mayorista),
                "oficial": (oficial - 50, oficial),
                "bolsa": ((bolsa * Decimal("0.9912")).quantize(_TENTH), bolsa),
                "contadoconliqui": (ccl - Decimal("1.4"), ccl),
                "blue": (blue - 20, blue),
                "cripto": ((cripto * Decimal("0.9982")).quantize(_TENTH), cripto),
            }
            figures["tarjeta"] = (
                (oficial - 50) * TARJETA_FACTOR,
                oficial * TARJETA_FACTOR,
            )
        return figures


_SAMPLE_FIGURES = {
    casa: (Decimal(compra), Decimal(venta)) for casa, (compra, venta) in _SAMPLE.items()
}


# --- the app --------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]
_FAULTS = VendorFaults(
    error=lambda: Response("Internal Server Error", 500, media_type="text/plain"),
    rate_limited=lambda: Response("Too Many Requests", 429, media_type="text/plain"),
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_dolarapi_app(
    faults: Faults | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    market: ArgentineMarket | None = None,
) -> Starlette:
    """A fresh dolarapi simulator; `now` is its clock (UTC), `market` the BCRA simulator's
    figures it follows (its own by default: the same for the same dates)."""
    simulator = _DolarapiSimulator(
        Faults() if faults is None else faults, now or _utc_now, DolarMarket(market)
    )
    app = Starlette(
        routes=[
            simulator.route("/v1/dolares", ALL, simulator.all_casas),
            simulator.route("/v1/dolares/{casa}", ONE, simulator.one_casa),
            simulator.route("/v1/estado", STATUS, simulator.status),
            fault_control_route(simulator.faults),
        ],
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    return app


class _DolarapiSimulator:
    def __init__(self, faults: Faults, now: Callable[[], datetime], market: DolarMarket) -> None:
        self.faults = faults
        self.now = now
        self.market = market
        self.calls: Counter[str] = Counter()

    def route(self, path: str, key: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, key, handler)

        return Route(path, endpoint, methods=["GET"])

    async def _serve(self, request: Request, key: str, handler: Handler) -> Response:
        self.calls[key] += 1
        return await _FAULTS.serve(request, self.faults, lambda: handler(request))

    async def all_casas(self, request: Request) -> Response:
        return _json("[" + ",".join(_quote_json(q) for q in self.market.quotes(self.now())) + "]")

    async def one_casa(self, request: Request) -> Response:
        casa = request.path_params["casa"]
        for quote in self.market.quotes(self.now()):
            if quote.casa == casa:
                return _json(_quote_json(quote))
        return _not_found()

    async def status(self, request: Request) -> Response:
        scrape = last_scrape(self.now())
        digest = hashlib.sha256(scrape.isoformat().encode()).digest()
        random = int.from_bytes(digest[:2], "big") % 10000
        return _json(json.dumps({"estado": "Disponible", "aleatorio": random}))


def _number(value: Decimal) -> str:
    """A JSON number with the decimals the figure needs (1520, 1545.3, 1585.99)."""
    return f"{value.normalize():f}"


def _quote_json(quote: Quote) -> str:
    stamp = quote.updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (
        f'{{"moneda":"USD","casa":{json.dumps(quote.casa)},'
        f'"nombre":{json.dumps(CASAS[quote.casa], ensure_ascii=False)},'
        f'"compra":{_number(quote.compra)},"venta":{_number(quote.venta)},'
        f'"fechaActualizacion":"{stamp}"}}'
    )


def _json(text: str, status_code: int = 200) -> Response:
    return Response(text.encode(), status_code, media_type="application/json")


_NOT_FOUND_HTML = (
    "<!DOCTYPE html><html><head><title>404: NOT_FOUND</title></head>"
    "<body><h1>404: NOT_FOUND</h1></body></html>"
)


def _not_found() -> Response:
    return Response(_NOT_FOUND_HTML, 404, media_type="text/html")


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _not_found()
    return Response(str(exc.detail), exc.status_code, media_type="text/plain")
