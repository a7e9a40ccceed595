"""Tests of tolerant reading: optional fields cost only themselves, records are rejected alone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.upstreams.errors import UpstreamBadResponseError
from app.upstreams.finqware import CreditLineEntry, FinqwareAccount, FinqwareBalance
from app.upstreams.finsync import FinsyncClientRecord
from app.upstreams.reading import Unreadable, parse_each

BALANCE = TypeAdapter(FinqwareBalance)


def entry(**data: Any) -> FinqwareBalance:
    base: dict[str, Any] = {
        "amount": "10.00",
        "credit_debit_indicator": "credit",
        "currency": "RON",
        "type": "InterimBooked",
    }
    return BALANCE.validate_python(
        {"account_id": "acc-1", "id": "b1", "timestamp": "2026-01-01T00:00:00", "data": base | data}
    )


# --- credit lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (None, None),
        ("", None),
        ([], None),
        ("5000.00", (CreditLineEntry(Decimal("5000.00")),)),
        (Decimal("2500"), (CreditLineEntry(Decimal("2500")),)),
        (7000, (CreditLineEntry(Decimal("7000")),)),
        ({"amount": "5000", "currency": "ron"}, (CreditLineEntry(Decimal("5000"), "RON"),)),
        ({"Amount": "1.5", "Currency": "EUR"}, (CreditLineEntry(Decimal("1.5"), "EUR"),)),
        ({"value": 3}, (CreditLineEntry(Decimal("3")),)),
        (
            [
                {
                    "Included": True,
                    "Amount": {"Amount": "5000.00", "Currency": "RON"},
                    "Type": "Pre-Agreed",
                }
            ],
            (CreditLineEntry(Decimal("5000.00"), "RON", "Pre-Agreed"),),
        ),
        (
            [{"Amount": {"Amount": "1"}, "Currency": "USD"}, "2"],
            (CreditLineEntry(Decimal("1"), "USD"), CreditLineEntry(Decimal("2"))),
        ),
    ],
)
def test_credit_line_is_read_in_every_shape_banks_write(sent: Any, expected: Any) -> None:
    balance = entry(credit_line=sent)
    assert balance.data.credit_line == expected
    assert balance.unreadable == ()


@pytest.mark.parametrize(
    "sent",
    [
        {"weird": 1},
        {"amount": {"value": "x"}},
        "a lot",
        "-5",
        "NaN",
        True,
        [{"Amount": {"Amount": "5"}}, {"nothing": 1}],
        {"amount": "5", "currency": 978},
    ],
)
def test_an_unreadable_credit_line_is_null_and_named_but_the_entry_stands(sent: Any) -> None:
    balance = entry(credit_line=sent)
    assert balance.data.credit_line is None
    assert balance.data.amount == Decimal("10.00")
    assert [item.field for item in balance.unreadable] == ["data.credit_line"]


# --- optional fields ------------------------------------------------------------------------


def test_timestamps_with_offsets_spaces_or_only_a_date_are_read_as_utc() -> None:
    balance = entry(native_timestamp="2026-11-20 10:00:00+0200", native_date="2026-11-19T23:30Z")
    assert balance.data.native_timestamp == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    # A timestamp where a date is due counts as the date the bank wrote.
    assert balance.data.native_date == date(2026, 11, 19)
    assert balance.timestamp == datetime(2026, 1, 1, tzinfo=UTC)  # naive is UTC
    assert entry(native_timestamp="2026-11-20").data.native_timestamp == datetime(
        2026, 11, 20, tzinfo=UTC
    )


def test_unreadable_optional_fields_become_null_and_are_named_with_what_was_sent() -> None:
    balance = BALANCE.validate_python(
        {
            "account_id": "acc-1",
            "id": {"nested": True},
            "timestamp": "yesterday",
            "extra": [1, 2],
            "data": {
                "amount": "1.00",
                "credit_debit_indicator": "debit",
                "currency": "RON",
                "type": "ClosingBooked",
                "native_date": "20/11/2026",
                "native_timestamp": 10**30,
            },
        }
    )
    assert (balance.id, balance.timestamp) == (None, None)
    assert (balance.data.native_date, balance.data.native_timestamp) == (None, None)
    assert balance.data.amount == Decimal("1.00")
    assert balance.unreadable == (
        Unreadable("id", "{'nested': True}"),
        Unreadable("timestamp", "'yesterday'"),
        Unreadable("data.native_date", "'20/11/2026'"),
        Unreadable("data.native_timestamp", "1000000000000000000000000000000"),
    )


def test_an_unreadable_credit_limit_included_is_unknown_not_false() -> None:
    assert entry(credit_limit_included=None).data.credit_limit_included is False
    assert entry(credit_limit_included="true").data.credit_limit_included is True
    unknown = entry(credit_limit_included={"yes": 1})
    assert unknown.data.credit_limit_included is None
    assert [item.field for item in unknown.unreadable] == ["data.credit_limit_included"]


def test_what_interpretation_needs_is_read_leniently_for_the_interpreter_to_judge() -> None:
    balance = entry(amount="ten", type=["InterimBooked"], currency=None, credit_debit_indicator=1)
    assert (balance.data.amount, balance.data.type, balance.data.currency) == (None, None, None)
    assert balance.data.credit_debit_indicator == "1"
    assert {item.field for item in balance.unreadable} == {"data.amount", "data.type"}


def test_long_values_are_quoted_short() -> None:
    balance = entry(native_date="x" * 500)
    [item] = balance.unreadable
    assert len(item.sent) <= 40
    assert item.sent.endswith("...")


def test_an_upstream_key_named_unreadable_is_never_taken_as_ours() -> None:
    balance = BALANCE.validate_python(
        {"account_id": "a", "unreadable": [{"field": "x", "sent": "y"}], "data": {}}
    )
    assert balance.unreadable == ()


def test_account_fields_are_each_optional() -> None:
    account = FinqwareAccount.model_validate(
        {
            "id": 42,
            "servicer_name": ["Banca"],
            "data": {
                "name": 7,
                "nickname": None,
                "account_schemes": [{"scheme_name": "IBAN", "identification": "RO49X"}, 3],
            },
        }
    )
    assert account.id == "42"
    assert account.servicer_name is None
    assert account.data.name == "7"
    assert account.data.account_schemes == []
    assert {item.field for item in account.unreadable} == {
        "servicer_name",
        "data.account_schemes",
    }


def test_finsync_client_fields_are_each_optional_and_accounts_are_read_one_by_one() -> None:
    client = FinsyncClientRecord.model_validate(
        {
            "id": 7,
            "name": {"first": "x"},
            "type": 0,
            "created_at": "not a date",
            "company_id": "seven",
            "accounts": [
                {"id": 1, "currency_name": "ARS", "balance": Decimal("1.5"), "updated_at": 5.5},
                {"currency_name": "ARS", "balance": 3},
                "not an account",
            ],
        }
    )
    assert client.name is None
    assert [account.id for account in client.accounts] == [1]
    assert client.accounts[0].balance == Decimal("1.5")
    assert [rejected.index for rejected in client.accounts.rejected] == [1, 2]
    assert {item.field for item in client.unreadable} == {"name", "created_at", "company_id"}


def test_a_finsync_accounts_field_that_is_not_a_list_costs_only_the_accounts() -> None:
    client = FinsyncClientRecord.model_validate({"id": 7, "type": 1, "accounts": {"id": 1}})
    assert list(client.accounts) == []
    assert [item.field for item in client.unreadable] == ["accounts"]


# --- records ----------------------------------------------------------------------------------


def test_records_without_a_readable_id_are_rejected_alone() -> None:
    parsed = parse_each(
        "finqware",
        BALANCE,
        [{"account_id": "a", "data": {}}, {"id": "no account"}, 5, {"account_id": "  "}],
        "balances",
    )
    assert [record.account_id for record in parsed] == ["a"]
    assert [rejected.index for rejected in parsed.rejected] == [1, 2, 3]
    assert parsed.rejected[0].reason.startswith("account_id")
    assert parsed.rejected[1].sent is None  # not an object


def test_only_an_answer_that_is_not_a_list_fails_the_connection() -> None:
    with pytest.raises(UpstreamBadResponseError):
        parse_each("finqware", BALANCE, {"balances": []}, "balances")
