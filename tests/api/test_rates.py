"""Totals in a reporting currency, and `GET /rates`, over the four rate-source simulators."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from starlette.testclient import TestClient

from app.domain.fx import rate_text
from app.sandbox.dolarapi import create_dolarapi_app
from app.sandbox.faults import Faults
from tests.support.apps import MakeClient
from tests.support.simulators import Simulators

# The recorded day: the BCRA simulator serves its rows exactly, the ECB simulator its figures.
SAMPLE_DAY = "2026-03-19"
REF_SAMPLE = Fraction("1395.5142")
ECB_USD_SAMPLE = Fraction("1.1489")


def fx_sources(body: dict[str, Any]) -> list[str]:
    return [s["source"] for s in body["sources"] if s["source"].startswith("fx:")]


def totals_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["currency"]: t for t in body["totals"]}


def rates_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["currency"]: r for r in body["consolidated"]["rates"]}


def calls(simulators: Simulators, source: str) -> int:
    return sum(simulators.rates[source].state.calls.values())


def last_sunday() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=(today.weekday() + 1) % 7 or 7)


def test_report_currency_converts_every_total_with_its_legs(client: TestClient) -> None:
    response = client.get("/positions", params={"report_currency": "usd", "rate_date": SAMPLE_DAY})
    assert response.status_code == 200
    body = response.json()
    totals = totals_of(body)
    ars = totals["ARS"]["converted"]
    assert ars["rate"] == rate_text(1 / REF_SAMPLE)
    assert Decimal(ars["assets"]) == round(
        Decimal(totals["ARS"]["assets"]) / Decimal("1395.5142"), 2
    )
    assert totals["EUR"]["converted"]["rate"] == "1.1489"
    assert (
        totals["USD"]["converted"]["assets"]
        == Decimal(totals["USD"]["assets"]).quantize(Decimal("0.01")).to_eng_string()
    )
    assert totals["USDT"]["converted"] is None
    consolidated = body["consolidated"]
    assert consolidated["currency"] == "USD"
    assert consolidated["policy"] == "official"
    assert consolidated["rate_date"] == SAMPLE_DAY
    assert consolidated["complete"] is False
    assert consolidated["missing_currencies"] == ["USDT"]
    rates = rates_of(body)
    assert rates["USD"] == {"currency": "USD", "rate": "1", "legs": []}
    assert rates["ARS"]["legs"] == [
        {
            "source": "fx:bcra",
            "series": "BCRA:REF",
            "base": "USD",
            "quote": "ARS",
            "published": "1395.51420000",
            "unit": 1,
            "inverted": True,
            "rate_date": SAMPLE_DAY,
            "requested_date": SAMPLE_DAY,
        }
    ]
    assert [leg["series"] for leg in rates["RON"]["legs"]] == ["BNR:USD"]
    missing = [w for w in body["warnings"] if w["code"] == "fx_rate_missing"]
    assert len(missing) == 1
    assert "USDT" in missing[0]["message"]
    # The rate sources follow the connections, and the positions' own `complete` is theirs.
    assert fx_sources(body) == ["fx:bcra", "fx:ecb", "fx:bnr"]
    assert body["sources"][0]["source"] == "finsync"
    plain = client.get("/positions").json()
    assert body["complete"] == plain["complete"]
    assert body["totals"][0]["assets"] == plain["totals"][0]["assets"]


def test_consolidated_is_the_exact_sum_of_the_converted_totals_rounded_once(
    client: TestClient,
) -> None:
    body = client.get(
        "/positions", params={"report_currency": "EUR", "rate_date": SAMPLE_DAY}
    ).json()
    # Exact rates, recomputed from the legs (the text of an inexact one is for reading only).
    exact: dict[str, Fraction] = {}
    for currency, entry in rates_of(body).items():
        value = Fraction(1)
        for leg in entry["legs"]:
            figure = Fraction(leg["published"]) / leg["unit"]
            value = value / figure if leg["inverted"] else value * figure
        exact[currency] = value
    assert set(exact) == {"ARS", "EUR", "RON", "USD"}
    total = sum(
        Fraction(t["assets"]) * exact[t["currency"]]
        for t in body["totals"]
        if t["converted"] is not None
    )
    assert Decimal(body["consolidated"]["assets"]) == round(
        Decimal(total.numerator) / Decimal(total.denominator), 2
    )


def test_a_plain_answer_has_no_conversion_members_and_no_rate_sources(
    client: TestClient, simulators: Simulators
) -> None:
    body = client.get("/positions").json()
    assert "consolidated" not in body
    assert all("converted" not in t for t in body["totals"])
    assert fx_sources(body) == []
    assert sum(calls(simulators, source) for source in simulators.rates) == 0


def test_only_the_rate_sources_a_question_needs_are_asked_and_listed(
    client: TestClient, simulators: Simulators
) -> None:
    body = client.get("/positions", params={"report_currency": "USD", "currency": "ARS"}).json()
    assert fx_sources(body) == ["fx:bcra"]
    assert calls(simulators, "ecb") == calls(simulators, "bnr") == 0
    same = client.get("/positions", params={"report_currency": "EUR", "currency": "EUR"}).json()
    assert fx_sources(same) == []
    assert same["consolidated"]["complete"] is True


def test_market_prices_ars_at_the_mep_rate(client: TestClient) -> None:
    body = client.get(
        "/positions", params={"report_currency": "USD", "rates": "market", "currency": "ARS"}
    ).json()
    (leg,) = rates_of(body)["ARS"]["legs"]
    assert (leg["source"], leg["series"]) == ("fx:dolarapi", "DOLARAPI:MEP")
    assert body["consolidated"]["policy"] == "market"
    assert fx_sources(body) == ["fx:dolarapi"]


def test_a_configured_peg_converts_usdt_and_manual_rates_ask_no_source(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(
        fx_policies={
            "usdt": {"extends": "official", "pegs": {"USDT": "USD"}},
            "board": {
                "source": "manual",
                "rates": {"USD/ARS": "1500", "EUR/USD": "1.10", "USD/RON": "4.50"},
                "pegs": {"USDT": "USD"},
            },
        }
    )
    pegged = client.get(
        "/positions", params={"report_currency": "USD", "rates": "usdt", "rate_date": SAMPLE_DAY}
    ).json()
    assert pegged["consolidated"]["complete"] is True
    (peg,) = rates_of(pegged)["USDT"]["legs"]
    assert (peg["source"], peg["series"], peg["published"]) == ("config", "PEG:USDT", "1")
    usdt = totals_of(pegged)["USDT"]
    assert usdt["converted"]["assets"] == str(Decimal(usdt["assets"]).quantize(Decimal("0.01")))
    before = sum(calls(simulators, source) for source in simulators.rates)
    board = client.get("/positions", params={"report_currency": "ARS", "rates": "board"}).json()
    assert fx_sources(board) == []
    assert sum(calls(simulators, source) for source in simulators.rates) == before
    assert totals_of(board)["RON"]["converted"]["rate"] == rate_text(
        Fraction(1500) / Fraction("4.5")
    )
    assert [leg["series"] for leg in rates_of(board)["RON"]["legs"]] == [
        "MANUAL:USD/RON",
        "MANUAL:USD/ARS",
    ]


def problem_detail(client: TestClient, path: str, params: dict[str, str]) -> str:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


def test_a_report_currency_that_cannot_be_converted_into_is_a_422_naming_it(
    client: TestClient,
) -> None:
    assert "USDT is not an ISO 4217" in problem_detail(
        client, "/positions", {"report_currency": "USDT"}
    )
    assert "the policy official cannot convert into BOB" in problem_detail(
        client, "/positions", {"report_currency": "BOB"}
    )
    assert "query.to" in problem_detail(client, "/rates", {"currency": "ARS", "to": "XYZ"})


def test_an_unknown_policy_is_a_422_listing_the_known_ones(client: TestClient) -> None:
    detail = problem_detail(client, "/positions", {"report_currency": "USD", "rates": "blue"})
    assert "unknown rate policy 'blue'; known: official, market" in detail
    # Given without a report currency, it is still checked, never ignored.
    assert "unknown rate policy" in problem_detail(client, "/positions", {"rates": "blue"})


def test_a_rate_date_in_the_future_or_malformed_is_a_422(client: TestClient) -> None:
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    assert "after today in UTC" in problem_detail(
        client, "/positions", {"report_currency": "USD", "rate_date": tomorrow}
    )
    assert "not a date" in problem_detail(
        client, "/positions", {"report_currency": "USD", "rate_date": "2026-02-30"}
    )
    assert "rate_date" in problem_detail(
        client, "/positions", {"report_currency": "USD", "rate_date": "19/03/2026"}
    )


def test_a_rate_source_down_with_nothing_kept_leaves_its_currencies_out(
    client: TestClient, simulators: Simulators
) -> None:
    simulators.rate_faults("bcra").replace(Faults(mode="error"))
    response = client.get("/positions", params={"report_currency": "USD"})
    assert response.status_code == 200
    body = response.json()
    bcra = next(s for s in body["sources"] if s["source"] == "fx:bcra")
    assert bcra["status"] == "unavailable"
    assert bcra["error"]["code"] == "upstream_error"
    assert totals_of(body)["ARS"]["converted"] is None
    assert totals_of(body)["EUR"]["converted"] is not None
    assert body["consolidated"]["complete"] is False
    assert body["consolidated"]["missing_currencies"] == ["ARS", "USDT"]
    (ars,) = [
        w for w in body["warnings"] if w["code"] == "fx_rate_missing" and "ARS" in w["message"][:4]
    ]
    assert ars["source"] == "fx:bcra"
    assert "nothing is kept" in ars["message"]
    plain = client.get("/positions").json()
    assert body["complete"] == plain["complete"]
    assert [t["assets"] for t in body["totals"]] == [t["assets"] for t in plain["totals"]]


def test_the_latest_fixing_is_served_stale_when_its_source_fails(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(fx_ttl_seconds=0.05)
    params = {"report_currency": "USD", "currency": "ARS"}
    first = client.get("/positions", params=params).json()
    simulators.rate_faults("bcra").replace(Faults(mode="error"))
    time.sleep(0.1)
    client.get("/positions", params=params)  # served stale while its refresh fails behind it
    deadline = time.monotonic() + 5
    while True:
        body = client.get("/positions", params=params).json()
        bcra = next(s for s in body["sources"] if s["source"] == "fx:bcra")
        if bcra["error"] is not None or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert bcra["status"] == "stale"
    assert bcra["error"]["code"] == "upstream_error"
    assert rates_of(body)["ARS"] == rates_of(first)["ARS"]
    assert body["consolidated"]["complete"] is True


def test_a_fixing_older_than_the_max_age_is_missing(make_client: MakeClient) -> None:
    sunday = last_sunday().isoformat()
    params = {"report_currency": "USD", "currency": "ARS", "rate_date": sunday}
    strict = make_client(fx_max_age_days=0).get("/positions", params=params).json()
    assert totals_of(strict)["ARS"]["converted"] is None
    (warning,) = [w for w in strict["warnings"] if w["code"] == "fx_rate_missing"]
    assert f"no fixing from {sunday} to {sunday}" in warning["message"]
    lenient = make_client().get("/positions", params=params).json()
    (leg,) = rates_of(lenient)["ARS"]["legs"]
    assert leg["requested_date"] == sunday
    assert leg["rate_date"] < sunday


def test_a_source_switched_off_is_never_asked_nor_listed(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(fx_sources=["bnr", "ecb", "dolarapi"])
    body = client.get("/positions", params={"report_currency": "USD"}).json()
    assert "fx:bcra" not in fx_sources(body)
    assert calls(simulators, "bcra") == 0
    assert totals_of(body)["ARS"]["converted"] is None
    assert any(
        "switched off" in w["message"] for w in body["warnings"] if w["code"] == "fx_rate_missing"
    )
    assert totals_of(body)["RON"]["converted"] is not None


def test_rates_answers_a_cross_rate_with_both_legs(client: TestClient) -> None:
    response = client.get(
        "/rates", params={"currency": ["ars", "EUR"], "to": "EUR", "date": SAMPLE_DAY}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["currency"] == "EUR"
    assert body["complete"] is True
    ars, eur = body["rates"]
    assert ars["rate"] == rate_text(1 / (REF_SAMPLE * ECB_USD_SAMPLE))
    assert [(leg["series"], leg["inverted"], leg["rate_date"]) for leg in ars["legs"]] == [
        ("BCRA:REF", True, SAMPLE_DAY),
        ("ECB:USD", True, SAMPLE_DAY),
    ]
    assert eur == {"currency": "EUR", "rate": "1", "legs": []}
    assert fx_sources(body) == ["fx:bcra", "fx:ecb"]
    etag = response.headers["etag"]
    again = client.get(
        "/rates",
        params={"currency": ["ARS", "EUR"], "to": "EUR", "date": SAMPLE_DAY},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    head = client.head("/rates", params={"currency": "ARS", "to": "EUR", "date": SAMPLE_DAY})
    assert head.status_code == 200
    assert head.content == b""


def test_rates_names_a_currency_without_a_rate(client: TestClient) -> None:
    body = client.get("/rates", params={"currency": ["USDT", "RON"], "to": "USD"}).json()
    assert body["complete"] is False
    assert body["missing_currencies"] == ["USDT"]
    assert [r["currency"] for r in body["rates"]] == ["RON"]
    assert [w["code"] for w in body["warnings"]] == ["fx_rate_missing"]


def test_the_etag_changes_when_a_fixing_changes(
    make_client: MakeClient, simulators: Simulators
) -> None:
    clock = [datetime.now(UTC) - timedelta(days=7)]
    simulators.rates["dolarapi"] = create_dolarapi_app(now=lambda: clock[0])
    client = make_client(fx_ttl_seconds=0.05, fx_max_age_days=30)
    params = {"report_currency": "USD", "currency": "ARS", "rates": "market"}
    first = client.get("/positions", params=params)
    again = client.get("/positions", params=params)
    assert again.headers["etag"] == first.headers["etag"]
    clock[0] = datetime.now(UTC)
    deadline = time.monotonic() + 5
    while True:
        time.sleep(0.06)
        later = client.get("/positions", params=params)
        published = rates_of(later.json())["ARS"]["legs"][0]["published"]
        if published != rates_of(first.json())["ARS"]["legs"][0]["published"]:
            break
        assert time.monotonic() < deadline, "the new fixing was never served"
    assert later.headers["etag"] != first.headers["etag"]
    refetched = client.get(
        "/positions", params=params, headers={"If-None-Match": first.headers["etag"]}
    )
    assert refetched.status_code == 200
