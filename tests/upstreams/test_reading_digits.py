"""Numbers written as text by an upstream: plain ASCII notation only. Python's int() and
Decimal() also read "1_000", Arabic-Indic and full-width digits; upstream data never does."""

from __future__ import annotations

import json
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from app.domain.interpret import BalanceOrders, interpret_finqware, interpret_finsync
from app.domain.interpret.common import INVALID_AMOUNT, UNKNOWN_CLIENT_TYPE
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance, read_credit_line
from app.upstreams.finsync import FinsyncClientRecord
from app.upstreams.http import decode_json
from app.upstreams.reading import MAX_INT_DIGITS, Unreadable, decimal_text, integer_text
from tests.support.finqware import balance_entry
from tests.support.interpreted import FETCHED_AT

DIGITS = settings(max_examples=200, deadline=None)

# Digits Python reads as numbers that are not ASCII: Arabic-Indic, Extended Arabic-Indic,
# Devanagari, full-width, mathematical bold.
FOREIGN_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not "0" <= c <= "9")

REFUSED = [
    "1_000",
    "1_000.50",
    "\u0661\u0662",  # Arabic-Indic 12
    "\u06f1\u06f2",  # Extended Arabic-Indic 12
    "\uff11\uff12",  # full-width 12
    "1\u0662",  # an ASCII digit then an Arabic-Indic one
    "\u00b2",  # superscript two: isdigit() says yes, int() says no
    "",
    " ",
    "NaN",
    "-Infinity",
    "sNaN",
    "0x10",
    "1,000",
    "1 000",
    "\u00a012",  # a no-break space is not an ASCII blank
    "--1",
    "+-1",
]


# --- the readers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("12.50", Decimal("12.50")),
        ("-3", Decimal("-3")),
        ("+3", Decimal("3")),
        ("1E+2", Decimal("100")),
        ("2.5e-3", Decimal("0.0025")),
        ("007.10", Decimal("7.10")),
        (" 12.50\n", Decimal("12.50")),
        ("0", Decimal("0")),
        ("-0.00", Decimal("-0.00")),
    ],
)
def test_decimal_text_reads_plain_ascii_notation_exactly(text: str, read: Decimal) -> None:
    value = decimal_text(text)
    assert value == read
    # Exact, scale included: "12.50" keeps its two places.
    assert value.as_tuple() == Decimal(text.strip()).as_tuple()


@pytest.mark.parametrize("text", [*REFUSED, ".5", "5.", "1.", "1e", "e5", "1.2.3"])
def test_decimal_text_refuses_what_only_python_reads_as_a_number(text: str) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        decimal_text(text)


@pytest.mark.parametrize(
    ("text", "read"), [("12", 12), ("-3", -3), ("+3", 3), (" 42 ", 42), ("007", 7)]
)
def test_integer_text_reads_ascii_digits(text: str, read: int) -> None:
    assert integer_text(text) == read


@pytest.mark.parametrize("text", [*REFUSED, "1.0", "1E+2", "12.50"])
def test_integer_text_refuses_anything_but_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        integer_text(text)


def test_integer_text_refuses_more_digits_than_an_id_has() -> None:
    assert integer_text("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    with pytest.raises(ValueError, match="at most"):
        integer_text("1" * (MAX_INT_DIGITS + 1))


@DIGITS
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_every_decimal_reads_back_from_its_own_text(value: Decimal) -> None:
    # str() of a Decimal is plain notation or an exponent ("1E+2", "0E-7"): both are read.
    assert decimal_text(str(value)).as_tuple() == value.as_tuple()


@DIGITS
@given(st.integers(min_value=-(10**MAX_INT_DIGITS - 1), max_value=10**MAX_INT_DIGITS - 1))
def test_every_bounded_integer_reads_back_from_its_own_text(value: int) -> None:
    assert integer_text(str(value)) == value
    assert decimal_text(str(value)) == value


@DIGITS
@given(
    st.integers(min_value=0, max_value=10**12).map(str),
    st.data(),
)
def test_a_foreign_digit_or_an_underscore_anywhere_makes_a_number_unreadable(
    digits: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(digits)), label="at")
    odd = data.draw(st.one_of(FOREIGN_DIGITS, st.just("_")), label="odd")
    text = digits[:at] + odd + digits[at:]
    if odd != "_":
        # Python itself would read it as a number: the trap these readers close.
        assert unicodedata.digit(odd, None) is not None
    for reader in (integer_text, decimal_text):
        with pytest.raises(ValueError, match="ASCII"):
            reader(text)


# --- where upstream text becomes a number --------------------------------------------------

CLIENT = TypeAdapter(FinsyncClientRecord)
BALANCE = TypeAdapter(FinqwareBalance)


def finsync_client(balance: str, *, type_: str = "0") -> FinsyncClientRecord:
    """A FinSync client as decoded from the wire, its balance and type written as given."""
    body = (
        f'{{"id": 5, "name": "Caja", "type": {type_}, "accounts": [{{"id": 50, '
        f'"currency_name": "ARS", "balance": {balance}}}, {{"id": 51, '
        f'"currency_name": "USD", "balance": 20.5}}]}}'
    )
    return CLIENT.validate_python(decode_json(body.encode()))


@pytest.mark.parametrize("sent", ['"1_000"', '"\u0661\u0662"', '"\uff11\uff12"'])
def test_a_finsync_balance_in_odd_digits_leaves_that_account_without_a_figure(sent: str) -> None:
    client = finsync_client(sent)
    assert client.accounts[0].balance is None
    assert client.unreadable == ()  # the account's field, not the client's
    assert client.accounts[0].unreadable == (Unreadable("balance", repr(json.loads(sent))),)

    result = interpret_finsync([client], fetched_at=FETCHED_AT)

    [counterparty] = result.counterparties
    ars, usd = sorted(counterparty.accounts, key=lambda account: account.currency)
    assert ars.position is None  # left out of every figure
    assert usd.position is not None
    assert usd.position.amount == Decimal("20.50")
    [warning] = result.warnings
    assert warning.code == INVALID_AMOUNT
    assert warning.account_id == "finsync:50"


def test_a_finsync_balance_as_plain_text_is_still_read() -> None:
    assert finsync_client('"1000.50"').accounts[0].balance == Decimal("1000.50")


@pytest.mark.parametrize(("sent", "kept"), [('"1"', 1), ('"\u0661"', "\u0661"), ('"1_0"', "1_0")])
def test_a_finsync_client_type_in_odd_digits_is_not_a_known_type(
    sent: str, kept: int | str
) -> None:
    client = finsync_client("1", type_=sent)
    assert client.type == kept
    result = interpret_finsync([client], fetched_at=FETCHED_AT)
    if isinstance(kept, int):
        assert len(result.counterparties) == 1
    else:
        assert result.counterparties == ()
        assert [w.code for w in result.warnings] == [UNKNOWN_CLIENT_TYPE]


@pytest.mark.parametrize("sent", ["1_0", "\u0661\u0660"])
def test_ids_and_counts_in_odd_digits_are_unreadable(sent: str) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        CLIENT.validate_python({"id": sent})


@pytest.mark.parametrize("sent", ["1_000.00", "\u0661\u0662.00", "\uff11\uff12"])
def test_a_finqware_amount_in_odd_digits_leaves_the_account_out_with_a_warning(
    sent: str,
) -> None:
    entry = BALANCE.validate_python(balance_entry(account_id="acc-1", amount=sent))
    assert entry.data.amount is None
    assert [item.field for item in entry.unreadable] == ["data.amount"]
    account = FinqwareAccount.model_validate({"id": "acc-1"})

    result = interpret_finqware(
        key="bt-main",
        label="Cont principal",
        accounts=[account],
        balances=[entry],
        fetched_at=FETCHED_AT,
        orders=BalanceOrders.default(),
    )

    [counterparty] = result.counterparties
    assert all(account.position is None for account in counterparty.accounts)
    assert INVALID_AMOUNT in {warning.code for warning in result.warnings}


@pytest.mark.parametrize("sent", ["5_000.00", "\u0665000", {"amount": "\u0661"}])
def test_a_credit_line_in_odd_digits_is_unreadable(sent: object) -> None:
    with pytest.raises(ValueError, match="ASCII"):
        read_credit_line(sent)
