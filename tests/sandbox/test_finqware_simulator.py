"""The Finqware simulator answers like api.finqware.com/v1: body secrets, errors, balances."""

import json
import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox import SANDBOX_CONSENTS, FinqwareStore
from app.sandbox.data import (
    FINQWARE_ACCOUNTS,
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    RENEWED_CONSENT,
    SEEDED_AS_OF,
    seed_shift,
    shift_date,
    shift_timestamp,
)
from app.settings import BALANCE_TYPES
from tests.support.finqware import BALANCE_DATA_KEYS, BALANCE_KEYS
from tests.support.simulators import consent

pytestmark = pytest.mark.anyio

ROUTES = ["/balances/get", "/accounts/get"]
AVAILABLE_FAMILY = {
    "InterimAvailable",
    "Expected",
    "ClosingAvailable",
    "OpeningAvailable",
    "ForwardAvailable",
}
AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,5})?")


def _assert_error(response: httpx2.Response, http: int, type_: str, code: str) -> None:
    assert response.status_code == http
    body = response.json()
    assert set(body) == {"id", "type", "http", "code", "message"}
    assert (body["http"], body["type"], body["code"]) == (http, type_, code)
    assert uuid.UUID(body["id"])
    assert isinstance(body["message"], str)
    assert body["message"]


# ---------------------------------------------------------------------------- balances


async def test_balances_have_the_documented_shape(finqware: httpx2.AsyncClient) -> None:
    response = await finqware.post("/balances/get", json=consent("bt-main"))

    assert response.status_code == 200
    entries = response.json()
    assert isinstance(entries, list)
    assert len(entries) == 12
    for entry in entries:
        assert set(entry) == BALANCE_KEYS
        data = entry["data"]
        # native_date may be absent (openapi/finqware.yaml); every other member is always sent.
        assert BALANCE_DATA_KEYS - {"native_date"} <= set(data) <= BALANCE_DATA_KEYS
        assert data["credit_debit_indicator"] in {"credit", "debit"}
        assert data["type"] in BALANCE_TYPES
        assert isinstance(data["credit_limit_included"], bool)


async def test_amounts_are_non_negative_decimal_strings(finqware: httpx2.AsyncClient) -> None:
    amounts = [
        entry["data"]["amount"]
        for key in ("bt-main", "ing-ops")
        for entry in (await finqware.post("/balances/get", json=consent(key))).json()
    ]

    assert all(isinstance(a, str) and AMOUNT.fullmatch(a) for a in amounts)
    assert any(len(a.partition(".")[2]) == 5 for a in amounts)


async def test_timestamps_are_naive_with_microseconds(finqware: httpx2.AsyncClient) -> None:
    entries = (await finqware.post("/balances/get", json=consent("ing-ops"))).json()

    for entry in entries:
        stamp = entry["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", stamp)
        assert datetime.fromisoformat(stamp).tzinfo is None


async def test_seeded_timestamps_and_dates_look_current(finqware: httpx2.AsyncClient) -> None:
    entries = (await finqware.post("/balances/get", json=consent("bt-main"))).json()

    now = datetime.now(UTC)
    queried = max(datetime.fromisoformat(e["timestamp"]).replace(tzinfo=UTC) for e in entries)
    # Moved by whole hours from when the data was written: at most about a day old here.
    assert now - timedelta(hours=13) < queried <= now
    native = [e["data"]["native_timestamp"] for e in entries if e["data"]["native_timestamp"]]
    assert max(datetime.fromisoformat(t) for t in native) <= now
    dates = {e["data"]["native_date"] for e in entries if e["data"].get("native_date")}
    # ClosingBooked's date is yesterday's, as the seeded data has it (or today, past midnight).
    assert any(now.date() - timedelta(days=2) <= date.fromisoformat(d) <= now.date() for d in dates)
    # Amounts never move.
    seeded = {b.id: b.amount for a in FINQWARE_ACCOUNTS for b in a.balances}
    assert entries
    assert {e["id"]: e["data"]["amount"] for e in entries} == {
        e["id"]: seeded[e["id"]] for e in entries
    }


def test_a_shift_keeps_each_timestamps_style() -> None:
    hours = timedelta(hours=5)
    assert shift_timestamp("2026-11-20T18:45:10Z", hours) == "2026-11-20T23:45:10Z"
    assert shift_timestamp("2026-11-20T07:31:51.689168", hours) == "2026-11-20T12:31:51.689168"
    assert shift_date("2026-11-19", timedelta(days=2, hours=5)) == "2026-11-21"
    assert seed_shift(SEEDED_AS_OF + timedelta(hours=3, minutes=59)) == timedelta(hours=3)
    assert seed_shift(SEEDED_AS_OF) == timedelta(0)


async def test_filter_narrows_balances(finqware: httpx2.AsyncClient) -> None:
    eur = "0943626c-fa73-4b03-8889-0fe7a0b9455e"
    by_account = await finqware.post(
        "/balances/get", json={**consent("bt-main"), "filter": {"account_id": eur}}
    )
    by_type_and_currency = await finqware.post(
        "/balances/get",
        json={**consent("bt-main"), "filter": {"type": "InterimAvailable", "currency": "RON"}},
    )
    nothing = await finqware.post(
        "/balances/get", json={**consent("bt-main"), "filter": {"currency": "USD"}}
    )

    assert {e["account_id"] for e in by_account.json()} == {eur}
    assert len(by_account.json()) == 5
    assert [(e["data"]["type"], e["data"]["currency"]) for e in by_type_and_currency.json()] == [
        ("InterimAvailable", "RON"),
        ("InterimAvailable", "RON"),
    ]
    assert nothing.json() == []


async def test_empty_filter_means_no_filter(finqware: httpx2.AsyncClient) -> None:
    plain = await finqware.post("/balances/get", json=consent("ing-ops"))
    empty = await finqware.post("/balances/get", json={**consent("ing-ops"), "filter": {}})

    assert empty.json() == plain.json()


# ---------------------------------------------------------------------------- accounts


async def test_accounts_name_the_bank_and_iban(finqware: httpx2.AsyncClient) -> None:
    bt = (await finqware.post("/accounts/get", json=consent("bt-main"))).json()
    ing = (await finqware.post("/accounts/get", json=consent("ing-ops"))).json()

    assert {a["servicer_name"] for a in bt} == {"Banca Transilvania"}
    assert {a["servicer_name"] for a in ing} == {"ING Bank Romania"}
    for account in bt + ing:
        assert set(account) == {"id", "servicer_id", "servicer_name", "timestamp", "data"}
        schemes = {
            s["scheme_name"]: s["identification"] for s in account["data"]["account_schemes"]
        }
        assert re.fullmatch(r"RO\d\d[A-Z]{4}[0-9A-Z]{16}", schemes["IBAN"])
        for balance in account["data"]["balances"]:
            assert set(balance) == {
                "balance_amount",
                "balance_currency",
                "balance_type",
                "credit_limit_included",
                "credit_debit_indicator",
            }
            assert AMOUNT.fullmatch(balance["balance_amount"])
    names = {(a["data"]["currency"], a["data"]["name"], a["data"]["nickname"]) for a in bt + ing}
    assert ("RON", "Cont curent Andes Trading", "") in names
    assert ("EUR", "", "Cont EUR export") in names
    assert ("USD", "", "") in names


async def test_account_ids_match_balance_account_ids(finqware: httpx2.AsyncClient) -> None:
    accounts = (await finqware.post("/accounts/get", json=consent("ing-ops"))).json()
    balances = (await finqware.post("/balances/get", json=consent("ing-ops"))).json()

    assert {a["id"] for a in accounts} == {b["account_id"] for b in balances}


async def test_filter_narrows_accounts(finqware: httpx2.AsyncClient) -> None:
    response = await finqware.post(
        "/accounts/get", json={**consent("ing-ops"), "filter": {"currency": "USD"}}
    )

    assert [a["data"]["currency"] for a in response.json()] == ["USD"]


# ---------------------------------------------------------------------------- 400s


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "field", ["client_id", "client_secret", "credentials_id", "access_token", "tenant_user_id"]
)
async def test_missing_field_is_missing_fields(
    finqware: httpx2.AsyncClient, route: str, field: str
) -> None:
    body = consent("bt-main")
    del body[field]

    response = await finqware.post(route, json=body)

    _assert_error(response, 400, "invalid_request", "missing_fields")
    assert field in response.json()["message"]


@pytest.mark.parametrize("route", ROUTES)
async def test_undocumented_field_is_unknown_fields(
    finqware: httpx2.AsyncClient, route: str
) -> None:
    response = await finqware.post(route, json={**consent("bt-main"), "page": 1})

    _assert_error(response, 400, "invalid_request", "unknown_fields")
    assert "page" in response.json()["message"]


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'"x"', b"null", b"\xff"])
async def test_body_that_is_not_a_json_object_is_invalid_body(
    finqware: httpx2.AsyncClient, content: bytes
) -> None:
    response = await finqware.post(
        "/balances/get", content=content, headers={"content-type": "application/json"}
    )

    _assert_error(response, 400, "invalid_request", "invalid_body")


@pytest.mark.parametrize("content_type", [None, "text/plain"])
async def test_body_not_sent_as_json_is_invalid_body(
    finqware: httpx2.AsyncClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}

    response = await finqware.post(
        "/balances/get", content=json.dumps(consent("bt-main")).encode(), headers=headers
    )

    _assert_error(response, 400, "invalid_request", "invalid_body")


@pytest.mark.parametrize(
    "change",
    [
        {"filter": {"iban": "RO43"}},
        {"filter": "RON"},
        {"filter": None},
        {"filter": {"currency": 5}},
        {"client_secret": 123},
        {"tenant_user_id": None},
    ],
)
async def test_badly_typed_field_is_invalid_field(
    finqware: httpx2.AsyncClient, change: dict[str, object]
) -> None:
    response = await finqware.post("/balances/get", json={**consent("bt-main"), **change})

    _assert_error(response, 400, "invalid_request", "invalid_field")


# ---------------------------------------------------------------------------- 401s


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"client_id": "someone-else"}, "invalid_client_id"),
        ({"client_secret": "guess"}, "invalid_client_secret"),
        ({"credentials_id": "00000000-0000-0000-0000-000000000000"}, "invalid_credentials_id"),
        ({"access_token": SANDBOX_CONSENTS[1].access_token}, "invalid_access_token"),
    ],
)
async def test_bad_secrets_are_401_with_their_code(
    finqware: httpx2.AsyncClient, route: str, change: dict[str, str], code: str
) -> None:
    response = await finqware.post(route, json={**consent("bt-main"), **change})

    _assert_error(response, 401, "unauthorized", code)


@pytest.mark.parametrize("route", ROUTES)
async def test_expired_consent_is_expired_credentials(
    finqware: httpx2.AsyncClient, route: str
) -> None:
    response = await finqware.post(route, json=consent("brd-legacy"))

    _assert_error(response, 401, "unauthorized", "expired_credentials")


async def test_a_consent_can_be_expired_mid_run(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    before = await finqware.post("/balances/get", json=consent("ing-ops"))
    store: FinqwareStore = finqware_app.state.store
    store.expired.add("ing-ops")
    after = await finqware.post("/balances/get", json=consent("ing-ops"))

    assert before.status_code == 200
    _assert_error(after, 401, "unauthorized", "expired_credentials")


async def test_tenant_user_id_is_opaque(finqware: httpx2.AsyncClient) -> None:
    response = await finqware.post(
        "/balances/get", json={**consent("bt-main"), "tenant_user_id": "any-user-42"}
    )

    assert response.status_code == 200


async def test_error_ids_are_distinct_uuids(finqware: httpx2.AsyncClient) -> None:
    ids = {
        (await finqware.post("/balances/get", json={})).json()["id"],
        (await finqware.post("/balances/get", json={})).json()["id"],
    }

    assert len(ids) == 2


async def test_get_and_unknown_paths_answer_with_error_objects(
    finqware: httpx2.AsyncClient,
) -> None:
    wrong_method = await finqware.get("/balances/get")
    missing = await finqware.post("/transactions/get", json=consent("bt-main"))

    _assert_error(wrong_method, 405, "invalid_request", "method_not_allowed")
    _assert_error(missing, 404, "invalid_request", "not_found")


async def test_calls_are_counted_per_route(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    await finqware.post("/balances/get", json=consent("bt-main"))
    await finqware.post("/balances/get", json={})
    await finqware.post("/accounts/get", json=consent("ing-ops"))

    assert finqware_app.state.calls == {"POST /v1/balances/get": 2, "POST /v1/accounts/get": 1}


# ---------------------------------------------------------------------------- data coverage


async def test_seeded_balances_cover_the_selection_rules(finqware: httpx2.AsyncClient) -> None:
    entries = [
        e
        for key in ("bt-main", "ing-ops")
        for e in (await finqware.post("/balances/get", json=consent(key))).json()
    ]
    by_account: dict[str, list[dict[str, object]]] = defaultdict(list)
    for entry in entries:
        by_account[entry["account_id"]].append(entry["data"])

    def same_type_pairs(
        data: list[dict[str, object]],
    ) -> list[tuple[dict[str, object], dict[str, object]]]:
        return [(a, b) for i, a in enumerate(data) for b in data[i + 1 :] if a["type"] == b["type"]]

    pairs = [p for data in by_account.values() for p in same_type_pairs(data)]
    # Same type with and without the credit line.
    assert any(
        a["credit_limit_included"] != b["credit_limit_included"]
        and (a["credit_line"] or b["credit_line"])
        for a, b in pairs
    )
    # Same type from two moments: the later one should win downstream.
    assert any(
        a["native_timestamp"] != b["native_timestamp"]
        and a["credit_limit_included"] == b["credit_limit_included"]
        for a, b in pairs
    )
    types = {account: {d["type"] for d in data} for account, data in by_account.items()}
    assert any("InterimBooked" not in t for t in types.values())
    assert any(not (t & AVAILABLE_FAMILY) for t in types.values())
    ron_debits = [
        d
        for d in entries
        if d["data"]["currency"] == "RON" and d["data"]["type"] == "InterimBooked"
    ]
    assert any(d["data"]["credit_debit_indicator"] == "debit" for d in ron_debits)
    assert any("native_date" not in e["data"] for e in entries)
    assert any(e["data"]["native_timestamp"] is None for e in entries)
    assert any(Decimal(e["data"]["amount"]) == 0 for e in entries)
    assert {e["data"]["currency"] for e in entries} == {"RON", "EUR", "USD"}


def test_every_consent_has_accounts_and_unique_ids() -> None:
    balance_ids = [b.id for a in FINQWARE_ACCOUNTS for b in a.balances]
    account_ids = [a.id for a in FINQWARE_ACCOUNTS]

    assert {a.consent_key for a in FINQWARE_ACCOUNTS} == {c.key for c in SANDBOX_CONSENTS}
    assert len(set(balance_ids)) == len(balance_ids)
    assert len(set(account_ids)) == len(account_ids)
    assert {"bt-main", "ing-ops", "brd-legacy"} <= {c.key for c in SANDBOX_CONSENTS}


def test_seeded_ibans_pass_the_mod97_check() -> None:
    for account in FINQWARE_ACCOUNTS:
        rearranged = account.iban[4:] + account.iban[:4]
        assert int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1, account.iban


# ---------------------------------------------------------------------- renewed consent


def _renewed_body() -> dict[str, str]:
    return {
        "client_id": FINQWARE_CLIENT_ID,
        "client_secret": FINQWARE_CLIENT_SECRET,
        "credentials_id": RENEWED_CONSENT.credentials_id,
        "access_token": RENEWED_CONSENT.access_token,
        "tenant_user_id": RENEWED_CONSENT.tenant_user_id,
    }


def _ibans(accounts: list[dict[str, Any]]) -> dict[str, str]:
    return {
        scheme["identification"]: account["id"]
        for account in accounts
        for scheme in account["data"]["account_schemes"]
        if scheme["scheme_name"] == "IBAN"
    }


async def test_the_renewed_consent_is_unknown_until_switched_on(
    finqware: httpx2.AsyncClient,
) -> None:
    response = await finqware.post("/balances/get", json=_renewed_body())

    _assert_error(response, 401, "unauthorized", "invalid_credentials_id")


async def test_a_renewed_consent_reaches_the_same_accounts_under_new_ids(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finqware_app), base_url="http://sandbox"
    ) as control:
        initial = await control.get("/_sandbox/renewed-consent")
        switched = await control.put("/_sandbox/renewed-consent", json={"on": True})
    assert initial.json() == {"on": False, "consent": "bt-renewed"}
    assert switched.json() == {"on": True, "consent": "bt-renewed"}

    old = _ibans((await finqware.post("/accounts/get", json=consent("bt-main"))).json())
    renewed_response = await finqware.post("/accounts/get", json=_renewed_body())
    renewed = _ibans(renewed_response.json())
    # The same bank accounts (IBANs), each under a new Finqware account id.
    assert set(renewed) == set(old) == {"RO43BTRLRONCRT0A56010101", "RO98BTRLEURCRT0A56010102"}
    assert all(renewed[iban] != old[iban] for iban in old)
    assert {a["servicer_name"] for a in renewed_response.json()} == {"Banca Transilvania"}

    balances = (await finqware.post("/balances/get", json=_renewed_body())).json()
    ron = renewed["RO43BTRLRONCRT0A56010101"]
    booked = [
        (e["data"]["amount"], e["data"]["native_timestamp"])
        for e in balances
        if e["account_id"] == ron and e["data"]["type"] == "InterimBooked"
    ]
    old_booked = [
        e["data"]["native_timestamp"]
        for e in (await finqware.post("/balances/get", json=consent("bt-main"))).json()
        if e["account_id"] == old["RO43BTRLRONCRT0A56010101"]
        and e["data"]["type"] == "InterimBooked"
    ]
    [(amount, when)] = booked
    assert amount == "128010.05"
    # An hour after the old consent's latest one.
    assert datetime.fromisoformat(when) - max(map(datetime.fromisoformat, old_booked)) == (
        timedelta(hours=1)
    )


async def test_switching_the_renewal_off_forgets_the_consent_again(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    store: FinqwareStore = finqware_app.state.store
    store.renewed = True
    assert (await finqware.post("/balances/get", json=_renewed_body())).status_code == 200

    store.renewed = False
    response = await finqware.post("/balances/get", json=_renewed_body())
    _assert_error(response, 401, "unauthorized", "invalid_credentials_id")


@pytest.mark.parametrize("body", [b"{}", b'{"on": 1}', b'{"on": true, "x": 1}', b"on"])
async def test_the_renewal_switch_refuses_a_body_it_cannot_read(
    finqware_app: Starlette, body: bytes
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finqware_app), base_url="http://sandbox"
    ) as control:
        response = await control.put("/_sandbox/renewed-consent", content=body)

    assert response.status_code == 400
    assert finqware_app.state.store.renewed is False
