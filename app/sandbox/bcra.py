"""BCRA simulator: an ASGI app answering Estadísticas Cambiarias v1.0 as api.bcra.gob.ar does.

Routes (under ``/estadisticascambiarias/v1.0``, no auth):

* ``GET /Maestros/Divisas``: ``{"status": 200, "results": [{"codigo", "denominacion"}]}``.
* ``GET /Cotizaciones?fecha=YYYY-MM-DD``: ``{"status": 200, "results": {"fecha", "detalle"}}``
  (an object), every currency of that day; ``{"fecha": null, "detalle": []}`` on a weekend,
  an Argentine holiday or a day outside the data (no roll-back). Without ``fecha``, the
  latest day published. A range (``fechaDesde``/``fechaHasta``) is a 400.
* ``GET /Cotizaciones/{codMoneda}?fechaDesde=&fechaHasta=&limit=&offset=``: ``{"status",
  "metadata": {"resultset": {"count", "offset", "limit"}}, "results": [{"fecha", "detalle"}]}``
  (an array), newest first, one currency per date. A holiday on a weekday is listed with
  ``detalle: []`` [INF: a day "may come back with an empty detalle"]; weekends are not.
  Without dates, the latest quote alone. ``limit`` 10..1000 (default 1000 [INF]),
  ``offset`` from 0. Parameter names are read in any case (``fechadesde`` works).

A date after today in Buenos Aires (``fecha``, ``fechaHasta``) is a 400; an unknown
currency is a 404; errors are ``{"status": <int>, "errorMessages": ["..."]}`` (message texts
[INF]). Numbers are JSON numbers with 8 decimals.

Data: the 365 days up to today, fixings on Argentina's business days (weekends and the
`holidays` package's Argentine holidays have none), plus two fixed fixture days when they are
not after today: 2026-03-19, whose nine recorded rows (ARS, BRL, EUR, JPY, REF, USD, VND,
XAU, XDR) are served exactly as the BCRA sent them, and 2026-03-20 (REF 1393.43800000, USD
1390.50). Every other figure is derived from the date alone (a seeded walk around a drift):
the same answer for the same day on every request. Currencies: the 39 codes the BCRA listed
on 2026-03-19, with MXN under ``MXP``, the defunct ``VEB``, VND per 1,000 units, and
zeros for ARS, XAU, XAG and VEB.

Faults (``GET``/``PUT /_sandbox/faults``, `app.sandbox.faults`): ``error`` a 500 in the
error shape; ``timeout`` a held request; ``html`` a proxy's 502 page (nothing recorded shows
the BCRA answering HTML with status 200, the BNR's trap); ``truncated`` half a body;
``rate_limited`` a connection reset, as the BCRA closes connections on clients that ask too
fast (it documents no 429). Other modes do not apply here.

``app.state.faults`` is the `Faults`, ``app.state.calls`` a ``Counter`` of requests per
route (``"GET /Cotizaciones"``, ``"GET /Cotizaciones/{codMoneda}"``,
``"GET /Maestros/Divisas"``) and ``app.state.market`` the `ArgentineMarket`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache

import holidays
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.sandbox.faults import (
    ConnectionDroppedError,
    Faults,
    VendorFaults,
    fault_control_route,
)

PREFIX = "/estadisticascambiarias/v1.0"
TABLE = "GET /Cotizaciones"
SERIES = "GET /Cotizaciones/{codMoneda}"
CURRENCIES = "GET /Maestros/Divisas"

DAYS_OF_DATA = 365
LIMIT_MIN = 10
LIMIT_MAX = 1000
LIMIT_DEFAULT = 1000

SAMPLE_DAY = date(2026, 3, 19)
NEXT_SAMPLE_DAY = date(2026, 3, 20)

# Where the generated walk is anchored: the recorded REF and USD of the sample day.
ANCHOR_REF = Decimal("1395.5142")
ANCHOR_USD = Decimal("1394.50")
# About 20% a year: the crawl of the peso in 2026.
DAILY_DRIFT = Decimal("0.0005")

_EIGHT = Decimal("0.00000001")
_SIX = Decimal("0.000001")
_FOUR = Decimal("0.0001")
_CENT = Decimal("0.01")
_HALF = Decimal("0.5")

# Buenos Aires keeps UTC-3 all year.
_BUENOS_AIRES_OFFSET = timedelta(hours=-3)


@dataclass(frozen=True, slots=True)
class SimQuote:
    """One `detalle` row: USD per unit (`pase`) and ARS per unit (`cotizacion`)."""

    code: str
    description: str
    pase: Decimal
    cotizacion: Decimal


@dataclass(frozen=True, slots=True)
class _Currency:
    code: str
    description: str
    # "usd": `level` is USD per unit (EUR 1.156); "per_usd": units per USD (BRL 5.24);
    # "none": published with a zero rate (`level` is USD per unit, shown in tipoPase).
    kind: str
    level: Decimal
    unit: int = 1


def _c(code: str, description: str, kind: str, level: str, unit: int = 1) -> _Currency:
    return _Currency(code, description, kind, Decimal(level), unit)


# The 39 codes of 2026-03-19. Descriptions other than the recorded nine are [INF], in the
# BCRA's style (upper case, Spanish); levels are plausible 2026 values.
_CURRENCIES: tuple[_Currency, ...] = (
    _c("ARS", "PESO", "none", "0"),
    _c("AUD", "DOLAR AUSTRALIANO", "usd", "0.6350"),
    _c("AWG", "FLORIN (ARUBA)", "per_usd", "1.79"),
    _c("BOB", "BOLIVIANO", "per_usd", "6.96"),
    _c("BRL", "REAL", "per_usd", "5.2413"),
    _c("CAD", "DOLAR CANADIENSE", "per_usd", "1.3790"),
    _c("CHF", "FRANCO SUIZO", "per_usd", "0.7940"),
    _c("CLP", "PESO CHILENO", "per_usd", "925.40"),
    _c("CNH", "YUAN OFF SHORE", "per_usd", "7.1380"),
    _c("CNY", "YUAN", "per_usd", "7.1290"),
    _c("COP", "PESO COLOMBIANO", "per_usd", "3905.10"),
    _c("CZK", "CORONA CHECA", "per_usd", "21.480"),
    _c("DKK", "CORONA DANESA", "per_usd", "6.4560"),
    _c("EUR", "EURO", "usd", "1.1560"),
    _c("GBP", "LIBRA ESTERLINA", "usd", "1.3403"),
    _c("HKD", "DOLAR HONG KONG", "per_usd", "7.7810"),
    _c("ILS", "SHEKEL", "per_usd", "3.6020"),
    _c("INR", "RUPIA", "per_usd", "86.410"),
    _c("JPY", "YENS", "per_usd", "157.83"),
    _c("MXP", "PESO MEXICANO", "per_usd", "17.912"),
    _c("NIO", "CORDOBA", "per_usd", "36.740"),
    _c("NOK", "CORONA NORUEGA", "per_usd", "10.310"),
    _c("NZD", "DOLAR NEOZELANDES", "usd", "0.5810"),
    _c("PEN", "SOL", "per_usd", "3.5520"),
    _c("PYG", "GUARANI", "per_usd", "7512.0"),
    _c("REF", "DOLAR REFERENCIA COM 3500", "ref", "0"),
    _c("RSD", "DINAR SERBIO", "per_usd", "101.32"),
    _c("RUB", "RUBLO", "per_usd", "80.520"),
    _c("SEK", "CORONA SUECA", "per_usd", "9.6130"),
    _c("SGD", "DOLAR SINGAPUR", "per_usd", "1.3010"),
    _c("TRY", "LIRA TURCA", "per_usd", "41.520"),
    _c("USD", "DOLAR E.E.U.U.", "usd_row", "0"),
    _c("UYU", "PESO URUGUAYO", "per_usd", "40.120"),
    _c("VEB", "BOLIVAR VENEZOLANO", "none", "0"),
    _c("VND", "DONG VIETNAM (C/1.000 UNIDADES)", "per_usd", "26290", 1000),
    _c("XAG", "PLATA (1 ONZA)", "none", "52.10"),
    _c("XAU", "ORO FINO (1 ONZA)", "none", "4615.33"),
    _c("XDR", "DEG", "usd", "1.3586"),
    _c("ZAR", "RAND", "per_usd", "17.630"),
)
CODES: tuple[str, ...] = tuple(currency.code for currency in _CURRENCIES)


def _sample(code: str, description: str, pase: str, cotizacion: str) -> SimQuote:
    return SimQuote(code, description, Decimal(pase), Decimal(cotizacion))


# The recorded rows of 2026-03-19 (frankfurter's VCR cassette), exactly.
_SAMPLE_ROWS: dict[str, SimQuote] = {
    row.code: row
    for row in (
        _sample("ARS", "PESO", "0.00071700", "0.00000000"),
        _sample("BRL", "REAL", "0.19079600", "266.06502300"),
        _sample("EUR", "EURO", "1.15600000", "1612.04200000"),
        _sample("JPY", "YENS", "0.00633600", "8.83489600"),
        _sample("REF", "DOLAR REFERENCIA COM 3500", "0.00000000", "1395.51420000"),
        _sample("USD", "DOLAR E.E.U.U.", "0.00000000", "1394.50000000"),
        _sample("VND", "DONG VIETNAM (C/1.000 UNIDADES)", "0.03803600", "53.04096500"),
        _sample("XAU", "ORO FINO (1 ONZA)", "4615.33000000", "0.00000000"),
        _sample("XDR", "DEG", "1.35860000", "1894.56770000"),
    )
}
# The recorded REF and USD of 2026-03-20 (the other currencies follow from USD).
_NEXT_SAMPLE = {"REF": Decimal("1393.43800000"), "USD": Decimal("1390.50")}


def _wobble(key: str, day: date, spread: str) -> Decimal:
    """A figure in [1 - spread, 1 + spread] derived from the key and the day alone."""
    digest = hashlib.sha256(f"{key}:{day.isoformat()}".encode()).digest()
    fraction = Decimal(int.from_bytes(digest[:6], "big")) / Decimal(2**48)
    return 1 + (fraction * 2 - 1) * Decimal(spread)


class ArgentineMarket:
    """The simulated BCRA's figures: Argentina's business days and each day's quotes."""

    def __init__(self) -> None:
        self._holidays = holidays.country_holidays("AR")
        self._tables: dict[date, tuple[SimQuote, ...]] = {}

    def is_fixing_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self._holidays

    def is_weekday_holiday(self, day: date) -> bool:
        return day.weekday() < 5 and day in self._holidays

    def latest_fixing_day(self, on_or_before: date) -> date:
        day = on_or_before
        while not self.is_fixing_day(day):
            day -= timedelta(days=1)
        return day

    def reference(self, day: date) -> Decimal:
        """Comunicación A 3500 (REF), ARS per USD, 4 significant decimals."""
        if day == SAMPLE_DAY:
            return ANCHOR_REF
        if day == NEXT_SAMPLE_DAY:
            return _NEXT_SAMPLE["REF"]
        return _reference(day)

    def usd(self, day: date) -> Decimal:
        """The USD row ("BCRA cotización USD"), a little under REF, in steps of 0.50."""
        if day == SAMPLE_DAY:
            return ANCHOR_USD
        if day == NEXT_SAMPLE_DAY:
            return _NEXT_SAMPLE["USD"]
        with localcontext() as context:
            context.prec = 28
            raw = self.reference(day) * (Decimal("0.9993") * _wobble("USD", day, "0.0004"))
            return ((raw / _HALF).quantize(Decimal(1), ROUND_HALF_EVEN) * _HALF).quantize(
                Decimal("0.01")
            )

    def quotes(self, day: date) -> list[SimQuote]:
        """Every row of `day`'s table (whether or not it is a fixing day), codes in order."""
        table = self._tables.get(day)
        if table is None:
            table = self._tables[day] = _quotes(self, day)
        return list(table)


@lru_cache(maxsize=1024)
def _reference(day: date) -> Decimal:
    with localcontext() as context:
        context.prec = 28
        days = (day - SAMPLE_DAY).days
        trend = ANCHOR_REF * (1 + DAILY_DRIFT) ** days
        return (trend * _wobble("REF", day, "0.003")).quantize(_FOUR, ROUND_HALF_EVEN)


def _quotes(market: ArgentineMarket, day: date) -> tuple[SimQuote, ...]:
    usd = market.usd(day)
    rows: list[SimQuote] = []
    with localcontext() as context:
        context.prec = 28
        for currency in _CURRENCIES:
            if day == SAMPLE_DAY and currency.code in _SAMPLE_ROWS:
                rows.append(_SAMPLE_ROWS[currency.code])
                continue
            rows.append(_quote(currency, day, usd, market.reference(day)))
    return tuple(rows)


def _quote(currency: _Currency, day: date, usd: Decimal, ref: Decimal) -> SimQuote:
    zero = Decimal(0)
    level = currency.level * _wobble(currency.code, day, "0.004")
    if currency.kind == "ref":
        return SimQuote(currency.code, currency.description, zero, ref)
    if currency.kind == "usd_row":
        return SimQuote(currency.code, currency.description, zero, usd)
    if currency.kind == "none":
        # ARS shows the USD cross of one peso; gold and silver their dollar price.
        pase = (1 / usd).quantize(_SIX) if currency.code == "ARS" else level.quantize(_CENT)
        return SimQuote(currency.code, currency.description, pase, zero)
    if currency.kind == "usd":
        pase = level.quantize(_FOUR)
        # Derived from the USD row, exactly (EUR 1.156 x 1394.50 = 1612.042).
        return SimQuote(currency.code, currency.description, pase, pase * usd)
    units = Decimal(currency.unit)
    return SimQuote(
        currency.code,
        currency.description,
        (units / level).quantize(_SIX),
        (usd * units / level).quantize(_SIX),
    )


def buenos_aires_today() -> date:
    """Today's date in Buenos Aires, from the system clock."""
    return (datetime.now(UTC) + _BUENOS_AIRES_OFFSET).date()


# --- the app --------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]
_FAULTS = VendorFaults(
    error=lambda: _error(500, "Error interno del servidor."), rate_limited=lambda: _ResetResponse()
)


def create_bcra_app(
    faults: Faults | None = None, *, today: Callable[[], date] | None = None
) -> Starlette:
    """A fresh BCRA simulator; `today` is its clock (Buenos Aires' date by default)."""
    simulator = _BcraSimulator(
        Faults() if faults is None else faults, today or buenos_aires_today, ArgentineMarket()
    )
    app = Starlette(
        routes=[
            simulator.route("/Maestros/Divisas", CURRENCIES, simulator.currencies),
            simulator.route("/Cotizaciones", TABLE, simulator.table),
            simulator.route("/Cotizaciones/{codMoneda}", SERIES, simulator.series),
            fault_control_route(simulator.faults),
        ],
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    app.state.market = simulator.market
    return app


class _BcraSimulator:
    def __init__(self, faults: Faults, today: Callable[[], date], market: ArgentineMarket) -> None:
        self.faults = faults
        self.today = today
        self.market = market
        self.calls: Counter[str] = Counter()

    def route(self, path: str, key: str, handler: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, key, handler)

        return Route(PREFIX + path, endpoint, methods=["GET"])

    async def _serve(self, request: Request, key: str, handler: Handler) -> Response:
        self.calls[key] += 1
        return await _FAULTS.serve(request, self.faults, lambda: handler(request))

    def _has_data(self, day: date, today: date) -> bool:
        """Whether `day` has a fixing in the simulated data (today included)."""
        if day > today or not self.market.is_fixing_day(day):
            return False
        in_window = today - timedelta(days=DAYS_OF_DATA - 1) <= day
        return in_window or day in (SAMPLE_DAY, NEXT_SAMPLE_DAY)

    def _latest(self, today: date) -> date | None:
        day = today
        for _ in range(DAYS_OF_DATA):
            if self._has_data(day, today):
                return day
            day -= timedelta(days=1)
        return None

    async def currencies(self, request: Request) -> Response:
        results = [{"codigo": c.code, "denominacion": c.description} for c in _CURRENCIES]
        return _json({"status": 200, "results": results})

    async def table(self, request: Request) -> Response:
        params = _params(request)
        if "fechadesde" in params or "fechahasta" in params:
            return _error(400, "El parámetro fecha no admite un rango de fechas.")
        today = self.today()
        raw = params.get("fecha")
        if raw is None:
            day = self._latest(today)
        else:
            try:
                day = _date(raw, "fecha")
            except ValueError as exc:
                return _error(400, str(exc))
            if day > today:
                return _error(400, "La fecha no puede ser mayor al día actual.")
        if day is None or not self._has_data(day, today):
            return _json({"status": 200, "results": {"fecha": None, "detalle": []}})
        return _json({"status": 200, "results": _day_json(day, self.market.quotes(day))})

    async def series(self, request: Request) -> Response:
        code = request.path_params["codMoneda"].upper()
        if code not in CODES:
            return _error(404, f"No se encontró la moneda {code[:10]}.")
        params = _params(request)
        today = self.today()
        try:
            limit = _bounded(params.get("limit"), "limit", LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX)
            offset = _bounded(params.get("offset"), "offset", 0, 0, None)
            since = _optional_date(params.get("fechadesde"), "fechaDesde")
            until = _optional_date(params.get("fechahasta"), "fechaHasta")
        except ValueError as exc:
            return _error(400, str(exc))
        if until is not None and until > today:
            return _error(400, "La fecha hasta no puede ser mayor al día actual.")
        if since is not None and since > (until or today):
            return _error(400, "La fecha desde no puede ser mayor a la fecha hasta.")
        days = self._series_days(today, since, until)
        page = days[offset : offset + limit]
        results = [self._series_row(code, day) for day in page]
        return _json(
            {
                "status": 200,
                "metadata": {"resultset": {"count": len(days), "offset": offset, "limit": limit}},
                "results": results,
            }
        )

    def _series_days(self, today: date, since: date | None, until: date | None) -> list[date]:
        """The dates a series lists, newest first."""
        if since is None and until is None:
            latest = self._latest(today)
            return [] if latest is None else [latest]
        last = until or today
        first = since or min(today - timedelta(days=DAYS_OF_DATA - 1), SAMPLE_DAY)
        days: list[date] = []
        day = last
        while day >= first:
            if self._has_data(day, today) or (
                self.market.is_weekday_holiday(day)
                and day >= today - timedelta(days=DAYS_OF_DATA - 1)
            ):
                days.append(day)
            day -= timedelta(days=1)
        return days

    def _series_row(self, code: str, day: date) -> dict[str, object]:
        if not self.market.is_fixing_day(day):
            return {"fecha": day.isoformat(), "detalle": []}
        rows = [row for row in self.market.quotes(day) if row.code == code]
        return _day_json(day, rows)


class _ResetResponse(Response):
    """Drops the connection instead of answering, as a server shedding a client does.

    In-process the error reaches the caller as is; behind uvicorn the status line has gone
    out without a length, so closing the connection leaves the client an answer cut short."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise ConnectionDroppedError("Connection reset by peer.")


@dataclass(frozen=True)
class _Number:
    """A JSON number written with the BCRA's 8 decimals."""

    value: Decimal


def _day_json(day: date, rows: list[SimQuote]) -> dict[str, object]:
    return {
        "fecha": day.isoformat(),
        "detalle": [
            {
                "codigoMoneda": row.code,
                "descripcion": row.description,
                "tipoPase": _Number(row.pase),
                "tipoCotizacion": _Number(row.cotizacion),
            }
            for row in rows
        ],
    }


def _encode(value: object) -> str:
    if isinstance(value, _Number):
        return f"{value.value.quantize(_EIGHT, ROUND_HALF_EVEN):f}"
    if isinstance(value, Mapping):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("refusing to write a float: figures go out as _Number")
    return json.dumps(value, ensure_ascii=False)


def _json(value: object, status_code: int = 200) -> Response:
    # ASP.NET's own content type, charset included.
    return Response(
        _encode(value).encode(), status_code, media_type="application/json; charset=utf-8"
    )


def _error(status_code: int, message: str) -> Response:
    return _json({"status": status_code, "errorMessages": [message]}, status_code)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


def _params(request: Request) -> dict[str, str]:
    """Query parameters by lower-case name: the BCRA reads `fechaDesde` and `fechadesde` alike."""
    return {key.lower(): value for key, value in request.query_params.items()}


def _date(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"El parámetro {name} no es una fecha válida (yyyy-MM-dd).") from None


def _optional_date(raw: str | None, name: str) -> date | None:
    return None if raw is None else _date(raw, name)


def _bounded(raw: str | None, name: str, default: int, low: int, high: int | None) -> int:
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else -1
    if value < low or (high is not None and value > high):
        upper = "" if high is None else f" y menor o igual a {high}"
        raise ValueError(f"El parámetro {name} debe ser mayor o igual a {low}{upper}.")
    return value
