"""Scoped answers, unreadable connections, /positions filters and paging, consent expiry.

Everything goes through HTTP to the real app over the in-process simulators; the call
counters of the simulators tell which upstream connections an answer asked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.testclient import TestClient

from app.cli import CONFIGURATION_ERROR
from app.cli import main as tesoro_main
from app.domain.counterparties import normalize_text
from app.sandbox.data import SANDBOX_CONSENTS
from app.settings import Settings, describe_invalid
from tests.support.answers import ok_json, positions
from tests.support.apps import Expiries, MakeClient, opened_clients, wired_app
from tests.support.simulators import Simulators

BANKS = ("bt-main", "ing-ops", "brd-legacy")
BALANCES = "POST /v1/balances/get"
ACCOUNTS = "POST /v1/accounts/get"


# --------------------------------------------------------------------------- helpers


def listing(client: TestClient, **params: Any) -> dict[str, Any]:
    return ok_json(client, "/counterparties", page_size=200, **params)


def source_keys(body: dict[str, Any]) -> list[str]:
    return [info["source"] for info in body["sources"]]


def position_keys(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["account_id"], p["currency"]) for p in body["positions"]]


def bank_calls(simulators: Simulators, key: str) -> int:
    """Every Finqware call one consent received, on both routes."""
    return simulators.consent_calls(key, BALANCES) + simulators.consent_calls(key, ACCOUNTS)


def finqware_total(simulators: Simulators) -> int:
    return simulators.finqware_calls(BALANCES) + simulators.finqware_calls(ACCOUNTS)


# --------------------------------------------------------------------------- 1. scope


def test_source_finsync_asks_no_bank_and_is_complete_despite_the_expired_consent(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, source="finsync")
    assert finqware_total(simulators) == 0
    assert simulators.finsync_calls() == 1
    assert source_keys(body) == ["finsync"]
    assert body["complete"] is True
    assert body["positions"]
    assert {p["source"] for p in body["positions"]} == {"finsync"}


def test_source_finqware_on_positions_asks_no_finsync(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, source="finqware")
    assert simulators.finsync_calls() == 0
    assert source_keys(body) == [f"finqware:{key}" for key in BANKS]
    assert body["complete"] is False  # brd-legacy is in scope and cannot be read


def test_a_bank_counterparty_id_asks_only_that_bank(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, counterparty_id="finqware:bt-main")
    assert simulators.consent_calls("bt-main") == 1
    assert bank_calls(simulators, "ing-ops") == 0
    assert bank_calls(simulators, "brd-legacy") == 0
    assert simulators.finsync_calls() == 0
    assert source_keys(body) == ["finqware:bt-main"]
    assert body["complete"] is True
    assert body["positions"]
    assert {p["counterparty_id"] for p in body["positions"]} == {"finqware:bt-main"}


def test_a_finsync_counterparty_id_asks_only_finsync(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, counterparty_id="finsync:104")
    assert simulators.finsync_calls() == 1
    assert finqware_total(simulators) == 0
    assert source_keys(body) == ["finsync"]
    assert {p["account_id"] for p in body["positions"]} == {"finsync:904", "finsync:905"}
    assert body["total"] == 2


def test_positions_of_an_expired_bank_alone_are_a_503_naming_only_that_bank(
    client: TestClient, simulators: Simulators
) -> None:
    # The only connection in scope failed with nothing cached: as for every /positions
    # whose connections all fail, a 503 problem (the detail route answers 200 instead).
    response = client.get("/positions", params={"counterparty_id": "finqware:brd-legacy"})
    assert response.status_code == 503
    sources = response.json()["sources"]
    assert [(s["source"], s["status"]) for s in sources] == [("finqware:brd-legacy", "unavailable")]
    assert sources[0]["error"]["code"] == "consent_expired"
    assert simulators.finsync_calls() == 0
    assert bank_calls(simulators, "bt-main") + bank_calls(simulators, "ing-ops") == 0


def test_kind_external_counterparties_ask_no_bank(
    client: TestClient, simulators: Simulators
) -> None:
    body = listing(client, kind="external")
    assert finqware_total(simulators) == 0
    assert source_keys(body) == ["finsync"]
    assert body["complete"] is True
    assert body["items"]
    assert {item["kind"] for item in body["items"]} == {"external"}


def test_kind_external_positions_ask_no_bank(client: TestClient, simulators: Simulators) -> None:
    body = positions(client, kind="external")
    assert finqware_total(simulators) == 0
    assert source_keys(body) == ["finsync"]
    assert body["complete"] is True


def test_kind_internal_still_asks_every_connection(
    client: TestClient, simulators: Simulators
) -> None:
    body = listing(client, kind="internal")
    assert simulators.finsync_calls() == 1
    assert all(simulators.consent_calls(key) == 1 for key in BANKS)
    assert source_keys(body) == ["finsync", *(f"finqware:{key}" for key in BANKS)]


def test_source_finqware_counterparties_ask_no_finsync(
    client: TestClient, simulators: Simulators
) -> None:
    body = listing(client, source="finqware")
    assert simulators.finsync_calls() == 0
    assert all(simulators.consent_calls(key) == 1 for key in BANKS)
    assert source_keys(body) == [f"finqware:{key}" for key in BANKS]
    assert {item["id"] for item in body["items"]} == {f"finqware:{key}" for key in BANKS}


def test_one_bank_detail_asks_only_that_bank(client: TestClient, simulators: Simulators) -> None:
    response = client.get("/counterparties/finqware:ing-ops")
    assert response.status_code == 200, response.text
    body = response.json()
    assert simulators.consent_calls("ing-ops") == 1
    assert bank_calls(simulators, "bt-main") == 0
    assert bank_calls(simulators, "brd-legacy") == 0
    assert simulators.finsync_calls() == 0
    assert source_keys(body) == ["finqware:ing-ops"]
    assert body["complete"] is True
    assert body["status"] == "ok"


def test_one_finsync_detail_asks_no_bank(client: TestClient, simulators: Simulators) -> None:
    response = client.get("/counterparties/finsync:101")
    assert response.status_code == 200, response.text
    assert finqware_total(simulators) == 0
    assert source_keys(response.json()) == ["finsync"]


@pytest.mark.parametrize(
    "counterparty_id",
    ["finqware:no-such-bank", "finqware:", "finsync:abc", "nope:1", "finsync:0"],
)
def test_detail_of_an_id_without_a_connection_is_a_404_asking_nothing(
    client: TestClient, simulators: Simulators, counterparty_id: str
) -> None:
    response = client.get(f"/counterparties/{counterparty_id}")
    assert response.status_code == 404
    assert simulators.finsync_calls() == 0
    assert finqware_total(simulators) == 0


@pytest.mark.parametrize("counterparty_id", ["finqware:no-such-bank", "finsync:999999"])
def test_a_well_formed_id_nobody_has_matches_nothing(
    client: TestClient, simulators: Simulators, counterparty_id: str
) -> None:
    body = positions(client, counterparty_id=counterparty_id)
    assert body["positions"] == []
    assert body["totals"] == []
    assert body["total"] == 0


@pytest.mark.parametrize(
    "counterparty_id",
    [
        "nope:1",
        "finsync:abc",
        "finsync:0",
        "finsync:101x",
        "finsync:",
        "finqware:",
        "finqware:bt main",
        " finsync:101",
        "FINSYNC:101",
        "finsync:1\x00",
        "finsync:1\n",
    ],
)
def test_a_malformed_id_in_the_filter_is_a_422_asking_nothing(
    client: TestClient, simulators: Simulators, counterparty_id: str
) -> None:
    response = client.get("/positions", params={"counterparty_id": counterparty_id})
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["errors"][0]["location"] == ["query", "counterparty_id"]
    assert problem["errors"][0]["type"] == "counterparty_id"
    assert simulators.finsync_calls() == 0
    assert finqware_total(simulators) == 0


def test_an_id_outside_the_asked_source_asks_nothing(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, counterparty_id="finqware:bt-main", source="finsync")
    assert body["positions"] == []
    assert body["sources"] == []
    assert simulators.finsync_calls() == 0
    assert finqware_total(simulators) == 0


def test_a_well_formed_unknown_finsync_id_asks_finsync_and_matches_nothing(
    client: TestClient, simulators: Simulators
) -> None:
    body = positions(client, counterparty_id="finsync:999")
    assert body["positions"] == []
    assert source_keys(body) == ["finsync"]
    assert simulators.finsync_calls() == 1
    assert finqware_total(simulators) == 0


# --------------------------------------------------------------------------- 2. state


def test_an_expired_bank_is_listed_unavailable_named_by_its_label(client: TestClient) -> None:
    items = {item["id"]: item for item in listing(client)["items"]}
    brd = items["finqware:brd-legacy"]
    assert brd["status"] == "unavailable"
    assert brd["error"]["code"] == "consent_expired"
    assert brd["error"]["message"]
    assert brd["accounts"] == []
    assert brd["name"] == "BRD Groupe Société Générale"
    assert (brd["kind"], brd["source"]) == ("internal", "finqware")
    others = [item for key, item in items.items() if key != "finqware:brd-legacy"]
    assert len(others) > 30
    assert {item["status"] for item in others} == {"ok"}
    assert all(item["error"] is None for item in others)


def test_an_expired_bank_is_found_by_its_label(client: TestClient) -> None:
    found = [item["id"] for item in listing(client, q="société générale")["items"]]
    assert found == ["finqware:brd-legacy"]


def test_an_expired_banks_detail_is_a_200_with_its_state(
    client: TestClient, simulators: Simulators
) -> None:
    response = client.get("/counterparties/finqware:brd-legacy")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "finqware:brd-legacy"
    assert body["name"] == "BRD Groupe Société Générale"
    assert body["status"] == "unavailable"
    assert body["error"]["code"] == "consent_expired"
    assert body["accounts"] == []
    assert body["complete"] is False
    assert source_keys(body) == ["finqware:brd-legacy"]
    assert body["sources"][0]["status"] == "unavailable"
    assert body["sources"][0]["error"]["code"] == "consent_expired"
    assert simulators.finsync_calls() == 0
    assert bank_calls(simulators, "bt-main") + bank_calls(simulators, "ing-ops") == 0


def test_a_failing_bank_is_listed_unavailable_while_the_others_answer(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finqware_faults.mode = "error"
    simulators.finqware_faults.consents = frozenset({"ing-ops"})
    body = listing(client, source="finqware")
    items = {item["id"]: item for item in body["items"]}
    ing = items["finqware:ing-ops"]
    assert (ing["status"], ing["error"]["code"], ing["accounts"]) == (
        "unavailable",
        "upstream_error",
        [],
    )
    assert ing["name"] == "ING Bank Romania"
    assert items["finqware:bt-main"]["status"] == "ok"
    assert items["finqware:bt-main"]["accounts"]
    assert body["complete"] is False
    detail = client.get("/counterparties/finqware:ing-ops")
    assert detail.status_code == 200
    assert detail.json()["status"] == "unavailable"


def test_finsync_detail_is_a_503_when_finsync_is_down_and_nothing_is_cached(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "error"
    response = client.get("/counterparties/finsync:101")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert [s["source"] for s in problem["sources"]] == ["finsync"]
    assert problem["sources"][0]["status"] == "unavailable"
    assert problem["sources"][0]["error"]["code"] == "upstream_error"
    assert finqware_total(simulators) == 0


def test_finsync_detail_is_served_stale_when_finsync_fails_after_a_good_fetch(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0, failure_backoff_seconds=0)
    before = client.get("/counterparties/finsync:101")
    assert before.status_code == 200
    assert before.json()["status"] == "ok"
    simulators.finsync_faults.mode = "error"
    response = client.get("/counterparties/finsync:101", headers={"Cache-Control": "no-cache"})
    assert simulators.finsync_calls() == 2  # really asked again, and it failed
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "stale"
    assert body["error"]["code"] == "upstream_error"
    assert body["accounts"] == before.json()["accounts"]
    assert body["sources"][0]["status"] == "stale"
    assert body["complete"] is True  # stale is not unavailable


def test_a_bank_that_fails_after_a_good_fetch_is_listed_stale_with_its_accounts(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0, failure_backoff_seconds=0)
    before = {item["id"]: item for item in listing(client, source="finqware")["items"]}
    simulators.finqware_faults.mode = "error"
    simulators.finqware_faults.consents = frozenset({"bt-main"})
    response = client.get(
        "/counterparties",
        params={"source": "finqware", "page_size": 200},
        headers={"Cache-Control": "no-cache"},
    )
    assert response.status_code == 200
    items = {item["id"]: item for item in response.json()["items"]}
    bt = items["finqware:bt-main"]
    assert bt["status"] == "stale"
    assert bt["error"]["code"] == "upstream_error"
    assert bt["accounts"] == before["finqware:bt-main"]["accounts"]
    assert items["finqware:ing-ops"]["status"] == "ok"
    assert items["finqware:brd-legacy"]["status"] == "unavailable"


# --------------------------------------------------------------------------- 3. filters


def test_meaning_is_repeatable_and_any_of(client: TestClient) -> None:
    both = positions(client, meaning=["cash", "payable"])
    assert {p["meaning"] for p in both["positions"]} == {"cash", "payable"}
    cash = positions(client, meaning="cash")
    payable = positions(client, meaning="payable")
    assert {p["meaning"] for p in cash["positions"]} == {"cash"}
    assert set(position_keys(both)) == set(position_keys(cash)) | set(position_keys(payable))
    assert both["total"] == cash["total"] + payable["total"]


def test_meaning_zero_returns_the_zero_positions_without_include_zero(
    client: TestClient,
) -> None:
    zeros = positions(client, meaning="zero")
    assert zeros["positions"]
    assert {(p["meaning"], p["side"]) for p in zeros["positions"]} == {("zero", "flat")}
    everything = positions(client, include_zero="true")
    expected = [
        key
        for key, p in zip(position_keys(everything), everything["positions"], strict=True)
        if p["meaning"] == "zero"
    ]
    assert position_keys(zeros) == expected
    with_cash = positions(client, meaning=["zero", "cash"])
    assert {p["meaning"] for p in with_cash["positions"]} == {"zero", "cash"}


def test_zero_positions_stay_hidden_for_other_meanings(client: TestClient) -> None:
    body = positions(client, meaning=["cash", "receivable", "payable", "overdraft"])
    assert body["positions"]
    assert all(p["side"] != "flat" for p in body["positions"])


def test_an_unknown_meaning_is_a_422(client: TestClient) -> None:
    assert client.get("/positions?meaning=cash&meaning=profit").status_code == 422


@pytest.mark.parametrize("spelling", ["ars", "Ars", "aRS"])
def test_position_currency_is_case_insensitive(client: TestClient, spelling: str) -> None:
    upper = positions(client, currency="ARS")
    other = positions(client, currency=spelling)
    assert upper["positions"]
    assert {p["currency"] for p in upper["positions"]} == {"ARS"}
    assert other["positions"] == upper["positions"]
    assert other["totals"] == upper["totals"]
    assert other["total"] == upper["total"]


def test_position_currency_is_repeatable(client: TestClient) -> None:
    both = positions(client, currency=["ron", "USD"])
    ron = positions(client, currency="RON")
    usd = positions(client, currency="usd")
    assert {p["currency"] for p in both["positions"]} == {"RON", "USD"}
    assert set(position_keys(both)) == set(position_keys(ron)) | set(position_keys(usd))
    assert [t["currency"] for t in both["totals"]] == ["RON", "USD"]


def test_default_page_is_the_first_thousand(client: TestClient) -> None:
    body = positions(client)
    assert (body["page"], body["page_size"]) == (1, 1000)
    assert body["total"] == len(body["positions"])


@pytest.mark.parametrize(
    "query", ["page_size=10001", "page_size=0", "page=0", "page=-1", "page_size=abc"]
)
def test_out_of_range_paging_is_a_422(client: TestClient, query: str) -> None:
    response = client.get(f"/positions?{query}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"][0] == "query"


def test_the_largest_page_size_is_accepted(client: TestClient) -> None:
    body = positions(client, page_size=10000)
    assert body["page_size"] == 10000
    assert len(body["positions"]) == body["total"]


@pytest.mark.parametrize("page_size", [1, 7, 10])
def test_pages_partition_the_ordered_list_and_every_page_has_every_total(
    client: TestClient, page_size: int
) -> None:
    whole = positions(client, include_zero="true")
    count = whole["total"]
    assert count == len(whole["positions"]) > 20
    pages = [
        positions(client, include_zero="true", page=number, page_size=page_size)
        for number in range(1, -(-count // page_size) + 2)  # one page past the end
    ]
    assert pages[-1]["positions"] == []
    joined = [p for page in pages for p in page["positions"]]
    assert joined == whole["positions"]
    keys = [(p["account_id"], p["currency"]) for p in joined]
    assert len(keys) == len(set(keys))  # disjoint
    for number, page in enumerate(pages, start=1):
        assert (page["page"], page["page_size"]) == (number, page_size)
        assert page["total"] == count
        assert page["totals"] == whole["totals"]
        assert len(page["positions"]) <= page_size


def test_filtered_pages_total_the_matches_not_the_page(client: TestClient) -> None:
    whole = positions(client, currency="ARS")
    page = positions(client, currency="ARS", page=2, page_size=3)
    assert page["total"] == whole["total"] > 6
    assert page["positions"] == whole["positions"][3:6]
    assert page["totals"] == whole["totals"]


def test_positions_are_ordered_by_counterparty_then_account_and_stay_so(
    make_client: MakeClient,
) -> None:
    client = make_client(min_refresh_interval_seconds=0)
    first = positions(client, include_zero="true")
    order = [
        (
            normalize_text(p["counterparty_name"]),
            p["counterparty_id"],
            normalize_text(p["account_name"]),
            p["account_id"],
            p["currency"],
        )
        for p in first["positions"]
    ]
    assert order == sorted(order)
    response = client.get(
        "/positions", params={"include_zero": "true"}, headers={"Cache-Control": "no-cache"}
    )
    assert position_keys(response.json()) == position_keys(first)


def test_counterparty_currency_is_repeatable_and_case_insensitive(client: TestClient) -> None:
    ron = [item["id"] for item in listing(client, currency="RON")["items"]]
    usd = [item["id"] for item in listing(client, currency="USD")["items"]]
    assert "finqware:bt-main" in ron
    assert "finsync:102" in usd
    assert [item["id"] for item in listing(client, currency="ron")["items"]] == ron
    both = listing(client, currency=["ron", "usd"])
    ids = [item["id"] for item in both["items"]]
    assert set(ids) == set(ron) | set(usd)
    assert len(ids) == len(set(ids))
    assert both["total"] == len(ids)
    keys = [(normalize_text(item["name"]), item["id"]) for item in both["items"]]
    assert keys == sorted(keys)


# --------------------------------------------------------------------------- 4. consent expiry

ConsentClient = Callable[[Expiries], TestClient]


@pytest.fixture
def consent_client(simulators: Simulators) -> Iterator[ConsentClient]:
    """The real app on the simulators with the sandbox consents and the given `expires_at`
    (the sandbox wiring sets consents without one, so this is wired by hand)."""
    with opened_clients() as open_client:

        def make(expiries: Expiries) -> TestClient:
            return open_client(wired_app(simulators, expiries=expiries, auth_disabled=True))

        yield make


def in_days(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def expiring(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for warning in body["warnings"]:
        if warning["code"] == "consent_expiring":
            found.setdefault(warning["source"], []).append(warning)
    return found


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_aggregated_answers_warn_once_per_consent_about_to_expire(
    consent_client: ConsentClient,
) -> None:
    soon, later, past = in_days(5), in_days(30), in_days(-2)
    client = consent_client({"bt-main": soon, "ing-ops": later, "brd-legacy": past})
    for path in ("/positions", "/counterparties", "/positions", "/counterparties"):
        body = ok_json(client, path)  # twice each: cached answers must not pile them up
        found = expiring(body)
        assert set(found) == {"finqware:bt-main", "finqware:brd-legacy"}, path
        assert [len(warnings) for warnings in found.values()] == [1, 1], path
        (bt,) = found["finqware:bt-main"]
        assert bt["counterparty_id"] == "finqware:bt-main"
        assert stamp(soon) in bt["message"]
        assert "expires" in bt["message"]
        assert "expired" not in bt["message"]
        (brd,) = found["finqware:brd-legacy"]
        assert stamp(past) in brd["message"]
        assert "expired" in brd["message"]


def test_the_banks_detail_carries_its_own_notice_only(consent_client: ConsentClient) -> None:
    soon, past = in_days(3), in_days(-1)
    client = consent_client({"bt-main": soon, "ing-ops": in_days(30), "brd-legacy": past})
    bt = ok_json(client, "/counterparties/finqware:bt-main")
    assert list(expiring(bt)) == ["finqware:bt-main"]
    assert len(expiring(bt)["finqware:bt-main"]) == 1
    assert stamp(soon) in expiring(bt)["finqware:bt-main"][0]["message"]
    brd = ok_json(client, "/counterparties/finqware:brd-legacy")
    assert brd["status"] == "unavailable"
    assert list(expiring(brd)) == ["finqware:brd-legacy"]
    assert "expired" in expiring(brd)["finqware:brd-legacy"][0]["message"]
    assert expiring(ok_json(client, "/counterparties/finqware:ing-ops")) == {}
    assert expiring(ok_json(client, "/counterparties/finsync:101")) == {}


def test_answers_without_the_bank_in_scope_carry_no_notice(
    consent_client: ConsentClient, simulators: Simulators
) -> None:
    client = consent_client({"bt-main": in_days(5), "brd-legacy": in_days(-2)})
    for path, params in [
        ("/positions", {"source": "finsync"}),
        ("/positions", {"kind": "external"}),
        ("/positions", {"counterparty_id": "finsync:104"}),
        ("/positions", {"counterparty_id": "finqware:ing-ops"}),
        ("/counterparties", {"kind": "external"}),
    ]:
        assert expiring(ok_json(client, path, **params)) == {}, (path, params)
    assert simulators.consent_calls("bt-main") == 0
    scoped = positions(client, counterparty_id="finqware:bt-main")
    assert list(expiring(scoped)) == ["finqware:bt-main"]


@pytest.mark.parametrize(
    ("days", "warned"),
    [(13, True), (15, False), (30, False), (-1, True), (-400, True)],
)
def test_the_notice_starts_fourteen_days_ahead(
    consent_client: ConsentClient, days: float, warned: bool
) -> None:
    client = consent_client({"ing-ops": in_days(days)})
    found = expiring(positions(client))
    assert {key: len(warnings) for key, warnings in found.items()} == (
        {"finqware:ing-ops": 1} if warned else {}
    )


def test_no_expiry_configured_means_no_notice(consent_client: ConsentClient) -> None:
    client = consent_client({})
    assert expiring(positions(client)) == {}
    assert expiring(listing(client)) == {}


def test_an_offset_other_than_utc_is_the_same_instant(consent_client: ConsentClient) -> None:
    bucharest = timezone(timedelta(hours=2))
    soon = in_days(4).astimezone(bucharest)
    client = consent_client({"bt-main": soon})
    (warning,) = expiring(positions(client))["finqware:bt-main"]
    assert stamp(soon) in warning["message"]


def consents_env(expires_at: str) -> str:
    consent = SANDBOX_CONSENTS[0]
    return json.dumps(
        [
            {
                "key": consent.key,
                "credentials_id": consent.credentials_id,
                "access_token": consent.access_token,
                "tenant_user_id": consent.tenant_user_id,
                "expires_at": expires_at,
            }
        ]
    )


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("expires_at", ["soon", "2026-12-01T00:00:00", "2026-13-01T00:00:00Z"])
def test_an_invalid_expiry_refuses_to_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], expires_at: str
) -> None:
    monkeypatch.setenv("TESORO_FINQWARE_CONSENTS", consents_env(expires_at))
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = describe_invalid(caught.value)
    assert "TESORO_FINQWARE_CONSENTS[0]['expires_at']" in message
    assert SANDBOX_CONSENTS[0].access_token not in message
    # The command refuses too, before serving anything, and says which variable.
    assert tesoro_main(["serve"]) == CONFIGURATION_ERROR
    assert "TESORO_FINQWARE_CONSENTS[0]['expires_at']" in capsys.readouterr().err


@pytest.mark.usefixtures("clean_env")
def test_a_valid_expiry_from_the_environment_is_read_as_an_instant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TESORO_FINQWARE_CONSENTS", consents_env("2026-12-01T03:00:00+03:00"))
    (consent,) = Settings().finqware_consents
    assert consent.expires_at == datetime(2026, 12, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- 5. stale says why


def finsync_source(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in body["sources"] if s["source"] == "finsync")
    return found


def test_a_failed_refresh_behind_stale_data_is_carried_on_every_answer_until_a_load_succeeds(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        finsync_ttl_seconds=0.05,
        min_refresh_interval_seconds=0,
        permanent_failure_backoff_seconds=1.0,
    )
    assert client.get("/positions").status_code == 200
    time.sleep(0.1)  # past FinSync's TTL
    simulators.finsync_faults.mode = "unauthorized"
    first = client.get("/positions")
    # The refresh behind this answer has only just started: no error yet.
    assert (finsync_source(first.json())["status"], finsync_source(first.json())["error"]) == (
        "stale",
        None,
    )
    for _ in range(100):  # the refresh fails behind it
        failed = client.get("/positions")
        if finsync_source(failed.json())["error"] is not None:
            break
        time.sleep(0.02)
    assert finsync_source(failed.json())["error"]["code"] == "unauthorized"
    # A new data state: a new ETag, so no cache keeps the answer that said nothing.
    assert failed.headers["etag"] != first.headers["etag"]
    # Every route says it, for as long as the back-off holds and beyond, until a load succeeds.
    time.sleep(1.1)  # the back-off is over: the next answer starts another (failing) refresh
    for _ in range(3):
        body = client.get("/positions").json()
        assert finsync_source(body)["error"]["code"] == "unauthorized"
        items = listing(client, source="finsync")["items"]
        assert {(i["status"], i["error"]["code"]) for i in items} == {("stale", "unauthorized")}
        detail = client.get("/counterparties/finsync:101").json()
        assert (detail["status"], detail["error"]["code"]) == ("stale", "unauthorized")
        assert detail["sources"][0]["error"]["code"] == "unauthorized"
    simulators.finsync_faults.mode = "none"
    for _ in range(100):  # the next refresh succeeds (the data is soon past its TTL again)
        healed = finsync_source(client.get("/positions").json())
        if healed["error"] is None:
            break
        time.sleep(0.02)
    assert healed["error"] is None


# --------------------------------------------------------------------------- 6. one moment


def test_a_connection_s_positions_and_its_source_name_one_moment(client: TestClient) -> None:
    body = ok_json(client, "/positions", page_size=1000)
    fetched = {info["source"]: info["fetched_at"] for info in body["sources"]}
    seen: dict[str, set[str]] = {}
    for position in body["positions"]:
        connection = position["counterparty_id"].split(":", 1)[0]
        if connection == "finqware":
            connection = position["counterparty_id"]
        seen.setdefault(connection, set()).add(position["fetched_at"])
    assert {"finsync", "finqware:bt-main", "finqware:ing-ops"} <= set(seen)
    for connection, moments in seen.items():
        assert moments == {fetched[connection]}, connection
