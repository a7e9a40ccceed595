"""Tests of FinSync interpretation: the FinSync rows of the table, rounding, ids and warnings."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.domain.interpret import FinsyncPages, interpret_finsync, interpret_finsync_client
from app.domain.models import Kind, Meaning, Side, Source
from app.domain.positions import positions_of, totals
from app.domain.snapshot import Position, Snapshot, decode_snapshot, encode_json
from app.upstreams.finsync import FinsyncClientRecord
from app.upstreams.reading import Parsed, parse_each
from tests.support.interpreted import FETCHED_AT, only_counterparty, only_warning


def client_from_json(text: str) -> FinsyncClientRecord:
    # As the adapter decodes FinSync: JSON numbers straight to Decimal, never through float.
    return FinsyncClientRecord.model_validate(json.loads(text, parse_float=Decimal))


def client_record(
    *,
    client_type: int = 0,
    balance: str = "100",
    currency: str = "ARS",
    account: dict[str, Any] | None = None,
    client_id: int = 42,
) -> FinsyncClientRecord:
    account_json = {
        # Each client its own account (901 for the default client 42).
        "id": 859 + client_id,
        "name": "Caja ARS",
        "currency_name": currency,
        "client_id": client_id,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-05-01T10:30:00Z",
    } | (account or {})
    text = json.dumps(
        {
            "id": client_id,
            "name": "Caja Central",
            "description": "la caja",
            "company_id": 7,
            "type": client_type,
            "accounts": [account_json],
        }
    )
    # Splice the balance in as a raw JSON number so its digits arrive exactly as FinSync's.
    return client_from_json(text[:-3] + f', "balance": {balance}}}]}}')


def only_position(record: FinsyncClientRecord) -> Position:
    counterparty = only_counterparty(interpret_finsync_client(record, fetched_at=FETCHED_AT))
    assert len(counterparty.accounts) == 1
    position = counterparty.accounts[0].position
    assert position is not None
    return position


def test_internal_positive_balance_is_cash() -> None:
    position = only_position(client_record(client_type=0, balance="1520.5"))
    assert (position.amount, position.meaning, position.side) == (
        Decimal("1520.50"),
        Meaning.cash,
        Side.asset,
    )
    assert position.kind is Kind.internal


def test_internal_negative_balance_is_overdraft() -> None:
    position = only_position(client_record(client_type=0, balance="-250.75"))
    assert (position.amount, position.meaning, position.side) == (
        Decimal("-250.75"),
        Meaning.overdraft,
        Side.liability,
    )


def test_external_positive_balance_is_payable() -> None:
    position = only_position(client_record(client_type=1, balance="300"))
    assert (position.amount, position.meaning, position.side) == (
        Decimal("-300.00"),
        Meaning.payable,
        Side.liability,
    )
    assert position.kind is Kind.external


def test_external_negative_balance_is_receivable() -> None:
    position = only_position(client_record(client_type=1, balance="-80.1"))
    assert (position.amount, position.meaning, position.side) == (
        Decimal("80.10"),
        Meaning.receivable,
        Side.asset,
    )


@pytest.mark.parametrize("client_type", [0, 1])
@pytest.mark.parametrize("balance", ["0", "0.0", "-0.0", "0.004", "-0.004"])
def test_zero_after_rounding_is_flat_zero_scaled_to_the_currency(
    client_type: int, balance: str
) -> None:
    position = only_position(client_record(client_type=client_type, balance=balance))
    assert format(position.amount, "f") == "0.00"
    assert not position.amount.is_signed()
    assert (position.meaning, position.side) == (Meaning.zero, Side.flat)


def test_zero_in_a_zero_decimal_currency_is_plain_zero() -> None:
    position = only_position(client_record(balance="-0.4", currency="JPY"))
    assert format(position.amount, "f") == "0"


def test_float_noise_is_rounded_to_the_currency() -> None:
    position = only_position(client_record(balance="0.30000000000000004"))
    assert format(position.amount, "f") == "0.30"


@pytest.mark.parametrize(("balance", "expected"), [("0.125", "0.12"), ("0.135", "0.14")])
def test_rounding_is_half_even(balance: str, expected: str) -> None:
    position = only_position(client_record(balance=balance, currency="USD"))
    assert format(position.amount, "f") == expected


def test_non_iso_currency_keeps_eight_decimals() -> None:
    position = only_position(client_record(balance="12.3456789012", currency="USDT"))
    assert format(position.amount, "f") == "12.34567890"


def test_external_non_iso_amount_is_negated_exactly() -> None:
    position = only_position(client_record(client_type=1, balance="0.5", currency="USDT"))
    assert format(position.amount, "f") == "-0.5"


def test_reported_is_the_raw_unrounded_balance_and_client_type() -> None:
    position = only_position(client_record(client_type=1, balance="0.30000000000000004"))
    assert position.reported.amount == Decimal("0.30000000000000004")
    assert position.reported.client_type == 1
    assert position.reported.credit_debit_indicator is None


def test_ids_names_and_source_follow_the_identifiers_table() -> None:
    counterparty = only_counterparty(
        interpret_finsync_client(client_record(client_id=42), fetched_at=FETCHED_AT)
    )
    assert counterparty.id == "finsync:42"
    assert counterparty.source is Source.finsync
    assert (counterparty.name, counterparty.description) == ("Caja Central", "la caja")
    account = counterparty.accounts[0]
    assert (account.id, account.name, account.currency) == ("finsync:901", "Caja ARS", "ARS")
    position = account.position
    assert position is not None
    assert (position.counterparty_id, position.counterparty_name) == ("finsync:42", "Caja Central")
    assert (position.account_id, position.account_name) == ("finsync:901", "Caja ARS")


def test_finsync_positions_carry_no_finqware_fields() -> None:
    position = only_position(client_record())
    assert position.available is None
    assert position.balance_type is None
    assert position.balance_type_fallback is False
    assert position.balances == ()
    assert position.credit_line is None


@pytest.mark.parametrize("name", [None, "", "   "])
def test_account_without_a_name_is_named_by_its_currency(name: str | None) -> None:
    position = only_position(client_record(currency="USD", account={"name": name}))
    assert position.account_name == "USD"


def test_currency_is_trimmed_and_upper_cased() -> None:
    position = only_position(client_record(currency=" usdt "))
    assert position.currency == "USDT"


@pytest.mark.parametrize("currency", ["", "U$S", "DOLLARS!", "A", "TOOLONGCODE"])
def test_invalid_currency_leaves_the_account_out_with_a_warning(currency: str) -> None:
    result = interpret_finsync_client(client_record(currency=currency), fetched_at=FETCHED_AT)
    assert only_counterparty(result).accounts == ()
    assert only_warning(result) == ("invalid_currency", "finsync", "finsync:42", "finsync:901")


def test_naive_updated_at_is_taken_as_utc() -> None:
    position = only_position(client_record(account={"updated_at": "2026-05-01T10:30:00"}))
    assert position.as_of == datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert position.as_of.tzinfo is UTC


def test_aware_updated_at_is_converted_to_utc() -> None:
    position = only_position(client_record(account={"updated_at": "2026-05-01T07:30:00-03:00"}))
    assert position.as_of == datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert position.as_of.utcoffset() == timedelta(0)


def test_missing_updated_at_gives_no_as_of() -> None:
    position = only_position(client_record(account={"updated_at": None}))
    assert position.as_of is None


def test_fetched_at_is_the_given_time_in_utc() -> None:
    buenos_aires = timezone(timedelta(hours=-3))
    record = client_record()
    counterparty = only_counterparty(
        interpret_finsync_client(record, fetched_at=datetime(2026, 5, 4, 9, 0, tzinfo=buenos_aires))
    )
    position = counterparty.accounts[0].position
    assert position is not None
    assert position.fetched_at == FETCHED_AT
    assert position.fetched_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("client_type", [2, -1, 7])
def test_unknown_client_type_is_left_out_with_a_warning(client_type: int) -> None:
    result = interpret_finsync_client(client_record(client_type=client_type), fetched_at=FETCHED_AT)
    assert result.counterparties == ()
    [warning] = result.warnings
    assert warning.code == "unknown_client_type"
    assert (warning.source, warning.counterparty_id) == ("finsync", "finsync:42")
    assert str(client_type) in warning.message


def test_listing_keeps_known_clients_and_warns_for_unknown_types() -> None:
    clients = [
        client_record(client_id=1, client_type=0),
        client_record(client_id=2, client_type=2),
        client_record(client_id=3, client_type=1),
    ]
    result = interpret_finsync(clients, fetched_at=FETCHED_AT)
    assert [c.id for c in result.counterparties] == ["finsync:1", "finsync:3"]
    assert [(w.code, w.counterparty_id) for w in result.warnings] == [
        ("unknown_client_type", "finsync:2")
    ]


def test_created_client_without_accounts_is_an_external_counterparty() -> None:
    # POST /api/clients answers the client with `company_client_id` and no `accounts`.
    created = client_from_json(
        '{"id": 77, "name": "Proveedor SA", "description": null, "company_id": 7,'
        ' "type": 1, "company_client_id": 12}'
    )
    counterparty = only_counterparty(interpret_finsync_client(created, fetched_at=FETCHED_AT))
    assert (counterparty.id, counterparty.kind, counterparty.accounts) == (
        "finsync:77",
        Kind.external,
        (),
    )


def test_accounts_of_one_client_are_ordered_by_name() -> None:
    record = FinsyncClientRecord.model_validate(
        {
            "id": 5,
            "name": "Banco",
            "type": 0,
            "accounts": [
                {"id": 2, "name": "USD", "currency_name": "USD", "balance": Decimal("1")},
                {"id": 1, "name": "ARS", "currency_name": "ARS", "balance": Decimal("2")},
            ],
        }
    )
    counterparty = only_counterparty(interpret_finsync_client(record, fetched_at=FETCHED_AT))
    assert [a.id for a in counterparty.accounts] == ["finsync:1", "finsync:2"]


def test_json_has_no_negative_zero_and_money_is_fixed_point_text() -> None:
    records = [
        client_record(client_id=1, client_type=1, balance="-0.0"),
        client_record(client_id=2, client_type=1, balance="0.001"),
        client_record(client_id=3, client_type=0, balance="1e2"),
    ]
    result = interpret_finsync(records, fetched_at=FETCHED_AT)
    dumped = [json.loads(encode_json(c)) for c in result.counterparties]
    amounts = [c["accounts"][0]["position"]["amount"] for c in dumped]
    assert amounts == ["0.00", "0.00", "100.00"]
    text = b"".join(encode_json(c) for c in result.counterparties).decode()
    assert '"-0' not in text
    assert "E+" not in text
    reported = [c["accounts"][0]["position"]["reported"]["amount"] for c in dumped]
    assert reported == ["0.0", "0.001", "100"]


# --- tolerant reading -----------------------------------------------------------------------


def test_a_client_without_a_readable_name_is_named_by_its_id_with_a_warning() -> None:
    record = client_from_json('{"id": 42, "name": {"es": "Caja"}, "type": 0, "accounts": []}')
    result = interpret_finsync_client(record, fetched_at=FETCHED_AT)
    assert only_counterparty(result).name == "FinSync client 42"
    [warning] = result.warnings
    assert (warning.code, warning.counterparty_id) == ("unreadable_field", "finsync:42")
    assert "'name'" in warning.message


def test_a_client_without_a_name_is_named_by_its_id_and_says_so() -> None:
    record = client_from_json('{"id": 42, "type": 1}')
    result = interpret_finsync_client(record, fetched_at=FETCHED_AT)
    assert only_counterparty(result).name == "FinSync client 42"
    assert [w.code for w in result.warnings] == ["unreadable_field"]


def test_unused_fields_that_cannot_be_read_cost_nothing_at_all() -> None:
    record = client_record(account={"created_at": [1], "client_id": "x"})
    # The reader noticed...
    assert {item.field for item in record.accounts[0].unreadable} == {"created_at", "client_id"}
    result = interpret_finsync_client(record, fetched_at=FETCHED_AT)
    assert result.warnings == ()
    assert only_position(record).amount == Decimal("100.00")


def test_a_description_written_as_a_number_is_shown_as_text() -> None:
    record = client_from_json('{"id": 5, "name": "X", "description": 2024, "type": 1}')
    assert (
        only_counterparty(interpret_finsync_client(record, fetched_at=FETCHED_AT)).description
        == "2024"
    )


def test_records_without_a_readable_id_are_left_out_with_a_warning_each() -> None:
    record = client_from_json(
        '{"id": 5, "name": "X", "type": 0, "accounts": ['
        '{"id": 1, "currency_name": "ARS", "balance": 10}, {"currency_name": "ARS", "balance": 7}'
        "]}"
    )
    rejected = parse_each("finsync", TypeAdapter(FinsyncClientRecord), [{"name": "no id"}], "x")
    result = interpret_finsync([record], fetched_at=FETCHED_AT, rejected=rejected.rejected)
    [counterparty] = result.counterparties
    assert [account.id for account in counterparty.accounts] == ["finsync:1"]
    assert [(w.code, w.counterparty_id) for w in result.warnings] == [
        ("unreadable_record", None),
        ("unreadable_record", "finsync:5"),
    ]


def test_an_unreadable_balance_is_quoted_in_its_warning() -> None:
    record = client_from_json(
        '{"id": 5, "name": "X", "type": 0, "accounts": '
        '[{"id": 1, "currency_name": "ARS", "balance": "lots"}]}'
    )
    result = interpret_finsync_client(record, fetched_at=FETCHED_AT)
    [warning] = result.warnings
    assert warning.code == "invalid_amount"
    assert "'lots'" in warning.message


def test_pages_interpreted_as_they_land_come_together_in_page_order() -> None:
    pages = FinsyncPages(fetched_at=FETCHED_AT)
    # Page 2 lands first; client 7 shifted from page 1 to page 2 under a concurrent write,
    # unchanged: the same client twice, which is one client and no warning.
    pages.add(2, Parsed([client_record(client_id=7), client_record(client_id=9)], []))
    pages.add(1, Parsed([client_record(client_id=3), client_record(client_id=7)], []))

    interpreted = pages.done()

    assert [c.id for c in interpreted.counterparties] == ["finsync:3", "finsync:7", "finsync:9"]
    assert interpreted.warnings == ()


def test_a_client_repeated_on_one_page_with_other_content_is_a_conflict_not_a_silent_pick() -> None:
    pages = FinsyncPages(fetched_at=FETCHED_AT)
    pages.add(
        1, Parsed([client_record(client_id=4, client_type=5), client_record(client_id=4)], [])
    )

    interpreted = pages.done()

    # Updated at the same moment: the copy that can be interpreted is used, and said so;
    # the unknown type of the other copy is not reported as if it were the client's.
    [counterparty] = interpreted.counterparties
    assert counterparty.id == "finsync:4"
    assert only_warning(interpreted) == ("conflicting_record", "finsync", "finsync:4", None)
    assert "client 4 2 times" in interpreted.warnings[0].message


def moved_client(balance: str, updated_at: str, *, client_id: int = 5) -> FinsyncClientRecord:
    return client_record(client_id=client_id, balance=balance, account={"updated_at": updated_at})


def test_a_client_read_twice_with_different_balances_uses_the_copy_updated_last() -> None:
    before = moved_client("100", "2026-05-04T10:00:00Z")
    after = moved_client("250.5", "2026-05-04T11:00:00Z")
    for first_page, second_page in ((before, after), (after, before)):
        pages = FinsyncPages(fetched_at=FETCHED_AT)
        pages.add(1, Parsed([client_record(client_id=1), first_page], []))
        pages.add(2, Parsed([second_page, client_record(client_id=9)], []))

        interpreted = pages.done()

        assert [c.id for c in interpreted.counterparties] == ["finsync:1", "finsync:5", "finsync:9"]
        position = interpreted.counterparties[1].accounts[0].position
        assert position is not None
        assert position.amount == Decimal("250.50")
        assert only_warning(interpreted) == ("conflicting_record", "finsync", "finsync:5", None)
        assert "updated at 2026-05-04T11:00:00Z" in interpreted.warnings[0].message


def two_accounts(client_id: int, *accounts: tuple[int, str, str]) -> FinsyncClientRecord:
    """A client with accounts given as (id, balance as a JSON number, updated_at)."""
    listed = ", ".join(
        f'{{"id": {account_id}, "currency_name": "ARS", "balance": {balance}, '
        f'"updated_at": "{updated_at}"}}'
        for account_id, balance, updated_at in accounts
    )
    return client_from_json(
        f'{{"id": {client_id}, "name": "Cliente {client_id}", "type": 0, "accounts": [{listed}]}}'
    )


def test_an_account_id_under_two_clients_counts_once_under_the_one_updated_last() -> None:
    older = two_accounts(1, (500, "1000.00", "2026-05-04T09:00:00Z"), (501, "7", "2026-05-01"))
    newer = two_accounts(2, (500, "1000.00", "2026-05-04T10:00:00Z"))

    interpreted = interpret_finsync([older, newer], fetched_at=FETCHED_AT)

    positions = positions_of(interpreted.counterparties)
    assert [(p.counterparty_id, p.account_id, p.amount) for p in positions] == [
        ("finsync:1", "finsync:501", Decimal("7.00")),
        ("finsync:2", "finsync:500", Decimal("1000.00")),
    ]
    [ars] = totals(positions)
    assert (ars.net, ars.cash) == (Decimal("1007.00"), Decimal("1007.00"))
    # Still listed under the other client, without a position.
    first = interpreted.counterparties[0]
    assert [(a.id, a.position) for a in first.accounts if a.id == "finsync:500"] == [
        ("finsync:500", None)
    ]
    assert only_warning(interpreted) == (
        "duplicate_account",
        "finsync",
        "finsync:1",
        "finsync:500",
    )
    message = interpreted.warnings[0].message
    assert "finsync:1" in message
    assert "under finsync:2" in message


def test_an_account_id_under_two_clients_at_one_moment_counts_under_the_lowest_client_id() -> None:
    same = "2026-05-04T09:00:00Z"
    clients = [two_accounts(8, (500, "3", same)), two_accounts(3, (500, "3", same))]
    for order in (clients, clients[::-1]):
        interpreted = interpret_finsync(order, fetched_at=FETCHED_AT)
        assert [p.counterparty_id for p in positions_of(interpreted.counterparties)] == [
            "finsync:3"
        ]
        assert only_warning(interpreted)[2:] == ("finsync:8", "finsync:500")


def test_an_account_listed_twice_in_one_client_counts_once_and_differences_are_warned() -> None:
    identical = two_accounts(1, (500, "10", "2026-05-04"), (500, "10", "2026-05-04"))
    differing = two_accounts(1, (500, "10", "2026-05-04"), (500, "12", "2026-05-05"))

    assert interpret_finsync([identical], fetched_at=FETCHED_AT).warnings == ()
    assert [
        p.amount
        for p in positions_of(interpret_finsync([identical], fetched_at=FETCHED_AT).counterparties)
    ] == [Decimal("10.00")]
    result = interpret_finsync([differing], fetched_at=FETCHED_AT)
    assert [p.amount for p in positions_of(result.counterparties)] == [Decimal("12.00")]
    assert only_warning(result) == ("conflicting_record", "finsync", "finsync:1", "finsync:500")


def test_a_client_left_out_keeps_its_warning_when_not_repeated() -> None:
    pages = FinsyncPages(fetched_at=FETCHED_AT)
    pages.add(1, Parsed([client_record(client_id=3)], []))
    pages.add(2, Parsed([client_record(client_id=8, client_type=5)], []))

    assert only_warning(pages.done()) == ("unknown_client_type", "finsync", "finsync:8", None)


def test_interpreted_counterparties_read_back_from_their_json_are_equal() -> None:
    interpreted = interpret_finsync(
        [client_record(client_id=1), client_record(client_id=2, balance="-3.5")],
        fetched_at=FETCHED_AT,
    )
    written = encode_json(Snapshot(counterparties=interpreted.counterparties, warnings=()))
    again = decode_snapshot(written)
    assert again.counterparties == interpreted.counterparties
    assert encode_json(again) == written


def test_clients_held_until_the_pages_come_together_leave_nothing_for_the_collector() -> None:
    # One copy per client (50,000) is held from its page to the end of a read: tracked, each
    # full collection of a reload walked them all.
    pages = FinsyncPages(fetched_at=FETCHED_AT)
    records = [client_record(client_id=n) for n in range(1, 301)]
    gc.collect()
    before = len(gc.get_objects())
    pages.add(1, Parsed(records, []))
    gc.collect()
    # What the page left held is a list or two, not an object per client.
    assert len(gc.get_objects()) - before < 30
    interpreted = pages.done()
    assert [c.id for c in interpreted.counterparties] == [f"finsync:{n}" for n in range(1, 301)]
