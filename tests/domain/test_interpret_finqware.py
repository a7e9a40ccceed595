"""Tests of Finqware interpretation: picking balance types, signs, names and warnings."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from pydantic import TypeAdapter

from app.domain.interpret import BalanceOrders, Interpreted, interpret_finqware
from app.domain.models import Kind, Meaning, Side, Source
from app.domain.snapshot import Account, Position, encode_json
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance
from app.upstreams.reading import parse_each
from tests.support.interpreted import FETCHED_AT, only_counterparty, only_warning

IBAN = "RO49AAAA1B31007593840000"
_ids = count(1)


def balance(
    balance_type: str = "InterimBooked",
    amount: str = "210.23",
    indicator: str = "credit",
    *,
    account_id: str = "acc-1",
    currency: str = "RON",
    credit_limit_included: Any = False,
    credit_line: Any = None,
    native_date: str | None = None,
    native_timestamp: str | None = None,
    timestamp: str = "2026-05-04T07:31:51.689168",
    entry_id: str | None = None,
) -> FinqwareBalance:
    data: dict[str, Any] = {
        "amount": amount,
        "credit_debit_indicator": indicator,
        "credit_limit_included": credit_limit_included,
        "credit_line": credit_line,
        "currency": currency,
        "native_timestamp": native_timestamp,
        "type": balance_type,
    }
    if native_date is not None:
        data["native_date"] = native_date
    return FinqwareBalance.model_validate(
        {
            "account_id": account_id,
            "id": entry_id or f"bal-{next(_ids)}",
            "timestamp": timestamp,
            "data": data,
        }
    )


def account(
    account_id: str = "acc-1",
    *,
    name: str | None = "",
    nickname: str | None = "",
    iban: str | None = IBAN,
    servicer_name: str | None = "Banca Transilvania",
    currency: str | None = "RON",
) -> FinqwareAccount:
    schemes = [{"scheme_name": "BICFI", "identification": "BTRLRO22"}]
    if iban is not None:
        schemes.insert(0, {"scheme_name": "IBAN", "identification": iban})
    return FinqwareAccount.model_validate(
        {
            "id": account_id,
            "servicer_id": "bt",
            "servicer_name": servicer_name,
            "timestamp": "2026-02-01T13:14:52Z",
            "data": {
                "name": name,
                "nickname": nickname,
                "currency": currency,
                "account_type": "Business current account",
                "account_schemes": schemes,
            },
        }
    )


def interpret(
    balances: list[FinqwareBalance],
    accounts: list[FinqwareAccount] | None = None,
    *,
    label: str | None = "Cont principal",
    orders: BalanceOrders | None = None,
) -> Interpreted:
    return interpret_finqware(
        key="bt-main",
        label=label,
        accounts=[account()] if accounts is None else accounts,
        balances=balances,
        fetched_at=FETCHED_AT,
        orders=orders or BalanceOrders.default(),
    )


def only_account(result: Interpreted) -> Account:
    accounts = only_counterparty(result).accounts
    assert len(accounts) == 1
    return accounts[0]


def position_of(*balances: FinqwareBalance, orders: BalanceOrders | None = None) -> Position:
    result = interpret(list(balances), orders=orders)
    assert result.warnings == ()
    position = only_account(result).position
    assert position is not None
    return position


def warning_codes(result: Interpreted) -> list[str]:
    return [w.code for w in result.warnings]


# --- signs --------------------------------------------------------------------------------


def test_credit_balance_is_cash_kept_exactly_as_sent() -> None:
    position = position_of(balance(amount="210.23000"))
    assert format(position.amount, "f") == "210.23000"
    assert (position.meaning, position.side) == (Meaning.cash, Side.asset)


def test_debit_balance_is_overdraft() -> None:
    position = position_of(balance(amount="1500.5", indicator="debit"))
    assert format(position.amount, "f") == "-1500.5"
    assert (position.meaning, position.side) == (Meaning.overdraft, Side.liability)


@pytest.mark.parametrize("indicator", ["credit", "debit"])
@pytest.mark.parametrize("amount", ["0", "0.00000", "-0.00"])
def test_zero_balance_is_flat_zero_scaled_to_the_currency(indicator: str, amount: str) -> None:
    position = position_of(balance(amount=amount, indicator=indicator))
    assert format(position.amount, "f") == "0.00"
    assert (position.meaning, position.side) == (Meaning.zero, Side.flat)
    assert '"-0' not in encode_json(position).decode()


@pytest.mark.parametrize(("indicator", "sign"), [("Credit", 1), ("DEBIT", -1), (" debit ", -1)])
def test_indicator_is_read_case_insensitively_and_echoed_as_sent(indicator: str, sign: int) -> None:
    position = position_of(balance(amount="10", indicator=indicator))
    assert position.amount == Decimal(10 * sign)
    assert position.reported.credit_debit_indicator == indicator
    assert position.balances[0].credit_debit_indicator == indicator


@pytest.mark.parametrize("indicator", ["", "cr", "CRDT", "unknown"])
def test_unknown_indicator_leaves_the_position_out_with_a_warning(indicator: str) -> None:
    result = interpret([balance(), balance("ClosingBooked", indicator=indicator)])
    listed = only_account(result)
    assert listed.position is None
    assert listed.id == "finqware:acc-1"
    assert only_warning(result) == (
        "unknown_credit_debit_indicator",
        "finqware:bt-main",
        "finqware:bt-main",
        "finqware:acc-1",
    )


def test_negative_amount_leaves_the_position_out_with_a_warning() -> None:
    result = interpret([balance(amount="-5.00"), balance("ClosingBooked", amount="3")])
    assert only_account(result).position is None
    assert warning_codes(result) == ["invalid_amount"]


def test_absurdly_large_amount_leaves_the_position_out_with_a_warning() -> None:
    result = interpret([balance(amount="1E+40")])
    assert only_account(result).position is None
    assert warning_codes(result) == ["invalid_amount"]


# --- picking ------------------------------------------------------------------------------


def test_amount_comes_from_the_first_current_type_present() -> None:
    position = position_of(
        balance("ClosingBooked", amount="100"),
        balance("InterimBooked", amount="120"),
        balance("Expected", amount="130"),
    )
    assert (position.amount, position.balance_type) == (Decimal("120"), "InterimBooked")
    assert position.balance_type_fallback is False


def test_fallback_type_is_used_and_flagged_when_no_booked_type_is_present() -> None:
    position = position_of(
        balance("ClosingAvailable", amount="90"),
        balance("Expected", amount="95"),
    )
    assert (position.amount, position.balance_type) == (Decimal("95"), "Expected")
    assert position.balance_type_fallback is True


def test_credit_limit_included_entries_are_never_picked() -> None:
    position = position_of(
        balance("InterimBooked", amount="5500", credit_limit_included=True, credit_line="5000"),
        balance("InterimBooked", amount="500", native_timestamp="2026-05-01T00:00:00Z"),
        balance("InterimAvailable", amount="5400", credit_limit_included=True),
        balance("ClosingAvailable", amount="400"),
    )
    assert (position.amount, position.balance_type) == (Decimal("500"), "InterimBooked")
    assert (position.available, position.credit_line) == (Decimal("400"), Decimal("5000"))


def test_type_with_only_credit_limit_included_entries_is_skipped() -> None:
    position = position_of(
        balance("InterimBooked", amount="5500", credit_limit_included=True),
        balance("ClosingBooked", amount="500"),
    )
    assert position.balance_type == "ClosingBooked"


def test_only_credit_limit_included_entries_give_no_usable_balance() -> None:
    result = interpret([balance(credit_limit_included=True)])
    assert only_account(result).position is None
    assert warning_codes(result) == ["no_usable_balance"]


def test_latest_native_timestamp_wins_between_entries_of_one_type() -> None:
    position = position_of(
        balance(amount="1", native_timestamp="2026-05-03T09:00:00Z"),
        balance(amount="2", native_timestamp="2026-05-04T08:00:00+03:00"),
        balance(amount="3", native_timestamp="2026-05-02T23:00:00Z"),
    )
    assert position.amount == Decimal("2")
    assert position.as_of == datetime(2026, 5, 4, 5, 0, tzinfo=UTC)


def test_latest_native_date_wins_when_there_is_no_native_timestamp() -> None:
    position = position_of(
        balance(amount="1", native_date="2026-05-03", timestamp="2026-05-04T10:00:00"),
        balance(amount="2", native_date="2026-05-01", timestamp="2026-05-04T11:00:00"),
    )
    assert position.amount == Decimal("1")
    assert position.as_of == datetime(2026, 5, 3, tzinfo=UTC)


def test_latest_fetch_timestamp_wins_when_the_bank_gives_no_time() -> None:
    position = position_of(
        balance(amount="1", timestamp="2026-05-04T10:00:00"),
        balance(amount="2", timestamp="2026-05-04T11:00:00"),
    )
    assert position.amount == Decimal("2")
    assert position.as_of == datetime(2026, 5, 4, 11, 0, tzinfo=UTC)


def test_available_comes_from_the_first_available_type_present() -> None:
    position = position_of(
        balance("InterimBooked", amount="100"),
        balance("ClosingAvailable", amount="70"),
        balance("InterimAvailable", amount="80", indicator="debit"),
    )
    assert position.available == Decimal("-80")


def test_available_is_none_when_no_available_type_is_present() -> None:
    position = position_of(balance("InterimBooked"), balance("ClosingBooked"))
    assert position.available is None


def test_unknown_balance_type_is_echoed_but_never_picked() -> None:
    position = position_of(
        balance("Information", amount="999"),
        balance("ClosingBooked", amount="10"),
    )
    assert (position.amount, position.balance_type) == (Decimal("10"), "ClosingBooked")
    assert [entry.type for entry in position.balances] == ["ClosingBooked", "Information"]


def test_only_unknown_balance_types_give_no_usable_balance() -> None:
    result = interpret([balance("Information"), balance("SomethingNew")])
    assert only_account(result).position is None
    assert warning_codes(result) == ["no_usable_balance"]


def test_configured_orders_replace_the_defaults() -> None:
    orders = BalanceOrders(current=("ClosingBooked",), current_fallback=(), available=("Expected",))
    position = position_of(
        balance("InterimBooked", amount="1"),
        balance("ClosingBooked", amount="2"),
        balance("Expected", amount="3"),
        orders=orders,
    )
    assert (position.amount, position.available) == (Decimal("2"), Decimal("3"))


def test_default_orders_are_the_settings_defaults() -> None:
    orders = BalanceOrders.default()
    assert orders.current[0] == "InterimBooked"
    assert orders.current_fallback == ("Expected", "InterimAvailable", "ClosingAvailable")
    assert orders.available[0] == "InterimAvailable"


# --- the rest of the position --------------------------------------------------------------


def test_balances_echo_every_entry_in_type_order_then_latest_first() -> None:
    position = position_of(
        balance("Expected", amount="5", entry_id="e"),
        balance("Zeta", amount="1", entry_id="z"),
        balance("Alpha", amount="1", entry_id="a"),
        balance("InterimBooked", amount="1", native_date="2026-05-01", entry_id="ib-old"),
        balance("InterimBooked", amount="2", native_date="2026-05-03", entry_id="ib-new"),
        balance("InterimAvailable", amount="3", credit_limit_included=True, entry_id="ia"),
    )
    assert [entry.id for entry in position.balances] == ["ib-new", "ib-old", "e", "ia", "a", "z"]


def test_balance_entries_are_interpreted_and_report_the_raw_amount() -> None:
    position = position_of(
        balance(
            "InterimBooked",
            amount="42.10",
            indicator="debit",
            credit_line="1000",
            native_date="2026-05-03",
            native_timestamp="2026-05-03T09:00:00",
            timestamp="2026-05-04T07:31:51",
            entry_id="b1",
        )
    )
    [entry] = position.balances
    assert entry.id == "b1"
    assert (format(entry.amount, "f"), format(entry.reported, "f")) == ("-42.10", "42.10")
    assert (entry.currency, entry.credit_line) == ("RON", Decimal("1000"))
    assert entry.native_date == date(2026, 5, 3)
    assert entry.native_timestamp == datetime(2026, 5, 3, 9, 0, tzinfo=UTC)
    assert entry.fetched_at == datetime(2026, 5, 4, 7, 31, 51, tzinfo=UTC)


def test_reported_is_the_picked_entry_as_sent() -> None:
    position = position_of(balance(amount="7.50000", indicator="debit"))
    assert format(position.reported.amount, "f") == "7.50000"
    assert position.reported.credit_debit_indicator == "debit"
    assert position.reported.client_type is None


def test_credit_line_prefers_the_picked_type() -> None:
    position = position_of(
        balance("InterimBooked", amount="1"),
        balance("InterimBooked", amount="9", credit_limit_included=True, credit_line="800"),
        balance("Expected", amount="2", credit_line="999", timestamp="2026-05-05T00:00:00"),
    )
    assert position.credit_line == Decimal("800")


def test_credit_line_falls_back_to_any_entry_and_else_none() -> None:
    with_line = position_of(balance("InterimBooked"), balance("Expected", credit_line="300"))
    assert with_line.credit_line == Decimal("300")
    assert position_of(balance("InterimBooked")).credit_line is None


def test_as_of_falls_back_from_native_timestamp_to_native_date_to_fetch_time() -> None:
    by_time = position_of(balance(native_timestamp="2026-05-03T09:00:00+02:00"))
    by_date = position_of(balance(native_date="2026-05-02"))
    by_fetch = position_of(balance(timestamp="2026-05-04T07:31:51"))
    assert by_time.as_of == datetime(2026, 5, 3, 7, 0, tzinfo=UTC)
    assert by_date.as_of == datetime(2026, 5, 2, tzinfo=UTC)
    assert by_fetch.as_of == datetime(2026, 5, 4, 7, 31, 51, tzinfo=UTC)
    for position in (by_time, by_date, by_fetch):
        assert position.as_of is not None
        assert position.as_of.utcoffset() == timedelta(0)
        assert position.fetched_at == FETCHED_AT


def test_position_identity_follows_the_identifiers_table() -> None:
    position = position_of(balance())
    assert (position.counterparty_id, position.counterparty_name) == (
        "finqware:bt-main",
        "Cont principal",
    )
    assert (position.account_id, position.currency) == ("finqware:acc-1", "RON")
    assert (position.kind, position.source) == (Kind.internal, Source.finqware)


# --- accounts and the counterparty ---------------------------------------------------------


def test_account_in_two_currencies_gives_one_account_per_currency() -> None:
    result = interpret(
        [
            balance(amount="100", currency="RON"),
            balance(amount="20", currency="EUR", indicator="debit"),
        ]
    )
    accounts = only_counterparty(result).accounts
    assert [(a.id, a.currency) for a in accounts] == [
        ("finqware:acc-1", "EUR"),
        ("finqware:acc-1", "RON"),
    ]
    positions = [a.position for a in accounts]
    assert [p.amount if p else None for p in positions] == [Decimal("-20"), Decimal("100")]
    assert [len(p.balances) if p else None for p in positions] == [1, 1]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "Operating", "nickname": "Ops"}, "Operating"),
        ({"name": "", "nickname": "Ops"}, "Ops"),
        ({"name": " ", "nickname": None}, IBAN),
        ({"name": None, "nickname": "", "iban": None}, "acc-1"),
    ],
)
def test_account_name_falls_back_from_name_to_nickname_to_iban_to_id(
    fields: dict[str, Any], expected: str
) -> None:
    result = interpret([balance()], [account(**fields)])
    assert only_account(result).name == expected
    position = only_account(result).position
    assert position is not None
    assert position.account_name == expected


def test_balances_of_an_unlisted_account_still_form_an_account_named_by_its_id() -> None:
    result = interpret([balance(account_id="ghost")], [])
    listed = only_account(result)
    assert (listed.id, listed.name) == ("finqware:ghost", "ghost")
    assert listed.position is not None


def test_listed_account_without_balances_appears_without_position_and_warns() -> None:
    result = interpret(
        [balance(account_id="acc-1")],
        [account("acc-1", name="Main"), account("acc-2", name="Savings", currency="EUR")],
    )
    accounts = {a.id: a for a in only_counterparty(result).accounts}
    assert accounts["finqware:acc-1"].position is not None
    savings = accounts["finqware:acc-2"]
    assert (savings.name, savings.currency, savings.position) == ("Savings", "EUR", None)
    [warning] = result.warnings
    assert (warning.code, warning.account_id) == ("no_usable_balance", "finqware:acc-2")


def test_invalid_finqware_currency_leaves_those_balances_out_with_a_warning() -> None:
    result = interpret([balance(currency="RON"), balance(currency="lei!")])
    listed = only_account(result)
    assert listed.currency == "RON"
    assert listed.position is not None
    assert warning_codes(result) == ["invalid_currency"]


def test_counterparty_is_internal_and_named_by_the_label_with_the_bank_as_description() -> None:
    counterparty = only_counterparty(interpret([balance()], label="Cont principal"))
    assert (counterparty.id, counterparty.source, counterparty.kind) == (
        "finqware:bt-main",
        Source.finqware,
        Kind.internal,
    )
    assert (counterparty.name, counterparty.description) == (
        "Cont principal",
        "Banca Transilvania",
    )


def test_counterparty_without_label_is_named_by_the_bank() -> None:
    counterparty = only_counterparty(interpret([balance()], label=None))
    assert (counterparty.name, counterparty.description) == ("Banca Transilvania", None)


def test_counterparty_without_label_or_bank_is_named_by_the_consent_key() -> None:
    counterparty = only_counterparty(
        interpret([balance()], [account(servicer_name=None)], label="  ")
    )
    assert (counterparty.name, counterparty.description) == ("bt-main", None)


def test_consent_without_accounts_or_balances_is_an_empty_counterparty() -> None:
    result = interpret([], [])
    assert only_counterparty(result).accounts == ()
    assert result.warnings == ()


def test_json_money_is_fixed_point_and_never_negative_zero() -> None:
    result = interpret(
        [
            balance("InterimBooked", amount="-0.00", indicator="debit", credit_line="-0"),
            balance("InterimAvailable", amount="1E+2"),
        ]
    )
    text = encode_json(only_counterparty(result)).decode()
    assert '"-0' not in text
    assert "E+" not in text
    position = json.loads(text)["accounts"][0]["position"]
    assert (position["amount"], position["available"]) == ("0.00", "100")


# --- credit lines and what the company can spend ------------------------------------------


def test_available_with_credit_line_comes_from_the_entry_that_includes_the_line() -> None:
    position = position_of(
        balance("InterimBooked", "3200.4", "debit"),
        balance("InterimAvailable", "3200.40", "debit"),
        balance(
            "InterimAvailable",
            "6799.60",
            "credit",
            credit_limit_included=True,
            credit_line=[
                {
                    "Included": True,
                    "Amount": {"Amount": "10000.00", "Currency": "RON"},
                    "Type": "Pre-Agreed",
                }
            ],
        ),
    )
    assert (position.amount, position.meaning) == (Decimal("-3200.4"), Meaning.overdraft)
    assert position.available == Decimal("-3200.40")
    assert position.credit_line == Decimal("10000.00")
    assert position.available_with_credit_line == Decimal("6799.60")


def test_available_with_credit_line_is_available_plus_the_line_when_no_entry_includes_it() -> None:
    position = position_of(
        balance("ClosingBooked", "100.00"),
        balance("ClosingAvailable", "80.50", credit_line={"amount": "1000", "currency": "RON"}),
    )
    assert position.available == Decimal("80.50")
    assert position.credit_line == Decimal("1000")
    assert position.available_with_credit_line == Decimal("1080.50")


def test_available_with_credit_line_is_null_without_both_figures() -> None:
    assert (
        position_of(balance("InterimBooked", credit_line="500")).available_with_credit_line is None
    )
    no_line = position_of(balance("InterimBooked"), balance("InterimAvailable", "4"))
    assert (no_line.available, no_line.available_with_credit_line) == (Decimal("4"), None)


def test_a_line_in_another_currency_is_not_used_and_says_so() -> None:
    result = interpret(
        [balance("InterimBooked", credit_line=[{"Amount": {"Amount": "5", "Currency": "EUR"}}])]
    )
    position = only_account(result).position
    assert position is not None
    assert position.credit_line is None
    assert position.balances[0].credit_line is None
    assert warning_codes(result) == ["credit_line_other_currency"]
    assert result.warnings[0].account_id == "finqware:acc-1"
    # It names the line's currency, and the account's.
    assert result.warnings[0].message == (
        "a credit line in EUR is not in the account's currency (RON); it is not used"
    )


def test_several_lines_in_the_accounts_currency_add_up_and_available_is_not_a_line() -> None:
    lines = [
        {"Amount": {"Amount": "5000.00", "Currency": "RON"}, "Type": "Pre-Agreed"},
        {"Amount": {"Amount": "1000.00", "Currency": "RON"}, "Type": "Emergency"},
        {"Amount": {"Amount": "700.00", "Currency": "RON"}, "Type": "Available"},
    ]
    assert position_of(balance(credit_line=lines)).credit_line == Decimal("6000.00")


def test_an_unreadable_credit_line_costs_only_the_line_with_a_warning_naming_the_account() -> None:
    result = interpret([balance("InterimBooked", "210.23", credit_line={"weird": 1})])
    position = only_account(result).position
    assert position is not None
    assert position.amount == Decimal("210.23")
    assert position.credit_line is None
    [warning] = result.warnings
    assert (warning.code, warning.account_id) == ("unreadable_field", "finqware:acc-1")
    assert "credit_line" in warning.message


def test_an_entry_whose_credit_limit_flag_cannot_be_read_is_never_picked() -> None:
    result = interpret(
        [
            balance("InterimBooked", "999.00", credit_limit_included="perhaps"),
            balance("ClosingBooked", "100.00"),
        ]
    )
    position = only_account(result).position
    assert position is not None
    assert (position.balance_type, position.amount) == ("ClosingBooked", Decimal("100.00"))
    assert warning_codes(result) == ["unreadable_field"]
    assert [entry.credit_limit_included for entry in position.balances] == [True, False]


# --- what interpretation needs, read strictly ---------------------------------------------


def test_an_unreadable_amount_leaves_the_position_out_quoting_what_was_sent() -> None:
    result = interpret([balance("InterimBooked", "ten")])
    assert only_account(result).position is None
    assert warning_codes(result) == ["invalid_amount"]
    assert "'ten'" in result.warnings[0].message


def test_an_entry_without_a_type_leaves_the_position_out() -> None:
    result = interpret([balance("InterimBooked"), balance(None)])  # type: ignore[arg-type]
    assert only_account(result).position is None
    assert warning_codes(result) == ["invalid_balance_type"]


def test_balance_entries_without_an_account_are_named_and_the_rest_stands() -> None:
    rejected = parse_each(
        "finqware", TypeAdapter(FinqwareBalance), [{"id": "orphan"}, "junk"], "balances"
    ).rejected
    result = interpret_finqware(
        key="bt-main",
        label=None,
        accounts=[account()],
        balances=[balance()],
        fetched_at=FETCHED_AT,
        orders=BalanceOrders.default(),
        rejected_balances=rejected,
    )
    assert only_account(result).position is not None
    assert warning_codes(result) == ["unreadable_record", "unreadable_record"]
    assert {w.account_id for w in result.warnings} == {None}


def test_an_entry_without_a_readable_timestamp_or_id_is_still_echoed() -> None:
    entry = FinqwareBalance.model_validate(
        {
            "account_id": "acc-1",
            "timestamp": "not a time",
            "data": {
                "amount": "5",
                "credit_debit_indicator": "credit",
                "currency": "RON",
                "type": "InterimBooked",
            },
        }
    )
    result = interpret([entry])
    position = only_account(result).position
    assert position is not None
    [echoed] = position.balances
    assert echoed.id == ""
    assert echoed.fetched_at == FETCHED_AT  # tesoro's fetch time stands in
    assert position.as_of == FETCHED_AT
    assert warning_codes(result) == ["unreadable_field"]
    assert "timestamp" in result.warnings[0].message


def test_unreadable_account_details_cost_only_the_name() -> None:
    listed = FinqwareAccount.model_validate(
        {"id": "acc-1", "servicer_name": "BT", "data": {"name": {"x": 1}, "nickname": "Ops"}}
    )
    result = interpret([balance()], [listed])
    assert only_account(result).name == "Ops"
    assert warning_codes(result) == ["unreadable_field"]


def test_two_balances_of_one_type_for_the_same_moment_that_disagree_are_warned_about() -> None:
    moment = "2026-05-04T09:00:00Z"
    first = balance("InterimBooked", "100.00", native_timestamp=moment, entry_id="bal-a")
    second = balance("InterimBooked", "90.00", native_timestamp=moment, entry_id="bal-b")
    for order in ([first, second], [second, first]):
        result = interpret(order)
        position = only_account(result).position
        assert position is not None
        # The greatest id decides, whatever order Finqware sent them in.
        assert position.amount == Decimal("90.00")
        assert only_warning(result) == (
            "conflicting_record",
            "finqware:bt-main",
            "finqware:bt-main",
            "finqware:acc-1",
        )
        message = result.warnings[0].message
        assert "2 InterimBooked balances for the same moment (2026-05-04T09:00:00Z)" in message
        assert "(100.00, 90.00)" in message
        assert "entry 'bal-b' (90.00)" in message


def test_balances_of_one_moment_that_agree_or_of_different_moments_are_no_conflict() -> None:
    moment = "2026-05-04T09:00:00Z"
    agreeing = interpret(
        [
            balance("InterimBooked", "100.00", native_timestamp=moment),
            balance("InterimBooked", "100.0", native_timestamp=moment),
            # A zero is a zero whatever its indicator.
            balance("ClosingBooked", "0", "credit", native_date="2026-05-03"),
            balance("ClosingBooked", "0.00", "debit", native_date="2026-05-03"),
        ]
    )
    assert agreeing.warnings == ()
    later = interpret(
        [
            balance("InterimBooked", "100.00", native_timestamp=moment),
            balance("InterimBooked", "80.00", native_timestamp="2026-05-04T10:00:00Z"),
        ]
    )
    assert later.warnings == ()
    assert only_position_amount(later) == Decimal("80.00")


def test_same_day_balances_that_disagree_are_a_conflict_and_the_later_finqware_query_wins() -> None:
    result = interpret(
        [
            balance("ClosingBooked", "5", native_date="2026-05-03", timestamp="2026-05-04T08:00"),
            balance("ClosingBooked", "6", native_date="2026-05-03", timestamp="2026-05-04T07:00"),
        ]
    )
    assert only_position_amount(result) == Decimal("5")
    assert warning_codes(result) == ["conflicting_record"]


def only_position_amount(result: Interpreted) -> Decimal:
    position = only_account(result).position
    assert position is not None
    return position.amount


def test_an_account_listed_twice_with_other_details_is_warned_and_the_latest_copy_named() -> None:
    older = account(name="Cont vechi", iban="RO11 BTRL 0000 0000 0000 0001")
    newer = FinqwareAccount.model_validate(
        account(name="Cont nou", iban="RO22BTRL0000000000000002").model_dump()
        | {"timestamp": "2026-03-01T00:00:00Z"}
    )
    for listed in ([older, newer], [newer, older]):
        result = interpret([balance()], listed)
        assert only_account(result).name == "Cont nou"
        assert only_warning(result) == (
            "conflicting_record",
            "finqware:bt-main",
            "finqware:bt-main",
            "finqware:acc-1",
        )
        assert "(IBAN, name)" in result.warnings[0].message
        assert result.ibans == (("finqware:acc-1", "RO22BTRL0000000000000002"),)


def test_an_account_listed_twice_identically_is_one_account_without_a_warning() -> None:
    result = interpret([balance()], [account(), account()])
    assert result.warnings == ()
    assert only_account(result).id == "finqware:acc-1"


def test_the_ibans_of_listed_accounts_are_kept_without_spaces_for_comparison() -> None:
    result = interpret(
        [balance(account_id="a"), balance(account_id="b"), balance(account_id="c")],
        [account("a", iban="ro49 aaaa 1b31 0075 9384 0000"), account("b", iban=None)],
    )
    assert result.ibans == (("finqware:a", "RO49AAAA1B31007593840000"),)
