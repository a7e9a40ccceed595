"""FinSync simulator: an ASGI app answering ``/api/clients`` the way finsync.ar does.

Routes, all behind the ``x-api-key`` header (`FINSYNC_API_KEY`, which sees company 7):

* ``GET /api/clients?page=&pageSize=&description=``: ``{"data": [...], "pagination":
  {"page", "pageSize", "total", "totalPages"}}``; a bare JSON array when neither ``page``
  nor ``pageSize`` is given. ``pageSize`` 1..100 (default 10), ``page`` from 1 (default 1),
  ``description`` a case-insensitive substring filter.
* ``GET /api/clients/{id}``: one client with its accounts; 400 for a non-numeric id, 404
  for an unknown one or another company's.
* ``POST /api/clients`` ``{"name", "description"}``: a new external client (type 1),
  answered 201 with ``company_client_id`` and no ``accounts``. Not idempotent.

Errors are ``{"error": "<message>"}``. ``GET``/``PUT /_sandbox/faults`` switch faults
(see `app.sandbox.faults`, the "moving pages" ones included), without auth.

``app.state.store`` is the live `FinsyncStore`, ``app.state.faults`` the `Faults` and
``app.state.calls`` a ``Counter`` of requests per route, keyed like ``"GET /api/clients"``,
``"GET /api/clients/{id}"`` and ``"POST /api/clients"``.
"""

import json
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.sandbox.data import (
    FINSYNC_API_KEY,
    FINSYNC_CLIENTS,
    FINSYNC_COMPANY_ID,
    FINSYNC_EXTERNAL,
    NO_SHIFT,
    FinsyncClient,
    seed_shift,
    shifted_finsync_client,
)
from app.sandbox.faults import (
    MOVING_PAGES,
    ConnectionDroppedError,
    Faults,
    bad_gateway,
    fault_control_route,
    sends_json,
    simulate_latency,
    truncated,
)

LIST_CLIENTS = "GET /api/clients"
GET_CLIENT = "GET /api/clients/{id}"
CREATE_CLIENT = "POST /api/clients"

PAGE_SIZE_DEFAULT = 10
PAGE_SIZE_MAX = 100
NAME_MAX_CHARS = 100

_API_KEYS: dict[str, int] = {FINSYNC_API_KEY: FINSYNC_COMPANY_ID}
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
# No client id has more digits; longer ones are simply unknown (and int() stays cheap).
_MAX_ID_DIGITS = 18

Handler = Callable[[Request], Awaitable[Response]]


class FinsyncStore:
    """The simulator's live FinSync data: the seeded clients plus those created over HTTP."""

    def __init__(
        self, clients: Iterable[FinsyncClient] = FINSYNC_CLIENTS, *, shift: timedelta = NO_SHIFT
    ) -> None:
        """`shift` moves the seeded clients' timestamps (see `seed_shift`)."""
        self._clients: dict[int, FinsyncClient] = {}
        # Where each client is listed: in id order, except those created at the front
        # (newest first, before every other).
        self._order: dict[int, tuple[int, int]] = {}
        self._fronts = 0
        self._next_id = 1
        for client in (shifted_finsync_client(c, shift) for c in clients):
            self.add(client)

    def add(self, client: FinsyncClient) -> None:
        """Store a client as given (seed data, or a test's), listed in id order."""
        for account in client.accounts:
            _check_json_number(account.balance)
        self._clients[client.id] = client
        self._order[client.id] = (1, client.id)
        self._next_id = max(self._next_id, client.id + 1)

    def clients(self, company_id: int) -> list[FinsyncClient]:
        """The company's clients in listing order: id order, after any created at the front."""
        return sorted(
            (c for c in self._clients.values() if c.company_id == company_id),
            key=lambda c: self._order[c.id],
        )

    def delete(self, client_id: int) -> None:
        """Remove a client, as deleting it in FinSync's own app does."""
        del self._clients[client_id]
        del self._order[client_id]

    def get(self, company_id: int, client_id: int) -> FinsyncClient | None:
        """One of the company's clients; another company's is as unknown as a missing one."""
        client = self._clients.get(client_id)
        return client if client is not None and client.company_id == company_id else None

    def create(
        self, company_id: int, name: str, description: str | None, *, at_front: bool = False
    ) -> FinsyncClient:
        """Store a new external client without accounts, as ``POST /api/clients`` does;
        listed last, or first with `at_front`."""
        now = _iso_now()
        sequence = max(
            (c.company_client_id for c in self._clients.values() if c.company_id == company_id),
            default=0,
        )
        client = FinsyncClient(
            id=self._next_id,
            name=name,
            description=description,
            company_id=company_id,
            type=FINSYNC_EXTERNAL,
            created_at=now,
            updated_at=now,
            company_client_id=sequence + 1,
            accounts=(),
        )
        self._clients[client.id] = client
        if at_front:
            self._fronts += 1
        self._order[client.id] = (0, -self._fronts) if at_front else (1, client.id)
        self._next_id += 1
        return client

    def set_balance(self, account_id: int, balance: str) -> None:
        """Change one account's balance (the literal JSON number FinSync will send)."""
        _check_json_number(balance)
        for client in self._clients.values():
            if any(a.id == account_id for a in client.accounts):
                accounts = tuple(
                    replace(a, balance=balance, updated_at=_iso_now()) if a.id == account_id else a
                    for a in client.accounts
                )
                self._clients[client.id] = replace(client, accounts=accounts)
                return
        raise KeyError(account_id)


def create_finsync_app(
    faults: Faults | None = None, *, store: FinsyncStore | None = None
) -> Starlette:
    """A fresh FinSync simulator with its own copy of the seeded data, or `store`'s."""
    store = FinsyncStore(shift=seed_shift()) if store is None else store
    simulator = _FinsyncSimulator(store, Faults() if faults is None else faults)
    app = Starlette(
        routes=[
            *simulator.routes(
                {
                    LIST_CLIENTS: simulator.list_clients,
                    CREATE_CLIENT: simulator.create_client,
                    GET_CLIENT: simulator.get_client,
                }
            ),
            fault_control_route(simulator.faults),
        ],
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.store = simulator.store
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    return app


class _FinsyncSimulator:
    def __init__(self, store: FinsyncStore, faults: Faults) -> None:
        self.store = store
        self.faults = faults
        self.calls: Counter[str] = Counter()

    def routes(self, handlers: Mapping[str, Handler]) -> list[Route]:
        """One route per path, so a 405's ``Allow`` lists every method the path has."""
        by_path: dict[str, dict[str, tuple[str, Handler]]] = defaultdict(dict)
        for key, handler in handlers.items():
            method, path = key.split(" ")
            by_path[path][method] = (key, handler)
        return [self._route(path, methods) for path, methods in by_path.items()]

    def _route(self, path: str, methods: dict[str, tuple[str, Handler]]) -> Route:
        async def endpoint(request: Request) -> Response:
            # Starlette answers HEAD through the GET handler; count it as that route.
            method = "GET" if request.method == "HEAD" else request.method
            key, handler = methods[method]
            return await self._serve(request, key, handler)

        return Route(path, endpoint, methods=list(methods))

    async def _serve(self, request: Request, key: str, handler: Handler) -> Response:
        self.calls[key] += 1
        mode = self.faults.pending()
        if mode == "drop_after_create" and key != CREATE_CLIENT:
            mode = "none"
        if mode in MOVING_PAGES:
            mode = "none"  # the list route moves itself (`_move`)
        # A drop is counted when it happens: a rejected create drops nothing.
        if mode not in ("none", "drop_after_create"):
            self.faults.consume()
        await simulate_latency(request, self.faults, mode)
        if mode == "error":
            return _error(500, "Internal server error")
        if mode == "rate_limited":
            return _error(500, "Too many requests")
        if mode == "html":
            return bad_gateway()
        if mode == "unauthorized":
            return _error(401, "Unauthorized")
        response = await handler(request)
        if mode == "truncated":
            return truncated(response)
        if mode == "drop_after_create" and response.status_code == 201:
            self.faults.consume()
            return _DroppedResponse(response)
        return response

    def _company(self, request: Request) -> int | None:
        return _API_KEYS.get(request.headers.get("x-api-key", ""))

    async def list_clients(self, request: Request) -> Response:
        company = self._company(request)
        if company is None:
            return _error(401, "Unauthorized")
        params = request.query_params
        clients = self.store.clients(company)
        description = params.get("description")
        if description:
            needle = description.casefold()
            clients = [c for c in clients if c.description and needle in c.description.casefold()]
        # FinSync changes the shape of its lists when paging is left out entirely.
        if "page" not in params and "pageSize" not in params:
            return _json([_client_json(c) for c in clients])
        try:
            page = _positive_int(params.get("page"), "page", default=1)
            page_size = _positive_int(params.get("pageSize"), "pageSize", default=PAGE_SIZE_DEFAULT)
        except ValueError as exc:
            return _error(400, str(exc))
        if page_size > PAGE_SIZE_MAX:
            return _error(400, f"pageSize must be at most {PAGE_SIZE_MAX}")
        mode = self.faults.pending()
        if mode == "ignore_page" and page != 1:
            self.faults.consume()
            page = 1
        start = (page - 1) * page_size
        served = clients[start : start + page_size]
        response = _json(
            {
                "data": [_client_json(c) for c in served],
                "pagination": {
                    "page": page,
                    "pageSize": page_size,
                    "total": len(clients),
                    "totalPages": -(-len(clients) // page_size),
                },
            }
        )
        if page == 1:
            self._move(mode, company, served, page_size)
        return response

    def _move(self, mode: str, company: int, page_1: list[FinsyncClient], page_size: int) -> None:
        """The list moving right after page 1 was served (a "moving pages" fault)."""
        if mode == "delete_after_page" and page_1:
            self.store.delete(page_1[0].id)
        elif mode == "create_at_front":
            self.store.create(company, "Cliente nuevo (al frente)", None, at_front=True)
        elif mode == "grow_pages":
            for number in range(1, page_size + 1):
                self.store.create(company, f"Cliente nuevo {number}", None)
        else:
            return
        self.faults.consume()

    async def get_client(self, request: Request) -> Response:
        company = self._company(request)
        if company is None:
            return _error(401, "Unauthorized")
        raw_id = request.path_params["id"]
        if not _DIGITS.fullmatch(raw_id):
            return _error(400, "Invalid client id")
        client = self.store.get(company, int(raw_id)) if len(raw_id) <= _MAX_ID_DIGITS else None
        if client is None:
            return _error(404, "Client not found")
        return _json(_client_json(client))

    async def create_client(self, request: Request) -> Response:
        company = self._company(request)
        if company is None:
            return _error(401, "Unauthorized")
        if not sends_json(request):
            return _error(400, "Content-Type must be application/json")
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return _error(400, "Invalid JSON body")
        if not isinstance(payload, dict):
            return _error(400, "Body must be a JSON object")
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            return _error(400, "name is required")
        if len(name) > NAME_MAX_CHARS:
            return _error(400, f"name must be at most {NAME_MAX_CHARS} characters")
        description = payload.get("description")
        if description is not None and not isinstance(description, str):
            return _error(400, "description must be a string")
        client = self.store.create(company, name, description)
        body = _client_json(client, with_accounts=False)
        body["company_client_id"] = client.company_client_id
        return _json(body, status_code=201)


class _DroppedResponse(Response):
    """Starts the answer, then drops the connection instead of sending the body."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.body, response.status_code, media_type=response.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        raise ConnectionDroppedError("Server disconnected before sending the response body.")


@dataclass(frozen=True)
class _JsonNumber:
    """A JSON number written verbatim, so money never passes through a float on its way out."""

    text: str


def _client_json(client: FinsyncClient, *, with_accounts: bool = True) -> dict[str, object]:
    body: dict[str, object] = {
        "id": client.id,
        "name": client.name,
        "description": client.description,
        "company_id": client.company_id,
        "type": client.type,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }
    if with_accounts:
        body["accounts"] = [
            {
                "id": a.id,
                "name": a.name,
                "currency_name": a.currency_name,
                "client_id": client.id,
                "balance": _JsonNumber(a.balance),
                "created_at": a.created_at,
                "updated_at": a.updated_at,
            }
            for a in client.accounts
        ]
    return body


def _encode(value: object) -> str:
    """Compact JSON like FinSync's, with `_JsonNumber` written as is."""
    if isinstance(value, _JsonNumber):
        return value.text
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_encode(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, float):
        raise TypeError("refusing to write a float: money goes out as _JsonNumber")
    return json.dumps(value, ensure_ascii=False)


def _json(value: object, status_code: int = 200) -> Response:
    return Response(_encode(value).encode(), status_code, media_type="application/json")


def _error(status_code: int, message: str) -> Response:
    return _json({"error": message}, status_code)


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Unknown paths and methods answer in FinSync's error shape too, not Starlette's text.
    assert isinstance(exc, HTTPException)
    response = _error(exc.status_code, exc.detail)
    response.headers.update(exc.headers or {})
    return response


def _positive_int(raw: str | None, name: str, *, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw) if _DIGITS.fullmatch(raw) else 0
    except ValueError:  # more digits than int() accepts
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _check_json_number(text: str) -> None:
    if not _JSON_NUMBER.fullmatch(text):
        raise ValueError(f"not a JSON number: {text!r}")


def _iso_now() -> str:
    # FinSync's own timestamps: UTC, milliseconds, "Z".
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
