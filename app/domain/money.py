"""Money arithmetic: ISO 4217 minor units, rounding of upstream numbers, and zero without a sign."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

# ISO 4217 List One (published 2026-01-01) with the minor units of every active code; the
# tests check it in full against the `iso4217` package. Codes whose minor unit is "N.A."
# (XAU, XAG, XPD, XPT, XDR, XSU, XUA, XBA-XBD, XTS, XXX) are left out on purpose: they have
# no decimal convention, so they are treated like a non-ISO code and keep up to
# NON_ISO_MAX_PLACES decimals.
# ANG and BGN are withdrawn (replaced by XCG and EUR) but stay while balances in them may
# still arrive, so those still round to cents.
ISO_4217_MINOR_UNITS: dict[str, int] = {
    "AED": 2,
    "AFN": 2,
    "ALL": 2,
    "AMD": 2,
    "ANG": 2,
    "AOA": 2,
    "ARS": 2,
    "AUD": 2,
    "AWG": 2,
    "AZN": 2,
    "BAM": 2,
    "BBD": 2,
    "BDT": 2,
    "BGN": 2,
    "BHD": 3,
    "BIF": 0,
    "BMD": 2,
    "BND": 2,
    "BOB": 2,
    "BOV": 2,
    "BRL": 2,
    "BSD": 2,
    "BTN": 2,
    "BWP": 2,
    "BYN": 2,
    "BZD": 2,
    "CAD": 2,
    "CDF": 2,
    "CHE": 2,
    "CHF": 2,
    "CHW": 2,
    "CLF": 4,
    "CLP": 0,
    "CNY": 2,
    "COP": 2,
    "COU": 2,
    "CRC": 2,
    "CUP": 2,
    "CVE": 2,
    "CZK": 2,
    "DJF": 0,
    "DKK": 2,
    "DOP": 2,
    "DZD": 2,
    "EGP": 2,
    "ERN": 2,
    "ETB": 2,
    "EUR": 2,
    "FJD": 2,
    "FKP": 2,
    "GBP": 2,
    "GEL": 2,
    "GHS": 2,
    "GIP": 2,
    "GMD": 2,
    "GNF": 0,
    "GTQ": 2,
    "GYD": 2,
    "HKD": 2,
    "HNL": 2,
    "HTG": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "IQD": 3,
    "IRR": 2,
    "ISK": 0,
    "JMD": 2,
    "JOD": 3,
    "JPY": 0,
    "KES": 2,
    "KGS": 2,
    "KHR": 2,
    "KMF": 0,
    "KPW": 2,
    "KRW": 0,
    "KWD": 3,
    "KYD": 2,
    "KZT": 2,
    "LAK": 2,
    "LBP": 2,
    "LKR": 2,
    "LRD": 2,
    "LSL": 2,
    "LYD": 3,
    "MAD": 2,
    "MDL": 2,
    "MGA": 2,
    "MKD": 2,
    "MMK": 2,
    "MNT": 2,
    "MOP": 2,
    "MRU": 2,
    "MUR": 2,
    "MVR": 2,
    "MWK": 2,
    "MXN": 2,
    "MXV": 2,
    "MYR": 2,
    "MZN": 2,
    "NAD": 2,
    "NGN": 2,
    "NIO": 2,
    "NOK": 2,
    "NPR": 2,
    "NZD": 2,
    "OMR": 3,
    "PAB": 2,
    "PEN": 2,
    "PGK": 2,
    "PHP": 2,
    "PKR": 2,
    "PLN": 2,
    "PYG": 0,
    "QAR": 2,
    "RON": 2,
    "RSD": 2,
    "RUB": 2,
    "RWF": 0,
    "SAR": 2,
    "SBD": 2,
    "SCR": 2,
    "SDG": 2,
    "SEK": 2,
    "SGD": 2,
    "SHP": 2,
    "SLE": 2,
    "SOS": 2,
    "SRD": 2,
    "SSP": 2,
    "STN": 2,
    "SVC": 2,
    "SYP": 2,
    "SZL": 2,
    "THB": 2,
    "TJS": 2,
    "TMT": 2,
    "TND": 3,
    "TOP": 2,
    "TRY": 2,
    "TTD": 2,
    "TWD": 2,
    "TZS": 2,
    "UAH": 2,
    "UGX": 0,
    "USD": 2,
    "USN": 2,
    "UYI": 0,
    "UYU": 2,
    "UYW": 4,
    "UZS": 2,
    "VED": 2,
    "VES": 2,
    "VND": 0,
    "VUV": 0,
    "WST": 2,
    "XAD": 2,
    "XAF": 0,
    "XCD": 2,
    "XCG": 2,
    "XOF": 0,
    "XPF": 0,
    "YER": 2,
    "ZAR": 2,
    "ZMW": 2,
    "ZWG": 2,
}

# FinSync may send crypto codes such as USDT; 8 places covers satoshi-level precision.
NON_ISO_MAX_PLACES = 8

# No real balance comes near 10**30 in any currency; beyond that the figure is broken.
MAX_INTEGER_DIGITS = 30
# A float's noise reaches about 340 decimals (5e-324); past that a figure is broken, and
# writing it out in fixed point would take as many digits as it claims.
MAX_DECIMAL_PLACES = 400

# Unary minus, quantize and sums round to the *context* precision (28 digits by default);
# money must never be rounded silently, so every operation here runs in an exact context
# that traps instead of rounding.
_EXACT = Context(
    prec=MAX_PREC,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, Overflow, Inexact],
)


def minor_units(currency: str) -> int | None:
    """ISO 4217 minor units of `currency`, or None when it has none (not ISO, e.g. USDT)."""
    return ISO_4217_MINOR_UNITS.get(currency.strip().upper())


def zero_for(currency: str) -> Decimal:
    """Zero written with the currency's minor units: ARS -> 0.00, JPY -> 0, USDT -> 0."""
    return Decimal((0, (0,), -(minor_units(currency) or 0)))


def without_negative_zero(amount: Decimal, currency: str) -> Decimal:
    """`amount`, except that any zero (including -0) becomes ``zero_for(currency)``."""
    return zero_for(currency) if amount.is_zero() else amount


def negate(amount: Decimal, currency: str) -> Decimal:
    """Exact negation (no context rounding) that never produces -0."""
    return without_negative_zero(amount.copy_negate(), currency)


def check_amount(amount: Decimal) -> None:
    """Raise ValueError for a figure no balance can be: NaN, infinite, or absurdly large.

    The size bounds keep a hostile or broken upstream (1E+999999999, 1E-999999999) from
    making exact arithmetic, or writing the figure out, allocate without limit.
    """
    if not amount.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    if not amount.is_zero() and amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValueError(f"amount has more than {MAX_INTEGER_DIGITS} integer digits")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    if exponent < -MAX_DECIMAL_PLACES:
        raise ValueError(f"amount has more than {MAX_DECIMAL_PLACES} decimal places")


def round_upstream_number(amount: Decimal, currency: str) -> Decimal:
    """Round a number an upstream sent as a JSON number (possibly with float noise).

    Raises ValueError for a figure ``check_amount`` refuses. ISO codes are quantized
    half-even to their minor units (ARS 1520.5 -> 1520.50); other codes keep up to
    NON_ISO_MAX_PLACES decimals, rounded half-even only when there are more, never padded,
    and never in exponent notation (1E+2 -> 100).
    A zero result is always ``zero_for(currency)``.
    """
    check_amount(amount)
    places = minor_units(currency)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    with localcontext(_EXACT) as ctx:
        # Rounding is the point here, so only this step may be inexact.
        ctx.traps[Inexact] = False
        if places is not None:
            rounded = amount.quantize(Decimal((0, (1,), -places)))
        elif exponent < -NON_ISO_MAX_PLACES:
            rounded = amount.quantize(Decimal((0, (1,), -NON_ISO_MAX_PLACES)))
        elif exponent > 0:
            # 1E+2 -> 100: fixed-point digits, same value.
            rounded = amount.quantize(Decimal(1))
        else:
            rounded = amount
    return without_negative_zero(rounded, currency)


def sum_exact(amounts: Iterable[Decimal], currency: str) -> Decimal:
    """Exact sum, at least as precise as the currency's minor units; zero is ``zero_for``.

    Padding a sum to the currency's minor units (105 -> 105.00) only adds zeros, never
    rounds, so a total reads like the zero total of the same currency.
    """
    with localcontext(_EXACT):
        total = sum(amounts, start=zero_for(currency))
    return without_negative_zero(total, currency)
