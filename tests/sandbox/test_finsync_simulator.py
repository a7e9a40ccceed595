"""The FinSync simulator answers like finsync.ar: auth, paging, shapes, creates, raw numbers."""

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox import FINSYNC_API_KEY, FinsyncStore, create_finsync_app, serve_simulators
from app.sandbox.data import FINSYNC_CLIENTS, FINSYNC_COMPANY_ID, shift_timestamp
from app.sandbox.wiring import FINSYNC_SANDBOX_URL
from tests.support.simulators import consent

pytestmark = pytest.mark.anyio


def _decimal_json(response: httpx2.Response) -> object:
    # How a careful consumer reads FinSync: JSON numbers as Decimal, never float.
    return json.loads(response.content, parse_float=Decimal)


# ---------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key"}, {"x-api-key": ""}])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/clients"), ("GET", "/api/clients/101"), ("POST", "/api/clients")],
)
async def test_missing_or_wrong_api_key_is_401_with_string_error(
    finsync_app: Starlette, headers: dict[str, str], method: str, path: str
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finsync_app), base_url=FINSYNC_SANDBOX_URL
    ) as client:
        response = await client.request(method, path, headers=headers, json={"name": "X"})

    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized"}


async def test_rejected_create_stores_nothing(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finsync_app), base_url=FINSYNC_SANDBOX_URL
    ) as anonymous:
        await anonymous.post("/api/clients", json={"name": "Intruso"})

    names = [c["name"] for c in (await finsync.get("/api/clients")).json()]
    assert "Intruso" not in names


# ---------------------------------------------------------------------------- list


async def test_list_pages_with_envelope_and_defaults(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients", params={"page": 1})

    assert response.status_code == 200
    body = response.json()
    visible = [c for c in FINSYNC_CLIENTS if c.company_id == FINSYNC_COMPANY_ID]
    assert body["pagination"] == {
        "page": 1,
        "pageSize": 10,
        "total": len(visible),
        "totalPages": -(-len(visible) // 10),
    }
    assert [c["id"] for c in body["data"]] == sorted(c.id for c in visible)[:10]


async def test_pages_cover_every_client_once(finsync: httpx2.AsyncClient) -> None:
    first = (await finsync.get("/api/clients", params={"page": 1, "pageSize": 7})).json()
    ids: list[int] = []
    for page in range(1, first["pagination"]["totalPages"] + 1):
        body = (await finsync.get("/api/clients", params={"page": page, "pageSize": 7})).json()
        ids += [c["id"] for c in body["data"]]

    assert len(ids) == first["pagination"]["total"] == len(set(ids))
    assert ids == sorted(ids)


async def test_page_past_the_end_is_empty(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients", params={"page": 99, "pageSize": 100})

    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["pagination"]["page"] == 99


async def test_page_size_100_is_the_maximum_and_holds_everything(
    finsync: httpx2.AsyncClient,
) -> None:
    body = (await finsync.get("/api/clients", params={"page": 1, "pageSize": 100})).json()

    assert body["pagination"]["totalPages"] == 1
    assert len(body["data"]) == body["pagination"]["total"]


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": ""},
        {"page": "1.5"},
        {"pageSize": "0"},
        {"pageSize": "101"},
        {"pageSize": "ten"},
        {"page": "1", "pageSize": "1e2"},
    ],
)
async def test_bad_paging_is_400(finsync: httpx2.AsyncClient, params: dict[str, str]) -> None:
    response = await finsync.get("/api/clients", params=params)

    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


async def test_without_paging_the_list_is_a_bare_array(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients")

    body = response.json()
    assert isinstance(body, list)
    assert len(body) == sum(c.company_id == FINSYNC_COMPANY_ID for c in FINSYNC_CLIENTS)


async def test_description_filters_case_insensitively(finsync: httpx2.AsyncClient) -> None:
    upper = await finsync.get("/api/clients", params={"description": "EFECTIVO", "page": 1})
    lower = await finsync.get("/api/clients", params={"description": "efectivo"})

    names = {c["name"] for c in upper.json()["data"]}
    assert names == {"Caja Pesos", "Caja Sucursal Mendoza"}
    assert {c["name"] for c in lower.json()} == names
    assert upper.json()["pagination"]["total"] == 2


async def test_description_filter_never_matches_null_descriptions(
    finsync: httpx2.AsyncClient,
) -> None:
    body = (await finsync.get("/api/clients", params={"description": "a"})).json()

    assert body
    assert all(c["description"] is not None for c in body)


async def test_other_companies_clients_are_not_listed(finsync: httpx2.AsyncClient) -> None:
    body = (await finsync.get("/api/clients")).json()

    assert {c["company_id"] for c in body} == {FINSYNC_COMPANY_ID}
    assert 118 not in {c["id"] for c in body}


# ---------------------------------------------------------------------------- one client


async def test_get_client_has_the_documented_shape(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients/101")

    assert response.status_code == 200
    # Seeded timestamps are served moved to look current, all by the same whole hours.
    shift = moved_by(response.json()["updated_at"], "2026-11-20T18:45:10Z")
    assert response.json() == {
        "id": 101,
        "name": "Caja Pesos",
        "description": "Efectivo en oficina central",
        "company_id": 7,
        "type": 0,
        "created_at": shift_timestamp("2023-11-07T05:31:56Z", shift),
        "updated_at": shift_timestamp("2026-11-20T18:45:10Z", shift),
        "accounts": [
            {
                "id": 901,
                "name": "ARS",
                "currency_name": "ARS",
                "client_id": 101,
                "balance": 1520.5,
                "created_at": shift_timestamp("2024-03-01T12:00:00Z", shift),
                "updated_at": shift_timestamp("2026-11-20T18:45:10Z", shift),
            }
        ],
    }


def moved_by(served: str, seeded: str) -> timedelta:
    """How far a served timestamp was moved from its seeded value: whole hours."""
    shift = datetime.fromisoformat(served) - datetime.fromisoformat(seeded)
    assert shift % timedelta(hours=1) == timedelta(0), shift
    return shift


async def test_seeded_timestamps_look_current(finsync: httpx2.AsyncClient) -> None:
    body = json.loads((await finsync.get("/api/clients")).content, parse_float=Decimal)

    now = datetime.now(UTC)
    stamps = [datetime.fromisoformat(c["updated_at"]) for c in body]
    stamps += [datetime.fromisoformat(a["updated_at"]) for c in body for a in c["accounts"]]
    # The newest is at most about an hour old (the move is in whole hours), never ahead.
    assert now - timedelta(hours=2) < max(stamps) <= now
    # Amounts never move: every balance is the seeded one.
    seeded = {a.id: Decimal(a.balance) for c in FINSYNC_CLIENTS for a in c.accounts}
    served = {a["id"]: Decimal(a["balance"]) for c in body for a in c["accounts"]}
    assert served
    assert served == {k: v for k, v in seeded.items() if k in served}


@pytest.mark.parametrize("raw_id", ["abc", "12a", "-5", "1.0", "%20"])
async def test_non_numeric_client_id_is_400(finsync: httpx2.AsyncClient, raw_id: str) -> None:
    response = await finsync.get(f"/api/clients/{raw_id}")

    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("client_id", ["999", "0", "118", "123456789012345678901234567890"])
async def test_unknown_or_foreign_client_is_404(
    finsync: httpx2.AsyncClient, client_id: str
) -> None:
    response = await finsync.get(f"/api/clients/{client_id}")

    assert response.status_code == 404
    assert response.json() == {"error": "Client not found"}


async def test_unknown_route_answers_in_finsync_error_shape(finsync: httpx2.AsyncClient) -> None:
    missing = await finsync.get("/api/operations")
    wrong_method = await finsync.delete("/api/clients/101")

    assert missing.status_code == 404
    assert isinstance(missing.json()["error"], str)
    assert wrong_method.status_code == 405
    assert isinstance(wrong_method.json()["error"], str)


# ---------------------------------------------------------------------------- money on the wire


async def test_float_noise_reaches_the_wire_literally(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients/103")

    assert b'"balance":0.30000000000000004' in response.content
    assert _decimal_json(response) == _decimal_json(response)  # parses as valid JSON


async def test_large_balances_keep_every_digit(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.get("/api/clients/106")

    assert b'"balance":98765432109.87' in response.content
    body = _decimal_json(response)
    assert isinstance(body, dict)
    assert body["accounts"][0]["balance"] == Decimal("98765432109.87")


async def test_every_balance_is_a_json_number(finsync: httpx2.AsyncClient) -> None:
    body = _decimal_json(await finsync.get("/api/clients"))
    assert isinstance(body, list)

    balances = [a["balance"] for c in body for a in c["accounts"]]
    assert balances
    assert all(isinstance(b, int | Decimal) and not isinstance(b, bool) for b in balances)


async def test_set_balance_shows_in_the_next_answer(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    store: FinsyncStore = finsync_app.state.store
    store.set_balance(901, "-12.5")

    body = (await finsync.get("/api/clients/101")).json()
    assert body["accounts"][0]["balance"] == -12.5
    with pytest.raises(ValueError, match="not a JSON number"):
        store.set_balance(901, "1,5")
    with pytest.raises(KeyError):
        store.set_balance(123456, "1")


# ---------------------------------------------------------------------------- create


async def test_create_answers_201_external_without_accounts(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.post(
        "/api/clients", json={"name": "ACME Brokers", "description": "Preferred FX counterparty"}
    )

    assert response.status_code == 201
    body = response.json()
    assert "accounts" not in body
    assert body["name"] == "ACME Brokers"
    assert body["description"] == "Preferred FX counterparty"
    assert body["type"] == 1
    assert body["company_id"] == FINSYNC_COMPANY_ID
    assert isinstance(body["company_client_id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["created_at"])


async def test_created_client_is_listed_and_readable(finsync: httpx2.AsyncClient) -> None:
    created = (await finsync.post("/api/clients", json={"name": "Nuevo Proveedor"})).json()

    one = (await finsync.get(f"/api/clients/{created['id']}")).json()
    listed = (await finsync.get("/api/clients")).json()

    assert one["accounts"] == []
    assert one["description"] is None
    assert "company_client_id" not in one
    assert created["id"] in {c["id"] for c in listed}


async def test_create_is_not_idempotent(finsync: httpx2.AsyncClient) -> None:
    first = await finsync.post("/api/clients", json={"name": "Duplicado S.A."})
    second = await finsync.post("/api/clients", json={"name": "Duplicado S.A."})

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    listed = (await finsync.get("/api/clients")).json()
    assert [c["name"] for c in listed].count("Duplicado S.A.") == 2


async def test_created_clients_do_not_leak_between_apps(finsync: httpx2.AsyncClient) -> None:
    await finsync.post("/api/clients", json={"name": "Solo En Esta App"})

    other = create_finsync_app()
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=other),
        base_url=FINSYNC_SANDBOX_URL,
        headers={"x-api-key": FINSYNC_API_KEY},
    ) as client:
        listed = (await client.get("/api/clients")).json()

    assert "Solo En Esta App" not in {c["name"] for c in listed}


async def test_name_of_100_characters_is_accepted(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.post("/api/clients", json={"name": "Ñ" * 100})

    assert response.status_code == 201


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'"ACME"',
        b"{}",
        b'{"name": ""}',
        b'{"name": "   "}',
        b'{"name": 42}',
        b'{"name": null}',
        json.dumps({"name": "x" * 101}).encode(),
        b'{"name": "ACME", "description": 3}',
        b"\xff\xfe",
    ],
)
async def test_invalid_create_is_400(finsync: httpx2.AsyncClient, content: bytes) -> None:
    response = await finsync.post(
        "/api/clients", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_create_needs_a_json_content_type(
    finsync: httpx2.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}

    response = await finsync.post("/api/clients", content=b'{"name": "ACME"}', headers=headers)

    assert response.status_code == 400
    assert "application/json" in response.json()["error"]


async def test_json_content_type_with_charset_is_accepted(finsync: httpx2.AsyncClient) -> None:
    response = await finsync.post(
        "/api/clients",
        content=b'{"name": "ACME"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 201


# ---------------------------------------------------------------------------- call counters


async def test_calls_are_counted_per_route(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    await finsync.get("/api/clients", params={"page": 1, "pageSize": 10})
    await finsync.get("/api/clients")
    await finsync.get("/api/clients/101")
    await finsync.get("/api/clients/nope")
    await finsync.post("/api/clients", json={"name": "Contado"})
    await finsync.get("/_sandbox/faults")

    assert finsync_app.state.calls == {
        "GET /api/clients": 2,
        "GET /api/clients/{id}": 2,
        "POST /api/clients": 1,
    }


# ---------------------------------------------------------------------------- data coverage


async def test_seeded_data_covers_the_interpretation_cases(finsync: httpx2.AsyncClient) -> None:
    clients = _decimal_json(await finsync.get("/api/clients"))
    assert isinstance(clients, list)
    accounts = [a for c in clients for a in c["accounts"]]
    balances = [a["balance"] for a in accounts]

    assert len(clients) >= 30
    assert {c["type"] for c in clients} == {0, 1}
    assert {"ARS", "USD", "USDT"} <= {a["currency_name"] for a in accounts}
    assert any(b == 0 for b in balances)
    assert any(b < 0 for b in balances)
    assert any(b != int(b) for b in balances)
    assert Decimal("1520.5") in balances
    assert Decimal("-8300.75") in balances
    assert Decimal("0.30000000000000004") in balances
    assert Decimal("98765432109.87") in balances
    assert any(c["accounts"] == [] for c in clients)
    assert any(c["description"] is None for c in clients)
    assert {"Café del Sur S.R.L.", "Logística Patagónica", "Mercado Pago", "Banco Galicia"} <= {
        c["name"] for c in clients
    }
    assert "Caja Chica" in {c["name"] for c in clients}
    same_currency_twice = [
        c for c in clients if len(c["accounts"]) != len({a["currency_name"] for a in c["accounts"]})
    ]
    assert same_currency_twice
    for type_ in (0, 1):
        signs = {(b > 0) - (b < 0) for c in clients if c["type"] == type_ for b in _balances(c)}
        assert signs == {-1, 0, 1}, f"type {type_} lacks a sign case"


def _balances(client: dict[str, list[dict[str, Decimal]]]) -> list[Decimal]:
    return [a["balance"] for a in client["accounts"]]


def test_seeded_timestamps_are_utc_and_in_the_past() -> None:
    stamps = [s for c in FINSYNC_CLIENTS for s in (c.created_at, c.updated_at)]
    stamps += [s for c in FINSYNC_CLIENTS for a in c.accounts for s in (a.created_at, a.updated_at)]

    assert all(re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ", s) for s in stamps)
    assert max(stamps) < "2026-11-23"


def test_seeded_ids_are_unique() -> None:
    account_ids = [a.id for c in FINSYNC_CLIENTS for a in c.accounts]

    assert len({c.id for c in FINSYNC_CLIENTS}) == len(FINSYNC_CLIENTS)
    assert len(set(account_ids)) == len(account_ids)


# ---------------------------------------------------------------------------- served over HTTP


@pytest.mark.e2e
async def test_serve_simulators_answers_on_loopback_and_drops_connections(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Lives here because it mostly exercises FinSync; it also checks Finqware answers.
    server = asyncio.create_task(serve_simulators("127.0.0.1", 0, 0))
    try:
        banner = await _wait_for_banner(capsys)
        finsync_url = re.search(r"FinSync simulator:\s+(\S+)", banner)
        finqware_url = re.search(r"Finqware simulator:\s+(\S+)", banner)
        assert finsync_url
        assert finqware_url
        assert FINSYNC_API_KEY in banner
        async with httpx2.AsyncClient(headers={"x-api-key": FINSYNC_API_KEY}) as client:
            listed = await client.get(f"{finsync_url[1]}/api/clients", params={"page": 1})
            balances = await client.post(f"{finqware_url[1]}/balances/get", json=consent("bt-main"))
            switched = await client.put(
                f"{finsync_url[1]}/_sandbox/faults", json={"mode": "drop_after_create"}
            )
            with pytest.raises(httpx2.RemoteProtocolError):
                await client.post(f"{finsync_url[1]}/api/clients", json={"name": "Perdido"})
            after = await client.get(f"{finsync_url[1]}/api/clients")
    finally:
        server.cancel()
        with pytest.raises(asyncio.CancelledError):
            await server

    assert listed.status_code == 200
    assert listed.json()["pagination"]["page"] == 1
    assert balances.status_code == 200
    assert switched.json()["mode"] == "drop_after_create"
    assert "Perdido" in {c["name"] for c in after.json()}


async def _wait_for_banner(capsys: pytest.CaptureFixture[str]) -> str:
    printed = ""
    for _ in range(250):
        printed += capsys.readouterr().out
        if "TESORO_FINQWARE_CONSENTS" in printed:
            return printed
        await asyncio.sleep(0.02)
    raise AssertionError(f"simulators did not start; printed: {printed!r}")
