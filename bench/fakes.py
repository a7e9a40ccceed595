"""Fast fakes of FinSync and Finqware for the benchmarks, each run as its own process.

    python -m bench.fakes finsync --clients 50000 --latency-ms 50 --port 8201
    python -m bench.fakes finqware --consents 3 --latency-ms 50 --port 8202
    python -m bench.fakes rates --latency-ms 50 --port 8203

They speak exactly the wire formats tesoro's adapters read (`app/upstreams/finsync.py`,
`app/upstreams/finqware.py`), with records shaped like the sandbox simulators' (client types
internal and external plus a rare unknown one, several currencies, one or two accounts a
client, balances as literal JSON numbers; bank accounts with the usual balance types and
credit lines). The data is generated from a seed, so every run serves the same bytes, and
every answer is serialised once at start: a request costs a dictionary look-up and the
configured latency (an ``asyncio.sleep``), so the fakes are never what is measured.

Besides the vendor routes, without authentication (never a vendor's):

* ``GET /_calls``: how many times each upstream call was made, keyed like
  ``"GET /api/clients?page=3"`` (FinSync, per page) or ``"POST /v1/balances/get bank-1"``
  (Finqware, per consent);
* ``GET /_info`` (FinSync): ``{"clients", "accounts"}``;
* ``POST /_change`` (FinSync): one account's balance changes, so tesoro's next load sees new
  data and builds its answers again.

The rate sources are not faked again: ``rates`` serves tesoro's own simulators of the BCRA,
the BNR, the ECB and dolarapi (``app/sandbox``, the formats and calendars tesoro's rate
adapters are tested against), each under its own path (``/bcra``, ``/bnr``, ``/ecb``,
``/dolarapi``: a source's base URL is the fake's URL and that path) with the same
``--latency-ms`` added to every call; its ``GET /_calls`` counts calls per source and route.

Only tesoro's public sandbox credentials are borrowed from the app; nothing else of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import parse_qs

from starlette.applications import Starlette

from app.sandbox.data import FINQWARE_CLIENT_ID, FINQWARE_CLIENT_SECRET, FINSYNC_API_KEY

PAGE_SIZE = 100  # what tesoro asks for, and FinSync's maximum
COMPANY_ID = 7
SEED = 20261125
FIRST_CLIENT_ID = 1000
FIRST_ACCOUNT_ID = 1_000_000
TENANT_USER_ID = "bench-tenant"
_NAMESPACE = uuid.UUID("6d7a4f0e-3a51-4b7e-9f2c-2f0f6c1e9b11")

Scope = dict[str, Any]
# What Starlette's apps are sent through (any mutable mapping); these fakes send plain dicts.
StarletteSend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Names like a treasury's: trades and places (accents included, so search folds them), and
# people. Fragments of these words are what the search benchmark asks for.
TRADES = (
    "Distribuidora", "Transportes", "Logística", "Café", "Agropecuaria", "Metalúrgica",
    "Importadora", "Exportadora", "Consultora", "Ferretería", "Textil", "Software",
    "Cooperativa", "Estudio Contable", "Inmobiliaria", "Seguros", "Frigorífico", "Bodega",
    "Librería", "Farmacia", "Constructora", "Panadería", "Óptica", "Imprenta",
)  # fmt: skip
PLACES = (
    "del Sur", "Norte", "Patagónica", "Andina", "Cuyo", "La Pampa", "Litoral",
    "Río de la Plata", "Mendoza", "Córdoba", "Salta", "Rosario", "Neuquén", "Tucumán",
    "San Martín", "Recoleta", "Belgrano", "Palermo", "Ñuñoa", "Misiones",
)  # fmt: skip
FORMS = ("S.A.", "S.R.L.", "SAS", "S.A.U.", "")
FIRST_NAMES = (
    "Juan", "María José", "Carlos", "Lucía", "Martín", "Sofía", "Diego", "Valentina",
    "Joaquín", "Camila", "Tomás", "Florencia",
)  # fmt: skip
SURNAMES = (
    "Pérez", "Fernández", "González", "Rodríguez", "López", "Martínez", "Gómez", "Díaz",
    "Sánchez", "Romero", "Álvarez", "Muñoz", "Ibáñez", "Quiroga",
)  # fmt: skip
INTERNAL = ("Caja", "Banco Galicia", "Banco Nación", "Mercado Pago", "Brubank", "Ualá", "FCI")
CURRENCIES = (("ARS", 70), ("USD", 22), ("USDT", 4), ("EUR", 4))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _balance(rng: random.Random) -> str:
    """A literal JSON number as FinSync writes it: some zero, some negative, some with the
    noise of float sums."""
    roll = rng.random()
    if roll < 0.08:
        return "0"
    whole = rng.randint(1, 5_000_000)
    sign = "-" if rng.random() < 0.4 else ""
    if roll < 0.12:
        return f"{sign}{whole}.{rng.randint(1, 9)}000000000001"
    if roll < 0.30:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{rng.randint(0, 99):02d}"


def _currency(rng: random.Random) -> str:
    return rng.choices([c for c, _ in CURRENCIES], weights=[w for _, w in CURRENCIES])[0]


@dataclass
class FinsyncData:
    """N clients, each serialised once; pages of PAGE_SIZE serialised once too."""

    clients: list[str]
    accounts: int

    @classmethod
    def generate(cls, count: int, seed: int = SEED) -> FinsyncData:
        rng = random.Random(seed)  # noqa: S311 (benchmark data, not a secret)
        clients: list[str] = []
        account_id = FIRST_ACCOUNT_ID
        accounts = 0
        for index in range(count):
            client_id = FIRST_CLIENT_ID + index
            kind = 0 if rng.random() < 0.12 else 1
            if client_id % 4999 == 0:
                kind = 2  # a type tesoro does not know: left out with a warning
            if kind == 0:
                name = f"{rng.choice(INTERNAL)} {rng.choice(PLACES)} {index}"
                description: str | None = "Cuenta propia"
            elif rng.random() < 0.3:
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
                description = None
            else:
                form = rng.choice(FORMS)
                name = f"{rng.choice(TRADES)} {rng.choice(PLACES)} {form}".strip()
                description = rng.choice((None, "Proveedor", "Cliente mayorista", "Fletes"))
            own = []
            for _ in range(1 if rng.random() < 0.6 else 2):
                currency = _currency(rng)
                own.append(
                    f'{{"id":{account_id},"name":{_json(currency)},"currency_name":"{currency}",'
                    f'"client_id":{client_id},"balance":{_balance(rng)},'
                    '"created_at":"2024-03-01T12:00:00Z","updated_at":"2026-11-20T18:45:10Z"}'
                )
                account_id += 1
            accounts += len(own)
            clients.append(
                f'{{"id":{client_id},"name":{_json(name)},"description":{_json(description)},'
                f'"company_id":{COMPANY_ID},"type":{kind},'
                '"created_at":"2024-01-03T10:00:00Z","updated_at":"2026-11-20T18:45:10Z",'
                f'"accounts":[{",".join(own)}]}}'
            )
        return cls(clients, accounts)

    def page(self, page: int, page_size: int) -> bytes:
        total = len(self.clients)
        start = (page - 1) * page_size
        data = ",".join(self.clients[start : start + page_size])
        pagination = {
            "page": page,
            "pageSize": page_size,
            "total": total,
            "totalPages": -(-total // page_size),
        }
        return ('{"data":[' + data + '],"pagination":' + _json(pagination) + "}").encode()


def search_fragments(count: int) -> list[str]:
    """`count` distinct name fragments that occur in the generated names (and a few that
    match nothing), for `/counterparties?q=`."""
    words = [w for part in (TRADES, PLACES, FIRST_NAMES, SURNAMES) for w in part]
    words = [w.split()[-1] for w in words if len(w.split()[-1]) >= 4]
    found: list[str] = []
    for length in (4, 6, 5, 7, 3):
        for word in words:
            fragment = word[:length].lower()
            if len(fragment) >= 3 and fragment not in found:
                found.append(fragment)
            if len(found) >= count:
                return found
    return found


@dataclass(frozen=True)
class BenchConsent:
    """One Finqware consent of the fake, in the shape of a TESORO_FINQWARE_CONSENTS entry."""

    key: str
    label: str
    credentials_id: str
    access_token: str
    tenant_user_id: str

    def as_setting(self) -> dict[str, str]:
        return {
            "key": self.key,
            "label": self.label,
            "credentials_id": self.credentials_id,
            "access_token": self.access_token,
            "tenant_user_id": self.tenant_user_id,
        }


def consents(count: int) -> list[BenchConsent]:
    return [
        BenchConsent(
            key=f"bank-{n}",
            label=f"Bench Bank {n}",
            credentials_id=str(uuid.uuid5(_NAMESPACE, f"credentials-{n}")),
            access_token=f"bench-at-{n}-{uuid.uuid5(_NAMESPACE, f'token-{n}').hex}",
            tenant_user_id=TENANT_USER_ID,
        )
        for n in range(1, count + 1)
    ]


def _bank_bodies(consent: BenchConsent, number: int) -> tuple[bytes, bytes]:
    """(balances/get, accounts/get) answers of one consent: a RON current account with
    booked and available figures and an included credit line, and a EUR one with closing
    figures only and a credit line written as an object."""
    ron = str(uuid.uuid5(_NAMESPACE, f"{consent.key}-ron"))
    eur = str(uuid.uuid5(_NAMESPACE, f"{consent.key}-eur"))
    amount = f"{125000 + number * 1000}.55"

    def entry(account: str, kind: str, figure: str, currency: str, **extra: Any) -> dict[str, Any]:
        data = {
            "amount": figure,
            "credit_debit_indicator": extra.pop("indicator", "credit"),
            "credit_limit_included": extra.pop("included", False),
            "credit_line": extra.pop("line", None),
            "currency": currency,
            "native_timestamp": "2026-11-20T07:15:00Z",
            "type": kind,
            **extra,
        }
        return {
            "account_id": account,
            "id": str(uuid.uuid5(_NAMESPACE, f"{account}-{kind}-{figure}")),
            "timestamp": "2026-11-20T07:31:51.689168",
            "data": data,
        }

    balances = [
        entry(ron, "InterimBooked", amount, "RON"),
        entry(ron, "InterimAvailable", amount, "RON"),
        entry(ron, "InterimAvailable", f"{175000 + number * 1000}.55", "RON",
              included=True, line="50000.00"),
        entry(ron, "ClosingBooked", "120000.00", "RON", native_date="2026-11-19"),
        entry(eur, "ClosingBooked", "18250.12345", "EUR", native_date="2026-11-19"),
        entry(eur, "ClosingAvailable", "18250.12345", "EUR", native_date="2026-11-19",
              line={"amount": "5000.00", "currency": "EUR"}),
        entry(eur, "OpeningBooked", "3200.4", "EUR", indicator="debit"),
    ]  # fmt: skip

    def account(account_id: str, currency: str, iban: str) -> dict[str, Any]:
        return {
            "id": account_id,
            "servicer_id": f"bench-bank-{number}",
            "servicer_name": consent.label,
            "timestamp": "2026-11-20T07:31:50Z",
            "data": {
                "name": f"Cont curent {currency}",
                "nickname": "",
                "currency": currency,
                "account_type": "Business current account",
                "account_sub_type": "CurrentAccount",
                "account_schemes": [
                    {"scheme_name": "IBAN", "identification": iban},
                    {"scheme_name": "BICFI", "identification": "BTRLRO22"},
                ],
            },
        }

    accounts = [
        account(ron, "RON", f"RO43BTRL{number:04d}CRT0A56010101"),
        account(eur, "EUR", f"RO98BTRL{number:04d}CRT0A56010102"),
    ]
    return _json(balances).encode(), _json(accounts).encode()


# --------------------------------------------------------------------------- serving


async def _reply(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _Fake:
    """What both fakes answer alike: the lifespan, and `GET /_calls` (their call counts)."""

    calls: Counter[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["path"] == "/_calls":
            await _reply(send, 200, _json(dict(sorted(self.calls.items()))).encode())
        else:
            await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class FinsyncFake(_Fake):
    """`GET /api/clients?page=&pageSize=` behind `x-api-key`, pages served from memory."""

    def __init__(self, data: FinsyncData, latency_seconds: float) -> None:
        self.data = data
        self.latency = latency_seconds
        self.calls: Counter[str] = Counter()
        self.changes = 0
        self._pages: dict[tuple[int, int], bytes] = {}
        total_pages = -(-len(data.clients) // PAGE_SIZE)
        for page in range(1, max(total_pages, 1) + 1):
            self._pages[page, PAGE_SIZE] = data.page(page, PAGE_SIZE)

    def _page(self, page: int, page_size: int) -> bytes:
        found = self._pages.get((page, page_size))
        if found is None:
            found = self._pages[page, page_size] = self.data.page(page, page_size)
        return found

    def change(self) -> None:
        """The first client's first balance moves by one cent a change: a new data version."""
        self.changes += 1
        first = self.data.clients[0]
        marker = '"balance":'
        start = first.index(marker) + len(marker)
        end = first.index(",", start)
        self.data.clients[0] = (
            f"{first[:start]}{self.changes}.{self.changes % 100:02d}{first[end:]}"
        )
        self._pages = {key: body for key, body in self._pages.items() if key[0] != 1}
        self._pages[1, PAGE_SIZE] = self.data.page(1, PAGE_SIZE)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/_info":
            info = {"clients": len(self.data.clients), "accounts": self.data.accounts}
            await _reply(send, 200, _json(info).encode())
            return
        if path == "/_change" and method == "POST":
            self.change()
            await _reply(send, 200, _json({"changes": self.changes}).encode())
            return
        headers = dict(scope["headers"])
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path == "/api/clients" and method == "GET":
            self.calls[f"GET /api/clients?page={query.get('page', '')}"] += 1
        else:
            self.calls[f"{method} {path}"] += 1
        await asyncio.sleep(self.latency)
        if headers.get(b"x-api-key") != FINSYNC_API_KEY.encode():
            await _reply(send, 401, b'{"error":"Unauthorized"}')
            return
        if path != "/api/clients" or method != "GET":
            await _reply(send, 404, b'{"error":"Not found"}')
            return
        try:
            page = int(query.get("page", "1"))
            page_size = int(query.get("pageSize", "10"))
        except ValueError:
            page, page_size = 0, 0
        if page < 1 or not 1 <= page_size <= PAGE_SIZE:
            await _reply(send, 400, b'{"error":"page and pageSize must be positive integers"}')
            return
        await _reply(send, 200, self._page(page, page_size))


class FinqwareFake(_Fake):
    """`POST /v1/balances/get` and `/v1/accounts/get`, credentials in the JSON body."""

    ROUTES = ("/v1/balances/get", "/v1/accounts/get")

    def __init__(self, count: int, latency_seconds: float) -> None:
        self.latency = latency_seconds
        self.calls: Counter[str] = Counter()
        self.consents = {c.credentials_id: c for c in consents(count)}
        self._bodies: dict[tuple[str, str], bytes] = {}
        for number, consent in enumerate(self.consents.values(), start=1):
            balances, accounts = _bank_bodies(consent, number)
            self._bodies[self.ROUTES[0], consent.key] = balances
            self._bodies[self.ROUTES[1], consent.key] = accounts

    @staticmethod
    def _error(code: str, message: str) -> bytes:
        error = {"id": str(uuid.uuid4()), "type": "unauthorized", "http": 401, "code": code}
        return _json({**error, "message": message}).encode()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        raw = await _body(receive)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        consent = (
            self.consents.get(payload.get("credentials_id", ""))
            if isinstance(payload, dict)
            else None
        )
        self.calls[f"{method} {path} {consent.key if consent else '-'}"] += 1
        await asyncio.sleep(self.latency)
        if method != "POST" or path not in self.ROUTES:
            await _reply(send, 404, self._error("not_found", "Not found"))
            return
        if (
            consent is None
            or payload.get("client_id") != FINQWARE_CLIENT_ID
            or payload.get("client_secret") != FINQWARE_CLIENT_SECRET
            or payload.get("access_token") != consent.access_token
        ):
            await _reply(send, 401, self._error("invalid_credentials_id", "Invalid credentials"))
            return
        await _reply(send, 200, self._bodies[path, consent.key])


RATE_SOURCES = ("bcra", "bnr", "ecb", "dolarapi")


async def _prime(simulators: Mapping[str, Any]) -> None:
    import httpx2

    from app.sandbox.bcra import buenos_aires_today

    today = buenos_aires_today()
    since = (today - timedelta(days=14)).isoformat()
    asks = {
        "bcra": [
            f"/estadisticascambiarias/v1.0/Cotizaciones/{code}?fechaDesde={since}"
            f"&fechaHasta={today.isoformat()}&limit=100&offset=0"
            for code in ("USD", "EUR")
        ],
        "bnr": ["/nbrfxrates.xml", "/nbrfxrates10days.xml"],
        "ecb": [
            f"/service/data/EXR/D.{code}.EUR.SP00.A?format=csvdata&endPeriod="
            f"{today.isoformat()}&lastNObservations=1"
            for code in ("USD", "RON", "ARS", "GBP")
        ],
        "dolarapi": ["/v1/dolares"],
    }
    for name, paths in asks.items():
        transport = httpx2.ASGITransport(app=simulators[name])
        async with httpx2.AsyncClient(transport=transport, base_url="http://fake") as client:
            for path in paths:
                await client.get(path)


def rates_app(latency_seconds: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The four rate simulators, each mounted under its source's name, with `/_calls`."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from app.sandbox.faults import Faults
    from app.sandbox.wiring import rate_simulators

    simulators = rate_simulators()

    @asynccontextmanager
    async def primed(_: Starlette) -> AsyncIterator[None]:
        # The simulators work their year of fixings out on first use: asked once here, before
        # serving, so a measured call costs its latency, as the other fakes' calls do.
        await _prime(simulators)
        for simulator in simulators.values():
            simulator.state.calls.clear()
            # Every call waits the latency, as every other upstream call does.
            simulator.state.faults.replace(Faults(delay_seconds=latency_seconds))
        yield

    async def calls(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                f"fx:{name} {route}": count
                for name, simulator in simulators.items()
                for route, count in sorted(simulator.state.calls.items())
            }
        )

    routed = Starlette(
        lifespan=primed,
        routes=[
            Route("/_calls", calls, methods=["GET"]),
            *(Mount(f"/{name}", app=simulators[name]) for name in RATE_SOURCES),
        ],
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await routed(scope, receive, cast(StarletteSend, send))

    return app


def serve(app: Callable[[Scope, Receive, Send], Awaitable[None]], port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakes", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    finsync = kinds.add_parser("finsync", help="FinSync's client list")
    finsync.add_argument("--clients", type=int, required=True)
    finqware = kinds.add_parser("finqware", help="Finqware's balances and accounts")
    finqware.add_argument("--consents", type=int, default=3)
    rates = kinds.add_parser("rates", help="the BCRA, BNR, ECB and dolarapi simulators")
    for kind in (finsync, finqware, rates):
        kind.add_argument("--latency-ms", type=float, default=50.0)
        kind.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    latency = args.latency_ms / 1000
    app: Mapping[str, Callable[[], Callable[[Scope, Receive, Send], Awaitable[None]]]] = {
        "finsync": lambda: FinsyncFake(FinsyncData.generate(args.clients), latency),
        "finqware": lambda: FinqwareFake(args.consents, latency),
        "rates": lambda: rates_app(latency),
    }
    serve(app[args.kind](), args.port)


if __name__ == "__main__":
    main()
