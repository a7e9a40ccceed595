"""One account, one count, through the app: a bank consent renewed before the old one ended
(the Finqware simulator's "renewed consent" switch), a FinSync account under two clients and
a client listed twice with different balances (a scripted FinSync)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from app.main import create_app
from app.sandbox.data import RENEWED_CONSENT
from app.sandbox.wiring import FINQWARE_SANDBOX_URL, FINSYNC_SANDBOX_URL
from app.settings import ConsentSettings
from tests.support.answers import ok_json, positions
from tests.support.apps import opened_clients, sandbox_app, upstream_settings
from tests.support.simulators import Simulators

RON_IBAN = "RO43BTRLRONCRT0A56010101"
OLD_RON = "finqware:69a19df6-1a2f-4d3d-9b63-3bc1bddfd89a"
NEW_RON = "finqware:c41e2b7d-8a3f-4e59-b1d6-7f20a9c35e18"
OLD_EUR = "finqware:0943626c-fa73-4b03-8889-0fe7a0b9455e"
NEW_EUR = "finqware:f6a91c3e-0b7d-4e24-a85f-3d9c2e1b7a40"


def renewed_app(simulators: Simulators) -> FastAPI:
    """tesoro with the sandbox's consents and the renewed one, on the simulators."""
    settings = upstream_settings(FINSYNC_SANDBOX_URL, FINQWARE_SANDBOX_URL, auth_disabled=True)
    renewed = ConsentSettings.model_validate(RENEWED_CONSENT.as_setting())
    settings = settings.model_copy(
        update={"finqware_consents": [*settings.finqware_consents, renewed]}
    )
    return create_app(settings, transport=simulators.transport())


@pytest.fixture
def renewed(simulators: Simulators) -> Iterator[TestClient]:
    simulators.finqware.state.store.renewed = True
    with opened_clients() as open_client:
        yield open_client(renewed_app(simulators))


def by_currency(body: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {total["currency"]: total for total in body["totals"]}


def test_a_renewed_consent_counts_each_bank_account_once(renewed: TestClient) -> None:
    body = positions(renewed, source="finqware")

    states = {s["source"]: s["status"] for s in body["sources"]}
    assert states["finqware:bt-main"] == states["finqware:bt-renewed"] == "ok"
    ron = [(p["counterparty_id"], p["account_id"], p["amount"]) for p in body["positions"]]
    ron = [entry for entry in ron if entry[1] in (OLD_RON, NEW_RON)]
    # Once, from the renewed consent, whose InterimBooked is an hour later.
    assert ron == [("finqware:bt-renewed", NEW_RON, "128010.05")]
    eur = [p for p in body["positions"] if p["currency"] == "EUR"]
    # The EUR copies are of the same day: one of them counts, never both.
    assert [(p["account_id"] in (OLD_EUR, NEW_EUR), p["amount"]) for p in eur] == [
        (True, "18250.12345")
    ]
    totals = by_currency(body)
    assert (totals["RON"]["assets"], totals["RON"]["liabilities"], totals["RON"]["net"]) == (
        "128010.05",
        "3200.40",
        "124809.65",
    )
    assert (totals["EUR"]["net"], totals["EUR"]["cash"]) == ("18250.12345", "18250.12345")
    assert totals["USD"]["net"] == "25640.50001"

    duplicates = [w for w in body["warnings"] if w["code"] == "duplicate_account"]
    assert len(duplicates) == 2
    [about_ron] = [w for w in duplicates if w["account_id"] == OLD_RON]
    assert (about_ron["source"], about_ron["counterparty_id"]) == (
        "finqware:bt-main",
        "finqware:bt-main",
    )
    for named in ("finqware:bt-main", OLD_RON, "finqware:bt-renewed", NEW_RON, RON_IBAN):
        assert named in about_ron["message"]


def test_without_the_renewal_the_old_consent_counts_the_same_accounts(
    simulators: Simulators,
) -> None:
    with opened_clients() as open_client:
        body = positions(open_client(sandbox_app(simulators)), source="finqware")
    totals = by_currency(body)
    assert (totals["RON"]["net"], totals["EUR"]["net"]) == ("124709.65", "18250.12345")
    assert not [w for w in body["warnings"] if w["code"] == "duplicate_account"]


def test_the_counterparties_list_shows_the_other_copy_without_a_position(
    renewed: TestClient,
) -> None:
    body = ok_json(renewed, "/counterparties", source="finqware")
    accounts = {
        account["id"]: (item["id"], account["position"])
        for item in body["items"]
        for account in item["accounts"]
    }
    assert accounts[OLD_RON] == ("finqware:bt-main", None)
    new_owner, new_position = accounts[NEW_RON]
    assert (new_owner, new_position["amount"]) == ("finqware:bt-renewed", "128010.05")
    # Summing every listed position counts each bank account once.
    positioned_eur = [
        position for _, position in accounts.values() if position and position["currency"] == "EUR"
    ]
    assert [p["amount"] for p in positioned_eur] == ["18250.12345"]
    assert {w["code"] for w in body["warnings"]} >= {"duplicate_account"}


def test_a_question_about_one_consent_shows_that_consents_copy(renewed: TestClient) -> None:
    scoped = positions(renewed, counterparty_id="finqware:bt-main")
    assert [(p["account_id"], p["amount"]) for p in scoped["positions"]] == [
        (OLD_RON, "127910.05"),
        (OLD_EUR, "18250.12345"),
    ]
    assert [s["source"] for s in scoped["sources"]] == ["finqware:bt-main"]
    assert not [w for w in scoped["warnings"] if w["code"] == "duplicate_account"]

    detail = ok_json(renewed, "/counterparties/finqware:bt-main")
    positions_by_id = {a["id"]: a["position"]["amount"] for a in detail["accounts"]}
    assert positions_by_id == {OLD_RON: "127910.05", OLD_EUR: "18250.12345"}
    assert detail["warnings"] == []


class ScriptedFinsync(httpx2.AsyncBaseTransport):
    """FinSync answers `clients` (one page, a bare array); Finqware is the sandbox."""

    def __init__(self, simulators: Simulators, clients: list[dict[str, Any]]) -> None:
        self.sandbox = simulators.transport()
        self.body = json.dumps(clients).encode()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.host == httpx2.URL(FINSYNC_SANDBOX_URL).host:
            return httpx2.Response(
                200, content=self.body, headers={"content-type": "application/json"}
            )
        return await self.sandbox.handle_async_request(request)


def client(client_id: int, *accounts: tuple[int, str, str], client_type: int = 0) -> dict[str, Any]:
    """A FinSync client with accounts given as (id, balance, updated_at)."""
    return {
        "id": client_id,
        "name": f"Cliente {client_id}",
        "description": None,
        "type": client_type,
        "accounts": [
            {"id": account_id, "currency_name": "ARS", "balance": balance, "updated_at": when}
            for account_id, balance, when in accounts
        ],
    }


def finsync_answer(simulators: Simulators, clients: list[dict[str, Any]]) -> dict[str, Any]:
    transport = ScriptedFinsync(simulators, clients)
    with opened_clients() as open_client:
        return positions(open_client(sandbox_app(transport=transport)), source="finsync")


def test_a_finsync_account_under_two_clients_is_counted_once(simulators: Simulators) -> None:
    body = finsync_answer(
        simulators,
        [
            client(1, (500, "1000000.00", "2026-11-20T10:00:00Z"), (501, "248", "2026-11-20")),
            client(2, (500, "1000000.00", "2026-11-20T11:00:00Z")),
        ],
    )

    assert [(p["counterparty_id"], p["account_id"], p["amount"]) for p in body["positions"]] == [
        ("finsync:1", "finsync:501", "248.00"),
        ("finsync:2", "finsync:500", "1000000.00"),
    ]
    assert by_currency(body)["ARS"]["net"] == "1000248.00"
    [warning] = body["warnings"]
    assert (warning["code"], warning["counterparty_id"], warning["account_id"]) == (
        "duplicate_account",
        "finsync:1",
        "finsync:500",
    )
    assert "finsync:1" in warning["message"]
    assert "finsync:2" in warning["message"]


def test_a_client_listed_twice_with_different_balances_is_warned_about(
    simulators: Simulators,
) -> None:
    earlier = client(7, (70, "100.00", "2026-11-20T09:00:00Z"))
    later = client(7, (70, "130.25", "2026-11-20T09:05:00Z"))
    answers = [finsync_answer(simulators, order) for order in ([earlier, later], [later, earlier])]

    for body in answers:
        assert [(p["account_id"], p["amount"]) for p in body["positions"]] == [
            ("finsync:70", "130.25")
        ]
        [warning] = body["warnings"]
        assert (warning["code"], warning["counterparty_id"]) == ("conflicting_record", "finsync:7")
    # A repeat with the same content is one client, and nothing to warn about.
    same = finsync_answer(simulators, [earlier, earlier])
    assert [p["amount"] for p in same["positions"]] == ["100.00"]
    assert same["warnings"] == []
