"""GET /positions through the app, on the in-process simulators."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.sandbox import FaultMode
from tests.support.answers import positions
from tests.support.apps import MakeClient
from tests.support.simulators import Simulators


def by_account(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["account_id"]: p for p in body["positions"]}


def test_finsync_positions_follow_the_interpretation_table(client: TestClient) -> None:
    found = by_account(positions(client))
    # Internal, positive: cash. Internal, negative: overdraft.
    assert found["finsync:901"]["amount"] == "1520.50"
    assert found["finsync:901"]["meaning"] == "cash"
    assert found["finsync:906"]["amount"] == "-8300.75"
    assert (found["finsync:906"]["meaning"], found["finsync:906"]["side"]) == (
        "overdraft",
        "liability",
    )
    # External, positive: the company owes it. External, negative: it owes the company.
    assert found["finsync:931"]["amount"] == "-125000.00"
    assert found["finsync:931"]["meaning"] == "payable"
    assert found["finsync:932"]["amount"] == "45300.50"
    assert (found["finsync:932"]["meaning"], found["finsync:932"]["side"]) == (
        "receivable",
        "asset",
    )


def test_float_noise_is_rounded_half_even_and_reported_verbatim(client: TestClient) -> None:
    found = by_account(positions(client))
    assert found["finsync:903"]["amount"] == "0.30"
    assert found["finsync:903"]["reported"]["amount"] == "0.30000000000000004"
    assert found["finsync:907"]["amount"] == "98765432109.87"


def test_non_iso_currency_keeps_up_to_eight_decimals(client: TestClient) -> None:
    found = by_account(positions(client))
    assert found["finsync:909"]["currency"] == "USDT"
    assert found["finsync:909"]["amount"] == "12500.123456"


def test_every_money_field_is_a_string(client: TestClient) -> None:
    body = positions(client, include_zero="true")
    for position in body["positions"]:
        assert isinstance(position["amount"], str)
        assert isinstance(position["reported"]["amount"], str)
        for entry in position["balances"]:
            assert isinstance(entry["amount"], str)
    for total in body["totals"]:
        assert all(isinstance(total[k], str) for k in ("assets", "liabilities", "net"))


def test_finqware_positions_carry_balance_type_available_and_every_entry(
    client: TestClient,
) -> None:
    body = positions(client, source="finqware")
    assert body["positions"]
    for position in body["positions"]:
        assert position["kind"] == "internal"
        assert position["balance_type"] is not None
        assert position["balances"]
        assert position["counterparty_id"].startswith("finqware:")
        assert position["fetched_at"].endswith("Z") or "+" in position["fetched_at"]
    meanings = {p["meaning"] for p in body["positions"]}
    assert "overdraft" in meanings


def test_zero_positions_are_hidden_unless_asked_and_never_negative_zero(
    client: TestClient,
) -> None:
    hidden = positions(client)
    assert all(p["meaning"] != "zero" for p in hidden["positions"])
    shown = positions(client, include_zero="true")
    zeros = [p for p in shown["positions"] if p["meaning"] == "zero"]
    assert zeros
    assert all(p["amount"] in ("0", "0.00") and p["side"] == "flat" for p in zeros)
    assert not any(
        p["amount"].startswith("-0") for p in shown["positions"] if Decimal(p["amount"]) == 0
    )


def test_totals_are_exact_sums_of_the_positions(client: TestClient) -> None:
    body = positions(client, include_zero="true")
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for position in body["positions"]:
        sums[position["currency"]] += Decimal(position["amount"])
    totals = {t["currency"]: t for t in body["totals"]}
    assert set(totals) == set(sums)
    for currency, total in totals.items():
        assert Decimal(total["net"]) == sums[currency]
        assert Decimal(total["assets"]) - Decimal(total["liabilities"]) == Decimal(total["net"])
        assert Decimal(total["liabilities"]) >= 0


def test_filters_narrow_the_positions(client: TestClient) -> None:
    usd_ars = positions(client, currency=["USD", "ARS"])
    assert {p["currency"] for p in usd_ars["positions"]} == {"USD", "ARS"}
    external = positions(client, kind="external")
    assert {p["kind"] for p in external["positions"]} == {"external"}
    liabilities = positions(client, side="liability")
    assert all(Decimal(p["amount"]) < 0 for p in liabilities["positions"])
    one = positions(client, counterparty_id="finsync:104")
    assert {p["account_id"] for p in one["positions"]} == {"finsync:904", "finsync:905"}


@pytest.mark.parametrize(
    "query",
    [
        "kind=friend",
        "source=bank",
        "side=up",
        "currency=US",
        "include_zero=maybe",
        "currency=" + "A" * 9,
    ],
)
def test_bad_query_values_are_422_problems(client: TestClient, query: str) -> None:
    response = client.get(f"/positions?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert problem["errors"]
    assert problem["errors"][0]["location"][0] == "query"


def test_expired_consent_is_reported_without_failing_the_answer(client: TestClient) -> None:
    body = positions(client)
    sources = {s["source"]: s for s in body["sources"]}
    assert set(sources) == {
        "finsync",
        "finqware:bt-main",
        "finqware:ing-ops",
        "finqware:brd-legacy",
    }
    assert sources["finqware:brd-legacy"]["status"] == "unavailable"
    assert sources["finqware:brd-legacy"]["error"]["code"] == "consent_expired"
    assert sources["finsync"]["status"] == "ok"
    assert body["complete"] is False


def test_finsync_down_still_answers_with_the_banks(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "error"
    body = positions(client)
    sources = {s["source"]: s for s in body["sources"]}
    assert sources["finsync"]["status"] == "unavailable"
    assert sources["finsync"]["error"]["code"] == "upstream_error"
    assert {p["source"] for p in body["positions"]} == {"finqware"}


@pytest.mark.parametrize(
    ("mode", "code"),
    [("html", "upstream_error"), ("truncated", "bad_response"), ("unauthorized", "unauthorized")],
)
def test_finsync_failures_carry_stable_codes(
    client: TestClient, simulators: Simulators, mode: FaultMode, code: str
) -> None:
    simulators.finsync_faults.mode = mode
    sources = {s["source"]: s for s in positions(client)["sources"]}
    assert sources["finsync"]["error"]["code"] == code
    assert "sandbox-finsync-key" not in sources["finsync"]["error"]["message"]


def test_slow_upstream_times_out_as_timeout(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(upstream_timeout_seconds=0.2)
    simulators.finsync_faults.mode = "timeout"
    sources = {s["source"]: s for s in positions(client)["sources"]}
    assert sources["finsync"]["error"]["code"] == "timeout"


def test_bank_rate_limit_is_rate_limited(client: TestClient, simulators: Simulators) -> None:
    simulators.finqware_faults.mode = "rate_limited"
    sources = {s["source"]: s for s in positions(client)["sources"]}
    assert sources["finqware:bt-main"]["error"]["code"] == "rate_limited"


def test_every_connection_down_with_nothing_cached_is_a_503_problem(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.finsync_faults.mode = "error"
    simulators.finqware_faults.mode = "error"
    response = client.get("/positions")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {s["source"] for s in problem["sources"]} >= {"finsync", "finqware:bt-main"}
    assert all(s["status"] == "unavailable" for s in problem["sources"])


def test_last_good_data_is_served_stale_when_the_upstream_fails(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0, failure_backoff_seconds=0)
    before = by_account(positions(client))
    simulators.finsync_faults.mode = "error"
    response = client.get("/positions", headers={"Cache-Control": "no-cache"})
    body = response.json()
    sources = {s["source"]: s for s in body["sources"]}
    assert sources["finsync"]["status"] == "stale"
    assert sources["finsync"]["error"]["code"] == "upstream_error"
    assert by_account(body)["finsync:901"]["amount"] == before["finsync:901"]["amount"]
    # Stale is not unavailable: only the expired consent makes the answer incomplete.
    unavailable = {k for k, s in sources.items() if s["status"] == "unavailable"}
    assert unavailable == {"finqware:brd-legacy"}


def test_answers_are_cached_per_connection(client: TestClient, simulators: Simulators) -> None:
    positions(client)
    positions(client)
    client.get("/counterparties")
    assert simulators.finsync_calls() == 1
    assert simulators.finqware_calls() == 3  # one per consent


def test_no_cache_refetches_but_not_more_often_than_the_minimum_interval(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0)
    positions(client)
    client.get("/positions", headers={"Cache-Control": "no-cache"})
    assert simulators.finsync_calls() == 2
    limited = make_client(min_refresh_interval_seconds=3600)
    limited.get("/positions")
    limited.get("/positions", headers={"Cache-Control": "no-cache"})
    assert simulators.finsync_calls() == 3


def test_etag_and_cache_control_allow_conditional_requests(client: TestClient) -> None:
    first = client.get("/positions")
    etag = first.headers["etag"]
    assert first.headers["cache-control"].startswith("private, max-age=")
    assert int(first.headers["cache-control"].rsplit("=", 1)[1]) <= 30
    again = client.get("/positions", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    other = client.get("/positions?kind=external", headers={"If-None-Match": etag})
    assert other.status_code == 200
