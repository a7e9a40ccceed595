"""Tests of the ISO 4217 table, upstream-number rounding and sign-free zeros."""

from __future__ import annotations

import re
from decimal import Decimal

import iso4217
import pytest
from pydantic import TypeAdapter

from app.domain.models import Money
from app.domain.money import (
    ISO_4217_MINOR_UNITS,
    check_amount,
    minor_units,
    negate,
    round_upstream_number,
    sum_exact,
    without_negative_zero,
    zero_for,
)

# Written independently of the table, from ISO 4217 List One (amendment 177, 2024):
# the usual two-decimal currencies plus every 0-, 3- and 4-decimal code people trip on.
REFERENCE_MINOR_UNITS = {
    "ARS": 2,
    "USD": 2,
    "EUR": 2,
    "RON": 2,
    "GBP": 2,
    "BRL": 2,
    "CHF": 2,
    "MXN": 2,
    "UYU": 2,
    "HUF": 2,
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "PYG": 0,
    "ISK": 0,
    "VND": 0,
    "XOF": 0,
    "XAF": 0,
    "UGX": 0,
    "KWD": 3,
    "BHD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
    "IQD": 3,
    "LYD": 3,
    "CLF": 4,
    "UYW": 4,
}

# The maintained ISO 4217 List One (the `iso4217` package, a test-only dependency): every
# active code with its minor units, None where ISO gives "N.A.".
PUBLISHED = {currency.code: currency.exponent for currency in iso4217.Currency}
# The table's documented exceptions (see the comment above ISO_4217_MINOR_UNITS):
# codes without a minor unit are left out, like a non-ISO code...
WITHOUT_MINOR_UNIT = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)
# ...and withdrawn codes stay, with their last minor units, while balances may still arrive.
KEPT_AFTER_WITHDRAWAL = {"ANG": 2, "BGN": 2}

MONEY_JSON = TypeAdapter(Money)


def fixed(amount: Decimal) -> str:
    """Fixed-point text with the amount's own scale, as the API writes it."""
    return format(amount, "f")


def test_table_agrees_with_an_independent_reference() -> None:
    disagreements = {
        code: (ISO_4217_MINOR_UNITS.get(code), units)
        for code, units in REFERENCE_MINOR_UNITS.items()
        if ISO_4217_MINOR_UNITS.get(code) != units
    }
    assert disagreements == {}


def test_every_active_iso_4217_code_with_a_minor_unit_is_in_the_table_with_it() -> None:
    missing_or_different = {
        code: (ISO_4217_MINOR_UNITS.get(code), units)
        for code, units in PUBLISHED.items()
        if units is not None and ISO_4217_MINOR_UNITS.get(code) != units
    }
    assert missing_or_different == {}


def test_every_code_of_the_table_is_active_in_iso_4217_or_a_kept_withdrawn_one() -> None:
    not_published = {
        code: units for code, units in ISO_4217_MINOR_UNITS.items() if code not in PUBLISHED
    }
    assert not_published == KEPT_AFTER_WITHDRAWAL


def test_codes_iso_4217_gives_no_minor_unit_are_left_out_of_the_table() -> None:
    assert {code for code, units in PUBLISHED.items() if units is None} == WITHOUT_MINOR_UNIT
    assert WITHOUT_MINOR_UNIT.isdisjoint(ISO_4217_MINOR_UNITS)
    assert all(minor_units(code) is None for code in WITHOUT_MINOR_UNIT)


def test_table_keys_are_three_upper_case_letters_and_units_are_known_values() -> None:
    assert all(re.fullmatch(r"[A-Z]{3}", code) for code in ISO_4217_MINOR_UNITS)
    assert set(ISO_4217_MINOR_UNITS.values()) <= {0, 2, 3, 4}
    # A complete list, not a sample: List One has about 165 codes with a minor unit.
    assert len(ISO_4217_MINOR_UNITS) >= 160


def test_withdrawn_codes_are_not_in_the_table() -> None:
    for withdrawn in ("HRK", "SLL", "ZWL", "MRO", "STD", "VEF", "LTL", "CUC"):
        assert withdrawn not in ISO_4217_MINOR_UNITS


def test_minor_units_of_a_non_iso_code_is_none() -> None:
    assert minor_units("USDT") is None


def test_minor_units_of_a_code_without_iso_minor_unit_is_none() -> None:
    # XAU (gold) is ISO but has no minor unit: it keeps its decimals like a non-ISO code.
    assert minor_units("XAU") is None


def test_minor_units_ignores_case_and_spaces() -> None:
    assert minor_units(" jpy ") == 0


@pytest.mark.parametrize(
    ("currency", "expected"),
    [("ARS", "0.00"), ("JPY", "0"), ("KWD", "0.000"), ("CLF", "0.0000"), ("USDT", "0")],
)
def test_zero_for_is_zero_scaled_to_the_currency(currency: str, expected: str) -> None:
    zero = zero_for(currency)
    assert fixed(zero) == expected
    assert not zero.is_signed()


@pytest.mark.parametrize(
    ("raw", "currency", "expected"),
    [
        ("1520.5", "ARS", "1520.50"),
        ("0.30000000000000004", "ARS", "0.30"),
        ("0.125", "USD", "0.12"),
        ("0.135", "USD", "0.14"),
        ("-0.125", "USD", "-0.12"),
        ("1234.5", "JPY", "1234"),
        ("1235.5", "JPY", "1236"),
        ("1.23456", "KWD", "1.235"),
        ("1.2345", "KWD", "1.234"),
        ("1.2355", "KWD", "1.236"),
        ("35000.123456", "CLF", "35000.1235"),
        ("1E+2", "ARS", "100.00"),
    ],
)
def test_iso_amounts_round_half_even_to_minor_units(raw: str, currency: str, expected: str) -> None:
    assert fixed(round_upstream_number(Decimal(raw), currency)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12.345678912", "12.34567891"),
        ("0.000000015", "0.00000002"),
        ("0.000000025", "0.00000002"),
        ("1.5", "1.5"),
        ("1.50", "1.50"),
        ("7", "7"),
        ("1E+2", "100"),
    ],
)
def test_non_iso_amounts_keep_up_to_eight_decimals_unpadded(raw: str, expected: str) -> None:
    assert fixed(round_upstream_number(Decimal(raw), "USDT")) == expected


def test_rounding_to_zero_gives_unsigned_zero() -> None:
    assert fixed(round_upstream_number(Decimal("-0.004"), "ARS")) == "0.00"
    assert fixed(round_upstream_number(Decimal("-0.000000001"), "USDT")) == "0"
    assert fixed(round_upstream_number(Decimal("-0.0"), "JPY")) == "0"


def test_rounding_large_amounts_is_exact_beyond_default_precision() -> None:
    # 29 significant digits: the default decimal context (28) would round this silently.
    raw = Decimal("12345678901234567890123456.785")
    assert fixed(round_upstream_number(raw, "ARS")) == "12345678901234567890123456.78"


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1E+40"])
def test_unusable_amounts_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        round_upstream_number(Decimal(raw), "ARS")
    with pytest.raises(ValueError, match="amount"):
        check_amount(Decimal(raw))


def test_negate_is_exact_and_never_negative_zero() -> None:
    many_digits = Decimal("1234567890123456789012345678901.23")
    assert negate(many_digits, "ARS") == Decimal("-1234567890123456789012345678901.23")
    assert fixed(negate(Decimal("0.00"), "ARS")) == "0.00"


def test_without_negative_zero_scales_any_zero_to_the_currency() -> None:
    assert fixed(without_negative_zero(Decimal("-0.00000"), "RON")) == "0.00"
    assert without_negative_zero(Decimal("-1.5"), "RON") == Decimal("-1.5")


def test_sum_is_exact_and_padded_to_minor_units() -> None:
    assert fixed(sum_exact([Decimal("100"), Decimal("5")], "RON")) == "105.00"
    assert fixed(sum_exact([Decimal("0.10001"), Decimal("0.2")], "RON")) == "0.30001"
    assert fixed(sum_exact([Decimal("1.5"), Decimal("-1.5")], "ARS")) == "0.00"
    assert fixed(sum_exact([], "JPY")) == "0"


def test_money_serialises_as_fixed_point_strings() -> None:
    assert MONEY_JSON.dump_json(Decimal("1E+2")) == b'"100"'
    assert MONEY_JSON.dump_json(Decimal("1.5E-7")) == b'"0.00000015"'
    assert MONEY_JSON.dump_json(round_upstream_number(Decimal("1520.5"), "ARS")) == b'"1520.50"'


def test_exponent_notation_becomes_plain_digits() -> None:
    # str() shows the exponent form a naive serialiser would write.
    assert str(round_upstream_number(Decimal("1E+2"), "USDT")) == "100"
    assert str(round_upstream_number(Decimal("1E+2"), "JPY")) == "100"


@pytest.mark.parametrize("text", ["1E-401", "1E-999999999", "0.5E-400"])
def test_amounts_with_absurdly_many_decimal_places_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="decimal places"):
        check_amount(Decimal(text))


def test_float_noise_at_the_edge_of_a_double_is_still_an_amount() -> None:
    check_amount(Decimal("5E-324"))
    assert round_upstream_number(Decimal("5.551115123125783E-17"), "ARS") == Decimal("0.00")
