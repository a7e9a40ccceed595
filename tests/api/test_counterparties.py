"""The counterparty routes through the app, on the in-process simulators."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from app.domain.counterparties import normalize_text
from tests.support.answers import ok_json
from tests.support.apps import sandbox_app
from tests.support.asgi import started
from tests.support.simulators import Simulators


def listing(client: TestClient, **params: Any) -> dict[str, Any]:
    return ok_json(client, "/counterparties", **params)


def test_lists_every_counterparty_of_every_source_ordered_by_name(client: TestClient) -> None:
    body = listing(client, page_size=200)
    ids = [item["id"] for item in body["items"]]
    assert "finsync:101" in ids
    assert "finqware:bt-main" in ids
    assert "finqware:brd-legacy" in ids  # its consent expired, yet the company has that bank
    assert "finsync:118" not in ids  # another company's client
    assert body["total"] == len(ids)
    # Accent-blind order: "Ñandú" sorts among the N's.
    keys = [(normalize_text(item["name"]), item["id"]) for item in body["items"]]
    assert keys == sorted(keys)
    names = [item["name"] for item in body["items"]]
    assert names.index("Ñandú Textil S.A.") < names.index("Payoneer")


def test_bank_connection_is_an_internal_counterparty_with_named_accounts(
    client: TestClient,
) -> None:
    bank = next(i for i in listing(client, page_size=200)["items"] if i["id"] == "finqware:bt-main")
    assert bank["kind"] == "internal"
    assert bank["source"] == "finqware"
    assert bank["accounts"]
    assert all(account["name"] for account in bank["accounts"])
    assert all(account["id"].startswith("finqware:") for account in bank["accounts"])


def test_pages_split_the_ordered_list(client: TestClient) -> None:
    everything = [i["id"] for i in listing(client, page_size=200)["items"]]
    first = listing(client, page=1, page_size=10)
    second = listing(client, page=2, page_size=10)
    assert [i["id"] for i in first["items"]] == everything[:10]
    assert [i["id"] for i in second["items"]] == everything[10:20]
    assert (first["page"], first["page_size"], first["total"]) == (1, 10, len(everything))
    assert listing(client, page=999)["items"] == []


def test_q_is_case_and_accent_insensitive(client: TestClient) -> None:
    names = {i["name"] for i in listing(client, q="CAFE")["items"]}
    assert "Café del Sur S.R.L." in names
    assert {i["name"] for i in listing(client, q="logistica")["items"]} == {"Logística Patagónica"}


def test_q_matches_the_description_too(client: TestClient) -> None:
    names = {i["name"] for i in listing(client, q="fletes")["items"]}
    assert names == {"Logística Patagónica", "Transportes Andinos S.A."}


def test_kind_source_and_currency_filters(client: TestClient) -> None:
    external = listing(client, kind="external", page_size=200)["items"]
    assert external
    assert {i["kind"] for i in external} == {"external"}
    banks = listing(client, source="finqware")["items"]
    assert {i["source"] for i in banks} == {"finqware"}
    usdt = listing(client, currency="USDT")["items"]
    assert {i["id"] for i in usdt} == {"finsync:109", "finsync:216"}


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page_size=0",
        "page_size=201",
        "page=abc",
        "kind=other",
        "source=x",
        "currency=$$$",
    ],
)
def test_bad_list_queries_are_422_problems(client: TestClient, query: str) -> None:
    response = client.get(f"/counterparties?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


def test_get_one_finsync_counterparty(client: TestClient) -> None:
    response = client.get("/counterparties/finsync:112")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "finsync:112"
    assert body["kind"] == "internal"
    # Two accounts in one currency stay two accounts.
    assert [a["currency"] for a in body["accounts"]] == ["USD", "USD"]
    assert [s["source"] for s in body["sources"]] == ["finsync"]


def test_get_a_client_without_accounts(client: TestClient) -> None:
    body = client.get("/counterparties/finsync:117").json()
    assert body["accounts"] == []


def test_get_one_bank_connection(client: TestClient) -> None:
    response = client.get("/counterparties/finqware:ing-ops")
    assert response.status_code == 200
    assert [s["source"] for s in response.json()["sources"]] == ["finqware:ing-ops"]


@pytest.mark.parametrize(
    "counterparty_id",
    [
        "finsync:999999",
        "finsync:abc",
        "finsync:0",
        "finsync:-1",
        "finsync:118",
        "finqware:nope",
        "paypal:1",
        "42",
        "finsync:" + "9" * 40,
    ],
)
def test_unknown_or_malformed_ids_are_404_problems(
    client: TestClient, counterparty_id: str
) -> None:
    response = client.get(f"/counterparties/{counterparty_id}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


def test_create_answers_201_with_location_and_the_new_counterparty(
    client: TestClient, simulators: Simulators
) -> None:
    response = client.post(
        "/counterparties", json={"name": "  ACME Brokers ", "description": "Preferred FX"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "ACME Brokers"
    assert created["kind"] == "external"
    assert created["accounts"] == []
    assert response.headers["location"] == f"/counterparties/{created['id']}"
    fetched = client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json()["name"] == "ACME Brokers"
    assert created["id"] in {i["id"] for i in listing(client, page_size=200)["items"]}
    assert simulators.finsync_calls("POST /api/clients") == 1


@pytest.mark.parametrize(
    "name", ["cafe del sur s.r.l.", "CAFÉ  DEL SUR S.R.L.", "Café del SurS.R.L."]
)
def test_create_with_an_existing_name_is_a_409_naming_it(
    client: TestClient, simulators: Simulators, name: str
) -> None:
    response = client.post("/counterparties", json={"name": name})
    assert response.status_code == 409
    problem = response.json()
    assert problem["existing_id"] == "finsync:201"
    assert simulators.finsync_calls("POST /api/clients") == 0


def test_a_bank_connections_name_does_not_block_creating_that_bank_as_a_lender(
    client: TestClient, simulators: Simulators
) -> None:
    response = client.post("/counterparties", json={"name": "ING BANK  romania"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "ING BANK  romania"
    assert simulators.finsync_calls("POST /api/clients") == 1
    # Only FinSync clients count as duplicates, and only FinSync was asked.
    assert simulators.finqware_calls() == 0


def test_create_goes_ahead_when_the_banks_cannot_answer(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finqware_faults.mode = "error"
    response = client.post("/counterparties", json={"name": "Proveedor Nuevo"})
    assert response.status_code == 201, response.text
    assert simulators.finsync_calls("POST /api/clients") == 1


@pytest.mark.parametrize(
    ("name", "code_point"),
    [
        ("ACME \u202eBrokers", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("ACME \u2066Brokers\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("ACME\x00Brokers", "U+0000"),
        ("ACME\u202aBrokers", "U+202A LEFT-TO-RIGHT EMBEDDING"),
    ],
)
def test_create_refuses_control_and_bidi_characters_naming_the_code_point(
    client: TestClient, simulators: Simulators, name: str, code_point: str
) -> None:
    response = client.post("/counterparties", json={"name": name})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["location"] == ["body", "name"]
    assert code_point in error["message"]
    assert simulators.finsync_calls("POST /api/clients") == 0


@pytest.mark.parametrize(
    "name",
    [
        "Caf\u00e9 del\u200b Sur S.R.L.",  # zero-width space
        "Caf\u00e9 del Sur S.\u00adR.L.",  # soft hyphen
        "C\u0430f\u00e9 del Sur S.R.L.",  # Cyrillic a
        "CAF\u0395 DEL SUR S.R.L.",  # Greek capital epsilon, accent dropped
        "Cafe\u0301 \u2060del Sur S.R.L.",  # decomposed accent, word joiner
    ],
)
def test_invisible_and_look_alike_characters_never_make_a_name_new(
    client: TestClient, simulators: Simulators, name: str
) -> None:
    response = client.post("/counterparties", json={"name": name})
    assert response.status_code == 409, response.text
    assert response.json()["existing_id"] == "finsync:201"
    assert simulators.finsync_calls("POST /api/clients") == 0


def test_a_name_of_only_invisible_characters_is_refused(client: TestClient) -> None:
    response = client.post("/counterparties", json={"name": "\u200b\u200d\u2060"})
    assert response.status_code == 422
    assert "invisible" in response.json()["errors"][0]["message"]


def test_names_are_created_nfc_normalised(client: TestClient) -> None:
    response = client.post("/counterparties", json={"name": "Nuevo Proveedor Jose\u0301"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Nuevo Proveedor Jos\u00e9"


@pytest.mark.anyio
async def test_concurrent_creates_of_one_name_create_it_once(simulators: Simulators) -> None:
    app = sandbox_app(simulators)
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as http,
    ):
        answers = await asyncio.gather(
            *(http.post("/counterparties", json={"name": "Gemelos SA"}) for _ in range(4))
        )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409]
    created = next(answer.json() for answer in answers if answer.status_code == 201)
    assert {a.json()["existing_id"] for a in answers if a.status_code == 409} == {created["id"]}
    assert simulators.finsync_calls("POST /api/clients") == 1


@pytest.mark.anyio
async def test_a_create_never_joins_a_read_of_the_list_that_started_before_it(
    simulators: Simulators,
) -> None:
    app = sandbox_app(simulators)
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as http,
    ):
        before = simulators.finsync_calls()
        assert (await http.post("/counterparties", json={"name": "Primero SA"})).status_code == 201
        pages_of_one_read = simulators.finsync_calls() - before
        simulators.finsync_faults.delay_seconds = 0.3
        before = simulators.finsync_calls()
        first = asyncio.ensure_future(http.post("/counterparties", json={"name": "Segundo SA"}))
        for _ in range(500):  # until its read of the list has started
            if simulators.finsync_calls() > before:
                break
            await asyncio.sleep(0.01)
        # A client created elsewhere from now on may be missing from that read: this create
        # reads the list itself.
        late = await http.post("/counterparties", json={"name": "Tercero SA"})
        assert (await first).status_code == late.status_code == 201
    assert simulators.finsync_calls() - before == 2 * pages_of_one_read


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": 12},
        {"name": "ok", "extra": 1},
        {"name": "ok", "description": "d" * 501},
        ["name"],
        "name",
    ],
)
def test_bad_create_bodies_are_422_problems(client: TestClient, body: Any) -> None:
    response = client.post("/counterparties", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


def test_malformed_json_is_a_422_problem(client: TestClient) -> None:
    response = client.post(
        "/counterparties", content=b'{"name": "x', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_a_413_problem(client: TestClient) -> None:
    response = client.post("/counterparties", json={"name": "x" * 200_000})
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


def test_idempotency_key_replays_the_first_answer(
    client: TestClient, simulators: Simulators
) -> None:
    headers = {"Idempotency-Key": "create-acme-1"}
    first = client.post("/counterparties", json={"name": "ACME"}, headers=headers)
    again = client.post("/counterparties", json={"name": "ACME"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert simulators.finsync_calls("POST /api/clients") == 1


def test_idempotency_key_with_another_body_is_422(client: TestClient) -> None:
    headers = {"Idempotency-Key": "create-acme-2"}
    assert client.post("/counterparties", json={"name": "ACME"}, headers=headers).status_code == 201
    response = client.post("/counterparties", json={"name": "Other"}, headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]


def test_create_whose_answer_is_lost_is_checked_not_resent(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "drop_after_create"
    response = client.post("/counterparties", json={"name": "Lost Answer SRL"})
    assert response.status_code == 201
    assert response.json()["name"] == "Lost Answer SRL"
    assert simulators.finsync_calls("POST /api/clients") == 1


class _UnreadableCreateAnswer(httpx2.AsyncBaseTransport):
    """FinSync creates land, but answer a page nobody can read; everything else passes."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == "/api/clients":
            await response.aread()
            return httpx2.Response(201, content=b"<html>OK</html>", request=request)
        return response


def test_create_whose_answer_cannot_be_read_is_found_by_name(simulators: Simulators) -> None:
    transport = _UnreadableCreateAnswer(simulators.transport())
    app = sandbox_app(transport=transport)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/counterparties", json={"name": "Respuesta Rara SA"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Respuesta Rara SA"
    assert response.headers["location"] == f"/counterparties/{response.json()['id']}"
    assert simulators.finsync_calls("POST /api/clients") == 1


class _PostTimesOut(httpx2.AsyncBaseTransport):
    """FinSync creates never answer and never land; everything else passes."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.posts = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST" and request.url.path == "/api/clients":
            self.posts += 1
            raise httpx2.ReadTimeout("no answer", request=request)
        return await self.inner.handle_async_request(request)


def test_create_with_unknown_outcome_that_did_not_land_is_a_503_safe_to_retry(
    simulators: Simulators,
) -> None:
    transport = _PostTimesOut(simulators.transport())
    app = sandbox_app(transport=transport)
    with TestClient(app) as client:
        response = client.post("/counterparties", json={"name": "Never Landed"})
    assert response.status_code == 503
    assert response.json()["type"].endswith("create-not-confirmed")
    assert transport.posts == 1


def test_create_when_finsync_is_down_is_a_503_problem(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "error"
    response = client.post("/counterparties", json={"name": "Nobody Home"})
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_error"
