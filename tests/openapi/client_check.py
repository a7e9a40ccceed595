"""Real calls through the client openapi-python-client generated from openapi/openapi.json.

Runs in the generator's own virtualenv (`make client`), never in the service's:
`.gen/venv/bin/python tests/openapi/client_check.py BASE_URL READ_KEY WRITE_KEY` with
`.gen/client` on PYTHONPATH. Every answer is asserted as the typed object the spec
promises; a JSON summary of what was checked goes to stdout for the calling test.
"""

from __future__ import annotations

import datetime
import json
import sys
import uuid
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from tesoro_client import AuthenticatedClient, Client
from tesoro_client.api.counterparties import (
    create_counterparty,
    get_counterparty,
    list_counterparties,
)
from tesoro_client.api.operations import get_health, get_metrics, get_readiness
from tesoro_client.api.positions import list_positions
from tesoro_client.api.rates import list_rates
from tesoro_client.models import (
    ConsolidatedTotal,
    ConvertedTotal,
    Counterparty,
    CounterpartyDetail,
    CounterpartyPage,
    CurrencyTotal,
    FieldError,
    Health,
    Kind,
    ListPositionsRatesType0,
    ListPositionsReportCurrencyType0,
    ListRatesTo,
    Meaning,
    NewCounterparty,
    Position,
    PositionsResponse,
    Problem,
    RateEntry,
    RatesResponse,
    Readiness,
    Side,
    Source,
    SourceErrorCode,
    SourceInfo,
    SourceStatus,
)
from tesoro_client.types import Unset

MONEY_FIELDS = ("cash", "overdraft", "receivable", "payable")


def money(value: object) -> Decimal:
    """A money field as sent: a decimal string, never a float."""
    assert isinstance(value, str), f"money arrived as {type(value).__name__}: {value!r}"
    return Decimal(value)


def aware(value: object) -> datetime.datetime:
    assert isinstance(value, datetime.datetime), repr(value)
    assert value.tzinfo is not None, f"naive datetime {value!r}"
    return value


def check_sources(sources: list[SourceInfo]) -> None:
    assert sources
    for info in sources:
        assert isinstance(info.status, SourceStatus)
        # Nothing the spec does not name arrives (`age_seconds` went in 0.2.0).
        assert not info.additional_properties, info.additional_properties
        if info.status is not SourceStatus.OK:
            assert info.error is not None
            assert isinstance(info.error.code, SourceErrorCode)


def check_position(position: Position) -> None:
    assert isinstance(position, Position)
    assert isinstance(position.kind, Kind)
    assert isinstance(position.source, Source)
    assert isinstance(position.side, Side)
    assert isinstance(position.meaning, Meaning)
    amount = money(position.amount)
    expected_side = Side.ASSET if amount > 0 else Side.LIABILITY if amount < 0 else Side.FLAT
    assert position.side is expected_side, (position.account_id, amount, position.side)
    money(position.reported.amount)
    if position.available is not None:
        money(position.available)
    if position.available_with_credit_line is not None:
        money(position.available_with_credit_line)
    if position.credit_line is not None:
        money(position.credit_line)
    for balance in position.balances:
        money(balance.amount)
        aware(balance.fetched_at)
    aware(position.fetched_at)


def problem(response: Any, status: int) -> Problem:
    assert response.status_code == status, (response.status_code, response.content)
    assert response.headers["content-type"] == "application/problem+json"
    parsed = response.parsed
    assert isinstance(parsed, Problem), type(parsed)
    assert parsed.status == status
    assert parsed.type_.startswith("/problems/")
    assert parsed.title
    assert parsed.detail
    return parsed


def run(base_url: str, read_key: str, write_key: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"checks": []}

    def done(name: str) -> None:
        summary["checks"].append(name)

    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    reader = AuthenticatedClient(base_url=base_url, token=read_key, raise_on_unexpected_status=True)
    writer = AuthenticatedClient(
        base_url=base_url, token=write_key, raise_on_unexpected_status=True
    )

    health = get_health.sync(client=anonymous)
    assert isinstance(health, Health)
    assert health.status == "ok"
    readiness = get_readiness.sync(client=anonymous)
    assert isinstance(readiness, Readiness)
    assert readiness.sandbox is True
    done("probes")

    page = list_counterparties.sync(client=reader, page_size=200)
    assert isinstance(page, CounterpartyPage), page
    assert page.total == len(page.items) > 0
    check_sources(page.sources)
    for counterparty in page.items:
        assert isinstance(counterparty, Counterparty)
        assert isinstance(counterparty.kind, Kind)
        assert isinstance(counterparty.source, Source)
        assert isinstance(counterparty.status, SourceStatus)
        for account in counterparty.accounts:
            if account.position is not None:
                check_position(account.position)
    # The expired sandbox consent is still listed, with its connection's state.
    expired = next(c for c in page.items if c.id == "finqware:brd-legacy")
    assert expired.status is SourceStatus.UNAVAILABLE
    assert expired.error is not None
    assert expired.error.code is SourceErrorCode.CONSENT_EXPIRED
    assert expired.accounts == []
    summary["counterparties"] = page.total
    done("list_counterparties")

    external = list_counterparties.sync(client=reader, kind=Kind.EXTERNAL, source=Source.FINSYNC)
    assert isinstance(external, CounterpartyPage)
    assert external.items
    assert all(c.kind is Kind.EXTERNAL and c.source is Source.FINSYNC for c in external.items)
    paged = list_counterparties.sync(client=reader, page=2, page_size=1)
    assert isinstance(paged, CounterpartyPage)
    assert (paged.page, paged.page_size, len(paged.items)) == (2, 1, 1)
    assert paged.items[0].id == page.items[1].id
    by_currency = list_counterparties.sync(client=reader, currency=["ron", "usd"])
    assert isinstance(by_currency, CounterpartyPage)
    assert by_currency.items
    assert all({a.currency for a in c.accounts} & {"RON", "USD"} for c in by_currency.items)
    # Only FinSync was asked for external counterparties.
    assert [info.source for info in external.sources] == ["finsync"]
    done("list_counterparties_filtered")

    first = page.items[0]
    detail = get_counterparty.sync(client=reader, counterparty_id=first.id)
    assert isinstance(detail, CounterpartyDetail), detail
    assert (detail.id, detail.name, detail.kind) == (first.id, first.name, first.kind)
    check_sources(detail.sources)
    done("get_counterparty")

    currencies = ["ARS", "USD"]
    positions = list_positions.sync(client=reader, currency=currencies, kind=Kind.INTERNAL)
    assert isinstance(positions, PositionsResponse), positions
    assert positions.positions
    for position in positions.positions:
        check_position(position)
        assert position.currency in currencies
        assert position.kind is Kind.INTERNAL
    assert {p.currency for p in positions.positions} == set(currencies)
    for total in positions.totals:
        assert isinstance(total, CurrencyTotal)
        amounts = [money(p.amount) for p in positions.positions if p.currency == total.currency]
        assert money(total.net) == sum(amounts, Decimal(0))
        assert money(total.net) == money(total.assets) - money(total.liabilities)
        for name in MONEY_FIELDS:
            money(getattr(total, name))
    # When the data state came to be: never before the data it shows.
    fetched = [
        aware(s.fetched_at)
        for s in positions.sources
        if isinstance(s.fetched_at, datetime.datetime)
    ]
    assert aware(positions.generated_at) >= max(fetched)
    summary["positions"] = len(positions.positions)
    done("list_positions_filtered")

    with_zero = list_positions.sync(client=reader, include_zero=True)
    assert isinstance(with_zero, PositionsResponse)
    zeros = [p for p in with_zero.positions if p.meaning is Meaning.ZERO]
    assert zeros
    assert all(p.side is Side.FLAT and money(p.amount) == 0 for p in zeros)
    without_zero = list_positions.sync(client=reader)
    assert isinstance(without_zero, PositionsResponse)
    assert all(p.meaning is not Meaning.ZERO for p in without_zero.positions)
    done("list_positions_include_zero")

    paid = list_positions.sync(
        client=reader, meaning=[Meaning.CASH, Meaning.PAYABLE], page=1, page_size=2
    )
    assert isinstance(paid, PositionsResponse)
    assert (paid.page, paid.page_size, len(paid.positions)) == (1, 2, 2)
    assert paid.total > 2
    assert all(p.meaning in (Meaning.CASH, Meaning.PAYABLE) for p in paid.positions)
    overdrawn = list_positions.sync(
        client=reader, counterparty_id="finqware:ing-ops", meaning=[Meaning.OVERDRAFT]
    )
    assert isinstance(overdrawn, PositionsResponse)
    [into_line] = overdrawn.positions
    assert money(into_line.amount) < 0
    assert into_line.credit_line is not None
    assert into_line.available_with_credit_line is not None
    assert money(into_line.available_with_credit_line) > 0
    assert [info.source for info in overdrawn.sources] == ["finqware:ing-ops"]
    done("list_positions_meaning_paged")

    plain = list_positions.sync(client=reader, currency=["ARS"])
    assert isinstance(plain, PositionsResponse)
    assert isinstance(plain.consolidated, Unset)
    assert all(isinstance(total.converted, Unset) for total in plain.totals)
    consolidated = list_positions.sync(
        client=reader,
        report_currency=ListPositionsReportCurrencyType0.USD,
        rates=ListPositionsRatesType0.OFFICIAL,
        rate_date=datetime.date(2026, 3, 19),
    )
    assert isinstance(consolidated, PositionsResponse)
    summary_total = consolidated.consolidated
    assert isinstance(summary_total, ConsolidatedTotal)
    assert summary_total.currency == "USD"
    assert summary_total.rate_date == datetime.date(2026, 3, 19)
    money(summary_total.assets)
    for total in consolidated.totals:
        assert isinstance(total.converted, ConvertedTotal) or total.converted is None
    ars = next(entry for entry in summary_total.rates if entry.currency == "ARS")
    assert isinstance(ars, RateEntry)
    [leg] = ars.legs
    assert (leg.source, leg.series, leg.inverted) == ("fx:bcra", "BCRA:REF", True)
    assert leg.rate_date == datetime.date(2026, 3, 19)
    done("list_positions_consolidated")

    rates = list_rates.sync(
        client=reader,
        currency=["ARS", "RON"],
        to=ListRatesTo.EUR,
        date=datetime.date(2026, 3, 19),
    )
    assert isinstance(rates, RatesResponse)
    assert [entry.currency for entry in rates.rates] == ["ARS", "RON"]
    assert [leg.series for leg in rates.rates[0].legs] == ["BCRA:REF", "ECB:USD"]
    Decimal(rates.rates[0].rate)
    check_sources(rates.sources)
    done("list_rates")

    first_answer = list_positions.sync_detailed(client=reader)
    etag = first_answer.headers["etag"]
    unchanged = list_positions.sync_detailed(client=reader, if_none_match=etag)
    assert unchanged.status_code == HTTPStatus.NOT_MODIFIED
    assert unchanged.parsed is None
    done("if_none_match_304")

    name = f"Client check {uuid.uuid4().hex[:12]}"
    key = uuid.uuid4().hex
    body = NewCounterparty(name=name, description="created by the generated client")
    created = create_counterparty.sync_detailed(client=writer, body=body, idempotency_key=key)
    assert created.status_code == HTTPStatus.CREATED, (created.status_code, created.content)
    new = created.parsed
    assert isinstance(new, Counterparty), new
    assert (new.name, new.kind, new.source) == (name, Kind.EXTERNAL, Source.FINSYNC)
    assert created.headers["location"] == f"/counterparties/{new.id}"
    summary["created_id"] = new.id
    done("create_counterparty")

    replayed = create_counterparty.sync_detailed(client=writer, body=body, idempotency_key=key)
    assert replayed.status_code == HTTPStatus.CREATED
    assert replayed.headers["idempotent-replayed"] == "true"
    assert isinstance(replayed.parsed, Counterparty)
    assert replayed.parsed.id == new.id
    done("create_counterparty_replayed")

    fetched = get_counterparty.sync(client=reader, counterparty_id=new.id)
    assert isinstance(fetched, CounterpartyDetail)
    assert fetched.name == name
    done("get_created_counterparty")

    duplicate = create_counterparty.sync_detailed(
        client=writer, body=NewCounterparty(name=f"  {name.upper()} ")
    )
    conflict = problem(duplicate, 409)
    assert conflict.existing_id == new.id
    done("duplicate_is_409_problem")

    missing = problem(get_counterparty.sync_detailed(client=reader, counterparty_id="nope:1"), 404)
    assert isinstance(missing.instance, str)
    done("unknown_id_is_404_problem")

    unauthenticated = problem(list_positions.sync_detailed(client=anonymous), 401)
    assert isinstance(unauthenticated.code, Unset)
    stranger = AuthenticatedClient(base_url=base_url, token="not-a-key")
    problem(list_positions.sync_detailed(client=stranger), 401)
    done("missing_or_wrong_key_is_401_problem")

    problem(create_counterparty.sync_detailed(client=reader, body=NewCounterparty(name="x")), 403)
    done("read_key_cannot_create_403_problem")

    invalid = problem(list_counterparties.sync_detailed(client=reader, page_size=0), 422)
    assert not isinstance(invalid.errors, Unset)
    assert invalid.errors
    assert all(isinstance(error, FieldError) for error in invalid.errors)
    assert invalid.errors[0].location == ["query", "page_size"]
    done("invalid_query_is_422_problem")

    metrics = get_metrics.sync_detailed(client=anonymous)
    assert metrics.status_code == HTTPStatus.OK
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert isinstance(metrics.parsed, str)
    assert 'tesoro_http_requests_total{method="GET",route="/positions",status="200"}' in (
        metrics.parsed
    )
    assert 'upstream="finsync"' in metrics.parsed
    assert 'upstream="finqware"' in metrics.parsed
    done("metrics")

    return summary


if __name__ == "__main__":
    base_url, read_key, write_key = sys.argv[1:4]
    print(json.dumps(run(base_url, read_key, write_key)))
