"""Whatever an upstream sends, tesoro answers: odd data becomes warnings, never a 500."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import httpx2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.support.apps import sandbox_app
from tests.support.simulators import Simulators


class ScriptedFinsync(httpx2.AsyncBaseTransport):
    """FinSync answers what the test scripts; Finqware (optionally scripted) is the sandbox."""

    def __init__(self, simulators: Simulators) -> None:
        self.sandbox = simulators.transport()
        self.status = 200
        self.body = b"[]"
        self.content_type = "application/json"
        self.balances: bytes | None = None

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "finsync.sandbox":
            return httpx2.Response(
                self.status, content=self.body, headers={"content-type": self.content_type}
            )
        if self.balances is not None and request.url.path.endswith("/balances/get"):
            return httpx2.Response(200, content=self.balances)
        return await self.sandbox.handle_async_request(request)


def client_with(transport: httpx2.AsyncBaseTransport) -> TestClient:
    app = sandbox_app(
        transport=transport, min_refresh_interval_seconds=0, failure_backoff_seconds=0
    )
    return TestClient(app, raise_server_exceptions=False)


def finsync_client(client_id: int, type_: Any, balance: str = "100.5") -> dict[str, Any]:
    return {
        "id": client_id,
        "name": f"Client {client_id}",
        "description": None,
        "type": type_,
        "accounts": [{"id": client_id * 10, "currency_name": "ARS", "balance": balance}],
    }


def fresh(client: TestClient, path: str) -> Any:
    response = client.get(path, headers={"Cache-Control": "no-cache"})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_client_of_type_2_is_left_out_and_named_in_warnings(simulators: Simulators) -> None:
    transport = ScriptedFinsync(simulators)
    transport.body = json.dumps([finsync_client(1, 0), finsync_client(2, 2)]).encode()
    with client_with(transport) as client:
        body = fresh(client, "/positions")
        ids = {p["counterparty_id"] for p in body["positions"]}
        assert "finsync:1" in ids
        assert "finsync:2" not in ids
        warning = next(w for w in body["warnings"] if w["code"] == "unknown_client_type")
        assert warning["counterparty_id"] == "finsync:2"
        listed = fresh(client, "/counterparties?source=finsync")
        assert [i["id"] for i in listed["items"]] == ["finsync:1"]


def test_html_broken_envelopes_and_truncated_json_make_finsync_unavailable(
    simulators: Simulators,
) -> None:
    transport = ScriptedFinsync(simulators)
    cases: list[tuple[int, bytes, str, str]] = [
        (200, b"<html>maintenance</html>", "text/html", "bad_response"),
        (200, b'{"data": [{"id": 1, "name"', "application/json", "bad_response"),
        (200, b'{"data": "x"}', "application/json", "bad_response"),
        (503, b"<html>Service Unavailable</html>", "text/html", "upstream_error"),
    ]
    with client_with(transport) as client:
        for status, body, content_type, code in cases:
            transport.status, transport.body, transport.content_type = status, body, content_type
            sources = {s["source"]: s for s in fresh(client, "/positions")["sources"]}
            assert sources["finsync"]["status"] == "unavailable"
            assert sources["finsync"]["error"]["code"] == code


def test_unknown_balance_types_and_indicators_are_warnings(simulators: Simulators) -> None:
    transport = ScriptedFinsync(simulators)
    entry: dict[str, Any] = {
        "account_id": "acc-x",
        "id": "b1",
        "timestamp": "2026-01-01T00:00:00",
        "data": {
            "amount": "10.00",
            "credit_debit_indicator": "credit",
            "credit_limit_included": False,
            "credit_line": None,
            "currency": "RON",
            "native_timestamp": None,
            "type": "Information",
        },
    }
    odd_indicator = {**entry, "account_id": "acc-y", "id": "b2"}
    odd_indicator["data"] = {
        **entry["data"],
        "type": "InterimBooked",
        "credit_debit_indicator": "both",
    }
    transport.balances = json.dumps([entry, odd_indicator]).encode()
    with client_with(transport) as client:
        body = fresh(client, "/positions?source=finqware")
        codes = {(w["code"], w["account_id"]) for w in body["warnings"]}
        assert ("no_usable_balance", "finqware:acc-x") in codes
        assert ("unknown_credit_debit_indicator", "finqware:acc-y") in codes
        assert not any(
            p["account_id"] in ("finqware:acc-x", "finqware:acc-y") for p in body["positions"]
        )


def test_odd_types_and_balances_cost_only_their_own_client(simulators: Simulators) -> None:
    transport = ScriptedFinsync(simulators)
    clients = [
        finsync_client(1, 0),
        finsync_client(2, None),
        finsync_client(3, "proveedor"),
        finsync_client(4, True),
        finsync_client(5, "1"),
        {**finsync_client(6, 1), "accounts": [{"id": 60, "currency_name": "ARS", "balance": None}]},
        {**finsync_client(7, 0), "accounts": [{"id": 70, "currency_name": "ARS", "balance": "x"}]},
    ]
    transport.body = json.dumps(clients).encode()
    with client_with(transport) as client:
        body = fresh(client, "/positions?source=finsync")
        assert body["sources"][0]["status"] == "ok"
        amounts = {p["counterparty_id"]: p["amount"] for p in body["positions"]}
        assert amounts == {"finsync:1": "100.50", "finsync:5": "-100.50"}
        warned = {(w["code"], w["counterparty_id"]) for w in body["warnings"]}
        assert warned == {
            ("unknown_client_type", "finsync:2"),
            ("unknown_client_type", "finsync:3"),
            ("unknown_client_type", "finsync:4"),
            ("invalid_amount", "finsync:6"),
            ("invalid_amount", "finsync:7"),
        }
        listed = fresh(client, "/counterparties?source=finsync")
        accounts = {item["id"]: item["accounts"] for item in listed["items"]}
        assert set(accounts) == {"finsync:1", "finsync:5", "finsync:6", "finsync:7"}
        assert accounts["finsync:6"][0]["position"] is None


def test_a_null_indicator_is_an_unknown_indicator_not_a_broken_bank(
    simulators: Simulators,
) -> None:
    transport = ScriptedFinsync(simulators)
    entry: dict[str, Any] = {
        "account_id": "acc-n",
        "id": "b1",
        "timestamp": "2026-01-01T00:00:00",
        "data": {
            "amount": "10.00",
            "credit_debit_indicator": None,
            "credit_limit_included": False,
            "currency": "RON",
            "type": "InterimBooked",
        },
    }
    transport.balances = json.dumps([entry]).encode()
    with client_with(transport) as client:
        # Every consent gets the scripted entry (one account id under each, which counts
        # once across them): ask about one consent only.
        body = fresh(client, "/positions?counterparty_id=finqware:bt-main")
        bank = next(s for s in body["sources"] if s["source"] == "finqware:bt-main")
        assert bank["status"] == "ok"
        warned = [
            w["code"]
            for w in body["warnings"]
            if w["account_id"] == "finqware:acc-n" and w["source"] == "finqware:bt-main"
        ]
        assert warned == ["unknown_credit_debit_indicator"]
        assert not any(p["account_id"] == "finqware:acc-n" for p in body["positions"])


NUMBER = "@@num@@"


def as_json_numbers(text: str) -> str:
    """Unquote marked decimals: FinSync sends balances as JSON numbers, not strings."""
    return re.sub(f'"{NUMBER}(.*?){NUMBER}"', r"\1", text)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
client_like = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=-2, max_value=10**20) | st.text(max_size=3),
        "name": st.text(max_size=120) | st.none(),
        "type": st.integers(min_value=-1, max_value=3) | st.text(max_size=2),
        "accounts": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.integers(min_value=0, max_value=10**6),
                    "currency_name": st.text(max_size=10),
                    "balance": st.decimals(allow_nan=False, allow_infinity=False).map(
                        lambda d: f"{NUMBER}{d}{NUMBER}"
                    )
                    | st.integers()
                    | json_values,
                }
            ),
            max_size=3,
        ),
    }
)


def test_no_finsync_answer_makes_a_server_error(simulators: Simulators) -> None:
    transport = ScriptedFinsync(simulators)
    with client_with(transport) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            status=st.sampled_from([200, 200, 200, 400, 401, 404, 418, 429, 500, 502]),
            body=st.lists(client_like, max_size=4).map(json.dumps)
            | json_values.map(json.dumps)
            | st.binary(max_size=40).map(lambda raw: raw.decode("latin-1")),
        )
        def check(status: int, body: str) -> None:
            transport.status = status
            transport.body = as_json_numbers(body).encode()
            for path in ("/positions?include_zero=true", "/counterparties?page_size=200"):
                response = client.get(path, headers={"Cache-Control": "no-cache"})
                assert response.status_code == 200, response.text

        check()


class ScriptedFinqware(httpx2.AsyncBaseTransport):
    """Finqware answers what the test scripts, for both routes; FinSync is the sandbox."""

    def __init__(self, simulators: Simulators) -> None:
        self.sandbox = simulators.transport()
        self.status = 200
        self.balances = b"[]"
        self.accounts = b"[]"

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "finsync.sandbox":
            return await self.sandbox.handle_async_request(request)
        body = self.balances if request.url.path.endswith("/balances/get") else self.accounts
        return httpx2.Response(
            self.status, content=body, headers={"content-type": "application/json"}
        )


timestamps = (
    st.sampled_from(
        [
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.123456",
            "2026-01-01T09:00:00Z",
            "2026-01-01T09:00:00+02:00",
            "2026-13-01T00:00:00",
            "",
        ]
    )
    | st.none()
)
balance_like = st.fixed_dictionaries(
    {
        "account_id": st.sampled_from(["acc-1", "acc-2", ""]) | st.integers(),
        "id": st.uuids().map(str),
        "timestamp": timestamps,
        "data": st.fixed_dictionaries(
            {
                "amount": st.decimals(allow_nan=False, allow_infinity=False).map(str)
                | st.sampled_from(["0", "0.00", "-0.00", "210.23", "1E+3", "1,5", "NaN"])
                | json_values,
                "credit_debit_indicator": st.sampled_from(
                    ["credit", "debit", "Credit", "DBIT", "", "both"]
                )
                | json_values,
                "credit_limit_included": st.booleans() | st.none(),
                "credit_line": st.none() | st.sampled_from(["500.00", "-1", "x"]),
                "currency": st.sampled_from(["RON", "EUR", "ron", "USDT", "R$", ""]),
                "native_date": st.sampled_from(["2026-01-01", "01/01/2026"]) | st.none(),
                "native_timestamp": timestamps,
                "type": st.sampled_from(
                    ["InterimBooked", "Expected", "ClosingAvailable", "Information", "Odd"]
                ),
            }
        ),
    }
)
account_like = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["acc-1", "acc-2", "acc-3"]),
        "servicer_name": st.text(max_size=20) | st.none(),
        "data": st.fixed_dictionaries(
            {
                "name": st.text(max_size=20) | st.none(),
                "nickname": st.text(max_size=20) | st.none(),
                "currency": st.sampled_from(["RON", "EUR", "", "??"]) | st.none(),
                "account_schemes": st.lists(
                    st.fixed_dictionaries(
                        {
                            "scheme_name": st.sampled_from(["IBAN", "iban", "BICFI"]),
                            "identification": st.text(max_size=24),
                        }
                    ),
                    max_size=2,
                ),
            }
        ),
    }
)
finqware_errors = st.fixed_dictionaries(
    {
        "http": st.integers(min_value=400, max_value=599),
        "type": st.sampled_from(["invalid_request", "unauthorized", "external_api_error"]),
        "code": st.sampled_from(
            ["expired_credentials", "external_api_too_many_requests", "invalid_field", "x"]
        )
        | json_values,
        "message": st.text(max_size=20),
    }
)


def test_no_finqware_answer_makes_a_server_error(simulators: Simulators) -> None:
    transport = ScriptedFinqware(simulators)
    with client_with(transport) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            status=st.sampled_from([200, 200, 200, 200, 400, 401, 429, 500]),
            balances=st.lists(balance_like, max_size=5).map(json.dumps)
            | finqware_errors.map(json.dumps)
            | json_values.map(json.dumps),
            accounts=st.lists(account_like, max_size=3).map(json.dumps)
            | json_values.map(json.dumps),
        )
        def check(status: int, balances: str, accounts: str) -> None:
            transport.status = status
            transport.balances = balances.encode()
            transport.accounts = accounts.encode()
            for path in (
                "/positions?include_zero=true",
                "/counterparties?page_size=200",
                "/counterparties/finqware:bt-main",
            ):
                response = client.get(path, headers={"Cache-Control": "no-cache"})
                # FinSync (the sandbox) answers, so every list is a 200; the one bank
                # connection alone may be a 503 when it failed with nothing cached.
                assert response.status_code in (200, 503), response.text
                if response.status_code == 200:
                    for position in response.json().get("positions", []):
                        amount = position["amount"]
                        assert Decimal(amount) != 0 or not amount.startswith("-"), amount

        check()


class FailingAccountList(httpx2.AsyncBaseTransport):
    """The sandbox, except that Finqware's account list answers 500 while balances work."""

    def __init__(self, simulators: Simulators) -> None:
        self.sandbox = simulators.transport()
        self.failing = True

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.failing and request.url.path.endswith("/accounts/get"):
            return httpx2.Response(500, json={"message": "internal error"})
        return await self.sandbox.handle_async_request(request)


def test_balances_are_served_when_the_account_list_fails(simulators: Simulators) -> None:
    transport = FailingAccountList(simulators)
    with client_with(transport) as client:
        body = fresh(client, "/positions?source=finqware")
        bank = next(s for s in body["sources"] if s["source"] == "finqware:bt-main")
        assert bank["status"] == "ok"
        positions = [p for p in body["positions"] if p["counterparty_id"] == "finqware:bt-main"]
        assert positions
        # Named by the account id, as the list that names them did not come.
        assert all(
            p["account_name"] == p["account_id"].removeprefix("finqware:") for p in positions
        )
        warned = [w for w in body["warnings"] if w["source"] == "finqware:bt-main"]
        assert [w["code"] for w in warned] == ["account_details_unavailable"]
        assert "upstream_error" in warned[0]["message"]

        transport.failing = False
        named = fresh(client, "/positions?source=finqware")
        again = [p for p in named["positions"] if p["counterparty_id"] == "finqware:bt-main"]
        assert all(p["account_name"] != p["account_id"].removeprefix("finqware:") for p in again)
        assert not any(w["source"] == "finqware:bt-main" for w in named["warnings"])
